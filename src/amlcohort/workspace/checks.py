"""The checks across tables of ``amlcohort validate``, run on one patient's rows at each save.

:func:`amlcohort.io.consistency.consistency_problems` -- the very function the bundle loader runs
(date order against the diagnosis, study day 1, the first CR and death; dates after the cut-off;
arms and regimens of the declared study definition; the diagnosis category) -- runs on the
patient's rows as they would be after the change. Its ``_row`` column carries the database row id
(0: the row being created), so a finding points at a row of the page. The messages are the
validator's own.

A save is refused while it would add an error (the study would no longer export), except the
findings that only say something is not entered yet (:data:`NOT_YET_ENTERED`: a new patient has no
first dose until its exposure is entered). Warnings never block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from amlcohort.io.consistency import consistency_problems
from amlcohort.io.readers import ROW
from amlcohort.problems import Problem
from amlcohort.schema import TABLES
from amlcohort.schema.study import StudyDefinition
from amlcohort.workspace import db, store

#: Validator findings that say what is not entered yet: shown, but entry goes on.
NOT_YET_ENTERED = frozenset({"anchor.missing"})
NEW_ROW = 0  # the ``_row`` of the row being created

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
          "bool": pa.bool_()}


@dataclass(frozen=True)
class Change:
    """One write: ``values`` None deletes row ``row_id``; ``row_id`` None creates a row."""

    table: str
    row_id: int | None
    values: Mapping[str, Any] | None


def declared_study(con: Connection, st: dict) -> StudyDefinition | None:
    """The study definition as declared in the study's ``study.yaml`` (None when it has none) --
    what the validator checks the data against."""
    from amlcohort.io.study import read_study

    declared, _problems, _exists = read_study(store.study_folder(con, st["id"]))
    return declared


def patient_rows(con: Connection, study_id: int, patient_id: str, change: Change | None = None
                 ) -> dict[str, pa.Table]:
    """The patient's rows of every table (``_row`` = database id), with ``change`` applied."""
    out = {}
    for model in TABLES:
        t = db.COHORT[model.name]
        q = (sa.select(t.c.id.label(ROW), *[t.c[c] for c in model.column_names])
             .where(t.c.study_id == study_id, t.c.patient_id == patient_id).order_by(t.c.id))
        data = [dict(r) for r in con.execute(q).mappings()]
        if change is not None and change.table == model.name:
            data = _applied(data, change, model.column_names)
        schema = pa.schema([(ROW, pa.int64()), *[(c.name, _ARROW[c.dtype]) for c in model.columns]])
        out[model.name] = pa.Table.from_pylist(data, schema=schema)
    return out


def _applied(data: list[dict], change: Change, columns: Iterable[str]) -> list[dict]:
    kept = [r for r in data if r[ROW] != change.row_id]
    if change.values is None:
        return kept
    return [*kept, {ROW: change.row_id if change.row_id is not None else NEW_ROW,
                    **{c: change.values.get(c) for c in columns}}]


def patient_problems(con: Connection, st: dict, patient_id: str, change: Change | None = None
                     ) -> list[Problem]:
    """The validator's cross-table findings on the patient's rows (after ``change``)."""
    meta = store.study_metadata(con, st["id"])
    duck = ibis.duckdb.connect()
    try:
        tables = {name: duck.create_table(name, rows)
                  for name, rows in patient_rows(con, st["id"], patient_id, change).items()}
        return list(consistency_problems(tables, meta.cutoff_date, declared_study(con, st)))
    finally:
        duck.disconnect()


def _key(p: Problem) -> tuple:
    return (p.table, p.row, p.column, p.code)


def blocking(after: list[Problem], before: Callable[[], list[Problem]]) -> list[Problem]:
    """The errors ``after`` adds: an error on the new row is new; the others are compared with
    ``before`` (only computed then)."""
    errors = [p for p in after if p.severity == "error" and p.code not in NOT_YET_ENTERED]
    if all(p.row == NEW_ROW for p in errors):
        return errors
    had = {_key(p) for p in before()}
    return [p for p in errors if _key(p) not in had]


def check_change(con: Connection, st: dict, patient_id: str, change: Change
                 ) -> tuple[list[Problem], list[Problem]]:
    """(errors the change would add, every finding after it)."""
    after = patient_problems(con, st, patient_id, change)
    return blocking(after, lambda: patient_problems(con, st, patient_id)), after


def on_row(problems: Iterable[Problem], table: str, row_id: int | None) -> list[Problem]:
    """The findings on one row (``row_id`` None: the row being created)."""
    row = NEW_ROW if row_id is None else row_id
    return [p for p in problems if p.table == table and p.row == row]


def where(p: Problem) -> str:
    """Where a finding is, in the page's words."""
    if p.row is None:
        return p.table
    row = "this row" if p.row == NEW_ROW else f"row #{p.row}"
    return f"{p.table} {row}" + (f", {p.column}" if p.column else "")


__all__ = ["NOT_YET_ENTERED", "Change", "blocking", "check_change", "declared_study", "on_row",
           "patient_problems", "patient_rows", "where"]
