"""The surveillance schedule: what is due on a date, what is overdue and by how many days.

Schedules are *rolling*, from the patient's actual assessments (protocol file, ``surveillance``):
for each item of the patient's phase on the date, the **anchor** is the last qualifying assessment
since the phase began (or the phase start when there is none), the **due date** is the anchor plus
the item's interval (days, or calendar months clipped to month ends), the item shows as ``due``
from ``window_opens`` days before the due date and is ``overdue`` after ``grace_days`` past it;
``days_overdue`` counts days past the due date. Marrow items hand over by the anchor's study day
(``marrow.first_month`` while the last marrow was on study day <= 28, then ``marrow.monthly``).
A trigger item (``marrow.counts_abnormal_post_cr``) is anchored on the first abnormal blood count
(rule set ``counts_abnormal_post_cr``) not yet followed by a marrow.

The schedule is the plan **at the start of the day**: it reads assessments *before* the date; an
assessment recorded on the date itself is shown as fulfilling the item (``done_on_date``).

:func:`schedule_table` computes it for every patient as one Ibis expression; :func:`due` is the
one-patient view (with the rules that fire, :mod:`amlcohort.protocol.recommend`); :func:`to_ical`
writes the planned schedule as an RFC 5545 calendar for the ward.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import compile_rules
from amlcohort.io.cohort import Cohort
from amlcohort.protocol.definition import Protocol, SurveillanceItem, load_protocol
from amlcohort.protocol.timeline import (
    AsOf,
    add_interval,
    as_of,
    days_between,
    interval_expr,
    periods,
    phase_window,
)

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
    p = protocol or load_protocol()
    view = as_of(cohort, on)
    per = periods(view)
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
        return ibis.memtable({k: [] for k in SCHEDULE_COLUMNS}, schema=ibis.schema(SCHEDULE_COLUMNS))
    return ibis.union(*parts)


# ---- one patient ----------------------------------------------------------------------------


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


@dataclass
class DueReport:
    """What is due for one patient on one date, and the rules that fire on the data known then."""

    patient_id: str
    on: dt.date
    study_day: int | None
    phase: str
    off_reason: str | None
    items: list[DueItem]
    recommendations: list = field(default_factory=list)
    protocol: str = ""
    disclaimer: str = ""

    @property
    def due_now(self) -> list[DueItem]:
        return [i for i in self.items if i.status in ("due", "overdue")]

    @property
    def firing(self) -> list:
        return [r for r in self.recommendations if r.fires]


def _study_day(on: dt.date, first: dt.date | None) -> int | None:
    if first is None:
        return None
    d = (on - first).days
    return d + 1 if d >= 0 else d


def patient_state(cohort: Cohort | AsOf, patient_id: str, on: dt.date) -> dict:
    """Phase of one patient on ``on`` (from :func:`~amlcohort.protocol.timeline.periods`), as a dict."""
    per = periods(as_of(cohort, on))
    rows = per.filter(per.patient_id == patient_id).to_pyarrow().to_pylist()
    if not rows:
        return {"phase": "not_started", "first_dose": None, "off_reason": None, "first_cr_date": None}
    return rows[0]


def _check_patient(cohort: Cohort | AsOf, patient_id: str) -> None:
    pts = cohort.table("patients")
    if pts.filter(pts.patient_id == patient_id).count().execute() == 0:
        known = sorted(pts.patient_id.to_pyarrow().to_pylist())
        raise KeyError(f"no patient {patient_id!r} in the cohort; patients: {', '.join(known)}")


def due_items(
    cohort: Cohort | AsOf, patient_id: str, on: dt.date, protocol: Protocol | None = None
) -> list[DueItem]:
    t = schedule_table(cohort, on, protocol)
    rows = t.filter(t.patient_id == patient_id).order_by(["due_date", "item_id"]).to_pyarrow().to_pylist()
    return [DueItem(**r) for r in rows]


def due(
    cohort: Cohort,
    patient_id: str,
    on: dt.date,
    protocol: Protocol | None = None,
    observations: dict | None = None,
) -> DueReport:
    """What is due for ``patient_id`` on ``on`` and which protocol rules fire (data up to ``on`` only)."""
    from amlcohort.protocol.recommend import recommendations

    p = protocol or load_protocol()
    _check_patient(cohort, patient_id)
    state = patient_state(cohort, patient_id, on)
    items = due_items(cohort, patient_id, on, p) if state["phase"] in ("induction", "post_cr") else []
    recs = recommendations(
        cohort, patient_id, on, protocol=p, observations=observations, _items=items, _state=state
    )
    return DueReport(
        patient_id,
        on,
        _study_day(on, state["first_dose"]),
        state["phase"],
        state.get("off_reason"),
        items,
        recs,
        p.label,
        p.disclaimer,
    )


# ---- planned schedule and iCalendar ---------------------------------------------------------


@dataclass(frozen=True)
class PlannedEvent:
    patient_id: str
    item_id: str
    what: str
    date: dt.date
    study_day: int | None
    status: str
    note: str
    source: str


def plan(report: DueReport, protocol: Protocol | None = None, horizon_days: int = 56) -> list[PlannedEvent]:
    """The planned schedule from ``report.on`` for ``horizon_days``, assuming each item is done on its
    due date and the phase does not change (an overdue item is planned on ``report.on``).

    Marrow items hand over within their series by the anchor's study day, as in the schedule.
    """
    p = protocol or load_protocol()
    end = report.on + dt.timedelta(days=horizon_days)
    first = None if report.study_day is None else report.on - dt.timedelta(days=report.study_day - 1)
    out: list[PlannedEvent] = []
    for it in report.items:
        item = p.item(it.item_id)
        when = max(it.due_date, report.on) if it.status == "overdue" else it.due_date
        note = (
            f"OVERDUE by {it.days_overdue} day(s) (due {it.due_date})"
            if it.status == "overdue"
            else f"window {it.window_start} to {it.overdue_after}"
        )
        current = item
        while when <= end:
            out.append(
                PlannedEvent(
                    report.patient_id,
                    current.id,
                    current.what,
                    when,
                    _study_day(when, first),
                    it.status if when == max(it.due_date, report.on) else "planned",
                    note,
                    current.source,
                )
            )
            if current.trigger is not None or first is None:
                break
            nxt = _series_item(p, current, _study_day(when, first) or 0)
            if nxt is None:
                break
            current = nxt
            when = add_interval(when, current.interval_days, current.interval_months)
            note = f"planned: every {current.interval_text} after the previous"
    return sorted(out, key=lambda e: (e.date, e.item_id))


def _series_item(p: Protocol, item: SurveillanceItem, anchor_day: int) -> SurveillanceItem | None:
    for cand in p.surveillance:
        if cand.series != item.series or cand.trigger is not None:
            continue
        if cand.anchor_study_day_min is not None and anchor_day < cand.anchor_study_day_min:
            continue
        if cand.anchor_study_day_max is not None and anchor_day > cand.anchor_study_day_max:
            continue
        return cand
    return None


def _ics_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """RFC 5545 §3.1: lines longer than 75 octets are folded (CRLF + one space)."""
    out, cur = [], b""
    for ch in line:
        b = ch.encode("utf-8")
        if len(cur) + len(b) > (75 if not out else 74):
            out.append(cur.decode("utf-8"))
            cur = b""
        cur += b
    out.append(cur.decode("utf-8"))
    return [out[0], *(" " + x for x in out[1:])]


def to_ical(
    events: Sequence[PlannedEvent], *, disclaimer: str, protocol_label: str, stamp: dt.datetime | None = None
) -> str:
    """An RFC 5545 VCALENDAR with one all-day VEVENT per planned event (CRLF line endings)."""
    stamp = stamp or dt.datetime.now(dt.UTC)
    st = stamp.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//amlcohort//protocol schedule//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_ics_escape('amlcohort ' + protocol_label + ' surveillance')}",
    ]
    for e in events:
        desc = (
            f"{e.what} ({e.item_id}), study day {e.study_day}; {e.note}. Source: {e.source}. "
            f"Protocol {protocol_label}. {disclaimer}"
        )
        lines += [
            "BEGIN:VEVENT",
            f"UID:{e.patient_id}-{e.item_id}-{e.date:%Y%m%d}@amlcohort",
            f"DTSTAMP:{st}",
            f"DTSTART;VALUE=DATE:{e.date:%Y%m%d}",
            f"DTEND;VALUE=DATE:{e.date + dt.timedelta(days=1):%Y%m%d}",
            f"SUMMARY:{_ics_escape(f'{e.patient_id}: {e.what} ({e.status})')}",
            f"DESCRIPTION:{_ics_escape(desc)}",
            f"CATEGORIES:{_ics_escape(e.item_id)}",
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(f"{x}\r\n" for line in lines for x in _fold(line))
