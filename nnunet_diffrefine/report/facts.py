"""The measurements as they are shown: one rounding for the prompt, the offline text and the tables.

Volumes in cm³ with 2 decimals, lengths in mm and proportions in % with 1 decimal, areas in mm² with
1 decimal. :func:`report_facts` is the whitelist of what may leave the process in a prompt: no file
names, paths, header fields or physical coordinates, only the case id passed in and measured values.
"""

from __future__ import annotations

from typing import Any

from nnunet_diffrefine.report.measurements import NO_TUMOR
from nnunet_diffrefine.report.vocabulary import vocabulary_of


def cm3(value: float) -> str:
    return f"{value:.2f}"


def mm(value: float) -> str:
    return f"{value:.1f}"


def pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100.0 * fraction:.1f}"


def report_facts(measurements: dict[str, Any]) -> dict[str, Any]:
    """The displayed measurements as a JSON-ready dict (rounded strings become numbers again)."""
    m = measurements
    words = vocabulary_of(m)
    facts: dict[str, Any] = {
        "case_id": m["case_id"],
        "label_convention": words.title,
        "finding": m["finding"],
        "mri_sequences": m["images"],
        "voxel_size_mm": [float(mm(s)) for s in m["spacing_zyx_mm"][::-1]],
        "volumes_cm3": {words.shown[name]: float(cm3(m["volumes_cm3"][name])) for name in words.subregions},
        "proportions_percent": {
            words.proportion_name(key): (
                None if m["proportions"][key] is None else float(pct(m["proportions"][key]))
            )
            for key in words.proportions
        },
        "number_of_lesions": m["lesions"]["count"],
        "lesion_volumes_cm3": [float(cm3(v)) for v in m["lesions"]["volumes_cm3"]],
    }
    if m["finding"] == NO_TUMOR:
        return facts
    axial = m["largest_slices"]["axial"]
    facts["largest_axial_slice"] = {
        "slice_index": axial["file_index"],
        "area_mm2": float(mm(axial["area_mm2"])),
        "longest_diameter_mm": float(mm(axial["long_diameter_mm"])),
        "perpendicular_diameter_mm": float(mm(axial["perpendicular_diameter_mm"])),
    }
    facts["side"] = m["side"]
    facts["distance_of_centroid_from_midline_mm"] = float(mm(m["centroid_offset_from_midline_mm"]))
    facts["crosses_midline"] = m["crosses_midline"]
    return facts


def measurement_rows(measurements: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(quantity, value, unit)`` rows of the report's measurements table, always from our numbers."""
    m = measurements
    words = vocabulary_of(m)
    wt = words.shown[words.tumor]
    rows = [
        (f"Volume {words.definition(name)}", cm3(m["volumes_cm3"][name]), "cm³") for name in words.subregions
    ]
    rows += [
        (f"Proportion {words.proportion_name(key)}", pct(m["proportions"][key]), "%")
        for key in words.proportions
    ]
    rows.append((f"Number of lesions (26-connected {wt} components)", str(m["lesions"]["count"]), ""))
    axial = (m.get("largest_slices") or {}).get("axial")
    if axial is not None:
        rows += [
            (f"Axial slice of largest {wt} area (file index)", str(axial["file_index"]), ""),
            (f"{wt} area on that slice", mm(axial["area_mm2"]), "mm²"),
            ("Longest diameter on that slice", mm(axial["long_diameter_mm"]), "mm"),
            ("Perpendicular diameter on that slice", mm(axial["perpendicular_diameter_mm"]), "mm"),
        ]
    if m.get("side") is not None:
        rows += [
            (f"Side (from the {wt} centroid)", m["side"], ""),
            (
                f"Distance of the {wt} centroid from the midline",
                mm(m["centroid_offset_from_midline_mm"]),
                "mm",
            ),
            ("Crosses the midline", "yes" if m["crosses_midline"] else "no", ""),
        ]
    return rows
