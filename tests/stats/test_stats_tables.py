"""Proportions, Fisher's exact test and chi-square tests against R's binom.test, prop.test,
fisher.test and chisq.test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlcohort.stats import chi_square_test, fisher_exact, proportion_ci
from amlcohort.stats.contingency import _fisher_rxc_p

R_ALTERNATIVE = {"two.sided": "two-sided", "greater": "greater", "less": "less"}


@pytest.mark.parametrize("index", range(7))
def test_clopper_pearson_matches_binom_test(index, r_expected, assert_r):
    ref = r_expected["binom_test"][index]
    r = proportion_ci(ref["x"], ref["n"], conf_level=ref["conf_level"])
    assert_r([r.lower, r.upper], [ref["lower"], ref["upper"]], what=ref["call"])
    assert r.r_call == ref["call"]


@pytest.mark.parametrize("index", range(7))
def test_wilson_matches_prop_test_without_correction(index, r_expected, assert_r):
    ref = r_expected["prop_test_wilson"][index]
    r = proportion_ci(ref["x"], ref["n"], method="wilson", conf_level=ref["conf_level"])
    assert_r([r.lower, r.upper], [ref["lower"], ref["upper"]], what=ref["call"])
    assert r.estimate == ref["x"] / ref["n"]


def test_proportion_input_errors():
    with pytest.raises(ValueError, match="x must be a whole number between 0 and n=5"):
        proportion_ci(6, 5)
    with pytest.raises(ValueError, match="n must be a positive whole number"):
        proportion_ci(0, 0)
    with pytest.raises(ValueError, match="method must be one of"):
        proportion_ci(1, 5, method="wald")  # type: ignore[arg-type]


@pytest.mark.parametrize("index", range(9))
def test_fisher_matches_fisher_test(index, r_expected, assert_r):
    ref = r_expected["fisher"][index]
    alternative = R_ALTERNATIVE[ref["alternative"]]
    r = fisher_exact(ref["table"], alternative=alternative, conf_level=_conf_level(ref["call"]))
    assert_r(r.p_value, ref["p"], what=ref["call"])
    if "odds_ratio" in ref:
        assert_r(r.odds_ratio, ref["odds_ratio"], what=f"{ref['call']}: estimate")
        assert_r(list(r.conf_int), ref["conf_int"], what=f"{ref['call']}: conf.int")
    else:
        assert r.odds_ratio is None and r.conf_int is None


def _conf_level(call: str) -> float:
    return 0.9 if "conf.level=0.9" in call else 0.95


def test_study_complete_remission_table(r_expected):
    # CR 4/5 with the combination vs 1/8 with sorafenib alone: fisher.test(matrix(c(4,1,1,7),2))
    ref = r_expected["fisher"][0]
    assert ref["call"] == "fisher.test(matrix(c(4,1,1,7),2))"
    r = fisher_exact([[4, 1], [1, 7]])
    assert r.p_value == pytest.approx(ref["p"], rel=1e-9)
    assert round(r.p_value, 4) == 0.0319
    assert "p = 0.03186" in r.summary()


def test_fisher_rxc_only_two_sided_and_valid_tables():
    with pytest.raises(ValueError, match="one-sided alternatives exist only for 2x2"):
        fisher_exact([[1, 2, 3], [3, 2, 1]], alternative="greater")
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        fisher_exact([[1, -2], [3, 2]])
    with pytest.raises(ValueError, match="at least 2 rows and 2 columns"):
        fisher_exact([1, 2, 3])


def _brute_force_p(table: np.ndarray) -> float:
    """Enumerate every table with the observed margins (tiny tables only)."""
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    n = int(table.sum())

    def logp(t: np.ndarray) -> float:
        return (
            sum(math.lgamma(r + 1) for r in rows)
            + sum(math.lgamma(c + 1) for c in cols)
            - math.lgamma(n + 1)
            - sum(math.lgamma(v + 1) for v in t.ravel())
        )

    p_obs = math.exp(logp(table))
    r, c = table.shape
    total = 0.0
    ranges = [range(int(min(rows[i], cols[j])) + 1) for i in range(r - 1) for j in range(c - 1)]
    for free in itertools.product(*ranges):
        t = np.zeros((r, c), dtype=int)
        t[: r - 1, : c - 1] = np.array(free).reshape(r - 1, c - 1)
        t[: r - 1, c - 1] = rows[: r - 1] - t[: r - 1, : c - 1].sum(axis=1)
        t[r - 1, :] = cols - t[: r - 1, :].sum(axis=0)
        if (t < 0).any():
            continue
        p = math.exp(logp(t))
        if p <= p_obs * (1 + 1e-7):
            total += p
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 3).flatmap(
        lambda r: st.integers(2, 3).flatmap(
            lambda c: st.lists(st.integers(0, 4), min_size=r * c, max_size=r * c).map(
                lambda v: np.array(v).reshape(r, c)
            )
        )
    )
)
def test_pruned_rxc_enumeration_equals_brute_force(table):
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return
    assert _fisher_rxc_p(table) == pytest.approx(_brute_force_p(table), rel=1e-9, abs=1e-12)


def test_rxc_code_path_on_2x2_equals_r_two_sided(r_expected):
    ref = r_expected["fisher"][4]
    assert ref["call"].startswith("fisher.test(matrix(c(12,5,7,14),2)")
    assert _fisher_rxc_p(np.array(ref["table"])) == pytest.approx(ref["p"], rel=1e-9)


@pytest.mark.parametrize("index", range(6))
def test_chisq_matches_chisq_test(index, r_expected, assert_r):
    ref = r_expected["chisq"][index]
    correct = "correct=FALSE" not in ref["call"]
    r = chi_square_test(ref["table"], correction=correct)
    assert_r(r.statistic, ref["statistic"], what=ref["call"])
    assert_r(r.p_value, ref["p"], what=ref["call"])
    assert r.dof == ref["df"]
    assert_r(r.expected, ref["expected"], what=f"{ref['call']}: expected")
    # R warns "Chi-squared approximation may be incorrect" exactly when we do
    assert bool(r.warnings) == bool(ref["warnings"]), ref["call"]
    for message in ref["warnings"]:
        assert any(w.startswith(message) for w in r.warnings)


def test_small_expected_counts_warning_is_in_result_and_summary():
    r = chi_square_test([[4, 1], [1, 7]])
    assert r.correction is True
    assert len(r.warnings) == 1 and "4 of 4 expected counts are below 5" in r.warnings[0]
    assert "Warning: Chi-squared approximation may be incorrect" in r.summary()
    assert chi_square_test([[20, 25], [15, 10], [30, 12]]).correction is False


def test_chisq_rejects_empty_margins():
    with pytest.raises(ValueError, match="empty row or column"):
        chi_square_test([[0, 0], [3, 4]])
