"""Validation of a cohort bundle against the cohort model, as Ibis queries.

Every check is a query that returns the offending rows (so it runs the same on DuckDB for a
13-patient study or on a database for a registry); each finding is a :class:`Problem` naming
table, row, column, value and reason. Errors stop the load; warnings are kept.

Checks, by code:

==========================  =======  ==========================================================
code                        level    what
==========================  =======  ==========================================================
table.missing               error    a required table is absent
table.unknown               warning  a table the model does not know (ignored)
table.absent                warning  an optional table is not supplied (treated as unknown)
column.missing              error    a required column is absent
column.unknown              warning  a column the model does not know (ignored)
value.required              error    a required value is empty
value.type                  error    text that is not of the column's type
value.allowed               error    a value outside the column's allowed values
value.range                 error    outside what is possible (e.g. blasts > 100 %, a count < 0)
value.implausible           warning  possible but implausible (e.g. age 12 at AML onset)
unit.undeclared             error    a measurement whose unit the metadata does not declare
unit.unknown                error    a declared unit the model cannot convert
unit.suspect                error    a value far more likely to be in another unit
unit.implausible            warning  a count declared per microlitre whose largest value in the table is
                                     implausibly small: the values look like 10^9/L (PER_MICROLITRE_FLOOR)
key.duplicate               error    two rows with the same key
key.unknown_patient         error    a row that references a patient not in `patients`
date.order                  error    dates in an impossible order
date.after_cutoff           warning  a date after the data cut-off
anchor.missing              error    a patient without an exposure to the index drug (no study day 1)
anchor.after_cutoff         error    a patient whose study day 1 is after the data cut-off (no follow-up)
arm.unknown                 error    a `study_arm` the study definition does not declare
drug.not_in_regimen         warning  an exposure to a drug the patient's arm regimen does not list
diagnosis.missing           warning  a patient with no diagnosis category in any classification
ae.fatal_without_death      warning  a grade-5 or `fatal` adverse event of a patient with no death in `events`
relapse.without_remission   warning  a relapse with no remission before it (no CR reported, no marrow
                                     blasts < 5 %, not entered in remission after the last prior line)
==========================  =======  ==========================================================

``key.unknown_patient``, ``date.*``, ``anchor.*``, ``arm.unknown``, ``drug.not_in_regimen``,
``diagnosis.missing``, ``ae.fatal_without_death`` and ``relapse.without_remission`` are checks
across tables (:mod:`amlcohort.io.consistency`). docs/bundles.md explains each code and its thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from amlcohort.io.metadata import BundleMetadata
from amlcohort.io.readers import ROW, TableSource, did_you_mean
from amlcohort.problems import Problem
from amlcohort.schema import TABLES, Column, Table

MAX_ROWS_REPORTED = 20
_INT = r"^\s*[+-]?\d+\s*$"
_FLOAT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_DATE = r"^\s*\d{4}-\d{2}-\d{2}\s*$"
# control characters other than tab, line feed and carriage return: no XML (so no XLSX or HTML
# report) can hold them, and in a cell they are a copy-and-paste or encoding accident
_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F]"
TRUE_WORDS = ("true", "yes", "y", "1", "t")
FALSE_WORDS = ("false", "no", "n", "0", "f")


@dataclass
class Staged:
    """Raw (text) tables on the staging connection, by name; ``checked``: the same tables
    typed in one pass (:func:`checked_table`), materialised by the loader, else built here.

    The loader gives no raw table: ``sources`` (:class:`~amlcohort.io.readers.TableSource`) name
    each table's columns and give the text of the few cells a problem names."""

    con: ibis.BaseBackend
    tables: dict[str, ir.Table]
    checked: dict[str, ir.Table] = field(default_factory=dict)
    sources: dict[str, TableSource] = field(default_factory=dict)

    def names(self) -> set[str]:
        """Every table supplied."""
        return set(self.tables) | set(self.sources)

    def columns(self, name: str) -> set[str]:
        """The columns table ``name`` has, ``_row`` not counted."""
        if name in self.tables:
            return set(self.tables[name].columns) - {ROW}
        return set(self.sources[name].columns)

    def cell_text(self, name: str, column: str, rows: list[int]) -> dict[int, str | None]:
        """The text of ``column`` at each of ``rows``, as written."""
        if name not in self.tables:
            return self.sources[name].cell_text(column, rows)
        raw = self.tables[name]
        cells = raw.filter(raw[ROW].isin(rows)).select(ROW, _raw=raw[column]).to_pyarrow()
        return dict(zip(cells[ROW].to_pylist(), cells["_raw"].to_pylist(), strict=True))


@dataclass(frozen=True)
class Finding:
    """One check as a query: ``expr`` returns the offending rows, ``make`` turns one (its ``columns``)
    into a :class:`Problem`.

    ``base`` and ``bad``, given together: ``expr`` is the rows of ``base`` where ``bad`` holds
    (and columns added to them); the checks on one ``base`` are then counted in one aggregate
    over it (:func:`report_findings`) instead of each being a query of its own."""

    expr: ir.Table
    columns: list[str]
    make: Callable[[dict], Problem]
    table: str
    code: str
    base: ir.Table | None = None
    bad: ir.BooleanValue | None = None


def report_findings(findings: list[Finding]) -> Iterator[Problem]:
    """Run many checks at once: ONE query counts the offending rows of every check, then only
    the checks that found something fetch their rows.

    The count (:func:`row_counts`) is one aggregate per ``base`` (a sum of each of its checks'
    ``bad``) and one per check without a base. Compiling a query costs Ibis time in proportion
    to its size, and here each table (or join) appears once, not once per check."""
    if not findings:
        return
    counts = row_counts([(f.expr, None) if f.base is None else (f.base, f.bad) for f in findings])
    for f, n in zip(findings, counts, strict=True):
        if n:
            yield from _problems(f, n)


def row_counts(checks: list[tuple[ir.Table, ir.BooleanValue | None]]) -> list[int]:
    """For each ``(table, bad)``: the number of rows of ``table`` where ``bad`` holds (every row
    when None), all in ONE query: an aggregate per table, one row holding the array of its
    checks' counts (a sum of ``bad``: a NULL is not counted), the rows of all tables a union
    (a join of single-row tables costs Ibis far more to build and compile)."""
    if not checks:
        return []
    groups: dict[object, tuple[ir.Table, list[int], list[ir.Value]]] = {}
    for i, (t, bad) in enumerate(checks):
        _, which, sums = groups.setdefault(t.op(), (t, [], []))
        which.append(i)
        sums.append(t.count() if bad is None else bad.cast("int64").sum())
    parts = [
        t.aggregate(_g=ibis.literal(g, "int64"), _n=ibis.array(sums))
        for g, (t, _, sums) in enumerate(groups.values())
    ]
    rows = (ibis.union(*parts) if len(parts) > 1 else parts[0]).to_pyarrow().to_pylist()
    counts = [0] * len(checks)
    for r in rows:
        for i, n in zip(list(groups.values())[r["_g"]][1], r["_n"], strict=True):
            counts[i] = int(n or 0)
    return counts


def _problems(f: Finding, n: int) -> Iterator[Problem]:
    sample = f.expr.order_by(ROW).limit(MAX_ROWS_REPORTED).select(*f.columns).to_pyarrow().to_pylist()
    for r in sample:
        yield f.make(r)
    if n > len(sample):
        first = f.make(sample[0])
        yield Problem(
            first.severity,
            f.table,
            f"... and {n - len(sample)} more row(s) with the same problem",
            None,
            first.column,
            None,
            f.code,
        )


# ---- parsing: text → typed value, as Ibis expressions -----------------------------------------


def parsed(col: ir.Value, c: Column) -> ir.Value:
    """The typed value of a text column (NULL where the text is not of the type).

    A column a Parquet file stores in the column's type (:func:`~amlcohort.io.readers.native_ok`)
    is typed as its text would be: the value itself, NULL for NaN and infinity (whose text,
    ``nan``/``inf``, is not a number)."""
    if not col.type().is_string():
        return _native(col, c)
    s = col.strip()
    if c.dtype == "string":
        return ibis.ifelse(s.re_search(_CONTROL), ibis.null("string"), s.lower() if c.lower_case else s)
    if c.dtype == "int":
        return ibis.ifelse(s.re_search(_INT), s.try_cast("int64"), ibis.null("int64"))
    if c.dtype == "float":
        return ibis.ifelse(s.re_search(_FLOAT), s.try_cast("float64"), ibis.null("float64"))
    if c.dtype == "date":
        return ibis.ifelse(s.re_search(_DATE), s.try_cast("date"), ibis.null("date"))
    low = s.lower()
    return ibis.cases(
        (low.isin(TRUE_WORDS), True), (low.isin(FALSE_WORDS), False), else_=ibis.null("boolean")
    )


def _native(col: ir.Value, c: Column) -> ir.Value:
    t = col.type()
    if c.dtype == "float" and t.is_float64():
        return ibis.ifelse(col.isnan() | col.isinf(), ibis.null("float64"), col)
    if c.dtype == "int" and t.is_integer():
        return col.cast("int64")
    if (c.dtype == "bool" and t.is_boolean()) or (c.dtype == "date" and t.is_date()):
        return col
    raise TypeError(f"column {c.name!r}: a {t} column is not typed as {c.dtype} (only text is)")


def text_of(col: ir.Value) -> ir.StringValue:
    """The text of a raw column as the reader writes it: text as is, a stored integer or date
    (:func:`~amlcohort.io.readers.native_ok`: four-digit years) as DuckDB and Arrow both write it."""
    t = col.type()
    if t.is_string():
        return col
    if not (t.is_integer() or t.is_date()):
        raise TypeError(f"no exact text for a {t} column")
    return col.cast("string")


def _type_reason(c: Column) -> str:
    return {
        "int": "not a whole number",
        "float": "not a number (use a point for decimals; no units or symbols in the cell)",
        "date": "not a date in the form YYYY-MM-DD",
        "bool": f"not a yes/no value ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})",
    }.get(c.dtype, "text with a control character (U+0000 to U+001F other than tab and line breaks), "
                   "which no spreadsheet or report can hold; remove it")


# ---- per-column checks -------------------------------------------------------------------------


def unit_factor(meta: BundleMetadata, table: str, c: Column) -> float:
    """Factor from the declared unit to the canonical unit (1 when canonical or undeclared)."""
    declared = meta.unit_of(table, c.name)
    return c.accepted_units.get(declared, 1.0) if declared else 1.0


#: Blood counts declared per microlitre (``/uL``, ``/mm3``): the smallest LARGEST value a table can
#: plausibly have in that unit. A table whose every value is below it is far more likely in
#: 10^9/L (ANC 0.5, 1.2, 3.0 written under ``/uL`` reads as 0.0005-0.003 x10^9/L: every CR
#: becomes CRi, silently), so it is a warning (``unit.implausible``) naming the row of the largest
#: value. Each floor is the count's plausible maximum in 10^9/L (the model's ``soft_max``) taken as
#: a number per microlitre: every plausible table in 10^9/L is caught, while in /uL it would mean
#: the whole table at or below a level seen only in the deepest aplasia, never as its largest
#: value: ANC < 50/uL (0.05 x10^9/L; a real ANC is hundreds to thousands per uL), platelets
#: < 1500/uL (1.5 x10^9/L, at the limit of measurement; real: tens to hundreds of thousands),
#: WBC < 300/uL (0.3 x10^9/L; real: thousands). The limits of normal (``_lln``) share them
#: (real: ANC 1500-2000, platelets 150000, WBC 4000 per uL). Checked on the table, not per
#: patient: one patient's ANC can stay below 50/uL through a whole course of aplasia.
PER_MICROLITRE_FLOOR: dict[str, float] = {
    "anc": 50.0,
    "anc_lln": 50.0,
    "platelets": 1500.0,
    "platelets_lln": 1500.0,
    "wbc": 300.0,
    "wbc_lln": 300.0,
}
PER_MICROLITRE_UNITS = ("/uL", "/mm3")


def _per_microlitre_findings(
    view: ir.Table, staged: Staged, meta: BundleMetadata, model: Table, present: set[str]
) -> Iterator[Finding]:
    """``unit.implausible``: a count declared per microlitre whose largest value in the table is
    below :data:`PER_MICROLITRE_FLOOR` (one query row, the row of the largest value, folded
    into the single count query of :func:`table_problems`; none when no count is declared so)."""
    for c in model.columns:
        floor = PER_MICROLITRE_FLOOR.get(c.name)
        declared = meta.unit_of(model.name, c.name)
        if floor is None or c.name not in present or declared not in PER_MICROLITRE_UNITS:
            continue
        factor = c.accepted_units.get(declared or "", 1.0)
        v = view[c.name]  # canonical: the declared value times factor (checked_table)
        top = view.filter(v.notnull()).order_by([ibis.desc(c.name), ROW]).limit(1)
        low = top.filter(top[c.name] < floor * factor)  # the same product the loader computes

        def make(r: dict, c: Column = c, floor: float = floor, declared: str = declared or "") -> Problem:
            text = staged.cell_text(model.name, c.name, [r[ROW]])[r[ROW]]
            return Problem(
                "warning",
                model.name,
                f"declared in {declared}, the largest {c.name} of the table is {text} (this row), "
                f"below {floor:g}{declared}: no table of real counts per microlitre is that low "
                f"(read so, every value is under {floor / 1000:g} {c.unit}, as in the deepest aplasia, "
                f"and no count ever recovers); the values look like "
                f"{c.unit}. Declare the unit the source uses; kept as given, nothing is converted by guess",
                r[ROW],
                c.name,
                text,
                "unit.implausible",
            )

        yield Finding(low, [ROW], make, model.name, "unit.implausible")


def _unit_problems(meta: BundleMetadata, model: Table, present: set[str]) -> Iterator[Problem]:
    for c in model.columns:
        if c.name not in present or not c.unit:
            continue
        declared = meta.unit_of(model.name, c.name)
        if declared is None:
            if c.units:
                yield Problem(
                    "error",
                    model.name,
                    f"the metadata must declare its unit (one of "
                    f"{sorted(c.accepted_units)}) under `units: {{{c.name}: ...}}`; "
                    "it is never inferred from the values",
                    None,
                    c.name,
                    None,
                    "unit.undeclared",
                )
        elif declared not in c.accepted_units:
            yield Problem(
                "error",
                model.name,
                f"declared unit {declared!r} is not one the model converts "
                f"(accepted: {sorted(c.accepted_units)})",
                None,
                c.name,
                declared,
                "unit.unknown",
            )


@dataclass(frozen=True)
class Check:
    """One per-cell check of one column: rows where ``bad`` holds get a :class:`Problem`."""

    column: str
    bad: ir.BooleanValue
    severity: str
    code: str
    reason: Callable[[str], str]


#: Columns of a checked table (:func:`checked_table`) that carry what the checks need from the text.
UNTYPED, BLANK, KEY = "_untyped_", "_blank_", "_key_"


def checked_table(t: ir.Table, model: Table, meta: BundleMetadata) -> ir.Table:
    """The raw table ``t`` of ``model`` typed in one pass, each cell parsed once.

    Columns: ``_row`` and each model column ``t`` has. A text column holds its typed value (a
    float in its canonical unit: the declared unit converted, :func:`unit_factor`) and what the
    checks need from the text, as flags: ``_untyped_<c>`` (text that is not of the column's
    type), for required columns ``_blank_<c>`` (empty), for a key column that is not text
    ``_key_<c>`` (its text stripped: duplicate keys are found on the text, :func:`_duplicate_keys`).
    A column stored in its type (:func:`~amlcohort.io.readers.native_ok`) holds its value and
    no flag (its text is never empty, and is of the type) except a float's: NaN marks a stored
    NaN or infinity (text that is not a number), so the table stays as narrow as the file.
    Read it with :func:`checked_value`, :func:`untyped`, :func:`blank` and :func:`key_value`.
    """
    cols: dict[str, ir.Value] = {ROW: t[ROW]}
    for c in model.columns:
        if c.name not in t.columns:
            continue
        raw = t[c.name]
        factor = unit_factor(meta, model.name, c)
        if not raw.type().is_string():
            val = _native(raw, c)
            if c.dtype == "float":
                scaled = raw * factor if factor != 1.0 else raw
                val = ibis.ifelse(raw.isinf(), ibis.literal(float("nan")), scaled)
            cols[c.name] = val
            continue
        val = parsed(raw, c)
        cols[c.name] = val * factor if c.dtype == "float" and factor != 1.0 else val
        cols[UNTYPED + c.name] = raw.notnull() & val.isnull()
        if c.required:
            cols[BLANK + c.name] = raw.isnull() | (raw.strip() == "")
        if c.name in model.key and c.dtype != "string":
            cols[KEY + c.name] = raw.strip()
    return t.select(**cols)


def checked_value(checked: ir.Table, c: Column) -> ir.Value:
    """The typed value of column ``c`` of a checked table (NULL where the cell is not of the type)."""
    v = checked[c.name]
    if c.dtype == "float" and UNTYPED + c.name not in checked.columns:
        return ibis.ifelse(v.isnan(), ibis.null("float64"), v)
    return v


def untyped(checked: ir.Table, c: Column) -> ir.BooleanValue | None:
    """Where the cell is not of the column's type (None: nowhere, a column stored in its type)."""
    if UNTYPED + c.name in checked.columns:
        return checked[UNTYPED + c.name]
    return checked[c.name].isnan() if c.dtype == "float" else None


def blank(checked: ir.Table, c: Column) -> ir.BooleanValue:
    """Where the cell is empty."""
    if BLANK + c.name in checked.columns:
        return checked[BLANK + c.name]
    return checked[c.name].isnull()


def readable(checked: ir.Table, model: Table) -> ir.Table:
    """The checked table with each value typed (NULL where not of the type) and every flag a
    check reads, as columns computed once per row (the checks compare each value several times)."""
    cols: dict[str, ir.Value] = {ROW: checked[ROW]}
    for c in model.columns:
        if c.name not in checked.columns:
            continue
        cols[c.name] = checked_value(checked, c)
        bad_type = untyped(checked, c)
        if bad_type is not None:
            cols[UNTYPED + c.name] = bad_type
        if c.required:
            cols[BLANK + c.name] = blank(checked, c)
    return checked.select(**cols)


def key_value(checked: ir.Table, c: Column) -> ir.Value:
    """What key column ``c`` is compared on: its text stripped (lower case where the column is);
    for a stored integer or date, the value itself, which is equal exactly where that text is
    (:func:`text_of` writes it back for a problem)."""
    if c.dtype == "string":
        return checked[c.name]
    if KEY + c.name in checked.columns:
        return checked[KEY + c.name]
    return checked[c.name]


def column_checks(t: ir.Table, meta: BundleMetadata, model: Table, c: Column) -> list[Check]:
    """The checks of column ``c`` over its checked table ``t`` (:func:`checked_table`): required,
    type, allowed values, unit, possible and plausible range."""
    val = checked_value(t, c)
    checks: list[Check] = []

    def add(bad: ir.BooleanValue, severity: str, code: str, reason: Callable[[str], str]) -> None:
        checks.append(Check(c.name, bad, severity, code, reason))

    if c.required:
        add(blank(t, c), "error", "value.required", lambda v: "required value is empty")
    bad_type = untyped(t, c)
    if bad_type is not None:
        add(bad_type, "error", "value.type", lambda v: _type_reason(c))
    if c.allowed is not None:
        add(
            val.notnull() & ~val.isin(c.allowed),
            "error",
            "value.allowed",
            lambda v: f"not an allowed value; allowed: {list(c.allowed or ())}",
        )
    if c.dtype not in ("int", "float"):
        return checks
    declared = meta.unit_of(model.name, c.name) or c.unit
    factor = unit_factor(meta, model.name, c)
    x = val if c.dtype == "float" or factor == 1.0 else val * factor  # a float is converted already
    unit = f" {c.unit}" if c.unit else ""
    if c.dtype == "float":  # 1e400, or a value that overflows in its unit conversion
        add(x.isinf(), "error", "value.range", lambda v: f"not a finite number in{unit or ' its unit'}")
    if c.unit_check is not None:
        bound, suspected = c.unit_check
        add(
            x > bound,
            "error",
            "unit.suspect",
            lambda v: (
                f"declared in {declared} this is {float(v) * factor:g}{unit}, above {bound:g}: "
                f"the value looks "
                f"like {suspected}. Declare the unit the source uses; nothing is converted by guess"
            ),
        )
    if c.hard_min is not None:
        add(
            x < c.hard_min,
            "error",
            "value.range",
            lambda v: f"below the possible minimum {c.hard_min:g}{unit}",
        )
    if c.hard_max is not None:
        add(
            x > c.hard_max,
            "error",
            "value.range",
            lambda v: f"above the possible maximum {c.hard_max:g}{unit}",
        )
    if c.soft_min is not None:
        add(
            x < c.soft_min,
            "warning",
            "value.implausible",
            lambda v: f"implausibly low (below {c.soft_min:g}{unit}); kept as given",
        )
    if c.soft_max is not None:
        add(
            x > c.soft_max,
            "warning",
            "value.implausible",
            lambda v: f"implausibly high (above {c.soft_max:g}{unit}); kept as given",
        )
    return checks


def _cell_problems(
    checked: ir.Table, staged: Staged, model: Table, checks: list[Check], counts: list[int]
) -> Iterator[Problem]:
    """The problems of a table's checks (``counts``: the rows each found, :func:`row_counts`);
    at most MAX_ROWS_REPORTED rows per check, each with its text as written
    (:meth:`Staged.cell_text`)."""
    for ck, n in zip(checks, counts, strict=True):
        if n == 0:
            continue
        rows = checked.filter(ck.bad).order_by(ROW).limit(MAX_ROWS_REPORTED).select(ROW)
        rows_list = rows.to_pyarrow()[ROW].to_pylist()
        text = staged.cell_text(model.name, ck.column, rows_list)
        for row in rows_list:
            yield Problem(
                ck.severity,
                model.name,
                ck.reason(text[row]),  # type: ignore[arg-type]
                row,
                ck.column,
                text[row],  # type: ignore[arg-type]
                ck.code,
            )
        if n > len(rows_list):
            yield Problem(
                ck.severity,
                model.name,
                f"... and {n - len(rows_list)} more row(s) with the same problem",
                None,
                ck.column,
                None,
                ck.code,
            )


def table_problems(staged: Staged, meta: BundleMetadata) -> Iterator[Problem]:
    """Presence, columns, types, allowed values, units, ranges and keys of each table.

    Every table's cell checks and duplicate keys are counted in one query (:func:`row_counts`);
    only the checks that found something fetch their rows."""
    problems = list(_table_parts(staged, meta))
    cells = [(part.view, ck.bad) for part in problems if isinstance(part, _Cells) for ck in part.checks]
    duplicates = [part for part in problems if isinstance(part, Finding)]
    counts = row_counts(cells + [(f.expr, None) for f in duplicates])
    cell_counts, dup_counts = counts[: len(cells)], counts[len(cells) :]
    for part in problems:
        if isinstance(part, Problem):
            yield part
        elif isinstance(part, _Cells):
            n, cell_counts = cell_counts[: len(part.checks)], cell_counts[len(part.checks) :]
            yield from _cell_problems(part.view, staged, part.model, part.checks, n)
    for f, n in zip(duplicates, dup_counts, strict=True):
        if n:
            yield from _problems(f, n)


@dataclass(frozen=True)
class _Cells:
    """The cell checks of one table, over its readable view (:func:`readable`)."""

    view: ir.Table
    model: Table
    checks: list[Check]


def _table_parts(staged: Staged, meta: BundleMetadata) -> Iterator[Problem | _Cells | Finding]:
    """In order: the problems found without a query, each table's cell checks (:class:`_Cells`),
    its per-microlitre plausibility and duplicate-key findings (reported after every table's)."""
    for name in sorted(staged.names() - {t.name for t in TABLES}):
        hint = did_you_mean(name, [t.name for t in TABLES])
        yield Problem("warning", name, f"unknown table; ignored{hint}", code="table.unknown")
    for model in TABLES:
        if model.name not in staged.names():
            if model.required:
                yield Problem("error", model.name, "required table is missing", code="table.missing")
            else:
                yield Problem(
                    "warning",
                    model.name,
                    "optional table not supplied: read as unknown, not as "
                    "empty (e.g. transfusion independence cannot be judged)",
                    code="table.absent",
                )
            continue
        present = staged.columns(model.name)
        for col in sorted(present - set(model.column_names)):
            hint = did_you_mean(col, set(model.column_names) - present)
            yield Problem(
                "warning", model.name, f"unknown column; ignored{hint}", None, col, None, "column.unknown"
            )
        missing = [c.name for c in model.columns if c.required and c.name not in present]
        for col in missing:
            yield Problem(
                "error",
                model.name,
                f"required column is missing{did_you_mean(col, present - set(model.column_names))}",
                None,
                col,
                None,
                "column.missing",
            )
        yield from _unit_problems(meta, model, present)
        checked = staged.checked.get(model.name)
        if checked is None:
            checked = checked_table(staged.tables[model.name], model, meta)
        view = readable(checked, model)
        checks = [
            ck for c in model.columns if c.name in present for ck in column_checks(view, meta, model, c)
        ]
        yield _Cells(view, model, checks)
        yield from _per_microlitre_findings(view, staged, meta, model, present)
        if all(k in present for k in model.key):
            yield _duplicate_keys(checked, model)


def _duplicate_keys(checked: ir.Table, model: Table) -> Finding:
    """Rows whose key repeats an earlier row's, on the key's text stripped (lower case where the
    column is): :func:`key_value`."""
    keys = list(model.key)
    by_name = {c.name: c for c in model.columns}
    norm = checked.select(ROW, **{k: key_value(checked, by_name[k]) for k in keys})
    counts = norm.group_by(keys).aggregate(_n=norm.count(), _first=norm[ROW].min())
    dup = norm.join(counts.filter(counts._n > 1), keys).filter(lambda x: x[ROW] != x._first)
    dup = dup.mutate(**{k: text_of(dup[k]) for k in keys})
    return Finding(
        dup,
        [ROW, "_first", *keys],
        lambda r: Problem(
            "error",
            model.name,
            f"duplicate key ({', '.join(f'{k}={r[k]!r}' for k in keys)}): same as row {r['_first']}",
            r[ROW],
            keys[-1],
            r[keys[-1]],
            "key.duplicate",
        ),
        model.name,
        "key.duplicate",
    )
