"""Tests for 2×2 and r×c contingency tables: Fisher's exact test and Pearson's chi-square.

* 2×2 Fisher: SciPy's p-value (same rule as R: tables at most ``1 + 1e-7`` times as probable as the
  observed one count as "as extreme"), and the conditional maximum-likelihood odds ratio with its
  exact interval computed as R's ``fisher.test`` does it: R finds these roots with ``uniroot`` at its
  default tolerance (``.Machine$double.eps^0.25``), so its printed values differ from the exact roots
  (e.g. SciPy's ``odds_ratio(kind="conditional")``) in the 4th-5th significant digit. To give R's
  numbers, R's root finder (Brent's ``zeroin`` as in R's ``zeroin.c``) is transcribed below.
* r×c Fisher (two-sided only, as R): exact enumeration of all tables with the observed margins, with
  network-algorithm pruning (Mehta & Patel): a partial table whose every completion is at most as
  probable as the observed table is counted in one step (the completions' total probability has a
  closed form); one whose every completion is more probable is dropped.
* Chi-square: SciPy's ``chi2_contingency``; Yates' correction only for 2×2 (as R); the result carries
  R's warning when an expected count is below 5.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np

from amlcohort.stats._distributions import chi2_contingency, hypergeom_cdf, hypergeom_logpmf
from amlcohort.stats._validation import ArrayLike, check_conf_level

__all__ = ["Alternative", "ChiSquareResult", "FisherResult", "chi_square_test", "fisher_exact"]

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")
#: Relative tolerance used by R's fisher.test (and SciPy) to decide "as or less probable".
_REL_ERR = 1.0 + 1e-7


def _as_table(table: ArrayLike) -> np.ndarray:
    arr = np.asarray(table)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(
            f"table must be a 2-D array with at least 2 rows and 2 columns, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iuf" or np.any(arr < 0) or np.any(arr != np.floor(arr)):
        raise ValueError("table must hold non-negative whole numbers (counts)")
    return arr.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Fisher
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FisherResult:
    """Fisher's exact test.

    Attributes: ``p_value``; ``alternative``; for 2×2 tables ``odds_ratio`` (conditional MLE, as R's
    ``fisher.test(...)$estimate``) and ``conf_int`` (exact, as ``$conf.int``), otherwise None;
    ``conf_level``; ``table``.
    """

    p_value: float
    alternative: str
    odds_ratio: float | None
    conf_int: tuple[float, float] | None
    conf_level: float
    table: np.ndarray = field(repr=False)

    def summary(self) -> str:
        shape = "x".join(str(s) for s in self.table.shape)
        text = f"Fisher's exact test ({shape} table, {self.alternative}): p = {self.p_value:.4g}"
        if self.odds_ratio is not None and self.conf_int is not None:
            pct = f"{100 * self.conf_level:g}%"
            lo, hi = self.conf_int
            text += f"\nodds ratio (conditional MLE) {self.odds_ratio:.4g}, {pct} CI {lo:.4g} to {hi:.4g}"
        return text

    def __repr__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------------------------------
# R's fisher.test estimate and interval for 2×2 tables
# ---------------------------------------------------------------------------------------------
_DBL_EPS = float(np.finfo(np.float64).eps)


def r_uniroot(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    tol: float = _DBL_EPS**0.25,
    maxiter: int = 1000,
) -> float:
    """R's ``uniroot(f, c(lower, upper))$root``: Brent's zeroin exactly as R's ``R_zeroin2``."""
    a, b = lower, upper
    fa, fb = f(a), f(b)
    if fa * fb > 0:
        raise ValueError("f() values at end points not of opposite sign")
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _DBL_EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


@dataclass(frozen=True)
class _NoncentralHypergeometric:
    """The conditional distribution of the (1, 1) cell given the margins, as inside R's fisher.test."""

    x: int  # observed (1, 1) cell
    m: int  # first column total
    n: int  # second column total
    k: int  # first row total

    @property
    def lo(self) -> int:
        return max(0, self.k - self.n)

    @property
    def hi(self) -> int:
        return min(self.k, self.m)

    @property
    def support(self) -> np.ndarray:
        return np.arange(self.lo, self.hi + 1)

    def density(self, ncp: float) -> np.ndarray:
        logdc = hypergeom_logpmf(self.support, self.m + self.n, self.m, self.k)
        d = logdc + math.log(ncp) * self.support
        d = np.exp(d - d.max())
        return d / d.sum()

    def mean(self, ncp: float) -> float:
        if ncp == 0:
            return float(self.lo)
        if ncp == math.inf:
            return float(self.hi)
        return float(np.sum(self.support * self.density(ncp)))

    def cdf(self, ncp: float, *, upper_tail: bool = False) -> float:
        q = self.x
        if ncp == 1:
            return hypergeom_cdf(q, self.m + self.n, self.m, self.k, upper_tail=upper_tail)
        if ncp == 0:
            return float(q <= self.lo) if upper_tail else float(q >= self.lo)
        if ncp == math.inf:
            return float(q <= self.hi) if upper_tail else float(q >= self.hi)
        mask = self.support >= q if upper_tail else self.support <= q
        return float(self.density(ncp)[mask].sum())

    def mle(self) -> float:
        x = self.x
        if x == self.lo:
            return 0.0
        if x == self.hi:
            return math.inf
        mu = self.mean(1.0)
        if mu > x:
            return r_uniroot(lambda t: self.mean(t) - x, 0.0, 1.0)
        if mu < x:
            return 1.0 / r_uniroot(lambda t: self.mean(1.0 / t) - x, _DBL_EPS, 1.0)
        return 1.0

    def ncp_upper(self, alpha: float) -> float:
        if self.x == self.hi:
            return math.inf
        p = self.cdf(1.0)
        if p < alpha:
            return r_uniroot(lambda t: self.cdf(t) - alpha, 0.0, 1.0)
        if p > alpha:
            return 1.0 / r_uniroot(lambda t: self.cdf(1.0 / t) - alpha, _DBL_EPS, 1.0)
        return 1.0

    def ncp_lower(self, alpha: float) -> float:
        if self.x == self.lo:
            return 0.0
        p = self.cdf(1.0, upper_tail=True)
        if p > alpha:
            return r_uniroot(lambda t: self.cdf(t, upper_tail=True) - alpha, 0.0, 1.0)
        if p < alpha:
            return 1.0 / r_uniroot(lambda t: self.cdf(1.0 / t, upper_tail=True) - alpha, _DBL_EPS, 1.0)
        return 1.0


def _distribution_2x2(table: np.ndarray) -> _NoncentralHypergeometric:
    return _NoncentralHypergeometric(
        x=int(table[0, 0]), m=int(table[:, 0].sum()), n=int(table[:, 1].sum()), k=int(table[0, :].sum())
    )


def r_fisher_p_value(table: np.ndarray, alternative: str) -> float:
    """The p-value of R's ``fisher.test`` for a 2×2 table: a one-sided tail of the hypergeometric
    distribution, or (two-sided) the sum of the probabilities of the tables no more likely than
    the observed one, within R's relative tolerance of 1e-7."""
    dist = _distribution_2x2(table)
    if alternative == "less":
        return dist.cdf(1.0)
    if alternative == "greater":
        return dist.cdf(1.0, upper_tail=True)
    d = dist.density(1.0)
    observed = d[dist.x - dist.lo]
    return float(min(1.0, d[d <= observed * (1.0 + 1e-7)].sum()))


def r_fisher_odds_ratio(table: np.ndarray, alternative: str, conf_level: float) -> tuple[float, float, float]:
    """``(estimate, lower, upper)`` of R's ``fisher.test`` for a 2×2 table."""
    dist = _distribution_2x2(table)
    if alternative == "less":
        lo, hi = 0.0, dist.ncp_upper(1.0 - conf_level)
    elif alternative == "greater":
        lo, hi = dist.ncp_lower(1.0 - conf_level), math.inf
    else:
        alpha = (1.0 - conf_level) / 2.0
        lo, hi = dist.ncp_lower(alpha), dist.ncp_upper(alpha)
    return dist.mle(), lo, hi


def _log_fact(k: int) -> float:
    return math.lgamma(k + 1)


def _column_matrix(total: int, caps: tuple[int, ...]) -> np.ndarray:
    """All non-negative integer vectors with the given sum and per-entry caps, one per row."""
    mat = np.zeros((1, 0), dtype=np.int64)
    rem = np.array([total], dtype=np.int64)
    for i, cap in enumerate(caps):
        rest_cap = sum(caps[i + 1 :])
        lo = np.maximum(0, rem - rest_cap)
        hi = np.minimum(cap, rem)
        n_choices = hi - lo + 1
        src = np.repeat(np.arange(len(rem)), n_choices)
        offset = np.arange(int(n_choices.sum())) - np.repeat(np.cumsum(n_choices) - n_choices, n_choices)
        x = lo[src] + offset
        mat = np.column_stack([mat[src], x])
        rem = rem[src] - x
    return mat


def _max_column_value(total: int, caps: tuple[int, ...]) -> float:
    """max of -sum(log x_i!) with sum x = total, 0 <= x_i <= caps: spread as evenly as possible."""
    remaining, value, k = total, 0.0, len(caps)
    for i, cap in enumerate(sorted(caps)):
        share = min(cap, remaining // (k - i))  # fill the smallest caps first
        # the remaining entries share the rest as evenly as possible
        value -= _log_fact(share)
        remaining -= share
    return value if remaining == 0 else -math.inf


def _min_column_value(total: int, caps: tuple[int, ...]) -> float:
    """min of -sum(log x_i!) with sum x = total, 0 <= x_i <= caps: concentrate in the largest caps."""
    remaining, value = total, 0.0
    for cap in sorted(caps, reverse=True):
        take = min(cap, remaining)
        value -= _log_fact(take)
        remaining -= take
    return value


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (values, multiplicities) pieces and merge equal values (to 1e-9)."""
    values = np.concatenate([v for v, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    keys, first, inverse = np.unique(np.round(values, 9), return_index=True, return_inverse=True)
    merged = np.zeros(len(keys))
    np.add.at(merged, inverse, counts)
    return values[first], merged


def _fisher_rxc_p(table: np.ndarray) -> float:
    """Two-sided exact p-value for an r×c table (R's ``fisher.test`` for r×c tables)."""
    rows = table.sum(axis=1)
    cols = np.sort(table.sum(axis=0))[::-1]  # big columns first: fewer, larger branches early
    n_total = int(rows.sum())
    const = sum(_log_fact(int(r)) for r in rows) + sum(_log_fact(int(c)) for c in cols) - _log_fact(n_total)
    observed = -sum(_log_fact(int(v)) for v in table.ravel())
    threshold = observed + math.log(_REL_ERR)
    col_totals = tuple(int(c) for c in cols)
    n_cols = len(col_totals)
    log_fact = np.array([_log_fact(i) for i in range(n_total + 1)])
    n_rows = len(rows)
    small_keys = (n_total + 1) ** n_rows < 2**62
    key_weights = (n_total + 1) ** np.arange(n_rows, dtype=np.int64) if small_keys else None

    @cache
    def bounds(k: int, state: tuple[int, ...]) -> tuple[float, float, float]:
        """(lower bound, upper bound, log total mass) of completions for columns k.. and rows ``state``."""
        rest = col_totals[k:]
        # two relaxations (drop the row sums, or drop the column sums); each bounds the true range
        lo = max(
            sum(_min_column_value(c, state) for c in rest),
            sum(_min_column_value(r, rest) for r in state),
        )
        hi = min(
            sum(_max_column_value(c, state) for c in rest),
            sum(_max_column_value(r, rest) for r in state),
        )
        log_mass = _log_fact(sum(state)) - sum(_log_fact(r) for r in state) - sum(_log_fact(c) for c in rest)
        return lo, hi, log_mass

    p_value = 0.0
    # level: remaining row totals (sorted) -> (partial values, multiplicities), duplicates merged
    start = tuple(sorted(int(r) for r in rows))
    level: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {start: (np.zeros(1), np.ones(1))}
    for k in range(n_cols):
        pieces: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        for state, (values, counts) in level.items():
            lo, hi, log_mass = bounds(k, state)
            settled = values + hi <= threshold  # every completion is at most as probable
            if settled.any():
                p_value += float(np.sum(counts[settled] * np.exp(const + values[settled] + log_mass)))
            open_ = ~settled & (values + lo <= threshold)  # some completions may count
            if not open_.any():
                continue
            vals, cnts = values[open_], counts[open_]
            vectors = _column_matrix(col_totals[k], state)
            steps = -log_fact[vectors].sum(axis=1)
            new_states = np.sort(np.asarray(state) - vectors, axis=1)
            if small_keys:  # encode each state as one integer: much faster grouping
                keys = new_states @ key_weights
                _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            else:
                _, first, inverse = np.unique(new_states, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
            order = np.argsort(inverse, kind="stable")
            splits = np.cumsum(np.bincount(inverse, minlength=len(first)))[:-1]
            for row, idx in zip(first, np.split(order, splits), strict=True):
                step = steps[idx]
                pieces[tuple(int(v) for v in new_states[row])].append(
                    (
                        (vals[None, :] + step[:, None]).ravel(),
                        np.repeat(cnts[None, :], len(step), axis=0).ravel(),
                    )
                )
        level = {state: _merge(parts) for state, parts in pieces.items()}
    # after the last column every state is all-zero (rarely reached: the bounds are exact there)
    for values, counts in level.values():
        keep = values <= threshold
        p_value += float(np.sum(counts[keep] * np.exp(const + values[keep])))
    return min(1.0, p_value)


def fisher_exact(
    table: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    conf_level: float = 0.95,
) -> FisherResult:
    """Fisher's exact test for a 2×2 (any alternative) or r×c (two-sided) table of counts.

    Examples
    --------
    The study's complete remissions: 4 of 5 with the combination, 1 of 8 with sorafenib alone.

    >>> r = fisher_exact([[4, 1], [1, 7]])
    >>> round(r.p_value, 6)
    0.031857

    R: ``fisher.test(matrix(c(4,1,1,7),2))`` (note R fills matrices by column).
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    level = check_conf_level(conf_level)
    tab = _as_table(table)
    if tab.shape == (2, 2):
        p_value = r_fisher_p_value(tab, alternative)
        estimate, lo, hi = r_fisher_odds_ratio(tab, alternative, level)
        return FisherResult(
            p_value=p_value,
            alternative=alternative,
            odds_ratio=estimate,
            conf_int=(lo, hi),
            conf_level=level,
            table=tab,
        )
    if alternative != "two-sided":
        raise ValueError("one-sided alternatives exist only for 2x2 tables (as in R's fisher.test)")
    tab = tab[tab.sum(axis=1) > 0][:, tab.sum(axis=0) > 0]
    p_value = 1.0 if min(tab.shape) < 2 else _fisher_rxc_p(tab)
    return FisherResult(
        p_value=p_value, alternative=alternative, odds_ratio=None, conf_int=None, conf_level=level, table=tab
    )


# ---------------------------------------------------------------------------------------------
# Chi-square
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChiSquareResult:
    """Pearson's chi-square test of independence.

    Attributes: ``statistic``, ``dof``, ``p_value``; ``correction`` (whether Yates' continuity
    correction was applied: only for 2×2 tables, as R); ``expected`` counts; ``warnings``, a tuple of
    messages (R's "Chi-squared approximation may be incorrect" when any expected count is below 5).
    """

    statistic: float
    dof: int
    p_value: float
    correction: bool
    expected: np.ndarray = field(repr=False)
    warnings: tuple[str, ...] = ()
    table: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def summary(self) -> str:
        kind = "with Yates' continuity correction" if self.correction else "without continuity correction"
        text = (
            f"Pearson's chi-square test ({kind}): X-squared = {self.statistic:.4g}, "
            f"df = {self.dof}, p = {self.p_value:.4g}"
        )
        return "\n".join([text, *(f"Warning: {w}" for w in self.warnings)])

    def __repr__(self) -> str:
        return self.summary()


def chi_square_test(table: ArrayLike, *, correction: bool = True) -> ChiSquareResult:
    """Chi-square test of independence, with (default) or without Yates' correction for 2×2 tables.

    Examples
    --------
    >>> r = chi_square_test([[12, 7], [5, 14]], correction=False)
    >>> r.dof, round(r.statistic, 5), r.warnings
    (1, 5.21569, ())

    R: ``chisq.test(matrix(c(12,5,7,14),2), correct=FALSE)``.
    """
    tab = _as_table(table)
    if np.any(tab.sum(axis=0) == 0) or np.any(tab.sum(axis=1) == 0):
        raise ValueError("table has an empty row or column: expected counts of 0 make the test undefined")
    statistic, p_value, dof, expected = chi2_contingency(tab, correction=correction)
    applied = bool(correction and tab.shape == (2, 2))
    notes: list[str] = []
    small = expected < 5
    if small.any():
        notes.append(
            "Chi-squared approximation may be incorrect: "
            f"{int(small.sum())} of {small.size} expected counts are below 5 "
            f"(smallest {expected.min():.3g}); consider fisher_exact"
        )
    return ChiSquareResult(
        statistic=statistic,
        dof=dof,
        p_value=p_value,
        correction=applied,
        expected=expected,
        warnings=tuple(notes),
        table=tab,
    )
