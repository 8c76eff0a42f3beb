"""The claim check accepts correct radiology phrasing and still catches wrong replies (issue 23)."""

from __future__ import annotations

import pytest
from report_corpus.cases import literal_case

from nnunet_diffrefine.report.guard import check_sections, contradictions

ISSUE_REPRODUCTIONS = [
    "Single lesion in the right hemisphere, not crossing the midline, 4.1 x 3.4 cm on the largest axial slice.",
    "Right-hemispheric non-enhancing tumor, 23.7 cm³.",
    "Right non-enhancing lesion of about 24 mL.",
]


@pytest.mark.parametrize("sentence", ISSUE_REPRODUCTIONS)
def test_the_issues_correct_replies_are_not_contradicted(sentence):
    flags = check_sections({"findings": sentence}, literal_case())
    assert contradictions(flags) == [], flags
