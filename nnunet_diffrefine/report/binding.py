"""Which measured quantity each number of a sentence is stated for.

Each number (or ``A x B mm`` group) gets two windows: the words before it back to the previous
number and the words after it up to the next, the text between two numbers going to the number
before it up to its first connector (``, ;`` *and, with, while, but*) and to the number after it
from its last one, so that ``12 cm³ of ET and 40 cm³ of edema`` binds ET to 12 and ED to 40. The
sub-region is the last one named before the number in its window (outside a parenthesised aside
such as ``TC (NC + ET)``, if any is), else the first after it, else (volumes only) the nearest
earlier in the sentence. A lesion described by a sub-region word (*non-enhancing lesion*) is the
lesion (:mod:`.text`). The kind comes from the unit and, for lengths, from the structure and the
words (:mod:`.lengths`: ``A x B`` is the bidimensional pair, ``A x B x C`` a tridimensional size or the
voxel size). Percentages are ``numerator / base``: the base is the sub-region after
*of / relative to* (or ``X/Y``), else the prompt's default (BraTS 2023: ET and NC of TC, ED and TC
of WT; :mod:`.vocabulary`). Sub-regions the case's label convention has no label for are unbound.
Unitless numbers are slice indices (after *slice*), label values (after *label*), numbers of
sequences, or fractions (*ratio 0.62*). Anything else cannot be bound: ``quantity`` is ``None``
with the reason.

Readings. Where the words allow more than one quantity (*FLAIR hyperintensity*: ED or WT; only an
earlier sub-region, or only an earlier kind of length, to go by), the binding holds each
(``alternatives``); :mod:`.guard` verifies a number that fits every reading, contradicts one that fits
none and calls the rest unverifiable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nnunet_diffrefine.report import lengths
from nnunet_diffrefine.report import quantities as q
from nnunet_diffrefine.report.numbers import Number
from nnunet_diffrefine.report.text import Mention, mentions
from nnunet_diffrefine.report.vocabulary import vocabulary_of

_I = re.IGNORECASE
_CONNECTOR_RE = re.compile(r",|;|\b(?:and|with|while|whereas|but|plus)\b", _I)
_BELONGS_BEFORE_RE = re.compile(r"^\s*(?:of|in|for|within)\b", _I)
_ASIDE_RE = re.compile(r"^\s*\([^()]*\)")
_OF_RE = re.compile(r"(?:\bof|\bto|\brelative\s+to|\bwithin)\s+(?:the\s+)?$", _I)
_CODES = r"ET|NCR?|NETC|ED|SNFH|TC|WT|RC|CC|GTV"
_RATIO_RE = re.compile(rf"\b({_CODES})\s*(?:/|:|\s+to\s+)\s*({_CODES})\b")
_ALIASES = {"NCR": "NC", "NETC": "NC", "SNFH": "ED"}
_LESION_RE = re.compile(r"\blesions?\b|\bsatellite\b|\bfoc(?:us|i)\b|\bnodules?\b", _I)
_SLICE_RE = re.compile(
    r"\b(?:(axial|coronal|sagittal)\s+)?(?:slice|section)\s*(?:index|number|no\.?|#)?\s*:?\s*$", _I
)
_LABEL_RE = re.compile(r"\blabels?\s*(?:value)?\s*:?\s*$", _I)
_SEQUENCES_RE = re.compile(r"^\s*(?:MRI\s+)?(?:sequences|channels|modalities|contrasts)\b", _I)
_FRACTION_WORDS_RE = re.compile(r"\bratio\b|\bfraction\b|\bproportion\b", _I)


@dataclass(frozen=True)
class Binding:
    """A number, the quantity it is stated for (``None``: unbound) and, if unbound, why."""

    number: Number
    quantity: q.Quantity | None
    reason: str = ""
    contradicted: bool = False
    """An unbound number that cannot be right (a percentage of a region it is not part of)."""
    alternatives: tuple[q.Quantity, ...] = ()
    """Other quantities the words may mean (module docstring)."""

    @property
    def readings(self) -> tuple[q.Quantity, ...]:
        return () if self.quantity is None else (self.quantity, *self.alternatives)


def _split(gap: str) -> tuple[int, int]:
    """Where the gap between two numbers splits: ``gap[:left]`` (a parenthesised aside right after
    the first number, then up to the first connector) belongs to the number before it, ``gap[right:]``
    (after the last one) to the number after it."""
    aside = _ASIDE_RE.match(gap)
    if aside:  # "40.8 mm (longest) by 33.6 mm": the aside is the number's before it
        left, right = _split(gap[aside.end() :])
        return aside.end() + left, aside.end() + right
    found = list(_CONNECTOR_RE.finditer(gap))
    if found:
        return found[0].start(), found[-1].end()
    cut = len(gap) if _BELONGS_BEFORE_RE.match(gap) else 0
    return cut, cut


def _windows(sentence: str, numbers: list[Number]) -> list[tuple[int, int, int, int]]:
    """``(pre_start, pre_end, post_start, post_end)`` of each number (group members share them)."""
    slots: list[list[int]] = []
    for i, n in enumerate(numbers):
        if slots and n.group >= 0 and numbers[slots[-1][0]].group == n.group:
            slots[-1].append(i)
        else:
            slots.append([i])
    spans = [(numbers[s[0]].start, numbers[s[-1]].end) for s in slots]
    out: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(numbers)
    for k, members in enumerate(slots):
        start, end = spans[k]
        if k == 0:
            found = list(_CONNECTOR_RE.finditer(sentence, 0, start))
            pre_start = found[-1].end() if found else 0
        else:
            pre_start = spans[k - 1][1] + _split(sentence[spans[k - 1][1] : start])[1]
        if k + 1 == len(spans):
            first = _CONNECTOR_RE.search(sentence, end)
            post_end = first.start() if first else len(sentence)
        else:
            post_end = end + _split(sentence[end : spans[k + 1][0]])[0]
        for i in members:
            out[i] = (pre_start, start, end, post_end)
    return out


def _pick(found: list[Mention], last: bool, specific: bool = True) -> Mention | None:
    chosen = [m for m in found if (m.region != "G") == specific]
    return (chosen[-1] if last else chosen[0]) if chosen else None


def _readings(pre: list[Mention], post: list[Mention], before: list[Mention]) -> tuple[str, ...]:
    """The codes a number may be stated for (module docstring); empty when nothing is named."""
    for found, last in ((pre, True), (post, False)):
        hit = _pick(found, last)
        if hit:
            return hit.readings
    for found in (pre, post):
        hit = _pick(found, True, specific=False)
        if hit:
            return hit.readings
    hits = [h for h in (_pick(before, True), _pick(before, True, specific=False)) if h]
    hits.sort(key=lambda h: -h.start)
    return tuple(dict.fromkeys(code for h in hits for code in h.readings))


def _of(sentence: str, mention: Mention) -> bool:
    """Whether ``mention`` is the base of a proportion (*of the*, *relative to*)."""
    return bool(_OF_RE.search(sentence[max(0, mention.start - 25) : mention.start]))


def _percent(
    m: dict[str, Any], sentence: str, n: Number, pre: tuple[int, int], post: tuple[int, int]
) -> Binding:
    words = vocabulary_of(m)
    base_of = words.default_base
    ratio = _RATIO_RE.search(sentence[pre[0] : pre[1]]) or _RATIO_RE.match(
        sentence[post[0] : post[1]].strip()
    )
    if ratio:
        num, den = (_ALIASES.get(g, g) for g in ratio.groups())
    else:
        every = mentions(sentence)
        inside = [x for x in every if pre[0] <= x.start and x.end <= post[1]]
        bases = [x for x in inside if _of(sentence, x)]
        named = [x for x in inside if x not in bases and x.region != "G"]
        before = [x for x in every if x.end <= pre[0] and x.region != "G" and not _of(sentence, x)]
        in_pre = [x for x in named if x.end <= pre[1]]
        num_m = in_pre[-1] if in_pre else named[0] if named else before[-1] if before else None
        if num_m is None:
            return Binding(n, None, "no sub-region is named for this percentage")
        num = num_m.region
        den = bases[0].region if bases else base_of.get(num, "")
        if den == "G":
            den = base_of.get(num, words.tumor)
    for code in (num, den):
        if code and code != "G" and code not in words.subregions:
            return Binding(n, None, f"{words.title} has no label for {code}: no such proportion")
    if (
        num in words.subregions
        and den in words.subregions
        and num != den
        and q.proportion(m, num, den) is None
    ):
        if not set(words.subregions[num]) <= set(words.subregions[den]):
            return Binding(n, None, f"{num} is not part of {den}: no such proportion", contradicted=True)
    quantity = q.proportion(m, num, den)
    if quantity is None:
        return Binding(n, None, f"no proportion {num}/{den or '?'} can be measured")
    return Binding(n, quantity)


def _parentheses(sentence: str) -> list[tuple[int, int]]:
    """Spans ``(open, close)`` of the parenthesised asides of ``sentence``."""
    spans, stack = [], []
    for i, ch in enumerate(sentence):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            spans.append((stack.pop(), i))
    return spans


def bind(sentence: str, numbers: list[Number], m: dict[str, Any]) -> list[Binding]:
    """The quantity of every number of ``sentence`` (see the module docstring)."""
    all_mentions = mentions(sentence)
    out: list[Binding] = []
    windows = _windows(sentence, numbers)
    for n, (a, b, c, d) in zip(numbers, windows):
        asides = [(i, j) for i, j in _parentheses(sentence) if not i < n.start < j]
        plain = [x for x in all_mentions if not any(i < x.start and x.end <= j for i, j in asides)]
        pre = [x for x in plain if a <= x.start and x.end <= b]
        pre = pre or [x for x in all_mentions if a <= x.start and x.end <= b]
        post = [x for x in all_mentions if c <= x.start and x.end <= d]
        before = [x for x in plain if x.end <= n.start] or [x for x in all_mentions if x.end <= n.start]
        codes = _readings(pre, post, before if n.kind == "volume" else [])
        codes = tuple(dict.fromkeys(vocabulary_of(m).region_of(code) for code in codes))
        context = _Context(m, sentence, n, (a, b), (c, d), codes)
        found = _bind_one(context, numbers)
        out.append(found if isinstance(found, Binding) else Binding(n, None, found))
    return out


@dataclass(frozen=True)
class _Context:
    """What binding one number needs: the measurements, the sentence, the number, its windows and the
    codes its words name."""

    m: dict[str, Any]
    sentence: str
    n: Number
    pre: tuple[int, int]
    post: tuple[int, int]
    codes: tuple[str, ...]

    @property
    def pre_text(self) -> str:
        return self.sentence[slice(*self.pre)]

    @property
    def post_text(self) -> str:
        return self.sentence[slice(*self.post)]


def _bound(n: Number, quantities: list[q.Quantity], reasons: list[str]) -> Binding | str:
    """A binding to the first of ``quantities``, the rest as alternatives; else the first reason."""
    if not quantities:
        return reasons[0]
    return Binding(n, quantities[0], alternatives=tuple(quantities[1:]))


def _bind_one(x: _Context, numbers: list[Number]) -> Binding | str:
    n = x.n
    if n.kind == "percent":
        return _percent(x.m, x.sentence, n, x.pre, x.post)
    if n.kind is None:
        return _unitless(x.m, x.sentence, n, x.pre, x.post, x.pre_text, x.post_text)
    if n.kind == "volume":
        return _volume(x)
    words = vocabulary_of(x.m)
    unknown = [c for c in x.codes if c != "G" and c not in words.subregions]
    if unknown and len(unknown) == len(x.codes):
        return f"{words.title} has no label for {unknown[0]}: nothing of it was measured"
    named_tumor = any(c in ("G", words.tumor) for c in x.codes)
    tumor = not x.codes or named_tumor
    if n.size > 1:
        return _group(x, numbers, tumor)
    keys = lengths.single_keys([x.pre_text, x.post_text], x.sentence, x.sentence[: n.start], named_tumor)
    if not tumor and not set(keys) & {"voxel", "midline"}:
        region = next(c for c in x.codes if c not in unknown)
        return (
            f"no {n.kind} of the {words.words(region)} was measured (only of the {words.words(words.tumor)})"
        )
    if n.kind == "area":
        return Binding(n, q.area(x.m)) if q.area(x.m) else "no area was measured"
    if not keys:
        return "no length (diameter, distance from the midline, voxel size) is named for this number"
    if keys[0] in lengths.UNMEASURED:
        return lengths.UNMEASURED[keys[0]]
    found = [quantity for key in keys if key not in lengths.UNMEASURED and (quantity := q.length(x.m, key))]
    return _bound(n, found, [f"no {keys[0]} length was measured"])


def _volume(x: _Context) -> Binding | str:
    words, found, reasons = vocabulary_of(x.m), [], []
    codes = x.codes or (("G",) if _LESION_RE.search(x.pre_text + " " + x.post_text) else ())
    for code in codes:
        if code in words.subregions:
            found.append(q.volume(x.m, code))
        elif code == "G":
            volumes = [x.m["volumes_cm3"][words.tumor], *x.m["lesions"]["volumes_cm3"]]
            found.append(q.measured(f"{words.tumor} or lesion volume", "cm³", volumes))
        else:
            reasons.append(f"{words.title} has no label for {code}: nothing of it was measured")
    return _bound(x.n, found, reasons or ["no sub-region is named for this volume"])


def _group(x: _Context, numbers: list[Number], tumor: bool) -> Binding | str:
    """A member of an ``A x B (x C)`` group (:mod:`.lengths`)."""
    words, n = vocabulary_of(x.m), x.n
    members = [k for k in numbers if k.group == n.group]
    key = lengths.group_key(x.m, members, [x.pre_text, x.post_text])
    if key == "voxel":
        return Binding(n, q.length(x.m, "voxel"))
    if not tumor:
        region = next(c for c in x.codes if c in words.subregions)
        return (
            f"no {n.kind} of the {words.words(region)} was measured (only of the {words.words(words.tumor)})"
        )
    if n.kind == "area":
        return "an area is not stated as A x B"
    quantity, reason = lengths.assign_diameters(x.m, members)[n.position]
    return Binding(n, quantity) if quantity else reason


def _unitless(m, sentence, n, pre_span, post_span, pre_text, post_text) -> Binding | str:
    slice_match = _SLICE_RE.search(pre_text)
    if slice_match:
        plane = (slice_match.group(1) or "axial").lower()
        quantity = q.slice_index(m, plane)
        return Binding(n, quantity) if quantity else f"no {plane} slice was chosen"
    if _LABEL_RE.search(pre_text):
        return Binding(n, q.measured("label value", "", list(vocabulary_of(m).label_values)))
    if _SEQUENCES_RE.match(post_text):
        return Binding(n, q.count_of_images(m))
    if _FRACTION_WORDS_RE.search(pre_text + " " + post_text) and n.value <= 1.0:
        scaled = Number(n.text, 100 * n.value, 100 * n.half_unit, "%", "percent", 1.0, n.start, n.end)
        return _percent(m, sentence, scaled, pre_span, post_span)
    return "a number without a unit that is not a slice index, label or count"
