"""Every figure the report states, computed from a cohort and named stably (``results.json``).

:func:`analyse` runs the derivations (Ibis) once per cohort on materialised intermediates
(:class:`MaterialisedCohort`: every table with its study days, the first doses, the responses per
assessment and the key dates per criteria set, the analysis table), pulls small per-patient results
to pandas and computes the statistics. The report is
about the cohort it is given: arms, labels, the response criteria set, the CTCAE version, the
protocol and the claims come from the study definition (``cohort.study``), never from code.

Names are dotted and stable; the claims audit looks figures up by these names:

* cohort: ``cohort.n_patients``, ``arm.n.<arm>``, ``baseline.*``, ``population.*``, ``prior.*``;
* response: ``cr.n``, ``cr.n.<arm>``, ``cr.rate.<arm>``, ``cr.by_arm`` (with exact and Wilson
  intervals), ``best_response.<category>.n``, ``response.by_arm`` (every category of the criteria
  set), ``fisher.p_value`` (2×2 or r×c), ``fisher.odds_ratio`` / ``fisher.p_value.greater`` (2×2 only),
  ``chisq[.yates].{statistic,p_value,dof,warnings}``, ``days_to_cr.*``;
* survival: ``os|efs.median_days.{by_cr,cr,no_cr,all}``, ``os|efs.median_days.by_arm``,
  ``logrank.{os,efs}_by_{cr,arm}.{p_value,statistic,dof}``, ``followup.*``;
* adverse events, per term (``<term>`` = the term in lower case, every run of other characters than
  letters and digits replaced by ``_``): ``ae.term.<term>.{n_patients,worst_grade,first_onset_day,
  first.days_to_worst_grade,first.rechallenge_dose_fraction.<drug>}``, ``ae.term.<term>.grade.<g>.n``
  (patients whose worst grade is g), ``ae.by_arm`` (patients per term, worst grade and arm);
* exposures, per drug: ``exposure.<drug>.{n_patients,starting_dose,dose_unit,course_days.range}``;
* per patient: ``patient.<id>.age_at_first_dose_lower_bound``;
* protocol (only with a protocol): ``protocol.rule.<key>.<outcome>.<variable>`` thresholds.

**Not estimable.** A figure that cannot be computed on this cohort (no events, one arm, n = 0,
nobody in CR, no adverse events, no marrow data, ...) is ``null`` in ``figures`` and its reason is in
the parallel map ``not_estimable`` (name → reason), e.g. ``"logrank.os_by_arm.p_value": "only one
arm has patients: nothing to compare"``. A survival median that is not reached is ``null`` with the
reason ``"not reached: ..."``. Nothing here raises on a valid cohort.

Conventions: days are elapsed days from study day 1 (the first dose of the index drug, or of any
drug: the day of the first dose is 0); months are days / 30.4375. Survival medians follow R's
``survfit`` (midpoint where S = 0.5 exactly); intervals use :data:`CONF_TYPE`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from amlcohort.engines.order import in_order
from amlcohort.io.cohort import Cohort, table_rows
from amlcohort.stats import (
    KaplanMeierResult,
    LogRankResult,
    chi_square_test,
    fisher_exact,
    kaplan_meier_from_counts,
    logrank_test_from_counts,
    median_follow_up_from_counts,
    proportion_ci,
)

DAYS_PER_MONTH = 365.25 / 12
CR_LABELS = {True: "CR", False: "No CR"}
CR_KEYS = {"CR": "cr", "No CR": "no_cr", "All patients": "all"}
CONF_TYPE = "log"  # R's survfit default, so the medians' intervals match what R users see
ALL = "All patients"
#: blood-count columns of the cohort model: CTCAE terms graded from them are haematological
BLOOD_COUNTS = ("anc", "platelets", "wbc", "hemoglobin")
EFS_DAY1_NOTE = (
    "the median falls on day 1: induction failures count as events on day 1 (ELN 2017 event-free survival)"
)


def months(days: float) -> float:
    return days / DAYS_PER_MONTH


def slug(text: Any) -> str:
    """A name part for results.json: lower case, runs of other characters than [a-z0-9] -> ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_") or "_"


def _clean(x: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN to None, dates to ISO text."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if x is pd.NaT or (not isinstance(x, str | bytes) and not isinstance(x, list | dict) and _isna(x)):
        return None
    if isinstance(x, pd.Timestamp):
        return x.date().isoformat()
    if isinstance(x, dt.date):
        return x.isoformat()
    return x


def _isna(x: Any) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


# ---- the study definition ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Arm:
    code: str
    label: str


@dataclass(frozen=True)
class _DerivedStudy:
    """Stand-in for :class:`amlcohort.schema.study.StudyDefinition` on a cohort without one."""

    name: str
    arms: tuple[_Arm, ...]
    index_drug: str | None = None
    criteria: str = "eln2022"
    response_landmark_days: int | None = None
    ctcae_version: str = "5.0"
    citation: str | None = None
    description: str = ""
    population: Path | None = None
    protocol: Path | None = None
    claims: Path | None = None
    declared: bool = False

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    def arm_label(self, code: str) -> str:
        return next((a.label for a in self.arms if a.code == code), code)

    @property
    def day1_text(self) -> str:
        return f"first {self.index_drug} dose" if self.index_drug else "first dose of any study drug"


def study_of(cohort: Any) -> Any:
    """The cohort's study definition (``cohort.study``), or one derived from its data."""
    s = getattr(cohort, "study", None)
    if s is not None:
        return s
    arms = cohort.table("patients").select("study_arm").distinct().execute().study_arm.dropna()
    name = getattr(getattr(cohort, "metadata", None), "study_name", "") or "Cohort"
    return _DerivedStudy(name, tuple(_Arm(str(a), str(a)) for a in sorted(arms)))


def arm_label(study: Any, code: str) -> str:
    try:
        return str(study.arm_label(code))
    except Exception:
        return str(code)


# ---- compile once: materialised intermediates ---------------------------------------------------


#: A model table with more cells (rows x columns) than this is not copied by
#: :meth:`MaterialisedCohort.table`: a temporary copy is uncompressed (a registry's assessments,
#: 4 x 10^7 rows of 90 columns, would be tens of gigabytes spilled to disk), so its queries read the
#: cohort's own table with its study days instead.
MATERIALISE_MAX_CELLS = 20_000_000


def table_cells(tables: dict[str, ir.Table]) -> dict[str, int]:
    """Rows x columns of each table, the rows counted in one query."""
    return {name: n * len(tables[name].columns) for name, n in table_rows(tables).items()}


class MaterialisedCohort:
    """A cohort whose tables (with study days), first doses, responses and key dates are materialised once.

    Derivations take a cohort and call ``table(name)`` / ``first_dose()`` many times; on the plain
    :class:`~amlcohort.io.cohort.Cohort` each call rebuilds (and each execution recompiles) the join
    that adds the study days. Here each is built once and cached on the backend (``.cache()``), so
    every later query reads a temporary table; a table larger than :data:`MATERIALISE_MAX_CELLS`
    is read where it is. Everything else is delegated to the cohort.
    """

    def __init__(self, cohort: Cohort) -> None:
        self._cohort = cohort
        self._tables: dict[str, ir.Table] = {}
        self._first: ir.Table | None = None
        self._responses: dict[str, ir.Table] = {}
        self._key_dates: dict[str, ir.Table] = {}
        self._cells: dict[str, int] | None = None
        #: queries a child compiles meanwhile (report.parallel.PendingSql), read by :meth:`query`
        self.pending: Any = None

    def query(self, key: str, build: Callable[[], ir.Table]) -> ir.Table:
        """``build()``, or the same query compiled by a background child (materialised)."""
        pending = self.pending
        if pending is not None and key in pending.builders:
            return pending.table(key)
        return build()

    @property
    def base(self) -> Cohort:
        return self._cohort

    def table(self, name: str) -> ir.Table:
        if name not in self._tables:
            t = self._cohort.table(name)
            self._tables[name] = t if self._too_large_to_copy(name) else t.cache()
        return self._tables[name]

    def _too_large_to_copy(self, name: str) -> bool:
        if self._cells is None:
            self._cells = table_cells(self._cohort.tables)
        return self._cells.get(name, 0) > MATERIALISE_MAX_CELLS

    def first_dose(self) -> ir.Table:
        if self._first is None:
            self._first = self._cohort.first_dose().cache()
        return self._first

    def materialise_all(self) -> MaterialisedCohort:
        """Materialise every table of the cohort model and the first doses now (so that building an
        expression afterwards runs no query)."""
        from amlcohort.schema import TABLES

        for model in TABLES:
            self.table(model.name)
        self.first_dose()
        return self

    def risk(self) -> ir.Table:
        """ELN risk (both versions) of every patient (:func:`amlcohort.criteria.risk.derive_risk`)."""
        from amlcohort.criteria.risk import derive_risk

        return derive_risk(self.table("patients"), self.table("mutations"),
                           karyotypes=self.karyotype_lookup())

    def cached_responses(self, criteria: str) -> ir.Table:
        """The response of every assessment under ``criteria`` (:func:`amlcohort.criteria.response.derive`,
        no landmark; its ``OUTCOME_COLUMNS``), materialised once: the analysis table and the
        protocol's phases read it."""
        if criteria not in self._responses:
            from amlcohort.criteria.response import derive

            self._responses[criteria] = derive(self, criteria, inputs=False).cache()
        return self._responses[criteria]

    def landmark_responses(self, criteria: str) -> ir.Table:
        """:meth:`cached_responses` up to the study's response landmark (all of them without one)."""
        r = self.cached_responses(criteria)
        landmark = getattr(self._cohort.study, "response_landmark_days", None)
        return r if landmark is None else r.filter(r.assessment_study_day <= landmark)

    def cached_key_dates(self, criteria: str) -> ir.Table:
        """Per patient key dates (:func:`amlcohort.endpoints.key_dates.key_dates`) under ``criteria``,
        materialised once: the endpoints and the protocol audit's phases read the same table."""
        if criteria not in self._key_dates:
            from amlcohort.endpoints.key_dates import key_dates

            kd = key_dates(self, criteria=criteria, responses=self.landmark_responses(criteria))
            self._key_dates[criteria] = kd.cache()
        return self._key_dates[criteria]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cohort, name)


def materialise(cohort: Cohort | MaterialisedCohort) -> MaterialisedCohort:
    return cohort if isinstance(cohort, MaterialisedCohort) else MaterialisedCohort(cohort)


# ---- the analysis -------------------------------------------------------------------------------


@dataclass
class StudyAnalysis:
    """The computed study: per-patient frames, fitted estimates and the named figures."""

    cohort: Any
    criteria: str
    patients: pd.DataFrame
    adtte_table: ir.Table
    study: Any = None
    km: dict[str, dict[str, KaplanMeierResult]] = field(default_factory=dict)
    logrank: dict[str, LogRankResult | None] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    not_estimable: dict[str, str] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: patients whose per-patient figures are written however large the cohort (those a claims
    #: file names: see :data:`PER_PATIENT_FIGURES_MAX`)
    named_patients: frozenset[str] = frozenset()

    @functools.cached_property
    def adtte(self) -> pd.DataFrame:
        """The analysis table (:attr:`adtte_table`: one row per patient and parameter) as a
        DataFrame, read on first use; the report itself reads only :func:`endpoints_per_patient`."""
        return self.adtte_table.execute()

    def put(self, name: str, value: Any, note: str = "") -> None:
        self.figures[name] = _clean(value)
        if note:
            self.notes[name] = note

    def na(self, name: str, reason: str) -> None:
        """Figure ``name`` cannot be computed on this cohort, because ``reason``."""
        self.figures[name] = None
        self.not_estimable[name] = reason

    def reason(self, name: str) -> str | None:
        return self.not_estimable.get(name)

    @property
    def arms(self) -> tuple[str, ...]:
        """Arm codes: the definition's, then any other code the data holds (in data order)."""
        declared = tuple(getattr(self.study, "arm_codes", ()) or ())
        seen = [str(x) for x in pd.unique(self.patients.study_arm.dropna())] if len(self.patients) else []
        return declared + tuple(c for c in seen if c not in declared)

    def arm_label(self, code: str) -> str:
        return arm_label(self.study, code)

    def results_json(self) -> dict[str, Any]:
        m = self.cohort.metadata
        s = self.study
        return {
            "study": getattr(s, "name", None) or m.study_name,
            "citation": getattr(s, "citation", None),
            "arms": {c: self.arm_label(c) for c in self.arms},
            "cutoff_date": m.cutoff_date.isoformat(),
            "reconstructed": m.reconstructed,
            "criteria": self.criteria,
            "ctcae_version": getattr(s, "ctcae_version", None),
            "figures": dict(sorted(self.figures.items())),
            "not_estimable": dict(sorted(self.not_estimable.items())),
            "notes": dict(sorted(self.notes.items())),  # in a fixed order (as figures)
        }


def _safe(a: StudyAnalysis, names: tuple[str, ...], fn: Callable[[], None], what: str) -> None:
    """Run one section; if the cohort lacks what it needs, its figures are not estimable."""
    try:
        fn()
    except Exception as err:
        for n in names:
            if n not in a.figures:
                a.na(n, f"{what} could not be derived: {type(err).__name__}: {err}")


def analyse(cohort: Cohort, criteria: str | None = None, *,
            named_patients: Iterable[str] = ()) -> StudyAnalysis:
    """Compute everything the report shows, under response criteria ``criteria`` (default: the
    study definition's). ``named_patients``: patients whose per-patient figures are written even
    in a cohort of more than :data:`PER_PATIENT_FIGURES_MAX` patients (a claims file's:
    :func:`patients_named`)."""
    from amlcohort.endpoints.analysis import analysis_table

    study = study_of(cohort)
    criteria = criteria or getattr(study, "criteria", None) or "eln2022"
    mc = materialise(cohort)
    table = analysis_table(mc, criteria).cache()
    a = StudyAnalysis(mc, criteria, per_patient(mc, table), table, study=study,
                      named_patients=frozenset(named_patients))
    _baseline(a)
    _response(a)
    _survival(a)
    _adverse_events(a)
    _follow_up(a)
    _exposures(a)
    _criteria(a)
    explain_nulls(a)
    return a


UNEXPLAINED = "not estimable on this cohort (the analysis recorded no specific reason)"


def explain_nulls(a: StudyAnalysis) -> list[str]:
    """The guard of the documented rule "every figure that is null in results.json is listed in
    ``not_estimable`` with its reason": a null figure that has no reason gets :data:`UNEXPLAINED`
    (the tests require that none does). Returns the names it had to fill in."""
    missing = [n for n, v in a.figures.items() if _clean(v) is None and not a.not_estimable.get(n)]
    for n in missing:
        a.na(n, UNEXPLAINED)
    return missing


# ---- per patient --------------------------------------------------------------------------------


def endpoints_per_patient(adtte: ir.Table) -> ir.Table:
    """One row per patient with the analysis table's parameters (one row per patient and
    parameter) as columns, pivoted in the engine: ``best_response``, ``days_to_cr`` and
    ``first_cr_date`` (NULL without a CR), ``os_days``/``os_event``, ``efs_days``/``efs_event``,
    ``crdur_days``/``crdur_event`` (NULL without a CR), ``treatment_days``,
    ``treatment_stop_reason``, ``treatment_last_date`` and ``stopping_rule``."""
    t = adtte

    def at(code: str, column: str, *, event: bool = False) -> ir.Value:
        where = (t.paramcd == code) & (t.cnsr == 0) if event else t.paramcd == code
        return t[column].max(where=where)

    return t.group_by("patient_id").agg(
        best_response=at("BESTRESP", "avalc"),
        days_to_cr=at("DAYSCR", "aval", event=True),
        first_cr_date=at("DAYSCR", "adt", event=True),
        **{f"{c.lower()}_days": at(c, "aval") for c in ("OS", "EFS", "CRDUR")},
        **{f"{c.lower()}_event": (1 - at(c, "cnsr")).cast("float64") for c in ("OS", "EFS", "CRDUR")},
        treatment_days=at("TRTDUR", "aval"),
        treatment_stop_reason=at("TRTDUR", "avalc"),
        treatment_last_date=at("TRTDUR", "adt"),
        stopping_rule=at("STOPRULE", "avalc"),
    )


def _frame(expr: ir.Table) -> pd.DataFrame:
    df = expr.execute()
    return df.set_index("patient_id") if "patient_id" in df.columns else df


def _try_frame(expr_fn: Callable[[], ir.Table]) -> tuple[pd.DataFrame | None, str | None]:
    try:
        return _frame(expr_fn()), None
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"


def per_patient(cohort: MaterialisedCohort, adtte: ir.Table) -> pd.DataFrame:
    """One row per patient: baseline, population, risk, blast pattern, endpoints and key dates."""
    from amlcohort.criteria.population import derive_population
    from amlcohort.endpoints.blast_patterns import blast_patterns
    from amlcohort.endpoints.neutropenia import first_neutropenia

    p = _frame(cohort.table("patients")).sort_index()
    out = p.copy()
    missing: dict[str, str | None] = {}
    pop, why = _try_frame(lambda: cohort.query("population", lambda: derive_population(cohort)))
    if pop is not None:
        out = out.join(
            pop[
                [
                    c
                    for c in ("status", "rr", "elderly_unfit", "flt3_itd_negative", "membership")
                    if c in pop.columns
                ]
            ]
        )
    else:
        missing["population"] = why
    risk, why = _try_frame(lambda: cohort.query("risk", cohort.risk))
    if risk is not None:
        out = out.join(
            risk[
                [
                    c
                    for c in ("eln2017", "eln2022", "karyotype_lesions", "n_abnormalities")
                    if c in risk.columns
                ]
            ]
        )
    else:
        missing["risk"] = why
    pat, why = _try_frame(lambda: cohort.query("blast_patterns", lambda: blast_patterns(cohort)))
    if pat is not None:
        out = out.join(
            pat[["baseline_blasts_pct", "week1_blasts_pct", "weeks_2_3_max_blasts_pct", "pattern"]]
        )
    else:
        missing["blast_patterns"] = why
    out["first_dose"] = _frame(cohort.first_dose()).first_dose
    ep = _frame(endpoints_per_patient(adtte)).reindex(out.index)
    out["best_response"] = ep.best_response
    out["cr"] = (out.best_response == "cr").fillna(False).astype(bool)
    for column in ("days_to_cr", "first_cr_date", "os_days", "os_event", "efs_days", "efs_event",
                   "crdur_days", "crdur_event", "treatment_days", "treatment_stop_reason",
                   "treatment_last_date", "stopping_rule"):
        out[column] = ep[column]

    pt = cohort.table("prior_therapies")
    rel = pt.relapsed.cast("boolean").fill_null(False)
    prior = _frame(
        pt.group_by("patient_id").aggregate(
            prior_lines=pt.count(),
            prior_hsct=pt.count(where=pt.therapy_type == "hsct"),
            prior_relapse=pt.count(where=rel),
        )
    )
    out["prior_lines"] = prior.prior_lines.reindex(out.index).fillna(0).astype(int)
    out["prior_hsct"] = prior.prior_hsct.reindex(out.index).fillna(0) > 0
    out["prior_relapse"] = prior.prior_relapse.reindex(out.index).fillna(0) > 0

    ev = cohort.table("events")
    kinds = ("hsct", "death", "relapse", "last_contact")
    dates = _frame(
        ev.group_by("patient_id").aggregate(
            **{f"{k}_date": ev.event_date.min(where=ev.event_type == k) for k in kinds}
        )
    )
    for k in kinds:
        out[f"{k}_date"] = dates[f"{k}_date"].reindex(out.index) if len(dates) else pd.NaT

    neut, why = _try_frame(lambda: first_neutropenia(cohort))
    out["neutropenia_days"] = neut.days.reindex(out.index) if neut is not None and len(neut) else np.nan

    a = cohort.table("assessments")
    m = a.filter(a.marrow_blasts_pct.notnull() & a.assessment_study_day.between(2, 43))
    low = _frame(m.group_by("patient_id").aggregate(lowest_blasts_by_day_42=m.marrow_blasts_pct.min()))
    out["lowest_blasts_by_day_42"] = low.lowest_blasts_by_day_42.reindex(out.index) if len(low) else np.nan
    n_marrow = a.marrow_blasts_pct.count().execute()

    years = pd.Series(
        [
            (f - d).days / 365.25 if pd.notna(f) and pd.notna(d) else np.nan
            for f, d in zip(out.first_dose, out.diagnosis_date, strict=True)
        ],
        index=out.index,
        dtype=float,
    )
    out["age_at_first_dose_min"] = out.age_at_onset + np.floor(years)
    out["age_at_first_dose_lower_bound"] = out.age_at_onset + years
    out.attrs["missing"] = missing
    out.attrs["n_marrow"] = int(n_marrow or 0)
    return out


# ---- sections ----------------------------------------------------------------------------------


def _range(x: pd.Series) -> list[float] | None:
    x = x.dropna()
    return [float(x.min()), float(x.max())] if len(x) else None


def _put_or_na(a: StudyAnalysis, name: str, value: Any, reason: str, note: str = "") -> None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        a.na(name, reason)
    else:
        a.put(name, value, note)


def _baseline(a: StudyAnalysis) -> None:
    p = a.patients
    a.put("cohort.n_patients", len(p))
    for arm in a.arms:
        a.put(f"arm.n.{arm}", int((p.study_arm == arm).sum()))
    a.put("baseline.female.n", int((p.sex == "female").sum()))
    a.put("baseline.male.n", int((p.sex == "male").sum()))
    _put_or_na(a, "baseline.age_at_onset.range", _range(p.age_at_onset), "no patient has an onset age")
    age = p.age_at_onset.dropna()
    _put_or_na(
        a,
        "baseline.age_at_onset.median",
        float(age.median()) if len(age) else None,
        "no patient has an onset age",
    )
    for g in ("favorable", "intermediate", "adverse"):
        a.put(f"baseline.risk.{g}.n", int((p.risk_group_reported == g).sum()))
    missing = p.attrs.get("missing", {})
    if "eln2017" in p.columns:
        a.put("baseline.eln2017.by_group", p.eln2017.value_counts().to_dict())
        a.put(
            "baseline.eln2017.discordant.n",
            int(((p.eln2017 != p.risk_group_reported) & p.risk_group_reported.notna()).sum()),
            "ELN 2017 category differs from the risk group the centre reports",
        )
    else:
        for n in ("baseline.eln2017.by_group", "baseline.eln2017.discordant.n"):
            a.na(n, f"ELN risk could not be derived: {missing.get('risk')}")
    if "eln2022" in p.columns:
        a.put("baseline.eln2022.by_group", p.eln2022.value_counts().to_dict())
    if "status" in p.columns:
        a.put("baseline.flt3_itd_negative.n", int(p.flt3_itd_negative.eq(True).sum()))
        a.put("population.refractory_or_relapsed.n", int(p.rr.eq(True).sum()))
        a.put("population.elderly_unfit.n", int(p.elderly_unfit.eq(True).sum()))
        a.put("population.by_status", p.status.value_counts().to_dict())
    else:
        reason = f"the study population could not be derived: {missing.get('population')}"
        for n in (
            "baseline.flt3_itd_negative.n",
            "population.refractory_or_relapsed.n",
            "population.elderly_unfit.n",
            "population.by_status",
        ):
            a.na(n, reason)
    a.put("prior.relapsed.n", int(p.prior_relapse.sum()), "patients with a relapse after a prior CR")
    pt = a.cohort.table("prior_therapies")
    iv = pt.relapse_interval_months
    r = pt.aggregate(lo=iv.min(), hi=iv.max()).execute().iloc[0]
    _put_or_na(
        a,
        "prior.relapse_interval_months.range",
        [float(r.lo), float(r.hi)] if pd.notna(r.lo) else None,
        "no relapse interval recorded",
    )
    a.put("prior.hsct.n", int(p.prior_hsct.sum()), "patients with an HSCT line in prior_therapies")
    _put_or_na(a, "prior.lines.median", float(p.prior_lines.median()) if len(p) else None, "no patients")
    f = p.first_dose.dropna()
    _put_or_na(a, "enrolment.first_dose.range", [f.min(), f.max()] if len(f) else None, "no first dose")
    # one figure per patient (the claims name patients), its note once for all of them: a
    # registry's results.json would otherwise repeat it 10^6 times
    ages = p.age_at_first_dose_lower_bound
    if len(p):
        a.notes[PER_PATIENT_AGE] = (
            "onset age + years from diagnosis to the first dose (a lower bound: birth date unknown)"
        )
    if len(p) > PER_PATIENT_FIGURES_MAX:
        ages = ages[ages.index.isin(a.named_patients)]
        a.notes[PER_PATIENT_AGE] += (
            f"; written only for the patients a claims file names ({len(ages)} of {len(p)}): the "
            f"cohort has more than {PER_PATIENT_FIGURES_MAX} patients"
        )
    for pid, v in ages.items():
        _put_or_na(a, PER_PATIENT_AGE.replace("<id>", str(pid)), float(v) if pd.notna(v) else None,
                   "onset age or diagnosis date missing")


#: The per-patient figure's name pattern (``<id>``: the patient id).
PER_PATIENT_AGE = "patient.<id>.age_at_first_dose_lower_bound"

#: Above this many patients the per-patient figures (``patient.<id>.*``) are written only for the
#: patients a claims file names (:func:`patients_named`): one figure per patient made the
#: results.json of a 10^6-patient registry 98 MB.
PER_PATIENT_FIGURES_MAX = 1000


def patients_named(figure_names: Iterable[str]) -> frozenset[str]:
    """The patient ids that per-patient figure names (``patient.<id>.<what>``) refer to; other
    names are ignored. A patient id may itself hold dots: ``<what>`` is the last part."""
    return frozenset(n[len("patient."):].rpartition(".")[0] for n in figure_names
                     if n.startswith("patient.") and n.count(".") >= 2)


def no_marrow_reason(a: StudyAnalysis) -> str | None:
    """Why response cannot be assessed at all on this cohort (no patients, no marrow data), or None."""
    if not len(a.patients):
        return "no patients"
    return "not evaluable: no marrow blast data" if a.patients.attrs.get("n_marrow", 0) == 0 else None


def response_categories(criteria: str) -> tuple[str, ...]:
    """Best-response categories the criteria set can give (rank order), then ``not_evaluable``."""
    from amlcohort.criteria.engine import NOT_EVALUABLE
    from amlcohort.criteria.response import RANK, rules_for

    outs = {r.outcome for r in rules_for(criteria).rules} - {"relapse", NOT_EVALUABLE}
    return (*sorted(outs, key=lambda x: RANK.get(x, 99)), NOT_EVALUABLE)


def _cr_table(a: StudyAnalysis) -> tuple[list[str], np.ndarray]:
    p = a.patients
    rows, table = [], []
    for arm in a.arms:
        g = p[p.study_arm == arm]
        if len(g):
            rows.append(arm)
            table.append([int(g.cr.sum()), int(len(g) - g.cr.sum())])
    return rows, np.array(table, dtype=int).reshape(-1, 2)


def test_reason(table: np.ndarray, what: str = "CR") -> str | None:
    """Why a test of independence on ``table`` (rows = arms) is not estimable, or None."""
    if table.shape[0] < 2:
        return "only one arm has patients: nothing to compare" if table.shape[0] == 1 else "no patients"
    cols = table.sum(axis=0)
    if cols[0] == 0:
        return f"nobody reached {what}: the arms cannot differ"
    if cols[1] == 0:
        return f"every patient reached {what}: the arms cannot differ"
    return None


POSSIBLY_BETTER_NOTE = (
    "patients whose best response is a lower bound: an assessment that could not be evaluated "
    "(inputs missing) might have met a better category"
)


def _possibly_better(a: StudyAnalysis) -> None:
    """``best_response.possibly_better.*``: how many patients' best response is a lower bound
    (:func:`amlcohort.criteria.response.possibly_better_assessments`), the best category they might
    have had, and the inputs whose absence left those assessments undecided (counted by
    assessment). Aggregated in the engine: a handful of rows come back."""
    from amlcohort.criteria.response import best_response, possibly_better_assessments

    responses = a.cohort.landmark_responses(a.criteria)
    best = best_response(responses)
    best = best.filter(best.possibly_better_response.notnull())
    patients = best.group_by("possibly_better_response").agg(n=best.count()).execute()
    t = possibly_better_assessments(responses)
    by_missing = t.group_by("missing").agg(n=t.count()).execute()
    by_category = dict(zip(patients["possibly_better_response"], patients["n"].astype(int), strict=True))
    order = [c for c in response_categories(a.criteria) if c in by_category]
    a.put("best_response.possibly_better.n", int(sum(by_category.values())), POSSIBLY_BETTER_NOTE)
    a.put("best_response.possibly_better.by_category",
          {c: by_category[c] for c in [*order, *sorted(set(by_category) - set(order))]})
    inputs: dict[str, int] = {}
    for missing, n in zip(by_missing["missing"], by_missing["n"], strict=True):
        for name in str(missing or "").split(";"):
            if name:
                inputs[name] = inputs.get(name, 0) + int(n)
    a.put("best_response.possibly_better.missing_inputs", dict(sorted(inputs.items(), key=lambda x: -x[1])),
          "assessments whose missing inputs left a possibly better response undecided, by input")


def _response(a: StudyAnalysis) -> None:
    p = a.patients
    marrow = no_marrow_reason(a)
    a.put("cr.n", int(p.cr.sum()))
    cats = response_categories(a.criteria)
    by_arm: dict[str, Any] = {}
    resp_by_arm: dict[str, Any] = {}
    for arm in a.arms:
        g = p[p.study_arm == arm]
        x, n = int(g.cr.sum()), len(g)
        a.put(f"cr.n.{arm}", x)
        resp_by_arm[arm] = {c: int((g.best_response == c).sum()) for c in cats} | {"n": n}
        if n == 0:
            reason = "no patients in this arm"
            by_arm[arm] = {
                "cr": 0,
                "n": 0,
                "rate": None,
                "ci95_exact": [None, None],
                "ci95_wilson": [None, None],
                "not_estimable": reason,
            }
            a.na(f"cr.rate.{arm}", reason)
            continue
        exact, wilson = proportion_ci(x, n), proportion_ci(x, n, method="wilson")
        by_arm[arm] = {
            "cr": x,
            "n": n,
            "rate": x / n,
            "ci95_exact": [exact.lower, exact.upper],
            "ci95_wilson": [wilson.lower, wilson.upper],
        }
        a.put(f"cr.rate.{arm}", x / n)
    a.put("cr.by_arm", by_arm)
    a.put("response.by_arm", resp_by_arm, f"best response by arm, criteria {a.criteria}")
    a.put("response.categories", list(cats))
    _possibly_better(a)
    for cat in cats:
        a.put(f"best_response.{cat}.n", int((p.best_response == cat).sum()))
    if len(p):
        exact = proportion_ci(int(p.cr.sum()), len(p))
        a.put("cr.rate", p.cr.mean())
        a.put("cr.rate.ci95_exact", [exact.lower, exact.upper])
    else:
        a.na("cr.rate", "no patients")
    rows, table = _cr_table(a)
    a.frames["cr_table"] = pd.DataFrame(table, index=rows, columns=["cr", "no_cr"])
    reason = marrow or test_reason(table)
    names = (
        "fisher.p_value",
        "fisher.p_value.rounded",
        "chisq.statistic",
        "chisq.p_value",
        "chisq.dof",
        "chisq.yates.statistic",
        "chisq.yates.p_value",
    )
    if reason:
        for n in names:
            a.na(n, reason)
        a.put("chisq.warnings", [])
        a.put("chisq.yates.warnings", [])
    else:
        fisher = fisher_exact(table)
        shape = f"{table.shape[0]}x2"
        a.put(
            "fisher.p_value",
            fisher.p_value,
            f"two-sided, {shape} table of arms by CR; "
            "R: fisher.test(matrix(c(<cr by arm>, <no CR by arm>), ncol=2))",
        )
        a.put("fisher.p_value.rounded", round(fisher.p_value, 2))
        for corr, name in ((True, "chisq.yates"), (False, "chisq")):
            c = chi_square_test(table, correction=corr)
            a.put(f"{name}.statistic", c.statistic)
            a.put(f"{name}.p_value", c.p_value)
            a.put(f"{name}.dof", c.dof)
            a.put(f"{name}.warnings", list(c.warnings))
    if table.shape == (2, 2) and not reason:
        fisher = fisher_exact(table)
        a.put("fisher.odds_ratio", fisher.odds_ratio, f"conditional MLE, {rows[0]} vs {rows[1]}")
        a.put(
            "fisher.p_value.greater",
            fisher_exact(table, alternative="greater").p_value,
            f"one-sided: CR more likely in {rows[0]} than in {rows[1]}",
        )
    else:
        r = reason or f"{table.shape[0]} arms: the odds ratio and one-sided test exist for 2 arms only"
        a.na("fisher.odds_ratio", r)
        a.na("fisher.p_value.greater", r)

    d = p.days_to_cr.dropna()
    why = marrow or "nobody reached CR"
    _put_or_na(a, "days_to_cr.median", float(d.median()) if len(d) else None, why)
    _put_or_na(a, "days_to_cr.range", _range(d), why)
    a.put("days_to_cr.by_patient", d.to_dict())
    cr = p[p.cr]
    a.put("cr.blasts_below_10pct_by_day_42.n", int((cr.lowest_blasts_by_day_42 < 10).sum()))
    if "pattern" in p.columns:
        no_cr = p[~p.cr]
        for pattern in ("transient_fall", "unchanged", "rising", "sustained_fall", "not_evaluable"):
            a.put(f"no_cr.blast_pattern.{pattern}.n", int((no_cr.pattern == pattern).sum()))
    if "elderly_unfit" in p.columns:
        unfit = p[p.elderly_unfit.eq(True).fillna(False).astype(bool)]
        a.put("elderly_unfit.cr.n", int(unfit.cr.sum()))
        if "pattern" in p.columns:
            a.put("elderly_unfit.transient_fall.n", int((unfit.pattern == "transient_fall").sum()))
    if len(cr):
        nd = cr.neutropenia_days.fillna(0)
        a.put(
            "cr.neutropenia_days.by_patient",
            nd.to_dict(),
            "days of the first neutropenia (ANC < 1.0 x10^9/L) after the first dose, CR patients",
        )
        a.put("cr.neutropenia_days.min", float(nd.min()))
    else:
        a.na("cr.neutropenia_days.min", "nobody reached CR")


# ---- survival -----------------------------------------------------------------------------------


def counts_frame(time: pd.Series, event: pd.Series, group: pd.Series | None = None) -> pd.DataFrame:
    """Per (group,) time: ``n_event`` and ``n_censor`` -- what :func:`amlcohort.stats.event_counts`
    returns, built from a small per-patient frame without a database round trip."""
    d = pd.DataFrame({"time": time.astype(float), "event": event.astype(int)})
    keys = ["time"]
    if group is not None:
        d.insert(0, "group", group.to_numpy())
        keys = ["group", "time"]
    c = d.groupby(keys, sort=True).event.agg(n_event="sum", n_obs="count").reset_index()
    c["n_censor"] = c.n_obs - c.n_event
    return c.drop(columns="n_obs").astype({"n_event": "int64", "n_censor": "int64"})


def _event_word(code: str) -> str:
    return {"OS": "deaths", "EFS": "events"}.get(code, "events")


def fit_km(
    frame: pd.DataFrame, code: str, groups: pd.Series | None, labels: Callable[[Any], str] | None = None
) -> tuple[dict[str, KaplanMeierResult], LogRankResult | None, dict[str, str]]:
    """KM per group (plus all patients) and the log-rank test, from a per-patient frame with
    ``<code>_days`` and ``<code>_event``. Returns the fits, the test (None when not estimable) and the
    reasons of what is not estimable (keys ``logrank`` and group labels)."""
    t, e = frame[f"{code.lower()}_days"], frame[f"{code.lower()}_event"]
    ok = t.notna() & e.notna()
    t, e = t[ok], e[ok]
    reasons: dict[str, str] = {}
    if not len(t):
        return {}, None, {"logrank": "no patients with a follow-up time", ALL: "no patients"}
    fits: dict[str, KaplanMeierResult] = {}
    lr: LogRankResult | None = None
    if groups is not None:
        g = groups[ok]
        present = g.notna()
        counts = counts_frame(t[present], e[present], g[present])
        for key, sub in counts.groupby("group", sort=False):
            label = labels(key) if labels else str(key)
            fits[label] = kaplan_meier_from_counts(sub.drop(columns="group"), conf_type=CONF_TYPE)
        n_groups = counts.group.nunique()
        if n_groups < 2:
            reasons["logrank"] = "only one group has patients: nothing to compare"
        elif int(e[present].sum()) == 0:
            reasons["logrank"] = f"no {_event_word(code)}: every patient censored"
        else:
            try:
                lr = logrank_test_from_counts(counts)
            except ValueError as err:  # e.g. a singular variance: every event where one group is at risk
                reasons["logrank"] = f"the log-rank test is undefined on these data: {err}"
            else:
                if not lr.estimable or lr.p_value is None or not math.isfinite(lr.statistic):
                    # the test ran but is undefined (zero variance, zero df): no numbers, a reason
                    reasons["logrank"] = logrank_reason(lr, counts, code)
                    lr = None
    fits[ALL] = kaplan_meier_from_counts(counts_frame(t, e), conf_type=CONF_TYPE)
    return fits, lr, reasons


def _day_text(days: float) -> str:
    """Elapsed days as the study day (elapsed day 0 is study day 1)."""
    return f"study day {int(days) + 1}" if float(days).is_integer() else f"{days:g} days after study day 1"


def logrank_reason(lr: LogRankResult, counts: pd.DataFrame, code: str) -> str:
    """Why a log-rank test that was run on ``counts`` (``group``, ``time``, ``n_event``,
    ``n_censor``) is not estimable, in a statistician's words: zero degrees of freedom (the events
    fall where only one group is at risk) or a zero (singular) variance of observed - expected."""
    word = _event_word(code)
    ev = counts[counts.n_event > 0]
    n_events = int(ev.n_event.sum())
    times = sorted(float(x) for x in ev.time.unique())
    where = f"all {n_events} {word} on the same day ({_day_text(times[0])})" if len(times) == 1 else ""
    present = int((lr.n_per_group > 0).sum())
    keep = np.flatnonzero(lr.expected_sums > 0)
    if present < 2:
        return "only one group has patients: nothing to compare"
    if n_events == 0:
        return f"no {word}: every patient censored"
    if len(keep) < 2:
        return (
            f"0 degrees of freedom: all the {word} occur while only one group still has patients at "
            f"risk (the other groups' expected {word} are 0), so there is nothing to compare"
        )
    v = lr.variance_matrix[np.ix_(keep, keep)][1:, 1:]
    if not np.allclose(v, 0.0):
        return (
            f"the variance matrix of observed minus expected {word} is singular: some contrast between "
            "the groups carries no information on these data (e.g. a group whose events all fall where "
            "every patient at risk has the event)"
        )
    if where:
        return (
            f"{where}, when every patient at risk has one: the variance of observed minus expected {word} "
            "is 0, so no event time tells the groups apart"
        )
    return (
        f"the variance of observed minus expected {word} is 0: at every event time either every patient "
        "still at risk has the event or only one group is at risk, so no event time tells the groups apart"
    )


def median_reason(km: KaplanMeierResult, code: str) -> str:
    if km.n_events == 0:
        return f"not reached: no {_event_word(code)}, every patient censored"
    return "not reached: survival stays above 0.5"


def _km_by(a: StudyAnalysis, name: str, code: str, by: str) -> None:
    p = a.patients
    if by == "cr":
        groups = p.cr.map(CR_LABELS)
        fits, lr, reasons = fit_km(p, code, groups)
    else:
        fits, lr, reasons = fit_km(p, code, p.study_arm, a.arm_label)
    a.km[name] = fits
    a.logrank[name] = lr
    if lr is None:
        why = (
            no_marrow_reason(a)
            if by == "cr" and no_marrow_reason(a)
            else reasons.get("logrank", "not estimable")
        )
        for part in ("p_value", "statistic", "dof"):
            a.na(f"logrank.{name}.{part}", why)
    else:
        why = lr.reason or "the log-rank test gave no number"
        _put_or_na(
            a,
            f"logrank.{name}.p_value",
            lr.p_value,
            why,
            f"R: survdiff(Surv(time, status) ~ {by}); df = {lr.dof}",
        )
        _put_or_na(a, f"logrank.{name}.statistic", lr.statistic, why)
        _put_or_na(a, f"logrank.{name}.dof", lr.dof, why)


def _survival(a: StudyAnalysis) -> None:
    for code in ("OS", "EFS"):
        for by in ("cr", "arm"):
            _km_by(a, f"{code.lower()}_by_{by}", code, by)
    for code in ("os", "efs"):
        curves = a.km[f"{code}_by_cr"]
        meds: dict[str, Any] = {}
        for label, key in CR_KEYS.items():
            name = f"{code}.median_days.{key}"
            km = curves.get(label)
            if km is None:
                reason = (
                    "no patients with CR"
                    if key == "cr"
                    else "no patients without CR"
                    if key == "no_cr"
                    else "no patients"
                )
                a.na(name, reason)
                meds[key] = None
            elif km.median_ is None:
                a.na(name, median_reason(km, code.upper()))
                meds[key] = None
            else:
                note = EFS_DAY1_NOTE if code == "efs" and km.median_ == 0 else ""
                a.put(name, km.median_, note)
                meds[key] = km.median_
        a.put(f"{code}.median_days.by_cr", meds)
        a.put(
            f"{code}.median_ci_days.by_cr", {CR_KEYS.get(k, k): list(v.median_ci_) for k, v in curves.items()}
        )
        by_arm = {}
        for arm in a.arms:
            km = a.km[f"{code}_by_arm"].get(a.arm_label(arm))
            by_arm[arm] = None if km is None else km.median_
            name = f"{code}.median_days.{arm}"
            if km is None:
                a.na(name, "no patients in this arm")
            elif km.median_ is None:
                a.na(name, median_reason(km, code.upper()))
            else:
                a.put(name, km.median_, EFS_DAY1_NOTE if code == "efs" and km.median_ == 0 else "")
        a.put(f"{code}.median_days.by_arm", by_arm)
    p = a.patients
    ok = p.os_days.notna()
    if ok.any() and (p.os_event[ok] == 0).any():
        fu = median_follow_up_from_counts(counts_frame(p.os_days[ok], p.os_event[ok]), conf_type=CONF_TYPE)
        _put_or_na(
            a,
            "followup.median_days",
            fu.median,
            "not reached by reverse Kaplan-Meier",
            "reverse Kaplan-Meier (censoring as the event)",
        )
        _put_or_na(
            a,
            "followup.median_months",
            months(fu.median) if fu.median is not None else None,
            "not reached by reverse Kaplan-Meier",
        )
    else:
        why = (
            "no patients" if not ok.any() else "every patient died: no one is censored (reverse Kaplan-Meier)"
        )
        a.na("followup.median_days", why)
        a.na("followup.median_months", why)
    _put_or_na(
        a,
        "followup.observation_median_days",
        float(p.os_days.median()) if ok.any() else None,
        "no patients",
        "median observed time, all patients",
    )
    relapsed = p[p.cr & (p.crdur_event == 1)]
    _put_or_na(
        a,
        "efs_after_cr_months.range",
        [months(relapsed.crdur_days.min()), months(relapsed.crdur_days.max())] if len(relapsed) else None,
        "no CR patient relapsed or died" if p.cr.any() else "nobody reached CR",
        "CR patients with relapse or death: months from CR to the event",
    )
    deaths = p[(p.os_event == 1) & (p.os_days <= 30)]
    a.put("induction.early_deaths.n", len(deaths), "deaths within 30 days of the first dose")


# ---- adverse events -----------------------------------------------------------------------------


def hematologic_terms() -> frozenset[str]:
    """CTCAE terms graded from blood counts (read from the CTCAE term map, not written here)."""
    from amlcohort.criteria.ctcae import LAB_TERMS

    return frozenset(t.term.lower() for t in LAB_TERMS if t.value_column in BLOOD_COUNTS)


def ae_per_patient_term(cohort: Any) -> ir.Table:
    """Per patient and adverse-event term: ``worst_grade``, ``first_onset`` (date) and
    ``first_onset_worst_date`` (the worst-grade date of that first record)."""
    ae = cohort.table("adverse_events")
    return ae.group_by(["patient_id", "term"]).aggregate(
        worst_grade=ae.grade.max(),
        first_onset=ae.onset_date.min(),
        first_onset_worst_date=ae.worst_grade_date.argmin(ae.onset_date),
    )


def ae_counts(cohort: Any) -> pd.DataFrame:
    """Patients per adverse-event term, worst grade and arm, counted in the engine (a few rows per
    term, whatever the cohort's size): ``term``, ``worst_grade``, ``study_arm``, ``n_patients``.
    A patient counts once per term, at the worst grade of the term's records."""
    per = ae_per_patient_term(cohort)
    pts = cohort.table("patients")
    pts = pts.select(_pid=pts.patient_id, study_arm=pts.study_arm)
    j = per.left_join(pts, per.patient_id == pts._pid)
    counts = j.group_by(["term", "worst_grade", "study_arm"]).aggregate(n_patients=j.count()).execute()
    return counts.sort_values(["term", "worst_grade"], kind="stable").reset_index(drop=True)


def earliest_onsets(cohort: Any) -> pd.DataFrame:
    """Per adverse-event term, the record that started first: ``term``, ``patient_id``,
    ``first_onset``, ``first_onset_worst_date``, in order of onset; on a tie, the first patient id
    (ordered in Python, so that every engine's collation gives the same patient). Only the records
    on each term's earliest onset date are read."""
    per = ae_per_patient_term(cohort)
    first = per.group_by(_term=per.term).aggregate(_first=per.first_onset.min())
    j = per.inner_join(first, [per.term == first._term, per.first_onset == first._first])
    rows = j.select("term", "patient_id", "first_onset", "first_onset_worst_date").execute()
    rows = in_order(rows, ["first_onset", "patient_id", "term"])
    return rows.groupby("term").head(1).reset_index(drop=True)


def _adverse_events(a: StudyAnalysis) -> None:
    counts = ae_counts(a.cohort)
    a.frames["ae_counts"] = counts
    p = a.patients
    if counts.empty:
        why = (
            "the bundle has no adverse_events table"
            if not _has(a, "adverse_events")
            else "no adverse events reported"
        )
        a.na("ae.worst_grade.by_term", why)
        a.na("ae.by_arm", why)
        a.put("ae.n_patients", 0)
        a.na("ae.nonhematologic.grade3plus_after_cr.n_patients", why)
    else:
        ae = a.cohort.table("adverse_events")
        a.put("ae.n_patients", int(ae.patient_id.nunique().to_pyarrow().as_py() or 0))
        by_term = {t: g for t, g in counts.groupby("term", sort=True)}
        a.put("ae.worst_grade.by_term", {
            t: {int(k): int(v) for k, v in g.groupby("worst_grade").n_patients.sum().sort_index().items()}
            for t, g in by_term.items()
        })
        a.put("ae.by_arm", {
            t: {str(arm): int(n) for arm, n in g.groupby("study_arm").n_patients.sum().items()}
            for t, g in by_term.items()
        }, "patients with the term, by arm")
        firsts = earliest_onsets(a.cohort).set_index("term")
        for term, g in by_term.items():
            s = f"ae.term.{slug(term)}"
            a.put(f"{s}.n_patients", int(g.n_patients.sum()))
            a.put(f"{s}.worst_grade", int(g.worst_grade.max()))
            for grade, n in g.groupby("worst_grade").n_patients.sum().items():
                a.put(f"{s}.grade.{int(grade)}.n", int(n))
            firstrow = firsts.loc[term]
            first_dose = p.first_dose.get(firstrow.patient_id)
            onset_day = (firstrow.first_onset - first_dose).days if pd.notna(first_dose) else None
            _put_or_na(
                a,
                f"{s}.first_onset_day",
                float(onset_day) if onset_day is not None else None,
                "the patient has no first dose",
                "elapsed days from the first dose, earliest onset",
            )
            wd = firstrow.first_onset_worst_date
            _put_or_na(
                a,
                f"{s}.first.days_to_worst_grade",
                (wd - firstrow.first_onset).days if pd.notna(wd) else None,
                "no worst-grade date recorded",
                "earliest onset to its worst grade, days",
            )
        _rechallenge(a, firsts.reset_index())
        _ae_after_cr(a)
    vers = sorted(
        a.cohort.table("adverse_events")
        .select("ctcae_version")
        .distinct()
        .execute()
        .ctcae_version.dropna()
        .astype(str)
    )
    _put_or_na(a, "criteria.ctcae_version", ",".join(vers) if vers else None, "no adverse events reported")
    assess = a.cohort.table("assessments")
    chem = assess.filter(
        (assess.alt.notnull() | assess.creatinine.notnull()) & assess.assessment_study_day.between(1, 15)
    )
    a.put("ae.liver_kidney_tested_by_day_14.n", int(chem.patient_id.nunique().execute() or 0))
    if len(p) and p.cr.any():
        a.put("ae.neutropenia_over_7_days_in_cr.n", int((p.neutropenia_days[p.cr] > 7).sum()))


def _has(a: StudyAnalysis, name: str) -> bool:
    has = getattr(a.cohort, "has", None)
    return bool(has(name)) if callable(has) else True


def _ae_after_cr(a: StudyAnalysis) -> None:
    """Patients with a non-haematological grade >= 3 adverse event starting after their first CR."""
    name = "ae.nonhematologic.grade3plus_after_cr.n_patients"
    p = a.patients
    if not p.cr.any():
        a.na(name, "nobody reached CR")
        return
    # counted in the engine, against the first CR date per_patient reads (endpoints_per_patient)
    ae = a.cohort.table("adverse_events")
    ep = endpoints_per_patient(a.adtte_table)
    cr = ep.filter(ep.first_cr_date.notnull()).select(_pid=ep.patient_id, _cr=ep.first_cr_date)
    rows = ae.filter(ae.grade >= 3, ~ae.term.lower().isin(tuple(sorted(hematologic_terms()))))
    j = rows.inner_join(cr, rows.patient_id == cr._pid)
    n = j.filter(j.onset_date > j._cr).patient_id.nunique().to_pyarrow().as_py()
    a.put(
        name,
        int(n or 0),
        "non-haematological (terms not graded from blood counts), grade >= 3, onset after the first CR",
    )


def _rechallenge(a: StudyAnalysis, firsts: pd.DataFrame) -> None:
    """Per term, for its earliest patient (``firsts``: :func:`earliest_onsets`): each drug
    restarted after the onset, its dose as a fraction of that patient's first dose of the drug."""
    ids = sorted(set(firsts.patient_id))
    if not ids:
        return
    ex = a.cohort.table("exposures")
    rows = ex.filter(ex.patient_id.isin(ids)).select("patient_id", "drug", "dose", "start_date").execute()
    rows = rows.sort_values("start_date")
    for r in firsts.itertuples():
        mine = rows[rows.patient_id == r.patient_id]
        for drug, g in mine.groupby("drug"):
            later = g[g.start_date > r.first_onset]
            if len(later) and pd.notna(g.dose.iloc[0]) and g.dose.iloc[0] and pd.notna(later.dose.iloc[0]):
                a.put(
                    f"ae.term.{slug(r.term)}.first.rechallenge_dose_fraction.{slug(drug)}",
                    float(later.dose.iloc[0] / g.dose.iloc[0]),
                    "dose restarted after the earliest onset / the patient's first dose of the drug",
                )


# ---- follow-up ----------------------------------------------------------------------------------


def _follow_up(a: StudyAnalysis) -> None:
    p = a.patients
    cr = p[p.cr]
    h = cr[cr.hsct_date.notna() & (cr.hsct_date > cr.first_cr_date)] if len(cr) else cr
    a.put("followup.hsct_after_cr.n", len(h))
    if len(h):
        pid = h.index[0]
        a.put("followup.hsct_after_cr_months", months((h.hsct_date[pid] - h.first_cr_date[pid]).days))
        end = h.death_date[pid] if pd.notna(h.death_date[pid]) else h.last_contact_date[pid]
        if pd.notna(end) and pd.isna(h.relapse_date[pid]):
            a.put("hsct_after_cr.event_free_years", (end - h.hsct_date[pid]).days / 365.25)
        else:
            a.na("hsct_after_cr.event_free_years", "relapse after HSCT, or no date known alive")
    else:
        why = "nobody reached CR" if not len(cr) else "no HSCT after CR"
        a.na("followup.hsct_after_cr_months", why)
        a.na("hsct_after_cr.event_free_years", why)
    tox = cr[cr.treatment_stop_reason == "toxicity"]
    if len(tox) and pd.notna(tox.treatment_days.iloc[0]):
        a.put(
            "followup.stopped_for_side_effect.study_day",
            int(tox.treatment_days.iloc[0] - 1),
            "elapsed days from the first dose to the last dose",
        )
    else:
        a.na("followup.stopped_for_side_effect.study_day", "no CR patient stopped treatment for toxicity")
    kept = cr[cr.treatment_stop_reason == "patient_decision"]
    if len(kept):
        a.put(
            "followup.stopped_after_cr_months",
            months((kept.treatment_last_date - kept.first_cr_date).iloc[0].days),
        )
    else:
        a.na("followup.stopped_after_cr_months", "no CR patient stopped treatment by decision")
    stopped = cr[cr.treatment_stop_reason.isin(["toxicity", "patient_decision"])]
    gaps = [
        months((stopped.death_date[i] - stopped.treatment_last_date[i]).days)
        for i in stopped.index
        if pd.notna(stopped.death_date[i]) and pd.notna(stopped.treatment_last_date[i])
    ]
    _put_or_na(
        a,
        "followup.death_after_stop_months",
        [min(gaps), max(gaps)] if gaps else None,
        "no CR patient died after stopping treatment",
    )
    on_maint = cr[(cr.treatment_stop_reason == "relapse") & cr.relapse_date.notna()]
    rel = [months((on_maint.relapse_date[i] - on_maint.first_cr_date[i]).days) for i in on_maint.index]
    _put_or_na(
        a,
        "followup.relapse_on_maintenance_months",
        [min(rel), max(rel)] if rel else None,
        "no relapse ended treatment after CR",
        "months from CR to a relapse that ended the index treatment",
    )
    a.put("cr.relapsed_within_11_months.n", len(rel), "CR patients whose relapse ended the index treatment")
    a.put("followup.alive_at_last_contact.n", int((p.os_event == 0).sum()))
    a.put("stopping_rule.fired.n", int((p.stopping_rule == "stop").sum()))


# ---- exposures ----------------------------------------------------------------------------------


def _exposures(a: StudyAnalysis) -> None:
    ex = a.cohort.table("exposures")
    span = ex.end_date.delta(ex.start_date, unit="day") + 1
    first = ex.group_by(["patient_id", "drug"]).aggregate(
        starting_dose=ex.dose.argmin(ex.start_date), unit=ex.dose_unit.argmin(ex.start_date)
    )
    # the distinct starting doses and units per drug, in the engine (not one row per patient)
    doses_of = first.select("drug", "starting_dose").distinct().execute()
    units_of = first.select("drug", "unit").distinct().execute()
    courses = ex.group_by("drug").aggregate(lo=span.min(), hi=span.max(), n=ex.patient_id.nunique()).execute()
    for r in courses.itertuples():
        s = f"exposure.{slug(r.drug)}"
        a.put(f"{s}.n_patients", int(r.n))
        _put_or_na(
            a,
            f"{s}.course_days.range",
            [int(r.lo), int(r.hi)] if pd.notna(r.lo) else None,
            "no exposure has an end date",
            "days per exposure row, first to last day inclusive",
        )
        doses = sorted(doses_of[doses_of.drug == r.drug].starting_dose.dropna().unique().tolist())
        _put_or_na(
            a,
            f"{s}.starting_dose",
            doses[0] if len(doses) == 1 else doses or None,
            "no dose recorded",
            "starting dose per administration (first exposure of each patient)",
        )
        units = sorted(units_of[units_of.drug == r.drug].unit.dropna().unique().tolist())
        if units:
            a.put(f"{s}.dose_unit", units[0] if len(units) == 1 else units)


# ---- thresholds ---------------------------------------------------------------------------------


def _threshold(rules: Any, outcome: str, variable: str) -> float | None:
    for rule in rules.rules:
        if rule.outcome == outcome:
            for clause in rule.clauses:
                for c in clause:
                    if c.variable == variable and isinstance(c.value, float):
                        return c.value
    return None


def _criteria(a: StudyAnalysis) -> None:
    """Thresholds read back from the rule files the derivations used (and the protocol's)."""
    from amlcohort.criteria.response import rules_for

    _put_or_na(
        a,
        "criteria.cr.blasts_pct",
        _threshold(rules_for(a.criteria), "cr", "marrow_blasts_pct"),
        f"criteria {a.criteria} has no CR blast threshold",
    )
    try:
        from amlcohort.criteria.population import status_rules

        _put_or_na(
            a,
            "criteria.elderly_unfit.age",
            _threshold(status_rules(), "elderly_unfit", "age_at_onset"),
            "the population rules have no age threshold",
        )
    except Exception as err:
        a.na("criteria.elderly_unfit.age", f"no population rules: {err}")
    protocol = protocol_of(a)
    if protocol is None:
        return
    for key, ref in protocol.rules.items():
        seen: set[str] = set()
        for rule in ref.rules.rules:
            for clause in rule.clauses:
                for c in clause:
                    name = f"protocol.rule.{key}.{rule.outcome}.{c.variable}"
                    if isinstance(c.value, float) and name not in seen:
                        seen.add(name)
                        a.put(name, c.value, f"threshold of rule set {ref.label}")


def protocol_of(a: StudyAnalysis) -> Any:
    """The study's protocol (None without one)."""
    path = getattr(a.study, "protocol", None)
    if path is None:
        return None
    from amlcohort.protocol.definition import load_protocol

    try:
        return load_protocol(path)
    except Exception as err:
        a.na("protocol", f"the protocol file could not be read: {err}")
        return None
