"""Log-rank family tests against R's survdiff and a hand-written R weighted log-rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amlcohort.stats import counts_from_arrays, logrank_test

# (call as stored in expected.json, data set, group column, strata column, row filter, keyword arguments)
SURVDIFF_CASES = [
    ("survdiff(Surv(time, status) ~ x, data=aml, rho=0)", "x", None, None, {}),
    ("survdiff(Surv(time, status) ~ x, data=aml, rho=1)", "x", None, None, {"weights": "peto-peto"}),
    ("survdiff(Surv(time, status) ~ sex, data=lung, rho=0)", "sex", None, None, {}),
    ("survdiff(Surv(time, status) ~ sex, data=lung, rho=1)", "sex", None, None, {"weights": "peto-peto"}),
    (
        "survdiff(Surv(time, status) ~ sex, data=lung, rho=0.5)",
        "sex",
        None,
        None,
        {"weights": "fleming-harrington", "rho": 0.5},
    ),
    ("survdiff(Surv(time, status) ~ sex + strata(ph.ecog), data=lung)", "sex", "ph.ecog", "ecog_known", {}),
    (
        "survdiff(Surv(time, status) ~ sex + strata(ph.ecog), data=lung, rho=1)",
        "sex",
        "ph.ecog",
        "ecog_known",
        {"weights": "fleming-harrington", "rho": 1.0},
    ),
    (
        "survdiff(Surv(time, status) ~ ph.ecog, data=lung, subset=ph.ecog < 3)",
        "ph.ecog",
        None,
        "ecog_below_3",
        {},
    ),
    ("survdiff(Surv(time, status) ~ trt + strata(celltype), data=veteran)", "trt", "celltype", None, {}),
    ("survdiff(Surv(time, status) ~ celltype, data=veteran)", "celltype", None, None, {}),
    ("survdiff(Surv(time, status) ~ group, data=ties)", "group", None, None, {}),
]

WEIGHTED_CASES = [
    ('weighted_logrank(aml$time, aml$status, as.character(aml$x), weight="gehan")', "x", None, {}),
    ('weighted_logrank(lung$time, lung$status - 1, lung$sex, weight="gehan")', "sex", None, {}),
    ('weighted_logrank(ties$time, ties$status, ties$group, weight="gehan")', "group", None, {}),
    (
        "weighted_logrank(veteran$time, veteran$status, veteran$trt, strata=veteran$celltype, "
        'weight="gehan")',
        "trt",
        "celltype",
        {},
    ),
    (
        'weighted_logrank(lung$time, lung$status - 1, lung$sex, weight="fh", rho=0, gamma=1)',
        "sex",
        None,
        {"rho": 0.0, "gamma": 1.0},
    ),
    (
        'weighted_logrank(lung$time, lung$status - 1, lung$sex, weight="fh", rho=1, gamma=1)',
        "sex",
        None,
        {"rho": 1.0, "gamma": 1.0},
    ),
    (
        "weighted_logrank(veteran$time, veteran$status, as.character(veteran$celltype), "
        'weight="fh", rho=0.5, gamma=2)',
        "celltype",
        None,
        {"rho": 0.5, "gamma": 2.0},
    ),
]


ROW_FILTERS = {
    "ecog_known": lambda df: df["ph.ecog"].notna(),  # R drops the NA stratum (na.action)
    "ecog_below_3": lambda df: df["ph.ecog"] < 3,  # subset=ph.ecog < 3
}


def _inputs(r_data, surv_arrays, name, group_col, strata_col, row_filter):
    df = r_data(name)
    time, event = surv_arrays(name)
    keep = np.ones(len(df), dtype=bool) if row_filter is None else ROW_FILTERS[row_filter](df).to_numpy()
    strata = None if strata_col is None else df[strata_col].to_numpy()[keep]
    group = df[group_col].to_numpy()[keep]
    if group.dtype.kind == "f":  # ph.ecog is read as float because of its NA
        group = group.astype(int)
    return time[keep], event[keep], group, strata


def check(result, ref, assert_r, order=None):
    """Compare to R; ``order`` maps R's group order (factor levels) to ours (sorted labels)."""
    call = ref["call"]
    idx = np.arange(len(result.groups)) if order is None else np.asarray(order)
    assert_r(result.statistic, ref["chisq"], what=f"{call}: chisq")
    assert result.dof == ref["df"], call
    assert_r(result.p_value, ref["p"], what=f"{call}: p")
    assert_r(result.observed.to_numpy()[idx], ref["obs"], what=f"{call}: observed")
    assert_r(result.expected.to_numpy()[idx], ref["exp"], what=f"{call}: expected")
    assert_r(result.variance.to_numpy()[np.ix_(idx, idx)], ref["var"], what=f"{call}: variance")


@pytest.mark.parametrize(("index", "case"), list(enumerate(SURVDIFF_CASES)))
def test_survdiff(index, case, r_expected, r_data, surv_arrays, assert_r):
    call, group_col, strata_col, row_filter, kwargs = case
    ref = r_expected["survdiff"][index]
    assert ref["call"] == call
    time, event, group, strata = _inputs(r_data, surv_arrays, ref["data"], group_col, strata_col, row_filter)
    result = logrank_test(time, event, group, strata=strata, **kwargs)
    ours = [f"{group_col}={g}" for g in result.groups]
    assert sorted(ours) == sorted(ref["groups"])
    order = [ours.index(g) for g in ref["groups"]]  # R orders by factor level, we sort labels
    check(result, ref, assert_r, order)
    assert result.table["n"].to_numpy()[order].tolist() == ref["n"]


@pytest.mark.parametrize(("index", "case"), list(enumerate(WEIGHTED_CASES)))
def test_weighted_logrank_against_hand_written_r(index, case, r_expected, r_data, surv_arrays, assert_r):
    call, group_col, strata_col, fh = case
    ref = r_expected["weighted_logrank"][index]
    assert ref["call"] == call
    time, event, group, strata = _inputs(r_data, surv_arrays, ref["data"], group_col, strata_col, None)
    if fh:
        result = logrank_test(time, event, group, strata=strata, weights="fleming-harrington", **fh)
    else:
        result = logrank_test(time, event, group, strata=strata, weights="gehan-breslow")
    check(result, ref, assert_r)


@pytest.mark.parametrize(("index", "group_col"), [(0, "x"), (1, "group")])
def test_gehan_numerator_equals_pairwise_gehan_score(index, group_col, r_expected, r_data, surv_arrays):
    ref = r_expected["gehan_pairwise_u"][index]
    time, event = surv_arrays(ref["data"])
    result = logrank_test(time, event, r_data(ref["data"])[group_col].to_numpy(), weights="wilcoxon")
    first = result.groups[0]
    assert result.observed[first] - result.expected[first] == pytest.approx(ref["u"], abs=1e-9)


def test_gehan_breslow_agrees_with_lifelines_wilcoxon(r_data, surv_arrays):
    """A second, independent implementation of the same weighting (lifelines, weightings='wilcoxon')."""
    from lifelines.statistics import logrank_test as ll_logrank

    time, event = surv_arrays("lung")
    sex = r_data("lung")["sex"].to_numpy()
    ours = logrank_test(time, event, sex, weights="gehan-breslow")
    a, b = sex == 1, sex == 2
    theirs = ll_logrank(time[a], time[b], event[a], event[b], weightings="wilcoxon")
    assert ours.statistic == pytest.approx(theirs.test_statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(theirs.p_value, rel=1e-9)


def test_study_sized_example_by_hand():
    # Two groups of 3, no ties: at each death the expected share is n_a / n.
    time = [1, 2, 3, 4, 5, 6]
    event = [1, 1, 1, 1, 1, 1]
    group = ["a", "a", "a", "b", "b", "b"]
    r = logrank_test(time, event, group)
    # E_a = 3/6 + 2/5 + 1/4 = 1.15; V = sum n_a n_b / n^2 = 9/36 + 6/25 + 3/16 = 0.6775
    assert r.expected["a"] == pytest.approx(1.15)
    assert r.variance.loc["a", "a"] == pytest.approx(0.6775)
    assert r.statistic == pytest.approx((3 - 1.15) ** 2 / 0.6775)
    assert r.dof == 1


def test_from_counts_equals_arrays(r_data, surv_arrays):
    df = r_data("veteran")
    time, event = surv_arrays("veteran")
    counts = counts_from_arrays(time, event, group=df["trt"].to_numpy(), strata=df["celltype"].to_numpy())
    a = logrank_test.from_counts(counts)
    b = logrank_test(time, event, df["trt"].to_numpy(), strata=df["celltype"].to_numpy())
    assert a.statistic == b.statistic
    assert a.strata == ("adeno", "large", "smallcell", "squamous")
    pd.testing.assert_frame_equal(a.table, b.table)


def test_summary_is_readable(surv_arrays, r_data):
    time, event = surv_arrays("aml")
    r = logrank_test(time, event, r_data("aml")["x"].to_numpy())
    text = r.summary()
    assert text.startswith("Log-rank test")
    assert "Chisq= 3.396 on 1 degrees of freedom" in text
    assert "Maintained" in text and "(O-E)^2/V" in text


# --- input errors -------------------------------------------------------------------------------
def test_single_group_is_not_estimable_with_the_reason():
    r = logrank_test([1, 2, 3], [1, 1, 0], ["a", "a", "a"])
    assert not r.estimable and r.p_value is None and r.dof == 0
    assert "only one group ('a')" in r.reason
    assert "not estimable" in r.summary()
    assert r.table.loc["a", "n"] == 3


def test_mismatched_lengths_name_the_argument():
    with pytest.raises(ValueError, match="group has length 2 but time has length 3"):
        logrank_test([1, 2, 3], [1, 1, 0], ["a", "b"])
    with pytest.raises(ValueError, match="strata has length 1 but time has length 3"):
        logrank_test([1, 2, 3], [1, 1, 0], ["a", "b", "a"], strata=["s"])


def test_zero_length_and_no_events_are_not_estimable():
    empty = logrank_test([], [], [])
    assert not empty.estimable and empty.p_value is None and "no subjects" in empty.reason
    none = logrank_test([1, 2, 3], [0, 0, 0], ["a", "b", "a"])
    assert not none.estimable and none.p_value is None and "no events" in none.reason
    ok = logrank_test([1, 2, 3, 4], [1, 0, 1, 1], ["a", "b", "a", "b"])
    assert ok.estimable and ok.reason == "" and ok.p_value is not None


def test_bad_weight_options():
    with pytest.raises(ValueError, match="weights must be one of"):
        logrank_test([1, 2], [1, 1], ["a", "b"], weights="tarone")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only to weights='fleming-harrington'"):
        logrank_test([1, 2], [1, 1], ["a", "b"], rho=1.0)
    with pytest.raises(ValueError, match="missing values"):
        logrank_test([1, 2], [1, 1], ["a", None])


def test_a_continuous_variable_as_the_group_is_refused_at_once():
    """10,000 distinct labels would build a 10,000 x 10,000 variance matrix (minutes, GBs): refused
    with the reason; 1,000 groups (the limit) still run."""
    from amlcohort.stats.logrank import MAX_GROUPS

    n = MAX_GROUPS + 1
    with pytest.raises(ValueError, match=f"{n} groups"):
        logrank_test(np.arange(n, dtype=float), np.ones(n), np.arange(n))
    m = 2 * MAX_GROUPS
    r = logrank_test(np.arange(float(m)), np.ones(m), np.arange(m) % MAX_GROUPS)
    assert r.dof == MAX_GROUPS - 1
