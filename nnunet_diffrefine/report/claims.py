"""Claims without a unit: side, midline position and crossing, number of lesions.

Read in the findings and impression (the technique and limitations define terms and hedge), and not
in hedged clauses (*may, possibly, cannot be excluded*). Each claim is compared with the measurements:

Every claim found is listed, verified or contradicted.

- Side: *left / right (-sided, hemisphere, ...)*, except where it describes the display (*image
  left*, *left-right*). A location claim holds when it is the side of the WT centroid; in a clause
  about extension (*extends into, involves, crosses*) the other side holds too when WT crosses the
  midline; for a tumor that crosses it, the other side named in a sentence that speaks of extension
  or crossing outside that clause (*bilateral, right greater than left*) is unverifiable. Negated
  (*no extension into the right hemisphere*): wrong when that side is the centroid's,
  or it is an extension claim and WT crosses the midline. *Centred on the midline / midline tumor*
  holds only for side ``midline``.
- Midline crossing: *crosses the midline, bilateral, both hemispheres, transcallosal* against
  *does not cross / without crossing / confined to one hemisphere / unilateral*.
- Lesions (26-connected WT components): ``3 lesions``, *two foci*, *number of lesions: 2*, *two
  satellite / additional / other foci* (3: the others besides the main one), *single /
  solitary / unifocal* (1), *multifocal / multiple / a second / satellite / another lesion* (2 or
  more), *no other / additional lesions* (exactly 1), *no lesion / tumor* (0).

The presence of each sub-region and the statements nothing measured can verify are in
:mod:`.presence`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nnunet_diffrefine.report.numbers import words_value
from nnunet_diffrefine.report.text import clause_bounds, hedged, negated, negation_scopes

_I = re.IGNORECASE
_NUM = r"\d+|(?:(?:twenty|thirty|forty|fifty)[\s-])?(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)|a\s+single|single|solitary|both"
_ADJ = r"(?:(?:separate|distinct|discrete|individual|contiguous|connected|enhancing|segmented|tumou?r|satellite|non-contiguous|discontinuous|isolated|spatially|WT)\s+){0,3}"
_NOUN = r"(?:lesions?|foci|focus|nodules?|masses|tumou?rs|components|sites)"
_NOT_PART = r"(?![\s-]+(?:core|volume|regions?|sub-?regions?|burden|components?|parts?|growth|extent|margins?|bound\w*|tissue|cells?|effect))"
_OTHERS = r"(?:satellite|additional|other|further|smaller|daughter)"
_COUNTS: tuple[tuple[str, str], ...] = (
    (
        "others",
        rf"\b(?P<n>{_NUM})\s+(?:(?:small|tiny|punctate|separate|distinct)\s+)?{_OTHERS}\s+(?:\w+\s+)?{_NOUN}\b{_NOT_PART}",
    ),
    ("exact", rf"\b(?P<n>{_NUM})\s+{_ADJ}{_NOUN}\b{_NOT_PART}"),
    ("exact", rf"\b(?:number|count)\s+of\s+(?:\w+\s+){{0,2}}lesions\s*(?:is|was|:|=|of)?\s*(?P<n>{_NUM})\b"),
    ("exact", rf"\b(?:lesions?|lesion\s+count)\s*[:=]\s*(?P<n>{_NUM})\b"),
    ("one", r"\b(?:unifocal|solitary)\b"),
    ("more", rf"\b(?:multifocal|multicentric)\b|\b(?:multiple|several|numerous)\s+{_ADJ}{_NOUN}\b"),
    (
        "more",
        r"\b(?:second|another|additional|separate|satellite|further|other|smaller|larger|2nd|3rd|third|daughter)\s+(?:\w+\s+)?(?:lesion|focus|foci|nodule|mass|tumou?r)s?\b"
        + _NOT_PART,
    ),
    ("none", r"\bno\s+(?:lesions?|tumou?rs?|mass(?:es)?)\b" + _NOT_PART),
)
_COUNT_RES = tuple((kind, re.compile(p, _I)) for kind, p in _COUNTS)
_NOT_CROSS_RE = re.compile(
    r"\b(?:does|did|do)\s*(?:not|n't)\s+(?:\w+\s+){0,2}?(?:cross|extend\s+(?:across|beyond|past|over)|traverse)\w*"
    r"|\bwithout\s+(?:\w+\s+){0,2}?(?:crossing|extension\s+across|extending\s+across)"
    r"|\bnot\s+cross\w*|\bno\s+(?:\w+\s+){0,2}?(?:midline\s+crossing|crossing|extension\s+across|transgression)"
    r"|\b(?:confined|limited|restricted)\s+to\s+(?:the\s+|one\s+|a\s+single\s+)?(?:left|right|one|ipsilateral)?\s*(?:cerebral\s+)?(?:hemisphere|side)"
    r"|\bunilateral\b",
    _I,
)
_CROSS_RE = re.compile(
    r"\bcross(?:es|ing|ed)?\s+(?:over\s+)?(?:the\s+)?midline|\bacross\s+the\s+midline|\bmidline[\s-]crossing"
    r"|\bbilateral\w*|\bboth\s+(?:cerebral\s+)?hemispheres|\btranscallosal|\bbutterfly"
    r"|\bcontralateral\s+(?:hemisphere|extension|side)|\binto\s+the\s+(?:other|opposite)\s+hemisphere",
    _I,
)
_SIDE_RE = re.compile(r"\b(left|right)(?:[\s-]?(?:sided|hemispher\w*))?\b", _I)
_DISPLAY_RE = re.compile(
    r"\b(?:image|figure|panel|column|screen|display\w*|convention|radiological|viewer)\b", _I
)
_EXTENSION_RE = re.compile(
    r"\b(?:extend\w*|extension|into|cross\w*|across|reach\w*|involv\w*|spread\w*|toward\w*|contralateral|both|bilateral\w*|infiltrat\w*)\b",
    _I,
)
_MIDLINE_AT_RE = re.compile(
    r"\b(?:centred|centered|located|lies|lying|situated|sits|positioned)\s+(?:on|at|along|over)\s+the\s+midline"
    r"|\bmidline\s+(?:tumou?r|lesion|mass|location|position)\b|\bmidline[\s-]cent(?:red|ered)\b",
    _I,
)


VERIFIED = "verified"
UNVERIFIABLE = "unverifiable"
CONTRADICTED = "contradicted"
STATUSES = (VERIFIED, UNVERIFIABLE, CONTRADICTED)


@dataclass(frozen=True)
class Statement:
    """A checked statement of a sentence: the words, the quantity, its status (:data:`STATUSES`), why,
    and its span in the sentence."""

    text: str
    quantity: str
    status: str
    reason: str
    start: int
    end: int


def _count_of(text: str) -> int:
    text = text.lower()
    if text in ("a single", "single", "solitary"):
        return 1
    if text == "both":
        return 2
    return int(text) if text.isdigit() else int(words_value(text) or 0)


def count_claims(sentence: str, m: dict[str, Any]) -> tuple[list[Statement], list[tuple[int, int]]]:
    """Lesion-count claims, verified or contradicted, and the spans they cover (their digits are not
    checked again)."""
    count, scopes = m["lesions"]["count"], negation_scopes(sentence)
    out, spans = [], []
    for kind, regex in _COUNT_RES:
        for match in regex.finditer(sentence):
            if any(a < match.end() and match.start() < b for a, b in spans):
                continue
            a, b = clause_bounds(sentence, match.start())
            if hedged(sentence[a:b]):
                continue
            spans.append(match.span())
            no = negated(sentence, *match.span(), scopes) or re.match(r"no\b", match.group(0), _I)
            if kind == "exact":
                want = _count_of(match.group("n"))
                ok = count == want
            elif kind == "others":
                others = _count_of(match.group("n"))
                want, ok = f"{others} besides the main one ({others + 1} in all)", count == others + 1
            elif kind == "one":
                want, ok = 1, count == 1
            elif kind == "none":
                want, ok = 0, count == 0
            else:
                want, ok = ("exactly 1", count == 1) if no else ("2 or more", count >= 2)
            reason = f"claims {want} lesion(s); {count} lesion(s) were segmented"
            status = VERIFIED if ok else CONTRADICTED
            out.append(Statement(match.group(0), "number of lesions", status, reason, *match.span()))
    return out, spans


def bad(text: str, quantity: str, reason: str, span: tuple[int, int]) -> Statement:
    return Statement(text, quantity, CONTRADICTED, reason, *span)


def judged(wrong: bool, text: str, quantity: str, reason: str, span: tuple[int, int]) -> Statement:
    """A claim that is ``wrong`` (contradicted) or right (verified)."""
    return Statement(text, quantity, CONTRADICTED if wrong else VERIFIED, reason, *span)


def midline_claims(sentence: str, m: dict[str, Any]) -> list[Statement]:
    """Side, midline-location and midline-crossing claims, verified or contradicted."""
    side, crosses, scopes = m.get("side"), bool(m.get("crosses_midline")), negation_scopes(sentence)
    where = "no tumor was segmented" if side is None else f"the WT centroid is {_side_words(side)}"
    crossing = "WT crosses the midline" if crosses else "WT does not cross the midline"
    denied = [match.span() for match in _NOT_CROSS_RE.finditer(sentence)]
    out = [
        judged(
            crosses,
            sentence[slice(*span)],
            "midline crossing",
            f"claims no midline crossing; {crossing}",
            span,
        )
        for span in denied
    ]
    for match in _CROSS_RE.finditer(sentence):
        if any(a < match.end() and match.start() < b for a, b in denied) or hedged(
            sentence[slice(*clause_bounds(sentence, match.start()))]
        ):
            continue
        claim = not negated(sentence, *match.span(), scopes)
        reason = f"claims {'a' if claim else 'no'} midline crossing; {crossing}"
        out.append(judged(claim != crosses, match.group(0), "midline crossing", reason, match.span()))
    for match in _MIDLINE_AT_RE.finditer(sentence):
        no = negated(sentence, *match.span(), scopes)
        reason = f"{'denies' if no else 'claims'} a midline position; {where}"
        out.append(judged((side == "midline") == no, match.group(0), "side", reason, match.span()))
    out += [s for match in _SIDE_RE.finditer(sentence) if (s := _side_claim(sentence, match, m, scopes))]
    return out


def _side_claim(sentence: str, match: re.Match, m: dict[str, Any], scopes) -> Statement | None:
    """The claim of one side word (``None``: it describes the display, or its clause is hedged)."""
    side, crosses = m.get("side"), bool(m.get("crosses_midline"))
    where = "no tumor was segmented" if side is None else f"the WT centroid is {_side_words(side)}"
    claimed, (s, e) = match.group(1).lower(), match.span()
    a, b = clause_bounds(sentence, s)
    if _display(sentence, s, e) or hedged(sentence[a:b]):
        return None
    extension = bool(_EXTENSION_RE.search(sentence[a:b]))
    if side is None:
        wrong, what = not negated(sentence, s, e, scopes), f"claims the {claimed} side"
    elif negated(sentence, s, e, scopes):
        wrong = side == claimed or (extension and crosses)
        what = f"denies the {claimed} side"
    else:
        wrong = side != claimed and not (crosses and (extension or side == "midline"))
        what = f"claims the {claimed} side"
    reason = f"{what}; {where}" + (", crossing the midline" if crosses else "")
    if wrong and crosses and not negated(sentence, s, e, scopes) and _about_crossing(sentence):
        reason += ": the other side may be named for its extension (ambiguous)"
        return Statement(match.group(0), "side", UNVERIFIABLE, reason, s, e)
    return judged(wrong, match.group(0), "side", reason, (s, e))


def _about_crossing(sentence: str) -> bool:
    """Whether the sentence speaks of extension or crossing anywhere (*bilateral, right greater than
    left*)."""
    return bool(
        _CROSS_RE.search(sentence)
        or _EXTENSION_RE.search(sentence)
        or re.search(r"(?:greater|more|larger)\s+than", sentence, _I)
    )


def _side_words(side: str) -> str:
    return "on the midline" if side == "midline" else f"in the {side} hemisphere"


def _display(sentence: str, start: int, end: int) -> bool:
    """Whether a side word describes the display (*image left*, *left-right*), not the patient."""
    if re.match(r"\s*[-/]\s*(?:left|right)\b", sentence[end:], _I) or re.search(
        r"\b(?:left|right)\s*[-/]\s*$", sentence[:start], _I
    ):
        return True
    return bool(_DISPLAY_RE.search(sentence[max(0, start - 30) : end + 30]))
