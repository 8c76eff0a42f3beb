"""Claims about what the segmentation holds: each sub-region present or absent, and statements no
measurement can verify.

Read like :mod:`.claims` (findings and impression, hedged clauses skipped):

- Sub-regions: a named sub-region not negated claims it present, negated (*no enhancement*, *ET is
  absent*) claims it absent. Volumes below 0.005 cm³ (shown as 0.00) count as either. Clauses with a
  number, and a sub-region whose number follows it (*ET: 0 mL*, *volume of enhancing tumor is 0 mL*),
  are left to the number check. *Tumor / lesion / mass* claims a tumor when none was segmented.
  A sub-region the case's label convention has no label for (a *resection cavity* in BraTS 2023
  data) claimed present cannot be verified; claimed absent, it is not flagged.
- A lesion described by a sub-region word (*non-enhancing lesion*, *ring-enhancing mass*; :mod:`.text`)
  claims what the word says (no ET, ET). Words with two readings (*FLAIR hyperintensity*: ED or WT)
  are verified when both hold, contradicted when neither does, else unverifiable.
- Every claim checked is listed, ``verified`` ones too.
- Unverifiable (:data:`UNMEASURED_RE`): anatomy (lobes, structures), mass effect, diagnoses, grades,
  molecular markers, haemorrhage, diffusion or perfusion. Nothing measured can confirm them.
"""

from __future__ import annotations

import re
from typing import Any

from nnunet_diffrefine.report.claims import CONTRADICTED, UNVERIFIABLE, VERIFIED, Statement
from nnunet_diffrefine.report.measurements import NO_TUMOR
from nnunet_diffrefine.report.quantities import region_words
from nnunet_diffrefine.report.text import (
    Mention,
    clause_bounds,
    hedged,
    mentions,
    negated,
    negation_scopes,
)
from nnunet_diffrefine.report.vocabulary import vocabulary_of

_I = re.IGNORECASE
UNMEASURED_RE = re.compile(
    r"\b(?:(?:frontal|parietal|temporal|occipital|insular)(?:[\s-]+(?:lobes?|regions?|cortex))?"
    r"|(?:fronto|parieto|temporo|occipito)[\s-]?\w+|insula|thalam\w*|basal\s+ganglia|cerebell\w*|brain\s*stem"
    r"|corpus\s+callosum|ventric\w*|cortex|cortical|subcortical|white\s+matter|gr[ae]y\s+matter|lobes?"
    r"|mass\s+effect|midline\s+shift|herniat\w*|hydroceph\w*|effacement|compress\w*"
    r"|glioblastoma|glioma|astrocytoma|oligodendrogliom\w*|metasta\w*|lymphoma|meningioma|malignan\w*"
    r"|benign|(?:high|low)[\s-]grade|grade|IDH\w*|MGMT|haemorrhag\w*|hemorrhag\w*|calcif\w*"
    r"|diffusion|perfusion)\b",
    _I,
)


def _claim(m: dict[str, Any], code: str, present: bool) -> tuple[str, str] | None:
    """``(status, reason)`` of the claim that sub-region ``code`` is ``present`` (or absent); ``None``
    for the absence of one the convention has no label for (nothing to say)."""
    volumes, words = m["volumes_cm3"], vocabulary_of(m)
    code = words.region_of(code)
    if code not in volumes:
        if not present:
            return None
        return (
            UNVERIFIABLE,
            f"{words.title} has no label for it: not among the measurements, cannot be verified",
        )
    volume, name = volumes[code], region_words(m)[code]
    if 0 < volume < 0.005:
        return VERIFIED, f"{name} {volume:.4f} cm³ (shown as 0.00): either claim holds"
    if not present and volume > 0:
        return CONTRADICTED, f"claims no {name}; {volume:.2f} cm³ was segmented"
    if present and volume == 0:
        return CONTRADICTED, f"claims {name}; none was segmented"
    amount = f"{volume:.2f} cm³ was" if volume > 0 else "none was"
    return VERIFIED, f"claims {'' if present else 'no '}{name}; {amount} segmented"


def _reading(m: dict[str, Any], mention: Mention, code: str, absent: bool) -> tuple[str, str] | None:
    """``(status, reason)`` of one reading of a mention, or ``None`` when it claims nothing."""
    if code != "G":
        return _claim(m, code, not absent)
    if not absent and m["finding"] == NO_TUMOR:
        return CONTRADICTED, "claims a tumor; no tumor was segmented"
    if mention.implies is None or absent:
        return None
    return _claim(m, *mention.implies)


def _combined(readings: list[tuple[str, str] | None]) -> tuple[str, str] | None:
    """All readings verified: verified; all contradicted: contradicted; else unverifiable."""
    found = [r for r in readings if r is not None]
    if not found:
        return None
    statuses = {status for status, _ in found}
    if len(statuses) == 1 and len(found) == len(readings):
        return found[0]
    if statuses == {VERIFIED} and len(found) < len(readings):
        return found[0]
    reasons = "; ".join(reason for _, reason in found)
    return UNVERIFIABLE, f"the words can be read more than one way: {reasons}"


_QUANTITY_AFTER_RE = re.compile(r"^[^.;]*?(?::|\b(?:is|of|measures?|measuring|volume|=))\s*[~≈]?\s*\d", _I)


def presence_claims(sentence: str, m: dict[str, Any]) -> list[Statement]:
    """Presence or absence of a sub-region (or of any tumor), each verified, contradicted or (where no
    label or no single reading decides it) unverifiable."""
    scopes, out, found = negation_scopes(sentence), [], mentions(sentence)
    for i, mention in enumerate(found):
        a, b = clause_bounds(sentence, mention.start)
        clause = sentence[a:b]
        following = sentence[mention.end : found[i + 1].start if i + 1 < len(found) else len(sentence)]
        if hedged(clause) or re.search(r"\d", clause) or _QUANTITY_AFTER_RE.match(following):
            continue
        absent = negated(sentence, mention.start, mention.end, scopes)
        verdict = _combined([_reading(m, mention, code, absent) for code in mention.readings])
        if verdict is None:
            continue
        status, reason = verdict
        quantity = "presence of a tumor" if reason.startswith("claims a tumor") else _quantity(mention)
        text = sentence[mention.start : mention.end]
        out.append(Statement(text, quantity, status, reason, mention.start, mention.end))
    return out


def _quantity(mention: Mention) -> str:
    codes = [mention.implies[0] if code == "G" and mention.implies else code for code in mention.readings]
    return "presence of " + " or ".join(dict.fromkeys(c for c in codes if c != "G"))


def unverifiable_claims(sentence: str) -> list[Statement]:
    """Statements about what nothing measured can confirm (anatomy, mass effect, diagnosis, ...)."""
    return [
        Statement(
            match.group(0),
            "not measured",
            UNVERIFIABLE,
            "not among the measurements: cannot be verified",
            *match.span(),
        )
        for match in UNMEASURED_RE.finditer(sentence)
    ]
