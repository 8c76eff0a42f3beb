"""The numbers of a sentence: digits or words, their units and ``A x B (x C) mm`` groups.

Digits: ``45``, ``45.2``, ``45,2`` (decimal comma), ``12,100`` (thousands). Words: *zero* ..
*ninety-nine*, *hundred*, *thousand*, *point* (``twelve point five``) when a unit follows, and the
fractions *a half, a third, two thirds, a quarter, three quarters* before *of*. Units (any case):
volumes cm³ = mL = cc (``cm3 cm^3 cubic centimetres milliliters``) and mm³ (/1000); areas mm², cm²
(x100); lengths mm, cm (x10); proportions ``% percent per cent``. In ``A x B mm`` / ``A by B mm`` and
``A-B mm`` the last unit applies to all (``41x34 mm`` too). Skipped: numbers glued to letters (``T1c 3D 1st
26-connected``), list markers (``1.``) and years 1900-2100 without a unit.

Approximate numbers (*about, approximately, approx., around, roughly, circa, ca., nearly, almost, ~,
≈* before the number or its ``A x B`` group) are read to their stated rounding: trailing zeros of a
whole number are not significant (*about 20 mL*: 15-25, *about 150 mL*: 145-155), and otherwise a last
digit 5 is a rounding to the nearest 5 (*about 25 mL*: 22.5-27.5, *about 2.5 cm*: 2.25-2.75); otherwise half a
unit of the last digit, as for any number (*about 24 mL*: 23.5-24.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from nnunet_diffrefine.report.quantities import WORD_FRACTION_TOLERANCE

_I = re.IGNORECASE
_UNITS: tuple[tuple[str, str, str, float], ...] = (
    ("cm³", "volume", r"cm\s?(?:³|\^?3)|cubic\s+centimet(?:er|re)s?|m[lL]|millilit(?:er|re)s?|cc", 1.0),
    ("mm³", "volume", r"mm\s?(?:³|\^?3)|cubic\s+millimet(?:er|re)s?", 0.001),
    ("mm²", "area", r"mm\s?(?:²|\^?2)|square\s+millimet(?:er|re)s?", 1.0),
    ("cm²", "area", r"cm\s?(?:²|\^?2)|square\s+centimet(?:er|re)s?", 100.0),
    ("mm", "length", r"mm|millimet(?:er|re)s?", 1.0),
    ("cm", "length", r"cm|centimet(?:er|re)s?", 10.0),
    ("%", "percent", r"%|percent|per\s+cent", 1.0),
)
_UNIT_RES = tuple((u, k, re.compile(r"\s?(?:" + p + r")(?![\w³²])", _I), f) for u, k, p, f in _UNITS)
_DIGITS_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?![\d.,])|\d+)(?:[.,](\d+))?(?![\d])")
_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD = "|".join(_SMALL + _TENS)
_WORDS_RE = re.compile(rf"\b(?:{_WORD})(?:(?:\s+|-)(?:and\s+)?(?:{_WORD}|hundred|thousand|point))*\b", _I)
_FRACTIONS = {"half": 50.0, "third": 100 / 3, "quarter": 25.0, "two thirds": 200 / 3, "three quarters": 75.0}
_FRACTION_RE = re.compile(
    r"\b(?:(?:a|one)\s+)?(two\s+thirds|three\s+quarters|half|third|quarter)(?=\s+of\b)", _I
)
_TIMES_RE = re.compile(r"^\s*(?:x|×|by|\*)\s*$", _I)
_RANGE_RE = re.compile(
    r"^\s*(?:-|–|to|,|and|or|,\s*and|,\s*or)\s*$|^\s*(?:,|;|and|,\s*and)?\s*(?:ET|NCR?|ED|TC|WT)\s*:?\s*$", _I
)
_INDEX_BEFORE_RE = re.compile(r"(?:slice|section|label|index|number|lesions?)\s*(?:no\.?|#)?\s*:?\s*$", _I)
LIST_MARKER_RE = re.compile(r"^\s*\d+[.)]\s*$")
_GLUED_TIMES_RE = re.compile(r"(?<=\d)[xX](?=\d)")
_APPROXIMATE_RE = re.compile(
    r"(?:\b(?:about|approximately|approx\.?|around|roughly|circa|ca\.|nearly|almost)|~|≈|∼)\s*$", _I
)


@dataclass(frozen=True)
class Number:
    """A number as written: value and half a unit of its last digit (written unit), the unit, its
    kind (``volume area length percent`` or ``None``), factor to the base unit, span, and group."""

    text: str
    value: float
    half_unit: float
    unit: str
    kind: str | None
    factor: float
    start: int
    end: int
    group: int = -1
    position: int = 0
    size: int = 1
    approximate: bool = False

    @property
    def base(self) -> float:
        return self.value * self.factor


def words_value(text: str) -> float | None:
    """The value of spelled-out number words (``twenty-three``, ``one hundred and five``, ``two
    point five``), or ``None``."""
    tokens = [t for t in re.split(r"[\s-]+", text.lower()) if t and t != "and"]
    whole, current, decimals, after_point = 0, 0, "", False
    for token in tokens:
        if after_point:
            if token not in _SMALL[:10]:
                return None
            decimals += str(_SMALL.index(token))
        elif token == "point":
            after_point = True
        elif token in _SMALL:
            current += _SMALL.index(token)
        elif token in _TENS:
            current += 10 * (_TENS.index(token) + 2)
        elif token == "hundred":
            current = max(current, 1) * 100
        elif token == "thousand":
            whole, current = whole + max(current, 1) * 1000, 0
    value = float(whole + current)
    return value + float("0." + decimals) if decimals else value


def stated_rounding(value: float, half_unit: float) -> float:
    """Half the rounding step an approximate number states (module docstring), in its own unit."""
    step = 2.0 * half_unit
    digits = round(abs(value) / step)
    if digits == 0:
        return half_unit
    if step >= 1.0 and digits % 10 == 0:
        while digits % 10 == 0:
            digits, step = digits // 10, step * 10.0
        return step / 2.0
    return 5.0 * step / 2.0 if digits % 10 == 5 else step / 2.0


def _approximate(sentence: str, n: Number) -> Number:
    if not _APPROXIMATE_RE.search(sentence[max(0, n.start - 20) : n.start]):
        return n
    return replace(n, approximate=True, half_unit=stated_rounding(n.value, n.half_unit))


def _unit_after(text: str, end: int) -> tuple[str, str, float, int] | None:
    for unit, kind, regex, factor in _UNIT_RES:
        match = regex.match(text, end)
        if match:
            return unit, kind, factor, match.end()
    return None


def _raw_numbers(sentence: str) -> list[Number]:
    found: list[Number] = []
    sentence = _GLUED_TIMES_RE.sub("×", sentence)  # 41x34 mm: same length, same spans
    for match in _DIGITS_RE.finditer(sentence):
        whole, frac = match.group(1), match.group(2)
        if "," in whole:
            whole = whole.replace(",", "")
        start, end = match.start(), match.end()
        if start >= 2 and sentence[start - 1] == "-" and sentence[start - 2].isalpha():
            continue
        unit = _unit_after(sentence, end)
        if unit is None and re.match(r"[A-Za-z]|-[A-Za-z]", sentence[end:]):
            continue
        value = float(whole + ("." + frac if frac else ""))
        if unit is None and frac is None and 1900 <= value <= 2100:
            continue
        decimals = len(frac) if frac else 0
        found.append(_number(sentence, start, end, value, 0.5 * 10.0**-decimals, unit))
    for match in _WORDS_RE.finditer(sentence):
        unit = _unit_after(sentence, match.end())
        value = words_value(match.group(0))
        if unit is not None and value is not None:
            found.append(_number(sentence, match.start(), match.end(), value, 0.5, unit))
    for match in _FRACTION_RE.finditer(sentence):
        value = _FRACTIONS[re.sub(r"\s+", " ", match.group(1).lower())]
        found.append(
            Number(match.group(0), value, WORD_FRACTION_TOLERANCE, "%", "percent", 1.0, *match.span())
        )
    return sorted(found, key=lambda n: n.start)


def _number(sentence: str, start: int, end: int, value: float, half: float, unit) -> Number:
    if unit is None:
        return Number(sentence[start:end], value, half, "", None, 1.0, start, end)
    name, kind, factor, unit_end = unit
    return Number(sentence[start:unit_end], value, half, name, kind, factor, start, unit_end)


def numbers_in(sentence: str) -> list[Number]:
    """The checkable numbers of ``sentence`` in order, units spread over ``A x B mm`` groups."""
    if LIST_MARKER_RE.match(sentence):
        return []
    found = _raw_numbers(sentence)
    groups: list[list[int]] = []
    for i in range(len(found) - 1):
        gap = sentence[found[i].end : found[i + 1].start]
        listed = found[i].kind is None and _RANGE_RE.match(gap)
        if listed and _INDEX_BEFORE_RE.search(sentence[max(0, found[i].start - 30) : found[i].start]):
            listed = False
        if _TIMES_RE.match(gap) or listed:
            if groups and groups[-1][-1] == i:
                groups[-1].append(i + 1)
            else:
                groups.append([i, i + 1])
    found = [_approximate(sentence, n) for n in found]
    for g, members in enumerate(groups):
        last = found[members[-1]]
        gaps = [sentence[found[a].end : found[b].start] for a, b in zip(members, members[1:])]
        times = all(_TIMES_RE.match(gap) for gap in gaps)
        if not times and last.kind is None:
            continue
        for position, i in enumerate(members):
            n = found[i]
            if n.kind is None and last.kind is not None:
                n = replace(
                    n, text=f"{n.text} {last.unit}", unit=last.unit, kind=last.kind, factor=last.factor
                )
            if times:
                n = replace(n, group=g, position=position, size=len(members))
            first = found[members[0]]
            if first.approximate and not n.approximate:
                n = replace(n, approximate=True, half_unit=stated_rounding(n.value, n.half_unit))
            found[i] = n
    return found
