"""``nnunet-diffrefine refine``: refine nnU-Net's exported probabilities with trained refiners."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.refine.postprocess import PostprocessConfig
    from nnunet_diffrefine.refine.run import model_folder_for, refine_folder

    model = model_folder_for(args.d, args.tr, args.p, args.c)
    overrides = {}
    if args.steps is not None:
        overrides["inference_steps"] = args.steps
    if args.num_samples is not None:
        overrides["num_samples"] = args.num_samples
    pp = PostprocessConfig(
        enabled=not args.no_postprocess,
        min_component_voxels=args.pp_min_size,
        fill_holes=tuple(args.pp_fill_holes),
    )
    out = refine_folder(
        args.i,
        args.o,
        model,
        [int(f) for f in args.f],
        args.images,
        refiner=args.refiner,
        device=args.device,
        num_parts=args.num_parts,
        part_id=args.part_id,
        postprocess=pp,
        overrides=overrides,
        overwrite=args.overwrite,
    )
    print(f"refined predictions in {out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "refine",
        help="refine the probabilities written by nnUNetv2_predict --save_probabilities",
        description="Refine an nnUNetv2_predict --save_probabilities folder with the refiner(s) trained next to the "
        "base model (fold_N/refiner_NAME), averaging the folds' refined probabilities, and write .npz/.pkl/"
        "segmentations in nnU-Net's format (nnUNetv2_ensemble and nnUNetv2_evaluate_folder accept the folder). "
        "Finished cases are skipped on a re-run.",
    )
    p.add_argument("-i", required=True, help="folder written by nnUNetv2_predict --save_probabilities")
    p.add_argument("-o", required=True, help="output folder")
    p.add_argument("-d", required=True, help="dataset id or name")
    p.add_argument("-c", default="3d_fullres", help="configuration (default: 3d_fullres)")
    p.add_argument(
        "-tr",
        default="MedNeXtCorrDiffTrainer",
        help="trainer of the base model (default: MedNeXtCorrDiffTrainer)",
    )
    p.add_argument("-p", default="nnUNetPlans", help="plans of the base model (default: nnUNetPlans)")
    p.add_argument(
        "-f",
        nargs="+",
        default=["0", "1", "2", "3", "4"],
        help="folds whose refiners to use (default: 0 1 2 3 4)",
    )
    p.add_argument(
        "--images", required=True, help="the raw images the predictions were made from (e.g. imagesTs)"
    )
    p.add_argument("--refiner", default=None, help="refiner name (default: the only one in the fold folders)")
    p.add_argument("--steps", type=int, default=None, help="reverse diffusion steps (default: the refiner's)")
    p.add_argument(
        "--num-samples", type=int, default=None, help="samples per case, averaged (default: the refiner's)"
    )
    p.add_argument("-device", default="cpu", choices=["cpu", "cuda"], help="device (default: cpu)")
    p.add_argument(
        "--num_parts", type=int, default=1, help="split the cases into this many parts (default: 1)"
    )
    p.add_argument("--part_id", type=int, default=0, help="which part this process refines (default: 0)")
    p.add_argument(
        "--no-postprocess", action="store_true", help="no morphological postprocessing of the masks"
    )
    p.add_argument(
        "--pp-min-size", type=int, default=10, help="remove components smaller than this (voxels; default 10)"
    )
    p.add_argument(
        "--pp-fill-holes",
        nargs="*",
        default=["WT", "TC"],
        help="regions whose holes are filled (default: WT TC)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="redo finished cases / replace another refinement's output"
    )
    p.set_defaults(func=run)
