"""``nnunet-diffrefine report``: a radiology-style draft report of a segmented case (or a folder)."""

from __future__ import annotations

import argparse
import os
import sys

from nnunet_diffrefine.cli.arguments import (
    add_flag,
    add_overwrite,
    add_workers,
    non_negative_int,
    positive_float,
)
from nnunet_diffrefine.errors import InputError

SUMMARY = "draft radiology report of a segmented case (LLM or offline template)"
DESCRIPTION = (
    "Measure a BraTS segmentation (NC/ED/ET/TC/WT volumes in cm3 from the voxel spacing, proportions, "
    "lesion count, bidimensional diameters on the axial slice of largest extent, side and midline "
    "crossing; in the label convention the dataset.json given with -djfile, or the prediction folder's, "
    "declares: BraTS 2024 GLI adds RC, PED numbers 1 ET, 2 NETC, 3 CC, 4 ED, MEN-RT has one GTV label and "
    "one T1c image), draw the slices of largest extent with colour-coded overlays, and write a draft report "
    "(technique, findings, measurements table, impression, limitations) into OUT_DIR: report.md, "
    "report.json, measurements.json, axial/coronal/sagittal.png. The text comes from an OpenAI-compatible "
    "chat-completions endpoint (key from $OPENAI_API_KEY or --api-key-env, base URL from --base-url or "
    "$OPENAI_BASE_URL, model from --model or $DIFFREFINE_REPORT_MODEL; temperature 0) or, with --offline, "
    "without an endpoint, or when the request fails, from a deterministic template. Every number and "
    "claim of the model's text (volumes, proportions, diameters, distances, side, midline crossing, "
    "lesion count, which sub-regions are present) is checked against the measured quantity it is stated "
    "for: statements that cannot be verified are flagged, and a reply that contradicts the measurements "
    "is replaced by the template report, the reply attached as a rejected draft (exit code 0, with a "
    "warning). Only the measurements, the figures and a pseudonym of the case id are sent (--send-case-id "
    "sends the case id itself: the segmentation's file name without suffix, or --case-id). --timeout "
    "bounds the whole wait for the endpoint, retries included. Batch mode: --pred-folder PRED "
    "--images-folder IMAGES writes OUT_DIR/CASE/ per case."
)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.report.llm import settings_from

    single, batch = args.segmentation is not None, args.pred_folder is not None
    if single == batch:
        raise InputError(
            "give either -s SEG (one case) or --pred-folder PRED with --images-folder IMAGES (batch)"
        )
    settings = settings_from(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
    )
    options = {
        "offline": args.offline,
        "overwrite": args.overwrite,
        "send_images": not args.no_images,
        "send_case_id": args.send_case_id,
    }
    if batch:
        return _run_batch(args, settings, options)
    for flag, value in (
        ("--images-folder", args.images_folder),
        ("--reference-folder", args.reference_folder),
    ):
        if value is not None:
            raise InputError(f"{flag} belongs to batch mode (--pred-folder); use -i / --reference with -s")

    from nnunet_diffrefine.report.inputs import load_case, report_convention
    from nnunet_diffrefine.report.pipeline import write_report

    channels, convention = None, report_convention(None)
    if args.djfile:
        from nnunet_diffrefine.evaluation.folder import load_dataset_json

        dataset = load_dataset_json(args.djfile)
        convention = report_convention(dataset)
        channels = dataset.get("channel_names")
    case = load_case(
        args.segmentation,
        args.images or (),
        args.reference,
        case_id=args.case_id,
        channel_names=channels,
        any_order=args.any_image_order,
        convention=convention,
    )
    outcome = write_report(case, args.o, settings, progress=_progress, **options)
    _say(outcome, settings.model)
    return 0


def _progress(line: str) -> None:
    print(f"nnunet-diffrefine report: {line}", file=sys.stderr, flush=True)


def _say(outcome, model: str) -> None:
    if outcome.llm_error:
        print(
            f"nnunet-diffrefine report: warning: {outcome.llm_error}; wrote the offline report instead",
            file=sys.stderr,
        )
    if outcome.contradicted:
        print(
            f"nnunet-diffrefine report: warning: the reply of {model} contradicts the measurements in "
            f"{outcome.contradicted} statement(s); wrote the offline report, with the reply attached as a "
            "rejected draft listing them (see report.md)",
            file=sys.stderr,
        )
    how = f"language model {model}" if outcome.source == "llm" else "offline template"
    print(f"wrote {outcome.folder}/report.md, report.json, measurements.json and figures ({how})")
    if outcome.flagged:
        print(f"{outcome.flagged} statement(s) flagged: they could not be verified (see report.md)")


def _run_batch(args: argparse.Namespace, settings, options: dict) -> int:
    from nnunet_diffrefine.report.batch import report_folder

    if args.images_folder is None:
        raise InputError("batch mode needs --images-folder IMAGES (CASE_0000.nii.gz .. CASE_0003.nii.gz)")
    for flag, value in (("-i", args.images), ("--reference", args.reference), ("--case-id", args.case_id)):
        if value:
            raise InputError(f"{flag} belongs to single-case mode (-s); batch mode finds the files itself")
    from nnunet_diffrefine.evaluation.folder import load_dataset_json
    from nnunet_diffrefine.report.inputs import report_convention

    convention = report_convention(None)
    for dataset_json in (args.djfile, os.path.join(args.pred_folder, "dataset.json")):  # nnU-Net writes one
        if dataset_json and os.path.isfile(dataset_json):
            convention = report_convention(load_dataset_json(dataset_json))
            break
    results = report_folder(
        args.pred_folder,
        args.images_folder,
        args.o,
        reference_folder=args.reference_folder,
        settings=settings,
        num_processes=args.np,
        convention=convention,
        **options,
    )
    failed_llm = [r for r in results if r.get("llm_error")]
    rejected = [r for r in results if r.get("contradicted_statements")]
    flagged = sum(r.get("flagged_statements", 0) for r in results)
    print(f"wrote {len(results)} reports under {args.o} (index: {os.path.join(args.o, 'reports.json')})")
    if failed_llm:
        print(
            f"nnunet-diffrefine report: warning: the LLM request failed for {len(failed_llm)} case(s) "
            f"(first: {failed_llm[0]['llm_error']}); their reports are the offline template",
            file=sys.stderr,
        )
    if rejected:
        print(
            f"nnunet-diffrefine report: warning: the LLM reply contradicted the measurements for "
            f"{len(rejected)} case(s) (first: {rejected[0]['case_id']}); their reports are the offline "
            "template with the reply attached as a rejected draft",
            file=sys.stderr,
        )
    if flagged:
        print(f"{flagged} statement(s) flagged in total: they could not be verified (see each report.md)")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    one = p.add_argument_group("one case")
    one.add_argument(
        "-s",
        "--segmentation",
        metavar="SEG",
        help="predicted label map (BraTS 2023: 0 BG, 1 NC, 2 ED, 3 ET; others: see -djfile)",
    )
    one.add_argument(
        "-i",
        "--images",
        nargs="+",
        metavar="IMAGE",
        help="CASE_0000 .. CASE_0003 (T1n, T1c, T2w, T2-FLAIR; MEN-RT: CASE_0000 T1c), in order",
    )
    one.add_argument(
        "-djfile",
        metavar="DATASET_JSON",
        help="dataset.json of the case: its label convention (brats_convention, default BraTS 2023) names "
        "the labels; its channel_names must be the convention's (T1n, T1c, T2w, T2-FLAIR) in this order",
    )
    add_flag(
        one,
        "--any-image-order",
        "accept images whose names (_000N, -t1n/-t1c/-t2w/-t2f) contradict the order T1n, T1c, T2w, T2-FLAIR",
    )
    one.add_argument("--reference", metavar="REF", help="reference label map, drawn next to the prediction")
    one.add_argument(
        "--case-id",
        metavar="ID",
        help="id written in the report (default: SEG's file name); the endpoint gets a pseudonym of it",
    )
    many = p.add_argument_group("batch")
    many.add_argument("--pred-folder", metavar="PRED", help="folder of CASE.nii.gz predictions")
    many.add_argument(
        "--images-folder", metavar="IMAGES", help="folder of CASE_0000.nii.gz .. CASE_0003.nii.gz"
    )
    many.add_argument("--reference-folder", metavar="LABELS", help="folder of CASE.nii.gz references")
    add_workers(many, 1, "worker processes, each case running its own request")
    p.add_argument(
        "-o", required=True, metavar="OUT_DIR", help="report folder (batch: one sub-folder per case)"
    )
    add_overwrite(p, "replace an existing report")
    llm = p.add_argument_group("language model")
    add_flag(llm, "--offline", "no request: the deterministic template report")
    llm.add_argument("--model", help="model name (default: $DIFFREFINE_REPORT_MODEL, else gpt-4o)")
    llm.add_argument(
        "--base-url",
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL)",
    )
    llm.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default: OPENAI_API_KEY); keys are never flags",
    )
    llm.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="the longest wait in s for the endpoint, all attempts together (default: 60)",
    )
    retries = "retries on connection errors, 429 and 5xx (default: 2)"
    llm.add_argument("--max-retries", type=non_negative_int, default=2, help=retries)
    add_flag(llm, "--no-images", "send only the measurements (for text-only models)")
    add_flag(
        llm,
        "--send-case-id",
        "send the case id itself (default: a pseudonym, stable per case, not derived from the file name)",
    )
