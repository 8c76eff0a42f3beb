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
    "crossing), draw the slices of largest extent with colour-coded overlays, and write a draft report "
    "(technique, findings, measurements table, impression, limitations) into OUT_DIR: report.md, "
    "report.json, measurements.json, axial/coronal/sagittal.png. The text comes from an OpenAI-compatible "
    "chat-completions endpoint (key from $OPENAI_API_KEY or --api-key-env, base URL from --base-url or "
    "$OPENAI_BASE_URL, model from --model or $DIFFREFINE_REPORT_MODEL; temperature 0) or, with --offline, "
    "without an endpoint, or when the request fails, from a deterministic template. Every number in the "
    "model's text is checked against the measurements and mismatches are flagged. Only the measurements, "
    "the figures and the case id are sent (default case id: the segmentation's file name without "
    "suffix). Batch mode: --pred-folder PRED --images-folder IMAGES writes OUT_DIR/CASE/ per case."
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
    options = {"offline": args.offline, "overwrite": args.overwrite, "send_images": not args.no_images}
    if batch:
        return _run_batch(args, settings, options)
    for flag, value in (
        ("--images-folder", args.images_folder),
        ("--reference-folder", args.reference_folder),
    ):
        if value is not None:
            raise InputError(f"{flag} belongs to batch mode (--pred-folder); use -i / --reference with -s")

    from nnunet_diffrefine.report.inputs import load_case
    from nnunet_diffrefine.report.pipeline import write_report

    case = load_case(args.segmentation, args.images or (), args.reference, case_id=args.case_id)
    outcome = write_report(case, args.o, settings, **options)
    _say(outcome.folder, outcome.source, outcome.llm_error, outcome.flagged, settings.model)
    return 0


def _say(folder, source: str, llm_error: str | None, flagged: int, model: str) -> None:
    if llm_error:
        print(
            f"nnunet-diffrefine report: warning: {llm_error}; wrote the offline report instead",
            file=sys.stderr,
        )
    how = f"language model {model}" if source == "llm" else "offline template"
    print(f"wrote {folder}/report.md, report.json, measurements.json and figures ({how})")
    if flagged:
        print(f"{flagged} statement(s) flagged: numbers that do not match the measurements (see report.md)")


def _run_batch(args: argparse.Namespace, settings, options: dict) -> int:
    from nnunet_diffrefine.report.batch import report_folder

    if args.images_folder is None:
        raise InputError("batch mode needs --images-folder IMAGES (CASE_0000.nii.gz .. CASE_0003.nii.gz)")
    for flag, value in (("-i", args.images), ("--reference", args.reference), ("--case-id", args.case_id)):
        if value:
            raise InputError(f"{flag} belongs to single-case mode (-s); batch mode finds the files itself")
    results = report_folder(
        args.pred_folder,
        args.images_folder,
        args.o,
        reference_folder=args.reference_folder,
        settings=settings,
        num_processes=args.np,
        **options,
    )
    failed_llm = [r for r in results if r.get("llm_error")]
    flagged = sum(r.get("flagged_statements", 0) for r in results)
    print(f"wrote {len(results)} reports under {args.o} (index: {os.path.join(args.o, 'reports.json')})")
    if failed_llm:
        print(
            f"nnunet-diffrefine report: warning: the LLM request failed for {len(failed_llm)} case(s) "
            f"(first: {failed_llm[0]['llm_error']}); their reports are the offline template",
            file=sys.stderr,
        )
    if flagged:
        print(f"{flagged} statement(s) flagged in total (see each report.md)")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    one = p.add_argument_group("one case")
    one.add_argument(
        "-s", "--segmentation", metavar="SEG", help="predicted label map (0 BG, 1 NC, 2 ED, 3 ET)"
    )
    one.add_argument(
        "-i",
        "--images",
        nargs="+",
        metavar="IMAGE",
        help="CASE_0000 .. CASE_0003 (T1n, T1c, T2w, T2-FLAIR), in order",
    )
    one.add_argument("--reference", metavar="REF", help="reference label map, drawn next to the prediction")
    one.add_argument(
        "--case-id",
        metavar="ID",
        help="id written in the report and sent in the prompt (default: SEG's file name)",
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
        help="request time-out in s (default: 60)",
    )
    retries = "retries on connection errors, 429 and 5xx (default: 2)"
    llm.add_argument("--max-retries", type=non_negative_int, default=2, help=retries)
    add_flag(llm, "--no-images", "send only the measurements (for text-only models)")
