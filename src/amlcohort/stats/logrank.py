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
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from amlcohort.stats import _fast
from amlcohort.stats._distributions import chi2_sf
from amlcohort.stats._validation import ArrayLike
from amlcohort.stats.counts import checked_arrays, checked_counts

__all__ = ["WEIGHTS", "LogRankResult", "Weights", "logrank_test", "logrank_test_from_counts"]

Weights = Literal["logrank", "gehan-breslow", "wilcoxon", "peto-peto", "fleming-harrington"]
WEIGHTS: tuple[str, ...] = ("logrank", "gehan-breslow", "wilcoxon", "peto-peto", "fleming-harrington")


@dataclass(frozen=True, eq=False)
class LogRankResult:
    """Result of a (weighted, possibly stratified) log-rank test.

    Attributes
    ----------
    statistic, dof, p_value:
        Chi-square statistic, its degrees of freedom and the upper-tail p-value. When the test is
        not estimable (no subjects, no events, fewer than two groups with observations, a singular
        variance) ``p_value`` is None, ``statistic`` is NaN and ``dof`` is 0.
    estimable, reason:
        False and a sentence saying why, when there is nothing to test; True and ``""`` otherwise.
    groups, n_per_group, observed_sums, expected_sums, variance_matrix:
        Group labels (sorted) and, in that order, the numbers behind the frames below (arrays).
    table:
        Built on first use. Indexed by group: ``n``, ``observed``, ``expected`` (summed over
        strata, weighted for the weighted tests), ``(O-E)^2/E`` and ``(O-E)^2/V``, as printed by
        R's ``print.survdiff``.
    variance:
        Built on first use. The covariance matrix of ``observed - expected`` (R's ``survdiff(...)$var``).
    weights, rho, gamma:
        The weighting used (``rho``/``gamma`` for Fleming–Harrington).
    strata:
        The strata labels, or None for an unstratified test.
    """

    statistic: float
    dof: int
    p_value: float | None
    groups: tuple[Hashable, ...]
    n_per_group: np.ndarray = field(repr=False)
    observed_sums: np.ndarray = field(repr=False)
    expected_sums: np.ndarray = field(repr=False)
    variance_matrix: np.ndarray = field(repr=False)
    weights: str = "logrank"
    rho: float = 0.0
    gamma: float = 0.0
    strata: tuple[Hashable, ...] | None = None
    estimable: bool = True
    reason: str = ""

    # the frames are built on first use (the test itself needs none of them)
    @cached_property
    def table(self) -> pd.DataFrame:
        """Per group: n, observed, expected, (O-E)^2/E and (O-E)^2/V, as R's ``print.survdiff``."""
        observed, expected = self.observed_sums, self.expected_sums
        with np.errstate(divide="ignore", invalid="ignore"):
            return pd.DataFrame(
                {
                    "n": self.n_per_group.astype(np.int64),
                    "observed": observed,
                    "expected": expected,
                    "(O-E)^2/E": (observed - expected) ** 2 / expected,
                    "(O-E)^2/V": (observed - expected) ** 2 / np.diag(self.variance_matrix),
                },
                index=pd.Index(list(self.groups), name="group"),
            )

    @cached_property
    def variance(self) -> pd.DataFrame:
        """Covariance matrix of ``observed - expected`` (R's ``survdiff(...)$var``), by group."""
        index = pd.Index(list(self.groups), name="group")
        return pd.DataFrame(self.variance_matrix, index=index, columns=index)

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
        if not self.estimable:
            return f"{name}\n{body}\n\n not estimable: {self.reason}"
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


def _chisq(observed: np.ndarray, expected: np.ndarray, variance: np.ndarray) -> tuple[float, int]:
    """R's statistic: drop groups with zero expectation, then the first remaining one."""
    keep = np.flatnonzero(expected > 0)
    dof = len(keep) - 1
    if dof < 1:
        return 0.0, max(dof, 0)
    diff = (observed - expected)[keep][1:]
    vv = variance[np.ix_(keep, keep)][1:, 1:]
    solved = np.linalg.solve(vv, diff)  # LinAlgError when singular: handled by the caller
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
    keys = ("strata", "group") if "strata" in counts.columns else ("group",)
    return logrank_from_checked(checked_counts(counts, keys=keys), kind, rho_, gamma_)


#: The most groups a test compares: its variance matrix is k x k per stratum (1,000 groups: 8 MB;
#: 10,000: 800 MB and minutes), and so many groups is a continuous variable passed as the group.
MAX_GROUPS = 1000


def logrank_from_checked(counts: _fast.Counts, kind: str, rho: float, gamma: float) -> LogRankResult:
    """The test on checked counts (internal): vectorised sums per stratum, R's statistic."""
    groups = list(counts.group_labels)
    k = len(groups)
    if k > MAX_GROUPS:
        raise ValueError(
            f"{k} groups: a log-rank test compares a few groups (at most {MAX_GROUPS}); is the group a "
            "continuous variable (a time, a count, an id)? Group it first"
        )
    observed = np.zeros(k)
    expected = np.zeros(k)
    variance = np.zeros((k, k))
    stratified = counts.strata is not None
    strata_labels: list[Hashable] = []
    for code, start, stop in counts.segments(counts.strata) if stratified else [(0, 0, len(counts))]:
        if stratified:
            strata_labels.append(counts.strata_labels[code])
        o, e, v = _fast.logrank_sums(counts, slice(start, stop), k, kind, rho, gamma)
        observed += o
        expected += e
        variance += v
    n_per_group = np.zeros(k, dtype=np.int64)
    for code, start, stop in counts.segments(counts.group):  # runs of a group: a few per stratum
        n_per_group[code] += int(counts.n_event[start:stop].sum() + counts.n_censor[start:stop].sum())
    present = [g for g, n in zip(groups, n_per_group, strict=True) if n > 0]
    reason = ""
    statistic, dof, p_value = float("nan"), 0, None
    if len(counts) == 0:
        reason = "no subjects: the test is not estimable"
    elif len(present) < 2:
        reason = f"only one group ({present[0]!r}) has subjects: there is nothing to compare"
    elif not np.any(expected > 0):
        reason = "there are no events: the test is not estimable"
    else:
        try:
            statistic, dof = _chisq(observed, expected, variance)
        except np.linalg.LinAlgError:
            reason = "the variance matrix of the statistic is singular: the test is not estimable"
        else:
            if dof < 1:
                statistic = float("nan")
                reason = "fewer than two groups have expected events: the test is not estimable"
            else:
                p_value = float(chi2_sf(statistic, dof))
    return LogRankResult(
        statistic=statistic,
        dof=dof,
        p_value=p_value,
        groups=tuple(groups),
        n_per_group=n_per_group,
        observed_sums=observed,
        expected_sums=expected,
        variance_matrix=variance,
        weights=kind,
        rho=rho,
        gamma=gamma,
        strata=tuple(strata_labels) if stratified else None,
        estimable=not reason,
        reason=reason,
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
    kind, rho_, gamma_ = _resolve_weights(weights, rho, gamma)
    t, e, (g, s) = checked_arrays(time, event, group, strata)
    return logrank_from_checked(_fast.aggregate_arrays(t, e, g, s), kind, rho_, gamma_)


logrank_test.from_counts = logrank_test_from_counts  # type: ignore[attr-defined]
