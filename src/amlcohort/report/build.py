"""Build the study report: HTML (self-contained), figures (SVG; PNG on request), tables (CSV + one
XLSX), ``results.json``, ``manifest.json`` and, on request, a typeset PDF; written atomically.

>>> from amlcohort import load_cohort
>>> from amlcohort.report.build import build_report
>>> paths = build_report(load_cohort(), "out")      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir
import pandas as pd
from matplotlib.figure import Figure

from amlcohort.engines.order import read_in_order
from amlcohort.io.cohort import Cohort
from amlcohort.report import figures as fig
from amlcohort.report import tables as tab
from amlcohort.report.audit import Verdict, audit, contradictions, load_claims
from amlcohort.report.html import render_html
from amlcohort.report.parallel import (
    PendingSql,
    PendingSvgs,
    can_fork_for,
    compile_in_background,
    render_in_background,
    render_serially,
)
from amlcohort.report.results import (
    ALL,
    EFS_DAY1_NOTE,
    MaterialisedCohort,
    StudyAnalysis,
    analyse,
    materialise,
    no_marrow_reason,
    patients_named,
    protocol_of,
    study_of,
)
from amlcohort.report.tables import p_text

if TYPE_CHECKING:
    from amlcohort.io.output import OutputWarnings, Staging

Progress = Callable[[str], None]


@dataclass
class Report:
    """Everything the report shows, before it is written.

    ``captions`` (figure name -> caption), ``table_titles`` (table name -> title), ``summary`` and
    ``methods`` are written from the study definition and the analysis (no study is named in code);
    ``verdicts`` is empty when no claims file was given, ``protocol`` None without a protocol.
    """

    analysis: StudyAnalysis
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    verdicts: list[Verdict]
    protocol: dict | None
    captions: dict[str, str] = field(default_factory=dict)
    table_titles: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    methods: str = ""
    claims_path: Path | None = None
    svgs: PendingSvgs | None = field(default=None, repr=False, compare=False)


def _blasts(a: StudyAnalysis) -> dict[bool, tuple[pd.DataFrame, str | None]]:
    """Per CR status (True: the patients who reached CR), their marrow blasts and why they are not
    drawn (None: drawn); the marrow values are read once for both groups. In a cohort of more than
    MAX_PATIENTS_DRAWN patients the engine lists the patients with marrow values first, and the
    rows of a group are read only when its figure draws them, so a registry's marrow values never
    come into Python."""
    t = a.cohort.table("assessments")
    marrow = t.filter(t.marrow_blasts_pct.notnull())
    columns = ["patient_id", "study_day", "marrow_blasts_pct", "group"]
    groups = {cr: a.patients.index[a.patients.cr == cr] for cr in (True, False)}
    out: dict[bool, tuple[pd.DataFrame, str | None]] = {}
    if len(a.patients) > MAX_PATIENTS_DRAWN:
        with_marrow = pd.Index(marrow.select("patient_id").distinct().execute().patient_id)
        for cr, group in groups.items():
            groups[cr] = group = group.intersection(with_marrow)
            crowded = _too_many(pd.Series(group))
            if crowded or group.empty:
                out[cr] = pd.DataFrame(columns=columns), crowded
        drawn = [p for cr, group in groups.items() if cr not in out for p in group]
        marrow = marrow.filter(marrow.patient_id.isin(drawn))
    if len(out) < len(groups):
        m = marrow.select("patient_id", study_day=marrow.assessment_study_day,
                          marrow_blasts_pct=marrow.marrow_blasts_pct)
        m = read_in_order(m, ["patient_id", "study_day"])  # a fixed order, on any engine
        m["group"] = m.patient_id.map(a.patients.study_arm).map(a.arm_label)
        for cr, group in groups.items():
            if cr not in out:
                out[cr] = m[m.patient_id.isin(group)][columns].copy(), None
    return out


def _days_from(dates: pd.Series, first: pd.Series) -> pd.Series:
    """Whole days from each patient's ``first`` date to ``dates`` (NaN where either is missing)."""
    return (pd.to_datetime(dates) - pd.to_datetime(first)).dt.days.astype("float64")


def _km_figure(a: StudyAnalysis, name: str, title: str, ylabel: str, day1: str) -> Figure:
    fits = {g: km for g, km in a.km.get(name, {}).items() if g != ALL}
    if not fits:
        why = "no patients with a follow-up time"
        return fig.not_estimable_figure(title, why)
    horizon = max(float(km.table.time.max()) if len(km.table) else 0.0 for km in fits.values())
    times = fig.risk_times(max(horizon, 1.0), max(km.n for km in fits.values()))
    at_risk = {g: km.survival_at(times)["n_risk"].to_numpy() for g, km in fits.items()}
    risk = pd.DataFrame(at_risk, index=times).T
    meds = {g: km.median_ for g, km in fits.items() if km.median_ is not None}
    lr = a.logrank.get(name)
    if lr is not None:
        note = f"Log-rank p {p_text(lr.p_value)} ({lr.dof} df)"
    else:
        note = f"Log-rank: not estimable ({a.reason(f'logrank.{name}.p_value')})"
    med_text = "; ".join(f"{g} {m:g} d" for g, m in meds.items())
    not_reached = [g for g, km in fits.items() if km.median_ is None]
    if med_text:
        note += f"; median {med_text}"
    if not_reached:
        note += f"; median not reached: {', '.join(not_reached)}"
    return fig.kaplan_meier_plot(
        {g: km.table for g, km in fits.items()}, risk_table=risk, ylabel=ylabel, annotation=note, times=times,
        medians=meds, title=title, xlabel=f"Days since the {day1}",
    )


def _swimmer(a: StudyAnalysis) -> tuple[pd.DataFrame, pd.DataFrame, list[str], str | None]:
    """The swimmer plot's bars (treatment periods and the time off treatment), events and overlay
    kinds, and why it is not drawn (None: drawn). In a cohort of more than MAX_PATIENTS_DRAWN
    patients the engine counts the patients with a bar first; the exposures and events are read
    only when the figure draws them."""
    p = a.patients
    first = p.first_dose.dropna()
    exposures = a.cohort.table("exposures")
    exposures = exposures.filter(exposures.start_date.notnull())
    events = a.cohort.table("events")
    last = p.os_days.dropna()  # each patient's time off treatment: a bar from day 1 to it
    if len(p) > MAX_PATIENTS_DRAWN:
        exposed = pd.Index(exposures.select("patient_id").distinct().execute().patient_id)
        treated = exposed.intersection(first.index)  # the patients with a bar from day 1
        crowded = _too_many(pd.Series(treated.union(last.index)))
        if crowded:
            no_bars = pd.DataFrame(columns=["patient_id", "start_day", "end_day", "kind"])
            return no_bars, pd.DataFrame(columns=["patient_id", "event", "day"]), [], crowded
        exposures = exposures.filter(exposures.patient_id.isin(list(treated)))
        events = events.filter(events.patient_id.isin(list(treated)))
    # in a fixed order (an engine returns rows in any): the bars are drawn in it
    ex = read_in_order(exposures.select("patient_id", "drug", "phase", "start_date", "end_date"),
                       ["patient_id", "start_date", "drug", "phase", "end_date"])
    start = ex.patient_id.map(first)
    cutoff = pd.Timestamp(a.cohort.metadata.cutoff_date)
    ex["start_day"] = _days_from(ex.start_date, start)
    ex["end_day"] = _days_from(pd.to_datetime(ex.end_date).fillna(cutoff), start)
    phase = ex.phase.where(ex.phase.map(lambda ph: isinstance(ph, str) and ph != ""), None)
    ex["kind"] = ex.drug.astype(str).where(phase.isna(), ex.drug.astype(str) + " " + phase.fillna(""))
    ex = ex.dropna(subset=["start_day", "end_day"])
    totals = (ex.end_day - ex.start_day).groupby(ex.drug).sum().sort_values(ascending=False)
    backbone = totals.index[0] if len(totals) else None
    overlays = sorted(set(ex.kind[ex.drug != backbone]))
    bars = ex[["patient_id", "start_day", "end_day", "kind"]]
    off = pd.DataFrame(
        {"patient_id": last.index, "start_day": 0.0, "end_day": last.values, "kind": "off treatment"}
    )
    names = {"cr_reported": "CR", "hsct": "HSCT", "relapse": "relapse", "death": "death",
             "last_contact": "last contact"}
    ev = events.filter(events.event_type.isin(list(names))).select("patient_id", "event_type", "event_date")
    ev = read_in_order(ev, ["patient_id", "event_date", "event_type"])
    marks = pd.DataFrame(
        {
            "patient_id": ev.patient_id,
            "event": ev.event_type.map(names),
            "day": _days_from(ev.event_date, ev.patient_id.map(first)),
        }
    ).dropna(subset=["day"])
    return pd.concat([off, bars], ignore_index=True), marks, overlays, None


def _ae_figure_frame(ae_table: pd.DataFrame) -> pd.DataFrame:
    cols = [f"Grade {g}" for g in range(1, 6)]
    if ae_table.empty or not set(cols) <= set(ae_table.columns):
        return pd.DataFrame(columns=["term", "grade", "n_patients"])
    long = ae_table.melt(id_vars=["Term"], value_vars=cols, var_name="grade", value_name="n_patients")
    long = long.assign(term=long.Term, grade=long.grade.str[-1].astype(int))[["term", "grade", "n_patients"]]
    return long[long.n_patients > 0]


#: Figures 3 and 4 group the patients by CR reached at any time, from day 1 (as the paper does).
CR_GROUPS_NOTE = (
    "the groups are by CR reached at any time, so a patient in the CR group had to survive until the "
    "CR to be in it, which favours that group (immortal-time bias); a landmark analysis, or CR as a "
    "time-dependent covariate, compares them without it"
)


def _captions(a: StudyAnalysis, day1: str) -> dict[str, str]:
    efs_day1 = any(
        km.median_ == 0 for name in ("efs_by_cr", "efs_by_arm") for km in a.km.get(name, {}).values()
    )
    efs_note = f" Note: {EFS_DAY1_NOTE}." if efs_day1 else ""
    return {
        "figure1_blasts_cr": "Marrow blasts (%) over time in the patients who reached CR "
        "(reference lines at 5 % and 10 %).",
        "figure2_blasts_no_cr": "Marrow blasts (%) over time in the patients without CR.",
        "figure3_os_by_cr": f"Overall survival from the {day1} by CR status "
        "(Kaplan–Meier; + censored; log-transformed pointwise 95% CI as R's survfit; number at risk below). "
        f"Note: {CR_GROUPS_NOTE}.",
        "figure4_efs_by_cr": "Event-free survival by CR status "
        "(induction failure is an event on day 1)."
        + efs_note + f" Note: {CR_GROUPS_NOTE}.",
        "figure5_swimmer": "Each patient's course: treatment periods, CR, HSCT, relapse, "
        "death or last contact.",
        "figure6_adverse_events": "Adverse events as reported, patients by worst CTCAE grade.",
        "figure7_os_by_arm": f"Overall survival from the {day1} by arm "
        "(Kaplan–Meier; number at risk below; log-rank test with k-1 degrees of freedom).",
        "figure8_efs_by_arm": "Event-free survival by arm (induction failure is an event on day 1)."
        + efs_note,
    }


def _table_titles(a: StudyAnalysis) -> dict[str, str]:
    from amlcohort.report.tables import lab_version

    return {
        "table1_baseline": "Baseline characteristics by arm",
        "response_by_arm": f"Best response by arm ({a.criteria} criteria)"
        + (" — " + lower if (lower := possibly_better_text(a.figures)) else ""),
        "response_tests": "CR rate by arm: tests",
        "days_to_cr": "Days from the first dose to CR",
        "survival": "Survival medians and log-rank tests",
        "adverse_events": "Adverse events as reported (patients by worst grade, by arm)",
        "lab_ctcae_grades": f"Laboratory adverse events graded by CTCAE v{lab_version(a)} from the "
        "assessments",
        "dose_modifications": "Dose modifications and treatment stops",
        "protocol_summary": "Protocol deviations by rule",
        "protocol_deviations": "Protocol deviations",
        "claims_audit": "The claims file's statements against the data",
    }


def possibly_better_text(f: dict) -> str:
    """A sentence on the patients whose best response is a lower bound (results.json's
    ``best_response.possibly_better.*``), or "" when there are none."""
    from amlcohort.report.tables import CATEGORY_LABELS

    n = f.get("best_response.possibly_better.n")
    if not n:
        return ""
    by_category = f.get("best_response.possibly_better.by_category") or {}
    cats = " or ".join(CATEGORY_LABELS.get(c, c) for c in by_category)
    missing = ", ".join(f"{k} ({v} assessments)"
                        for k, v in (f.get("best_response.possibly_better.missing_inputs") or {}).items())
    return (f"For {n} patient(s) the best response is a lower bound: a marrow assessment that could not be "
            f"evaluated might have met {cats} (inputs missing: {missing}).")


def _summary(a: StudyAnalysis) -> str:
    f = a.figures
    parts = [f"{f.get('cohort.n_patients', 0)} patients in {len(a.arms)} arm(s)."]
    arm_bits = []
    for arm, b in (f.get("cr.by_arm") or {}).items():
        arm_bits.append(f"{b['cr']}/{b['n']} with {a.arm_label(arm)}")
    if arm_bits:
        parts.append("CR in " + ", ".join(arm_bits) + ".")
    lower = possibly_better_text(f)
    if lower:
        parts.append(lower)
    fp = f.get("fisher.p_value")
    parts.append(
        f"Fisher's exact test (two-sided) p {p_text(fp)}."
        if fp is not None else f"Fisher's exact test: not estimable ({a.reason('fisher.p_value')})."
    )
    med = f.get("days_to_cr.median")
    parts.append(f"Days to CR median {med:g}." if med is not None else
                 f"Days to CR: not estimable ({a.reason('days_to_cr.median')}).")
    for key, text in (("cr", "with CR"), ("no_cr", "without CR")):
        v = f.get(f"os.median_days.{key}")
        parts.append(f"Median overall survival {text}: " + (f"{v:g} days." if v is not None else
                     f"{a.reason(f'os.median_days.{key}')}."))
    lp = f.get("logrank.os_by_cr.p_value")
    parts.append(f"Log-rank (OS by CR) p {p_text(lp)}." if lp is not None else
                 f"Log-rank (OS by CR): not estimable ({a.reason('logrank.os_by_cr.p_value')}).")
    fu = f.get("followup.median_days")
    parts.append(f"Median follow-up {fu:g} days by reverse Kaplan–Meier." if fu is not None else
                 f"Median follow-up: not estimable ({a.reason('followup.median_days')}).")
    return " ".join(parts)


def _methods(a: StudyAnalysis, day1: str) -> str:
    from amlcohort.report.tables import lab_version

    cite = getattr(a.study, "citation", None)
    return (
        f"Response by the {a.criteria} criteria; laboratory values graded by CTCAE v{lab_version(a)}. "
        "Kaplan–Meier estimates with Greenwood standard errors and log-transformed intervals, medians by R's "
        "rule (midpoint where S = 0.5 exactly), log-rank tests as R's survdiff (k-1 degrees of freedom for k "
        "groups), Fisher's exact test as R's fisher.test (r×c for more than two arms), chi-square as R's "
        "chisq.test, exact (Clopper–Pearson) and Wilson intervals; every statistic is verified against R in "
        f"the test suite. Days are counted from the {day1}; months are days / 30.4375. "
        "Median follow-up is by reverse Kaplan–Meier. Figures that cannot be computed on this cohort "
        "are reported as not estimable with the reason." + (f" Study: {cite}." if cite else "")
    )


def _claims_path(study: Any, claims_path: str | Path | None) -> Path | None:
    if claims_path:
        return Path(claims_path)
    p = getattr(study, "claims", None)
    return Path(p) if p else None


def assemble(
    cohort: Cohort,
    *,
    claims_path: str | Path | None = None,
    criteria: str | None = None,
    progress: Progress | None = None,
    p_values: bool = False,
    background: bool = True,
) -> Report:
    """Compute the analysis, the tables, the figures, the claims audit (only with a claims file:
    ``claims_path`` or the study's) and the protocol section (only when the study has a protocol).

    ``criteria`` defaults to the study definition's response criteria. ``background``: compile the
    two largest queries (laboratory grades, protocol audit) to SQL and encode the figures as SVG in
    forked children while the rest is derived (:mod:`amlcohort.report.parallel`; the SQL and the
    bytes are the same as made in-process, which is what happens where forking is not possible)."""
    step = progress or (lambda _s: None)
    step("deriving responses, endpoints and statistics")
    mc = materialise(cohort)
    # the claims are read first: a bad claims file fails before any work, and the patients the
    # claims name get their per-patient figures however large the cohort
    path = _claims_path(study_of(mc), claims_path)
    claims = load_claims(path) if path is not None else []
    # DuckDB only (another engine, or no fork: the queries are built and compiled where needed)
    ahead = _compile_ahead(mc) if background and can_fork_for(mc.con) else None
    a = analyse(mc, criteria, named_patients=patients_named(n for c in claims for n in c.figure_names))
    day1 = str(getattr(a.study, "day1_text", "first dose"))
    step("building tables")
    tables = {
        "table1_baseline": tab.table1(a, p_values=p_values),
        "response_by_arm": tab.response_table(a),
        "response_tests": tab.tests_table(a),
        "days_to_cr": tab.days_to_cr_table(a),
        "survival": tab.survival_table(a),
        "adverse_events": tab.adverse_events_table(a),
    }
    # The figures need the analysis and the adverse-event table only: drawn now, their SVG is
    # encoded by a child process (report.parallel) while the laboratory grades and the protocol
    # audit are derived here.
    step("drawing figures")
    figures = _figures(a, tables, day1)
    svgs = render_in_background(figures) if background else None
    step("grading laboratory values")
    lab_version = tab.lab_version(a)
    if ahead is not None and ahead.version == lab_version and ahead.lab is not None:
        tables["lab_ctcae_grades"] = tab.lab_grades_table(a, ahead.lab.table("lab"))
    else:
        tables["lab_ctcae_grades"] = tab.lab_grades_table(a)
    tables["dose_modifications"] = tab.dose_modifications_table(a)
    verdicts: list[Verdict] = []
    if path is not None:
        step("auditing the claims")
        verdicts = audit(a.figures, claims, a.not_estimable)
        tables["claims_audit"] = tab.audit_table(verdicts)
    protocol = None
    if getattr(a.study, "protocol", None) is not None:
        step("auditing protocol adherence")
        protocol = _protocol_section(a, ahead)
        if protocol is not None:
            tables["protocol_deviations"] = protocol["deviations"]
            tables["protocol_summary"] = protocol["summary"]
    return Report(
        a, tables, figures, verdicts, protocol, captions=_captions(a, day1), table_titles=_table_titles(a),
        summary=_summary(a), methods=_methods(a, day1), claims_path=path, svgs=svgs,
    )


#: Figures drawing one line or lane per patient (blast trajectories, swimmer) are drawn up to this
#: many patients; above it they would be unreadable and take minutes and gigabytes to draw.
MAX_PATIENTS_DRAWN = 200


def _too_many(patients: pd.Series) -> str | None:
    n = patients.nunique()
    if n <= MAX_PATIENTS_DRAWN:
        return None
    return f"{n} patients: one line per patient is drawn for at most {MAX_PATIENTS_DRAWN}"


def _figures(a: StudyAnalysis, tables: dict[str, pd.DataFrame], day1: str) -> dict[str, Figure]:
    xlabel = f"Days since the {day1}"
    marrow = no_marrow_reason(a)
    out: dict[str, Figure] = {}
    blasts = {} if marrow else _blasts(a)
    for name, cr, title, extra in (
        ("figure1_blasts_cr", True, "Patients with CR",
         {"max_day": 120, "reference_lines": (5, 10)}),
        ("figure2_blasts_no_cr", False, "Patients without CR", {"max_day": 60}),
    ):
        data, crowded = blasts.get(cr, (None, None))
        if marrow or crowded or data is None or data.empty:
            why = marrow or crowded or ("nobody reached CR" if cr else "every patient reached CR")
            out[name] = fig.not_estimable_figure(title, why)
        else:
            out[name] = fig.blast_trajectories(data, title=title, xlabel=xlabel, **extra)
    out["figure3_os_by_cr"] = _km_figure(a, "os_by_cr", "Overall survival by CR status",
                                         "Overall survival (probability)", day1)
    out["figure4_efs_by_cr"] = _km_figure(a, "efs_by_cr", "Event-free survival by CR status",
                                          "Event-free survival (probability)", day1)
    bars, events, overlays, crowded = _swimmer(a)
    if bars.empty or crowded:
        why = crowded or "no treatment periods"
        out["figure5_swimmer"] = fig.not_estimable_figure("Course of each patient", why)
    else:
        out["figure5_swimmer"] = fig.swimmer_plot(
            bars, events, title="Course of each patient", overlays=overlays, xlabel=xlabel
        )
    ae = _ae_figure_frame(tables["adverse_events"])
    if ae.empty:
        why = a.reason("ae.worst_grade.by_term") or "no adverse events reported"
        out["figure6_adverse_events"] = fig.not_estimable_figure("Adverse events, worst grade", why)
    else:
        out["figure6_adverse_events"] = fig.bar_by_grade(ae, title="Adverse events, worst grade",
                                                         n_total=len(a.patients))
    out["figure7_os_by_arm"] = _km_figure(a, "os_by_arm", "Overall survival by arm",
                                          "Overall survival (probability)", day1)
    out["figure8_efs_by_arm"] = _km_figure(a, "efs_by_arm", "Event-free survival by arm",
                                           "Event-free survival (probability)", day1)
    return out


@dataclass
class _Ahead:
    """Queries built before the analysis and compiled meanwhile by a child (see :func:`_compile_ahead`)."""

    audit: PendingSql  # the protocol audit's checks, one query per check
    version: str | None = None  # CTCAE version of the "lab" query
    protocol: Any = None  # the protocol of the audit's checks
    lab: PendingSql | None = None  # the "lab" query


def _compile_ahead(mc: MaterialisedCohort) -> _Ahead:
    """Run the few queries the laboratory-grade and protocol-audit expressions need (which terms the
    assessments have values for; each patient's protocol phases), then start building and
    compiling the two in a child. What fails here is simply done again later, where its error is
    reported as before."""
    from amlcohort.criteria.population import derive_population
    from amlcohort.endpoints.blast_patterns import blast_patterns
    from amlcohort.protocol.audit import audit_parts
    from amlcohort.protocol.definition import load_protocol
    from amlcohort.protocol.timeline import periods

    study = study_of(mc)
    mc.materialise_all()
    # first child: the per-patient queries of the analysis (population, risk, blast patterns),
    # which the parent reads through mc.query() once the analysis gets there
    with contextlib.suppress(Exception):
        mc.karyotype_lookup()  # the one query their expressions need, run here
        mc.pending = compile_in_background(mc.con, {
            "population": lambda: derive_population(mc),
            "risk": mc.risk,
            "blast_patterns": lambda: blast_patterns(mc),
        })
    ahead = _Ahead(PendingSql(mc.con, {}))
    # second child: the laboratory grades (the assessments only)
    version = str(getattr(study, "ctcae_version", None) or "5.0")
    with contextlib.suppress(Exception):
        terms = tab.lab_terms(mc)
        if terms:
            t = mc.table("assessments")
            ahead.lab = compile_in_background(
                mc.con, {"lab": lambda: tab.lab_grade_counts(t, version, terms)}
            )
            ahead.version = version
    # third: the protocol audit's checks, each compiled alone (the parent unions the results)
    path = getattr(study, "protocol", None)
    if path is not None:
        with contextlib.suppress(Exception):
            protocol = load_protocol(path)
            per = periods(mc, protocol).cache()
            parts = audit_parts(mc, protocol, per=per)
            ahead.audit = compile_in_background(
                mc.con, {name: functools.partial(_or_empty, build) for name, build in parts.items()}
            )
            ahead.protocol = protocol
    return ahead


def _or_empty(build: Callable[[], ir.Table | None]) -> ir.Table:
    from amlcohort.protocol.audit import empty_deviations

    table = build()
    return empty_deviations() if table is None else table


def _protocol_section(a: StudyAnalysis, ahead: _Ahead | None = None) -> dict | None:
    from amlcohort.protocol import audit_section

    protocol = protocol_of(a)
    if protocol is None:
        return None
    try:
        # the same protocol file of the same study, read before the analysis
        if ahead is not None and ahead.protocol is not None and ahead.audit.builders:
            from amlcohort.protocol.audit import combine_parts

            parts = [ahead.audit.table(name) for name in ahead.audit.builders]
            return audit_section(a.cohort, protocol, deviations=combine_parts(parts).cache())
        return audit_section(a.cohort, protocol)
    except Exception as err:
        a.na("protocol.deviations", f"the protocol audit could not run: {type(err).__name__}: {err}")
        return None


def write_report(
    report: Report,
    out: str | Path,
    *,
    pdf: bool = False,
    png: bool = False,
    png_dpi: int = 150,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write every output of ``report`` as the folder ``out``, atomically; returns the main paths.

    Each figure is rendered once as SVG (``figures/*.svg``, embedded in the HTML and set in the PDF);
    PNG (``png_dpi``) only when ``png``. The whole folder is written beside ``out`` and swapped in
    (see :mod:`amlcohort.io.output`): the previous report stays complete until the new one is,
    a concurrent run on the same ``out`` fails, links are never followed, and ``manifest.json`` lists
    every file with its SHA-256. Raises :class:`amlcohort.io.output.OutputError` (one-line message)
    when ``out`` cannot be written.
    """
    from amlcohort.io.output import OutputWarnings, staged_output

    step = progress or (lambda _s: None)
    out = Path(out)
    warnings = OutputWarnings()
    drawn = {name: f for name, f in report.figures.items() if isinstance(f, Figure)}
    with staged_output(out) as stage:
        step("rendering figures (SVG)")
        pending = getattr(report, "svgs", None)
        svgs = pending.collect(drawn) if pending is not None else render_serially(drawn)
        for name, data in svgs.items():
            stage.write_bytes(f"figures/{name}.svg", data)
        if png:
            for name, f in drawn.items():
                stage.write_bytes(f"figures/{name}.png", fig.render_figure(f, "png", dpi=png_dpi))
        step("writing tables")
        _write_tables(report.tables, stage, warnings)
        step("writing HTML")
        stage.write_text("report.html", render_html(report, svgs))
        if pdf:
            from amlcohort.report.pdf import render_pdf

            step("writing PDF")
            stage.write_bytes("report.pdf", render_pdf(report, svgs))
        results = report.analysis.results_json()
        results["audit"] = {
            v.claim.name: {"status": v.status, "paper": v.claim.value, "data": v.computed}
            for v in report.verdicts
        }
        results["audit_contradictions"] = [
            [x.claim.name, y.claim.name] for x, y in contradictions(report.verdicts)
        ]
        results["output_warnings"] = warnings.items
        results["outputs"] = {"manifest": "manifest.json", "files": dict(sorted(stage.files.items()))}
        stage.write_bytes("results.json", _json_bytes(results))
    final = out.absolute()
    paths = {"html": final / "report.html", "results": final / "results.json", "xlsx": final / "tables.xlsx"}
    if pdf:
        paths["pdf"] = final / "report.pdf"
    paths["manifest"] = final / "manifest.json"
    return paths


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n").encode("utf-8")


def _write_tables(tables: dict[str, pd.DataFrame], stage: Staging, warnings: OutputWarnings) -> None:
    """``tables/<name>.csv`` and one ``tables.xlsx`` (a sheet per table), formula text neutralised."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from amlcohort.io import output
    from amlcohort.io.excel import reproducible_xlsx
    from amlcohort.io.output import safe_cell, xlsx_cell

    wb = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    bold = Font(bold=True)
    for name, t in tables.items():
        if t is None:
            continue
        csv = t.map(safe_cell) if len(t.columns) else t.copy()
        csv.columns = [safe_cell(str(c)) for c in t.columns]
        stage.write_bytes(f"tables/{name}.csv", csv.to_csv(index=False).encode("utf-8"))
        sheet = _sheet_name(name, used)
        ws = wb.create_sheet(sheet)
        header = []
        for c in t.columns:
            cell = WriteOnlyCell(ws, value=xlsx_cell(str(c))[0])
            cell.font = bold
            header.append(cell)
        ws.append(header)
        fits = output.XLSX_ROW_LIMIT - 1  # data rows a sheet can hold under its header
        if len(t) > fits:
            warnings.add(
                file="tables.xlsx",
                sheet=sheet,
                rows=len(t),
                rows_written=fits,
                message=f"the sheet holds the first {fits:,} of {len(t):,} rows (Excel's limit is "
                f"{output.XLSX_ROW_LIMIT:,} rows a sheet); every row is in tables/{name}.csv",
            )
        for i, row in enumerate(t.head(fits).itertuples(index=False, name=None), start=2):
            values = []
            for col, v in zip(t.columns, row, strict=True):
                value, cut = xlsx_cell(v)
                if cut is not None:
                    warnings.add(
                        file="tables.xlsx",
                        sheet=sheet,
                        row=i,
                        column=str(col),
                        length=cut,
                        message=f"text of {cut:,} characters cut to Excel's 32,767-character cell limit "
                        f"(marked in the cell); the full text is in tables/{name}.csv",
                    )
                values.append(value)
            ws.append(values)
    buf = io.BytesIO()
    wb.save(buf)
    stage.write_bytes("tables.xlsx", reproducible_xlsx(buf.getvalue()))


def _sheet_name(name: str, used: set[str]) -> str:
    base = "".join("_" if ch in '[]:*?/\\' else ch for ch in name)[:31] or "table"
    sheet, k = base, 1
    while sheet.lower() in used:
        k += 1
        sheet = f"{base[: 31 - len(str(k)) - 1]}_{k}"
    used.add(sheet.lower())
    return sheet


def build_report(
    cohort: Cohort,
    out: str | Path,
    *,
    claims_path: str | Path | None = None,
    pdf: bool = False,
    png: bool = False,
    criteria: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Assemble and write the report for ``cohort`` as the folder ``out`` (see :func:`write_report`)."""
    report = assemble(cohort, claims_path=claims_path, criteria=criteria, progress=progress)
    return write_report(report, out, pdf=pdf, png=png, progress=progress)
