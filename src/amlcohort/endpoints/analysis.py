"""The analysis table: one row per patient and parameter, in the spirit of CDISC ADaM ADTTE.

Columns: ``patient_id``, ``paramcd``, ``param``, ``criteria`` (response criteria used),
``startdt``, ``adt`` (analysis date), ``aval`` (days from ``startdt`` to ``adt``: elapsed days,
so an event on the day of the first dose has 0), ``avalc`` (a category, for non-time parameters),
``cnsr`` (0 = event, 1 = censored; NULL for non-time parameters), ``evntdesc``, ``cnsdtdsc``.

Parameters (``paramcd``):

========  ===================================================================================
DAYSCR    days from study day 1 (the first dose) to the first CR; censored at the last response
          assessment for a patient without CR (CRs after the study's response landmark do not count)
BESTRESP  best response (``avalc``) and its first date
CRDUR     duration of the first CR: to relapse or death, censored at the last date known alive
EFS       event-free survival from the first dose (ELN 2017): induction failure is an event on
          day 1 (``aval`` 0), then relapse or death; censored at the last date known alive
OS        overall survival from the first dose: death, censored at the last date known alive
TRTDUR    days on the index drug (any study drug when the study names none), first dose to last
          dose inclusive; ``avalc`` the reason it stopped
STOPRULE  only for a study with a protocol: the protocol's stopping rule in retrospect (``avalc``
          stop/continue/not_evaluable; ``aval`` the highest marrow blast % in weeks 2-3, days 9-22)
========  ===================================================================================

Events after the data cut-off (bundle metadata) are not counted: such times are censored at
the cut-off. The last date known alive is the latest date of any record of the patient (events,
assessments, exposures), capped at the cut-off.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from amlcohort.criteria import response as resp
from amlcohort.criteria.engine import NOT_EVALUABLE, compile_rules, ruleset
from amlcohort.endpoints.blast_patterns import WEEKS_2_3, baseline_marrow, marrows
from amlcohort.endpoints.key_dates import key_dates
from amlcohort.io.cohort import Cohort

COLUMNS = {
    "patient_id": "string",
    "paramcd": "string",
    "param": "string",
    "criteria": "string",
    "startdt": "date",
    "adt": "date",
    "aval": "float64",
    "avalc": "string",
    "cnsr": "int64",
    "evntdesc": "string",
    "cnsdtdsc": "string",
}


def _row(t: ir.Table, paramcd: str, param: str, criteria: str, **values: ir.Value) -> ir.Table:
    out = {
        "patient_id": t.patient_id,
        "paramcd": ibis.literal(paramcd),
        "param": ibis.literal(param),
        "criteria": ibis.literal(criteria),
    }
    for name, typ in COLUMNS.items():
        if name in out:
            continue
        v = values.get(name)
        out[name] = ibis.null(typ) if v is None else v.cast(typ)
    return t.select(**out)


def _days(a: ir.DateValue, b: ir.DateValue) -> ir.FloatingValue:
    return a.delta(b, unit="day").cast("float64")


def analysis_table(cohort: Cohort, criteria: str | None = None) -> ir.Table:
    """The per-patient analysis table (see the module docstring), as one Ibis expression.

    ``criteria``: the response criteria set (default: the study definition's).
    """
    study = cohort.study
    criteria = criteria or study.criteria
    cutoff = ibis.literal(cohort.metadata.cutoff_date, "date")
    # Materialised (a temporary table on the backend): the response derivation is a deep query,
    # and SQLite cannot parse it nested again under every parameter. A cohort that keeps its
    # intermediates (the report's) derives the responses and key dates once for every reader.
    # Only the outcome columns are kept: the rule inputs are not read here.
    cached = getattr(cohort, "cached_responses", None)
    responses = cached(criteria) if callable(cached) else resp.derive(cohort, criteria, inputs=False).cache()
    landmark = study.response_landmark_days
    by_landmark = (
        responses if landmark is None else responses.filter(responses.assessment_study_day <= landmark)
    )
    # the per-patient key dates are the protocol's too (one definition: endpoints.key_dates)
    kd = key_dates(cohort, criteria=criteria, responses=None if callable(cached) else by_landmark)
    best = resp.best_response(by_landmark)
    last_assess = responses.group_by("patient_id").aggregate(last_assessment=responses.assessment_date.max())
    # One flat join (no nested projections: SQLite's parser has a depth limit).
    base = kd.left_join(best, "patient_id").left_join(last_assess, "patient_id")
    base = base.select(
        "patient_id",
        "first_dose",
        "first_cr_date",
        "best_response",
        "best_response_date",
        "last_assessment",
        "last_alive",
        "death_date",
        "relapse_date",
    )
    b = base.cache()  # one row per patient with every date the parameters need
    had_cr = b.first_cr_date.notnull()
    censor = b.last_alive

    dayscr = _row(
        b,
        "DAYSCR",
        f"Days from the {study.day1_text} to first CR",
        criteria,
        startdt=b.first_dose,
        adt=ibis.ifelse(had_cr, b.first_cr_date, b.last_assessment),
        aval=_days(ibis.ifelse(had_cr, b.first_cr_date, b.last_assessment), b.first_dose),
        cnsr=ibis.ifelse(had_cr, 0, 1),
        evntdesc=ibis.ifelse(had_cr, ibis.literal("first CR"), None),
        cnsdtdsc=ibis.ifelse(had_cr, None, ibis.literal("no CR: last response assessment")),
    )
    bestresp = _row(
        b,
        "BESTRESP",
        "Best response",
        criteria,
        startdt=b.first_dose,
        adt=b.best_response_date,
        avalc=b.best_response.fill_null(NOT_EVALUABLE),
    )

    crd = b.filter(had_cr)
    crd_end = ibis.coalesce(crd.relapse_date, crd.death_date)
    crdur = _row(
        crd,
        "CRDUR",
        "Duration of first CR",
        criteria,
        startdt=crd.first_cr_date,
        adt=ibis.coalesce(crd_end, crd.last_alive),
        aval=_days(ibis.coalesce(crd_end, crd.last_alive), crd.first_cr_date),
        cnsr=ibis.ifelse(crd_end.notnull(), 0, 1),
        evntdesc=ibis.cases(
            (crd.relapse_date.notnull(), "relapse"),
            (crd.death_date.notnull(), "death"),
            else_=ibis.null("string"),
        ),
        cnsdtdsc=ibis.ifelse(crd_end.isnull(), ibis.literal("last date known alive"), None),
    )

    efs_event = ibis.cases((~had_cr, b.first_dose), else_=ibis.coalesce(b.relapse_date, b.death_date))
    efs = _row(
        b,
        "EFS",
        "Event-free survival",
        criteria,
        startdt=b.first_dose,
        adt=ibis.coalesce(efs_event, censor),
        aval=_days(ibis.coalesce(efs_event, censor), b.first_dose),
        cnsr=ibis.ifelse(efs_event.notnull(), 0, 1),
        evntdesc=ibis.cases(
            (~had_cr, "induction failure (day 1)"),
            (b.relapse_date.notnull(), "relapse"),
            (b.death_date.notnull(), "death"),
            else_=ibis.null("string"),
        ),
        cnsdtdsc=ibis.ifelse(efs_event.isnull(), ibis.literal("last date known alive"), None),
    )

    os_ = _row(
        b,
        "OS",
        f"Overall survival from the {study.day1_text}",
        criteria,
        startdt=b.first_dose,
        adt=ibis.coalesce(b.death_date, censor),
        aval=_days(ibis.coalesce(b.death_date, censor), b.first_dose),
        cnsr=ibis.ifelse(b.death_date.notnull(), 0, 1),
        evntdesc=ibis.ifelse(b.death_date.notnull(), ibis.literal("death"), None),
        cnsdtdsc=ibis.ifelse(b.death_date.isnull(), ibis.literal("last date known alive"), None),
    )

    ex = cohort.table("exposures")
    if study.index_drug is not None:
        ex = ex.filter(ex.drug == study.index_drug)
    ex = ex.mutate(end=ibis.least(ex.end_date.fill_null(cutoff), cutoff))
    last_dose = ex.group_by("patient_id").aggregate(
        start=ex.start_date.min(), end=ex.end.max(), why=ex.end_reason.argmax(ex.end)
    )
    trtdur = _row(
        last_dose,
        "TRTDUR",
        f"Days on {study.index_drug or 'study treatment'}",
        criteria,
        startdt=last_dose.start,
        adt=last_dose.end,
        aval=_days(last_dose.end, last_dose.start) + 1,
        avalc=last_dose.why.fill_null("ongoing"),
    )

    parts = [dayscr, bestresp, crdur, efs, os_, trtdur]
    if study.protocol is not None:
        parts.append(stopping_rule(cohort, criteria))
    return ibis.union(*parts)


def stopping_rule(cohort: Cohort, criteria: str = "study") -> ir.Table:
    """STOPRULE rows: marrow blasts in weeks 2-3 against the last marrow before the first dose."""
    first = cohort.first_dose()
    baseline = baseline_marrow(cohort)
    m = marrows(cohort)
    weeks = m.filter(m.assessment_study_day.between(*WEEKS_2_3))
    weeks = weeks.group_by("patient_id").aggregate(
        weeks_2_3_max_blasts_pct=weeks.marrow_blasts_pct.max(), fired=weeks.assessment_date.min()
    )
    per = first.left_join(baseline, first.patient_id == baseline.patient_id).left_join(
        weeks, first.patient_id == weeks.patient_id
    )
    per = per.select(
        first.patient_id,
        first.first_dose,
        baseline.baseline_marrow_blasts_pct,
        weeks.weeks_2_3_max_blasts_pct,
        weeks.fired,
    )
    c = compile_rules(ruleset("stopping_rule.csv", "protocol.stopping_rule", "2019"), per)
    desc = (
        ibis.literal("baseline ")
        .concat(per.baseline_marrow_blasts_pct.cast("string"))
        .concat("%, weeks 2-3 max ")
        .concat(per.weeks_2_3_max_blasts_pct.cast("string"))
        .concat("%")
    )
    return _row(
        per,
        "STOPRULE",
        "Stopping rule (blasts in weeks 2-3 above baseline)",
        criteria,
        startdt=per.first_dose,
        adt=per.fired,
        aval=per.weeks_2_3_max_blasts_pct,
        avalc=c.outcome,
        evntdesc=ibis.ifelse(c.outcome == NOT_EVALUABLE, ibis.literal("missing ").concat(c.missing), desc),
    )
