"""Response assessment: CR, CRh, CRi, MLFS, PR, SD / no response, PD and relapse per assessment.

The clinical rules are data, read by the rule engine (:mod:`amlcohort.criteria.engine`) from
``rules/response.csv``; see the ``## Response`` section of ``rules/README.md``. Three criteria sets:

* ``study``   -- the paper's §2.2 (Xu et al. 2019): CR, CRi, PR; ``nr`` for an evaluable marrow that
  meets none; ``relapse`` after a documented CR (§2.4).
* ``eln2017`` -- Döhner et al., Blood 2017, Table 6: CR, CRi, MLFS, PR, PD, SD, hematologic relapse.
* ``eln2022`` -- Döhner et al., Blood 2022: CR, CRh, CRi, MLFS, PR, no response (``nr``), relapse.

Categories are lower-case codes: ``cr crh cri mlfs pr sd nr pd relapse`` and ``not_evaluable``.

This module only turns the cohort tables into the rules' inputs, with Ibis (any backend with
window functions; DuckDB by default), and never decides a category itself. Inputs the rules use:

* recorded: ``marrow_blasts_pct``, ``marrow_spicules``, ``extramedullary_disease``, ``anc``,
  ``platelets`` (x10^9/L), ``peripheral_blasts_pct``, ``transfusion_independent``;
* baseline (last value on or before study day 1, the first dose): ``baseline_marrow_blasts_pct``,
  ``baseline_extramedullary_disease``, ``baseline_peripheral_blasts_abs``;
* derived, by plain arithmetic (:func:`derived_values` for one row, :func:`_derived_exprs`
  in Ibis -- the same formulas): ``marrow_blasts_increase_pts`` = marrow - baseline blasts;
  ``peripheral_blasts_abs`` = WBC x peripheral blasts % / 100 (0 when no blasts);
* history (from the earlier assessments of the patient, :func:`derive`): ``previous_response`` =
  best response so far (``"none"`` if none); ``peripheral_blasts_span_days`` = days since the first
  blood sample with blasts after the last remission, for a sample with blasts.

Spicules: an aspirate with ``marrow_spicules`` = false is passed to the rules as *missing*: it can
show disease (relapse, PD: haemodilution lowers, never raises, the blast percentage) but cannot
establish a response or its absence, so those give ``not_evaluable`` naming ``marrow_spicules``
(ELN 2022: "a technically suboptimal bone marrow sample precluding assessment" is non-evaluable).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import (
    NOT_EVALUABLE,
    RuleSet,
    apply_rules,
    compile_rules,
    evaluate,
    evaluated_once,
    load_rules,
)

RULE_FILE = "response.csv"
RULESET_PREFIX = "response."
NO_PREVIOUS = "none"
TRANSFUSION_PRODUCTS = ("rbc", "platelets")

# Best-response order (1 = best). SD and "no response" never occur in the same criteria set.
RANK: dict[str, int] = {
    "cr": 1, "crh": 2, "cri": 3, "mlfs": 4, "pr": 5, "sd": 6, "nr": 7, "pd": 8, "relapse": 9,
}

#: The input without which an assessment is a blood count, not a marrow response assessment.
MARROW_INPUT = "marrow_blasts_pct"

RECORDED_INPUTS = (
    "marrow_blasts_pct", "marrow_spicules", "extramedullary_disease", "anc", "platelets", "wbc",
    "peripheral_blasts_pct",
)

# the inputs reported by :func:`derive`, whichever criteria set (same schema for all)
OUTPUT_INPUTS = (
    *RECORDED_INPUTS, "transfusion_independent", "baseline_marrow_blasts_pct",
    "baseline_extramedullary_disease", "baseline_peripheral_blasts_abs", "marrow_blasts_increase_pts",
    "peripheral_blasts_abs", "previous_response", "peripheral_blasts_span_days",
)


#: The columns of :func:`derive` that say what each assessment's response is, without the rule
#: inputs: all that the endpoints, the best response and the key dates read
#: (``derive(..., inputs=False)``).
OUTCOME_COLUMNS = (
    "patient_id", "assessment_date", "first_dose_date", "assessment_study_day", "response", "rule_id",
    "missing", "criteria", "criteria_version",
)
_KEYS = ("patient_id", "assessment_date", "first_dose_date", "_day")


class CohortLike(Protocol):
    def table(self, name: str) -> ir.Table: ...


def _first_doses(cohort: CohortLike) -> ir.Table:
    """Study day 1 per patient: the cohort's own (its study's index drug) or the first dose of any drug."""
    first_dose = getattr(cohort, "first_dose", None)
    if first_dose is not None:
        return first_dose()
    ex = cohort.table("exposures")
    return ex.group_by("patient_id").agg(first_dose=ex.start_date.min())


# ---- criteria sets ----------------------------------------------------------------------------

def criteria_sets() -> dict[str, str]:
    """Criteria name -> version, as shipped in ``rules/response.csv``."""
    out: dict[str, str] = {}
    for name, version in load_rules(RULE_FILE):
        short = name.removeprefix(RULESET_PREFIX)
        if short in out:
            raise ValueError(f"{RULE_FILE}: criteria {short!r} has several versions; ask for 'name@version'")
        out[short] = version
    return out


@functools.cache
def rules_for(criteria: str = "study") -> RuleSet:
    """The rule set of ``criteria`` (``study``, ``eln2017``, ``eln2022`` or ``name@version``)."""
    name, _, version = criteria.partition("@")
    book = load_rules(RULE_FILE)
    if not version:
        known = criteria_sets()
        if name not in known:
            raise KeyError(f"unknown response criteria {criteria!r}; known: {sorted(known)}")
        version = known[name]
    key = (RULESET_PREFIX + name, version)
    if key not in book:
        raise KeyError(f"{RULE_FILE} has no criteria {criteria!r}; it has "
                       f"{sorted(n.removeprefix(RULESET_PREFIX) + '@' + v for n, v in book)}")
    return book[key]


def remission_categories(rules: RuleSet) -> tuple[str, ...]:
    """Categories after which relapse applies: read from the rules' ``previous_response in`` condition."""
    for rule in rules.rules:
        for clause in rule.clauses:
            for cond in clause:
                if cond.variable == "previous_response" and cond.op == "in":
                    return tuple(s.strip() for s in str(cond.value).split("|"))
    return ()


# ---- one assessment ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ResponseResult:
    """A response category for one assessment, with the rule that gave it."""

    category: str | None
    rule_id: str | None
    reason: str
    missing: tuple[str, ...]
    criteria: str
    version: str
    source: str | None

    @property
    def evaluable(self) -> bool:
        return self.category not in (None, NOT_EVALUABLE)


def derived_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The derived rule inputs for one row; :func:`_derived_exprs` is the Ibis twin."""
    blasts, base = values.get("marrow_blasts_pct"), values.get("baseline_marrow_blasts_pct")
    pb, wbc = values.get("peripheral_blasts_pct"), values.get("wbc")
    return {
        "marrow_spicules": True if values.get("marrow_spicules") is True else None,
        "marrow_blasts_increase_pts": None if blasts is None or base is None else blasts - base,
        "peripheral_blasts_abs": _blasts_abs(wbc, pb),
    }


def _blasts_abs(wbc: float | None, pb: float | None) -> float | None:
    if pb is None:
        return None
    if pb == 0:
        return 0.0
    return None if wbc is None else wbc * pb / 100


def classify(
    *,
    marrow_blasts_pct: float | None,
    marrow_spicules: bool | None,
    extramedullary_disease: bool | None,
    anc: float | None,
    platelets: float | None,
    transfusion_independent: bool | None,
    baseline_marrow_blasts_pct: float | None = None,
    peripheral_blasts_pct: float | None = None,
    criteria: str = "study",
    previous_response: str | None = None,
    baseline_extramedullary_disease: bool | None = None,
    wbc: float | None = None,
    baseline_peripheral_blasts_abs: float | None = None,
    peripheral_blasts_span_days: float | None = None,
) -> ResponseResult:
    """Classify one assessment with the same compiled rules :func:`derive` runs.

    Counts in x10^9/L, blasts in %. ``previous_response`` is the best response at an earlier
    assessment (None: none on record -- relapse rules then do not apply). ``wbc`` and
    ``baseline_peripheral_blasts_abs`` feed the ELN 2017 PD blood criterion,
    ``peripheral_blasts_span_days`` the ELN 2022 blood-relapse confirmation.
    """
    rules = rules_for(criteria)
    if previous_response not in (None, NO_PREVIOUS, NOT_EVALUABLE, *RANK):
        raise ValueError(f"previous_response must be one of {[NO_PREVIOUS, *RANK]} or None, "
                         f"not {previous_response!r}")
    raw: dict[str, Any] = {
        "marrow_blasts_pct": marrow_blasts_pct, "marrow_spicules": marrow_spicules,
        "extramedullary_disease": extramedullary_disease, "anc": anc, "platelets": platelets,
        "transfusion_independent": transfusion_independent,
        "baseline_marrow_blasts_pct": baseline_marrow_blasts_pct,
        "peripheral_blasts_pct": peripheral_blasts_pct,
        "previous_response": previous_response or NO_PREVIOUS,
        "baseline_extramedullary_disease": baseline_extramedullary_disease, "wbc": wbc,
        "baseline_peripheral_blasts_abs": baseline_peripheral_blasts_abs,
        "peripheral_blasts_span_days": peripheral_blasts_span_days,
    }
    values = {**raw, **derived_values(raw)}
    ev = evaluate(rules, {v: values.get(v) for v in rules.variables})
    reason = ev.reason
    if marrow_spicules is False and "marrow_spicules" in ev.missing:
        reason = ("not evaluable: aspirate without spicules (marrow_spicules = false) cannot establish "
                  f"a response or its absence (rule {ev.rule_id})")
    return ResponseResult(ev.outcome, ev.rule_id, reason, ev.missing, criteria.partition("@")[0],
                          rules.version, ev.source)


# ---- transfusion independence --------------------------------------------------------------------

def transfusion_independence(
    assessments: ir.Table, transfusions: ir.Table | None, *, window_days: int = 7,
) -> ir.Table:
    """Per assessment: ``transfusion_independent`` = no RBC or platelet transfusion in the window.

    The window is ``[assessment_date - window_days, assessment_date]``, both ends included: with
    the default 7 a transfusion 7 days before (or on the assessment day itself, which may precede
    the blood sample) breaks independence, one 8 days before does not. ``transfusions`` None
    (table not supplied) gives NULL: unknown, never assumed independent. Columns: patient_id,
    assessment_date, n_transfusions_in_window, transfusion_independent.
    """
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 0:
        raise ValueError(f"window_days must be a whole number >= 0, not {window_days!r}")
    a = assessments.select("patient_id", "assessment_date").distinct()
    if transfusions is None:
        return a.mutate(n_transfusions_in_window=ibis.null("int64"),
                        transfusion_independent=ibis.null("boolean"))
    hits = _transfusions_in_window(a, transfusions, window_days)
    j = a.left_join(hits, [a.patient_id == hits._tpid, a.assessment_date == hits._tdate])
    out = j.select("patient_id", "assessment_date", n_transfusions_in_window=j._n.fill_null(0))
    return out.mutate(transfusion_independent=out.n_transfusions_in_window == 0)


def _transfusions_in_window(assessments: ir.Table, transfusions: ir.Table, window_days: int) -> ir.Table:
    """``_tpid``, ``_tdate``, ``_n``: the assessments (of ``assessments``, unique by patient and
    date) with at least one RBC or platelet transfusion in the window, and how many. Only the
    pairs that match are joined and counted (most assessments have none)."""
    # the days are computed once a row, before the join (PostgreSQL would compute them for every
    # pair of rows the join compares: 2.8 x 10^6 pairs for 10^4 patients, 3 s)
    a = evaluated_once(assessments.select("patient_id", "assessment_date",
                                          _aday=assessments.assessment_date.epoch_days()))
    tr = transfusions.filter(transfusions["product"].isin(TRANSFUSION_PRODUCTS))
    tr = evaluated_once(tr.select(_tpid=tr.patient_id, _tday=tr.transfusion_date.epoch_days()))
    j = a.inner_join(tr, [a.patient_id == tr._tpid, tr._tday >= a._aday - window_days, tr._tday <= a._aday])
    return j.group_by(_tpid=j.patient_id, _tdate=j.assessment_date).agg(_n=j._tday.count())


# ---- a cohort ----------------------------------------------------------------------------------

def _optional_table(cohort: CohortLike, name: str) -> ir.Table | None:
    """The table, or None when the bundle did not supply it (a Cohort knows; see ``Cohort.has``)."""
    has = getattr(cohort, "has", None)
    if has is not None and not has(name):
        return None
    try:
        return cohort.table(name)
    except (KeyError, LookupError):
        return None


def _last_before(pre: ir.Table, column: str, out: str) -> ir.Table:
    """Per patient, the value of ``column`` at the last row (of ``pre``) where it is not NULL."""
    have = pre.filter(pre[column].notnull())
    last = have.group_by("patient_id").agg(_last=have.assessment_date.max())
    j = have.inner_join(last, [have.patient_id == last.patient_id, have.assessment_date == last._last])
    return j.select(patient_id=have.patient_id, **{out: have[column]})


def _derived_exprs(col: Mapping[str, ir.Value]) -> dict[str, ir.Value]:
    """Ibis twin of :func:`derived_values` (same formulas, whole table)."""
    pb = col["peripheral_blasts_pct"]
    return {
        "marrow_spicules": ibis.ifelse(col["marrow_spicules"].fill_null(False), ibis.literal(True),
                                       ibis.null("boolean")),
        "marrow_blasts_increase_pts": col["marrow_blasts_pct"] - col["baseline_marrow_blasts_pct"],
        "peripheral_blasts_abs": _blasts_abs_expr(col["wbc"], pb),
    }


def _blasts_abs_expr(wbc: ir.NumericValue, pb: ir.NumericValue) -> ir.FloatingValue:
    return ibis.cases((pb == 0, 0.0), else_=wbc * pb / 100).cast("float64")


def _rank(category: ir.StringValue) -> ir.IntegerValue:
    return ibis.cases(*[(category == c, r) for c, r in RANK.items()], else_=ibis.null("int64"))


def _category(rank: ir.IntegerValue, default: Any) -> ir.StringValue:
    return ibis.cases(*[(rank == r, c) for c, r in RANK.items()], else_=default)


def derive(
    cohort: CohortLike, criteria: str = "study", *, window_days: int = 7, inputs: bool = True
) -> ir.Table:
    """One row per assessment after study day 1 (the first dose), with its response category.

    ``cohort.table(name)`` gives the Ibis tables ``assessments``, ``exposures`` and (optional)
    ``transfusions``; ``cohort.first_dose()``, when the cohort has it, gives study day 1 (the
    study's index drug), else it is the first dose of any drug. Assessments on or before day 1 are
    baseline, not response, and are not returned (patients without a first dose have no rows).
    Baselines are the last non-missing value on or before day 1. Counts are taken from the same
    assessment row as the marrow (no carrying forward).

    Columns: patient_id, assessment_date, first_dose_date, assessment_study_day (day 1 = first
    dose), response, rule_id, missing (';'-separated inputs that left it undecided), criteria,
    criteria_version, then the rule inputs (``OUTPUT_INPUTS``; ``marrow_spicules`` as recorded).
    ``inputs=False`` leaves the rule inputs out (``OUTCOME_COLUMNS`` only; the same rows and
    responses): only what the rules and the history read is carried through the query, which is
    what a reader of the responses alone materialises (a registry's assessments with every input
    are wide, and an engine keeps its intermediate and temporary tables uncompressed).

    Runs on SQL backends with window functions (tested: DuckDB, SQLite; the Polars backend lacks
    the window functions and inequality joins used). The query is kept shallow (few nested
    SELECTs) so that SQLite's parser accepts it with the per-patient summaries stacked on top.
    """
    rules = rules_for(criteria)
    first = _first_doses(cohort).rename(first_dose_date="first_dose")
    raw = cohort.table("assessments")
    j = raw.inner_join(first, "patient_id")
    a = j.select(*[raw[c] for c in ("patient_id", "assessment_date", *RECORDED_INPUTS)],
                 first_dose_date=first.first_dose_date,
                 peripheral_blasts_abs=_blasts_abs_expr(raw.wbc, raw.peripheral_blasts_pct))
    pre = a.filter(a.assessment_date <= a.first_dose_date)
    post = a.filter(a.assessment_date > a.first_dose_date)
    base = _baselines(first, pre)
    transfusions = _optional_table(cohort, "transfusions")

    # layer 1: recorded + baseline + transfusion + derived inputs. Transfusion independence
    # joins the (few) assessments with a transfusion in the window back by equality; a semi and
    # an anti join with the window's inequalities would be a nested loop on SQLite (quadratic:
    # 25 minutes for 10^4 patients instead of 20 s).
    post = _with_transfusion_independence(post, transfusions, window_days)
    j = post.left_join(base, post.patient_id == base._bpid)
    col: dict[str, ir.Value] = {c: post[c] for c in ("patient_id", "assessment_date", *RECORDED_INPUTS)}
    col.update(baseline_marrow_blasts_pct=base.baseline_marrow_blasts_pct,
               baseline_extramedullary_disease=base.baseline_extramedullary_disease,
               baseline_peripheral_blasts_abs=base.baseline_peripheral_blasts_abs,
               transfusion_independent=post.transfusion_independent)
    derived = _derived_exprs(col)
    col["marrow_spicules_recorded"] = col.pop("marrow_spicules")
    layer1 = {**col, **derived, "first_dose_date": post.first_dose_date,
              "_day": post.assessment_date.epoch_days(),
              "previous_response": ibis.literal(NO_PREVIOUS),
              "peripheral_blasts_span_days": ibis.null("float64")}
    if not inputs:  # the keys, the rules' inputs and the blood blasts (the history reads them)
        wanted = {*_KEYS, *rules.variables, "peripheral_blasts_pct"}
        layer1 = {k: v for k, v in layer1.items() if k in wanted}
    t = j.select(**layer1)

    # layer 2: pass 1, the response without history (relapse rules cannot hold)
    t = t.mutate(_outcome1=compile_rules(rules, t).outcome)

    # layers 3-4: history from pass 1 (relapse never replaces a remission category, so the
    # remission dates and best responses of pass 1 are final). Per-patient aggregates joined by
    # equality, not window functions over every assessment (each window sorts all rows by patient
    # and day: several times dearer than the whole of pass 1). Every join here is an equality so
    # that SQLite indexes it (it has no hash join).
    remission_set = remission_categories(rules) or ("",)
    remission = t._outcome1.isin(remission_set).fill_null(False)
    has_pb = (t.peripheral_blasts_pct > 0).fill_null(False)
    per = t.group_by(_ppid=t.patient_id).agg(
        **{f"_first_{c}": t._day.min(where=t._outcome1 == c) for c in RANK},
        _first_remission=t._day.min(where=remission),
        _first_pb=t._day.min(where=has_pb),
    )
    j = t.inner_join(per, t.patient_id == per._ppid)
    # best earlier response: the best category whose first assessment came before this one
    previous = ibis.cases(*[(j[f"_first_{c}"] < j._day, ibis.literal(c)) for c in RANK],
                          else_=ibis.literal(NO_PREVIOUS))
    keep = [c for c in t.columns if c not in ("previous_response", "peripheral_blasts_span_days")]
    j = j.select(*keep, "_first_remission", "_first_pb", previous_response=previous)
    t = _with_blasts_span(j, keep, remission_set)

    # layer 5: pass 2, with history; the rule set's CASE once per row, three outputs read it
    t = apply_rules(rules, t, outcome="_response", rule_id="_rule", missing="_missing")
    shown = [*OUTPUT_INPUTS, *(v for v in rules.variables if v not in OUTPUT_INPUTS)] if inputs else []
    return t.select(
        "patient_id", "assessment_date", "first_dose_date",
        assessment_study_day=(t._day - t.first_dose_date.epoch_days() + 1).cast("int64"),
        response=t._response, rule_id=t._rule, missing=t._missing,
        criteria=ibis.literal(criteria.partition("@")[0]), criteria_version=ibis.literal(rules.version),
        **{v: t.marrow_spicules_recorded if v == "marrow_spicules" else t[v] for v in shown},
    )


def _with_transfusion_independence(assessments: ir.Table, transfusions: ir.Table | None,
                                   window_days: int) -> ir.Table:
    """``assessments`` (unique by patient and date) with ``transfusion_independent``, as in
    :func:`transfusion_independence` (NULL when the bundle has no transfusions table)."""
    if transfusions is None:
        return assessments.mutate(transfusion_independent=ibis.null("boolean"))
    a = assessments
    hits = _transfusions_in_window(a, transfusions, window_days)  # only assessments with one or more
    j = a.left_join(hits, [a.patient_id == hits._tpid, a.assessment_date == hits._tdate])
    return j.select(*[a[c] for c in a.columns], transfusion_independent=j._n.isnull())


def _baselines(first: ir.Table, pre: ir.Table) -> ir.Table:
    """Per patient with a first dose (``_bpid``): the three baselines (last non-missing value on or
    before day 1), joined per patient once so the assessments are joined with one table."""
    b_marrow = _last_before(pre, "marrow_blasts_pct", "baseline_marrow_blasts_pct")
    b_emd = _last_before(pre, "extramedullary_disease", "baseline_extramedullary_disease")
    b_pb = _last_before(pre, "peripheral_blasts_abs", "baseline_peripheral_blasts_abs")
    j = (first.left_join(b_marrow, first.patient_id == b_marrow.patient_id)
         .left_join(b_emd, first.patient_id == b_emd.patient_id)
         .left_join(b_pb, first.patient_id == b_pb.patient_id))
    return j.select(_bpid=first.patient_id, baseline_marrow_blasts_pct=b_marrow.baseline_marrow_blasts_pct,
                    baseline_extramedullary_disease=b_emd.baseline_extramedullary_disease,
                    baseline_peripheral_blasts_abs=b_pb.baseline_peripheral_blasts_abs)


def _with_blasts_span(j: ir.Table, keep: list[str], remission: tuple[str, ...]) -> ir.Table:
    """``j`` (assessments with ``_first_remission`` and ``_first_pb``, the patient's first days
    with a remission and with peripheral blasts) with ``peripheral_blasts_span_days``: days since
    the first blood sample with blasts in this episode (NULL without blasts). Before the first
    remission that is the patient's first; from it on, the first since the last remission
    assessment on or before this day (an episode starts at each remission assessment).

    The rows are split in two and stacked again (no join back): only the rows that define or read
    an episode (remission, or blasts, from the first remission on) go through the window functions
    (a running maximum of the remission day, then the first day with blasts per patient and
    episode); the others take the patient's first day with blasts."""
    has_pb = (j.peripheral_blasts_pct > 0).fill_null(False)
    after = (j._day >= j._first_remission).fill_null(False)
    is_rem = j._outcome1.isin(remission).fill_null(False)
    span = (j._day - j._first_pb).cast("float64")
    plain = j.filter(~(after & has_pb)).select(
        *keep, "previous_response",
        peripheral_blasts_span_days=ibis.ifelse(has_pb, span, ibis.null("float64")))
    s = j.filter(after, is_rem | has_pb).select(
        *keep, "previous_response", _has_pb=has_pb,
        _rem_day=ibis.ifelse(is_rem, j._day, ibis.null("int64")),
        _pb_day=ibis.ifelse(has_pb, j._day, ibis.null("int64")))
    s = s.mutate(_since=s._rem_day.max().over(ibis.window(group_by="patient_id", order_by="_day",
                                                           rows=(None, 0))))
    s = s.mutate(_episode_first_pb=s._pb_day.min().over(ibis.window(group_by=["patient_id", "_since"])))
    s = s.filter(s._has_pb)
    episode = s.select(*keep, "previous_response",
                       peripheral_blasts_span_days=(s._day - s._episode_first_pb).cast("float64"))
    return plain.union(episode, distinct=False)


# ---- per patient -------------------------------------------------------------------------------

def best_response(responses: ir.Table, landmark_days: int | None = None) -> ir.Table:
    """Per patient in ``responses`` (from :func:`derive`): the best category and its first date.

    Order: cr > crh > cri > mlfs > pr > sd / nr > pd > relapse (see ``RANK``); ``not_evaluable``
    assessments are ignored unless all of a patient's are, then the best is ``not_evaluable``.
    ``landmark_days``: only assessments up to that study day count (the study definition's
    response landmark; None: all). Columns: patient_id, best_response, best_response_date (NULL
    when not evaluable), n_assessments, n_evaluable, and ``possibly_better_response``: the best
    category that an assessment which could not be evaluated might have met, where it is better
    than ``best_response`` (NULL otherwise). Then the best response is a lower bound: e.g. without a
    transfusions table every marrow in remission is not evaluable under criteria that require
    transfusion independence, and the patient's best response is that of the other marrows.
    Assessments without a marrow result (``MARROW_INPUT`` missing: a blood count) do not count:
    every category better than no response needs the marrow.
    An assessment that is not evaluable names the first rule it could not decide (``rule_id``;
    the rules before it did not hold): it might have met that rule's category or a later rule's.
    """
    t = _ranked(responses, landmark_days)
    return t.group_by("patient_id").agg(
        best_response=_category(t._best.min(), ibis.literal(NOT_EVALUABLE)),
        best_response_date=t.assessment_date.min(where=t._rank == t._best),
        n_assessments=t.patient_id.count(),
        n_evaluable=t._rank.count(),
        possibly_better_response=_category(t._possible.min(where=t._better), ibis.null("string")),
    )


def possibly_better_assessments(responses: ir.Table, landmark_days: int | None = None) -> ir.Table:
    """The assessments behind :func:`best_response`'s ``possibly_better_response``: those that could
    not be evaluated and might have met a category better than the patient's best response.

    Columns: patient_id, assessment_date, assessment_study_day, rule_id (the first rule it could
    not decide), missing (the inputs that left it undecided), possible_response (the best category
    it might have met)."""
    t = _ranked(responses, landmark_days)
    t = t.filter(t._better)
    return t.select("patient_id", "assessment_date", "assessment_study_day", "rule_id", "missing",
                    possible_response=_category(t._possible, ibis.null("string")))


def _ranked(responses: ir.Table, landmark_days: int | None) -> ir.Table:
    """``responses`` (up to the landmark) with ``_rank`` (of the response; NULL when not evaluable),
    ``_best`` (the patient's best rank), ``_possible`` (for a marrow assessment not evaluable: the
    best rank it might have had) and ``_better`` (that rank is better than the patient's best)."""
    if landmark_days is not None:
        responses = responses.filter(responses.assessment_study_day <= landmark_days)
    rank = _rank(responses.response)
    # a blood count without a marrow result is not a response assessment left undecided: every
    # category better than no response needs the marrow blasts
    no_marrow = ibis.literal(";").concat(responses.missing.fill_null(""), ";").contains(f";{MARROW_INPUT};")
    possible = ibis.cases((responses.response != NOT_EVALUABLE, ibis.null("int64")),
                          (no_marrow, ibis.null("int64")), else_=_possible_rank(responses.rule_id))
    t = responses.mutate(_rank=rank, _possible=possible,
                         _best=rank.min().over(ibis.window(group_by="patient_id")))
    return t.mutate(_better=(t._possible < t._best.fill_null(len(RANK) + 1)).fill_null(False))


@functools.cache
def _possible_ranks() -> tuple[tuple[str, int], ...]:
    """(rule id, the best rank of its category and of every later rule's in its criteria set), for
    every response rule: what an assessment left undecided at that rule might have been."""
    out = []
    for rules in load_rules(RULE_FILE).values():
        ranks = [RANK.get(r.outcome, len(RANK) + 1) for r in rules.rules]
        out += [(r.rule_id, min(ranks[k:])) for k, r in enumerate(rules.rules)]
    return tuple(out)


def _possible_rank(rule_id: ir.StringValue) -> ir.IntegerValue:
    return ibis.cases(*[(rule_id == r, k) for r, k in _possible_ranks()], else_=ibis.null("int64"))


def first_cr(responses: ir.Table, categories: Sequence[str] = ("cr",)) -> ir.Table:
    """Per patient in ``responses``: the date (and study day) of the first assessment in ``categories``.

    Columns: patient_id, first_dose_date, first_cr_date, first_cr_study_day (NULL: no CR).
    """
    hit = responses.response.isin(tuple(categories)).fill_null(False)
    return responses.group_by("patient_id").agg(
        first_dose_date=responses.first_dose_date.min(),
        first_cr_date=responses.assessment_date.min(where=hit),
        first_cr_study_day=responses.assessment_study_day.min(where=hit),
    )
