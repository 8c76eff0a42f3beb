"""``nnunet-diffrefine demo``: run the pipeline on synthetic data on a CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_diffrefine.cli.arguments import add_device, add_flag, positive_int

SUMMARY = "run the pipeline end to end on a synthetic BraTS-like dataset (CPU)"
DESCRIPTION = (
    "The whole pipeline on a CPU: synthesize a small BraTS-like dataset, nnU-Net planning and preprocessing, "
    "train stock nnU-Net and MedNeXt briefly on fold 0, train CorrDiff on MedNeXt's out-of-fold "
    "probabilities, predict the test split, refine, evaluate, print the benchmark table (CSV and PNG beside "
    "it) and write a report for one case. Stages whose outputs exist are skipped, so a re-run resumes where "
    "the last one stopped."
)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.demo.pipeline import DemoConfig, run_demo
    from nnunet_diffrefine.environment import nnunet_folders, process_environment

    output = Path(args.output)
    given = {"num_processes": args.np, "device": args.device, "profile": args.profile}
    overrides = {k: v for k, v in given.items() if v is not None}
    overrides["folders"] = nnunet_folders()  # those set in the environment; the others go under -o
    config = DemoConfig.tiny(output, **overrides) if args.tiny else DemoConfig(output=output, **overrides)
    run_demo(config, process_environment())
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output",
        default="demo_output",
        help="folder for the demo's nnU-Net folders (default: demo_output)",
    )
    add_flag(p, "--tiny", "smallest sizes and counts (same code path), as CI runs it")
    p.add_argument(
        "--profile",
        choices=["realistic", "classic"],
        default=None,
        help="phantoms: classic (voxel-separable, 48^3 at 5 mm; the default, ~14 min on 2 cores) or "
        "realistic (as hard as real scans, 3.5 mm; roughly twice as long); --tiny: realistic at 4 mm",
    )
    p.add_argument("-np", type=positive_int, default=None, help="worker processes (default: 2)")
    add_device(p, "device for training and inference", default=None)
