"""Reading the model's text: sentences, clauses, sub-region mentions and negation scopes.

Sub-regions are named by abbreviation (upper case only: ``ET``, ``NC NCR NETC``, ``ED SNFH``, ``TC``,
``WT``, ``RC``, ``CC``, ``GTV``) or by name, any case: *enhancing tumor / enhancement* (ET), *necrotic /
non-enhancing core, necrosis* (NC), *edema, peritumoral edema, (non-enhancing) FLAIR hyperintensity*
(ED), *tumor core, core* (TC), *whole / total / entire tumor* (WT), *resection / surgical cavity* (RC),
*cyst, cystic component* (CC), *gross tumor volume* (GTV). The codes are the report's
(:mod:`.vocabulary`): the same tissue has the same code in every label convention. *tumor, lesion,
mass* alone is the generic mention ``G`` (the whole tumor or one lesion). Where names overlap the
longest, earliest one wins (*non-enhancing* is NC, not ET; *non-enhancing FLAIR hyperintensity* is ED).

A sub-region word describing the lesion is a descriptor, not the sub-region: *non-enhancing / enhancing
/ ring-enhancing / necrotic / cystic / FLAIR-hyperintense lesion, mass, neoplasm, (signal) abnormality*
and *non-enhancing
tumor*, *heterogeneously enhancing tumor* are ``G`` (*enhancing tumor* alone stays ET, its challenge
name; *... tumor core / component / portion* stays the sub-region). A descriptor also claims what it
says (``implies``: *non-enhancing* no ET, *enhancing* ET, *necrotic* NC, *cystic* CC; *predominantly
non-enhancing* nothing). Some words may mean two things (``readings``): *non-enhancing tumor* in a
sentence that names other sub-regions is the lesion or the NC of a list; *FLAIR hyperintensity*
without *surrounding / peritumoral* (before it or just after) or ``(ED)`` / ``(SNFH)`` after it is ED
or the whole FLAIR abnormality (WT). ``AP x TR x CC``
names directions, not the cystic component.

A negation cue (*no, not, without, absent, free of, none, ...*) negates what follows it up to the
end of its clause: the next ``; :``, *but / whereas / while / although / with*, an *and* or a comma
that is not followed by another sub-region (``no ET, NC or ED``: all three negated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.IGNORECASE
_QUALIFIED = r"(?:ring|rim|peripheral(?:ly)?|heterogeneous(?:ly)?|homogeneous(?:ly)?|avid(?:ly)?|nodular(?:ly)?|patchy|faint(?:ly)?|intense(?:ly)?|mild(?:ly)?|minimal(?:ly)?|partial(?:ly)?|irregular(?:ly)?|thick(?:ly)?|thin(?:ly)?|solid(?:ly)?|strong(?:ly)?|vivid(?:ly)?)[\s-]+enhancing"
_PREDOMINANTLY = r"(?:predominantly|largely|mostly|mainly|essentially|primarily)[\s-]+"
_LESION_WORDS = (
    r"intra-?axial|infiltrat\w+|expansile|solid|heterogeneous|large|small|cortical|subcortical|cerebral"
    r"|(?:left|right)(?:[\s-]?(?:sided|hemispher\w*))?|hemispher\w*|(?:fronto|parieto|temporo|occipito)[\s-]?\w+"
    r"|frontal|parietal|temporal|occipital|insular|lobar|deep|periventricular|well[\s-]defined|ill[\s-]defined"
    r"|(?:T2[\s/-]*)?(?:FLAIR[\s-]+)?hyper-?intense|hypo-?intense|necrotic|cystic|non[\s-]?enhancing"
    r"|(?:\w+ly[\s-]+)?enhancing"
)
_SEP = r"(?:\s*,\s*(?:and\s+)?|\s+and\s+|[\s-]+)"
_LESION_NOUN = rf"(?:(?:{_LESION_WORDS}){_SEP}){{0,4}}"
_NOT_PART = r"(?![\s-]+(?:core|components?|portions?|parts?|regions?|sub-?regions?|volumes?|rim|tissue|compartments?))"
_DESCRIPTORS: tuple[tuple[str, tuple[str, bool] | None], ...] = (
    # (the words before the noun, what they claim); the noun is lesion / mass / neoplasm, or tumor
    (rf"{_PREDOMINANTLY}non[\s-]?enhancing", None),
    (r"non[\s-]?enhancing", ("ET", False)),
    (_QUALIFIED, ("ET", True)),
    (r"(?:contrast[\s-]?)?enhancing", ("ET", True)),
    (r"necrotic", ("NC", True)),
    (r"cystic", ("CC", True)),
    (r"(?:T2[\s/-]*)?FLAIR[\s-]+hyperintense|hyperintense", None),
)
_DESCRIBED_RES = tuple(
    (
        re.compile(
            rf"\b(?:{words}){_SEP}{_LESION_NOUN}(?P<noun>lesions?|mass(?:es)?|neoplasms?|tumou?rs?|(?:signal\s+)?abnormalit(?:y|ies))\b{_NOT_PART}",
            _I,
        ),
        implies,
    )
    for words, implies in _DESCRIPTORS
)
_DIRECTIONS_RE = re.compile(r"\b(?:AP|TR|TV|LR|RL|ML|SI|CC)(?:\s*(?:x|×|/)\s*(?:AP|TR|TV|LR|RL|ML|SI|CC))+\b")
_SURROUNDING_RE = re.compile(r"\b(?:surrounding|peri\w+|vasogenic|oedema|edema)\b", _I)
_NAMES: tuple[tuple[str, str, int], ...] = (
    (
        "NC",
        r"\bnecrotic\s*(?:/|and|or)?\s*non[\s-]?enhancing(?:\s+tumou?r)?(?:\s+core)?"
        r"|\bnon[\s-]?enhancing(?:\s+tumou?r)?(?:\s+core)?|\bnecro\w*(?:\s+(?:tumou?r\s+)?core)?",
        _I,
    ),
    ("NC", r"\b(?:NCR?|NETC)\b", 0),
    ("TC", r"\btumou?r(?:'s)?\s+core\b|\bcore\b", _I),
    ("TC", r"\bTC\b", 0),
    ("ET", r"\b(?:contrast[\s-]?)?enhanc\w*(?:\s+(?:tumou?r|component|rim|portion|part))?", _I),
    ("ET", r"\bET\b", 0),
    (
        "ED",
        r"\b(?:peri\w*\s+|vasogenic\s+)?o?edema\w*"
        r"|\b(?:surrounding\s+)?(?:non[\s-]?enhancing\s+)?(?:T2[\s-]?)?FLAIR\s+hyperintens\w*",
        _I,
    ),
    ("ED", r"\b(?:ED|SNFH)\b", 0),
    ("RC", r"\b(?:(?:resection|surgical|post[\s-]?operative)\s+)?cavit(?:y|ies)\b", _I),
    ("RC", r"\bRC\b", 0),
    ("CC", r"\bcyst(?:s|ic(?:\s+(?:component|portion|part))?)?\b", _I),
    ("CC", r"\bCC\b", 0),
    ("GTV", r"\bgross\s+tumou?r\s+volume\b", _I),
    ("GTV", r"\bGTV\b", 0),
    ("WT", r"\b(?:whole|total|entire|overall)[\s-]+(?:tumou?r|lesion)(?:\s+(?:burden|volume))?", _I),
    ("WT", r"\b(?:in\s+)?total\b(?!\s+of)", _I),
    ("WT", r"\bWT\b", 0),
    ("G", r"\btumou?rs?\b|\blesions?\b|\bmass(?:es)?\b(?!\s+effect)|\bneoplasm\b", _I),
)
_REGION_RES = tuple((name, re.compile(pattern, flags)) for name, pattern, flags in _NAMES)

SENTENCE_RE = re.compile(r"[^\n]+?(?:[.!?](?=\s|$)|(?=\n)|$)")
_ABBREVIATION_RE = re.compile(r"\b(?:approx|ca|circa|e\.g|i\.e|vs|cf|fig|figs|no|nr|incl|resp)\.$", _I)
NEGATION_RE = re.compile(
    r"\b(?:no|not|without|absent|absence|lacks?|lacking|free\s+of|neither|nor|none|nil)\b|n't\b", _I
)
HEDGE_RE = re.compile(r"\b(?:may|might|could|possibl\w*|probabl\w*|suspect\w*|cannot|likely)\b", _I)
_POST_NEGATION_RE = re.compile(
    r"^\s*(?:\([^)]*\)\s*)?(?:(?:is|are|was|were|appears?|seems?)\s+)?(?:absent|none|nil|"
    r"not\s+(?:present|seen|identified|detected|segmented|visible|demonstrated))\b|^\s*:\s*(?:none|absent)\b",
    _I,
)
_HARD_BOUNDARY_RE = re.compile(r"[;:.!?()]|\b(?:but|whereas|while|although|however|with|which)\b", _I)
_SOFT_BOUNDARY_RE = re.compile(r",|\band\b", _I)
_LIST_WORDS = r"(?:\s*(?:or|nor|any|a|an|the)\b)*\s*"
CLAUSE_RE = re.compile(r"[,;:]|\b(?:and|but|whereas|while|although|with)\b", _I)


@dataclass(frozen=True)
class Mention:
    """A sub-region named in a sentence: ``region`` a code (NC ED ET TC WT RC CC GTV) or G (generic),
    its span, the other codes it may mean (``also``) and, for a descriptor, the sub-region it claims
    present or absent (``implies``)."""

    region: str
    start: int
    end: int
    also: tuple[str, ...] = ()
    implies: tuple[str, bool] | None = None

    @property
    def readings(self) -> tuple[str, ...]:
        """Every code the mention may mean, the likeliest first."""
        return (self.region, *self.also)


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences (or lines) of ``text``, leading blanks excluded; no break
    after an abbreviation (*approx., ca., e.g.*)."""
    spans: list[tuple[int, int]] = []
    for match in SENTENCE_RE.finditer(text):
        start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
        if start >= match.end():
            continue
        previous = text[spans[-1][0] : spans[-1][1]] if spans else ""
        if _ABBREVIATION_RE.search(previous) and "\n" not in text[spans[-1][1] : start]:
            spans[-1] = (spans[-1][0], match.end())
        else:
            spans.append((start, match.end()))
    return spans


def plain(text: str) -> str:
    """``text`` with markdown emphasis and code marks (``* _ ` #``) blanked, same length and spans."""
    return re.sub(r"[*`#]|(?<!\w)_+|_+(?!\w)", lambda m: " " * len(m.group(0)), text)


def _descriptors(text: str) -> list[Mention]:
    """Lesions described by a sub-region word (*non-enhancing lesion*): ``G`` mentions."""
    found = []
    for regex, implies in _DESCRIBED_RES:
        for m in regex.finditer(text):
            if m.group("noun").lower().startswith("tum") and re.match(
                r"(?:contrast[\s-]?)?enh", m.group(0), _I
            ):
                continue  # "enhancing tumor" is the ET's own name
            found.append(Mention("G", m.start(), m.end(), implies=implies))
    return found


def _with_readings(mention: Mention, text: str, kept: list[Mention]) -> Mention:
    """``mention`` with the other codes it may mean in ``text`` (module docstring)."""
    words = text[mention.start : mention.end]
    others = [k for k in kept if k is not mention and k.region != "G"]
    if mention.region == "G" and re.match(r"non[\s-]?enhancing[\s-]+tumou?r", words, _I) and others:
        return Mention("G", mention.start, mention.end, ("NC",), mention.implies)
    named = re.match(r"\s*\(\s*(?:ED|SNFH)\b", text[mention.end :])
    around = text[mention.start : mention.end + 15]
    if (
        mention.region == "ED"
        and re.search(r"FLAIR", words, _I)
        and not (_SURROUNDING_RE.search(around) or named)
    ):
        return Mention("ED", mention.start, mention.end, ("WT",))
    return mention


def mentions(text: str) -> list[Mention]:
    """The sub-region mentions of ``text`` in order, overlaps resolved to the longest earliest."""
    found = _descriptors(text)
    found += [Mention(name, m.start(), m.end()) for name, regex in _REGION_RES for m in regex.finditer(text)]
    directions = [m.span() for m in _DIRECTIONS_RE.finditer(text)]
    found = [m for m in found if not any(a <= m.start and m.end <= b for a, b in directions)]
    found.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[Mention] = []
    for mention in found:
        if not kept or mention.start >= kept[-1].end:
            kept.append(mention)
    return [_with_readings(mention, text, kept) for mention in kept]


def clause_bounds(text: str, position: int) -> tuple[int, int]:
    """The clause of ``text`` around ``position`` (split at ``, ; :`` and *and / but / with ...*)."""
    start, end = 0, len(text)
    for match in CLAUSE_RE.finditer(text):
        if match.end() <= position:
            start = match.end()
        elif match.start() > position:
            end = match.start()
            break
    return start, end


def negation_scopes(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` a negation cue applies to (see the module docstring)."""
    scopes = []
    for cue in NEGATION_RE.finditer(text):
        end = cue.end()
        while True:
            hard = _HARD_BOUNDARY_RE.search(text, end)
            soft = _SOFT_BOUNDARY_RE.search(text, end)
            stop = min(m.start() for m in (hard, soft) if m) if (hard or soft) else len(text)
            if soft and soft.start() == stop and (not hard or hard.start() > stop):
                rest = text[soft.end() :]
                lead = re.match(_LIST_WORDS, rest, _I)
                following = mentions(rest[lead.end() : lead.end() + 60]) if lead else []
                if soft.group(0) == "," and following and following[0].start == 0:
                    end = soft.end()
                    continue
            break
        scopes.append((cue.start(), stop))
    return scopes


def negated(text: str, start: int, end: int, scopes: list[tuple[int, int]] | None = None) -> bool:
    """Whether the span ``start:end`` of ``text`` lies in a negation scope or is followed by *is
    absent / not seen / none*."""
    scopes = negation_scopes(text) if scopes is None else scopes
    if any(a <= start and end <= b for a, b in scopes):
        return True
    return bool(_POST_NEGATION_RE.match(text[end:]))


def hedged(text: str) -> bool:
    """Whether ``text`` is hedged (*may, possibly, cannot be excluded*): no claim is read from it."""
    return bool(HEDGE_RE.search(text))
