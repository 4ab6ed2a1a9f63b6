"""A per-patient derivation over a large cohort, run one block of patients at a time.

Every derivation of amlcohort is per patient: one patient's rows never depend on another's. Over a
registry, though, one query for all patients builds wide intermediate rows (every assessment with
every rule input, twice over) that no longer fit the in-process DuckDB's memory and spill to disk:
the response derivation of 10^6 synthetic patients (4.3 x 10^7 assessments) wrote over 20 GB of
temporary files and ran for more than ten minutes. Run per block of about :data:`BLOCK_ROWS`
assessments, each block's intermediates fit in memory; each block's result is written as a table
of its own and compressed (``CHECKPOINT``) before the next block runs, and the result is the view
of all the blocks (``UNION ALL``). Same rows as the one query (``tests/engines/test_blocks.py``).

Only on the in-process DuckDB, and only when the cohort has more than one block of assessments;
otherwise (a small cohort; PostgreSQL or Spark, which plan and spill on their own) the derivation
is one query, materialised as the caller's ``.cache()`` would.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.types as ir

__all__ = ["BLOCK_ROWS", "BYTES_PER_ROW", "PatientBlock", "block_rows_for", "materialise_by_patient",
           "memory_limit_bytes", "patient_blocks"]

#: Memory the response derivation needs per assessment in one query (measured: 4.4 x 10^6
#: assessments of 10^5 synthetic patients peaked at 2.9 GB in DuckDB). A block holds as many
#: assessments as the connection's memory limit allows at this rate (:func:`block_rows`).
BYTES_PER_ROW = 600
#: Assessments per block when the connection's memory limit cannot be read.
BLOCK_ROWS = 1_500_000
_UNITS = {"bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

_NUMBERS = itertools.count(1)
#: Stand-ins for a block's bounds in the SQL compiled once for every block of the same shape.
_LO, _HI = "amlcohort-block-lo-3f9c1e", "amlcohort-block-hi-3f9c1e"


class PatientBlock:
    """The cohort's patients ``lo <= patient_id < hi`` (None: open end), for a derivation that reads
    ``table(name)``, ``first_dose()`` and ``has(name)`` (the ``CohortLike`` of the derivations);
    every other attribute is the cohort's."""

    def __init__(self, cohort: Any, lo: str | None, hi: str | None) -> None:
        self._cohort = cohort
        self.lo, self.hi = lo, hi

    def _only(self, t: ir.Table) -> ir.Table:
        if "patient_id" not in t.columns:
            return t
        conds = []
        if self.lo is not None:
            conds.append(t.patient_id >= self.lo)
        if self.hi is not None:
            conds.append(t.patient_id < self.hi)
        return t.filter(*conds) if conds else t

    def table(self, name: str) -> ir.Table:
        return self._only(self._cohort.table(name))

    def first_dose(self) -> ir.Table:
        return self._only(self._cohort.first_dose())

    def has(self, name: str) -> bool:
        has = getattr(self._cohort, "has", None)
        return True if has is None else bool(has(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cohort, name)


def patient_blocks(patients: ir.Table, n_blocks: int) -> list[tuple[str | None, str | None]]:
    """``n_blocks`` (at most) ranges of patient ids, ``(lo, hi)`` with ``lo`` included and ``hi``
    excluded (None: open end), of about as many patients each: the boundaries are every k-th id in
    sorted order, found by the engine (only the boundaries come back)."""
    ids = patients.select("patient_id").distinct()
    n = int(ids.count().execute())
    if n_blocks <= 1 or n <= 1:
        return [(None, None)]
    size = math.ceil(n / n_blocks)
    ranked = ids.mutate(_k=ibis.row_number().over(order_by="patient_id"))
    cuts = ranked.filter((ranked._k % size == 0) & (ranked._k > 0)).order_by("patient_id")
    bounds = [str(b) for b in cuts.patient_id.execute().tolist()]
    edges: list[str | None] = [None, *bounds, None]
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if lo != hi]


def memory_limit_bytes(con: Any) -> int | None:
    """The DuckDB connection's memory limit in bytes (None: not readable)."""
    try:
        text = str(con.con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        number, unit = text.split()
        return int(float(number) * _UNITS[unit.lower()])
    except Exception:  # not DuckDB, or a format this does not know: the fixed block size
        return None


def block_rows_for(con: Any) -> int:
    """Assessments per block on ``con``: its memory limit over :data:`BYTES_PER_ROW` (at least
    100,000), or :data:`BLOCK_ROWS` when the limit cannot be read."""
    limit = memory_limit_bytes(con)
    return BLOCK_ROWS if limit is None else max(100_000, limit // BYTES_PER_ROW)


def materialise_by_patient(
    cohort: Any, build: Callable[[Any], ir.Table], *, rows: int | None = None, block_rows: int | None = None
) -> ir.Table:
    """``build(cohort)`` materialised: per block of patients (see the module docstring) when the
    cohort's connection is the in-process DuckDB and it has more assessments than ``block_rows``
    (default: :func:`block_rows_for` the connection; ``rows``: the count, when the caller knows
    it), else as one ``.cache()``. ``build`` must be a per-patient derivation that reads the cohort
    only through ``table``, ``first_dose`` and ``has``."""
    con = cohort.con
    if getattr(con, "name", None) != "duckdb":
        return build(cohort).cache()
    limit = block_rows_for(con) if block_rows is None else block_rows
    if rows is None:
        rows = int(cohort.table("assessments").count().execute())
    n_blocks = math.ceil(rows / max(limit, 1))
    if n_blocks <= 1:
        return build(cohort).cache()
    bounds = patient_blocks(cohort.table("patients"), n_blocks)
    number = next(_NUMBERS)
    parts: list[str] = []
    compiled: dict[tuple[bool, bool], str] = {}  # by which ends are open: compiled at most 3 times
    for lo, hi in bounds:
        name = f"amlcohort_blocks_{number}_{len(parts) + 1}"
        con.raw_sql(f'CREATE TABLE "{name}" AS {_block_sql(con, cohort, build, lo, hi, compiled)}')
        con.raw_sql("CHECKPOINT")  # compressed before the next block (a temporary table is not)
        parts.append(name)
    view = f"amlcohort_blocks_{number}"
    con.raw_sql(f'CREATE VIEW "{view}" AS ' + " UNION ALL ".join(f'SELECT * FROM "{p}"' for p in parts))
    return con.table(view)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _block_sql(con: Any, cohort: Any, build: Callable[[Any], ir.Table], lo: str | None, hi: str | None,
               compiled: dict[tuple[bool, bool], str]) -> str:
    """The SQL of ``build`` on the block ``[lo, hi)``: compiled once per shape of block (first, middle,
    last) with stand-ins for the bounds, which are then replaced by the block's (compiling the
    response derivation takes longer than running it on a block)."""
    shape = (lo is None, hi is None)
    if shape not in compiled:
        block = PatientBlock(cohort, None if lo is None else _LO, None if hi is None else _HI)
        compiled[shape] = str(con.compile(build(block)))
    sql = compiled[shape]
    for stand_in, bound in ((_LO, lo), (_HI, hi)):
        if bound is not None:
            if _quoted(stand_in) not in sql:  # not as a plain literal: compile this block itself
                return str(con.compile(build(PatientBlock(cohort, lo, hi))))
            sql = sql.replace(_quoted(stand_in), _quoted(bound))
    return sql
