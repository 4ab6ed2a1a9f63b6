"""Cox model (Efron ties) against R's coxph(..., ties="efron")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amlcohort.stats import cox_ph

COX_CASES = {
    0: ("aml", lambda df: pd.DataFrame({"xNonmaintained": (df["x"] == "Nonmaintained").astype(float)})),
    1: ("lung", lambda df: df[["age", "sex", "ph.ecog"]]),
    2: ("ovarian", lambda df: df[["rx", "age"]]),
    3: ("veteran", lambda df: df[["trt", "karno"]]),
}


@pytest.mark.parametrize("index", sorted(COX_CASES))
def test_coxph_efron(index, r_expected, r_data, surv_arrays, assert_r):
    ref = r_expected["coxph"][index]
    name, make_x = COX_CASES[index]
    assert ref["data"] == name and 'ties="efron"' in ref["call"]
    df = r_data(name)
    time, event = surv_arrays(name)
    x = make_x(df)
    keep = x.notna().all(axis=1).to_numpy()  # R's na.omit
    fit = cox_ph(time[keep], event[keep], x[keep])
    call = ref["call"]
    assert list(fit.table.index) == ref["terms"]
    assert fit.n == ref["n"] and fit.n_events == ref["nevent"]
    for ours, theirs in [
        ("coef", "coef"),
        ("se", "se"),
        ("hazard_ratio", "hr"),
        ("z", "z"),
        ("p_value", "p"),
        ("hr_lower", "hr_lower"),
        ("hr_upper", "hr_upper"),
    ]:
        assert_r(fit.table[ours].to_numpy(), ref[theirs], what=f"{call}: {ours}")
    assert_r(list(fit.log_likelihood), ref["loglik"], what=f"{call}: loglik")
    for test_name, key in [("wald", "wald"), ("score", "score"), ("likelihood_ratio", "lr")]:
        got = getattr(fit, test_name)
        assert_r(got.statistic, ref[key]["test"], what=f"{call}: {test_name} statistic")
        assert_r(got.p_value, ref[key]["pvalue"], what=f"{call}: {test_name} p")
        assert got.dof == ref[key]["df"]


def test_aml_hazard_ratio_values(r_data, surv_arrays):
    # R: summary(coxph(Surv(time, status) ~ x, data=aml)) prints exp(coef) 2.498, 95% CI 0.916 to 6.813
    df = r_data("aml")
    time, event = surv_arrays("aml")
    fit = cox_ph(time, event, {"nonmaintained": (df["x"] == "Nonmaintained").to_numpy()})
    hr, lo, hi = fit.hazard_ratio("nonmaintained")
    assert (round(hr, 3), round(lo, 3), round(hi, 3)) == (2.498, 0.916, 6.813)
    assert "Score (logrank) test" in fit.summary()


def test_cox_input_errors():
    with pytest.raises(ValueError, match="covariates has 2 rows but time has length 3"):
        cox_ph([1, 2, 3], [1, 0, 1], {"a": [0, 1]})
    with pytest.raises(ValueError, match="covariate 'arm' must be numeric"):
        cox_ph([1, 2, 3], [1, 0, 1], pd.DataFrame({"arm": ["x", "y", "x"]}))
    with pytest.raises(ValueError, match="no events"):
        cox_ph([1, 2, 3], [0, 0, 0], np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="missing values"):
        cox_ph([1, 2, 3], [1, 0, 1], {"a": [0, np.nan, 1]})
