"""Each patient's key dates, in one place: the endpoints and the protocol read the same dates.

:func:`key_dates` gives, per patient with a first dose (study day 1, :meth:`Cohort.first_dose`,
which follows the study's index drug): ``first_dose``, ``first_cr_date`` (first CR under the
response criteria), ``relapse_date`` (first relapse after the first CR), ``death_date``,
``hsct_date``, ``last_alive`` (the latest date of any record of the patient -- events,
assessments, exposure ends or starts -- capped at the bound: a record after the cut-off makes the
patient known alive at the cut-off) and ``bound``.

The **bound** is the data cut-off (bundle metadata) or, with ``as_of``, the earlier of the cut-off
and that date. Nothing dated after the bound is read: :class:`AsOf` is the view of a cohort with
only the data known on a date (rows dated later are dropped; end, resolution and worst-grade dates
after it are blanked with what depends on them), and every date here is computed on it.

The same dates in R (survival/ADaM practice): ``last_alive`` is the censoring date of OS; relapse
counts only after CR (``ELN 2017``), events after the cut-off are not counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import ibis
import ibis.expr.types as ir

from amlcohort.criteria import response as resp
from amlcohort.io.cohort import Cohort
from amlcohort.io.metadata import BundleMetadata

KEY_DATE_COLUMNS = (
    "patient_id",
    "first_dose",
    "first_cr_date",
    "relapse_date",
    "death_date",
    "hsct_date",
    "last_alive",
    "bound",
)


@dataclass
class AsOf:
    """A cohort view with only the data known on ``on`` (see the module docstring)."""

    cohort: Cohort
    on: dt.date

    @property
    def metadata(self) -> BundleMetadata:
        return replace(self.cohort.metadata, cutoff_date=min(self.cohort.metadata.cutoff_date, self.on))

    @property
    def study(self) -> Any:
        return getattr(self.cohort, "study", None)

    @property
    def con(self) -> ibis.BaseBackend:
        return self.cohort.con

    def has(self, name: str) -> bool:
        has = getattr(self.cohort, "has", None)
        return True if has is None else bool(has(name))

    def _blank(self, t: ir.Table, col: str, also: tuple[str, ...] = ()) -> ir.Table:
        on = ibis.literal(self.on, "date")
        late = t[col].notnull() & (t[col] > on)
        out = {col: ibis.ifelse(late, ibis.null("date"), t[col])}
        day = col[: -len("_date")] + "_study_day"
        if day in t.columns:
            out[day] = ibis.ifelse(late, ibis.null(t[day].type()), t[day])
        for c in also:
            if c in t.columns:
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
        """The cohort's first doses (study day 1) known on ``on``: the same day 1 as the cohort's."""
        fd = self.cohort.first_dose()
        return fd.filter(fd.first_dose <= ibis.literal(self.on, "date"))


def as_of(cohort: Cohort | AsOf, on: dt.date) -> AsOf:
    """The view of ``cohort`` (or of a view, then the earlier date) with the data known on ``on``."""
    if isinstance(cohort, AsOf):
        return AsOf(cohort.cohort, min(cohort.on, on))
    return AsOf(cohort, on)


_as_of = as_of


def bound(cohort: Cohort | AsOf) -> dt.date:
    """The last date a cohort (or view) knows: its cut-off, or the view's date."""
    return cohort.metadata.cutoff_date


def _latest_record(view: Cohort | AsOf) -> ir.Table:
    """Per patient: ``last``, the latest date of any record (events, assessments, exposure ends)."""
    ev, a, ex = view.table("events"), view.table("assessments"), view.table("exposures")
    dates = (
        ev.select("patient_id", d=ev.event_date)
        .union(a.select("patient_id", d=a.assessment_date))
        .union(ex.select("patient_id", d=ex.end_date.fill_null(ex.start_date)))
    )
    return dates.group_by("patient_id").aggregate(last=dates.d.max())


def last_known_alive(cohort: Cohort | AsOf, as_of: dt.date | None = None) -> ir.Table:
    """Per patient: ``last_alive``, the latest date of any record capped at the bound (the cut-off,
    or ``as_of``): the censoring date of OS, as in :func:`key_dates`."""
    view: Cohort | AsOf = _as_of(cohort, as_of) if as_of is not None else cohort
    last = _latest_record(view)
    return last.select("patient_id", last_alive=ibis.least(last["last"], ibis.literal(bound(view), "date")))


def key_dates(
    cohort: Cohort | AsOf,
    as_of: dt.date | None = None,
    *,
    criteria: str | None = None,
    responses: ir.Table | None = None,
) -> ir.Table:
    """Per patient: the key dates (columns ``KEY_DATE_COLUMNS``), one Ibis expression.

    ``as_of``: only the data known on that date (see :class:`AsOf`). ``criteria``: the response
    criteria set for the first CR (default: the study definition's, counting assessments up to its
    response landmark); ``responses``: an already derived (e.g. cached, landmark-filtered)
    response table to use instead.
    """
    view: Cohort | AsOf = _as_of(cohort, as_of) if as_of is not None else cohort
    if responses is None:
        study = getattr(getattr(view, "cohort", view), "study", None)
        criteria = criteria or getattr(study, "criteria", None) or "study"
        cached = getattr(view, "cached_key_dates", None)  # a cohort that materialises them once
        if callable(cached):
            return cached(criteria)
    end = ibis.literal(bound(view), "date")
    first = view.first_dose()
    if responses is None:
        responses = resp.derive(view, criteria)
        landmark = getattr(study, "response_landmark_days", None)
        if landmark is not None:
            responses = responses.filter(responses.assessment_study_day <= landmark)
    fcr = resp.first_cr(responses).select("patient_id", "first_cr_date")
    all_ev = view.table("events")
    ev = all_ev.filter(all_ev.event_date <= end)
    evs = ev.group_by("patient_id").aggregate(
        hsct_date=ev.event_date.min(where=ev.event_type == "hsct"),
        death_date=ev.event_date.min(where=ev.event_type == "death"),
    )
    rel = ev.filter(ev.event_type == "relapse").inner_join(fcr, "patient_id")
    rel = rel.filter(rel.event_date > rel.first_cr_date)
    rel = rel.group_by("patient_id").aggregate(relapse_date=rel.event_date.min())
    last = _latest_record(view)
    # One flat join (no nested projections: SQLite's parser has a depth limit).
    j = first
    for t in (fcr, rel, evs, last):
        j = j.left_join(t, first.patient_id == t.patient_id)
    return j.select(
        first.patient_id,
        first.first_dose,
        fcr.first_cr_date,
        rel.relapse_date,
        evs.death_date,
        evs.hsct_date,
        last_alive=ibis.least(last["last"], end),
        bound=end,
    )
