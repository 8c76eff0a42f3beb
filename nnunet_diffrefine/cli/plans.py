"""``nnunet-diffrefine plans``: write a plans file whose architecture is one of our networks."""

from __future__ import annotations

import argparse

from nnunet_diffrefine.cli.arguments import add_flag, add_overwrite

SUMMARY = "write an nnU-Net plans file that uses MedNeXt, Swin-UNETR, a residual U-Net or SegResNet"
DESCRIPTION = (
    "Copy nnUNet_preprocessed/DatasetXXX/nnUNetPlans.json into nnUNetPlans<Arch>[CPU].json with the "
    "architecture entry pointing at one of this project's networks and a compatible patch size. "
    "--cpu writes the small-CPU preset (few features, patch <= 64^3, batch 2) for demos and tests; "
    "'--arch nnunet --cpu' applies it to stock nnU-Net's network (nnUNetPlansCPU)."
)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.environment import nnunet_folders
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    path = write_plans_preset(
        args.dataset,
        args.arch,
        cpu=args.cpu,
        source_plans=args.pl,
        configurations=tuple(args.c),
        overwrite=args.overwrite,
        preprocessed_root=nnunet_folders().require("nnUNet_preprocessed"),
    )
    print(f"wrote {path}")
    print(f"use it with: nnUNetv2_train {args.dataset} {args.c[0]} FOLD -p {path.stem} -tr <Trainer>")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nnunet_diffrefine.training.plans_presets import ARCH_CHOICES

    p.add_argument("-d", dest="dataset", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument("--arch", required=True, choices=ARCH_CHOICES)
    add_flag(p, "--cpu", "small-CPU preset")
    p.add_argument("-pl", default="nnUNetPlans", help="plans to start from (default: nnUNetPlans)")
    p.add_argument(
        "-c", nargs="+", default=["3d_fullres"], help="configurations to rewrite (default: 3d_fullres)"
    )
    add_overwrite(p, "replace an existing preset file")
