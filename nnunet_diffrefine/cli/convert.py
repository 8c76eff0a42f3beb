"""``nnunet-diffrefine convert``: a BraTS release folder (2021, 2023, 2024) -> an nnU-Net v2 raw dataset."""

from __future__ import annotations

import argparse
import json

from nnunet_diffrefine.cli.arguments import (
    add_flag,
    add_overwrite,
    dataset_id,
    dataset_name,
    non_negative_float,
    positive_int,
)
from nnunet_diffrefine.data.challenges import CHALLENGE_CHOICES
from nnunet_diffrefine.data.convert import LAYOUTS, REPORT_FILE, convert_brats

SUMMARY = "convert a BraTS folder (2021, 2023, 2024) into an nnU-Net raw dataset"
DESCRIPTION = (
    "Convert a BraTS 2023/2024 (CASE-t1n/-t1c/-t2w/-t2f[-seg].nii.gz), BraTS 2021 "
    "(CASE_t1/_t1ce/_t2/_flair[_seg].nii.gz) or MEN-RT (CASE_t1c[_gtv].nii.gz) folder into "
    "RAW_ROOT/DatasetXXX_NAME with imagesTr, labelsTr, imagesTs (cases without segmentation), the "
    "challenge's region-based dataset.json and conversion_report.json. The label convention (labels, "
    "regions, lesion-wise parameters) is the --challenge one, or detected from the file names, case ids "
    "and labels (refused where they do not decide, e.g. label 4 without a BraTS-GLI/-MET/-PED case id); "
    "BraTS 2021 label 4 becomes 3. Every case is validated (files present and readable, 3D, same "
    "geometry, labels of the convention); invalid cases are skipped with a reason, or make the command "
    "fail with --strict. The source folder is only read."
)


def run(args: argparse.Namespace) -> int:
    options = (
        "dataset_id",
        "name",
        "layout",
        "strict",
        "hardlink",
        "tolerance",
        "num_processes",
        "overwrite",
        "label_based",
        "challenge",
    )
    from nnunet_diffrefine.environment import nnunet_folders

    folder = convert_brats(
        source=args.input,
        raw_root=args.output or nnunet_folders().raw,
        **{key: getattr(args, key) for key in options},
    )
    with open(folder / REPORT_FILE) as f:
        report = json.load(f)
    print(
        f"{folder}: {report['num_train']} training cases, {report['num_test']} test cases, "
        f"{report['num_skipped']} skipped ({report['challenge']}, {report['layout']} file names)"
    )
    for skipped in report["skipped"]:
        print(f"  skipped {skipped['reason']}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--input", required=True, metavar="SOURCE_FOLDER", help="BraTS folder, one sub-folder per case"
    )
    p.add_argument(
        "-d",
        "--dataset-id",
        required=True,
        type=dataset_id,
        metavar="DATASET_ID",
        help="nnU-Net dataset id (1-999)",
    )
    p.add_argument(
        "-n",
        "--name",
        required=True,
        type=dataset_name,
        help="dataset name, e.g. BraTS2023GLI (letters, digits, '_', '-')",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="RAW_ROOT",
        help="nnU-Net raw folder to create DatasetXXX_NAME in (default: $nnUNet_raw)",
    )
    p.add_argument(
        "--layout",
        choices=("auto", *LAYOUTS),
        default="auto",
        help="source naming; auto detects it from the file names (default: auto)",
    )
    p.add_argument(
        "--challenge",
        choices=CHALLENGE_CHOICES,
        default="auto",
        help="label convention of the source (see the README's table); auto detects it where the file "
        "names, case ids and labels decide (default: auto)",
    )
    add_flag(p, "--strict", "fail, writing nothing, if any case is invalid")
    add_flag(
        p,
        "--hardlink",
        "hard-link .nii.gz files instead of copying them (copies, with a warning, across file systems)",
    )
    p.add_argument(
        "--tolerance",
        type=non_negative_float,
        default=1e-3,
        help="geometry tolerance: relative on spacing, absolute on direction cosines, in voxels on the "
        "origin (default: 1e-3)",
    )
    p.add_argument(
        "-np",
        "--num-processes",
        type=positive_int,
        default=1,
        help="worker processes for validating the cases (default: 1)",
    )
    add_flag(
        p,
        "--label-based",
        "write a label-based dataset.json (softmax over background and the challenge's labels) instead "
        "of the region-based one (sigmoid regions such as WT/TC/ET, as BraTS scores)",
    )
    add_overwrite(p, "replace an existing dataset folder")
