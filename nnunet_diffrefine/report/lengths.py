"""Which measured length a length of a sentence states: by structure first, then by its words.

- A group ``A x B unit`` is a diameter pair: the bidimensional measurement of the largest axial slice,
  matched as a whole (``A`` the longest and ``B`` the perpendicular diameter, or the other way round),
  whatever else the sentence names (*not crossing the midline, 4.1 x 3.4 cm*). A triple ``A x B x C``
  is the voxel size when its own words say so (*voxel, resolution, spacing, isotropic*) or every
  member is one of the voxel spacings; else it is a tridimensional size: two members are the axial
  diameters, the third (craniocaudal) extent was not measured and is unverifiable.
- A single length takes the kind its own words give (the text between it and its neighbours:
  *from / off / lateral to the midline*, *voxel*, *perpendicular*, *longest*, *diameter, measures,
  size, on the largest axial slice*). A word only earlier in the sentence is a weaker hint: the number
  is read both as that kind and as a diameter (:mod:`.guard` then calls it unverifiable unless both
  or neither fit). *Crossing the midline* and *midline shift* do not name a distance.
"""

from __future__ import annotations

import re
from itertools import permutations
from typing import Any

from nnunet_diffrefine.report import quantities as q
from nnunet_diffrefine.report.numbers import Number

_I = re.IGNORECASE
_LENGTH_KEYS: tuple[tuple[str, str], ...] = (
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
_VOXEL_RE = re.compile(_LENGTH_KEYS[0][1], _I)
THIRD_DIAMETER = "the third (craniocaudal) diameter of a tridimensional size was not measured"


def _names_midline_distance(text: str) -> bool:
    """Whether ``text`` names the distance from the midline (not a crossing or a shift)."""
    return any(
        not _CROSSING_BEFORE_RE.search(text[max(0, m.start() - 30) : m.start()])
        for m in _MIDLINE_RE.finditer(text)
    )


def length_key(texts: list[str]) -> str | None:
    """The first kind of length named in ``texts`` (in order), or ``None``."""
    for text in texts:
        if _names_midline_distance(text):
            return "midline"
        for key, pattern in _LENGTH_KEYS:
            if re.search(pattern, text, _I):
                return key
    return None


def single_keys(own: list[str], earlier: str, tumor: bool) -> tuple[str, ...]:
    """The kinds a single length may be: named in its ``own`` windows, else the hint ``earlier`` in the
    sentence and (a length of the tumor or of nothing named) a diameter."""
    key = length_key(own)
    if key is not None:
        return (key,)
    hint = length_key([earlier])
    keys = ([hint] if hint else []) + (["pair"] if tumor or hint else [])
    return tuple(dict.fromkeys(keys))


def group_key(m: dict[str, Any], members: list[Number], own: list[str]) -> str:
    """``voxel`` or ``pair`` (pairs and tridimensional sizes) for an ``A x B (x C)`` group."""
    if length_key(own) == "voxel" or any(_VOXEL_RE.search(text) for text in own):
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

