"""Defects a new user met: the claims audit called a median that is not reached "not computed", and
``amlcohort.logrank(cohort, by=None)`` gave NaN with a vague reason instead of naming the choices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import amlcohort
from amlcohort import load_cohort
from amlcohort.report.audit import Claim, audit, load_claims
from amlcohort.report.results import analyse, median_reason
from amlcohort.stats import kaplan_meier

NAME = "os.median_days.cr"


def _not_reached_reason() -> str:
    # the reason results.py gives a median that is not reached (the figure itself is null):
    # S(t) = 0.8 after one death in five, so R's print(survfit(...)) shows median NA
    km = kaplan_meier([100, 200, 300, 400, 500], [1, 0, 0, 0, 0])
    assert km.median_ is None
    reason = median_reason(km, "OS")
    assert reason == "not reached: survival stays above 0.5"
    return reason


# --- 4. a median not reached is a discrepancy, not a missing figure -------------------------------
def test_not_reached_median_against_a_stated_number_is_discrepant():
    claim = Claim(NAME, "Abstract", "The median survival ... was 7.0 months.", 7.0, "equal")
    [v] = audit({NAME: None}, [claim], {NAME: _not_reached_reason()})
    assert v.status == "discrepant"
    assert v.detail == "median not reached (survival stays above 0.5); the claim states 7.0"
    assert v.computed is None


def test_not_reached_median_with_unit_and_every_censored():
    km = kaplan_meier([30, 60], [0, 0])  # no deaths: median NA in R
    reason = median_reason(km, "OS")
    claim = Claim(NAME, "3.4", "s", 520, "equal", unit="days")
    [v] = audit({NAME: None}, [claim], {NAME: reason})
    assert v.status == "discrepant"
    assert v.detail == "median not reached (no deaths, every patient censored); the claim states 520 days"


def test_a_figure_that_does_not_exist_stays_not_computed():
    claim = Claim(NAME, "Abstract", "s", 7.0, "equal")
    [v] = audit({}, [claim], {})
    assert (v.status, v.detail) == ("not computed", f"no figure named {NAME!r}")
    # a reason for a figure that is not in the figures at all does not make it computed
    [v] = audit({}, [claim], {NAME: _not_reached_reason()})
    assert v.status == "not computed"


def test_null_figure_with_another_reason_stays_not_computed():
    claim = Claim("followup.death_after_stop_months", "3.4", "s", 3, "equal", unit="months")
    why = "no CR patient died after stopping treatment"
    [v] = audit({claim.name: None}, [claim], {claim.name: why})
    assert (v.status, v.detail) == ("not computed", f"not estimable: {claim.name}: {why}")


def test_bounds_on_a_not_reached_median_are_not_judged():
    # "more than 11 months": a median not reached may well be more than 11 months; not judged
    claim = Claim("followup.median_months", "3.4", "s", 11, "gt", unit="months")
    why = "not reached by reverse Kaplan-Meier"
    [v] = audit({claim.name: None}, [claim], {claim.name: why})
    assert (v.status, v.detail) == ("not computed", f"not estimable: {claim.name}: {why}")


def test_list_of_figures_with_a_not_reached_median_is_discrepant():
    claim = Claim("both", "3.4", "s", 344, "equal", figure=["os.median_days.no_cr", NAME])
    [v] = audit({"os.median_days.no_cr": 344.0, NAME: None}, [claim], {NAME: _not_reached_reason()})
    assert v.status == "discrepant"
    assert v.detail == f"median not reached ({NAME}: survival stays above 0.5); the claim states 344"
    assert v.computed == [344.0, None]
    # one figure missing altogether: still not computed
    [v] = audit({NAME: None}, [claim], {NAME: _not_reached_reason()})
    assert v.status == "not computed"


def test_study_audit_when_the_cr_median_is_not_reached(bundle_copy: Path):
    """The embedded study with three of the four deaths among CR patients recorded as alive at that
    date: the CR group has 1 death in 5 (median not reached; the paper says 520 days)."""
    events = pd.read_csv(bundle_copy / "events.csv", dtype=str)
    alive = (events.event_type == "death") & events.patient_id.isin(["P04", "P06", "P10"])
    assert alive.sum() == 3
    events.loc[alive, ["event_type", "death_cause", "description"]] = ["last_contact", None, "alive"]
    events.to_csv(bundle_copy / "events.csv", index=False)
    a = analyse(load_cohort(bundle_copy))
    assert a.figures[NAME] is None and a.not_estimable[NAME].startswith("not reached")
    assert a.figures["os.median_days.no_cr"] == 344  # R: median of the 8 without CR, unchanged
    verdicts = {v.claim.name: v for v in audit(a.figures, load_claims(), a.not_estimable)}
    for name in (NAME, f"{NAME}.results"):
        v = verdicts[name]
        assert v.status == "discrepant", name
        assert v.detail == "median not reached (survival stays above 0.5); the claim states 520 days"
    assert verdicts["os.median_days.no_cr"].status == "reproduced"
    # a null figure with another reason is still not computed, with that reason
    other = verdicts["followup.death_after_stop_months"]
    assert other.status == "not computed" and other.detail.startswith("not estimable: ")


# --- 3. amlcohort.logrank needs the groups to compare --------------------------------------------
@pytest.mark.parametrize("by", [None, "sex", "CR"])
def test_logrank_without_a_valid_grouping_names_the_choices(study, by):
    with pytest.raises(ValueError, match=r"by must be 'arm' or 'cr'") as info:
        amlcohort.logrank(study, endpoint="OS", by=by)  # type: ignore[arg-type]
    assert repr(by) in str(info.value)


def test_logrank_with_a_valid_grouping_still_works(study):
    # R: survdiff(Surv(time, status) ~ cr) on the report's OS: p = 0.21 (docs/notebook.md, api docstring)
    assert round(amlcohort.logrank(study, endpoint="OS", by="cr").p_value, 2) == 0.21
