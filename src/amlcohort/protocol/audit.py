"""Adherence audit: every protocol deviation in a cohort, with patient, date, rule and evidence.

Computed with Ibis over the cohort tables (one expression per check, then a union); the rules are
the protocol's (thresholds in its rule CSV, windows in its ``audit`` section). Checks (``rule_id``):

* ``surveillance.<item>`` -- a missed or late assessment: the gap after an assessment (or after
  the phase start) exceeds the item's interval plus its grace days, within the phase (induction:
  study day 1 to CR or leaving the protocol; post_cr: CR to relapse, HSCT or death; open phases
  end at the data cut-off). One row per gap; ``date`` = the due date, ``days_late`` = days from
  the due date to the next assessment (or the phase end, when there was none).
* ``stopping_rule`` -- the stopping rule fired (first weeks 2-3 marrow with blasts above the
  pre-treatment marrow) and the index drug went on beyond ``stopping_rule_grace_days``.
* ``rbc_transfusion`` / ``platelet_transfusion`` -- an on-protocol count crossing the threshold
  with no transfusion of that product on the day or within ``transfusion_window_days`` after.
* ``g_csf`` / ``antifungal_prophylaxis`` -- an on-protocol ANC below the rule's threshold with no
  such supportive care active on the day (or started within ``supportive_care_window_days``).
* per drug of the protocol (``<drug>`` its name): ``dose.<drug>_bsa`` (an mg/m² drug: recorded
  dose not the protocol's mg/m², or an absolute dose off dose x BSA by more than
  ``dose_tolerance_pct``), ``dose.<drug>_level`` (a flat dose with dose levels: daily dose not a
  level), ``dose.<drug>_dose`` (a flat dose without levels: off by more than the tolerance),
  ``dose.<drug>_frequency`` (drugs without dose levels), ``dose.<drug>_duration`` (days given
  outside ``duration_days``), ``dose.<drug>_missing`` (a patient of the drug's arms without it).
  For the embedded study: ``dose.cytarabine_bsa`` (25 mg/m²), ``dose.cytarabine_duration``
  (10-14 days), ``dose.sorafenib_level``, ...
* ``dose_modification.skin_continued`` (the dose-modification drug not interrupted/discontinued
  after the skin rule fired) and ``dose_modification.skin_not_reduced`` (resumed without going one
  level lower).

Checks whose rule set the protocol file does not name are not run.
On-protocol = study day 1 to the end of the patient's protocol (last phase end, or the cut-off).
This is research software for protocol documentation: not a medical device.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from amlcohort.criteria.engine import apply_rules, backend_name
from amlcohort.engines.order import in_order
from amlcohort.io.cohort import Cohort
from amlcohort.protocol.definition import FREQUENCIES, Drug, Protocol, SurveillanceItem, study_protocol
from amlcohort.protocol.dosing import bsa_dose_table
from amlcohort.protocol.recommend import ANY_DRUG, skin_events, stopping_rule_marrows
from amlcohort.protocol.surveillance import abnormal_counts, done_expr
from amlcohort.protocol.timeline import (
    bound,
    days_between,
    index_drug,
    index_exposures,
    interval_expr,
    periods,
    phase_window,
)

DEVIATION_COLUMNS = {
    "patient_id": "string",
    "date": "date",
    "study_day": "int64",
    "rule_id": "string",
    "category": "string",
    "expected": "string",
    "evidence": "string",
    "days_late": "int64",
    "source": "string",
}


def _s(x: ir.Value) -> ir.StringValue:
    if x.type().is_date() or x.type().is_timestamp():
        return x.cast("date").strftime("%Y-%m-%d").fill_null("-")
    return x.cast("string").fill_null("-")


def _num(x: ir.Value) -> ir.StringValue:
    """A number as text without a trailing ``.0`` (DuckDB prints 6.0 as 6.0, 46.0 as 46.0)."""
    return x.cast("string").re_replace(r"\.0$", "").fill_null("-")


def _shape(t: ir.Table, first_dose: ir.DateValue, **v: ir.Value) -> ir.Table:
    out = {}
    for name, typ in DEVIATION_COLUMNS.items():
        if name == "study_day":
            val = v.get("study_day")
            if val is None:
                d = days_between(v["date"], first_dose)
                val = ibis.ifelse(d >= 0, d + 1, d)
            out[name] = val.cast(typ)
        else:
            val = v.get(name)
            out[name] = (
                ibis.null(typ)
                if val is None
                else (ibis.literal(val) if isinstance(val, str) else val).cast(typ)
            )
    return t.select(**out)


def _concat(*parts: ir.Value | str) -> ir.StringValue:
    out = ibis.literal("")
    for p in parts:
        out = out.concat(ibis.literal(p) if isinstance(p, str) else p)
    return out


# ---- surveillance -----------------------------------------------------------------------------


def _surveillance(cohort: Cohort, per: ir.Table, p: Protocol, item: SurveillanceItem) -> ir.Table:
    a = cohort.table("assessments")
    start, end = phase_window(per, item.phase)
    ph = per.filter(start.notnull()).select("patient_id", "first_dose", start=start, end=end)
    q = a.filter(done_expr(a, item)).select("patient_id", d=a.assessment_date)
    if item.trigger is None:
        inphase = ph.inner_join(q, [ph.patient_id == q.patient_id, q.d >= ph.start, q.d <= ph.end]).select(
            ph.patient_id, ph.first_dose, ph.start, ph.end, q.d
        )
        anchors = ibis.union(ph.mutate(d=ph.start), inphase, distinct=True)
        anchors = anchors.mutate(nxt=anchors.d.lead().over(ibis.window(group_by="patient_id", order_by="d")))
        kind = ibis.literal(f"last {item.what.lower()}")
        anchor_is_start = anchors.d == anchors.start
        anchor_text = ibis.ifelse(anchor_is_start, ibis.literal("phase start (" + item.phase + ")"), kind)
    else:
        ab = abnormal_counts(a, p)
        j = ph.inner_join(ab, [ph.patient_id == ab.patient_id, ab.d >= ph.start, ab.d <= ph.end]).select(
            ph.patient_id, ph.first_dose, ph.start, ph.end, ab.d
        )
        k = j.left_join(q, [j.patient_id == q.patient_id, q.d >= j.d, q.d <= j.end]).select(
            j.patient_id, j.first_dose, j.start, j.end, j.d, marrow=q.d
        )
        k = k.group_by(["patient_id", "first_dose", "start", "end", "d"]).aggregate(nxt=k.marrow.min())
        first_of_run = k.group_by(
            ["patient_id", "first_dose", "start", "end", k.nxt.fill_null(dt.date(9999, 1, 1)).name("run")]
        ).aggregate(d=k.d.min(), nxt=k.nxt.min())
        anchors = first_of_run.drop("run")
        anchor_text = ibis.literal("abnormal blood count")
    anchor_day = (days_between(anchors.d, anchors.first_dose) + 1).cast("int64")
    keep = ibis.literal(True)
    if item.anchor_study_day_min is not None:
        keep = keep & (anchor_day >= item.anchor_study_day_min)
    if item.anchor_study_day_max is not None:
        keep = keep & (anchor_day <= item.anchor_study_day_max)
    due = interval_expr(anchors.d, item.interval_days, item.interval_months)
    limit = interval_expr(due, days=item.grace_days)
    actual = ibis.coalesce(anchors.nxt, anchors.end)
    late = anchors.mutate(_due=due, _limit=limit, _actual=actual, _keep=keep)
    late = late.filter(late._keep & (late._actual > late._limit))
    evidence = _concat(
        anchor_text,
        " on ",
        _s(late.d),
        "; next: ",
        ibis.ifelse(late.nxt.isnull(), _concat("none until the phase ended on ", _s(late.end)), _s(late.nxt)),
        " (",
        _s(days_between(late._actual, late.d)),
        " days); due ",
        _s(late._due),
        f" (every {item.interval_text}, +{item.grace_days} days grace)",
    )
    return _shape(
        late,
        late.first_dose,
        patient_id=late.patient_id,
        date=late._due,
        rule_id=f"surveillance.{item.id}",
        category="surveillance",
        expected=f"{item.what} every {item.interval_text} ({item.phase})",
        evidence=evidence,
        days_late=days_between(late._actual, late._due),
        source=item.source,
    )


# ---- stopping rule ------------------------------------------------------------------------------


def _stopping_rule(cohort: Cohort, p: Protocol) -> ir.Table:
    sr = stopping_rule_marrows(cohort, p)
    fired = sr.filter(sr.outcome == "stop")
    first = fired.group_by("patient_id").aggregate(
        fired=fired.assessment_date.min(),
        day=fired.assessment_study_day.min(),
        blasts=fired.weeks_2_3_max_blasts_pct.argmin(fired.assessment_date),
        baseline=fired.baseline_marrow_blasts_pct.min(),
    )
    end = ibis.literal(bound(cohort), "date")
    ix = index_exposures(cohort, p)
    drug = index_drug(cohort, p) or ANY_DRUG
    last = ix.group_by("patient_id").aggregate(last_dose=ix.end_date.fill_null(end).max())
    j = first.join(last, "patient_id")
    grace = p.audit.stopping_rule_grace_days
    j = j.filter(j.last_dose > interval_expr(j.fired, days=grace))
    rs = p.ruleset("stopping_rule")
    evidence = _concat(
        "weeks 2-3 marrow blasts ",
        _num(j.blasts),
        "% on ",
        _s(j.fired),
        " (study day ",
        _s(j.day),
        ") > pre-treatment ",
        _num(j.baseline),
        f"%; {drug} continued to ",
        _s(j.last_dose),
        " (",
        _s(days_between(j.last_dose, j.fired)),
        " days later)",
    )
    return _shape(
        j,
        ibis.literal(None, "date"),
        patient_id=j.patient_id,
        date=j.fired,
        study_day=j.day,
        rule_id="stopping_rule",
        category="stopping_rule",
        expected=f"stop {drug} within {grace} day(s) ({rs.name} v{rs.version}: {rs.rules[0].describe()})",
        evidence=evidence,
        days_late=days_between(j.last_dose, j.fired),
        source=rs.rules[0].source,
    )


# ---- thresholds -------------------------------------------------------------------------------


def _on_protocol_assessments(cohort: Cohort, per: ir.Table) -> ir.Table:
    a = cohort.table("assessments")
    pe = per.select("patient_id", "first_dose", until=per.protocol_end.fill_null(per.bound))
    j = a.inner_join(
        pe, [a.patient_id == pe.patient_id, a.assessment_date >= pe.first_dose, a.assessment_date <= pe.until]
    )
    return j.select(a, pe.first_dose).mutate(
        symptomatic_anemia=ibis.null("boolean"), bleeding=ibis.null("boolean")
    )


def _transfusion(
    cohort: Cohort, per: ir.Table, p: Protocol, key: str, product: str, value: str, unit: str, label: str
) -> ir.Table:
    a = _on_protocol_assessments(cohort, per)
    a = a.filter(a[value].notnull())
    rs = p.ruleset(key)
    action = next(o for o in ("transfuse_rbc", "transfuse_platelets") if o in {r.outcome for r in rs.rules})
    a = apply_rules(rs, a, outcome="_action", rule_id="_rule", missing=None)
    hit = a.filter(a._action == action).drop("_action")
    tr = cohort.table("transfusions")
    tr = tr.filter(tr.product == product)
    w = p.audit.transfusion_window_days
    j = hit.left_join(
        tr,
        [
            hit.patient_id == tr.patient_id,
            tr.transfusion_date >= hit.assessment_date,
            tr.transfusion_date <= interval_expr(hit.assessment_date, days=w),
        ],
    )
    j = j.select(
        hit.patient_id, hit.assessment_date, hit.first_dose, hit[value], hit._rule, got=tr.transfusion_date
    )
    g = j.group_by(["patient_id", "assessment_date", "first_dose", value, "_rule"]).aggregate(n=j.got.count())
    miss = g.filter(g.n == 0)
    crit = " OR ".join(f"{r.rule_id}: {r.describe()}" for r in rs.rules if r.outcome == action)
    source = next(r.source for r in rs.rules if r.outcome == action)
    return _shape(
        miss,
        miss.first_dose,
        patient_id=miss.patient_id,
        date=miss.assessment_date,
        rule_id=key,
        category="transfusion",
        expected=f"{label} transfusion on the day or within {w} day(s) ({rs.name} v{rs.version}: {crit})",
        evidence=_concat(
            value,
            " ",
            _num(miss[value]),
            f" {unit} on ",
            _s(miss.assessment_date),
            " (rule ",
            miss._rule,
            f"); no {label} transfusion recorded to ",
            _s(interval_expr(miss.assessment_date, days=w)),
        ),
        source=source,
    )


def _supportive(cohort: Cohort, per: ir.Table, p: Protocol, key: str, label: str) -> ir.Table:
    a = _on_protocol_assessments(cohort, per)
    a = a.filter(a.anc.notnull())
    rs = p.ruleset(key)
    action = next(iter({r.outcome for r in rs.rules} & {"give_g_csf", "give_antifungal_prophylaxis"}))
    a = apply_rules(rs, a, outcome="_action", rule_id="_rule", missing=None)
    hit = a.filter(a._action == action).drop("_action")
    sc = cohort.table("supportive_care")
    sc = sc.filter(sc.category == key)
    w = p.audit.supportive_care_window_days
    end = ibis.literal(bound(cohort), "date")
    j = hit.left_join(
        sc,
        [
            hit.patient_id == sc.patient_id,
            sc.start_date <= interval_expr(hit.assessment_date, days=w),
            sc.end_date.fill_null(end) >= hit.assessment_date,
        ],
    )
    j = j.select(hit.patient_id, hit.assessment_date, hit.first_dose, hit.anc, hit._rule, got=sc.start_date)
    g = j.group_by(["patient_id", "assessment_date", "first_dose", "anc", "_rule"]).aggregate(n=j.got.count())
    miss = g.filter(g.n == 0)
    rule = next(r for r in rs.rules if r.outcome == action)
    return _shape(
        miss,
        miss.first_dose,
        patient_id=miss.patient_id,
        date=miss.assessment_date,
        rule_id=key,
        category="supportive_care",
        expected=f"{label} active on the day or started within {w} day(s) ({rs.name} v{rs.version}: "
        f"{rule.rule_id}: {rule.describe()})",
        evidence=_concat(
            "ANC ", _num(miss.anc), " x10^9/L on ", _s(miss.assessment_date), f"; no {label} recorded"
        ),
        source=rule.source,
    )


# ---- doses ------------------------------------------------------------------------------------


def _freq_daily(frequency: ir.StringValue) -> ir.IntegerValue:
    return ibis.cases(*[(frequency == k, v) for k, v in FREQUENCIES.items()], else_=ibis.null("int64"))


def _doses(cohort: Cohort, per: ir.Table, p: Protocol) -> ir.Table | None:
    parts = [t for drug in p.drugs for t in _drug_doses(cohort, per, p, drug)]
    return ibis.union(*parts) if parts else None


def _drug_doses(cohort: Cohort, per: ir.Table, p: Protocol, drug: Drug) -> list[ir.Table]:
    """The dose checks of one drug: dose (BSA, flat or dose level), frequency, duration, missing."""
    end = ibis.literal(bound(cohort), "date")
    ex = cohort.table("exposures")
    pts = cohort.table("patients")
    fd = per.select("patient_id", "first_dose")
    name = drug.name
    dx = ex.filter(ex.drug == name)
    tol = p.dosing.dose_tolerance_pct
    parts: list[ir.Table] = []
    if drug.bsa_dosed:
        doses = bsa_dose_table(pts, p, drug=name)
        j = dx.join(doses, "patient_id").join(fd, "patient_id")
        off = ibis.cases(
            (j.dose_unit == "mg/m2", (j.dose - drug.dose).abs() > 1e-9),
            (j.dose_unit == "mg", (j.dose - j.dose_mg).abs() > j.dose_mg * tol / 100.0),
            else_=True,
        ).fill_null(True)
        bad = j.filter(off)
        parts.append(
            _shape(
                bad,
                bad.first_dose,
                patient_id=bad.patient_id,
                date=bad.start_date,
                rule_id=f"dose.{name}_bsa",
                category="dose",
                expected=f"{drug.dose:g} mg/m² x BSA ({p.dosing.bsa_formula}, {p.dosing.bsa_decimals} "
                f"decimals), rounded to {p.dosing.dose_rounding_mg:g} mg; absolute doses within {tol:g}%",
                evidence=_concat(
                    "recorded ",
                    _num(bad.dose),
                    " ",
                    bad.dose_unit,
                    "; height ",
                    _num(bad.height_cm),
                    " cm, weight ",
                    _num(bad.weight_kg),
                    " kg: BSA ",
                    _s(bad.bsa_m2),
                    " m², dose ",
                    _num(bad.dose_mg),
                    " mg",
                ),
                source=f"{drug.source}; {p.dosing.source}",
            )
        )
    elif drug.dose_levels:
        lv = dx.join(fd, "patient_id")
        daily = lv.dose * _freq_daily(lv.frequency)
        levels = [x.daily_mg for x in drug.dose_levels]
        bads = lv.mutate(daily=daily).filter(
            (lv.dose_unit != drug.unit) | ~daily.isin(levels).fill_null(False)
        )
        parts.append(
            _shape(
                bads,
                bads.first_dose,
                patient_id=bads.patient_id,
                date=bads.start_date,
                rule_id=f"dose.{name}_level",
                category="dose",
                expected=f"{name} at a dose level: "
                + "; ".join(f"{x.text} ({x.daily_mg:g} mg/day)" for x in drug.dose_levels),
                evidence=_concat(
                    "recorded ",
                    _num(bads.dose),
                    " ",
                    bads.dose_unit,
                    " ",
                    bads.frequency,
                    " (",
                    _num(bads.daily),
                    " mg/day)",
                ),
                source=f"{drug.source}; {drug.dose_levels_source}",
            )
        )
    else:
        fx = dx.join(fd, "patient_id")
        off = ibis.ifelse(
            fx.dose_unit == drug.unit, (fx.dose - drug.dose).abs() > drug.dose * tol / 100.0, True
        ).fill_null(True)
        badx = fx.filter(off)
        parts.append(
            _shape(
                badx,
                badx.first_dose,
                patient_id=badx.patient_id,
                date=badx.start_date,
                rule_id=f"dose.{name}_dose",
                category="dose",
                expected=f"{name} {drug.dose:g} {drug.unit_text} per administration (within {tol:g}%)",
                evidence=_concat("recorded ", _num(badx.dose), " ", badx.dose_unit),
                source=drug.source,
            )
        )
    if not drug.dose_levels:
        fq = dx.join(fd, "patient_id")
        badf = fq.filter(fq.frequency != drug.frequency)
        parts.append(
            _shape(
                badf,
                badf.first_dose,
                patient_id=badf.patient_id,
                date=badf.start_date,
                rule_id=f"dose.{name}_frequency",
                category="dose",
                expected=f"{name} {drug.frequency}",
                evidence=_concat("recorded frequency ", badf.frequency),
                source=drug.source,
            )
        )
    if drug.min_days is not None or drug.max_days is not None:
        cyd = dx.mutate(days=days_between(dx.end_date.fill_null(end), dx.start_date) + 1)
        dur = (
            cyd.group_by("patient_id")
            .aggregate(days=cyd.days.sum(), start=cyd.start_date.min())
            .join(fd, "patient_id")
        )
        out_of_range = ibis.literal(False)
        if drug.min_days is not None:
            out_of_range = out_of_range | (dur.days < drug.min_days)
        if drug.max_days is not None:
            out_of_range = out_of_range | (dur.days > drug.max_days)
        badd = dur.filter(out_of_range)
        parts.append(
            _shape(
                badd,
                badd.first_dose,
                patient_id=badd.patient_id,
                date=badd.start,
                rule_id=f"dose.{name}_duration",
                category="dose",
                expected=f"{name} for {drug.duration_text}",
                evidence=_concat(f"{name} given on ", _s(badd.days), " days"),
                source=drug.source,
            )
        )
    arm = pts.filter(pts.study_arm.isin(drug.arms)) if drug.arms else pts
    arm = arm.join(fd, "patient_id")
    missing = arm.anti_join(dx, "patient_id")
    arms_text = f"arm(s) {', '.join(drug.arms)}" if drug.arms else "every arm"
    parts.append(
        _shape(
            missing,
            missing.first_dose,
            patient_id=missing.patient_id,
            date=missing.first_dose,
            rule_id=f"dose.{name}_missing",
            category="dose",
            expected=f"{name} in {arms_text}",
            evidence=_concat("arm ", missing.study_arm, f"; no {name} exposure recorded"),
            source=drug.source,
        )
    )
    return parts


# ---- skin toxicity dose modification ----------------------------------------------------------------


def _skin(cohort: Cohort, per: ir.Table, p: Protocol) -> ir.Table:
    assert p.dose_modification is not None
    rs = p.ruleset("skin_dose_modification")
    actions = ("interrupt_then_reduce", "discontinue")
    se = skin_events(cohort, p)
    se = se.mutate(zero_days=ibis.literal(0.0))
    thresholds = [
        c.value
        for r in rs.rules
        for cl in r.clauses
        for c in cl
        if c.variable == "days_unresolved" and c.op in (">=", ">") and isinstance(c.value, float)
    ]
    wait = int(min(thresholds)) if thresholds else 0
    se = apply_rules(rs, se, {"days_unresolved": "zero_days"}, outcome="o0", rule_id="r0", missing=None)
    now = se.o0.isin(actions).fill_null(False)
    later = se.outcome.isin(actions).fill_null(False)
    fire = ibis.cases(
        (now, se.grade_known_date),
        (later, ibis.greatest(se.grade_known_date, interval_expr(se.onset_date, days=wait))),
        else_=ibis.null("date"),
    )
    ev = se.mutate(
        fire=fire, act=ibis.ifelse(now, se.o0, se.outcome), act_rule=ibis.ifelse(now, se.r0, se.rule_id)
    )
    ev = ev.filter(ev.fire.notnull()).join(per.select("patient_id", "first_dose"), "patient_id")
    end = ibis.literal(bound(cohort), "date")
    dm = p.dose_modification
    grace = dm.interruption_grace_days
    ex = cohort.table("exposures")
    sor = ex.filter(ex.drug == dm.drug)
    sor = sor.mutate(daily=sor.dose * _freq_daily(sor.frequency), stop=sor.end_date.fill_null(end))
    until = ibis.ifelse(ev.act == "discontinue", end, ev.resolution_date.fill_null(end))
    ev = ev.mutate(until=until, after=interval_expr(ev.fire, days=grace))
    j = ev.inner_join(
        sor,
        [
            ev.patient_id == sor.patient_id,
            sor.stop > ev.after,
            (sor.start_date < ev.until) | (ev.act == "discontinue"),
        ],
    )
    j = j.select(
        ev.patient_id,
        ev.first_dose,
        ev.term,
        ev.skin_grade,
        ev.occurrence,
        ev.fire,
        ev.act,
        ev.act_rule,
        ev.until,
        sor.start_date,
        sor.stop,
        sor.daily,
    )
    cont = j.group_by(
        ["patient_id", "first_dose", "term", "skin_grade", "occurrence", "fire", "act", "act_rule", "until"]
    ).aggregate(on_drug_to=j.stop.max(), daily=j.daily.max())
    src = dm.source
    continued = _shape(
        cont,
        cont.first_dose,
        patient_id=cont.patient_id,
        date=cont.fire,
        rule_id="dose_modification.skin_continued",
        category="dose_modification",
        expected=_concat(cont.act, " (", rs.name, " v", rs.version, ": ", cont.act_rule, ")"),
        evidence=_concat(
            cont.term,
            " grade ",
            _num(cont.skin_grade),
            " (occurrence ",
            _num(cont.occurrence),
            "): rule fired on ",
            _s(cont.fire),
            f"; {dm.drug} ",
            _num(cont.daily),
            " mg/day continued to ",
            _s(cont.on_drug_to),
        ),
        days_late=days_between(ibis.least(cont.on_drug_to, cont.until), cont.fire),
        source=src,
    )
    # resumed without going one level lower (only where the drug was interrupted)
    ok = ev.filter(ev.act == "interrupt_then_reduce").anti_join(
        cont, [ev.patient_id == cont.patient_id, ev.term == cont.term, ev.fire == cont.fire]
    )
    before = ok.inner_join(sor, [ok.patient_id == sor.patient_id, sor.start_date <= ok.fire]).select(
        ok.patient_id, ok.term, ok.fire, sor.start_date, sor.daily
    )
    prev = before.group_by(["patient_id", "term", "fire"]).aggregate(
        prev_daily=before.daily.argmax(before.start_date)
    )
    after = ok.inner_join(sor, [ok.patient_id == sor.patient_id, sor.start_date > ok.fire]).select(
        ok.patient_id, ok.term, ok.fire, sor.start_date, sor.daily
    )
    res = after.group_by(["patient_id", "term", "fire"]).aggregate(
        resumed=after.start_date.min(), resumed_daily=after.daily.argmin(after.start_date)
    )
    r = ok.join(prev, ["patient_id", "term", "fire"]).join(res, ["patient_id", "term", "fire"])
    r = r.filter(r.resumed_daily >= r.prev_daily)
    not_reduced = _shape(
        r,
        r.first_dose,
        patient_id=r.patient_id,
        date=r.resumed,
        rule_id="dose_modification.skin_not_reduced",
        category="dose_modification",
        expected=_concat("resume one dose level lower (", rs.name, " v", rs.version, ": ", r.act_rule, ")"),
        evidence=_concat(
            r.term,
            " grade ",
            _num(r.skin_grade),
            ": rule fired on ",
            _s(r.fire),
            "; resumed on ",
            _s(r.resumed),
            " at ",
            _num(r.resumed_daily),
            " mg/day (before: ",
            _num(r.prev_daily),
            " mg/day)",
        ),
        source=src,
    )
    return ibis.union(continued, not_reduced)


# ---- the audit ----------------------------------------------------------------------------------


def _supplied(cohort: Cohort, name: str) -> bool:
    """Whether the bundle supplied ``name`` (an as-of view asks the cohort it wraps)."""
    base = getattr(cohort, "cohort", cohort)
    has = getattr(base, "has", None)
    return True if has is None else bool(has(name))


def audit(cohort: Cohort, protocol: Protocol | None = None, *, per: ir.Table | None = None) -> ir.Table:
    """Every deviation (columns ``DEVIATION_COLUMNS``), ordered by patient, date and rule.

    ``protocol`` default: the study definition's (:func:`study_protocol`); a study without one has
    nothing to audit (an empty table). ``per``: the cohort's :func:`periods` under this protocol,
    already materialised (default: derived and cached here); with it, building the expression runs
    no query.
    """
    p = protocol or study_protocol(cohort)
    if p is None:
        return empty_deviations()
    if per is None:
        per = periods(cohort, p).cache()
    return combine_parts([build() for build in audit_parts(cohort, p, per=per).values()])


def audit_parts(cohort: Cohort, p: Protocol, *, per: ir.Table) -> dict[str, Callable[[], ir.Table | None]]:
    """The audit's checks, by name, each a function building its deviations (None: nothing to
    check). :func:`audit` is :func:`combine_parts` of them all; a caller may build, compile and
    run them one by one (each compiles several times faster alone than inside one union).
    ``per``: the cohort's :func:`periods` under ``p``, materialised."""
    parts: dict[str, Callable[[], ir.Table | None]] = {
        f"surveillance_{k}": functools.partial(_surveillance, cohort, per, p, item)
        for k, item in enumerate(p.surveillance)
    }
    if p.has_rule("stopping_rule"):
        parts["stopping_rule"] = functools.partial(_stopping_rule, cohort, p)
    # A table the bundle did not supply is unknown, not empty: its checks are not run.
    if _supplied(cohort, "transfusions"):
        for key, product, value, unit, label in (
            ("rbc_transfusion", "rbc", "hemoglobin", "g/dL", "red-cell"),
            ("platelet_transfusion", "platelets", "platelets", "x10^9/L", "platelet"),
        ):
            if p.has_rule(key):
                parts[key] = functools.partial(_transfusion, cohort, per, p, key, product, value, unit, label)
    if _supplied(cohort, "supportive_care"):
        for key, label in (("g_csf", "G-CSF"), ("antifungal_prophylaxis", "antifungal prophylaxis")):
            if p.has_rule(key):
                parts[key] = functools.partial(_supportive, cohort, per, p, key, label)
    parts["doses"] = functools.partial(_doses, cohort, per, p)
    if p.dose_modification is not None and p.has_rule("skin_dose_modification"):
        parts["skin_dose_modification"] = functools.partial(_skin, cohort, per, p)
    return parts


def combine_parts(parts: list[ir.Table | None]) -> ir.Table:
    """The deviations of :func:`audit_parts`' checks as one table, ordered by patient, date and rule."""
    # each part cast to the deviation columns' types: an engine may type a computed column its own
    # way (DuckDB: date + interval is a timestamp) once a part is materialised alone
    kept = [t.select(**{c: t[c].cast(typ) for c, typ in DEVIATION_COLUMNS.items()})
            for t in parts if t is not None]
    if not kept:
        return empty_deviations()
    return ibis.union(*kept).order_by(["patient_id", "date", "rule_id"])


def empty_deviations() -> ir.Table:
    """A deviations table with no row."""
    return ibis.memtable(ibis.schema(DEVIATION_COLUMNS).to_pyarrow().empty_table())


@dataclass(frozen=True)
class AuditSummary:
    by_rule: ir.Table
    by_patient: ir.Table


def audit_summary(deviations: ir.Table) -> AuditSummary:
    """Deviations per rule (with patients and source) and per patient (with the rules)."""
    by_rule = (
        deviations.group_by(["category", "rule_id"])
        .aggregate(
            deviations=deviations.count(),
            patients=deviations.patient_id.nunique(),
            source=deviations.source.min(),
        )
        .order_by(["category", "rule_id"])
    )
    pr = deviations.group_by(["patient_id", "rule_id"]).aggregate(n=deviations.count())
    pr = pr.order_by(["patient_id", "rule_id"])  # for SQLite's group_concat (see _sorted_text)
    by_patient = (
        pr.group_by("patient_id")
        .aggregate(
            deviations=pr.n.sum(),
            rules=_sorted_text(pr.rule_id, ", "),
        )
        .order_by("patient_id")
    )
    return AuditSummary(by_rule, by_patient)


def _sorted_text(values: ir.StringColumn, sep: str) -> ir.StringScalar:
    """The values of a group in order, joined by ``sep``. Spark has no ordered ``group_concat``:
    there the values are collected into an array, sorted and joined (the same text); SQLite has
    neither, and joins them in the order of the rows, which :func:`audit_summary` sorts."""
    engine = backend_name(values)
    if engine == "pyspark":
        return values.collect().sort().join(sep)
    if engine == "sqlite":  # no ordered aggregate, no arrays: the order of the rows (sorted first)
        return values.group_concat(sep)
    return values.group_concat(sep, order_by=values)


def audit_section(
    cohort: Cohort, protocol: Protocol | None = None, *, deviations: ir.Table | None = None
) -> dict | None:
    """The audit as a report section: small pandas tables and one paragraph of text.

    ``protocol`` default: the study definition's; None (no section) when the study has no protocol.
    ``deviations``: :func:`audit` of this cohort and protocol, already materialised (the report
    compiles it ahead, :mod:`amlcohort.report.parallel`); default: derived and cached here.
    """
    p = protocol or study_protocol(cohort)
    if p is None:
        return None
    dev = deviations if deviations is not None else audit(cohort, p).cache()
    s = audit_summary(dev)
    # sorted again here, by code point: the engine's ORDER BY follows the database's collation
    deviations = in_order(dev.to_pandas(), ["patient_id", "date", "rule_id"])
    deviations["date"] = pd.to_datetime(deviations["date"]).dt.date
    deviations["days_late"] = deviations["days_late"].astype("Int64")
    by_rule = in_order(s.by_rule.to_pandas(), ["category", "rule_id"])
    by_patient = in_order(s.by_patient.to_pandas(), ["patient_id"])
    by_patient["rules"] = [", ".join(sorted(r.split(", "))) if isinstance(r, str) else r
                           for r in by_patient["rules"]]
    n_pat = int(cohort.table("patients").count().execute())
    stop = deviations[deviations.rule_id == "stopping_rule"]
    stop_text = "; ".join(f"{r.patient_id} ({r.evidence})" for r in stop.itertuples()) or "none"
    drug = index_drug(cohort, p) or ANY_DRUG
    stop_sentence = (
        f" Stopping rule fired while {drug} continued: {stop_text}." if p.has_rule("stopping_rule") else ""
    )
    counts = ", ".join(
        f"{r.rule_id} {r.deviations} ({r.patients} patient{'s' if r.patients != 1 else ''})"
        for r in by_rule.itertuples()
    )
    text = (
        f"Adherence to protocol {p.label} ({p.title}; {p.source}) was audited on the cohort's data up to the "
        f"cut-off {cohort.metadata.cutoff_date}: {len(deviations)} deviation(s) in {by_patient.shape[0]} of "
        f"{n_pat} patients. By rule: {counts or 'none'}.{stop_sentence} "
        "Windows: transfusion on the day of the count or within "
        f"{p.audit.transfusion_window_days} day(s); G-CSF/antifungal active or started within "
        f"{p.audit.supportive_care_window_days} day(s); surveillance gaps beyond each item's interval "
        "plus grace. "
        f"{p.disclaimer}"
    )
    return {
        "title": f"Protocol adherence ({p.label})",
        "text": text,
        "deviations": deviations,
        "summary": by_rule,
        "by_patient": by_patient,
        "disclaimer": p.disclaimer,
        "protocol": p.label,
    }


def deviations_frame(cohort: Cohort, protocol: Protocol | None = None) -> pd.DataFrame:
    return audit(cohort, protocol).to_pandas()
