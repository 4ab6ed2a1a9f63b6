"""Checking one form row with the checks ``amlcohort validate`` runs on a bundle.

The submitted text is staged as a one-row table and checked by
:func:`amlcohort.io.validate.table_problems` (required, type, allowed values, units, possible and
plausible ranges) and typed by :func:`amlcohort.io.validate.parsed` -- the same functions, so a
value the form accepts is a value the bundle loader accepts. The key is checked against the
other rows of the study (the bundle's ``key.duplicate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa

from amlcohort.io.metadata import BundleMetadata
from amlcohort.io.readers import ROW
from amlcohort.io.validate import Staged, parsed, table_problems
from amlcohort.problems import Problem
from amlcohort.schema import Table
from amlcohort.schema.study import StudyDefinition

_SKIP = {"table.missing", "table.absent", "table.unknown", "column.unknown"}


@dataclass(frozen=True)
class Checked:
    """A checked row: typed values (canonical units) and the problems by column."""

    values: dict[str, Any]
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors

    def by_column(self) -> dict[str, list[Problem]]:
        out: dict[str, list[Problem]] = {}
        for p in self.problems:
            out.setdefault(p.column or "", []).append(p)
        return out


def check_row(model: Table, raw: Mapping[str, str | None], meta: BundleMetadata) -> Checked:
    """Check the text of one row of ``model`` as a bundle row would be checked."""
    cells = {c.name: _cell(raw.get(c.name)) for c in model.columns}
    table = pa.table({ROW: pa.array([1], pa.int64()),
                      **{k: pa.array([v], pa.string()) for k, v in cells.items()}})
    con = ibis.duckdb.connect()
    t = con.create_table(f"raw_{model.name}", table)
    problems = [p for p in table_problems(Staged(con, {model.name: t}), meta)
                if p.table == model.name and p.code not in _SKIP]
    typed = t.select(**{c.name: parsed(t[c.name], c) for c in model.columns}).to_pyarrow().to_pylist()[0]
    con.disconnect()
    return Checked(typed, tuple(problems))


Choices = dict[str, dict[str, list[tuple[str, str]]]]  # table → column → [(value, label)]


def field_choices(study: StudyDefinition | None) -> Choices:
    """The choices the declared study definition gives the open vocabularies of the model: the arm
    (``patients.study_arm``: the arms of ``study.yaml``) and the drug (``exposures.drug``,
    ``adverse_events.action_drug``: the drugs of the arms' regimens). Empty when the study declares
    no arms (the fields stay open text), or no regimen (the drug fields stay open text)."""
    if study is None or not study.arms:
        return {}
    out: Choices = {"patients": {"study_arm": [(a.code, f"{a.code} — {a.label}") for a in study.arms]}}
    drugs = list(dict.fromkeys(d for a in study.arms for d in a.drugs))
    if drugs:
        arms = {d: [a.code for a in study.arms if d in a.drugs] for d in drugs}
        opts = [(d, f"{d} — {', '.join(arms[d])}") for d in drugs]
        out["exposures"] = {"drug": opts}
        out["adverse_events"] = {"action_drug": opts}
    return out


def _cell(v: str | None) -> str | None:
    if v is None:
        return None
    v = str(v)
    return None if v.strip() == "" else v


def form_text(v: Any) -> str:
    """A stored value as the form shows it."""
    from amlcohort.workspace.store import as_text

    t = as_text(v)
    return "" if t is None else t
