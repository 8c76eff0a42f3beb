"""The deterministic template report: the four sections written from the measurements alone.

Used with ``--offline``, without a configured endpoint, whenever the LLM request fails, and when the
model's reply contradicts the measurements. Every number is one of :func:`.facts.report_facts`, so the
check of :mod:`.guard` never flags it.
"""

from __future__ import annotations

from typing import Any

from nnunet_diffrefine.data.challenges import DEFAULT_CONVENTION
from nnunet_diffrefine.report.facts import cm3, mm, pct
from nnunet_diffrefine.report.measurements import NO_TUMOR
from nnunet_diffrefine.report.vocabulary import Vocabulary, vocabulary_of

STANDARD_LIMITATIONS = (
    "All values are derived from an automatic segmentation and carry over its errors (missed or "
    "spurious regions, boundary errors); they have not been checked by a reader. Volumes are voxel "
    "counts times the voxel volume; the diameters are measured on the convex hull of the largest "
    "in-plane component of one axial slice and can differ from manual RANO measurements. The side is "
    "relative to a midline estimated from the {midline}."
)

LLM_LIMITATIONS = (
    "The text was drafted by a language model ({model}) from the measurements{images}; it may state "
    "findings that are not present. Its numbers and claims were checked against the measurements (a "
    "reply contradicting them is not used); statements that could not be verified are flagged. The "
    "measurements table always comes from the measurements themselves."
)

TEMPLATE_NOTE = "The text was generated from a fixed template (no language model)."


def _components(volumes: dict[str, float], words: Vocabulary) -> list[str]:
    return [words.component(code) for code in words.impression_components if volumes[code] > 0]


def _join(parts: list[str], last: str = "and") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {last} " + parts[-1]


def _outside(words: Vocabulary) -> list[str]:
    """Labels outside the tumor (the resection cavity), reported by volume only."""
    inside = set(words.subregions[words.tumor])
    return [c for c in words.label_codes if words.subregions[c][0] not in inside]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def standard_limitations(measurements: dict[str, Any]) -> str:
    """The limitations every report states, whoever wrote the rest."""
    midline = (
        "brain mask" if measurements["midline"]["from"] == "brain mask" else "image centre (no image given)"
    )
    return STANDARD_LIMITATIONS.format(midline=midline)


def technique(measurements: dict[str, Any]) -> str:
    m = measurements
    words = vocabulary_of(m)
    z, y, x = (mm(s) for s in m["spacing_zyx_mm"])
    labels = [f"{words.long_name(c)} ({words.shown[c]})" for c in words.label_codes]
    composite = [
        f"{words.long_name(c)} {words.shown[c]} = {words.members(c)}"
        for c in words.subregions
        if c not in words.label_codes
    ]
    which = "" if words.key == DEFAULT_CONVENTION else f" ({words.title} labels)"
    text = f"Automatic segmentation{which} into {_join(labels)}" + (
        "; " + ", ".join(composite) + ". " if composite else ". "
    )
    if m["images"]:
        text += "MRI sequences: " + ", ".join(m["images"]).replace("T2F", "T2-FLAIR") + ". "
    text += (
        f"Voxel size {x} x {y} x {z} mm. Volumes are voxel counts times the voxel volume; the "
        "bidimensional diameters (longest diameter and longest diameter perpendicular to it) are measured "
        f"on the axial slice of largest {'whole-tumor' if words.tumor == 'WT' else words.shown[words.tumor]} area."
    )
    return text


def findings(measurements: dict[str, Any]) -> str:
    m = measurements
    words = vocabulary_of(m)
    v = m["volumes_cm3"]
    tumor = words.shown[words.tumor]
    outside = [f"{words.words(c)} {cm3(v[c])} cm³" for c in _outside(words) if v[c] > 0]
    if m["finding"] == NO_TUMOR:
        inside = [words.shown[c] for c in words.label_codes if c not in _outside(words)]
        if not outside:
            return (
                f"No tumor segmented: the segmentation contains no {_join(inside, 'or')} voxels "
                "(all volumes 0.00 cm³)."
            )
        return f"No tumor segmented: the segmentation contains no {_join(inside, 'or')} voxels; " + (
            ", ".join(outside) + "."
        )
    lesions = m["lesions"]
    lines = [
        f"Number of segmented lesions: {lesions['count']}"
        + (
            f" (volumes {', '.join(cm3(x) for x in lesions['volumes_cm3'])} cm³)."
            if lesions["count"] > 1
            else "."
        ),
        _volume_line(words, v) + "".join(f"; {x}" for x in outside) + ".",
    ]
    proportions = _proportions_line(words, m["proportions"])
    if proportions:
        lines.append(proportions)
    axial = m["largest_slices"]["axial"]
    lines.append(
        f"Largest axial extent on slice {axial['file_index']}: {mm(axial['long_diameter_mm'])} x "
        f"{mm(axial['perpendicular_diameter_mm'])} mm (longest x perpendicular diameter), {tumor} area "
        f"{mm(axial['area_mm2'])} mm²."
    )
    offset = mm(m["centroid_offset_from_midline_mm"])
    where = (
        f"in the {m['side']} hemisphere, {offset} mm from the midline"
        if m["side"] != "midline"
        else f"on the midline ({offset} mm from it)"
    )
    crossing = "crosses the midline" if m["crosses_midline"] else "does not cross the midline"
    lines.append(f"The {words.long_name(words.tumor)} is centred {where}, and it {crossing}.")
    return "\n".join(lines)


def _volume_line(words: Vocabulary, v: dict[str, float]) -> str:
    """``Whole tumor (WT) 1.00 cm³: enhancing tumor (ET) ..., ...; tumor core (TC) ... cm³``."""
    text = f"{_capital(words.words(words.tumor))} {cm3(v[words.tumor])} cm³"
    parts = [f"{words.words(c)} {cm3(v[c])} cm³" for c in words.impression_components]
    if parts:
        text += ": " + ", ".join(parts)
    others = [c for c in words.subregions if c not in words.label_codes and c != words.tumor]
    return text + "".join(f"; {words.words(c)} {cm3(v[c])} cm³" for c in others)


def _proportions_line(words: Vocabulary, p: dict[str, float | None]) -> str:
    """``ET/TC 40.0 %, NC/TC 60.0 %, ED/WT 50.0 %.``; empty bases named (``There is no tumor core``)."""
    if not words.proportions:
        return ""
    empty = list(dict.fromkeys(words.proportions[k][1] for k in words.proportions if p[k] is None))
    shown = ", ".join(
        f"{words.proportion_name(k)} {pct(p[k])} %" for k in words.proportions if p[k] is not None
    )
    if not empty:
        return shown + "."
    text = "There is no " + _join([words.words(c) for c in empty])
    return text + (f"; {shown}." if shown else ".")


def impression(measurements: dict[str, Any]) -> str:
    m = measurements
    if m["finding"] == NO_TUMOR:
        return "No tumor segmented. An automatic analysis cannot exclude a lesion; review the images."
    v = m["volumes_cm3"]
    words = vocabulary_of(m)
    side = {"left": "Left-hemispheric", "right": "Right-hemispheric", "midline": "Midline"}[m["side"]]
    count = m["lesions"]["count"]
    noun = "tumor" if count == 1 else f"tumor ({count} lesions)"
    parts = _components(v, words)
    text = f"{side} {noun}" + (f" with {_join(parts)}" if parts else "")
    axial = m["largest_slices"]["axial"]
    named = [words.tumor, *(["ET"] if "ET" in words.impression_components else [])]
    named += [c for c in _outside(words) if v[c] > 0]
    text += "; " + ", ".join(f"{words.long_name(c)} {cm3(v[c])} cm³" for c in named)
    text += (
        f", {mm(axial['long_diameter_mm'])} x {mm(axial['perpendicular_diameter_mm'])} mm on the axial slice "
        "of largest extent"
    )
    if m["crosses_midline"]:
        text += ", crossing the midline"
    return text + ". Segmentation-derived findings, to be confirmed by a radiologist."


def offline_sections(measurements: dict[str, Any]) -> dict[str, str]:
    """Technique, findings, impression and limitations from the measurements (deterministic)."""
    return {
        "technique": technique(measurements),
        "findings": findings(measurements),
        "impression": impression(measurements),
        "limitations": standard_limitations(measurements) + " " + TEMPLATE_NOTE,
    }
