"""Claims about what the segmentation holds: each sub-region present or absent, and statements no
measurement can verify.

Read like :mod:`.claims` (findings and impression, hedged clauses skipped):

- Sub-regions: a named sub-region not negated claims it present, negated (*no enhancement*, *ET is
  absent*) claims it absent. Volumes below 0.005 cm³ (shown as 0.00) count as either. Clauses with a
  number are left to the number check. *Tumor / lesion / mass* claims a tumor when none was segmented.
  A sub-region the case's label convention has no label for (a *resection cavity* in BraTS 2023
  data) claimed present cannot be verified; claimed absent, it is not flagged.
- Unverifiable (:data:`UNVERIFIABLE`): anatomy (lobes, structures), mass effect, diagnoses, grades,
  molecular markers, haemorrhage, diffusion or perfusion. Nothing measured can confirm them.
"""

from __future__ import annotations

import re
from typing import Any

from nnunet_diffrefine.report.claims import Statement, bad
from nnunet_diffrefine.report.quantities import region_words
from nnunet_diffrefine.report.text import clause_bounds, hedged, mentions, negated, negation_scopes
from nnunet_diffrefine.report.vocabulary import vocabulary_of

_I = re.IGNORECASE
UNVERIFIABLE = re.compile(
    r"\b(?:(?:frontal|parietal|temporal|occipital|insular)(?:[\s-]+(?:lobes?|regions?|cortex))?|insula|thalam\w*|basal\s+ganglia|cerebell\w*|brain\s*stem"
    r"|corpus\s+callosum|ventric\w*|cortex|cortical|subcortical|white\s+matter|gr[ae]y\s+matter|lobes?"
    r"|mass\s+effect|midline\s+shift|herniat\w*|hydroceph\w*|effacement|compress\w*"
    r"|glioblastoma|glioma|astrocytoma|oligodendrogliom\w*|metasta\w*|lymphoma|meningioma|malignan\w*"
    r"|benign|(?:high|low)[\s-]grade|grade|IDH\w*|MGMT|haemorrhag\w*|hemorrhag\w*|calcif\w*"
    r"|diffusion|perfusion)\b",
    _I,
)


def presence_claims(sentence: str, m: dict[str, Any]) -> list[Statement]:
    """Contradicted presence or absence of a sub-region (or of any tumor)."""
    volumes, scopes, out = m["volumes_cm3"], negation_scopes(sentence), []
    names = region_words(m)
    for mention in mentions(sentence):
        a, b = clause_bounds(sentence, mention.start)
        clause = sentence[a:b]
        if hedged(clause) or re.search(r"\d", clause):
            continue
        absent = negated(sentence, mention.start, mention.end, scopes)
        span, text = (mention.start, mention.end), sentence[mention.start : mention.end]
        if mention.region == "G":
            if not absent and m["finding"] == "no tumor segmented":
                out.append(bad(text, "presence of a tumor", "claims a tumor; no tumor was segmented", span))
            continue
        if mention.region not in volumes:
            if not absent:
                title = vocabulary_of(m).title
                reason = f"{title} has no label for it: not among the measurements, cannot be verified"
                out.append(Statement(text, f"presence of {mention.region}", "unverifiable", reason, *span))
            continue
        volume = volumes[mention.region]
        if 0 < volume < 0.005:
            continue
        name = names[mention.region]
        if absent and volume > 0:
            out.append(
                bad(
                    text,
                    f"presence of {mention.region}",
                    f"claims no {name}; {volume:.2f} cm³ was segmented",
                    span,
                )
            )
        elif not absent and volume == 0:
            out.append(bad(text, f"presence of {mention.region}", f"claims {name}; none was segmented", span))
    return out


def unverifiable_claims(sentence: str) -> list[Statement]:
    """Statements about what nothing measured can confirm (anatomy, mass effect, diagnosis, ...)."""
    return [
        Statement(
            match.group(0),
            "not measured",
            "unverifiable",
            "not among the measurements: cannot be verified",
            *match.span(),
        )
        for match in UNVERIFIABLE.finditer(sentence)
    ]
