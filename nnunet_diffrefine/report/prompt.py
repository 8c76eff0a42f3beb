"""The structured prompt for a multimodal LLM and the parser of its reply.

The prompt holds only :func:`.facts.report_facts` (measured values and the case id, which the pipeline
replaces by a pseudonym unless asked to send it) and, for
multimodal models, the figures as base64 PNG data URLs; nothing from file names or image headers.
The model is asked for a JSON object with the string fields of :data:`SECTIONS`; :func:`parse_reply`
also accepts that object inside a code fence or surrounding prose, and markdown with one heading per
section (``## Findings`` or ``**Findings:**``).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from nnunet_diffrefine.data.challenges import DEFAULT_CONVENTION
from nnunet_diffrefine.report.vocabulary import Vocabulary, vocabulary

SECTIONS: tuple[str, ...] = ("technique", "findings", "impression", "limitations")

_SYSTEM_PROMPT = """\
You are a neuroradiology assistant drafting a structured report of a brain tumor MRI study from an \
automatic segmentation. The draft will be reviewed by a radiologist.
Rules:
- Use only the measurements given in the JSON below. Do not compute, estimate or invent other \
numbers; quote numbers exactly as given, with their units (cm³ for volumes, mm for lengths, % for \
proportions), each next to the name of its quantity and sub-region (for example "{example_volume}", \
{example_proportion}"longest diameter 45.2 mm"). Every number and claim is \
checked; a reply that contradicts the measurements is discarded.
- Sub-regions{labels}: {subregions}. Side is the patient's side.
- The figures, if attached, show {images} slices with overlays ({colours}) in radiological convention \
(patient's right on image left). Describe only what the \
measurements and figures support; do not give a diagnosis, grade or molecular status and do not \
mention findings outside the segmentation.
- Do not include patient identifiers or dates.
Answer with only a JSON object with exactly these string fields: "technique" (sequences and method), \
"findings", "impression" (one to three sentences), "limitations" (including that the values come \
from an automatic segmentation whose errors carry over)."""

_COLOUR_NAMES = {
    (255, 0, 0): "red",
    (0, 255, 0): "green",
    (255, 255, 0): "yellow",
    (0, 128, 255): "blue",
    (255, 0, 255): "magenta",
    (255, 128, 0): "orange",
}


def system_prompt(words: Vocabulary | None = None) -> str:
    """The rules for the model, in the words of a label convention (default BraTS 2023)."""
    words = words or vocabulary()
    subregions = []
    for code in words.subregions:
        what = words.long_name(code)
        if len(words.subregions[code]) > 1:
            what += f" ({words.members(code)})"
        subregions.append(f"{words.shown[code]} {what}")
    colours = ", ".join(
        f"{words.shown[words.code_of_label(v)]} {_COLOUR_NAMES.get(tuple(c), 'rgb' + str(tuple(c)))}"
        for v, c in words.colours.items()
    )
    first = words.label_codes[-1] if "ET" not in words.subregions else "ET"
    example_volume = f"{words.words(first)} volume 12.34 cm³"
    key = next(iter(words.proportions), None)
    example_proportion = "" if key is None else f'"{words.proportion_name(key)} 40.1 %", '
    images = " and ".join({"T1c": "T1c", "T2F": "T2-FLAIR"}[c] for c in ("T1c", "T2F") if c in words.channels)
    return _SYSTEM_PROMPT.format(
        example_volume=_lower_first(example_volume),
        example_proportion=example_proportion,
        labels="" if words.key == DEFAULT_CONVENTION else f" ({words.title} labels)",
        subregions=", ".join(subregions),
        images=images,
        colours=colours,
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


SYSTEM_PROMPT = system_prompt()
"""The rules for BraTS 2023 labels."""


def data_url(png: str | Path) -> str:
    """``data:image/png;base64,...`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def build_messages(
    facts: dict[str, Any], figures: list[tuple[str, Path]] = (), words: Vocabulary | None = None
) -> list[dict[str, Any]]:
    """Chat-completions messages: the system rules (in the words of ``words``' label convention) and a
    user turn with the facts as JSON and the ``(caption, png)`` figures as image parts (plain text
    content when there are none)."""
    rules = system_prompt(words)
    text = (
        "Measurements of the segmented tumor (JSON):\n"
        + json.dumps(facts, indent=2, ensure_ascii=False)
        + "\nWrite the report as the JSON object described."
    )
    if not figures:
        return [{"role": "system", "content": rules}, {"role": "user", "content": text}]
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for caption, png in figures:
        content.append({"type": "text", "text": f"Figure: {caption}"})
        content.append({"type": "image_url", "image_url": {"url": data_url(png)}})
    return [{"role": "system", "content": rules}, {"role": "user", "content": content}]


class ReplyFormatError(ValueError):
    """The model's reply holds none of the expected sections."""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value if _as_text(v))
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_as_text(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def _from_json(text: str) -> dict[str, str] | None:
    candidates = [text]
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.S | re.I)
    if fenced:
        candidates.insert(0, fenced.group(1))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            lowered = {str(k).strip().lower(): v for k, v in obj.items()}
            found = {s: _as_text(lowered[s]) for s in SECTIONS if s in lowered and _as_text(lowered[s])}
            if found:
                return found
    return None


_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*|\*\*\s*)?(" + "|".join(SECTIONS) + r")\s*(?::\s*\*\*|\*\*\s*:?|:)?\s*(.*)$", re.I
)


def _from_markdown(text: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match and (line.lstrip().startswith(("#", "**")) or ":" in line[: match.end(1) + 3]):
            current = match.group(1).lower()
            found.setdefault(current, [])
            if match.group(2).strip():
                found[current].append(match.group(2).strip())
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v).strip() for k, v in found.items() if "\n".join(v).strip()}


def parse_reply(text: str) -> dict[str, str]:
    """Sections found in the reply (a subset of :data:`SECTIONS`); :class:`ReplyFormatError` if none."""
    sections = _from_json(text) or _from_markdown(text)
    if not sections:
        raise ReplyFormatError("the LLM reply had none of the sections " + ", ".join(SECTIONS))
    return sections
