"""``nnunet-diffrefine benchmark``: compare trained models with stock nnU-Net on the same folds."""

from __future__ import annotations

import argparse

from nnunet_diffrefine.cli.arguments import (
    add_device,
    add_flag,
    add_overwrite,
    add_protocol,
    add_workers,
    non_negative_int,
)

SUMMARY = "evaluate trained models against stock nnU-Net on the same folds (table, CSV, bar chart)"
DESCRIPTION = (
    "Collect each model's cross-validation predictions (--split cv, nnU-Net's fold_N/validation) or "
    "predict the test split with each fold (--split test, timed per case), evaluate them all with the BraTS "
    "evaluator and write a Markdown table (Dice per region and average, HD95, sensitivity, precision; mean ± std "
    "over folds), a CSV, a PNG bar chart and JSON. Stock nnUNetTrainer is always a row."
)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark
    from nnunet_diffrefine.environment import nnunet_folders

    models = [parse_model(m, args.c) for m in args.models]
    out = run_benchmark(
        nnunet_folders(),
        args.dataset,
        models,
        args.f,
        split=args.split,
        images=args.images,
        labels=args.labels,
        output=args.o,
        device=args.device,
        use_mirroring=not args.disable_tta,
        num_processes=args.np,
        overwrite=args.overwrite,
        protocol=args.protocol,
        official_config=args.official_config,
    )
    print((out / "benchmark.md").read_text())
    print(f"wrote {out / 'benchmark.md'}, benchmark.csv, benchmark_dice.png and benchmark.json")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", dest="dataset", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument(
        "-m",
        "--models",
        nargs="+",
        required=True,
        metavar="[LABEL=]TRAINER[:PLANS][+REFINER...]",
        help="models to compare, e.g. MedNeXtTrainer Stock=nnUNetTrainer:nnUNetPlansCPU MedNeXtCorrDiffTrainer+corrdiff "
        "SwinUNETRTrainer+ddpm+medsegdiff (plans default: nnUNetPlans; each +REFINER adds a refined row, test split only)",
    )
    p.add_argument("-c", default="3d_fullres", help="configuration (default: 3d_fullres)")
    p.add_argument(
        "-f", nargs="+", type=non_negative_int, default=[0, 1, 2, 3, 4], help="folds (default: 0 1 2 3 4)"
    )
    p.add_argument(
        "--split", choices=["cv", "test"], default="cv", help="cross-validation predictions or the test split"
    )
    add_protocol(
        p,
        "how every row is scored: brats-2023 (default) or the official BraTS protocol (label groups, "
        "global and matched-lesion DSC, NSD, HD95)",
    )
    p.add_argument("--images", default=None, help="test images (default: nnUNet_raw/DatasetXXX/imagesTs)")
    p.add_argument("--labels", default=None, help="test labels (default: nnUNet_raw/DatasetXXX/labelsTs)")
    p.add_argument(
        "-o", default=None, help="output folder (default: nnUNet_results/DatasetXXX/benchmark_SPLIT)"
    )
    add_device(p, "device for test-split prediction and refinement")
    add_flag(p, "--disable_tta", "no test-time mirroring (test split)")
    add_workers(p, 1, "processes for the evaluation")
    add_overwrite(p, "replace an existing benchmark.md")
