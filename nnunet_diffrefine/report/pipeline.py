"""One case -> one report folder: measurements, figures, text (LLM or template), guard, files.

A model reply with a statement that contradicts the measurements (:mod:`.guard`) is not the report's
text: the template is written instead, with the reply attached as a *rejected draft* listing each
contradiction (report.md, and ``rejected_draft`` in report.json; ``source.reason`` says why). A reply
with none is the text, its unverifiable statements marked; every statement checked is listed with its
status (verified, unverifiable, contradicted).

The folder holds ``report.md``, ``report.json``, ``measurements.json`` and ``axial.png``,
``coronal.png``, ``sagittal.png``. It is written under a temporary name and renamed when complete;
an existing folder is replaced only with ``overwrite``, and never when it holds anything but a report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_diffrefine.report.facts import report_facts
from nnunet_diffrefine.report.figures import render_figures
from nnunet_diffrefine.report.guard import Flag, contradictions, flagged, review_sections
from nnunet_diffrefine.report.inputs import CaseInputs
from nnunet_diffrefine.report.llm import LLMFailure, LLMSettings, complete
from nnunet_diffrefine.report.measurements import measure
from nnunet_diffrefine.report.offline import LLM_LIMITATIONS, offline_sections, standard_limitations
from nnunet_diffrefine.report.privacy import pseudonym
from nnunet_diffrefine.report.prompt import SECTIONS, ReplyFormatError, build_messages, parse_reply
from nnunet_diffrefine.report.render import LLM_CONTRADICTED, report_dict, write_report_files
from nnunet_diffrefine.report.vocabulary import vocabulary_of
from nnunet_diffrefine.utils.io import OutputExistsError, atomic_output_dir, write_json

REPORT_FILES: tuple[str, ...] = ("report.md", "report.json", "measurements.json")

OFFLINE_REQUESTED = "--offline given"
NOT_CONFIGURED = "no LLM endpoint configured: no base URL and no API key"
LLM_FAILED = "the LLM request failed"


@dataclass(frozen=True)
class ReportOutcome:
    """What was written: the folder, the path that wrote the text, the LLM error, the number of
    statements flagged in the written text and of contradicted ones in a rejected reply."""

    folder: Path
    source: str
    llm_error: str | None
    flagged: int
    contradicted: int = 0
    """Contradicted statements of the model's reply (> 0: it was rejected, the template written)."""
    verified: int = 0
    """Verified statements of the model's reply."""


def check_output_folder(folder: str | os.PathLike, overwrite: bool) -> bool:
    """Whether ``folder`` exists (and may be replaced); :class:`OutputExistsError` if it may not."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise OutputExistsError(f"{folder} exists and is not a folder")
    contents = list(folder.iterdir())
    if not contents:
        return True
    if not (folder / "report.json").is_file():
        raise OutputExistsError(f"{folder} exists and holds files that are not a report; choose another -o")
    if not overwrite:
        raise OutputExistsError(
            f"{folder} already holds a report; refusing to overwrite it (pass --overwrite)"
        )
    return True


def _llm_sections(
    settings: LLMSettings,
    measurements: dict[str, Any],
    figures: list[dict[str, Any]],
    folder: Path,
    send_images: bool,
    case_id_sent: str,
    progress: Callable[[str], None] | None,
) -> tuple[dict[str, str], list[str]]:
    """Sections from the model (missing ones from the template) and the names taken from the template."""
    pictures = (
        [
            (f"{f['plane']} slice {f['file_index']} of largest tumor extent", folder / f["file"])
            for f in figures
        ]
        if send_images
        else []
    )
    facts = {**report_facts(measurements), "case_id": case_id_sent}
    messages = build_messages(facts, pictures, vocabulary_of(measurements))
    reply = complete(settings, messages, progress=progress)
    sections = parse_reply(reply)
    template = offline_sections(measurements)
    missing = [name for name in SECTIONS if name not in sections]
    return {name: sections.get(name, template[name]) for name in SECTIONS}, missing


def write_report(
    case: CaseInputs,
    folder: str | os.PathLike,
    settings: LLMSettings | None = None,
    offline: bool = False,
    overwrite: bool = False,
    send_images: bool = True,
    send_case_id: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ReportOutcome:
    """Measure ``case``, draw the figures, write the text (the LLM when ``settings`` is configured and
    not ``offline``, else the template; the template as well when the LLM fails or its reply
    contradicts the measurements, the reply then kept as a rejected draft) and save the folder.
    The endpoint gets a pseudonym of the case id (:mod:`.privacy`) unless ``send_case_id``;
    ``progress`` receives a line now and then while waiting for it."""
    folder = Path(folder)
    exists = check_output_folder(folder, overwrite)
    measurements = measure(case)
    with atomic_output_dir(folder, overwrite=exists) as tmp:
        figures = render_figures(case, measurements, tmp)
        write_json(measurements, tmp / "measurements.json")
        llm_error: str | None = None
        flags: list[Flag] = []
        statements: list[Flag] = []
        rejected: dict[str, Any] | None = None
        source: dict[str, Any]
        if offline or settings is None or not settings.configured:
            sections = offline_sections(measurements)
            source = {"path": "offline", "reason": OFFLINE_REQUESTED if offline else NOT_CONFIGURED}
        else:
            sent, stable = (case.case_id, True) if send_case_id else pseudonym(case.case_id)
            asked = {"model": settings.model, "images_sent": bool(send_images), "case_id_sent": sent}
            if not stable:
                asked["case_id_sent_stable"] = False
            try:
                sections, missing = _llm_sections(
                    settings, measurements, figures, tmp, send_images, sent, progress
                )
            except (LLMFailure, ReplyFormatError) as e:
                llm_error = str(e)
                sections = offline_sections(measurements)
                source = {"path": "offline", "reason": LLM_FAILED, **asked}
            else:
                from_model = {name: text for name, text in sections.items() if name not in missing}
                statements = review_sections(from_model, measurements)
                flags = flagged(statements)
                if contradictions(flags):
                    rejected = {"sections": from_model, "statements": statements}
                    flags, sections = [], offline_sections(measurements)
                    source = {"path": "offline", "reason": LLM_CONTRADICTED, **asked}
                else:
                    note = LLM_LIMITATIONS.format(
                        model=settings.model, images=" and figures" if send_images else ""
                    )
                    sections["limitations"] = (
                        sections["limitations"].rstrip()
                        + "\n\n"
                        + standard_limitations(measurements)
                        + " "
                        + note
                    )
                    source = {"path": "llm", **asked, "sections_from_template": missing}
        checked = statements if rejected is None else []
        report = report_dict(measurements, sections, source, llm_error, flags, figures, rejected, checked)
        write_report_files(tmp, report, flags, model_text=source["path"] == "llm", rejected=rejected)
    contradicted = len(contradictions(rejected["statements"])) if rejected else 0
    verified = sum(f.status == "verified" for f in statements)
    return ReportOutcome(folder, source["path"], llm_error, len(flags), contradicted, verified)
