"""The few distribution functions the statistics need, from :mod:`scipy.special` alone.

``import scipy.stats`` costs about 0.75 s of CPU (it builds some hundred distribution objects),
more than every statistic of the report takes to compute. The functions here are the very special
functions scipy.stats calls for these distributions, so the values are the same:

* normal quantile and tail: ``scipy.stats.norm.ppf`` is ``special.ndtri``, ``norm.sf(x)`` is
  ``special.ndtr(-x)``;
* chi-square upper tail: ``scipy.stats.chi2.sf(x, df)`` is ``special.chdtrc(df, x)``;
* hypergeometric log-probability: scipy's ``hypergeom._logpmf`` formula (log-beta functions);
* Clopper-Pearson limits: beta quantiles (``special.betaincinv``), as R's ``binom.test`` (scipy's
  ``binomtest`` finds the same limits by root-finding); the Wilson interval, scipy's formula;
* Pearson's chi-square of a contingency table (with Yates' correction on one degree of freedom)
  and the Kruskal-Wallis test with the tie correction, as ``scipy.stats.chi2_contingency`` and
  ``scipy.stats.kruskal`` (checked against them in ``tests/stats/test_distributions.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import special


def norm_ppf(q: float | np.ndarray) -> float | np.ndarray:
    """Standard normal quantile (R ``qnorm``)."""
    return special.ndtri(q)


def norm_sf(x: float | np.ndarray) -> float | np.ndarray:
    """Standard normal upper tail ``P(Z > x)`` (R ``pnorm(x, lower.tail = FALSE)``)."""
    return special.ndtr(-np.asarray(x, dtype=np.float64))


def chi2_sf(x: float | np.ndarray, df: float) -> float | np.ndarray:
    """Chi-square upper tail ``P(X > x)`` on ``df`` degrees of freedom (R ``pchisq(x, df,
    lower.tail = FALSE)``)."""
    return special.chdtrc(df, x)


def hypergeom_logpmf(k: np.ndarray | int, total: int, good: int, drawn: int) -> np.ndarray:
    """log P(K = k) drawing ``drawn`` of ``total`` items of which ``good`` are good (scipy's
    ``hypergeom.logpmf(k, total, good, drawn)``, the same formula)."""
    k = np.asarray(k, dtype=np.float64)
    bad = total - good
    betaln = special.betaln
    return (betaln(good + 1, 1) + betaln(bad + 1, 1) + betaln(total - drawn + 1, drawn + 1)
            - betaln(k + 1, good - k + 1) - betaln(drawn - k + 1, bad - drawn + k + 1)
            - betaln(total + 1, 1))


def hypergeom_cdf(q: int, total: int, good: int, drawn: int, *, upper_tail: bool = False) -> float:
    """``P(K <= q)`` (or ``P(K >= q)`` with ``upper_tail``) for the hypergeometric distribution, as
    the sum of the probabilities over the support (R ``phyper``)."""
    lo, hi = max(0, drawn - (total - good)), min(good, drawn)
    ks = np.arange(q, hi + 1) if upper_tail else np.arange(lo, q + 1)
    ks = ks[(ks >= lo) & (ks <= hi)]
    if ks.size == 0:
        return 0.0
    return float(min(1.0, np.exp(hypergeom_logpmf(ks, total, good, drawn)).sum()))


def clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    """Exact two-sided interval of ``k`` successes in ``n`` (R ``binom.test(k, n)$conf.int``)."""
    alpha = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1.0 - alpha))
    return low, high


def wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson score interval without continuity correction (R ``prop.test(k, n, correct = FALSE)``;
    scipy's ``binomtest(k, n).proportion_ci(method="wilson")``, the same formula)."""
    z = float(special.ndtri(0.5 + 0.5 * level))
    p = k / n
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else center - delta), (1.0 if k == n else center + delta)


def chi2_contingency(observed: np.ndarray, *, correction: bool = True
                     ) -> tuple[float, float, int, np.ndarray]:
    """Pearson's chi-square test of independence of a two-way table: statistic, p-value, degrees
    of freedom and expected counts (``scipy.stats.chi2_contingency``; R ``chisq.test``)."""
    obs = np.asarray(observed, dtype=np.float64)
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / obs.sum()
    if np.any(expected == 0):
        raise ValueError("the table of expected counts has a zero: the test is undefined")
    dof = (obs.shape[0] - 1) * (obs.shape[1] - 1)
    if dof == 0:
        return 0.0, 1.0, 0, expected
    if dof == 1 and correction:
        diff = expected - obs
        obs = obs + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(((obs - expected) ** 2 / expected).sum())
    return statistic, float(special.chdtrc(dof, statistic)), dof, expected


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of ``values`` (ties get their average rank) and the size of each tie group."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    average = starts + (sizes + 1) / 2.0  # mean of the ranks start+1 .. start+size
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, sizes)
    return ranks, sizes


def kruskal_wallis(samples: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Kruskal-Wallis H (tie-corrected) and its chi-square p-value on k - 1 degrees of freedom
    (``scipy.stats.kruskal``; R ``kruskal.test``)."""
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    pooled = np.concatenate(arrays)
    n = pooled.size
    ranks, ties = average_ranks(pooled)
    bounds = np.cumsum([0, *(a.size for a in arrays)])
    h = 12.0 / (n * (n + 1)) * sum(
        ranks[b:e].sum() ** 2 / (e - b) for b, e in itertools.pairwise(bounds)
    ) - 3.0 * (n + 1)
    correction = 1.0 - float((ties**3 - ties).sum()) / (n**3 - n)
    if correction == 0:
        raise ValueError("all values are equal: the Kruskal-Wallis test is undefined")
    h /= correction
    return float(h), float(special.chdtrc(len(arrays) - 1, h))
