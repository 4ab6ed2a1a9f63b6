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

import icalendar

from amlcohort.io.cohort import Cohort
from amlcohort.protocol.definition import Protocol, SurveillanceItem, cohort_protocol, load_protocol
from amlcohort.protocol.recommend import recommendations
from amlcohort.protocol.surveillance import (
    SCHEDULE_COLUMNS,
    STATUSES,
    DateOutOfRange,
    DueItem,
    UnknownPatient,
    abnormal_counts,
    check_date,
    check_patient,
    done_expr,
    due_items,
    patient_state,
    schedule_table,
    study_day,
)
from amlcohort.protocol.timeline import add_interval

__all__ = [
    "SCHEDULE_COLUMNS",
    "STATUSES",
    "DateOutOfRange",
    "DueItem",
    "DueReport",
    "PlannedEvent",
    "UnknownPatient",
    "abnormal_counts",
    "done_expr",
    "due",
    "due_items",
    "patient_state",
    "plan",
    "schedule_table",
    "to_ical",
]

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
    definition: Protocol | None = None

    @property
    def due_now(self) -> list[DueItem]:
        return [i for i in self.items if i.status in ("due", "overdue")]

    @property
    def firing(self) -> list:
        return [r for r in self.recommendations if r.fires]


def due(
    cohort: Cohort,
    patient_id: str,
    on: dt.date,
    protocol: Protocol | None = None,
    observations: dict | None = None,
) -> DueReport:
    """What is due for ``patient_id`` on ``on`` and which protocol rules fire (data up to ``on`` only)."""
    p = cohort_protocol(cohort, protocol)
    check_patient(cohort, patient_id)
    check_date(cohort, patient_id, on)
    state = patient_state(cohort, patient_id, on, p)
    items = due_items(cohort, patient_id, on, p) if state["phase"] in ("induction", "post_cr") else []
    recs = recommendations(
        cohort, patient_id, on, protocol=p, observations=observations, _items=items, _state=state
    )
    return DueReport(
        patient_id,
        on,
        study_day(on, state["first_dose"]),
        state["phase"],
        state.get("off_reason"),
        items,
        recs,
        p.label,
        p.disclaimer,
        p,
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
    p = protocol or report.definition or load_protocol()
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
                    study_day(when, first),
                    it.status if when == max(it.due_date, report.on) else "planned",
                    note,
                    current.source,
                )
            )
            if current.trigger is not None or first is None:
                break
            nxt = _series_item(p, current, study_day(when, first) or 0)
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


def to_ical(
    events: Sequence[PlannedEvent], *, disclaimer: str, protocol_label: str, stamp: dt.datetime | None = None
) -> str:
    """An RFC 5545 VCALENDAR with one all-day VEVENT per planned event (CRLF line endings).

    Written with the ``icalendar`` package: every text value is escaped (RFC 5545 §3.3.11: backslash,
    ``;``, ``,`` and newlines), so a patient identifier or a source text cannot inject properties,
    and lines are folded at 75 octets (§3.1).
    """
    stamp = (stamp or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//amlcohort//protocol schedule//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"amlcohort {protocol_label} surveillance")
    for e in events:
        desc = (
            f"{e.what} ({e.item_id}), study day {e.study_day}; {e.note}. Source: {e.source}. "
            f"Protocol {protocol_label}. {disclaimer}"
        )
        ev = icalendar.Event()
        ev.add("uid", f"{e.patient_id}-{e.item_id}-{e.date:%Y%m%d}@amlcohort")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", e.date)
        ev.add("dtend", e.date + dt.timedelta(days=1))
        ev.add("summary", f"{e.patient_id}: {e.what} ({e.status})")
        ev.add("description", desc)
        ev["categories"] = icalendar.prop.vText(e.item_id)
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    return cal.to_ical().decode("utf-8")
