"""report.json and report.md: the sections, our measurements table, flags, figures and provenance.

Both files open with :data:`BANNER` and say which path wrote the text (``source``: ``llm`` with the
model name, or ``offline`` with the reason) and, if the LLM failed, why (``llm_error``). The
measurements table is always built from the measurements, never from the model's text. Flagged
sentences get a :data:`FLAG_MARK` in report.md and are listed in a *Flagged statements* section;
every statement checked in the model's text is listed with its status (*verified*, *unverifiable*,
*contradicted*: ``checked_statements`` and ``statement_counts`` in report.json, a *Statement check*
section in report.md). A rejected reply (it contradicted the measurements) is attached after them as
a *Rejected draft* quoting the model's sections, with each statement listed by status
(``rejected_draft`` in report.json).
Nothing time- or machine-dependent is written, so the same inputs give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnunet_diffrefine.report.facts import cm3, measurement_rows
from nnunet_diffrefine.report.guard import CONTRADICTED, STATUSES, UNVERIFIABLE, VERIFIED, Flag
from nnunet_diffrefine.report.prompt import SECTIONS
from nnunet_diffrefine.report.vocabulary import vocabulary_of
from nnunet_diffrefine.utils.io import atomic_output_file, write_json

LLM_CONTRADICTED = "the LLM reply contradicted the measurements"

BANNER = (
    "AI-generated draft for review by a radiologist. Not a diagnosis: every statement must be checked "
    "against the images before use."
)
FLAG_MARK = "⚠"
STATUS_MARKS = {VERIFIED: "✓", UNVERIFIABLE: FLAG_MARK, CONTRADICTED: "✗"}
REPORT_FORMAT = "nnunet-diffrefine report 1"


def reference_rows(measurements: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(sub-region, predicted cm³, reference cm³, Dice)`` rows when a reference was given."""
    ref = measurements.get("reference")
    if ref is None:
        return []
    return [
        (
            name,
            cm3(measurements["volumes_cm3"][name]),
            cm3(ref["volumes_cm3"][name]),
            f"{ref['dice'][name]:.3f}",
        )
        for name in vocabulary_of(measurements).subregions
    ]


def report_dict(
    measurements: dict[str, Any],
    sections: dict[str, str],
    source: dict[str, Any],
    llm_error: str | None,
    flags: list[Flag],
    figures: list[dict[str, Any]],
    rejected: dict[str, Any] | None = None,
    checked: Sequence[Flag] = (),
) -> dict[str, Any]:
    """The content of report.json (``rejected``: the model's sections and statements when its reply
    was rejected for contradicting the measurements; ``checked``: every statement checked in the
    text used, when it came from the model)."""
    out: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "banner": BANNER,
        "case_id": measurements["case_id"],
        "source": source,
        "llm_error": llm_error,
        "sections": {name: sections[name] for name in SECTIONS},
        "measurements_table": [
            {"quantity": q, "value": v, "unit": u} for q, v, u in measurement_rows(measurements)
        ],
        "flagged_statements": [flag.to_json() for flag in flags],
        "checked_statements": [f.to_json() for f in checked],
        "statement_counts": statement_counts(checked),
        "rejected_draft": None if rejected is None else _draft(source, rejected),
        "figures": figures,
        "measurements_file": "measurements.json",
    }
    rows = reference_rows(measurements)
    if rows:
        words = vocabulary_of(measurements)
        out["reference_comparison"] = [
            {"subregion": n, "name": words.definition(n), "predicted_cm3": p, "reference_cm3": r, "dice": d}
            for n, p, r, d in rows
        ]
    return out


def statement_counts(statements: Sequence[Flag]) -> dict[str, int]:
    """How many statements have each status (:data:`~.guard.STATUSES`)."""
    return {status: sum(f.status == status for f in statements) for status in STATUSES}


def _draft(source: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    statements = rejected["statements"]
    return {
        "model": source.get("model"),
        "sections": dict(rejected["sections"]),
        "contradicted_statements": [f.to_json() for f in statements if f.status == CONTRADICTED],
        "unverifiable_statements": [f.to_json() for f in statements if f.status == UNVERIFIABLE],
        "checked_statements": [f.to_json() for f in statements],
        "statement_counts": statement_counts(statements),
    }


def _neutralise(text: str) -> str:
    """Model text without HTML and remote images (a rendered report must not fetch anything)."""
    return text.replace("<", "&lt;").replace("![", "!\\[")


def _mark(text: str, flags: list[Flag]) -> str:
    for end in sorted({f.end for f in flags}, reverse=True):
        text = text[:end] + f" {FLAG_MARK}" + text[end:]
    return text


def _paragraphs(text: str) -> str:
    """Lines as markdown paragraphs; consecutive list items stay one list."""
    out, previous_item = "", False
    for line in (line.rstrip() for line in text.strip().splitlines()):
        if not line:
            continue
        is_item = bool(re.match(r"\s*(?:[-*+]|\d+[.)])\s", line))
        if out:
            out += "\n" if is_item and previous_item else "\n\n"
        out, previous_item = out + line, is_item
    return out


def _source_line(source: dict[str, Any], llm_error: str | None) -> str:
    if source["path"] == "llm":
        line = f"Written by the language model `{source['model']}` from the measurements"
        line += " and figures." if source.get("images_sent") else "."
        if source.get("sections_from_template"):
            line += (
                " Sections missing from its reply, taken from the template: "
                + ", ".join(source["sections_from_template"])
                + "."
            )
        return line
    line = f"Written from the offline template ({source['reason']})."
    if source["reason"] == LLM_CONTRADICTED:
        line += f" The reply of `{source['model']}` is attached below as a rejected draft."
    if llm_error:
        line += f" LLM error: {llm_error}"
    return line


def _flag_lines(flags: Sequence[Flag]) -> list[str]:
    lines = []
    for i, flag in enumerate(flags, 1):
        sentence = _neutralise(flag.sentence).replace("|", "\\|")
        statement = _neutralise(flag.statement).replace("`", "'")
        lines.append(f'{i}. {FLAG_MARK} {flag.section}: "{sentence}": `{statement}` {flag.reason}')
    return lines + [""]


def _status_lines(statements: Sequence[Flag]) -> list[str]:
    """``1. verified: findings: `23.7 cm³` agrees with ...`` per statement."""
    lines = []
    for i, f in enumerate(statements, 1):
        statement = _neutralise(f.statement).replace("`", "'")
        lines.append(f"{i}. {STATUS_MARKS[f.status]} {f.status}: {f.section}: `{statement}` {f.reason}")
    return lines + [""]


def _check_lines(statements: Sequence[Flag]) -> list[str]:
    counts = statement_counts(statements)
    summary = ", ".join(f"{counts[status]} {status}" for status in STATUSES)
    return [
        "## Statement check",
        "",
        f"Every number and claim of the model's text, checked against the measurements: {summary}.",
        "",
        *_status_lines(statements),
    ]


def _rejected_lines(draft: dict[str, Any], flags: Sequence[Flag]) -> list[str]:
    bad = [f for f in flags if f.status == CONTRADICTED]
    lines = [
        "## Rejected draft",
        "",
        f"The reply of the language model `{draft['model']}` contradicted the measurements in {len(bad)} "
        "statement(s), so it is not the text of this report (that comes from the template above). It is "
        "kept here for review only.",
        "",
        "Contradicted statements:",
        "",
        *_flag_lines(bad),
    ]
    others = [f for f in flags if f.status == UNVERIFIABLE]
    if others:
        lines += ["Statements that could not be verified:", "", *_flag_lines(others)]
    verified = [f for f in flags if f.status == VERIFIED]
    if verified:
        lines += ["Verified statements:", "", *_status_lines(verified)]
    for name, text in draft["sections"].items():
        shown = [f for f in flags if f.section == name and f.status != VERIFIED]
        marked = _paragraphs(_neutralise(_mark(text, shown)))
        lines += [f"> **{name.capitalize()} (rejected draft)**", ">"]
        lines += [f"> {line}" if line else ">" for line in marked.splitlines()]
        lines.append("")
    return lines


def report_markdown(
    report: dict[str, Any], flags: list[Flag], model_text: bool, rejected_flags: Sequence[Flag] = ()
) -> str:
    """report.md from :func:`report_dict`'s output (``model_text``: whether the sections came from a
    model; ``rejected_flags``: the flags of a rejected draft)."""
    sections = dict(report["sections"])
    for name in SECTIONS:
        text = _mark(sections[name], [f for f in flags if f.section == name])
        sections[name] = _paragraphs(_neutralise(text) if model_text else text)
    lines = [
        f"# Brain tumor MRI report (draft): {report['case_id']}",
        "",
        f"> **{FLAG_MARK} {report['banner']}**",
        ">",
        f"> {_source_line(report['source'], report['llm_error'])}",
        "",
        "## Technique",
        "",
        sections["technique"],
        "",
        "## Findings",
        "",
        sections["findings"],
        "",
        "## Measurements",
        "",
        "From the segmentation (not from the text above).",
        "",
        "| Quantity | Value | Unit |",
        "|---|---:|---|",
    ]
    lines += [
        f"| {row['quantity']} | {row['value']} | {row['unit']} |" for row in report["measurements_table"]
    ]
    if "reference_comparison" in report:
        lines += [
            "",
            "Against the reference segmentation:",
            "",
            "| Sub-region | Predicted cm³ | Reference cm³ | Dice |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r['name']} | {r['predicted_cm3']} | {r['reference_cm3']} | {r['dice']} |"
            for r in report["reference_comparison"]
        ]
    lines += [
        "",
        "## Impression",
        "",
        sections["impression"],
        "",
        "## Limitations",
        "",
        sections["limitations"],
        "",
    ]
    if flags:
        lines += ["## Flagged statements", "", "Statements in the text that could not be verified:", ""]
        lines += _flag_lines(flags)
    if report.get("checked_statements"):
        lines += _check_lines([_flag_of(f) for f in report["checked_statements"]])
    if report.get("rejected_draft"):
        lines += _rejected_lines(report["rejected_draft"], rejected_flags)
    lines += ["## Figures", ""]
    for figure in report["figures"]:
        lines += [f"![{figure['plane']} slice {figure['file_index']}]({figure['file']})", ""]
    return "\n".join(lines)


def _flag_of(data: dict[str, Any]) -> Flag:
    return Flag(**data, start=0, end=0)


def write_report_files(
    folder: Path,
    report: dict[str, Any],
    flags: list[Flag],
    model_text: bool,
    rejected: dict[str, Any] | None = None,
) -> None:
    """Write ``report.json`` and ``report.md`` into ``folder`` (each atomically)."""
    write_json(report, folder / "report.json")
    rejected_flags = rejected["statements"] if rejected else []
    with atomic_output_file(folder / "report.md") as tmp:
        tmp.write_text(report_markdown(report, flags, model_text, rejected_flags), encoding="utf-8")
