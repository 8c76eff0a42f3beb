"""``nnunet-diffrefine synth``: write a synthetic BraTS-like nnU-Net raw dataset."""

from __future__ import annotations

import argparse

from nnunet_diffrefine.cli.arguments import (
    add_flag,
    add_overwrite,
    add_workers,
    dataset_id,
    dataset_name,
    non_negative_int,
    positive_int,
    probability,
)
from nnunet_diffrefine.data.challenges import CONVENTIONS, DEFAULT_CONVENTION
from nnunet_diffrefine.errors import InputError

SUMMARY = "write a synthetic BraTS-like nnU-Net raw dataset (MNI anatomy, irregular tumors, MR contrasts)"
DESCRIPTION = (
    "Write DatasetXXX_NAME into the nnU-Net raw folder: synthetic multimodal brain tumor MRI "
    "(T1n, T1c, T2w, T2-FLAIR) built on the MNI ICBM152 2009 template with BraTS labels "
    "(by default BraTS 2023: 1 necrotic/non-enhancing core, 2 edema, 3 enhancing; --challenge writes "
    "another convention's labels, regions and channels) and the convention's region-based dataset.json. "
    "The same arguments give byte-identical files."
)


def _shape(values: list[int]) -> tuple[int, int, int]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)
    raise InputError(f"--shape takes one number or three (Z Y X), got {values}")


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset
    from nnunet_diffrefine.environment import nnunet_folders

    raw_root = args.output or nnunet_folders().raw
    if not raw_root:
        raise InputError("no output folder: pass -o RAW_ROOT or set nnUNet_raw")
    spacing = None
    if args.spacing is not None:
        if len(args.spacing) not in (1, 3) or min(args.spacing) <= 0:
            raise InputError(f"--spacing takes one or three positive numbers (mm), got {args.spacing}")
        spacing = tuple(args.spacing * 3 if len(args.spacing) == 1 else args.spacing)
    config = SynthConfig(
        shape=_shape(args.shape),
        spacing=spacing,
        seed=args.seed,
        phenotype=args.phenotype,
        second_lesion_prob=args.second_lesion_prob,
        mass_effect=not args.no_mass_effect,
        challenge=args.challenge,
        fluid_prob=args.fluid_prob,
        profile=args.profile,
    )
    folder = synthesize_dataset(
        raw_root,
        args.dataset_id,
        args.name,
        args.num_train,
        args.num_test,
        config,
        num_processes=args.np,
        **{key: getattr(args, key) for key in ("brats_layout", "overwrite", "label_based")},
    )
    print(
        f"wrote {folder} ({args.num_train} training, {args.num_test} test cases, grid {list(config.shape)}, "
        f"spacing {[round(s, 3) for s in config.grid_spacing()]} mm)"
    )
    if args.brats_layout:
        title = CONVENTIONS[args.challenge].layout.title
        print(f"wrote the cases in the {title} release layout to {args.brats_layout}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", dest="dataset_id", type=dataset_id, required=True, help="dataset id (1-999)")
    p.add_argument(
        "-n",
        dest="name",
        type=dataset_name,
        default="SynthBraTS",
        help="dataset name: letters, digits, '_', '-' (default: SynthBraTS)",
    )
    p.add_argument("--num-train", type=positive_int, default=20, help="labelled training cases (default: 20)")
    p.add_argument(
        "--num-test", type=non_negative_int, default=5, help="test cases in imagesTs/labelsTs (default: 5)"
    )
    p.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=[96],
        metavar="N",
        help="grid size: one number for a cube or three for Z Y X (default: 96). 155 240 240 is the BraTS grid at 1 mm; "
        "smaller grids get a coarser isotropic spacing so that the brain keeps its physical size",
    )
    p.add_argument(
        "--spacing",
        type=float,
        nargs="+",
        default=None,
        metavar="MM",
        help="override the voxel spacing in mm (one or three numbers, Z Y X)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--phenotype",
        choices=["adult", "pediatric", "mixed"],
        default="adult",
        help="adult glioblastoma-like, pediatric diffuse midline glioma-like, or a 50/50 mix (default: adult)",
    )
    p.add_argument(
        "--profile",
        choices=["classic", "realistic"],
        default="classic",
        help="classic: clean phantoms a per-voxel classifier separates (0.96 mean Dice); realistic: "
        "calibrated against real BraTS cases (patchy enhancement, edema-like non-enhancing tumour, T1c "
        "mimics, bias fields, artefacts, annotator jitter; per-voxel ceiling as on real scans). "
        "Default: classic",
    )
    p.add_argument(
        "--second-lesion-prob",
        type=probability,
        default=0.2,
        help="chance of a satellite lesion (default: 0.2; the realistic profile uses its own 0.35)",
    )
    add_flag(p, "--no-mass-effect", "do not displace the anatomy around the tumor")
    p.add_argument(
        "--challenge",
        choices=list(CONVENTIONS),
        default=DEFAULT_CONVENTION,
        help=f"label convention to write (labels, regions, channels, file names; default: {DEFAULT_CONVENTION})",
    )
    p.add_argument(
        "--fluid-prob",
        type=probability,
        default=0.0,
        help="chance that a lesion has a fluid component: a cyst in pediatric tumors, a resection cavity "
        "beside adult ones (written as the convention's CC or RC label, else as core; default: 0)",
    )
    p.add_argument(
        "-o", dest="output", default=None, help="nnU-Net raw folder to write into (default: $nnUNet_raw)"
    )
    p.add_argument(
        "--brats-layout",
        default=None,
        metavar="DIR",
        help="also write the cases in the challenge's release folder layout into DIR (test cases without "
        "a segmentation)",
    )
    add_workers(p)
    add_flag(
        p,
        "--label-based",
        "write a label-based dataset.json (softmax over background and the labels) instead of the "
        "region-based one (sigmoid regions such as WT/TC/ET, as BraTS scores)",
    )
    add_overwrite(p, "replace an existing dataset folder of the same name")
