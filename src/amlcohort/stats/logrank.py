"""Log-rank test and its weighted relatives, stratified or not, from event counts.

The computation follows R's ``survival::survdiff`` (C routine ``survdiff2``): at each event time of
each stratum, observed and expected (weighted) events per group and the hypergeometric covariance
matrix; the statistic is ``(O - E)' V^- (O - E)`` on all groups with positive expectation but the
first, with ``k - 1`` degrees of freedom.

Weights ``w(t)``:

* ``"logrank"``: 1 (R: ``survdiff(..., rho=0)``);
* ``"fleming-harrington"``: ``S(t-)^rho * (1 - S(t-))^gamma`` with ``S(t-)`` the left-continuous
  Kaplan–Meier estimate of the pooled sample within the stratum; ``gamma = 0`` is R's
  ``survdiff(..., rho=rho)``;
* ``"peto-peto"``: Fleming–Harrington(1, 0), i.e. R's ``survdiff(..., rho=1)``;
* ``"gehan-breslow"`` (alias ``"wilcoxon"``): the number at risk ``n(t)`` (Gehan 1965, Breslow 1970).
  survdiff has no such option; it is checked against a separate hand-written R computation and
  against Gehan's pairwise score (see ``tests/fixtures/r/make_reference.R``).

As in R, "observed" and "expected" are weighted sums for the weighted tests.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from amlcohort.stats._validation import ArrayLike
from amlcohort.stats.counts import counts_from_arrays, validate_counts

__all__ = ["WEIGHTS", "LogRankResult", "Weights", "logrank_test", "logrank_test_from_counts"]

Weights = Literal["logrank", "gehan-breslow", "wilcoxon", "peto-peto", "fleming-harrington"]
WEIGHTS: tuple[str, ...] = ("logrank", "gehan-breslow", "wilcoxon", "peto-peto", "fleming-harrington")


@dataclass(frozen=True)
class LogRankResult:
    """Result of a (weighted, possibly stratified) log-rank test.

    Attributes
    ----------
    statistic, dof, p_value:
        Chi-square statistic, its degrees of freedom and the upper-tail p-value.
    table:
        Indexed by group: ``n``, ``observed``, ``expected`` (summed over strata, weighted for the
        weighted tests), ``(O-E)^2/E`` and ``(O-E)^2/V``, as printed by R's ``print.survdiff``.
    variance:
        The covariance matrix of ``observed - expected`` (R's ``survdiff(...)$var``).
    weights, rho, gamma:
        The weighting used (``rho``/``gamma`` for Fleming–Harrington).
    strata:
        The strata labels, or None for an unstratified test.
    """

    statistic: float
    dof: int
    p_value: float
    table: pd.DataFrame = field(repr=False)
    variance: pd.DataFrame = field(repr=False)
    weights: str
    rho: float = 0.0
    gamma: float = 0.0
    strata: tuple[Hashable, ...] | None = None

    @property
    def groups(self) -> tuple[Hashable, ...]:
        """Group labels in the order used (sorted)."""
        return tuple(self.table.index)

    @property
    def observed(self) -> pd.Series:
        """Observed (weighted) events per group."""
        return self.table["observed"]

    @property
    def expected(self) -> pd.Series:
        """Expected (weighted) events per group under the null hypothesis."""
        return self.table["expected"]

    def summary(self) -> str:
        """Readable summary in the layout of R's ``print.survdiff``."""
        name = {
            "logrank": "Log-rank test",
            "gehan-breslow": "Gehan–Breslow (generalised Wilcoxon) test",
            "peto-peto": "Peto–Peto test (Fleming–Harrington rho=1, gamma=0)",
            "fleming-harrington": f"Fleming–Harrington test (rho={self.rho:g}, gamma={self.gamma:g})",
        }[self.weights]
        if self.strata is not None:
            name += f", stratified by {len(self.strata)} strata"
        body = self.table.to_string(float_format=lambda v: f"{v:.4g}")
        test = f"Chisq= {self.statistic:.4g} on {self.dof} degrees of freedom, p= {self.p_value:.4g}"
        return f"{name}\n{body}\n\n {test}"

    def __repr__(self) -> str:
        return self.summary()


def _resolve_weights(weights: str, rho: float, gamma: float) -> tuple[str, float, float]:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if weights == "wilcoxon":
        weights = "gehan-breslow"
    if weights == "fleming-harrington":
        if rho < 0 or gamma < 0:
            raise ValueError(f"rho and gamma must be non-negative, got rho={rho}, gamma={gamma}")
        return weights, float(rho), float(gamma)
    if rho != 0 or gamma != 0:
        raise ValueError("rho and gamma apply only to weights='fleming-harrington'")
    if weights == "peto-peto":
        return weights, 1.0, 0.0
    return weights, 0.0, 0.0


def stratum_contributions(
    n_event: np.ndarray, n_censor: np.ndarray, weights: str, rho: float, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted observed, expected and covariance for one stratum.

    ``n_event`` and ``n_censor`` are (times x groups) count matrices at the sorted distinct times.
    """
    d_g = n_event.astype(np.float64)
    c_g = n_censor.astype(np.float64)
    total = d_g + c_g
    at_risk = total.sum(axis=0) - np.cumsum(total, axis=0) + total  # n_j(t): still followed at t
    n = at_risk.sum(axis=1)
    d = d_g.sum(axis=1)
    rows = d > 0
    d_g, at_risk, n, d = d_g[rows], at_risk[rows], n[rows], d[rows]
    if weights == "logrank":
        w = np.ones_like(n)
    elif weights == "gehan-breslow":
        w = n.copy()
    else:
        km_left = np.concatenate(([1.0], np.cumprod(1.0 - d / n)[:-1]))  # S(t-), pooled
        w = km_left**rho * (1.0 - km_left) ** gamma
    observed = (w[:, None] * d_g).sum(axis=0)
    expected = (w[:, None] * d[:, None] * at_risk / n[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > 1, w**2 * d * (n - d) / (n * (n - 1)), 0.0)
    frac = at_risk / n[:, None]
    # V_jk = sum_t factor * n_j (delta_jk - n_k / n)
    variance = np.diag((factor[:, None] * at_risk).sum(axis=0)) - np.einsum(
        "t,tj,tk->jk", factor, at_risk, frac
    )
    return observed, expected, variance


def _chisq(observed: np.ndarray, expected: np.ndarray, variance: np.ndarray) -> tuple[float, int]:
    """R's statistic: drop groups with zero expectation, then the first remaining one."""
    keep = np.flatnonzero(expected > 0)
    dof = len(keep) - 1
    if dof < 1:
        return 0.0, max(dof, 0)
    diff = (observed - expected)[keep][1:]
    vv = variance[np.ix_(keep, keep)][1:, 1:]
    try:
        solved = np.linalg.solve(vv, diff)
    except np.linalg.LinAlgError as err:
        raise ValueError("the variance matrix of the log-rank statistic is singular") from err
    return float(solved @ diff), dof


def logrank_test_from_counts(
    counts: pd.DataFrame,
    *,
    weights: Weights = "logrank",
    rho: float = 0.0,
    gamma: float = 0.0,
) -> LogRankResult:
    """Log-rank family test from a counts frame with a ``group`` (and optional ``strata``) column.

    The frame is what :func:`~amlcohort.stats.event_counts` returns with ``group=...``: one row per
    (stratum, group, time) with ``n_event`` and ``n_censor``; the engine did the heavy lifting.

    >>> import ibis, pandas as pd
    >>> from amlcohort.stats import event_counts
    >>> d = pd.DataFrame({"time": [5, 8, 9, 12, 13, 20], "status": [1, 1, 1, 1, 0, 1], "arm": list("aababb")})
    >>> counts = event_counts(ibis.memtable(d), "time", "status", group="arm")
    >>> round(logrank_test_from_counts(counts).statistic, 4)
    2.5567

    R: ``survdiff(Surv(time, status) ~ arm, data=d)``.
    """
    if "group" not in counts.columns:
        raise ValueError("counts needs a 'group' column for a log-rank test")
    kind, rho_, gamma_ = _resolve_weights(weights, rho, gamma)
    stratified = "strata" in counts.columns
    keys = ("strata", "group") if stratified else ("group",)
    frame = validate_counts(counts, keys=keys)
    groups = list(pd.unique(frame["group"].sort_values()))
    if len(groups) < 2:
        raise ValueError(f"a log-rank test needs at least two groups; group has only {groups}")
    k = len(groups)
    observed = np.zeros(k)
    expected = np.zeros(k)
    variance = np.zeros((k, k))
    strata_labels: list[Hashable] = []
    parts = frame.groupby("strata", sort=True) if stratified else [(None, frame)]
    for label, part in parts:
        strata_labels.append(label)
        d = part.pivot_table(index="time", columns="group", values="n_event", aggfunc="sum", fill_value=0)
        c = part.pivot_table(index="time", columns="group", values="n_censor", aggfunc="sum", fill_value=0)
        d = d.reindex(columns=groups, fill_value=0)
        c = c.reindex(index=d.index, columns=groups, fill_value=0)
        o, e, v = stratum_contributions(d.to_numpy(), c.to_numpy(), kind, rho_, gamma_)
        observed += o
        expected += e
        variance += v
    if not np.any(expected > 0):
        raise ValueError("there are no events: the log-rank test is undefined")
    statistic, dof = _chisq(observed, expected, variance)
    p_value = float(stats.chi2.sf(statistic, dof)) if dof > 0 else float("nan")
    n_per_group = frame.groupby("group", sort=True)[["n_event", "n_censor"]].sum().sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame(
            {
                "n": n_per_group.reindex(groups).to_numpy(dtype=np.int64),
                "observed": observed,
                "expected": expected,
                "(O-E)^2/E": (observed - expected) ** 2 / expected,
                "(O-E)^2/V": (observed - expected) ** 2 / np.diag(variance),
            },
            index=pd.Index(groups, name="group"),
        )
    return LogRankResult(
        statistic=statistic,
        dof=dof,
        p_value=p_value,
        table=table,
        variance=pd.DataFrame(variance, index=table.index, columns=table.index),
        weights=kind,
        rho=rho_,
        gamma=gamma_,
        strata=tuple(strata_labels) if stratified else None,
    )


def logrank_test(
    time: ArrayLike,
    event: ArrayLike,
    group: ArrayLike,
    *,
    strata: ArrayLike | None = None,
    weights: Weights = "logrank",
    rho: float = 0.0,
    gamma: float = 0.0,
) -> LogRankResult:
    """Compare survival between two or more groups (optionally within strata).

    Parameters
    ----------
    time, event, group:
        Follow-up time, event indicator (1/True = event), group label per subject.
    strata:
        Optional stratum label per subject (R: ``+ strata(x)`` in the formula).
    weights:
        ``"logrank"``, ``"gehan-breslow"`` (alias ``"wilcoxon"``), ``"peto-peto"`` or
        ``"fleming-harrington"`` (with ``rho`` and ``gamma``).

    Examples
    --------
    >>> r = logrank_test([5, 8, 9, 12, 13, 20], [1, 1, 1, 1, 0, 1], ["a", "a", "b", "a", "b", "b"])
    >>> r.dof, round(r.statistic, 4), round(r.p_value, 4)
    (1, 2.5567, 0.1098)

    R: ``survdiff(Surv(time, status) ~ group, data=d)`` (``rho=0``);
    ``weights="peto-peto"`` is ``survdiff(..., rho=1)``; stratified:
    ``survdiff(Surv(time, status) ~ group + strata(s), data=d)``. From a counts frame:
    :func:`logrank_test_from_counts` (also ``logrank_test.from_counts``).
    """
    counts = counts_from_arrays(time, event, group=group, strata=strata)
    return logrank_test_from_counts(counts, weights=weights, rho=rho, gamma=gamma)


logrank_test.from_counts = logrank_test_from_counts  # type: ignore[attr-defined]
