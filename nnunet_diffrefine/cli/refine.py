"""``nnunet-diffrefine refine``: refine nnU-Net's exported probabilities with trained refiners."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_diffrefine.cli.arguments import (
    add_device,
    add_flag,
    add_model_arguments,
    add_overwrite,
    non_negative_float,
    non_negative_int,
    positive_int,
)

SUMMARY = "refine the probabilities written by nnUNetv2_predict --save_probabilities"
DESCRIPTION = (
    "Refine an nnUNetv2_predict --save_probabilities folder with the refiner(s) trained next to the base "
    "model (fold_N/refiner_NAME), averaging the folds' refined probabilities, and write .npz/.pkl/"
    "segmentations in nnU-Net's format (nnUNetv2_ensemble and nnUNetv2_evaluate_folder accept the "
    "folder). Warns when the priors were predicted otherwise than those the refiners learned on "
    "(mirroring, number of folds averaged). Finished cases are skipped on a re-run."
)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.environment import nnunet_folders
    from nnunet_diffrefine.refine.postprocess import PostprocessConfig
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

    given = (
        ("inference_steps", args.steps),
        ("num_samples", args.num_samples),
        ("change_band", args.change_band),
    )
    overrides = {k: v for k, v in given if v is not None}
    postprocess = PostprocessConfig(
        enabled=not args.no_postprocess,
        min_component_voxels=args.pp_min_size,
        fill_holes=tuple(args.pp_fill_holes),
    )
    options = RefineOptions(
        refiner=args.refiner,
        device=args.device,
        num_parts=args.num_parts,
        part_id=args.part_id,
        postprocess=postprocess,
        overrides=overrides,
        overwrite=args.overwrite,
        prior_mirroring=False if args.prior_disable_tta else None,
        prior_folds=args.prior_folds,
        force_refiner=args.force_refiner,
    )

    def model() -> Path:  # found once the inputs are checked: a wrong input folder is reported first
        return nnunet_folders().model_folder(args.d, args.tr, args.p, args.c)

    out = refine_folder(args.i, args.o, model, args.f, args.images, options)
    print(f"refined predictions in {out}")
    return 0


def _refiner_folder_name(value: str) -> str:
    """``<refiner>`` or ``<refiner>__<tag>``, the refiner a registered one."""
    from nnunet_diffrefine.refine.registry import available_refiners

    name = value.split("__", 1)[0]
    if name not in available_refiners():
        raise argparse.ArgumentTypeError(
            f"unknown refiner {name!r}: choose one of {', '.join(available_refiners())} (or <refiner>__<tag>)"
        )
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nnunet_diffrefine.refine.registry import available_refiners

    p.add_argument("-i", required=True, help="folder written by nnUNetv2_predict --save_probabilities")
    p.add_argument("-o", required=True, help="output folder")
    add_model_arguments(p, "MedNeXtCorrDiffTrainer", ["0", "1", "2", "3", "4"], "folds whose refiners to use")
    p.add_argument(
        "--images", required=True, help="the raw images the predictions were made from (e.g. imagesTs)"
    )
    p.add_argument(
        "--refiner",
        default=None,
        type=_refiner_folder_name,
        help=f"{', '.join(available_refiners())}, or <refiner>__<tag> for a variant trained with "
        "'train-refiner --tag' (default: the only one in the fold folders)",
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, help="reverse diffusion steps (default: the refiner's)"
    )
    p.add_argument(
        "--num-samples",
        type=positive_int,
        default=None,
        help="samples per case, averaged (default: the refiner's)",
    )
    p.add_argument(
        "--change-band",
        type=non_negative_float,
        default=None,
        metavar="VOXELS",
        help="change the prior only within this many voxels of its mask's boundary, per region (default: "
        "the refiner's setting change_band, none unless trained with it)",
    )
    add_flag(
        p,
        "--force-refiner",
        "apply the refiner everywhere, also where its cross-validated gate kept the prior (the gate's "
        "decision per region is printed either way)",
    )
    add_device(p)
    p.add_argument(
        "--num_parts", type=positive_int, default=1, help="split the cases into this many parts (default: 1)"
    )
    p.add_argument(
        "--part_id", type=non_negative_int, default=0, help="which part this process refines (default: 0)"
    )
    priors = p.add_argument_group("how the priors were predicted (when the folder does not record it)")
    add_flag(priors, "--prior-disable-tta", "they were predicted with --disable_tta")
    priors.add_argument(
        "--prior-folds",
        type=positive_int,
        default=None,
        help="folds averaged per prior (default: those of -f)",
    )
    pp = p.add_argument_group("post-processing of the masks")
    add_flag(pp, "--no-postprocess", "no morphological post-processing")
    pp.add_argument(
        "--pp-min-size",
        type=non_negative_int,
        default=10,
        help="remove smaller components (voxels; default 10)",
    )
    pp.add_argument(
        "--pp-fill-holes",
        nargs="*",
        default=["WT", "TC"],
        help="regions whose holes are filled (default: WT TC)",
    )
    add_overwrite(p, "redo finished cases / replace another refinement's output")
