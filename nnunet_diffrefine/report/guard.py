"""The check of the model's text against the measurements: every number and claim bound to its quantity.

Each sentence is read for

- numbers (:mod:`.numbers`), each bound to the quantity it is stated for: sub-region and kind
  (volume, proportion and its base, longest / perpendicular diameter, distance from the midline,
  area, voxel size, slice index, count; :mod:`.binding`), converted to that quantity's unit and
  compared within the rounding tolerance of :mod:`.quantities` (half a unit of the prompt's last
  decimal plus half a unit of the written number's last digit);
- claims (in the findings and impression): side, midline position and crossing, number of lesions
  (:mod:`.claims`; lesion counts in every section), presence or absence of each sub-region, and
  statements nothing measured can confirm: anatomy, mass effect, diagnosis (:mod:`.presence`).

Every statement that disagrees is ``contradicted``; a number that cannot be bound to a measured
quantity, and an unverifiable claim, is ``unverifiable``. A reply with any contradicted statement is
not used as the report's text (:mod:`.pipeline`); unverifiable ones are marked in it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nnunet_diffrefine.report import claims, presence
from nnunet_diffrefine.report.binding import bind
from nnunet_diffrefine.report.numbers import numbers_in
from nnunet_diffrefine.report.text import plain, sentences

CONTRADICTED = "contradicted"
UNVERIFIABLE = "unverifiable"
CLAIM_SECTIONS = ("findings", "impression")

__all__ = ["CONTRADICTED", "UNVERIFIABLE", "Flag", "check_sections", "check_sentence", "numbers_in"]


@dataclass(frozen=True)
class Flag:
    """A flagged statement: where (section, sentence, the sentence's span in the section), what
    (the words, the quantity), ``status`` (contradicted / unverifiable) and why."""

    section: str
    sentence: str
    statement: str
    quantity: str
    status: str
    reason: str
    start: int
    end: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["start"], data["end"]
        return data


def check_sentence(
    sentence: str, measurements: dict[str, Any], with_claims: bool = True
) -> list[claims.Statement]:
    """The contradicted and unverifiable statements of one sentence, in order."""
    found, covered = claims.count_claims(sentence, measurements)
    if with_claims:
        found += claims.midline_claims(sentence, measurements)
        found += presence.presence_claims(sentence, measurements)
        found += presence.unverifiable_claims(sentence)
    numbers = [n for n in numbers_in(sentence) if not any(a <= n.start and n.end <= b for a, b in covered)]
    for binding in bind(sentence, numbers, measurements):
        n, quantity = binding.number, binding.quantity
        if quantity is None:
            status = CONTRADICTED if binding.contradicted else UNVERIFIABLE
            found.append(claims.Statement(n.text, "unbound", status, binding.reason, n.start, n.end))
        elif not quantity.agrees(n.base, n.half_unit * n.factor):
            reason = f"contradicts the measured {quantity.name} {quantity.shown}"
            found.append(claims.Statement(n.text, quantity.name, CONTRADICTED, reason, n.start, n.end))
    return sorted(found, key=lambda s: s.start)


def check_sections(sections: dict[str, str], measurements: dict[str, Any]) -> list[Flag]:
    """Every flagged statement of the model's ``sections`` (see the module docstring)."""
    flags: list[Flag] = []
    for section, text in sections.items():
        for start, end in sentences(text):
            sentence, read = text[start:end], plain(text[start:end])
            for s in check_sentence(read, measurements, with_claims=section in CLAIM_SECTIONS):
                flags.append(
                    Flag(
                        section,
                        sentence.strip(),
                        sentence[s.start : s.end].strip(),
                        s.quantity,
                        s.status,
                        s.reason,
                        start,
                        end,
                    )
                )
    return flags


def contradictions(flags: list[Flag]) -> list[Flag]:
    """The contradicted statements among ``flags``."""
    return [f for f in flags if f.status == CONTRADICTED]
