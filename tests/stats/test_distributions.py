"""stats/_distributions.py against scipy.stats (the module it replaces to save its import) and R.

scipy.stats is imported here, in the test only: the package itself never imports it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from amlcohort.stats import _distributions as d
from amlcohort.stats.contingency import r_fisher_p_value

RNG = np.random.default_rng(20261130)


def test_normal_and_chi_square_are_scipys() -> None:
    q = np.array([1e-12, 0.001, 0.025, 0.5, 0.975, 0.999999])
    assert np.array_equal(d.norm_ppf(q), stats.norm.ppf(q))
    x = np.array([-40.0, -3.2, 0.0, 1.96, 8.5, 39.0])
    assert np.array_equal(d.norm_sf(x), stats.norm.sf(x))
    for df in (1, 2, 5, 30):
        y = np.array([0.0, 0.1, 3.84, 20.0, 400.0])
        assert np.array_equal(d.chi2_sf(y, df), stats.chi2.sf(y, df))


@pytest.mark.parametrize(("total", "good", "drawn"),
                         [(13, 5, 5), (40, 12, 20), (7, 0, 3), (7, 7, 3), (200, 60, 90)])
def test_hypergeometric_matches_scipy(total: int, good: int, drawn: int) -> None:
    lo, hi = max(0, drawn - (total - good)), min(good, drawn)
    ks = np.arange(lo, hi + 1)
    np.testing.assert_allclose(d.hypergeom_logpmf(ks, total, good, drawn),
                               stats.hypergeom.logpmf(ks, total, good, drawn), rtol=1e-12, atol=1e-12)
    for q in range(lo - 1, hi + 2):  # both sides of the support
        assert d.hypergeom_cdf(q, total, good, drawn) == pytest.approx(
            stats.hypergeom.cdf(q, total, good, drawn), abs=1e-13)
        assert d.hypergeom_cdf(q, total, good, drawn, upper_tail=True) == pytest.approx(
            stats.hypergeom.sf(q - 1, total, good, drawn), abs=1e-13)


def test_proportion_intervals() -> None:
    # R: binom.test(4, 5)$conf.int = 0.2835821 0.9949492
    assert d.clopper_pearson(4, 5, 0.95) == pytest.approx((0.2835820638, 0.9949492366), abs=1e-9)
    # R: prop.test(4, 5, correct = FALSE)$conf.int = 0.375535 0.963776 (6 decimals)
    assert d.wilson(4, 5, 0.95) == pytest.approx((0.375535, 0.963776), abs=1e-6)
    for n in (1, 2, 13, 40, 1000):
        for k in sorted({0, 1, n // 3, n - 1, n}):
            for level in (0.9, 0.95, 0.99):
                ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
                assert d.clopper_pearson(k, n, level) == pytest.approx((ci.low, ci.high), abs=1e-9)
                w = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
                assert d.wilson(k, n, level) == pytest.approx((w.low, w.high), abs=1e-14)


@pytest.mark.parametrize("correction", [True, False])
def test_chi_square_of_tables_matches_scipy(correction: bool) -> None:
    for shape in ((2, 2), (2, 3), (3, 4)):
        for _ in range(20):
            t = RNG.integers(1, 30, size=shape)
            s, p, dof, expected = d.chi2_contingency(t, correction=correction)
            ref = stats.chi2_contingency(t, correction=correction)
            assert (s, p, dof) == pytest.approx((ref.statistic, ref.pvalue, ref.dof), rel=1e-12, abs=1e-15)
            np.testing.assert_allclose(expected, ref.expected_freq, rtol=1e-14)
    with pytest.raises(ValueError, match="zero"):
        d.chi2_contingency(np.array([[0, 0], [3, 4]]))


def test_kruskal_wallis_matches_scipy_with_ties() -> None:
    for k in (2, 3, 4):
        for _ in range(20):
            samples = [RNG.integers(0, 8, size=RNG.integers(2, 12)).astype(float) for _ in range(k)]
            if len(np.unique(np.concatenate(samples))) < 2:
                continue
            ref = stats.kruskal(*samples)
            assert d.kruskal_wallis(samples) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    # R: kruskal.test(list(c(2.9, 3.0, 2.5, 2.6, 3.2), c(3.8, 2.7, 4.0, 2.4), c(2.8, 3.4, 3.7, 2.2, 2.0)))
    # Kruskal-Wallis chi-squared = 0.77143, df = 2, p-value = 0.68
    h, p = d.kruskal_wallis([[2.9, 3.0, 2.5, 2.6, 3.2], [3.8, 2.7, 4.0, 2.4], [2.8, 3.4, 3.7, 2.2, 2.0]])
    assert h == pytest.approx(0.771429, abs=1e-6)
    assert p == pytest.approx(0.6799648, abs=1e-6)
    with pytest.raises(ValueError, match="equal"):
        d.kruskal_wallis([[1.0, 1.0], [1.0]])


def test_average_ranks() -> None:
    ranks, ties = d.average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))
    assert ranks.tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert sorted(ties.tolist()) == [1, 1, 3]


def test_fisher_2x2_p_values_match_scipy_on_every_small_table() -> None:
    """Every 2x2 table with cells 0..6: R's two-sided rule (relative tolerance 1e-7) and scipy's
    (1e-14 around the mode) agree on these; both one-sided tails too."""
    for a, b, c, e in itertools.product(range(7), repeat=4):
        t = np.array([[a, b], [c, e]])
        if t.sum(axis=0).min() == 0 or t.sum(axis=1).min() == 0:
            continue
        for alternative in ("two-sided", "less", "greater"):
            ref = stats.fisher_exact(t, alternative=alternative).pvalue
            ours = r_fisher_p_value(t, alternative)
            assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12), (t, alternative)
    # R: fisher.test(matrix(c(4, 1, 1, 7), 2))$p.value = 0.03185703
    assert r_fisher_p_value(np.array([[4, 1], [1, 7]]), "two-sided") == pytest.approx(0.03185703, abs=1e-8)


def test_the_package_does_not_import_scipy_stats() -> None:
    import subprocess
    import sys

    code = ("import sys, amlcohort.stats, amlcohort.report.tables, amlcohort.stats.contingency, "
            "amlcohort.stats.proportions, amlcohort.stats.cox; print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
