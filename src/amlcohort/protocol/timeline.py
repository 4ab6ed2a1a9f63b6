"""Time on the protocol: the data as known on a date, calendar arithmetic, and each patient's phases.

* :func:`as_of` gives a view of a cohort holding only what was known on a date: rows dated after
  it are dropped, and end/resolution/worst-grade dates after it are blanked (with what depends on
  them). Everything :mod:`amlcohort.protocol` computes "on a date" reads this view, so no later
  data can leak in.
* Intervals are days or calendar months. A month is the same day of the next month, clipped to
  that month's last day (31 Jan → 28 Feb, or 29 Feb in a leap year; 31 Mar → 30 Apr), as DuckDB
  adds ``INTERVAL 1 MONTH``; :func:`add_interval` is the Python twin, tested against it.
* Phases (:func:`periods`): *induction* from study day 1 (first sorafenib dose) to the first CR
  (study response criteria, :mod:`amlcohort.criteria.response`) or leaving the protocol (the last
  sorafenib dose when sorafenib stopped for a reason other than interruption or dose change, HSCT,
  death); *post_cr* from the first CR to relapse, HSCT or death. Open phases end at the bound
  (the data cut-off, or the date of an as-of view).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, replace

import ibis
import ibis.expr.types as ir

from amlcohort.criteria import response as resp
from amlcohort.io.cohort import Cohort
from amlcohort.io.consistency import first_doses
from amlcohort.io.metadata import BundleMetadata

CONTINUING_END_REASONS = ("interruption", "dose_reduction")


# ---- calendar -------------------------------------------------------------------------------


def add_months(d: dt.date, n: int) -> dt.date:
    """``d`` plus ``n`` calendar months, clipped to the last day of the target month."""
    m = d.month - 1 + n
    year, month = d.year + m // 12, m % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def add_interval(d: dt.date, days: int | None = None, months: int | None = None) -> dt.date:
    return add_months(d, months) if months is not None else d + dt.timedelta(days=days or 0)


def interval_expr(d: ir.DateValue, days: int | None = None, months: int | None = None) -> ir.DateValue:
    """Ibis twin of :func:`add_interval` (DuckDB clips month ends the same way)."""
    iv = ibis.interval(months=months) if months is not None else ibis.interval(days=days or 0)
    return (d + iv).cast("date")


def days_between(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    return later.delta(earlier, unit="day")


# ---- the data as known on a date --------------------------------------------------------------


@dataclass
class AsOf:
    """A cohort view with only the data known on ``on`` (see the module docstring)."""

    cohort: Cohort
    on: dt.date

    @property
    def metadata(self) -> BundleMetadata:
        return replace(self.cohort.metadata, cutoff_date=min(self.cohort.metadata.cutoff_date, self.on))

    @property
    def con(self) -> ibis.BaseBackend:
        return self.cohort.con

    def _blank(self, t: ir.Table, col: str, also: tuple[str, ...] = ()) -> ir.Table:
        on = ibis.literal(self.on, "date")
        late = t[col].notnull() & (t[col] > on)
        out = {col: ibis.ifelse(late, ibis.null("date"), t[col])}
        day = col[: -len("_date")] + "_study_day"
        if day in t.columns:
            out[day] = ibis.ifelse(late, ibis.null(t[day].type()), t[day])
        for c in also:
            out[c] = ibis.ifelse(late, ibis.null(t[c].type()), t[c])
        return t.mutate(**out)

    def table(self, name: str) -> ir.Table:
        t = self.cohort.table(name)
        on = ibis.literal(self.on, "date")
        if name == "assessments":
            return t.filter(t.assessment_date <= on)
        if name == "transfusions":
            return t.filter(t.transfusion_date <= on)
        if name == "events":
            return t.filter(t.event_date <= on)
        if name == "exposures":
            return self._blank(t.filter(t.start_date <= on), "end_date", ("end_reason",))
        if name == "supportive_care":
            return self._blank(t.filter(t.start_date <= on), "end_date")
        if name == "adverse_events":
            t = t.filter(t.onset_date <= on)
            t = self._blank(t, "worst_grade_date", ("grade",))
            return self._blank(t, "resolution_date", ("outcome",))
        return t

    def first_dose(self) -> ir.Table:
        return first_doses(self.table("exposures"))


def as_of(cohort: Cohort | AsOf, on: dt.date) -> AsOf:
    if isinstance(cohort, AsOf):
        return AsOf(cohort.cohort, min(cohort.on, on))
    return AsOf(cohort, on)


def bound(cohort: Cohort | AsOf) -> dt.date:
    """The last date a cohort (or view) knows: its cut-off, or the view's date."""
    return cohort.metadata.cutoff_date


# ---- phases ---------------------------------------------------------------------------------


def periods(cohort: Cohort | AsOf) -> ir.Table:
    """One row per patient who started sorafenib (on or before the bound), with the phase dates.

    Columns: patient_id, first_dose, first_cr_date, relapse_date (after the first CR), hsct_date,
    death_date, last_sorafenib_date (NULL while sorafenib goes on), sorafenib_end_reason,
    induction_end, post_cr_end, protocol_end (NULL: open at the bound), bound, phase (at the bound:
    ``induction``, ``post_cr``, ``off_protocol``), off_reason.
    """
    end = ibis.literal(bound(cohort), "date")
    first = cohort.first_dose()
    responses = resp.derive(cohort)
    fcr = resp.first_cr(responses).select("patient_id", "first_cr_date")
    ev = cohort.table("events")
    evs = ev.group_by("patient_id").aggregate(
        hsct_date=ev.event_date.min(where=ev.event_type == "hsct"),
        death_date=ev.event_date.min(where=ev.event_type == "death"),
    )
    rel = ev.filter(ev.event_type == "relapse").inner_join(fcr, "patient_id")
    rel = rel.filter(rel.event_date > rel.first_cr_date)
    rel = rel.group_by("patient_id").aggregate(relapse_date=rel.event_date.min())
    ex = cohort.table("exposures")
    sor = ex.filter(ex.drug == "sorafenib")
    far = ibis.literal(dt.date(9999, 12, 31), "date")
    sor_end = sor.group_by("patient_id").aggregate(
        ongoing=sor.end_date.isnull().any(),
        last_end=sor.end_date.max(),
        last_reason=sor.end_reason.argmax(sor.end_date.fill_null(far)),
    )
    j = first
    for t in (fcr, evs, rel, sor_end):
        j = j.left_join(t, first.patient_id == t.patient_id)
    j = j.select(
        first.patient_id,
        first.first_dose,
        fcr.first_cr_date,
        rel.relapse_date,
        evs.hsct_date,
        evs.death_date,
        last_sorafenib_date=ibis.ifelse(sor_end.ongoing, ibis.null("date"), sor_end.last_end),
        sorafenib_end_reason=ibis.ifelse(sor_end.ongoing, ibis.null("string"), sor_end.last_reason),
    )
    stopped = j.last_sorafenib_date.notnull() & ~j.sorafenib_end_reason.isin(
        CONTINUING_END_REASONS
    ).fill_null(False)
    stop_date = ibis.ifelse(stopped, j.last_sorafenib_date, ibis.null("date"))
    leave = _least(stop_date, j.hsct_date, j.death_date)
    induction_end = _least(j.first_cr_date, leave)
    post_cr_end = ibis.ifelse(
        j.first_cr_date.notnull(), _least(j.relapse_date, j.hsct_date, j.death_date), ibis.null("date")
    )
    protocol_end = ibis.ifelse(j.first_cr_date.notnull(), post_cr_end, induction_end)
    off_reason = ibis.cases(
        (j.first_cr_date.notnull() & (j.relapse_date == post_cr_end), "relapse"),
        (j.death_date.notnull() & (j.death_date == protocol_end), "death"),
        (j.hsct_date.notnull() & (j.hsct_date == protocol_end), "hsct"),
        (
            j.first_cr_date.isnull() & stopped & (stop_date == induction_end),
            ibis.literal("sorafenib stopped: ").concat(j.sorafenib_end_reason),
        ),
        else_=ibis.null("string"),
    )
    phase = ibis.cases(
        (j.first_cr_date.notnull() & post_cr_end.isnull(), "post_cr"),
        (j.first_cr_date.isnull() & induction_end.isnull(), "induction"),
        else_="off_protocol",
    )
    return j.filter(j.first_dose <= end).mutate(
        induction_end=induction_end,
        post_cr_end=post_cr_end,
        protocol_end=protocol_end,
        bound=end,
        phase=phase,
        off_reason=ibis.ifelse(phase == "off_protocol", off_reason, ibis.null("string")),
    )


def _least(*xs: ir.DateValue) -> ir.DateValue:
    """Earliest non-NULL date (NULL if all are NULL)."""
    far = ibis.literal(dt.date(9999, 12, 31), "date")
    m = ibis.least(*[x.fill_null(far) for x in xs])
    return ibis.ifelse(m == far, ibis.null("date"), m)


def phase_window(per: ir.Table, phase: str) -> tuple[ir.DateValue, ir.DateValue]:
    """Start and end (bound when open) of ``phase`` in a :func:`periods` table; NULL start: never entered."""
    if phase == "induction":
        return per.first_dose, per.induction_end.fill_null(per.bound)
    return per.first_cr_date, per.post_cr_end.fill_null(per.bound)
