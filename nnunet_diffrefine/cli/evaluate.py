"""``nnunet-diffrefine evaluate``: BraTS metrics of a prediction folder, in nnU-Net's summary.json layout."""

from __future__ import annotations

import argparse
import math
import os

from nnunet_diffrefine.cli.arguments import (
    add_overwrite,
    add_protocol,
    add_workers,
    non_negative_float,
    non_negative_int,
)
from nnunet_diffrefine.errors import InputError

SUMMARY = "BraTS metrics of a prediction folder (Dice, HD95, sensitivity, precision, volumes, lesion-wise)"
DESCRIPTION = (
    "Score every reference file of GT_FOLDER against the file of the same name in PRED_FOLDER "
    "(arguments as nnUNetv2_evaluate_folder): per region (WT/TC/ET, or the challenge's regions) for "
    "region-based dataset.json files, "
    "else per label. Metrics per case and region: nnU-Net's Dice, IoU, TP, FP, FN, TN, n_pred, n_ref, plus "
    "HD95 in mm exactly as the BraTS scorer (DeepMind's area-weighted surfel definition, image spacing), "
    "NSD at the official scorer's lesion-wise tolerance (the smallest voxel spacing), "
    "sensitivity, precision, predicted and reference volumes in cm3, and the BraTS 2023 lesion-wise Dice "
    "and HD95 with the number of lesions and of false-positive components. Writes summary.json in "
    "nnU-Net's layout (its readers accept it) and summary.csv next to it. A missing prediction is scored "
    "as empty and listed; differing geometry or unknown labels are errors."
)

_EMPTY_HELP = (
    "how empty masks are scored. brats (default, as the BraTS scorer): both empty -> Dice 1 and HD95 0, "
    "one empty -> Dice 0 and HD95 = --hd95-penalty; the same for the lesion-wise scores. nan (nnU-Net): "
    "Dice NaN when both are empty, HD95 NaN when either is empty; means ignore NaNs"
)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.evaluation.folder import (
        dataset_lesion_params,
        dataset_regions,
        evaluate_folder,
        load_dataset_json,
    )
    from nnunet_diffrefine.evaluation.lesionwise import LesionWiseParams
    from nnunet_diffrefine.utils.io import OutputExistsError

    dataset = load_dataset_json(args.djfile)
    output = args.o or os.path.join(args.pred_folder, "summary.json")
    table = os.path.splitext(output)[0] + ".csv"
    existing = [f for f in (output, table) if os.path.exists(f)]
    if existing and not args.overwrite:
        raise OutputExistsError(f"{existing[0]} exists; pass --overwrite to replace it, or another -o")
    if args.protocol == "brats-official":
        return _run_official(args, dataset, output)
    if args.official_config is not None:
        raise InputError("--official-config belongs to --protocol brats-official")
    defaults = dataset_lesion_params(dataset)
    params = LesionWiseParams(
        dilation=defaults.dilation if args.lesion_dilation is None else args.lesion_dilation,
        connectivity=args.lesion_connectivity,
        min_volume_mm3=defaults.min_volume_mm3 if args.lesion_min_volume is None else args.lesion_min_volume,
    )
    summary = evaluate_folder(
        args.gt_folder,
        args.pred_folder,
        dataset,
        output_file=args.o,
        num_processes=args.np,
        empty_convention=args.empty_convention,
        lesion_params=params,
        hd95_penalty=args.hd95_penalty,
    )
    _, names, _ = dataset_regions(dataset)
    print(f"{len(summary['metric_per_case'])} cases; wrote {output} and {table}")
    print(f"{'region':<12} {'Dice':>8} {'HD95':>8} {'LW Dice':>8} {'LW HD95':>8}")
    for region, means in summary["mean"].items():
        print(
            f"{names[region]:<12} {_fmt(means['Dice']):>8} {_fmt(means['HD95']):>8} "
            f"{_fmt(means['LesionWise_Dice']):>8} {_fmt(means['LesionWise_HD95']):>8}"
        )
    return 0


def _run_official(args: argparse.Namespace, dataset: dict, output: str) -> int:
    from nnunet_diffrefine.evaluation.folder import evaluate_folder_official

    given = [
        flag
        for flag, value, default in (
            ("--lesion-dilation", args.lesion_dilation, None),
            ("--lesion-min-volume", args.lesion_min_volume, None),
            ("--lesion-connectivity", args.lesion_connectivity, 18),
            ("--hd95-penalty", args.hd95_penalty, 374.0),
            ("--empty-convention", args.empty_convention, "brats"),
        )
        if value != default
    ]
    if given:
        raise InputError(
            f"{', '.join(given)}: setting(s) of --protocol brats-2023; the official protocol has fixed rules"
        )
    summary = evaluate_folder_official(
        args.gt_folder, args.pred_folder, dataset, output, args.official_config, num_processes=args.np
    )
    print(
        f"{len(summary['metric_per_case'])} cases (official protocol, configuration "
        f"{summary['official_config']}); wrote {output} and {os.path.splitext(output)[0]}.csv"
    )
    shown = ("global_dsc", "global_nsd", "global_hd95", "lesionwise_dsc_mean", "lesionwise_hd95_mean")
    print(f"{'group':<8} " + " ".join(f"{c:>20}" for c in shown))
    for group, means in summary["mean"].items():
        print(f"{group:<8} " + " ".join(f"{_fmt(means[c]):>20}" for c in shown))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("gt_folder", metavar="GT_FOLDER", help="folder with the reference label files")
    p.add_argument("pred_folder", metavar="PRED_FOLDER", help="folder with the predicted label files")
    p.add_argument(
        "-djfile", required=True, metavar="DATASET_JSON", help="dataset.json (labels, regions, file_ending)"
    )
    p.add_argument(
        "-o", default=None, metavar="SUMMARY_JSON", help="output file (default: PRED_FOLDER/summary.json)"
    )
    add_workers(p)
    add_overwrite(p, "replace an existing summary (and its CSV)")
    add_protocol(
        p,
        "brats-2023 (default): nnU-Net's metrics, HD95 and the BraTS 2023 lesion-wise scores; "
        "brats-official: the current official scorer (BraTS-evaluation: panoptica's matched-lesion DSC, "
        "NSD and HD95 per label group; needs panoptica)",
    )
    p.add_argument("--empty-convention", choices=("brats", "nan"), default="brats", help=_EMPTY_HELP)
    p.add_argument(
        "--lesion-dilation",
        type=non_negative_int,
        default=None,
        metavar="VOXELS",
        help="dilation (voxels) that merges nearby reference pieces into one lesion and defines the region "
        "in which predicted components match it (default: the challenge's, from dataset.json "
        "brats_convention: 3 for GLI, SSA, PED, 1 for MEN and MET; else 3)",
    )
    p.add_argument(
        "--lesion-connectivity",
        type=int,
        choices=(6, 18, 26),
        default=18,
        help="neighbourhood of the dilation's structuring element (default: 18, as the BraTS scorer)",
    )
    p.add_argument(
        "--lesion-min-volume",
        type=non_negative_float,
        default=None,
        metavar="MM3",
        help="reference lesions of at most this volume in mm3 are left out of the lesion-wise scores "
        "(default: the challenge's: 50, 2 for MET; else 50)",
    )
    p.add_argument(
        "--hd95-penalty",
        type=non_negative_float,
        default=374.0,
        metavar="MM",
        help="HD95 in mm for an empty mask against a non-empty one, a missed lesion or a false-positive "
        "component under the brats convention (default: 374)",
    )
