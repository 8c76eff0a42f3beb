"""Which measured length a length of a sentence states: by structure first, then by its words.

- A group ``A x B unit`` is a diameter pair: the bidimensional measurement of the largest axial slice,
  matched as a whole (``A`` the longest and ``B`` the perpendicular diameter, or the other way round),
  whatever else the sentence names (*not crossing the midline, 4.1 x 3.4 cm*). A triple ``A x B x C``
  is the voxel size when its own words say so (*voxel, resolution, spacing, isotropic*) or every
  member is one of the voxel spacings; else it is a tridimensional size: two members are the axial
  diameters, the third (craniocaudal) extent was not measured and is unverifiable.
- A single length takes the kind its own words give (the text between it and its neighbours:
  *from / off / lateral to the midline*, or *away / distance* in a sentence naming it, *craniocaudal*, *voxel*, *perpendicular*, *longest*,
  *diameter, measures, size, on the largest axial slice*), the most specific if several; two specific
  kinds are two readings. Craniocaudal extents are not measured: unverifiable. A word only earlier in
  the sentence is a weaker hint: the number is read both as that kind and as a diameter (:mod:`.guard`
  then calls it unverifiable unless both or neither fit). *Crossing the midline* and *midline shift*
  do not name a distance.
"""

from __future__ import annotations

import re
from itertools import permutations
from typing import Any

from nnunet_diffrefine.report import quantities as q
from nnunet_diffrefine.report.numbers import Number

_I = re.IGNORECASE
_LENGTH_KEYS: tuple[tuple[str, str], ...] = (
    (
        "craniocaudal",
        r"\bcranio[\s-]?caudal\w*|\bsuperior[\s-]+(?:to[\s-]+)?inferior\w*|\bin\s+height\b|\bCC\s+(?:extent|dimension|diameter)",
    ),
    ("voxel", r"\bvoxels?\b|\bresolution\b|\bspacing\b|\bslice\s+thickness\b|\bisotropic\b"),
    ("perpendicular", r"\bperpendicular\b|\bshort(?:est)?\b|\borthogonal\b|\bminor\b"),
    ("long", r"\blong(?:est)?\b|\bmaxim(?:al|um)\b|\bgreatest\b|\bmajor\b"),
    (
        "pair",
        r"\bdiameters?\b|\blength\b|\bmeasur\w*|\bextent\b|\bsize\b|\bdimensions?\b|\bspans?\b"
        r"|\bbidimensional\b|\baxial\s+(?:slice|section|image|plane)\b",
    ),
)
_MIDLINE_RE = re.compile(r"\bmidline\b(?![\s-]+(?:shift|crossing|structures?))", _I)
_CROSSING_BEFORE_RE = re.compile(
    r"\b(?:cross\w*|across|travers\w*|beyond|over|past|transgress\w*|reach\w*|involv\w*)\s+(?:the\s+)?$", _I
)
_DISTANCE_RE = re.compile(r"\baway\b|\bdistan\w+|\boffset\b|\bdisplaced\b", _I)
_VOXEL_RE = re.compile(_LENGTH_KEYS[1][1], _I)
THIRD_DIAMETER = "the third (craniocaudal) diameter of a tridimensional size was not measured"
UNMEASURED = {"craniocaudal": "the craniocaudal extent was not measured (only the axial diameters)"}


def _names_midline_distance(text: str) -> bool:
    """Whether ``text`` names the distance from the midline (not a crossing or a shift)."""
    return any(
        not _CROSSING_BEFORE_RE.search(text[max(0, m.start() - 30) : m.start()])
        for m in _MIDLINE_RE.finditer(text)
    )


def length_keys(texts: list[str]) -> list[str]:
    """Every kind of length named in ``texts``, the most specific first (``pair`` last)."""
    found = {"midline"} if any(_names_midline_distance(text) for text in texts) else set()
    found |= {key for key, pattern in _LENGTH_KEYS for text in texts if re.search(pattern, text, _I)}
    return [key for key in ("midline", *(k for k, _ in _LENGTH_KEYS)) if key in found]


def single_keys(own: list[str], sentence: str, earlier: str, tumor: bool) -> tuple[str, ...]:
    """The kinds a single length may be: the specific ones named in its ``own`` windows (several:
    each a reading; *away, distance, offset* there in a ``sentence`` naming the midline: the midline
    distance), else ``pair`` if named there, else the hint ``earlier`` in the sentence and (a length
    of the tumor or of nothing named) a diameter."""
    keys = length_keys(own)
    if any(_DISTANCE_RE.search(text) for text in own) and _MIDLINE_RE.search(sentence):
        keys = ["midline", *(key for key in keys if key != "midline")]
    specific = [key for key in keys if key != "pair"]
    if specific or keys:
        return tuple(specific or keys)
    hint = length_keys([earlier])[:1]
    keys = hint + (["pair"] if tumor or hint else [])
    return tuple(dict.fromkeys(keys))


def group_key(m: dict[str, Any], members: list[Number], own: list[str]) -> str:
    """``voxel`` or ``pair`` (pairs and tridimensional sizes) for an ``A x B (x C)`` group."""
    if any(_VOXEL_RE.search(text) for text in own):
        return "voxel"
    voxel = q.length(m, "voxel")
    if len(members) == 3 and voxel and all(voxel.agrees(n.base, n.half_unit * n.factor) for n in members):
        return "voxel"
    return "pair"


def _fits(quantity: q.Quantity, n: Number) -> bool:
    return quantity.agrees(n.base, n.half_unit * n.factor)


def assign_diameters(m: dict[str, Any], members: list[Number]) -> list[tuple[q.Quantity | None, str]]:
    """The diameter each member of a pair or tridimensional group states, ``(None, why)`` for the
    unmeasured third one: the assignment of the longest and perpendicular diameters to two members
    that fits most of them (the written order first on ties)."""
    long, perp = q.length(m, "long"), q.length(m, "perpendicular")
    if long is None or perp is None:
        return [(None, "no diameter was measured")] * len(members)
    best: tuple[int, ...] = (0, 1)
    score = -1
    for option in permutations(range(len(members)), 2):
        fits = _fits(long, members[option[0]]) + _fits(perp, members[option[1]])
        if fits > score:
            best, score = option, fits
    if score == 0:
        best = (0, 1)
    pair = q.length(m, "pair")
    out: list[tuple[q.Quantity | None, str]] = [(None, THIRD_DIAMETER)] * len(members)
    for position, which in zip(best, (long, perp)):
        out[position] = (which if score > 0 else pair, "")
    return out
