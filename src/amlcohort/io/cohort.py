"""Loading a cohort bundle: read, validate, type, convert declared units, add study days.

>>> from amlcohort import load_cohort
>>> cohort = load_cohort()                       # the embedded study cohort (reconstructed)
>>> cohort.table("patients").count().execute()
13

The tables live on an Ibis connection (in-process DuckDB unless another is injected with
``con=``), so every derivation is an Ibis expression that can run where the data is.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from pyarrow import csv

from amlcohort.engines.statistics import gather_statistics, keep_statistics
from amlcohort.io.consistency import anchors, consistency_problems, first_doses
from amlcohort.io.metadata import METADATA_FILE, BundleMetadata, read_metadata
from amlcohort.io.readers import ROW, TableSource, bundle_path_problems, open_bundle
from amlcohort.io.study import derive_study, read_study
from amlcohort.io.validate import Staged, checked_table, checked_value, table_problems
from amlcohort.problems import InputError, Problem
from amlcohort.schema import TABLES, TABLES_BY_NAME, Table, study_day_column
from amlcohort.schema.study import StudyDefinition

#: Memory the staging DuckDB may use (its tables, joins, sorts) before it spills to a private
#: temporary folder: this share of the memory the process may use (the machine's, or its control
#: group's limit when that is lower), never less than :data:`DUCKDB_MEMORY_FLOOR`;
#: ``AMLCOHORT_DUCKDB_MEMORY`` (DuckDB's syntax, e.g. ``4GB``) overrides it. Not every operator
#: can spill: a 10^6-patient registry's cross-table checks need more than 1 GB (at that limit they
#: stopped, out of memory; 3 GB sufficed), so a fixed small limit fails where the machine has room.
DUCKDB_MEMORY_SHARE = 0.5
#: The least memory the staging DuckDB is given (bytes), however small the machine.
DUCKDB_MEMORY_FLOOR = 2**30
#: Where Linux states a control group's memory limit (cgroup v2, then v1).
CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
#: Rows typed per statement when a table is materialised (see :func:`_materialise`).
SLICE_ROWS = 250_000
#: A slice of fewer rows is not followed by a checkpoint (see :func:`_materialise`): what a few
#: small slices take uncompressed is little, and a checkpoint costs a small bundle more than that.
CHECKPOINT_ROWS = 20_000
# names of the study-day views (Cohort.table): unique per process, so cohorts never share one
_VIEW_NUMBERS = itertools.count(1)
_IBIS_TYPES = {"string": "string", "int": "int64", "float": "float64", "date": "date", "bool": "boolean"}


def embedded_study_path() -> Path:
    """Folder of the embedded study bundle (a reconstruction, see its metadata)."""
    return Path(str(resources.files("amlcohort.data").joinpath("study")))


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found in a bundle; ``ok`` when there is no error."""

    path: str
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class Cohort:
    """A validated cohort: typed Ibis tables on one connection, the bundle's metadata and the
    study definition (``study.yaml``, or derived from the data: :mod:`amlcohort.io.study`).

    ``table(name)`` adds, for each date column ``X_date``, ``X_study_day`` (day 1 = the first dose
    of the study's index drug, or of any drug; no day 0). With ``day_views`` each such table is
    created once as a view, so every query names it instead of repeating the join in its SQL
    (compiling the report's queries is then several times faster), on a connection the cohort
    owns (the loader's in-process DuckDB). On SQLite each is created once as a temporary table
    (flat data: SQLite has no hash join, and the CTCAE grades' 42 parts parse within its
    parser's depth only without the join; gone with the connection). On the other connections the
    cohort shares (PostgreSQL, Spark, a workspace's) nothing is created and the expression is
    returned.
    """

    con: ibis.BaseBackend
    metadata: BundleMetadata
    tables: dict[str, ir.Table]
    report: ValidationReport
    study: StudyDefinition
    supplied: frozenset[str] = frozenset()
    day_views: bool = False
    _views: dict[str, ir.Table] = field(default_factory=dict, init=False, repr=False, compare=False)
    _karyotypes: ir.Table | None = field(default=None, init=False, repr=False, compare=False)

    def has(self, name: str) -> bool:
        """Whether the bundle supplied table ``name`` (an absent optional table reads as empty,
        which is not the same as "no transfusions": rules that need it treat it as unknown)."""
        return name in self.supplied

    def table(self, name: str) -> ir.Table:
        """Table ``name`` with study-day columns (any model table; absent optional ones are empty)."""
        model = TABLES_BY_NAME.get(name)
        if model is None:
            raise KeyError(f"unknown table {name!r}; the cohort has {sorted(self.tables)}")
        t = self.tables[name]
        if not model.date_columns:
            return t
        if name in self._views:
            return self._views[name]
        first = self.first_dose()
        j = t.left_join(first, "patient_id").select(t, "first_dose")
        days = {study_day_column(c): study_day(j[c], j.first_dose) for c in model.date_columns}
        expr = j.mutate(**days).drop("first_dose")
        # a unique name: two cohorts on one connection (another study definition) never share one
        unique = f"{name}__study_days_{next(_VIEW_NUMBERS)}"
        if self.con.name == "sqlite":
            # SQLite has no hash join and a shallow parser: its queries read a flat temporary
            # table (gone with the connection; nothing is written to the user's database),
            # indexed by patient: without it SQLite's planner loops over the table for every join
            # by patient (the 10^4-patient registry's responses: 565 s unindexed, 21 s indexed)
            table = self.con.create_table(unique, expr, temp=True)
            self.con.raw_sql(f'CREATE INDEX temp."{unique}__patient" ON "{unique}" (patient_id)').close()
        elif self.day_views:
            table = self.con.create_view(unique, expr)
        else:
            return expr
        self._views[name] = table
        return table

    def karyotype_lookup(self) -> ir.Table:
        """The patients' karyotypes as read by the ISCN reader
        (:func:`amlcohort.criteria.risk.karyotype_lookup`), read once and created as a temporary
        table of the cohort's connection: the risk and population derivations join it. (An
        in-memory table in a query is not found when Spark materialises the query; and Ibis would
        create a memtable's ``.cache()`` on its default connection.)"""
        if self._karyotypes is None:
            from amlcohort.criteria.risk import karyotype_lookup, karyotype_texts

            lookup = karyotype_lookup(karyotype_texts(self.table("patients")))
            name = f"amlcohort_karyotypes_{next(_VIEW_NUMBERS)}_{os.getpid()}"
            try:
                # Spark has no temporary tables: an ordinary one in its current database, as the
                # loader writes the cohort's own tables there
                temporary = self.con.name != "pyspark"
                self._karyotypes = self.con.create_table(name, lookup, temp=temporary)
            except Exception:  # an engine that cannot create it: the lookup travels with each query
                self._karyotypes = lookup
        return self._karyotypes

    def first_dose(self) -> ir.Table:
        """Per patient: ``first_dose``, study day 1 (the first dose of the index drug, or of any drug)."""
        return first_doses(self.tables["exposures"], self.study.index_drug)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return self.report.warnings


def table_rows(tables: dict[str, ir.Table]) -> dict[str, int]:
    """The rows of each table (tables on one connection), counted in one query."""
    if not tables:
        return {}
    counts = ibis.union(*[
        t.count().name("n").as_table().mutate(table=ibis.literal(name)) for name, t in tables.items()
    ]).to_pyarrow().to_pylist()
    return {r["table"]: int(r["n"]) for r in counts}


def study_day(date: ir.DateValue, first_dose: ir.DateValue) -> ir.IntegerValue:
    """CDISC study day: ``date - first_dose + 1`` on or after the first dose, else the difference."""
    delta = date.delta(first_dose, unit="day")
    return ibis.ifelse(delta >= 0, delta + 1, delta)


def _typed(checked: ir.Table, model: Table) -> ir.Table:
    """The typed table of ``model``: ``_row`` and every model column, from the checked table
    (:func:`~amlcohort.io.validate.checked_table`); a column the bundle lacks reads as NULL."""
    cols: dict[str, ir.Value] = {ROW: checked[ROW]}
    for c in model.columns:
        cols[c.name] = (
            checked_value(checked, c) if c.name in checked.columns else ibis.null(_IBIS_TYPES[c.dtype])
        )
    return checked.select(**cols)


def validate_bundle(
    path: str | Path | None = None, *, con: ibis.BaseBackend | None = None, temporary: bool = False,
    replace: bool = False,
) -> tuple[ValidationReport, Cohort | None]:
    """Validate the bundle at ``path`` (None: the embedded study); returns the report and,
    when there is no error, the cohort: on an in-process DuckDB connection, or loaded into
    ``con`` as :func:`load_cohort` does (``temporary`` and ``replace`` as there)."""
    return _load(Path(path) if path is not None else embedded_study_path(), con, temporary, replace)


def load_cohort(
    path: str | Path | None = None, *, con: ibis.BaseBackend | None = None, temporary: bool = False,
    replace: bool = False,
) -> Cohort:
    """Load and validate a cohort bundle; raise :class:`InputError` listing every error.

    ``path=None`` loads the embedded study cohort. ``con`` injects the Ibis connection the
    typed tables are written to (default: a new in-process DuckDB); nothing is written when
    validation finds an error. Validation always runs in process; the validated tables are then
    written to ``con`` under the model's table names, or, with ``temporary=True``, as temporary
    tables of that connection (PostgreSQL, DuckDB, SQLite: gone with the connection, and nothing
    of the database replaced; Spark, which has none, writes ordinary tables to its current
    database). PostgreSQL is loaded with ``COPY``.

    A table of ``con`` that the load would replace (one named like a table of the model: without
    ``temporary``, or on Spark) is left alone: :class:`TablesExistError` names them before
    anything is written, unless ``replace=True`` (then they are dropped and written anew).
    """
    report, cohort = _load(Path(path) if path is not None else embedded_study_path(), con, temporary, replace)
    if cohort is None:
        raise InputError(f"cohort bundle {report.path}", report.problems)
    return cohort


class TablesExistError(ValueError):
    """Loading a cohort into a connection would replace tables it already has (see
    :func:`load_cohort`'s ``replace``)."""


def _load(
    path: Path, con: ibis.BaseBackend | None, temporary: bool = False, replace: bool = False
) -> tuple[ValidationReport, Cohort | None]:
    if bad_path := bundle_path_problems(path):  # a typo is not resolved to the folder around it
        return ValidationReport(str(path), tuple(bad_path)), None
    folder = path if path.is_dir() else path.parent
    meta, problems = read_metadata(folder / METADATA_FILE)
    declared, study_problems, _ = read_study(folder)
    problems += study_problems
    raw, read_problems = open_bundle(path)
    problems += read_problems
    if meta is None or raw is None:
        return ValidationReport(str(path), tuple(problems)), None
    # Memory: each table is read and typed one slice at a time into a checked table holding only
    # the columns the bundle has (a Parquet file is never read whole; its numbers, dates and
    # booleans are not turned into text: readers.native_ok); the cohort's tables are views over
    # those (a column the bundle lacks costs nothing).
    stage = staging_connection()
    checked = {
        name: _materialise(stage, f"checked_{name}", source, TABLES_BY_NAME[name], meta)
        for name, source in raw.sources.items()
        if name in TABLES_BY_NAME
    }
    problems += list(table_problems(Staged(stage, {}, checked, raw.sources), meta))
    supplied = frozenset(raw.sources) & {m.name for m in TABLES}
    del raw
    pa.default_memory_pool().release_unused()  # the text tables' memory, back to the system
    # Cross-table checks run even when cells failed: an unparseable cell is NULL in the typed
    # tables, so one pass reports every problem the bundle has.
    # Each typed table is a view on the staging DuckDB (compiled once): the checks across tables
    # and the cohort's tables name it instead of inlining its typing in every query.
    typed = {
        m.name: stage.create_view(
            f"typed_{m.name}", _typed(checked[m.name] if m.name in checked else _empty(stage, m), m)
        )
        for m in TABLES
    }
    problems += list(consistency_problems(typed, meta.cutoff_date, declared))
    report = ValidationReport(str(path), tuple(problems))
    if not report.ok:
        return report, None
    study = _study(meta, declared, typed)
    # PostgreSQL: every table written from here on (the cohort's, each derivation's cache) is analysed
    target = keep_statistics(con) if con is not None else stage
    existing = set(target.list_tables()) if target is not stage else set()
    # temporary tables shadow a table of the same name; Spark has none, so it replaces it
    replaces = not temporary or target.name == "pyspark"
    clash = sorted(existing & set(typed)) if replaces else []
    if clash and not replace:
        raise TablesExistError(
            f"the connection already has table(s) {clash}: loading the cohort would replace them. "
            "Nothing was written. Pass replace=True to replace them, temporary=True to shadow them "
            "for this connection only (not on Spark), or load into another schema or database.")
    tables = {}
    for name, t in typed.items():
        data = t.drop(ROW)
        if target is stage:
            tables[name] = stage.create_view(name, data)
            continue
        if name in clash:
            target.drop_table(name)
        tables[name] = _copy_table(target, name, data, temporary)
    return report, Cohort(target, meta, tables, report, study, supplied, day_views=target is stage)


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its control group's limit (a
    container's) when that is lower; None when neither can be read."""
    sizes = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in CGROUP_MEMORY_FILES:
        with contextlib.suppress(OSError):
            text = Path(path).read_text().strip()
            if text.isdigit():  # "max": no limit
                sizes.append(int(text))
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else None


def duckdb_memory_limit() -> str:
    """The staging DuckDB's memory limit, in DuckDB's syntax: ``AMLCOHORT_DUCKDB_MEMORY`` when set,
    else :data:`DUCKDB_MEMORY_SHARE` of :func:`machine_memory` (at least
    :data:`DUCKDB_MEMORY_FLOOR`), in whole MiB."""
    asked = os.environ.get("AMLCOHORT_DUCKDB_MEMORY", "").strip()
    if asked:
        return asked
    total = machine_memory()
    share = int(total * DUCKDB_MEMORY_SHARE) if total else 0
    return f"{max(share, DUCKDB_MEMORY_FLOOR) // 2**20}MiB"


def larger_memory_limit(limit: str) -> str | None:
    """Twice ``limit`` (DuckDB's syntax: a number and a unit, ``20MB``, ``1.5GiB``) in its own
    unit, to suggest when ``limit`` did not suffice; None when ``limit`` is not of that form."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b)\s*", limit, flags=re.IGNORECASE)
    if m is None:
        return None
    twice = format(float(m[1]) * 2, "f").rstrip("0").rstrip(".")  # never an exponent: DuckDB's syntax
    return f"{twice}{m[2]}"


def staging_connection() -> ibis.BaseBackend:
    """A new in-process DuckDB whose memory is capped (:func:`duckdb_memory_limit`): above it,
    DuckDB spills to a temporary folder of its own (removed with the connection), never to the
    working directory, so a large bundle costs disk before it costs more memory."""
    spill = tempfile.mkdtemp(prefix="amlcohort-duckdb-")
    con = ibis.duckdb.connect()
    con.con.execute("SET memory_limit = ?", [duckdb_memory_limit()])
    con.con.execute("SET temp_directory = ?", [spill])
    weakref.finalize(con, _remove_spill_folder, spill, os.getpid())
    return con


def _remove_spill_folder(path: str, owner: int) -> None:
    """Remove a staging connection's spill folder, in the process that made it only: a forked
    child that lets go of its copy of the connection must not delete the parent's spilled data."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def _materialise(
    con: ibis.BaseBackend, name: str, source: TableSource, model: Table, meta: BundleMetadata
) -> ir.Table:
    """The checked table of ``source`` (:func:`~amlcohort.io.validate.checked_table`) as table
    ``name``, written SLICE_ROWS rows at a time: DuckDB compresses what it has written at each
    checkpoint, so the memory a large table takes uncompressed is one slice's, not the whole
    table's. Each slice is a table of its own (``name`` is then the view of all of them, in
    order): a checkpoint of an in-memory DuckDB rewrites a table it appended to whole, so
    appending slice after slice to one table costs time quadratic in its rows. The query is
    compiled once; each slice is registered under the name it reads. A slice of fewer than
    CHECKPOINT_ROWS rows (a small table, a large one's last) is not checkpointed: left
    uncompressed it costs little memory, and a checkpoint's fixed cost is what a small bundle
    would notice."""
    raw = f"raw_{name}"
    sql = None
    parts: list[str] = []
    for part in source.slices(SLICE_ROWS):
        con.con.register(raw, part)
        if sql is None:
            sql = ibis.to_sql(checked_table(con.table(raw), model, meta), dialect="duckdb")
        parts.append(f"{name}__{len(parts) + 1}")
        con.raw_sql(f'CREATE TABLE "{parts[-1]}" AS {sql}')
        con.con.unregister(raw)
        if part.num_rows >= CHECKPOINT_ROWS:
            con.raw_sql("CHECKPOINT")
    if len(parts) == 1:
        con.raw_sql(f'ALTER TABLE "{parts[0]}" RENAME TO "{name}"')
    else:
        con.raw_sql(f'CREATE VIEW "{name}" AS ' + " UNION ALL ".join(f'SELECT * FROM "{p}"' for p in parts))
    return con.table(name)


def _copy_table(target: ibis.BaseBackend, name: str, data: ir.Table, temporary: bool = False) -> ir.Table:
    """``data`` (validated, on the staging DuckDB) as table ``name`` on another engine (a
    temporary table with ``temporary``, where the engine has them: not Spark).

    Spark receives Arrow data through pandas, where a missing float becomes NaN, and on Spark NaN
    is not NULL (it compares greater than every number): validated data hold no NaN (the loader
    refuses it), so every NaN that arrives there is a missing value, and is made NULL again.
    """
    if target.name == "postgres":
        return _copy_to_postgres(target, name, data, temporary)
    if target.name != "pyspark":
        # (``temp`` only when asked: Polars refuses even temp=False, its tables all being in memory)
        extra = {"temp": True} if temporary else {}
        return target.create_table(name, ibis.memtable(data.to_pyarrow()), **extra)
    raw = target.create_table(f"{name}__arrow", ibis.memtable(data.to_pyarrow()), overwrite=True)
    floats = [c for c, t in raw.schema().items() if t.is_floating()]
    table = target.create_table(
        name, raw.mutate(**{c: ibis.ifelse(raw[c].isnan(), ibis.null(raw[c].type()), raw[c]) for c in floats})
    )
    target.drop_table(f"{name}__arrow")
    return table


#: Rows of a table sent to PostgreSQL in one piece of its ``COPY``.
COPY_BATCH_ROWS = 100_000


def _copy_to_postgres(target: ibis.BaseBackend, name: str, data: ir.Table, temporary: bool) -> ir.Table:
    """``data`` as table ``name`` on PostgreSQL, written with ``COPY ... FROM STDIN`` in CSV that
    Arrow writes a batch at a time (Ibis' own insert sends the rows one by one: minutes for a
    registry's assessments). Arrow's CSV keeps what the table holds: a NULL is an empty field, an
    empty text a quoted one (PostgreSQL reads them so), a float the shortest text that reads back
    as the same double."""
    table = target.create_table(name, schema=data.schema(), temp=temporary)
    options = csv.WriteOptions(include_header=False)
    quoted = '"' + name.replace('"', '""') + '"'
    raw = target.con  # type: ignore[attr-defined]  # the backend's psycopg connection
    with (raw.cursor() as cursor, cursor.copy(f"COPY {quoted} FROM STDIN (FORMAT csv)") as copy,
          warnings.catch_warnings()):
        # Ibis' DuckDB reader calls a method DuckDB has deprecated: its warning, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        for batch in data.to_pyarrow_batches(chunk_size=COPY_BATCH_ROWS):
            buffer = io.BytesIO()
            csv.write_csv(pa.Table.from_batches([batch]), buffer, options)
            copy.write(buffer.getbuffer())
    raw.commit()
    gather_statistics(target, name)  # the planner's statistics (a temporary table is never auto-analysed)
    return table


def _study(
    meta: BundleMetadata, declared: StudyDefinition | None, typed: dict[str, ir.Table]
) -> StudyDefinition:
    """The declared definition completed from the data (arms, CTCAE version), or one derived."""
    arms = typed["patients"].study_arm.name("arm").as_table().distinct().to_pyarrow()
    versions = typed["adverse_events"].ctcae_version.name("v").as_table().distinct().to_pyarrow()
    return derive_study(meta.study_name, arms["arm"].to_pylist(), versions["v"].to_pylist(), declared)


def _empty(con: ibis.BaseBackend, model: Table) -> ir.Table:
    schema = ibis.schema({ROW: "int64", **{c.name: _IBIS_TYPES[c.dtype] for c in model.columns}})
    return con.create_table(f"checked_{model.name}", schema=schema)


__all__ = [
    "Cohort",
    "TablesExistError",
    "ValidationReport",
    "anchors",
    "embedded_study_path",
    "load_cohort",
    "study_day",
    "validate_bundle",
]
