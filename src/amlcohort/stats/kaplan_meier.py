"""Kaplan–Meier estimation, following R's ``survival::survfit`` to the last rule.

Everything is computed from a counts frame (events and censorings per distinct time, see
:mod:`amlcohort.stats.counts`); array input is first aggregated into such a frame, so there is one
implementation for arrays, pandas frames and database tables of any size.

R conventions reproduced here (survival 3.x):

* product-limit estimate; a censoring at time *t* counts as at risk at *t* (events before censorings);
* Greenwood variance ``sum d / (n (n - d))`` (infinite once the curve reaches 0, so the standard
  error is ``NaN`` there, as R's ``summary.survfit`` prints);
* pointwise intervals as in R's ``survfit_confint`` for ``conf.type`` ``"log"`` (R's default and
  this package's default), ``"log-log"`` and ``"plain"``; bounds are missing (``NaN``) where R gives
  ``NA``: at S = 0 (all types) and at S = 1 for ``"log-log"``;
* the median and its interval as printed by ``print.survfit`` / ``summary(fit)$table`` (R's internal
  ``survmean``): if S equals 0.5 (within ``sqrt(.Machine$double.eps)``) over an interval, the median
  is the midpoint of that interval; the interval limits come from where the bands cross 0.5, same rule;
* other quantiles as R's ``quantile.survfit`` (same midpoint rule; in addition, when the curve *ends*
  at exactly 1 - p, quantile.survfit returns the midpoint between where it reached 1 - p and the last
  follow-up time, whereas print.survfit reports the time it was reached; both are reproduced);
* restricted mean and its standard error as ``summary(fit, rmean=tau)$table`` (``survmean``).

R's ``survfit`` merges times that differ by rounding error only (``timefix``, ``aeqSurv``); here
times are taken as they are.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from amlcohort.stats import _fast
from amlcohort.stats._distributions import norm_ppf
from amlcohort.stats._fast import number_at_risk, product_limit
from amlcohort.stats._validation import ArrayLike, as_1d, check_conf_level
from amlcohort.stats.counts import COUNT_COLUMNS, checked_arrays, checked_counts, counts_from_arrays

__all__ = [
    "CONF_TYPES",
    "ConfType",
    "FollowUpResult",
    "KaplanMeierResult",
    "RestrictedMeanResult",
    "SurvivalQuantile",
    "kaplan_meier",
    "kaplan_meier_by_group",
    "kaplan_meier_by_group_from_counts",
    "kaplan_meier_from_counts",
    "median_follow_up",
    "median_follow_up_from_counts",
    "restricted_mean",
]

ConfType = Literal["log-log", "log", "plain"]
CONF_TYPES: tuple[str, ...] = ("log-log", "log", "plain")

#: R's tolerance in quantile.survfit and survmean: sqrt(.Machine$double.eps).
R_TOLERANCE: float = float(np.sqrt(np.finfo(np.float64).eps))

TABLE_COLUMNS = ("time", "n_risk", "n_event", "n_censor", "survival", "std_err", "lower", "upper")


# ---------------------------------------------------------------------------------------------
# Pure numerical building blocks
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _z(conf_level: float) -> float:
    """The normal quantile of a two-sided interval (cached: a curve of a few hundred rows costs
    less than the call)."""
    return float(norm_ppf(1.0 - (1.0 - conf_level) / 2.0))


def confidence_band(surv: np.ndarray, se_log: np.ndarray, conf_type: str, z: float, side: int) -> np.ndarray:
    """One pointwise bound (``side`` 0 = lower, 1 = upper) as R's ``survfit_confint`` (``logse=TRUE``).

    Elementwise, so a slice of the inputs gives the same slice of the bound.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if conf_type == "plain":
            se2 = se_log * surv * z
            return np.maximum(surv - se2, 0.0) if side == 0 else np.minimum(surv + se2, 1.0)
        if conf_type == "log":
            log_s = np.log(np.where(surv == 0, np.nan, surv))
            se2 = z * se_log
            return np.exp(log_s - se2) if side == 0 else np.minimum(np.exp(log_s + se2), 1.0)
        if conf_type == "log-log":
            xx = np.where((surv == 0) | (surv == 1), np.nan, surv)
            log_s = np.log(xx)
            se2 = z * se_log / log_s
            loglog = np.log(-log_s)
            return np.exp(-np.exp(loglog - se2)) if side == 0 else np.exp(-np.exp(loglog + se2))
    raise ValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")


def confidence_bounds(
    surv: np.ndarray, se_log: np.ndarray, conf_type: str, conf_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise bounds exactly as R's ``survival:::survfit_confint`` (``logse=TRUE``)."""
    z = _z(conf_level)
    return confidence_band(surv, se_log, conf_type, z, 0), confidence_band(surv, se_log, conf_type, z, 1)


def median_rule(y: np.ndarray, x: np.ndarray, tol: float = R_TOLERANCE) -> float:
    """First time ``y`` drops to 0.5, with R's midpoint rule (``survmean``'s ``minmin``).

    ``y`` is a survival curve or one of its bands at times ``x``; ``NaN`` entries are ignored.
    Returns ``NaN`` when the curve never reaches 0.5.
    """
    with np.errstate(invalid="ignore"):
        keep = y < 0.5 + tol  # NaN compares False
    if len(keep) == 0 or not keep.any():
        return float("nan")
    first = int(np.argmax(keep))
    y0 = y[first]
    if abs(y0 - 0.5) < tol:
        with np.errstate(invalid="ignore"):
            below = y[first:] < y0
        if below.any():
            return float((x[first] + x[first + int(np.argmax(below))]) / 2.0)
    return float(x[first])


#: Elements per chunk when a band is evaluated piecewise: the chunk's temporaries are the same
#: size every time, so their memory is reused (and stays in the CPU cache).
BAND_CHUNK: int = 1 << 14


def _first_index(
    values: Callable[[int, int], np.ndarray],
    test: Callable[[np.ndarray], np.ndarray],
    n: int,
    start: int,
    stop: int,
) -> tuple[int, float] | None:
    """First ``i >= start`` where ``test(values(i, i + 1))`` holds, and the value there.

    ``values(a, b)`` gives ``y[a:b]`` of an elementwise curve; only the chunks up to the hit are
    computed: the first ends at ``stop``, the next ones hold ``BAND_CHUNK`` elements each.
    """
    stop = min(max(stop, start + 1), n)
    while start < n:
        y = values(start, stop)
        with np.errstate(invalid="ignore"):
            hit = test(y)
        if hit.any():
            k = int(np.argmax(hit))
            return start + k, float(y[k])
        start, stop = stop, min(n, stop + BAND_CHUNK)
    return None


def median_rule_lazy(
    values: Callable[[int, int], np.ndarray], x: np.ndarray, start: int = 0, stop: int = 4096
) -> float:
    """:func:`median_rule` on a curve computed piecewise (``values(a, b)`` = ``y[a:b]``).

    The caller guarantees that ``y[:start]`` does not drop below ``0.5 + tol``; the search starts at
    ``start`` with a first chunk ending at ``stop``, so only the part of the curve up to the crossing
    (and, for the midpoint rule, up to the next drop) is ever evaluated.
    """
    n = len(x)
    threshold = 0.5 + R_TOLERANCE
    found = _first_index(values, lambda y: y < threshold, n, start, stop)
    if found is None:
        return float("nan")
    first, y0 = found
    if abs(y0 - 0.5) < R_TOLERANCE:
        nxt = _first_index(values, lambda y: y < y0, n, first + 1, first + 1 + 4096)
        if nxt is not None:
            return float((x[first] + x[nxt[0]]) / 2.0)
    return float(x[first])


def _first_below(y: np.ndarray, threshold: float, start: int = 0) -> int:
    """First ``i >= start`` with ``y[i] < threshold`` for a non-increasing ``y`` (``len(y)`` if none).

    A binary search: a product-limit curve never increases (each factor is at most 1, and
    rounding preserves that), so no pass over the curve is needed.
    """
    return bisect.bisect_left(range(len(y)), True, lo=start, key=lambda i: bool(y[i] < threshold))


def median_rule_monotone(y: np.ndarray, x: np.ndarray, tol: float = R_TOLERANCE) -> float:
    """:func:`median_rule` for a non-increasing curve without NaN (the survival curve itself)."""
    n = len(y)
    first = _first_below(y, 0.5 + tol)
    if first == n:
        return float("nan")
    y0 = y[first]
    if abs(y0 - 0.5) < tol:
        nxt = _first_below(y, y0, first + 1)
        if nxt < n:
            return float((x[first] + x[nxt]) / 2.0)
    return float(x[first])


def quantile_rule(x: np.ndarray, y: np.ndarray, p: float, tol: float = R_TOLERANCE) -> float:
    """R's ``survival:::findq``: the time at which ``y`` (a cumulative distribution) reaches ``p``.

    ``x`` are the times with the start time prepended and ``y`` = ``c(0, 1 - S)`` (or ``1 - band``).
    """
    if np.all(np.isnan(y)) or np.nanmax(y) < p:
        return float("nan")
    xmax = x[-1]
    dup = pd.Series(y).duplicated().to_numpy()
    x, y = x[~dup], y[~dup]
    valid = np.flatnonzero(~np.isnan(y))
    order = valid[np.argsort(y[valid], kind="stable")]
    knots_y = y[order]

    def first_index(shift: float) -> int | None:
        # approx(y + shift, 1:n, p, method="constant", f=1), rule=1 (NA outside the knots)
        knots = knots_y + shift
        if p < knots[0] or p > knots[-1]:
            return None
        return int(order[np.searchsorted(knots, p, side="left")])

    i1, i2 = first_index(tol), first_index(-tol)
    quant = float("nan") if i1 is None or i2 is None else float((x[i1] + x[i2]) / 2.0)
    if p == 0:
        quant = float(x[0])
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol:
        quant = float("nan") if i1 is None else float((x[i1] + xmax) / 2.0)
    return quant


def restricted_mean_rule(
    time: np.ndarray,
    surv: np.ndarray,
    n_risk: np.ndarray,
    n_event: np.ndarray,
    tau: float,
    start: float = 0.0,
) -> tuple[float, float]:
    """Restricted mean and its standard error, as R's ``survival:::survmean`` (``pfun``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        hh = np.where(n_risk - n_event == 0, 0.0, n_event / (n_risk * (n_risk - n_event)))
    keep = time <= tau
    if not keep.any():
        temptime, tempsurv, hh = np.array([tau]), np.array([1.0]), np.array([0.0])
    else:
        temptime = np.append(time[keep], tau)
        tempsurv = np.append(surv[keep], surv[keep][-1])
        hh = np.append(hh[keep], 0.0)
    delta = np.diff(np.concatenate(([start], temptime)))
    rectangles = delta * np.concatenate(([1.0], tempsurv[:-1]))
    varmean = float(np.sum(np.cumsum(rectangles[1:][::-1]) ** 2 * hh[::-1][1:]))
    return float(np.sum(rectangles) + start), float(np.sqrt(varmean))


def _opt(value: float) -> float | None:
    """R's NA as None."""
    return None if np.isnan(value) else float(value)


def _check_conf_type(conf_type: str) -> str:
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    return conf_type


def _fmt(value: float | None, digits: int = 4) -> str:
    return "NA" if value is None or np.isnan(value) else f"{value:.{digits}g}"


# ---------------------------------------------------------------------------------------------
# Result objects
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurvivalQuantile:
    """A quantile of the survival distribution: the time by which a fraction ``p`` had the event.

    Attributes: ``p``; ``time`` (the estimate), ``lower`` and ``upper`` (confidence limits). ``None``
    stands for R's ``NA`` (not reached).
    """

    p: float
    time: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class RestrictedMeanResult:
    """Restricted mean survival time up to ``tau`` (area under the KM curve on [0, tau]).

    ``estimate`` and ``std_err`` equal R's ``summary(fit, rmean=tau)$table[c("rmean", "se(rmean)")]``.
    ``lower``/``upper`` are the normal-theory interval ``estimate ± z * std_err`` clipped to
    ``[0, tau]``, the only values a restricted mean can take (``survival`` prints no interval;
    ``survRM2::rmst2`` reports the unclipped normal interval, whose limits can lie below 0 or above
    ``tau``; here such a limit is 0 or ``tau``). The clipping changes neither ``estimate`` nor ``std_err``.
    """

    tau: float
    estimate: float
    std_err: float
    conf_level: float
    lower: float
    upper: float

    def summary(self) -> str:
        pct = f"{100 * self.conf_level:g}%"
        return (
            f"Restricted mean survival up to tau = {self.tau:g}: {self.estimate:.4g} "
            f"(se {self.std_err:.4g}; {pct} CI {self.lower:.4g} to {self.upper:.4g})"
        )


@dataclass(frozen=True, eq=False)
class KaplanMeierResult:
    """A Kaplan–Meier curve with R's (``survival::survfit``) standard errors, bounds and medians.

    Attributes
    ----------
    table:
        One row per distinct time (event or censoring): ``time``, ``n_risk``, ``n_event``,
        ``n_censor``, ``survival``, ``std_err`` (Greenwood standard error of S(t), as in
        ``summary(fit, censored=TRUE)$std.err``), ``lower``, ``upper`` (pointwise bounds, as
        ``fit$lower`` / ``fit$upper``).
    conf_type, conf_level:
        The interval transformation (``"log"``, the default as in R, ``"log-log"`` or ``"plain"``)
        and level.
    label:
        Group label, for curves from :func:`kaplan_meier_by_group`.

    Examples
    --------
    >>> km = kaplan_meier([9, 13, 13, 18, 23], [1, 1, 0, 1, 1], conf_type="log")
    >>> km.median_
    18.0
    >>> km.table[["time", "n_risk", "survival"]]
       time  n_risk  survival
    0   9.0       5       0.8
    1  13.0       4       0.6
    2  18.0       2       0.3
    3  23.0       1       0.0

    The same numbers in R: ``survfit(Surv(time, status) ~ 1, data=d, conf.type="log")``.
    """

    time: np.ndarray = field(repr=False)
    n_event: np.ndarray = field(repr=False)
    n_censor: np.ndarray = field(repr=False)
    survival: np.ndarray = field(repr=False)
    se_log: np.ndarray = field(repr=False)
    conf_type: str = "log"
    conf_level: float = 0.95
    label: Hashable | None = None
    estimable: bool = True
    reason: str = ""

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        time: np.ndarray,
        n_event: np.ndarray,
        n_censor: np.ndarray,
        *,
        conf_type: ConfType = "log",
        conf_level: float = 0.95,
        label: Hashable | None = None,
    ) -> KaplanMeierResult:
        """Curve from checked counts at sorted distinct times (no copies; see :mod:`._fast`).

        With no subjects the result is *not estimable* (``estimable=False``, ``reason`` says why,
        the table is empty and the median is None) instead of an error.
        """
        _check_conf_type(conf_type)
        level = check_conf_level(conf_level)
        surv, se_log = product_limit(n_event, n_censor)
        estimable, reason = (True, "") if len(time) else (False, "no subjects: the curve is not estimable")
        return cls(
            time=time,
            n_event=n_event,
            n_censor=n_censor,
            survival=surv,
            se_log=se_log,
            conf_type=conf_type,
            conf_level=level,
            label=label,
            estimable=estimable,
            reason=reason,
        )

    @classmethod
    def from_counts(
        cls,
        counts: pd.DataFrame,
        *,
        conf_type: ConfType = "log",
        conf_level: float = 0.95,
        label: Hashable | None = None,
    ) -> KaplanMeierResult:
        """Kaplan–Meier curve from a counts frame (columns ``time``, ``n_event``, ``n_censor``).

        A ``group`` or ``strata`` column is allowed only if it holds a single value; use
        :func:`kaplan_meier_by_group` for several curves. An empty frame (no subjects) gives a
        result with ``estimable=False`` and the reason.
        """
        _check_conf_type(conf_type)
        check_conf_level(conf_level)
        for key in ("group", "strata"):
            if key in counts.columns and counts[key].nunique(dropna=False) > 1:
                raise ValueError(
                    f"counts has several values in {key!r}; use kaplan_meier_by_group for one curve per group"
                )
        columns = set(getattr(counts, "columns", ()))
        if len(counts) == 0 and set(COUNT_COLUMNS) <= columns:
            c = _fast.Counts(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
        else:
            c = checked_counts(counts)
        return cls.from_arrays(
            c.time, c.n_event, c.n_censor, conf_type=conf_type, conf_level=conf_level, label=label
        )

    # -- derived columns (computed on first use) ------------------------------------------------
    @cached_property
    def n_risk(self) -> np.ndarray:
        """Number at risk at each time (R's ``fit$n.risk``), as float64."""
        return number_at_risk(self.n_event, self.n_censor)

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return confidence_bounds(self.survival, self.se_log, self.conf_type, self.conf_level)

    @property
    def lower(self) -> np.ndarray:
        """Lower pointwise confidence bound at each time (R's ``fit$lower``)."""
        return self._bounds[0]

    @property
    def upper(self) -> np.ndarray:
        """Upper pointwise confidence bound at each time (R's ``fit$upper``)."""
        return self._bounds[1]

    @cached_property
    def std_err(self) -> np.ndarray:
        """Greenwood standard error of S(t) (``summary(fit, censored=TRUE)$std.err``)."""
        with np.errstate(invalid="ignore"):
            return self.survival * self.se_log  # 0 * inf = NaN where S reaches 0, as in R

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per distinct time: time, n_risk, n_event, n_censor, survival, std_err, lower, upper."""
        return pd.DataFrame(
            {
                "time": np.asarray(self.time, dtype=np.float64),
                "n_risk": self.n_risk.astype(np.int64),
                "n_event": np.asarray(self.n_event, dtype=np.int64),
                "n_censor": np.asarray(self.n_censor, dtype=np.int64),
                "survival": self.survival,
                "std_err": self.std_err,
                "lower": self.lower,
                "upper": self.upper,
            }
        )

    # -- basic facts -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of subjects."""
        return int(self.n_event.sum() + self.n_censor.sum())

    @property
    def n_events(self) -> int:
        """Total number of events."""
        return int(self.n_event.sum())

    @property
    def survival_function_(self) -> pd.DataFrame:
        """S(t) indexed by time (lifelines style), one column ``survival``."""
        return self.table.set_index("time")[["survival"]]

    @property
    def confidence_interval_(self) -> pd.DataFrame:
        """Pointwise bounds indexed by time, columns ``lower`` and ``upper``."""
        return self.table.set_index("time")[["lower", "upper"]]

    # -- median and quantiles ----------------------------------------------------------------
    def _arrays(self, col: str) -> np.ndarray:
        return np.asarray(getattr(self, col), dtype=np.float64)

    @property
    def median_(self) -> float | None:
        """Median survival as ``print.survfit`` / ``summary(fit)$table["median"]``; None if not reached."""
        return _opt(median_rule_monotone(self._arrays("survival"), self._arrays("time")))

    @property
    def median_ci_(self) -> tuple[float | None, float | None]:
        """Confidence interval of the median (R's ``0.95LCL``, ``0.95UCL``); None where not reached.

        Only the part of each band up to where it crosses 0.5 is computed: the lower band lies at
        or below the curve and the upper band at or above it, so the upper band's search starts
        where the curve itself comes near 0.5.
        """
        time = self._arrays("time")
        n = len(time)
        if "_bounds" in self.__dict__ or n <= 4096:
            return _opt(median_rule(self._arrays("lower"), time)), _opt(
                median_rule(self._arrays("upper"), time)
            )
        surv = self._arrays("survival")
        se_log = self._arrays("se_log")
        z = _z(self.conf_level)

        def band(side: int) -> Callable[[int, int], np.ndarray]:
            return lambda a, b: confidence_band(surv[a:b], se_log[a:b], self.conf_type, z, side)

        # the curve's own crossing; a margin far above rounding keeps the upper band's start safe
        m = _first_below(surv, 0.5 + R_TOLERANCE + 1e-9)
        lower = median_rule_lazy(band(0), time, 0, min(m + 1, BAND_CHUNK))
        upper = median_rule_lazy(band(1), time, m, m + 4096)
        return _opt(lower), _opt(upper)

    def quantile(self, p: float) -> SurvivalQuantile:
        """Time by which a fraction ``p`` had the event, with its CI, as R's ``quantile.survfit``.

        ``quantile(0.5)`` equals :attr:`median_` except when the curve ends at exactly 0.5, where
        ``quantile.survfit`` takes the midpoint to the last follow-up time and ``print.survfit`` does not.

        R: ``quantile(fit, probs=p)``.
        """
        prob = float(p)
        if not 0.0 < prob < 1.0:
            raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
        x = np.concatenate(([0.0], self._arrays("time")))

        def q(col: str) -> float | None:
            return _opt(quantile_rule(x, np.concatenate(([0.0], 1.0 - self._arrays(col))), prob))

        return SurvivalQuantile(p=prob, time=q("survival"), lower=q("lower"), upper=q("upper"))

    def quantiles(self, probs: Sequence[float] = (0.25, 0.5, 0.75)) -> pd.DataFrame:
        """Several quantiles as a frame with columns ``p``, ``time``, ``lower``, ``upper`` (NaN = NA)."""
        rows = [self.quantile(p) for p in probs]
        return pd.DataFrame(
            {
                "p": [r.p for r in rows],
                "time": [np.nan if r.time is None else r.time for r in rows],
                "lower": [np.nan if r.lower is None else r.lower for r in rows],
                "upper": [np.nan if r.upper is None else r.upper for r in rows],
            }
        )

    # -- values at chosen times ----------------------------------------------------------------
    def survival_at(self, times: ArrayLike) -> pd.DataFrame:
        """The curve at chosen times, as R's ``summary(fit, times=..., extend=TRUE)``.

        ``n_risk`` is the number still at risk at each time; ``n_event`` and ``n_censor`` count what
        happened since the previous requested time. Past the last observation the last values are
        carried forward (``n_risk`` is 0).
        """
        t = np.sort(as_1d("times", times).astype(np.float64))
        if np.any(np.isnan(t)) or np.any(t < 0):
            raise ValueError("times must be non-negative and not missing")
        time = self._arrays("time")
        idx = np.searchsorted(time, t, side="right") - 1  # last table row at or before t
        before = idx < 0
        safe = np.where(before, 0, idx)
        surv = np.where(before, 1.0, self._arrays("survival")[safe])
        std_err = np.where(before, 0.0, self._arrays("std_err")[safe])
        # before the first observed time R reports S = 1 with bounds 1 and 1, whatever the conf_type
        lower = np.where(before, 1.0, self._arrays("lower")[safe])
        upper = np.where(before, 1.0, self._arrays("upper")[safe])
        first_at_or_after = np.searchsorted(time, t, side="left")
        n_risk_tab = self.n_risk.astype(np.int64)
        n_risk = np.where(
            first_at_or_after < len(time), n_risk_tab[np.minimum(first_at_or_after, len(time) - 1)], 0
        )
        cum_d = np.concatenate(([0], np.cumsum(self.n_event)))
        cum_c = np.concatenate(([0], np.cumsum(self.n_censor)))
        upto = idx + 1
        prev = np.concatenate(([0], upto[:-1]))
        return pd.DataFrame(
            {
                "time": t,
                "n_risk": n_risk.astype(np.int64),
                "n_event": (cum_d[upto] - cum_d[prev]).astype(np.int64),
                "n_censor": (cum_c[upto] - cum_c[prev]).astype(np.int64),
                "survival": surv,
                "std_err": std_err,
                "lower": lower,
                "upper": upper,
            }
        )

    # -- restricted mean -------------------------------------------------------------------------
    def restricted_mean(self, tau: float | None = None) -> RestrictedMeanResult:
        """Restricted mean survival time up to ``tau`` (default: the last observed time).

        Equals R's ``summary(fit, rmean=tau)$table[c("rmean", "se(rmean)")]`` (``print(fit, rmean=tau)``).
        The interval ``estimate ± z * std_err`` is clipped to ``[0, tau]`` (see
        :class:`RestrictedMeanResult`; ``survRM2`` reports it unclipped).
        """
        time = self._arrays("time")
        if not len(time):
            raise ValueError("no observations: a restricted mean needs at least one time")
        end = float(time[-1]) if tau is None else float(tau)
        if not np.isfinite(end) or end < 0:
            raise ValueError(f"tau must be a non-negative number, got {tau!r}")
        est, se = restricted_mean_rule(
            time, self._arrays("survival"), self._arrays("n_risk"), self._arrays("n_event"), end
        )
        z = norm_ppf(1.0 - (1.0 - self.conf_level) / 2.0)
        return RestrictedMeanResult(
            tau=end,
            estimate=est,
            std_err=se,
            conf_level=self.conf_level,
            lower=min(max(est - z * se, 0.0), end),  # an RMST lies in [0, tau]; survRM2 does not clip
            upper=max(min(est + z * se, end), 0.0),
        )

    # -- display -----------------------------------------------------------------------------------
    def summary(self) -> str:
        """One-line table as R's ``print(fit)``: n, events, median and its confidence limits."""
        lo, hi = self.median_ci_
        pct = f"{self.conf_level:g}"
        head = "Kaplan–Meier estimate" + (f" [{self.label}]" if self.label is not None else "")
        return (
            f"{head} (conf_type={self.conf_type!r})\n"
            f"{'n':>6} {'events':>7} {'median':>8} {pct + 'LCL':>9} {pct + 'UCL':>9}\n"
            f"{self.n:>6} {self.n_events:>7} {_fmt(self.median_):>8} {_fmt(lo):>9} {_fmt(hi):>9}"
        )

    def __repr__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class FollowUpResult:
    """Median follow-up by the reverse Kaplan–Meier method (Schemper & Smith 1996).

    ``median``, ``lower``, ``upper`` are the median of the curve that treats censoring as the event
    and death as censoring, and its confidence limits; ``reverse_km`` is that curve.
    R: ``survfit(Surv(time, 1 - status) ~ 1)``, read as ``summary(fit)$table``.
    """

    median: float | None
    lower: float | None
    upper: float | None
    reverse_km: KaplanMeierResult = field(repr=False)

    def summary(self) -> str:
        pct = f"{100 * self.reverse_km.conf_level:g}%"
        return (
            f"Median follow-up (reverse Kaplan–Meier): {_fmt(self.median)} "
            f"({pct} CI {_fmt(self.lower)} to {_fmt(self.upper)}; conf_type={self.reverse_km.conf_type!r})"
        )


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------
def kaplan_meier(
    time: ArrayLike,
    event: ArrayLike,
    *,
    conf_type: ConfType = "log",
    conf_level: float = 0.95,
) -> KaplanMeierResult:
    """Kaplan–Meier estimate with Greenwood standard errors and pointwise confidence bounds.

    Parameters
    ----------
    time:
        Follow-up times (non-negative).
    event:
        1/True = event, 0/False = censored.
    conf_type:
        ``"log"`` (the default, as R's ``survfit``), ``"log-log"`` or ``"plain"``.
    conf_level:
        Confidence level of the pointwise bounds and of the median's interval.

    Examples
    --------
    >>> km = kaplan_meier([9, 13, 13, 18, 23, 28, 31], [1, 1, 0, 1, 1, 0, 1], conf_type="log")
    >>> km.median_, km.median_ci_
    (23.0, (13.0, None))

    R: ``survfit(Surv(time, status) ~ 1, data=d)`` (``conf.type="log"`` is the default in both); every
    estimate, bound and median equals R's. Counts from a database: see
    :func:`kaplan_meier_from_counts` (also available as ``kaplan_meier.from_counts``).
    """
    _check_conf_type(conf_type)
    check_conf_level(conf_level)
    t, e, _ = checked_arrays(time, event)
    c = _fast.aggregate_arrays(t, e)
    return KaplanMeierResult.from_arrays(
        c.time, c.n_event, c.n_censor, conf_type=conf_type, conf_level=conf_level
    )


def kaplan_meier_from_counts(
    counts: pd.DataFrame, *, conf_type: ConfType = "log", conf_level: float = 0.95
) -> KaplanMeierResult:
    """Kaplan–Meier curve from a counts frame as returned by :func:`~amlcohort.stats.event_counts`.

    >>> import pandas as pd
    >>> counts = pd.DataFrame({"time": [5.0, 8.0], "n_event": [1, 1], "n_censor": [1, 0]})
    >>> kaplan_meier_from_counts(counts).table["survival"].tolist()
    [0.6666666666666667, 0.0]

    R: ``survfit(Surv(time, status) ~ 1, data=d)`` on the individual records (``conf.type="log"``,
    the default of both).
    """
    return KaplanMeierResult.from_counts(counts, conf_type=conf_type, conf_level=conf_level)


kaplan_meier.from_counts = kaplan_meier_from_counts  # type: ignore[attr-defined]


def curves_from_counts(
    counts: _fast.Counts, conf_type: ConfType, conf_level: float
) -> dict[Hashable, KaplanMeierResult]:
    """One curve per group of checked counts (internal; slices, no copies)."""
    out: dict[Hashable, KaplanMeierResult] = {}
    for code, start, stop in counts.segments(counts.group):
        label = counts.group_labels[code]
        out[label] = KaplanMeierResult.from_arrays(
            counts.time[start:stop],
            counts.n_event[start:stop],
            counts.n_censor[start:stop],
            conf_type=conf_type,
            conf_level=conf_level,
            label=label,
        )
    return out


def _by_group(
    counts: pd.DataFrame, conf_type: ConfType, conf_level: float
) -> dict[Hashable, KaplanMeierResult]:
    if "group" not in counts.columns:
        raise ValueError("counts needs a 'group' column for kaplan_meier_by_group")
    if "strata" in counts.columns:
        raise ValueError("kaplan_meier_by_group does not take strata; filter the counts per stratum")
    _check_conf_type(conf_type)
    check_conf_level(conf_level)
    return curves_from_counts(checked_counts(counts, keys=("group",)), conf_type, conf_level)


def kaplan_meier_by_group(
    time: ArrayLike,
    event: ArrayLike,
    group: ArrayLike,
    *,
    conf_type: ConfType = "log",
    conf_level: float = 0.95,
) -> dict[Hashable, KaplanMeierResult]:
    """One Kaplan–Meier curve per group, in sorted group order.

    >>> curves = kaplan_meier_by_group([5, 8, 9, 12], [1, 1, 1, 0], ["a", "b", "a", "b"])
    >>> list(curves)
    ['a', 'b']

    R: ``survfit(Surv(time, status) ~ group, data=d)`` (``conf.type="log"``). From a counts frame
    with a ``group`` column: ``kaplan_meier_by_group.from_counts(counts)``.
    """
    _check_conf_type(conf_type)
    check_conf_level(conf_level)
    t, e, (g, _) = checked_arrays(time, event, group=group)
    return curves_from_counts(_fast.aggregate_arrays(t, e, g), conf_type, conf_level)


def kaplan_meier_by_group_from_counts(
    counts: pd.DataFrame, *, conf_type: ConfType = "log", conf_level: float = 0.95
) -> dict[Hashable, KaplanMeierResult]:
    """One curve per value of the ``group`` column of a counts frame.

    >>> import pandas as pd
    >>> counts = pd.DataFrame(
    ...     {"group": ["a", "a", "b"], "time": [5.0, 9.0, 8.0], "n_event": [1, 1, 1], "n_censor": [1, 0, 0]}
    ... )
    >>> {g: km.table["survival"].tolist() for g, km in kaplan_meier_by_group_from_counts(counts).items()}
    {'a': [0.6666666666666667, 0.0], 'b': [0.0]}

    R: ``survfit(Surv(time, status) ~ group, data=d)`` (``conf.type="log"``).
    """
    return _by_group(counts, conf_type, conf_level)


kaplan_meier_by_group.from_counts = kaplan_meier_by_group_from_counts  # type: ignore[attr-defined]


def restricted_mean(
    time: ArrayLike,
    event: ArrayLike,
    *,
    tau: float | None = None,
    conf_level: float = 0.95,
) -> RestrictedMeanResult:
    """Restricted mean survival time up to ``tau`` with R's standard error.

    >>> r = restricted_mean([9, 13, 13, 18, 23], [1, 1, 0, 1, 1], tau=20)
    >>> round(r.estimate, 4), round(r.std_err, 4)
    (15.8, 1.89)

    R: ``summary(survfit(Surv(time, status) ~ 1, data=d), rmean=20)$table[c("rmean", "se(rmean)")]``.

    ``lower``/``upper`` are ``estimate ± z * std_err`` clipped to ``[0, tau]`` (a restricted mean
    cannot lie outside it); ``survRM2::rmst2`` reports the unclipped normal interval, whose limits
    can fall below 0 or above ``tau`` in small samples. The estimate and its standard error are not
    affected by the clipping.
    """
    return kaplan_meier(time, event, conf_level=conf_level).restricted_mean(tau)


def _follow_up(counts: pd.DataFrame, conf_type: ConfType, conf_level: float) -> FollowUpResult:
    c = checked_counts(counts)
    km = KaplanMeierResult.from_arrays(
        c.time, c.n_censor, c.n_event, conf_type=conf_type, conf_level=conf_level, label="follow-up"
    )
    lo, hi = km.median_ci_
    return FollowUpResult(median=km.median_, lower=lo, upper=hi, reverse_km=km)


def median_follow_up(
    time: ArrayLike,
    event: ArrayLike,
    *,
    conf_type: ConfType = "log",
    conf_level: float = 0.95,
) -> FollowUpResult:
    """Median follow-up by reverse Kaplan–Meier (censoring is the "event"), with its CI.

    >>> median_follow_up([5, 8, 12, 20, 30], [1, 0, 1, 0, 0], conf_type="log").median
    20.0

    R: ``survfit(Surv(time, 1 - status) ~ 1, data=d, conf.type="log")``, median row of
    ``summary(fit)$table``.
    """
    return _follow_up(counts_from_arrays(time, event), conf_type, conf_level)


def median_follow_up_from_counts(
    counts: pd.DataFrame, *, conf_type: ConfType = "log", conf_level: float = 0.95
) -> FollowUpResult:
    """Median follow-up from a counts frame (``n_event`` and ``n_censor`` are swapped internally).

    >>> import pandas as pd
    >>> counts = pd.DataFrame({"time": [5.0, 8.0, 12.0, 20.0, 30.0], "n_event": [1, 0, 1, 0, 0],
    ...                        "n_censor": [0, 1, 0, 1, 1]})
    >>> median_follow_up_from_counts(counts, conf_type="log").median
    20.0

    R: ``survfit(Surv(time, 1 - status) ~ 1, data=d)``.
    """
    return _follow_up(counts, conf_type, conf_level)


median_follow_up.from_counts = median_follow_up_from_counts  # type: ignore[attr-defined]
