"""Study population per Xu 2019 §2.4 (rules/population.csv), both sides of every boundary."""

from __future__ import annotations

import pytest
from tests.conftest import rows

from amlcohort.criteria.population import classify_population, derive_population

UNTREATED = {
    "prior_lines": 0.0,
    "ever_cr": False,
    "relapsed_after_cr": False,
    "induction_cycles": 0.0,
    "adverse_cytogenetics": False,
    "has_comorbidity": False,
    "flt3_itd": "wild_type",
}
AGE_66_75 = "§2.4: aged 66-75 with PS >= 2"


@pytest.mark.parametrize(
    ("values", "status", "source"),
    [
        ({"age_at_onset": 76, "ecog_ps": 0}, "elderly_unfit", "§2.4: age more than 75"),
        ({"age_at_onset": 75, "ecog_ps": 1}, "not_rr_or_unfit", "§2.4: 75 is not more than 75; PS 1 < 2"),
        ({"age_at_onset": 75, "ecog_ps": 2}, "elderly_unfit", AGE_66_75),
        ({"age_at_onset": 66, "ecog_ps": 2}, "elderly_unfit", AGE_66_75),
        ({"age_at_onset": 65, "ecog_ps": 2}, "not_rr_or_unfit", AGE_66_75 + " (65 is below)"),
        ({"age_at_onset": 70, "ecog_ps": 1}, "not_rr_or_unfit", AGE_66_75 + " (PS 1)"),
        (
            {"age_at_onset": 64, "ecog_ps": 1, "adverse_cytogenetics": True, "has_comorbidity": True},
            "elderly_unfit",
            "§2.4: adverse cytogenetics and comorbidities",
        ),
        (
            {"age_at_onset": 64, "ecog_ps": 1, "adverse_cytogenetics": True, "has_comorbidity": False},
            "not_rr_or_unfit",
            "§2.4: adverse cytogenetics without comorbidities",
        ),
        ({"age_at_onset": 70, "ecog_ps": None}, "not_evaluable", AGE_66_75 + " (PS missing)"),
    ],
)
def test_elderly_unfit(values, status, source):
    r = classify_population({**UNTREATED, **values})
    assert r.status == status, (source, r.status_reason)


@pytest.mark.parametrize(
    ("values", "status", "source"),
    [
        (
            {"prior_lines": 1, "induction_cycles": 2, "ever_cr": False},
            "primary_refractory",
            "§2.4: persistent disease after two cycles of induction",
        ),
        (
            {"prior_lines": 1, "induction_cycles": 1, "ever_cr": False},
            "not_rr_or_unfit",
            "§2.4: one cycle is not two",
        ),
        (
            {"prior_lines": 2, "induction_cycles": 2, "ever_cr": True, "relapsed_after_cr": True},
            "relapsed",
            "§2.4: reappearance after a documented CR",
        ),
        (
            {"prior_lines": 2, "induction_cycles": 3, "ever_cr": True, "relapsed_after_cr": False},
            "not_rr_or_unfit",
            "§2.4: CR without relapse is neither",
        ),
    ],
)
def test_refractory_and_relapsed(values, status, source):
    r = classify_population({**UNTREATED, "age_at_onset": 50, "ecog_ps": 1, **values})
    assert r.status == status, (source, r.status_reason)


@pytest.mark.parametrize(
    ("flt3", "membership"),
    [("wild_type", "in_population"), ("mutated", "excluded_flt3_itd_positive"), (None, "not_evaluable")],
)
def test_membership_needs_flt3_itd_negative(flt3, membership):
    r = classify_population({**UNTREATED, "age_at_onset": 80, "ecog_ps": 1, "flt3_itd": flt3})
    assert r.membership == membership, r.membership_reason


def test_embedded_cohort_ten_rr_three_elderly_unfit(study):
    """§3.1: ten R/R patients, three elderly unfit (11-13), all FLT3-ITD negative and in the study."""
    pop = rows(derive_population(study).order_by("patient_id"))
    assert sum(r["rr"] for r in pop) == 10
    assert [r["patient_id"] for r in pop if r["elderly_unfit"]] == ["P11", "P12", "P13"]
    assert {r["membership"] for r in pop} == {"in_population"}
    by = {r["patient_id"]: r["status"] for r in pop}
    assert by["P13"] == "elderly_unfit"  # 64 years: adverse (complex) karyotype + comorbidities
    # Table 1 lists relapses for 5 patients (3, 4, 7, 8, 10); §3.1 says four.
    assert sorted(p for p, s in by.items() if s == "relapsed") == ["P03", "P04", "P07", "P08", "P10"]
