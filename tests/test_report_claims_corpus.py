"""The claim check accepts correct radiology phrasing and still catches wrong replies (issue 23).

The corpus (:mod:`report_corpus.replies`) is filled from measurement sets: the issue's literal case
and real BraTS 2018 cases measured at test time from their manual segmentations in several label
conventions (:mod:`report_corpus.cases`; the data stay outside the repository). Every correct reply
must give no contradiction, and the share of its statements that are unverifiable is reported;
every wrong reply must be caught with a contradiction of the expected quantity, and the catch rate
is reported. Both numbers are printed (``-s``) and given as a :class:`CorpusNumbers` warning, which
pytest lists in its warnings summary of every run (``.ci/run`` too, whose workers capture prints).
"""

from __future__ import annotations

import warnings

import pytest
from report_corpus.cases import REAL_CASES, MeasurementSet, literal_case, literal_set, real_root, real_set
from report_corpus.replies import CORRECT, tags, values
from report_corpus.wrong import WRONG, wrong_values

from nnunet_diffrefine.report.guard import (
    CONTRADICTED,
    UNVERIFIABLE,
    VERIFIED,
    check_sections,
    contradictions,
    review_sections,
)
from nnunet_diffrefine.report.offline import offline_sections


class CorpusNumbers(UserWarning):
    """The corpus's numbers (not a problem): shown in pytest's warnings summary."""


def _report(line: str) -> None:
    print("\n" + line)
    warnings.warn(line, CorpusNumbers, stacklevel=2)


ISSUE_REPRODUCTIONS = [
    "Single lesion in the right hemisphere, not crossing the midline, 4.1 x 3.4 cm on the largest axial slice.",
    "Right-hemispheric non-enhancing tumor, 23.7 cm³.",
    "Right non-enhancing lesion of about 24 mL.",
]


@pytest.mark.parametrize("sentence", ISSUE_REPRODUCTIONS)
def test_the_issues_correct_replies_are_verified(sentence):
    statements = review_sections({"findings": sentence}, literal_case())
    assert contradictions(statements) == [], statements
    assert {s.status for s in statements} == {VERIFIED}, statements


def test_about_widens_the_tolerance_to_the_stated_rounding():
    m = literal_case()  # WT 23.71 cm³

    def status(text: str) -> str:
        (number,) = [s for s in review_sections({"findings": text}, m) if "volume" in s.quantity]
        return number.status

    assert status("Whole tumor about 24 mL.") == VERIFIED
    assert status("Whole tumor about 25 mL.") == VERIFIED  # a 5 states a rounding to 5
    assert status("Whole tumor approximately 20 mL.") == VERIFIED  # a trailing zero to 10
    assert status("Whole tumor about 30 mL.") == CONTRADICTED
    assert status("Whole tumor 20 mL.") == CONTRADICTED  # without "about" a number is exact
    assert status("Whole tumor ~23.4 mL.") == CONTRADICTED
    assert status("Whole tumor ~23.5 mL.") == VERIFIED  # 23.25-23.75


def test_an_ambiguous_binding_is_unverifiable_and_a_pair_is_matched_as_a_whole():
    m = literal_case()  # ED 14.53, WT 23.71; 40.8 x 33.6 mm; 16.2 mm from the midline
    flags = check_sections({"findings": "FLAIR hyperintensity of 14.5 mL."}, m)  # ED, or WT?
    assert [(f.statement, f.status) for f in flags] == [("14.5 mL", UNVERIFIABLE)]
    assert "ambiguous" in flags[0].reason
    flags = check_sections({"findings": "Surrounding FLAIR hyperintensity of 14.5 mL."}, m)
    assert flags == []
    flags = check_sections({"findings": "FLAIR hyperintensity of 9.2 mL."}, m)  # neither ED nor WT
    assert [f.status for f in flags] == [CONTRADICTED] and "every reading" in flags[0].reason
    flags = check_sections({"findings": "Right hemisphere, not crossing the midline, 41 mm."}, m)
    assert [(f.statement, f.status) for f in flags] == [("41 mm", UNVERIFIABLE)]  # diameter or distance
    flags = check_sections({"findings": "The lesion measures 4.1 x 4.1 cm."}, m)
    assert [(f.statement, f.quantity) for f in contradictions(flags)] == [
        ("4.1 cm", "perpendicular diameter")
    ]
    flags = check_sections({"findings": "It measures 3.4 x 4.1 cm (TR x AP)."}, m)
    assert flags == []


# ------------------------------------------------------------------------------------ the corpus


@pytest.fixture(scope="module")
def measurement_sets() -> list[MeasurementSet]:
    root = real_root()
    missing = [case for case in REAL_CASES if not (root / case / f"{case}_seg.nii.gz").is_file()]
    if missing:
        pytest.skip(
            f"real BraTS cases missing at {root} ({', '.join(missing)}); set NNUNET_DIFFREFINE_REAL_DATA"
        )
    return [literal_set(), *(real_set(case) for case in REAL_CASES)]


def _corpus(sets: list[MeasurementSet]) -> list[tuple[str, str, dict[str, str], dict]]:
    """``(template, set, sections, measurements)`` of every correct reply that applies to a set."""
    out = []
    for found in sets:
        have, fields = tags(found.m), values(found.m, found.craniocaudal_mm)
        out += [(r.name, found.name, r.sections(fields), found.m) for r in CORRECT if r.applies(have)]
    return out


def test_the_correct_corpus_gives_no_contradiction(measurement_sets):
    corpus = _corpus(measurement_sets)
    assert len({name for name, *_ in corpus}) == len(CORRECT) >= 40  # every template is used
    assert len(measurement_sets) >= 5 and all(
        sum(s == found.name for _, s, *_ in corpus) >= 20 for found in measurement_sets
    )
    conventions = {found.m["convention"] for found in measurement_sets}
    assert len(conventions) >= 5, conventions
    contradicted, statements, unverifiable, replies_flagged = [], 0, 0, 0
    for name, where, sections, m in corpus:
        checked = review_sections(sections, m)
        contradicted += [(name, where, f.statement, f.reason) for f in contradictions(checked)]
        statements += len(checked)
        unverifiable += sum(f.status == UNVERIFIABLE for f in checked)
        replies_flagged += any(f.status == UNVERIFIABLE for f in checked)
    _report(
        f"correct corpus: {len(corpus)} replies ({len(CORRECT)} templates x {len(measurement_sets)} "
        f"measurement sets, where they apply), {statements} statements, {len(contradicted)} contradicted; "
        f"unverifiable: {unverifiable} statements ({100 * unverifiable / statements:.1f} %), "
        f"{replies_flagged} replies ({100 * replies_flagged / len(corpus):.1f} %)"
    )
    assert contradicted == []


def test_the_template_of_every_set_checks_out(measurement_sets):
    for found in measurement_sets:
        assert check_sections(offline_sections(found.m), found.m) == [], found.name


def test_every_wrong_reply_is_caught(measurement_sets):
    tried, missed = 0, []
    for found in measurement_sets:
        have, fields = tags(found.m), wrong_values(found.m, found.craniocaudal_mm)
        for wrong in WRONG:
            if not set(wrong.needs.split()) <= have:
                continue
            tried += 1
            text = wrong.findings.format(**fields)
            bad = contradictions(check_sections({"findings": text}, found.m))
            if not any(wrong.quantity in f.quantity for f in bad):
                missed.append((wrong.kind, found.name, text, [(f.statement, f.quantity) for f in bad]))
    kinds = {w.kind for w in WRONG}
    _report(
        f"adversarial suite: {tried - len(missed)} of {tried} wrong replies caught "
        f"({100 * (tried - len(missed)) / tried:.1f} %), {len(kinds)} kinds"
    )
    assert len(kinds) >= 25 and missed == []
