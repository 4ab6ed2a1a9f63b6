"""The patient timeline: marrow blasts and counts over study days, exposures as bars per drug,
events and adverse events as markers -- drawn from the patient's rows as inline SVG.

The study days come from one Ibis query over the patient's rows, with the functions the bundle
loader uses (:func:`amlcohort.io.consistency.first_doses` for study day 1: the first dose of the
study's index drug, else of any drug; :func:`amlcohort.io.cohort.study_day`, no day 0). A patient
without a first dose yet is drawn from the diagnosis date (the caption says so). This module
computes the geometry only; ``templates/_timeline.html`` writes the SVG, and Jinja's escaping
keeps every text from the data (drug names, terms) text, never markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from amlcohort.io.cohort import study_day
from amlcohort.io.consistency import first_doses
from amlcohort.schema import TABLES_BY_NAME
from amlcohort.schema.study import StudyDefinition

WIDTH = 960
LEFT = 170  # lane labels
RIGHT = 90  # room for the label of a mark on the last day (e.g. "death")
TOP = 28  # the axis
SERIES = ("marrow_blasts_pct", "anc", "platelets")  # assessment columns drawn as series
SERIES_HEIGHT = {"marrow_blasts_pct": 70, "anc": 50, "platelets": 50}
BAR_LANE = 18
MARKER_LANE = 30
_TICK_STEPS = (1, 2, 7, 14, 28, 56, 91, 182, 365, 730)

# the timeline's items: (table, kind, date, end date, lane text, label text)
_ITEMS = (
    ("assessments", "assessment", "assessment_date", None, None, None),
    ("exposures", "exposure", "start_date", "end_date", "drug", "drug"),
    ("events", "event", "event_date", None, None, "event_type"),
    ("adverse_events", "ae", "onset_date", "resolution_date", None, "term"),
)
_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
          "bool": pa.bool_()}


@dataclass(frozen=True)
class Mark:
    """One drawn mark of one row (``kind``: assessment, exposure, event, ae)."""

    kind: str
    row_id: int
    x: float
    y: float
    w: float = 0.0
    h: float = 0.0
    title: str = ""
    label: str = ""
    points: tuple[tuple[str, float, float, str], ...] = ()  # assessment values: (column, x, y, title)


@dataclass(frozen=True)
class Lane:
    label: str
    y: float
    h: float
    unit: str = ""
    top_value: str = ""


@dataclass
class Timeline:
    width: int
    height: int
    day1: str  # what study day 1 is
    lanes: list[Lane] = field(default_factory=list)
    ticks: list[tuple[float, int]] = field(default_factory=list)  # (x, study day)
    day1_x: float | None = None
    marks: list[Mark] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (column, SVG points) per series

    def count(self, kind: str) -> int:
        return sum(m.kind == kind for m in self.marks)


def _table(name: str, rows: Sequence[Mapping]) -> pa.Table:
    model = TABLES_BY_NAME[name]
    schema = pa.schema([("id", pa.int64()), *[(c.name, _ARROW[c.dtype]) for c in model.columns]])
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def timeline_rows(patient: Mapping, data: Mapping[str, Sequence[Mapping]], index_drug: str | None
                  ) -> tuple[list[dict], bool]:
    """The timeline's items with their study days (one Ibis query); and whether day 1 is the first
    dose (False: no first dose yet, days counted from the diagnosis date)."""
    con = ibis.duckdb.connect()
    try:
        t = {name: con.create_table(name, _table(name, data.get(name, ()))) for name, *_ in _ITEMS}
        first = first_doses(t["exposures"], index_drug).first_dose.max()  # one patient: one row
        diagnosis = ibis.literal(patient.get("diagnosis_date"), "date")
        day1 = ibis.coalesce(first.as_scalar(), diagnosis)
        parts: list[ir.Table] = []
        for name, kind, date, end, lane, label in _ITEMS:
            x = t[name]
            parts.append(x.select(
                kind=ibis.literal(kind), row_id=x.id,
                day=study_day(x[date], day1),
                end_day=study_day(x[end], day1) if end else ibis.null("int64"),
                date=x[date].cast("string"),
                end=x[end].cast("string") if end else ibis.null("string"),
                lane=x[lane] if lane else ibis.null("string"),
                label=x[label] if label else ibis.null("string"),
                grade=x.grade if name == "adverse_events" else ibis.null("int64"),
                dose=(x.dose.cast("string") + " " + x.dose_unit.fill_null("")) if name == "exposures"
                else ibis.null("string"),
                **{c: x[c] if name == "assessments" else ibis.null("float64") for c in SERIES},
                has_first=first.notnull().as_scalar()))
        rows = ibis.union(*parts).to_pyarrow().to_pylist()
        return rows, bool(rows and rows[0]["has_first"])
    finally:
        con.disconnect()


def _ticks(lo: int, hi: int) -> list[int]:
    span = max(hi - lo, 1)
    step = next((s for s in _TICK_STEPS if span / s <= 10), _TICK_STEPS[-1])
    start = 1 + math.floor((lo - 1) / step) * step  # aligned on study day 1
    return [d for d in range(start, hi + 1, step) if lo <= d <= hi]


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= v)


def _fmt(v: float) -> str:
    return f"{v:g}"


def layout(rows: list[dict], day1: str, units: Mapping[str, str]) -> Timeline | None:
    """The geometry of the timeline (None when no row has a date)."""
    dated = [r for r in rows if r["day"] is not None]
    if not dated:
        return None
    days = [r["day"] for r in dated] + [r["end_day"] for r in dated if r["end_day"] is not None]
    lo, hi = min(days), max(days)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    plot = WIDTH - LEFT - RIGHT

    def x(day: int) -> float:
        return round(LEFT + (day - lo) / (hi - lo) * plot, 1)

    tl = Timeline(WIDTH, 0, day1)
    y = TOP
    ys: dict[str, tuple[float, float, float]] = {}  # series column → (lane top, height, top value)
    for c in SERIES:
        vals = [r[c] for r in dated if r["kind"] == "assessment" and r[c] is not None]
        top = 100.0 if c == "marrow_blasts_pct" else _nice_max(max(vals, default=0.0))
        ys[c] = (y, SERIES_HEIGHT[c], top)
        tl.lanes.append(Lane(c.replace("_pct", "").replace("_", " "), y, SERIES_HEIGHT[c], units.get(c, ""),
                             _fmt(top)))
        y += SERIES_HEIGHT[c] + 8
    drugs = list(dict.fromkeys(r["lane"] for r in dated if r["kind"] == "exposure"))
    drug_y = {}
    for d in drugs:
        drug_y[d] = y
        tl.lanes.append(Lane(d or "(no drug)", y, BAR_LANE))
        y += BAR_LANE + 4
    event_y, ae_y = y + 4, y + MARKER_LANE + 8
    tl.lanes += [Lane("events", event_y, MARKER_LANE), Lane("adverse events", ae_y, MARKER_LANE)]
    tl.height = int(ae_y + MARKER_LANE + 24)
    tl.ticks = [(x(d), d) for d in _ticks(lo, hi)]
    tl.day1_x = x(1) if lo <= 1 <= hi else None

    series: dict[str, list[str]] = {c: [] for c in SERIES}
    for r in sorted(dated, key=lambda r: (r["day"], r["row_id"])):
        rx = x(r["day"])
        when = f"{r['date']} (day {r['day']})"
        if r["kind"] == "assessment":
            points = []
            for c in SERIES:
                if r[c] is None:
                    continue
                top_y, h, top = ys[c]
                py = round(top_y + h - min(r[c], top) / top * h, 1)
                unit = f" {units[c]}" if units.get(c) else ""
                points.append((c, rx, py, f"{c} {_fmt(r[c])}{unit} on {when}"))
                series[c].append(f"{rx},{py}")
            tl.marks.append(Mark("assessment", r["row_id"], rx, TOP, 0, ae_y - TOP - 4,
                                 f"assessment {when}", points=tuple(points)))
        elif r["kind"] == "exposure":
            end = r["end_day"] if r["end_day"] is not None and r["end_day"] >= r["day"] else r["day"]
            ends = f"to {r['end']} (day {r['end_day']})" if r["end"] else "no end date"
            dose = f" {r['dose']}" if r["dose"] else ""
            tl.marks.append(Mark("exposure", r["row_id"], rx, drug_y[r["lane"]], max(x(end) - rx, 2.0),
                                 BAR_LANE, f"{r['lane']}{dose} from {when} {ends}"))
        elif r["kind"] == "event":
            tl.marks.append(Mark("event", r["row_id"], rx, event_y + MARKER_LANE / 2,
                                 title=f"{r['label']} {when}", label=r["label"] or ""))
        else:
            grade = f" grade {r['grade']}" if r["grade"] is not None else ""
            tl.marks.append(Mark("ae", r["row_id"], rx, ae_y + MARKER_LANE / 2,
                                 title=f"{r['label']}{grade} from {when}",
                                 label=f"G{r['grade']}" if r["grade"] is not None else "AE"))
    tl.lines = [(c, " ".join(pts)) for c, pts in series.items() if len(pts) > 1]
    return tl


def patient_timeline(patient: Mapping, data: Mapping[str, Sequence[Mapping]],
                     study: StudyDefinition | None) -> Timeline | None:
    """The patient's timeline from their rows (``data``: rows by table, as the patient page reads
    them); None when nothing is dated yet."""
    index_drug = study.index_drug if study is not None else None
    rows, has_first = timeline_rows(patient, data, index_drug)
    if has_first:
        day1 = f"study day 1 = first {index_drug or 'study drug'} dose"
    else:
        day1 = "no first dose entered yet: day 1 = the diagnosis date"
    units = {c.name: c.unit or "" for c in TABLES_BY_NAME["assessments"].columns}
    return layout(rows, day1, units)


__all__ = ["Lane", "Mark", "Timeline", "layout", "patient_timeline", "timeline_rows"]
