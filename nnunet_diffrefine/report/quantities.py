"""The measured quantities a statement can be bound to, and when a written number agrees with one.

A quantity has a base unit (cm³ volumes, mm lengths, mm² areas, % proportions, none for counts and
slice indices), one or more measured values (several where the text may mean any of them: lesion
volumes, voxel spacings, the two bidimensional diameters of an ``A x B mm`` pair) and the number of
decimals the prompt shows it with (:mod:`.facts`: 2 for cm³, 1 for mm, mm² and %).

Tolerance. The prompt's value ``r`` of a measured ``m`` satisfies ``|r - m| <= p`` (``p`` half a
unit of the prompt's last decimal) and a faithful number ``v`` written with ``d`` decimals in unit
``u`` satisfies ``|v - r| <= h`` (``h`` half a unit of its last digit, in ``u``). So ``v`` *agrees*
when, converted to the base unit, ``|v - m| <= p + h`` (a tiny epsilon added for floating point).
``45.2 mL`` agrees with 45.23 cm³, ``4.5 cm`` with 45.23 mm, ``45230 mm³`` with 45.23 cm³; ``46 cm³``
does not. Proportions that the prompt does not give (ET/WT, TC/WT) are computed from the volumes:
they agree when ``v`` lies within ``h`` of the range the ratio takes over the prompt's volume
intervals. Counts and indices agree only when equal. Spelled fractions (*two thirds*) carry a
tolerance of :data:`WORD_FRACTION_TOLERANCE` percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnunet_diffrefine.report.vocabulary import vocabulary_of

SHOWN_DECIMALS = {"cm³": 2, "mm": 1, "mm²": 1, "%": 1, "": 0}
WORD_FRACTION_TOLERANCE = 5.0


def region_words(m: dict[str, Any]) -> dict[str, str]:
    """Sub-region code -> its words (``edema (ED)``) in the convention ``m`` was measured with."""
    words = vocabulary_of(m)
    return {code: words.words(code) for code in words.subregions}


def default_base(m: dict[str, Any]) -> dict[str, str]:
    """Numerator -> the base of a percentage stated without one (BraTS 2023: ET and NC of TC, ED and
    TC of WT)."""
    return vocabulary_of(m).default_base


@dataclass(frozen=True)
class Quantity:
    """A measured quantity: its name, base unit, value interval(s) ``(low, high)`` and display."""

    name: str
    unit: str
    intervals: tuple[tuple[float, float], ...]
    shown: str

    def agrees(self, value: float, half_unit: float) -> bool:
        """Whether ``value`` (base unit, written to within ``half_unit``) agrees (module docstring)."""
        return any(lo - half_unit - 1e-9 <= value <= hi + half_unit + 1e-9 for lo, hi in self.intervals)


def _fmt(value: float, unit: str) -> str:
    return f"{value:.{SHOWN_DECIMALS[unit]}f}"


def measured(name: str, unit: str, values: list[float]) -> Quantity:
    """A quantity from measured values, each standing for ``value +- p`` (p: the prompt's rounding)."""
    p = 0.0 if unit == "" else 0.5 * 10.0 ** -SHOWN_DECIMALS[unit]
    values = [float(v) for v in values]
    shown = " or ".join(dict.fromkeys(_fmt(v, unit) for v in values[:4])) or "none"
    return Quantity(name, unit, tuple((v - p, v + p) for v in values), shown + (f" {unit}" if unit else ""))


def volume(m: dict[str, Any], region: str) -> Quantity:
    return measured(f"{region} volume", "cm³", [m["volumes_cm3"][region]])


def lesion_volumes(m: dict[str, Any]) -> Quantity:
    return measured("lesion volume", "cm³", list(m["lesions"]["volumes_cm3"]))


def proportion(m: dict[str, Any], num: str, den: str) -> Quantity | None:
    """``num`` as a percentage of ``den``; ``None`` when ``den`` is empty or not a superset."""
    subregions = vocabulary_of(m).subregions
    if num == den or num not in subregions or den not in subregions:
        return None
    if not set(subregions[num]) <= set(subregions[den]):
        return None
    v = m["volumes_cm3"]
    if v[den] <= 0:
        return None
    p = 0.5 * 10.0 ** -SHOWN_DECIMALS["cm³"]
    lo = max(v[num] - p, 0.0) / (v[den] + p)
    hi = min((v[num] + p) / max(v[den] - p, 1e-12), 1.0)
    intervals = [(100.0 * lo, 100.0 * hi)]
    key = f"{num}/{den}"
    if m["proportions"].get(key) is not None:
        exact = 100.0 * m["proportions"][key]
        intervals.append((exact - 0.05, exact + 0.05))
    exact = 100.0 * v[num] / v[den]
    return Quantity(f"{num}/{den} proportion", "%", tuple(intervals), f"{exact:.1f} %")


def axial(m: dict[str, Any]) -> dict[str, Any] | None:
    return (m.get("largest_slices") or {}).get("axial")


def length(m: dict[str, Any], which: str) -> Quantity | None:
    """``long``, ``perpendicular``, ``pair`` (either diameter), ``midline`` or ``voxel`` (mm)."""
    a = axial(m)
    if which == "voxel":
        return measured("voxel size", "mm", list(m["spacing_zyx_mm"]))
    if which == "midline":
        offset = m.get("centroid_offset_from_midline_mm")
        return None if offset is None else measured("distance from the midline", "mm", [offset])
    if a is None:
        return None
    long, perp = a["long_diameter_mm"], a["perpendicular_diameter_mm"]
    if which == "long":
        return measured("longest diameter", "mm", [long])
    if which == "perpendicular":
        return measured("perpendicular diameter", "mm", [perp])
    return measured("bidimensional diameter", "mm", [long, perp])


def area(m: dict[str, Any]) -> Quantity | None:
    a = axial(m)
    if a is None:
        return None
    return measured(f"axial {vocabulary_of(m).tumor} area", "mm²", [a["area_mm2"], a["product_mm2"]])


def slice_index(m: dict[str, Any], plane: str) -> Quantity | None:
    info = (m.get("largest_slices") or {}).get(plane)
    return None if info is None else measured(f"{plane} slice index", "", [info["file_index"]])


def count_of_images(m: dict[str, Any]) -> Quantity:
    return measured("number of MRI sequences", "", [len(m["images"])])
