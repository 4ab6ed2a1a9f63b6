"""The report says when a best response is a lower bound (an assessment with a marrow that could not
be evaluated might have met a better category), instead of printing the lower bound as the answer."""

from __future__ import annotations

from pathlib import Path

from amlcohort import load_cohort
from amlcohort.report.build import possibly_better_text
from amlcohort.report.results import analyse


def test_the_embedded_study_has_no_lower_bound(study) -> None:
    f = analyse(study).figures
    assert f["best_response.possibly_better.n"] == 0
    assert f["best_response.possibly_better.by_category"] == {}
    assert possibly_better_text(f) == ""


def test_without_transfusions_the_study_criteria_cannot_establish_cr(bundle_copy: Path) -> None:
    """The study's CR needs transfusion independence: without the (optional) transfusions table it
    is unknown, no CR can be established, and the five patients in CR in the paper are shown as
    possibly in CR, with the input that is missing, not silently as "no response"."""
    (bundle_copy / "transfusions.csv").unlink()
    a = analyse(load_cohort(bundle_copy))
    f = a.figures
    assert f["cr.n"] == 0
    assert f["best_response.possibly_better.n"] == 5
    assert f["best_response.possibly_better.by_category"] == {"cr": 5}
    assert list(f["best_response.possibly_better.missing_inputs"]) == ["transfusion_independent"]
    assert "lower bound" in a.notes["best_response.possibly_better.n"]
    text = possibly_better_text(f)
    assert text.startswith("For 5 patient(s) the best response is a lower bound")
    assert "transfusion_independent" in text and "CR" in text
