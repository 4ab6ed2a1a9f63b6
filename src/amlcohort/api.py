"""The notebook API: from a bundle to every derived table and figure, as pandas-friendly results.

Everything here uses the report's own functions and defaults (response criteria from the study
definition, log-transformed survival intervals as R's ``survfit``, the report's not-estimable
reasons), so a number in a notebook equals the number in the report.

>>> import amlcohort
>>> cohort = amlcohort.load_cohort()                    # or load_cohort("path/to/bundle")
>>> r = amlcohort.responses(cohort)                     # one row per assessment
>>> {"patient_id", "assessment_date", "response"} <= set(r.columns)
True
>>> best = amlcohort.best_response(cohort)              # one row per patient
>>> int((best.best_response == "cr").sum())
5
>>> km = amlcohort.kaplan_meier(cohort, endpoint="OS", by="cr")
>>> km.summary()[["group", "n", "events", "median"]].to_dict("records")[0]
{'group': 'CR', 'n': 5, 'events': 4, 'median': 520.0}
>>> fig = km.plot()                                     # with the number-at-risk table
>>> round(amlcohort.logrank(cohort, endpoint="OS", by="cr").p_value, 2)
0.21
>>> t1 = amlcohort.table1(cohort)                       # gtsummary-style Table 1 by arm
>>> t1.columns[0]
'Characteristic'
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from amlcohort.io.cohort import Cohort, load_cohort

if TYPE_CHECKING:  # heavy imports happen on first use, so `import amlcohort` stays fast
    import pandas as pd
    from matplotlib.figure import Figure

    from amlcohort.report.results import MaterialisedCohort, StudyAnalysis
    from amlcohort.stats import KaplanMeierResult, LogRankResult

#: survival intervals: the report's transform (R's survfit default, conf.type = "log")
CONF_TYPE = "log"

__all__ = [
    "CONF_TYPE",
    "LogRank",
    "SurvivalFit",
    "analysis",
    "analysis_table",
    "best_response",
    "kaplan_meier",
    "load_cohort",
    "logrank",
    "responses",
    "table1",
]

Endpoint = Literal["OS", "EFS"]
By = Literal["arm", "cr"] | None
#: the groupings a log-rank test compares (a test needs groups, so ``None`` is not one of them)
LOGRANK_BY: tuple[str, ...] = ("arm", "cr")


def _criteria(cohort: Any, criteria: str | None) -> str:
    from amlcohort.report.results import study_of

    return criteria or getattr(study_of(cohort), "criteria", None) or "eln2022"


def _cache(cohort: Any) -> dict:
    store = getattr(cohort, "_amlcohort_api_cache", None)
    if store is None:
        store = {}
        with contextlib.suppress(AttributeError, TypeError):
            object.__setattr__(cohort, "_amlcohort_api_cache", store)
    return store


def _mc(cohort: Any) -> MaterialisedCohort:
    from amlcohort.report.results import materialise

    store = _cache(cohort)
    if "mc" not in store:
        store["mc"] = materialise(cohort)
    return store["mc"]


def responses(cohort: Cohort, criteria: str | None = None) -> pd.DataFrame:
    """The response of every assessment (``response``, the deciding ``rule_id``, the inputs), under
    ``criteria`` (default: the study's). R has no equivalent; the rules are ``rules/response.csv``."""
    from amlcohort.criteria.response import derive

    return derive(_mc(cohort), _criteria(cohort, criteria)).execute()


def best_response(cohort: Cohort, criteria: str | None = None) -> pd.DataFrame:
    """One row per patient: ``best_response`` and its first date (``best_response_date``)."""
    from amlcohort.criteria.response import best_response as best
    from amlcohort.criteria.response import derive

    return best(derive(_mc(cohort), _criteria(cohort, criteria))).execute()


def analysis_table(cohort: Cohort, criteria: str | None = None) -> pd.DataFrame:
    """The analysis table (one row per patient and parameter: DAYSCR, BESTRESP, CRDUR, EFS, OS, ...;
    ADaM ADTTE-like columns ``paramcd``, ``aval``, ``avalc``, ``cnsr``), as the report uses it."""
    from amlcohort.endpoints.analysis import analysis_table as table

    key = ("adtte", _criteria(cohort, criteria))
    store = _cache(cohort)
    if key not in store:
        store[key] = table(_mc(cohort), key[1]).execute()
    return store[key].copy()


def analysis(cohort: Cohort, criteria: str | None = None) -> StudyAnalysis:
    """The report's whole analysis (``.figures`` = results.json's figures, ``.not_estimable``,
    ``.patients`` per patient, ``.km`` / ``.logrank`` fits)."""
    from amlcohort.report.results import analyse

    key = ("analysis", _criteria(cohort, criteria))
    store = _cache(cohort)
    if key not in store:
        store[key] = analyse(_mc(cohort), key[1])
    return store[key]


def _survival_frame(cohort: Cohort, criteria: str | None) -> pd.DataFrame:
    adtte = analysis_table(cohort, criteria)
    p = _mc(cohort).table("patients").select("patient_id", "study_arm").execute().set_index("patient_id")
    for code in ("OS", "EFS"):
        d = adtte[adtte.paramcd == code].set_index("patient_id")
        p[f"{code.lower()}_days"] = d.aval
        p[f"{code.lower()}_event"] = 1 - d.cnsr
    best = adtte[adtte.paramcd == "BESTRESP"].set_index("patient_id").avalc
    p["cr"] = (best.reindex(p.index) == "cr").fillna(False).astype(bool)
    return p


@dataclass
class SurvivalFit:
    """Kaplan–Meier fits per group (plus all patients), the log-rank test, and the reasons of what is
    not estimable. ``fits[label]`` is a :class:`~amlcohort.stats.KaplanMeierResult` (``.table``,
    ``.median_``, ``.median_ci_``, ``.survival_at(times)``), as R's ``survfit(..., conf.type="log")``."""

    endpoint: str
    by: str | None
    fits: dict[str, KaplanMeierResult]
    logrank: LogRankResult | None
    not_estimable: dict[str, str] = field(default_factory=dict)
    day1: str = "first dose"

    def summary(self) -> pd.DataFrame:
        """Per group: n, events, median (NaN when not reached, with the reason) and its 95% CI."""
        import pandas as pd

        from amlcohort.report.results import median_reason

        rows = []
        for group, km in self.fits.items():
            lo, hi = km.median_ci_
            rows.append(
                {
                    "group": group,
                    "n": km.n,
                    "events": km.n_events,
                    "median": float("nan") if km.median_ is None else float(km.median_),
                    "median_lower": lo,
                    "median_upper": hi,
                    "note": median_reason(km, self.endpoint) if km.median_ is None else "",
                }
            )
        return pd.DataFrame(rows)

    def plot(self, times: list[float] | None = None, title: str | None = None) -> Figure:
        """The Kaplan–Meier figure of the report (censoring marks, CI, medians, number at risk)."""
        import pandas as pd

        from amlcohort.report import figures as fig
        from amlcohort.report.results import ALL
        from amlcohort.report.tables import fmt_p

        fits = {g: km for g, km in self.fits.items() if g != ALL} or dict(self.fits)
        title = title or f"{self.endpoint}{' by ' + self.by if self.by else ''}"
        if not fits:
            return fig.not_estimable_figure(title, self.not_estimable.get(ALL, "no patients"))
        horizon = max(float(km.table.time.max()) if len(km.table) else 1.0 for km in fits.values())
        if times is None:
            times = fig.risk_times(horizon, max(km.n for km in fits.values()))
        risk = pd.DataFrame(
            {g: km.survival_at(times)["n_risk"].to_numpy() for g, km in fits.items()}, index=times
        ).T
        meds = {g: km.median_ for g, km in fits.items() if km.median_ is not None}
        note = (
            f"Log-rank p {fmt_p(self.logrank.p_value)} ({self.logrank.dof} df)"
            if self.logrank is not None
            else f"Log-rank: not estimable ({self.not_estimable['logrank']})"
            if "logrank" in self.not_estimable
            else None
        )
        label = "Overall survival" if self.endpoint == "OS" else "Event-free survival"
        return fig.kaplan_meier_plot(
            {g: km.table for g, km in fits.items()},
            risk_table=risk,
            times=times,
            medians=meds,
            annotation=note,
            title=title,
            ylabel=f"{label} (probability)",
            xlabel=f"Days since the {self.day1}",
        )


def kaplan_meier(
    cohort: Cohort, endpoint: Endpoint = "OS", by: By = "arm", criteria: str | None = None
) -> SurvivalFit:
    """Kaplan–Meier curves of ``endpoint`` (``"OS"`` or ``"EFS"``) by ``"arm"``, by ``"cr"`` (best
    response CR or not) or overall (``None``); R: ``survfit(Surv(time, status) ~ group,
    conf.type="log")`` on the analysis table's ``aval`` and ``1 - cnsr``."""
    code = endpoint.upper()
    if code not in ("OS", "EFS"):
        raise ValueError(f"endpoint must be 'OS' or 'EFS', got {endpoint!r}")
    if by not in ("arm", "cr", None):
        raise ValueError(f"by must be 'arm', 'cr' or None, got {by!r}")
    from amlcohort.report.results import CR_LABELS, arm_label, fit_km, study_of

    p = _survival_frame(cohort, criteria)
    study = study_of(cohort)
    if by == "arm":
        fits, lr, reasons = fit_km(p, code, p.study_arm, lambda c: arm_label(study, c))
    elif by == "cr":
        fits, lr, reasons = fit_km(p, code, p.cr.map(CR_LABELS))
    else:
        fits, lr, reasons = fit_km(p, code, None)
    return SurvivalFit(code, by, fits, lr, reasons, str(getattr(study, "day1_text", "first dose")))


@dataclass(frozen=True)
class LogRank:
    """A log-rank test (R: ``survdiff``): ``p_value``, ``statistic``, ``dof`` (k-1 for k groups), or
    ``not_estimable`` with the reason (then the numbers are NaN)."""

    p_value: float
    statistic: float
    dof: int | None
    not_estimable: str | None = None
    result: LogRankResult | None = None

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "statistic": self.statistic,
                    "dof": self.dof,
                    "p_value": self.p_value,
                    "not_estimable": self.not_estimable,
                }
            ]
        )


def logrank(
    cohort: Cohort, endpoint: Endpoint = "OS", by: Literal["arm", "cr"] = "arm", criteria: str | None = None
) -> LogRank:
    """The log-rank test of ``endpoint`` by ``by``; R: ``survdiff(Surv(time, status) ~ group)``.

    ``by`` is the grouping to compare and must be one of :data:`LOGRANK_BY` (``"arm"`` or ``"cr"``);
    anything else (``None``, an unknown name) is a :class:`ValueError` naming the choices. A test
    that cannot be computed on this cohort gives NaN with the reason (``not_estimable``)."""
    if by not in LOGRANK_BY:
        choices = " or ".join(repr(b) for b in LOGRANK_BY)
        raise ValueError(
            f"logrank needs the groups to compare: by must be {choices}"
            f" (the study arm, or best response CR vs not), got {by!r}"
        )
    fit = kaplan_meier(cohort, endpoint, by, criteria)
    if fit.logrank is None:
        nan = float("nan")
        return LogRank(nan, nan, None, fit.not_estimable.get("logrank", "not estimable"))
    lr = fit.logrank
    return LogRank(lr.p_value, lr.statistic, lr.dof, None, lr)


def table1(cohort: Cohort, *, p_values: bool = False, criteria: str | None = None) -> pd.DataFrame:
    """Table 1 by arm (gtsummary conventions: n (%), median (IQR), Missing / Not tested rows)."""
    from amlcohort.report.tables import table1 as t1

    return t1(analysis(cohort, criteria), p_values=p_values)
