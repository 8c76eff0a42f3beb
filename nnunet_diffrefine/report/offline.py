"""The deterministic template report: the four sections written from the measurements alone.

Used with ``--offline``, without a configured endpoint, whenever the LLM request fails, and when the
model's reply contradicts the measurements. Every number is one of :func:`.facts.report_facts`, so the
check of :mod:`.guard` never flags it.
"""

from __future__ import annotations

from typing import Any

from nnunet_diffrefine.report.facts import cm3, mm, pct
from nnunet_diffrefine.report.measurements import NO_TUMOR

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


def _components(volumes: dict[str, float]) -> list[str]:
    parts = []
    if volumes["ET"] > 0:
        parts.append("an enhancing component")
    if volumes["NC"] > 0:
        parts.append("a necrotic / non-enhancing core")
    if volumes["ED"] > 0:
        parts.append("surrounding edema")
    return parts


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def standard_limitations(measurements: dict[str, Any]) -> str:
    """The limitations every report states, whoever wrote the rest."""
    midline = (
        "brain mask" if measurements["midline"]["from"] == "brain mask" else "image centre (no image given)"
    )
    return STANDARD_LIMITATIONS.format(midline=midline)


def technique(measurements: dict[str, Any]) -> str:
    m = measurements
    z, y, x = (mm(s) for s in m["spacing_zyx_mm"])
    text = (
        "Automatic segmentation into necrotic / non-enhancing tumor core (NC), peritumoral edema (ED) "
        "and enhancing tumor (ET); tumor core TC = NC + ET, whole tumor WT = NC + ED + ET. "
    )
    if m["images"]:
        text += "MRI sequences: " + ", ".join(m["images"]).replace("T2F", "T2-FLAIR") + ". "
    text += (
        f"Voxel size {x} x {y} x {z} mm. Volumes are voxel counts times the voxel volume; the "
        "bidimensional diameters (longest diameter and longest diameter perpendicular to it) are measured "
        "on the axial slice of largest whole-tumor area."
    )
    return text


def findings(measurements: dict[str, Any]) -> str:
    m = measurements
    v = m["volumes_cm3"]
    if m["finding"] == NO_TUMOR:
        return "No tumor segmented: the segmentation contains no NC, ED or ET voxels (all volumes 0.00 cm³)."
    lesions = m["lesions"]
    lines = [
        f"Number of segmented lesions: {lesions['count']}"
        + (
            f" (volumes {', '.join(cm3(x) for x in lesions['volumes_cm3'])} cm³)."
            if lesions["count"] > 1
            else "."
        ),
        f"Whole tumor (WT) {cm3(v['WT'])} cm³: enhancing tumor (ET) {cm3(v['ET'])} cm³, necrotic / "
        f"non-enhancing core (NC) {cm3(v['NC'])} cm³, edema (ED) {cm3(v['ED'])} cm³; tumor core (TC) "
        f"{cm3(v['TC'])} cm³.",
    ]
    p = m["proportions"]
    if p["ET/TC"] is not None:
        lines.append(f"ET/TC {pct(p['ET/TC'])} %, NC/TC {pct(p['NC/TC'])} %, ED/WT {pct(p['ED/WT'])} %.")
    else:
        lines.append(f"There is no tumor core (TC); ED/WT {pct(p['ED/WT'])} %.")
    axial = m["largest_slices"]["axial"]
    lines.append(
        f"Largest axial extent on slice {axial['file_index']}: {mm(axial['long_diameter_mm'])} x "
        f"{mm(axial['perpendicular_diameter_mm'])} mm (longest x perpendicular diameter), WT area "
        f"{mm(axial['area_mm2'])} mm²."
    )
    offset = mm(m["centroid_offset_from_midline_mm"])
    where = (
        f"in the {m['side']} hemisphere, {offset} mm from the midline"
        if m["side"] != "midline"
        else f"on the midline ({offset} mm from it)"
    )
    crossing = "crosses the midline" if m["crosses_midline"] else "does not cross the midline"
    lines.append(f"The whole tumor is centred {where}, and it {crossing}.")
    return "\n".join(lines)


def impression(measurements: dict[str, Any]) -> str:
    m = measurements
    if m["finding"] == NO_TUMOR:
        return "No tumor segmented. An automatic analysis cannot exclude a lesion; review the images."
    v = m["volumes_cm3"]
    side = {"left": "Left-hemispheric", "right": "Right-hemispheric", "midline": "Midline"}[m["side"]]
    count = m["lesions"]["count"]
    noun = "tumor" if count == 1 else f"tumor ({count} lesions)"
    parts = _components(v)
    text = f"{side} {noun}" + (f" with {_join(parts)}" if parts else "")
    axial = m["largest_slices"]["axial"]
    text += (
        f"; whole tumor {cm3(v['WT'])} cm³, enhancing tumor {cm3(v['ET'])} cm³, "
        f"{mm(axial['long_diameter_mm'])} x {mm(axial['perpendicular_diameter_mm'])} mm on the axial slice "
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
