"""Hallucination guard: every number in the model's text is checked against the measurements.

Each sentence of each section is scanned for numbers and their units. Units are normalised: volumes
cm³ = mL = cc (mm³ / 1000), lengths mm (cm x 10), areas mm² (cm² x 100), proportions %. A number
``v`` written with ``d`` decimals *matches* a measured value ``m`` (converted to the unit ``v`` was
written in) when::

    |v - m| <= max(0.05 * |m|, 0.05, 0.5 * 10**-d)

(relative 5 %, absolute 0.05 of the written unit, or the rounding of the written number). A number
is flagged when it

- has a unit and matches no measured value of that kind (``not among the measurements``), or
- sits in a sentence that names exactly one sub-region (NC / ED / ET / TC / WT, by abbreviation or
  name) and does not match that sub-region's value of its kind (``contradicts the measured ...``), or
- counts lesions (``3 lesions``, ``2 enhancing foci``) and differs from the number of lesions, or
- has no unit and matches no measured value of any kind nor a count (lesions, slice indices, label
  values 1-3, number of sequences) nor a proportion written as a fraction.

Ignored: numbers glued to letters (``T1c``, ``3D``, ``26-connected``), years 1900-2100 without a unit.
In ``A x B mm`` the unit of ``B`` applies to ``A``. Words (``two lesions``) are not checked.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from nnunet_diffrefine.report.measurements import NO_TUMOR, SUBREGIONS

REL_TOLERANCE = 0.05
ABS_TOLERANCE = 0.05

# unit pattern -> (kind, factor to the base unit of the kind)
_UNITS: tuple[tuple[str, str, float], ...] = (
    (r"cm\s?(?:³|\^?3)|cubic\s+centimet(?:er|re)s?|m[lL]|cc", "volume", 1.0),
    (r"mm\s?(?:³|\^?3)|cubic\s+millimet(?:er|re)s?", "volume", 0.001),
    (r"mm\s?(?:²|\^?2)|square\s+millimet(?:er|re)s?", "area", 1.0),
    (r"cm\s?(?:²|\^?2)|square\s+centimet(?:er|re)s?", "area", 100.0),
    (r"mm|millimet(?:er|re)s?", "length", 1.0),
    (r"cm|centimet(?:er|re)s?", "length", 10.0),
    (r"%|percent|per\s+cent", "percent", 1.0),
)
_UNIT_RE = re.compile(r"\s?(" + "|".join(f"(?:{u})" for u, _, _ in _UNITS) + r")(?![\w³²])", re.I)
_NUMBER_RE = re.compile(r"(?<![\w.,\-])(\d+(?:[.,]\d+)?)(?![\d])")
_SENTENCE_RE = re.compile(r"[^\n]+?(?:[.!?](?=\s|$)|(?=\n)|$)")
_TIMES_RE = re.compile(r"^\s*(?:x|×|by|\*)\s*$", re.I)
_LESION_COUNT_RE = re.compile(r"\s+(?:[a-z-]+\s+)?(?:lesions?|components?|foci|focus|masses)\b", re.I)

REGION_PATTERNS: dict[str, str] = {
    "NC": r"\bnecro\w*|\bnon[\s-]?enhancing\b|\bNCR?\b",
    "ET": r"(?<!non-)(?<!non )(?<!non)\benhancing\b|\benhancement\b|\bET\b",
    "ED": r"\bo?edema\w*|\bED\b",
    "TC": r"\btumou?r\s+core\b|\bTC\b",
    "WT": r"\bwhole\s+tumou?r\b|\btotal\s+tumou?r\b|\bWT\b",
}
_PROPORTION_OF = {"ET": "ET/TC", "NC": "NC/TC", "ED": "ED/WT"}


@dataclass(frozen=True)
class Flag:
    """A flagged number: where (section, sentence and its character span in the section) and why."""

    section: str
    sentence: str
    number: str
    reason: str
    start: int
    end: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["start"], data["end"]
        return data


@dataclass(frozen=True)
class _Number:
    text: str
    value: float
    decimals: int
    kind: str | None
    factor: float
    unit: str
    start: int
    end: int


def _unit_of(text: str) -> tuple[str, str, float] | None:
    match = _UNIT_RE.match(text)
    if not match:
        return None
    unit = match.group(1)
    for pattern, kind, factor in _UNITS:
        if re.fullmatch(pattern, unit, flags=re.I):
            return match.group(0), kind, factor
    return None


def numbers_in(sentence: str) -> list[_Number]:
    """The checkable numbers of a sentence with their unit kind (``None``: no unit) and factor."""
    found: list[_Number] = []
    for match in _NUMBER_RE.finditer(sentence):
        after = sentence[match.end() :]
        unit = _unit_of(after)
        if unit is None and re.match(r"-?[A-Za-z]", after):
            continue  # glued to a word: 3D, 1st, 26-connected
        raw = match.group(1)
        value = float(raw.replace(",", "."))
        decimals = len(re.split(r"[.,]", raw)[1]) if re.search(r"[.,]", raw) else 0
        if unit is None and decimals == 0 and 1900 <= value <= 2100:
            continue
        kind, factor, unit_text = (unit[1], unit[2], unit[0]) if unit else (None, 1.0, "")
        if unit is None and _LESION_COUNT_RE.match(after):
            kind = "count"
        end = match.end() + len(unit_text)
        found.append(_Number(raw + unit_text, value, decimals, kind, factor, unit_text, match.start(), end))
    for i in range(len(found) - 2, -1, -1):  # "45 x 30 mm": 45 takes the unit of 30
        a, b = found[i], found[i + 1]
        if a.kind is None and b.kind is not None and _TIMES_RE.match(sentence[a.end : b.start]):
            found[i] = _Number(a.text + b.unit, a.value, a.decimals, b.kind, b.factor, b.unit, a.start, a.end)
    return found


def measured_values(measurements: dict[str, Any]) -> dict[str, Any]:
    """Measured values by kind in base units (cm³, mm, mm², %), per region where that applies, and
    the counts a unitless number may state."""
    m = measurements
    volumes = {name: [m["volumes_cm3"][name]] for name in SUBREGIONS}
    volumes["WT"] = volumes["WT"] + list(m["lesions"]["volumes_cm3"])
    percent = {
        region: [100.0 * m["proportions"][key]] if m["proportions"][key] is not None else []
        for region, key in _PROPORTION_OF.items()
    }
    lengths = [*m["spacing_zyx_mm"], m["midline"]["margin_mm"]]
    areas: list[float] = []
    counts = [m["lesions"]["count"], 1, 2, 3, len(m["images"]), 0]
    counts += [v for v in m["proportions"].values() if v is not None]  # "0.62" for 62 %
    for plane, info in (m.get("largest_slices") or {}).items():
        if info is None:
            continue
        counts.append(info["file_index"])
        areas.append(info["area_mm2"])
        if plane == "axial":
            lengths += [info["long_diameter_mm"], info["perpendicular_diameter_mm"]]
            areas.append(info["product_mm2"])
    if m.get("centroid_offset_from_midline_mm") is not None:
        lengths.append(m["centroid_offset_from_midline_mm"])
    by_kind = {
        "volume": {
            "any": [v for vs in volumes.values() for v in vs] + [m["voxel_volume_mm3"] / 1000.0],
            **volumes,
        },
        "percent": {"any": [v for vs in percent.values() for v in vs], **percent},
        "length": {"any": lengths},
        "area": {"any": areas},
    }
    return {"by_kind": by_kind, "counts": [float(c) for c in counts], "lesions": float(m["lesions"]["count"])}


def matches(number: _Number, measured: float) -> bool:
    """Whether the written number agrees with ``measured`` (base unit) within rounding (module docstring)."""
    target = measured / number.factor
    tolerance = max(REL_TOLERANCE * abs(target), ABS_TOLERANCE, 0.5 * 10.0 ** (-number.decimals))
    return abs(number.value - target) <= tolerance + 1e-9


def _regions_named(sentence: str) -> set[str]:
    return {name for name, pattern in REGION_PATTERNS.items() if re.search(pattern, sentence, flags=re.I)}


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


_UNIT_LABEL = {"volume": "cm³", "length": "mm", "area": "mm²", "percent": "%"}


def _check(number: _Number, regions: set[str], values: dict[str, Any]) -> str | None:
    if number.kind == "count":
        lesions = values["lesions"]
        if abs(number.value - lesions) < 1e-9:
            return None
        return f"contradicts the measured number of lesions {lesions:g}"
    if number.kind is None:
        everything = values["counts"] + [v for kind in values["by_kind"].values() for v in kind["any"]]
        if any(matches(number, v) for v in everything):
            return None
        return "not among the measurements"
    table = values["by_kind"][number.kind]
    if len(regions) == 1:
        (region,) = regions
        if region in table:
            expected = table[region]
            if any(matches(number, v) for v in expected):
                return None
            if expected:
                shown = " or ".join(dict.fromkeys(_fmt(v) for v in expected[:3]))
                return f"contradicts the measured {region} {number.kind} {shown} {_UNIT_LABEL[number.kind]}"
            return f"no {region} {number.kind} was measured"
    if any(matches(number, v) for v in table["any"]):
        return None
    return f"not among the measurements (no measured {number.kind} is {number.text.strip()})"


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences (or lines) of ``text``, leading blanks excluded."""
    spans = []
    for match in _SENTENCE_RE.finditer(text):
        start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
        if start < match.end():
            spans.append((start, match.end()))
    return spans


def check_sections(sections: dict[str, str], measurements: dict[str, Any]) -> list[Flag]:
    """Every flagged number of the model's ``sections`` (see the module docstring)."""
    values = measured_values(measurements)
    if measurements.get("finding") == NO_TUMOR:
        values["counts"].append(0.0)
    flags: list[Flag] = []
    for section, text in sections.items():
        for start, end in sentences(text):
            sentence = text[start:end]
            regions = _regions_named(sentence)
            for number in numbers_in(sentence):
                reason = _check(number, regions, values)
                if reason is not None:
                    flags.append(Flag(section, sentence.strip(), number.text.strip(), reason, start, end))
    return flags
