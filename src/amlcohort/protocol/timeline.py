"""Time on the protocol: the data as known on a date, calendar arithmetic, and each patient's phases.

* :func:`as_of` gives a view of a cohort holding only what was known on a date: rows dated after
  it are dropped, and end/resolution/worst-grade dates after it are blanked (with what depends on
  them). Everything :mod:`amlcohort.protocol` computes "on a date" reads this view, so no later
  data can leak in.
* Intervals are days or calendar months. A month is the same day of the next month, clipped to
  that month's last day (31 Jan → 28 Feb, or 29 Feb in a leap year; 31 Mar → 30 Apr), as DuckDB
  adds ``INTERVAL 1 MONTH``; :func:`add_interval` is the Python twin, tested against it.
* Phases (:func:`periods`): *induction* from study day 1 (first dose) to the first CR
  (response criteria, :mod:`amlcohort.criteria.response`) or leaving the protocol (the last
  dose of the index drug when it stopped for a reason other than interruption or dose change, HSCT,
  death); *post_cr* from the first CR to relapse, HSCT or death. Open phases end at the bound
  (the data cut-off, or the date of an as-of view).
"""

from __future__ import annotations

import calendar
import datetime as dt

import ibis
import ibis.expr.types as ir

from amlcohort.endpoints.key_dates import AsOf, as_of, bound, key_dates
from amlcohort.io.cohort import Cohort

__all__ = [
    "CONTINUING_END_REASONS",
    "AsOf",
    "add_interval",
    "add_months",
    "as_of",
    "bound",
    "days_between",
    "index_drug",
    "interval_expr",
    "periods",
    "phase_window",
]

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


# ---- the data as known on a date: amlcohort.endpoints.key_dates (AsOf, as_of, bound) ------------


# ---- phases ---------------------------------------------------------------------------------


def index_drug(cohort: Cohort | AsOf, protocol: object | None = None) -> str | None:
    """The drug the protocol's day 1, maintenance and stopping rule refer to: the protocol file's
    ``index_drug``, else the study definition's; None = any drug of the regimen."""
    named = getattr(protocol, "index_drug", None)
    if named:
        return named
    study = getattr(cohort, "study", None)
    return getattr(study, "index_drug", None)


def index_exposures(cohort: Cohort | AsOf, protocol: object | None = None) -> ir.Table:
    """Exposures of the index drug (every exposure when there is none)."""
    ex = cohort.table("exposures")
    drug = index_drug(cohort, protocol)
    return ex if drug is None else ex.filter(ex.drug == drug)


def periods(cohort: Cohort | AsOf, protocol: object | None = None) -> ir.Table:
    """One row per patient who started treatment (on or before the bound), with the phase dates.

    Columns: the key dates (:func:`amlcohort.endpoints.key_dates.key_dates`: patient_id,
    first_dose, first_cr_date, relapse_date after the first CR, death_date, hsct_date,
    last_alive, bound), last_index_date (last dose of the index drug; NULL while it goes on),
    index_end_reason, induction_end, post_cr_end, protocol_end (NULL: open at the bound), phase
    (at the bound: ``induction``, ``post_cr``, ``off_protocol``), off_reason.
    """
    kd = key_dates(cohort)
    drug = index_drug(cohort, protocol)
    ix = index_exposures(cohort, protocol)
    far = ibis.literal(dt.date(9999, 12, 31), "date")
    ix_end = ix.group_by("patient_id").aggregate(
        ongoing=ix.end_date.isnull().any(),
        last_end=ix.end_date.max(),
        last_reason=ix.end_reason.argmax(ix.end_date.fill_null(far)),
    )
    j = kd.left_join(ix_end, kd.patient_id == ix_end.patient_id)
    j = j.select(
        kd,
        last_index_date=ibis.ifelse(ix_end.ongoing, ibis.null("date"), ix_end.last_end),
        index_end_reason=ibis.ifelse(ix_end.ongoing, ibis.null("string"), ix_end.last_reason),
    )
    stopped = j.last_index_date.notnull() & ~j.index_end_reason.isin(CONTINUING_END_REASONS).fill_null(False)
    stop_date = ibis.ifelse(stopped, j.last_index_date, ibis.null("date"))
    leave = _least(stop_date, j.hsct_date, j.death_date)
    induction_end = _least(j.first_cr_date, leave)
    post_cr_end = ibis.ifelse(
        j.first_cr_date.notnull(), _least(j.relapse_date, j.hsct_date, j.death_date), ibis.null("date")
    )
    protocol_end = ibis.ifelse(j.first_cr_date.notnull(), post_cr_end, induction_end)
    stopped_text = f"{drug} stopped: " if drug else "treatment stopped: "
    off_reason = ibis.cases(
        (j.first_cr_date.notnull() & (j.relapse_date == post_cr_end), "relapse"),
        (j.death_date.notnull() & (j.death_date == protocol_end), "death"),
        (j.hsct_date.notnull() & (j.hsct_date == protocol_end), "hsct"),
        (
            j.first_cr_date.isnull() & stopped & (stop_date == induction_end),
            ibis.literal(stopped_text).concat(j.index_end_reason),
        ),
        else_=ibis.null("string"),
    )
    phase = ibis.cases(
        (j.first_cr_date.notnull() & post_cr_end.isnull(), "post_cr"),
        (j.first_cr_date.isnull() & induction_end.isnull(), "induction"),
        else_="off_protocol",
    )
    return j.filter(j.first_dose <= j.bound).mutate(
        induction_end=induction_end,
        post_cr_end=post_cr_end,
        protocol_end=protocol_end,
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
