"""The check of the model's text against the measurements: every number and claim bound to its quantity.

Each sentence is read for

- numbers (:mod:`.numbers`), each bound to the quantity it is stated for: sub-region and kind
  (volume, proportion and its base, longest / perpendicular diameter or the ``A x B`` pair, distance
  from the midline, area, voxel size, slice index, count; :mod:`.binding`, :mod:`.lengths`), converted
  to that quantity's unit and compared within the rounding tolerance of :mod:`.quantities` (half a
  unit of the prompt's last decimal plus half a unit of the written number's last digit, or of the
  rounding an approximate number states: *about 24 mL*);
- claims (in the findings and impression): side, midline position and crossing, number of lesions
  (:mod:`.claims`; lesion counts in every section), presence or absence of each sub-region, and
  statements nothing measured can confirm: anatomy, mass effect, diagnosis (:mod:`.presence`).

Each statement is ``verified`` (it agrees with the measurements), ``contradicted`` (it disagrees) or
``unverifiable`` (nothing measured can confirm it, it cannot be bound to a measured quantity, or it
can be read as more than one quantity and fits one reading but not another: a binding that is
ambiguous is not a contradiction; a number is contradicted only when every reading contradicts it).
A reply with any contradicted statement is not used as the report's text (:mod:`.pipeline`);
unverifiable ones are marked in it. :func:`review_sections` gives every statement,
:func:`check_sections` the flagged ones (contradicted and unverifiable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nnunet_diffrefine.report import claims, presence
from nnunet_diffrefine.report.binding import Binding, bind
from nnunet_diffrefine.report.claims import CONTRADICTED, STATUSES, UNVERIFIABLE, VERIFIED
from nnunet_diffrefine.report.numbers import numbers_in
from nnunet_diffrefine.report.text import plain, sentences

CLAIM_SECTIONS = ("findings", "impression")

__all__ = [
    "CONTRADICTED",
    "STATUSES",
    "UNVERIFIABLE",
    "VERIFIED",
    "Flag",
    "check_sections",
    "check_sentence",
    "contradictions",
    "flagged",
    "numbers_in",
    "review_sections",
]


@dataclass(frozen=True)
class Flag:
    """A checked statement: where (section, sentence, the sentence's span in the section), what
    (the words, the quantity), ``status`` (verified / unverifiable / contradicted) and why."""

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


def _number_statement(binding: Binding) -> claims.Statement:
    """The verdict on one bound number (module docstring)."""
    n, readings = binding.number, binding.readings
    span = (n.start, n.end)
    if not readings:
        status = CONTRADICTED if binding.contradicted else UNVERIFIABLE
        return claims.Statement(n.text, "unbound", status, binding.reason, *span)
    fits = [r.agrees(n.base, n.half_unit * n.factor) for r in readings]
    name = " or ".join(r.name for r in readings)
    shown = "; ".join(f"{r.name} {r.shown}" for r in readings)
    if all(fits):
        return claims.Statement(n.text, name, VERIFIED, f"agrees with the measured {shown}", *span)
    if not any(fits):
        reason = f"contradicts the measured {shown}"
        if len(readings) > 1:
            reason = f"contradicts every reading: the measured {shown}"
        return claims.Statement(n.text, readings[0].name, CONTRADICTED, reason, *span)
    right = [r for r, ok in zip(readings, fits) if ok]
    wrong = [r for r, ok in zip(readings, fits) if not ok]
    reason = (
        f"ambiguous: agrees with the measured {'; '.join(f'{r.name} {r.shown}' for r in right)} but not "
        f"with the {'; '.join(f'{r.name} {r.shown}' for r in wrong)}, which the words may also mean"
    )
    return claims.Statement(n.text, name, UNVERIFIABLE, reason, *span)


def check_sentence(
    sentence: str, measurements: dict[str, Any], with_claims: bool = True
) -> list[claims.Statement]:
    """Every checked statement of one sentence (verified, unverifiable, contradicted), in order."""
    found, covered = claims.count_claims(sentence, measurements)
    if with_claims:
        found += claims.midline_claims(sentence, measurements)
        found += presence.presence_claims(sentence, measurements)
        found += presence.unverifiable_claims(sentence)
    numbers = [n for n in numbers_in(sentence) if not any(a <= n.start and n.end <= b for a, b in covered)]
    found += [_number_statement(binding) for binding in bind(sentence, numbers, measurements)]
    return sorted(found, key=lambda s: s.start)


def review_sections(sections: dict[str, str], measurements: dict[str, Any]) -> list[Flag]:
    """Every checked statement of the model's ``sections`` (see the module docstring)."""
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


def flagged(statements: list[Flag]) -> list[Flag]:
    """The statements that are not verified (contradicted or unverifiable)."""
    return [f for f in statements if f.status != VERIFIED]


def check_sections(sections: dict[str, str], measurements: dict[str, Any]) -> list[Flag]:
    """The flagged (contradicted and unverifiable) statements of the model's ``sections``."""
    return flagged(review_sections(sections, measurements))


def contradictions(flags: list[Flag]) -> list[Flag]:
    """The contradicted statements among ``flags``."""
    return [f for f in flags if f.status == CONTRADICTED]
