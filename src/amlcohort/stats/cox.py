"""Cox proportional hazards regression with Efron's handling of ties.

The model is fitted by lifelines' ``CoxPHFitter`` (which uses Efron's approximation) with a tight
convergence tolerance; this module adds what R's ``summary(coxph(...))`` reports and lifelines does
not: the global Wald test and the score (log-rank) test, computed here from the Efron partial
likelihood at beta = 0. Verified against ``coxph(Surv(time, status) ~ ..., ties="efron")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from amlcohort.stats._distributions import chi2_sf, norm_ppf, norm_sf
from amlcohort.stats._validation import (
    ArrayLike,
    as_1d,
    check_conf_level,
    check_event,
    check_same_length,
    check_time,
)

__all__ = ["ChiSquareTest", "CoxPHResult", "cox_ph", "efron_score_test"]

_TIME = "__amlcohort_time__"
_EVENT = "__amlcohort_event__"


@dataclass(frozen=True)
class ChiSquareTest:
    """A chi-square test: ``statistic`` on ``dof`` degrees of freedom, upper-tail ``p_value``."""

    statistic: float
    dof: int
    p_value: float

    @classmethod
    def of(cls, statistic: float, dof: int) -> ChiSquareTest:
        return cls(statistic=float(statistic), dof=int(dof), p_value=float(chi2_sf(statistic, dof)))


@dataclass(frozen=True)
class CoxPHResult:
    """A fitted Cox model (Efron ties) with R's ``summary(coxph(...))`` quantities.

    Attributes
    ----------
    table:
        Indexed by covariate: ``coef``, ``hazard_ratio`` (exp(coef)), ``se`` (se(coef)), ``z``,
        ``p_value`` (Wald), ``hr_lower``, ``hr_upper`` (confidence limits of the hazard ratio).
    wald, score, likelihood_ratio:
        Global tests (R: ``waldtest``, ``sctest``, ``logtest``).
    log_likelihood:
        Partial log-likelihood at beta = 0 and at the estimate (R: ``fit$loglik``).
    variance:
        Covariance matrix of the coefficients.
    n, n_events, conf_level:
        Number of subjects and events used, confidence level.
    """

    table: pd.DataFrame = field(repr=False)
    variance: pd.DataFrame = field(repr=False)
    wald: ChiSquareTest
    score: ChiSquareTest
    likelihood_ratio: ChiSquareTest
    log_likelihood: tuple[float, float]
    n: int
    n_events: int
    conf_level: float

    def hazard_ratio(self, covariate: str) -> tuple[float, float, float]:
        """``(hazard ratio, lower, upper)`` for one covariate."""
        row = self.table.loc[covariate]
        return float(row["hazard_ratio"]), float(row["hr_lower"]), float(row["hr_upper"])

    def summary(self) -> str:
        """Readable summary in the spirit of R's ``summary(coxph(...))``."""
        pct = f"{100 * self.conf_level:g}%"
        body = self.table.to_string(float_format=lambda v: f"{v:.4g}")
        tests = "\n".join(
            f"{name:<22} {t.statistic:8.4g} on {t.dof} df,   p={t.p_value:.4g}"
            for name, t in (
                ("Likelihood ratio test=", self.likelihood_ratio),
                ("Wald test            =", self.wald),
                ("Score (logrank) test =", self.score),
            )
        )
        return (
            f"Cox proportional hazards model (Efron ties), n={self.n}, events={self.n_events}; "
            f"hazard-ratio CI {pct}\n{body}\n\n{tests}"
        )

    def __repr__(self) -> str:
        return self.summary()


def efron_score_test(time: np.ndarray, event: np.ndarray, x: np.ndarray) -> ChiSquareTest:
    """Score test of beta = 0 with Efron's tie handling (R's ``summary(coxph(...))$sctest``).

    At beta = 0 every risk score is 1, so for an event time with ``d`` tied deaths and ``n`` at risk,
    the l-th Efron term (l = 0..d-1) has denominator ``n - l`` and covariate sums
    ``S1 - (l/d) * sum_deaths x`` (and the same for the cross-products).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(time), -1)
    p = x.shape[1]
    score = np.zeros(p)
    info = np.zeros((p, p))
    order = np.argsort(time, kind="stable")
    t_sorted, e_sorted, x_sorted = time[order], event[order], x[order]
    # suffix sums over the risk set {time >= t}
    s1_all = np.cumsum(x_sorted[::-1], axis=0)[::-1]
    s2_all = np.cumsum(np.einsum("ij,ik->ijk", x_sorted, x_sorted)[::-1], axis=0)[::-1]
    for t in np.unique(t_sorted[e_sorted == 1]):
        first = int(np.searchsorted(t_sorted, t, side="left"))
        n_risk = len(t_sorted) - first
        deaths = (t_sorted == t) & (e_sorted == 1)
        d = int(deaths.sum())
        xd = x_sorted[deaths]
        s1_d = xd.sum(axis=0)
        s2_d = xd.T @ xd
        score += s1_d
        for ell in range(d):
            frac = ell / d
            s0 = n_risk - ell  # = n - frac * d
            s1 = s1_all[first] - frac * s1_d
            s2 = s2_all[first] - frac * s2_d
            score -= s1 / s0
            info += s2 / s0 - np.outer(s1, s1) / s0**2
    statistic = float(score @ np.linalg.solve(info, score))
    return ChiSquareTest.of(statistic, p)


def _covariate_frame(covariates: pd.DataFrame | Mapping[str, ArrayLike] | ArrayLike, n: int) -> pd.DataFrame:
    if isinstance(covariates, pd.DataFrame):
        frame = covariates.reset_index(drop=True).copy()
    elif isinstance(covariates, Mapping):
        frame = pd.DataFrame({str(k): as_1d(str(k), v) for k, v in covariates.items()})
    else:
        arr = np.asarray(covariates)
        if arr.ndim == 1:
            frame = pd.DataFrame({"x": arr})
        elif arr.ndim == 2:
            frame = pd.DataFrame(arr, columns=[f"x{i + 1}" for i in range(arr.shape[1])])
        else:
            raise ValueError(f"covariates must be 1- or 2-dimensional, got shape {arr.shape}")
    if frame.shape[1] == 0:
        raise ValueError("covariates must contain at least one column")
    if len(frame) != n:
        raise ValueError(f"covariates has {len(frame)} rows but time has length {n}; they must match")
    for col in frame.columns:
        values = frame[col]
        if values.dtype == bool:
            frame[col] = values.astype(np.float64)
        elif not pd.api.types.is_numeric_dtype(values):
            raise ValueError(f"covariate {col!r} must be numeric (code categories as 0/1 indicators)")
        if frame[col].isna().any():
            raise ValueError(f"covariate {col!r} has missing values; drop those rows first (R: na.omit)")
    return frame.astype(np.float64)


def cox_ph(
    time: ArrayLike,
    event: ArrayLike,
    covariates: pd.DataFrame | Mapping[str, ArrayLike] | ArrayLike,
    *,
    conf_level: float = 0.95,
) -> CoxPHResult:
    """Fit a Cox proportional hazards model with Efron ties (via lifelines).

    Parameters
    ----------
    time, event:
        Follow-up time and event indicator (1/True = event).
    covariates:
        Numeric covariates: a DataFrame, a mapping name -> values, or an array (1-D: named ``x``).
    conf_level:
        Level of the hazard-ratio intervals.

    Examples
    --------
    >>> time = [5, 8, 9, 12, 13, 20, 22, 30]
    >>> fit = cox_ph(time, [1, 1, 1, 1, 0, 1, 0, 1], {"arm": [0, 0, 1, 0, 1, 1, 0, 1]})
    >>> round(float(fit.table.loc["arm", "hazard_ratio"]), 4)
    0.4366

    R: ``coxph(Surv(time, status) ~ arm, data=d, ties="efron")``.
    """
    from lifelines import CoxPHFitter

    level = check_conf_level(conf_level)
    t = check_time("time", as_1d("time", time))
    e_raw = as_1d("event", event)
    n = check_same_length([("time", t), ("event", e_raw)])
    if n == 0:
        raise ValueError("time is empty: at least one observation is needed")
    e = check_event("event", e_raw)
    if e.sum() == 0:
        raise ValueError("there are no events: a Cox model cannot be fitted")
    cov = _covariate_frame(covariates, n)
    data = cov.assign(**{_TIME: t, _EVENT: e})

    fitter = CoxPHFitter(alpha=1.0 - level)
    fitter.fit(
        data,
        duration_col=_TIME,
        event_col=_EVENT,
        fit_options={"precision": 1e-12, "r_precision": 1e-14, "max_steps": 200},
    )
    coef = fitter.params_.to_numpy()
    se = fitter.standard_errors_.to_numpy()
    z = norm_ppf(1.0 - (1.0 - level) / 2.0)
    table = pd.DataFrame(
        {
            "coef": coef,
            "hazard_ratio": np.exp(coef),
            "se": se,
            "z": coef / se,
            "p_value": 2.0 * norm_sf(np.abs(coef / se)),
            "hr_lower": np.exp(coef - z * se),
            "hr_upper": np.exp(coef + z * se),
        },
        index=pd.Index(list(cov.columns), name="covariate"),
    )
    variance = fitter.variance_matrix_.to_numpy()
    wald = ChiSquareTest.of(float(coef @ np.linalg.solve(variance, coef)), len(coef))
    lr = fitter.log_likelihood_ratio_test()
    ll_null = float(fitter.log_likelihood_ - lr.test_statistic / 2.0)
    return CoxPHResult(
        table=table,
        variance=pd.DataFrame(variance, index=table.index, columns=table.index),
        wald=wald,
        score=efron_score_test(t, e, cov.to_numpy()),
        likelihood_ratio=ChiSquareTest.of(float(lr.test_statistic), len(coef)),
        log_likelihood=(ll_null, float(fitter.log_likelihood_)),
        n=n,
        n_events=int(e.sum()),
        conf_level=level,
    )
