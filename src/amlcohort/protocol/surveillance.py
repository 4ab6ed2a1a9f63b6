"""What the protocol code shares: the surveillance schedule table, each patient's state on a date,
and the checks of a patient and a date (used by :mod:`~amlcohort.protocol.schedule`,
:mod:`~amlcohort.protocol.recommend` and :mod:`~amlcohort.protocol.audit`, none importing another).

See :mod:`amlcohort.protocol.schedule` for the schedule's semantics (rolling from the patient's
actual assessments, due window, grace, overdue days).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import compile_rules
from amlcohort.io.cohort import Cohort
from amlcohort.protocol.definition import Protocol, SurveillanceItem, cohort_protocol
from amlcohort.protocol.timeline import (
    AsOf,
    as_of,
    bound,
    days_between,
    interval_expr,
    periods,
    phase_window,
)


class UnknownPatient(KeyError):
    """The patient is not in the cohort (the message lists the patients)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DateOutOfRange(ValueError):
    """A date the cohort cannot answer for: after the data cut-off, or after the patient's death."""


STATUSES = ("upcoming", "due", "overdue")
SCHEDULE_COLUMNS = {
    "patient_id": "string",
    "item_id": "string",
    "what": "string",
    "phase": "string",
    "anchor_date": "date",
    "anchor_study_day": "int64",
    "due_date": "date",
    "due_study_day": "int64",
    "window_start": "date",
    "overdue_after": "date",
    "status": "string",
    "days_overdue": "int64",
    "done_on_date": "boolean",
    "interval": "string",
    "source": "string",
    "response_assessment": "boolean",
}


def done_expr(a: ir.Table, item: SurveillanceItem) -> ir.BooleanValue:
    """An assessment row counts for ``item`` (its ``done_when`` columns recorded)."""
    cols = item.any_of or item.all_of
    e = a[cols[0]].notnull()
    for c in cols[1:]:
        e = (e | a[c].notnull()) if item.any_of else (e & a[c].notnull())
    return e


def abnormal_counts(a: ir.Table, protocol: Protocol) -> ir.Table:
    """Assessments whose blood counts fire ``counts_abnormal_post_cr`` (patient_id, d)."""
    rs = protocol.ruleset("counts_abnormal_post_cr")
    counted = a.filter(a.anc.notnull() | a.platelets.notnull())
    c = compile_rules(rs, counted)
    return counted.filter(c.outcome == "marrow_due").select("patient_id", d=counted.assessment_date)


def _anchor(per: ir.Table, a: ir.Table, item: SurveillanceItem, protocol: Protocol, on: dt.date) -> ir.Table:
    start, _ = phase_window(per, item.phase)
    p = per.filter(per.phase == item.phase).select("patient_id", "first_dose", start=start)
    on_lit = ibis.literal(on, "date")
    q = a.filter(done_expr(a, item)).select("patient_id", d=a.assessment_date)
    if item.trigger is None:
        j = p.left_join(q, [p.patient_id == q.patient_id, q.d >= p.start, q.d < on_lit])
        j = j.select(p.patient_id, p.first_dose, p.start, qd=q.d)
        g = j.group_by(["patient_id", "first_dose", "start"]).aggregate(last=j.qd.max())
        anchors = g.select("patient_id", "first_dose", anchor=ibis.coalesce(g["last"], g.start))
    else:
        ab = abnormal_counts(a, protocol)
        j = p.inner_join(ab, [p.patient_id == ab.patient_id, ab.d >= p.start, ab.d < on_lit])
        j = j.select(p.patient_id, p.first_dose, count_date=ab.d)
        k = j.left_join(q, [j.patient_id == q.patient_id, q.d >= j.count_date, q.d < on_lit])
        k = k.select(j.patient_id, j.first_dose, j.count_date, marrow=q.d)
        k = k.group_by(["patient_id", "first_dose", "count_date"]).aggregate(followed=k.marrow.count())
        pending = k.filter(k.followed == 0)
        anchors = pending.group_by(["patient_id", "first_dose"]).aggregate(anchor=pending.count_date.min())
    today = q.filter(q.d == on_lit).select("patient_id", done=ibis.literal(True)).distinct()
    out = anchors.left_join(today, anchors.patient_id == today.patient_id).select(
        anchors.patient_id, anchors.first_dose, anchors.anchor, done_on_date=today.done.fill_null(False)
    )
    return out


def schedule_table(cohort: Cohort | AsOf, on: dt.date, protocol: Protocol | None = None) -> ir.Table:
    """Every patient's surveillance items on ``on`` (see the module docstring), one Ibis expression."""
    p = cohort_protocol(cohort, protocol)
    view = as_of(cohort, on)
    per = periods(view, p)
    a = view.table("assessments")
    on_lit = ibis.literal(on, "date")
    parts = []
    for item in p.surveillance:
        t = _anchor(per, a, item, p, on)
        anchor_day = (days_between(t.anchor, t.first_dose) + 1).cast("int64")
        keep = ibis.literal(True)
        if item.anchor_study_day_min is not None:
            keep = keep & (anchor_day >= item.anchor_study_day_min)
        if item.anchor_study_day_max is not None:
            keep = keep & (anchor_day <= item.anchor_study_day_max)
        due = interval_expr(t.anchor, item.interval_days, item.interval_months)
        window_start = interval_expr(due, days=-item.window_opens)
        overdue_after = interval_expr(due, days=item.grace_days)
        status = ibis.cases(
            (on_lit > overdue_after, "overdue"), (on_lit >= window_start, "due"), else_="upcoming"
        )
        parts.append(
            t.filter(keep).select(
                patient_id=t.patient_id,
                item_id=ibis.literal(item.id),
                what=ibis.literal(item.what),
                phase=ibis.literal(item.phase),
                anchor_date=t.anchor,
                anchor_study_day=anchor_day,
                due_date=due,
                due_study_day=(days_between(due, t.first_dose) + 1).cast("int64"),
                window_start=window_start,
                overdue_after=overdue_after,
                status=status,
                days_overdue=ibis.ifelse(status == "overdue", days_between(on_lit, due), 0).cast("int64"),
                done_on_date=t.done_on_date,
                interval=ibis.literal(item.interval_text),
                source=ibis.literal(item.source),
                response_assessment=ibis.literal(item.response_assessment),
            )
        )
    if not parts:
        return ibis.memtable(ibis.schema(SCHEDULE_COLUMNS).to_pyarrow().empty_table())
    return ibis.union(*parts)


@dataclass(frozen=True)
class DueItem:
    patient_id: str
    item_id: str
    what: str
    phase: str
    anchor_date: dt.date
    anchor_study_day: int
    due_date: dt.date
    due_study_day: int
    window_start: dt.date
    overdue_after: dt.date
    status: str
    days_overdue: int
    done_on_date: bool
    interval: str
    source: str
    response_assessment: bool

    def describe(self) -> str:
        s = f"{self.what}: {self.status.upper()} — due date {self.due_date} (study day {self.due_study_day})"
        if self.status == "overdue":
            s += f", overdue by {self.days_overdue} day(s)"
        if self.done_on_date:
            s += " — recorded on this date"
        return f"{s} [{self.item_id}: every {self.interval}; {self.source}]"


def study_day(on: dt.date, first: dt.date | None) -> int | None:
    if first is None:
        return None
    d = (on - first).days
    return d + 1 if d >= 0 else d


def patient_state(
    cohort: Cohort | AsOf, patient_id: str, on: dt.date, protocol: Protocol | None = None
) -> dict:
    """Phase of one patient on ``on`` (from :func:`~amlcohort.protocol.timeline.periods`), as a dict."""
    per = periods(as_of(cohort, on), cohort_protocol(cohort, protocol))
    rows = per.filter(per.patient_id == patient_id).to_pyarrow().to_pylist()
    if not rows:
        return {"phase": "not_started", "first_dose": None, "off_reason": None, "first_cr_date": None}
    return rows[0]


def check_patient(cohort: Cohort | AsOf, patient_id: str) -> None:
    pts = cohort.table("patients")
    if pts.filter(pts.patient_id == patient_id).count().execute() == 0:
        known = sorted(pts.patient_id.to_pyarrow().to_pylist())
        raise UnknownPatient(f"no patient {patient_id!r} in the cohort; patients: {', '.join(known)}")


def due_items(
    cohort: Cohort | AsOf, patient_id: str, on: dt.date, protocol: Protocol | None = None
) -> list[DueItem]:
    t = schedule_table(cohort, on, protocol)
    rows = t.filter(t.patient_id == patient_id).order_by(["due_date", "item_id"]).to_pyarrow().to_pylist()
    return [DueItem(**r) for r in rows]




def check_date(cohort: Cohort | AsOf, patient_id: str, on: dt.date) -> None:
    """Refuse a date the data cannot speak for: after the data cut-off, or after the patient's
    death (rules would fire from stale values). Raises :class:`DateOutOfRange`."""
    cutoff = bound(cohort)
    ev = cohort.table("events")
    deaths = ev.filter(
        (ev.patient_id == patient_id) & (ev.event_type == "death") & (ev.event_date <= cutoff)
    )
    died = deaths.event_date.min().to_pyarrow().as_py()
    if died is not None and on > died:
        raise DateOutOfRange(f"patient {patient_id} died on {died}: nothing is due after that date")
    if on > cutoff:
        raise DateOutOfRange(
            f"{on} is after the data cut-off {cutoff}: the data say nothing about that date "
            "(choose a date on or before the cut-off)"
        )
