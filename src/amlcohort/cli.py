"""The ``amlcohort`` command line.

Every command checks its options before any work (fixed choices are Typer choices; paths are
checked to exist and be what they must be) and turns an expected failure into ONE line naming
the problem and the fix: exit code 2 for a usage error (a path or option that cannot be used),
1 for data that cannot be used (an invalid bundle, a file that cannot be read or written).
User-supplied text (paths, names from the bundle) is printed as plain text, never as Rich markup.
"""

from __future__ import annotations

import functools
import gc
import importlib
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from amlcohort.interop.cli import import_app
from amlcohort.problems import InputError
from amlcohort.protocol.cli import protocol_app
from amlcohort.schema.study import CRITERIA_SETS
from amlcohort.workspace.cli import serve

if TYPE_CHECKING:  # Ibis, pandas, PyArrow: imported when a command runs, so `--help` is instant
    from amlcohort.io.cohort import Cohort, ValidationReport


class LazyCommand(TyperCommand):
    """A command listed by name and one-line help; ``module:function`` is imported when it is run
    (or its own ``--help`` is asked for), so the top-level help does not load its dependencies."""

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name, help=help)
        self.target = target

    def load(self) -> TyperCommand:
        """The real command (its options as its function declares them)."""
        module, function = self.target.split(":")
        single = typer.Typer(add_completion=False)
        single.command(self.name)(getattr(importlib.import_module(module), function))
        return typer.main.get_command(single)  # type: ignore[return-value]

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self.load().make_context(info_name, args, parent=parent, **extra)


#: Commands whose module is heavy (NumPy, PyArrow), listed first as before: name -> (target, help).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "synth": (
        "amlcohort.synth:synth_command",
        "Write a SYNTHETIC cohort bundle (valid, seeded) for scale tests and benchmarks.",
    ),
}


class CommandLine(TyperGroup):
    """The top-level group: the lazily imported commands first, then the ones declared here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lazy = {name: LazyCommand(name, target, text) for name, (target, text) in LAZY_COMMANDS.items()}
        self.commands = {**lazy, **self.commands}


app = typer.Typer(
    cls=CommandLine,
    add_completion=False,
    no_args_is_help=True,
    help="AML salvage-therapy cohort study, end to end. Research software, not a medical device.",
)
console = Console()
err_console = Console(stderr=True)

USAGE_ERROR = 2
DATA_ERROR = 1


#: Response criteria sets the report can apply (the study definition's list).
Criteria = StrEnum("Criteria", {c: c for c in CRITERIA_SETS})  # type: ignore[misc]


class ExportFormat(StrEnum):
    """Bundle formats ``export`` writes."""

    csv = "csv"
    parquet = "parquet"
    xlsx = "xlsx"
    adam = "adam"  # CDISC ADaM-style datasets (XPT v5, Parquet, CSV, define metadata)


class EngineName(StrEnum):
    """Engines the commands can run the derivations on (:mod:`amlcohort.engines`)."""

    duckdb = "duckdb"
    sqlite = "sqlite"
    postgres = "postgres"
    spark = "spark"


ENGINE_HELP = ("Where the derivations run: duckdb (in process, the default), sqlite, postgres or spark "
               "(the last two: pip install 'amlcohort[engines]'). The bundle is validated in process, "
               "then loaded there.")
DB_HELP = ("The engine's database: a DuckDB or SQLite file, a PostgreSQL URL (default: "
           "$AMLCOHORT_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/test) or a Spark master "
           "(default local[2]). The bundle's tables are loaded there for this run only: temporary "
           "tables (on Spark a new database), nothing of the database replaced.")


def fail(message: str, code: int = DATA_ERROR) -> typer.Exit:
    """Print ``message`` as one plain line (no markup) on stderr; the Exit to raise."""
    err_console.print(Text(f"error: {message}", style="red"), soft_wrap=True)
    return typer.Exit(code)


def _os_error_message(exc: OSError) -> tuple[str, int]:
    where = f" {exc.filename!s}" if exc.filename else ""
    if isinstance(exc, PermissionError):
        return f"permission denied:{where}; choose a place you can read/write, or fix its permissions", 2
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder:{where}; check the path", 2
    if isinstance(exc, NotADirectoryError):
        return f"not a folder:{where}; give a folder", 2
    if isinstance(exc, IsADirectoryError):
        return f"is a folder, not a file:{where}; give a file", 2
    if isinstance(exc, FileExistsError):
        return f"already exists:{where}; choose another name or remove it", 2
    return f"{exc.strerror or exc}:{where}", 1


F = TypeVar("F", bound=Callable[..., Any])


def guarded(func: F) -> F:
    """Turn expected failures of a command into one line and an exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except InputError as exc:
            for p in exc.errors[:20]:
                err_console.print(Text(str(p), style="red"), soft_wrap=True)
            raise fail(str(exc).splitlines()[0]) from None
        except OSError as exc:
            message, code = _os_error_message(exc)
            raise fail(message, code) from None
        except (ValueError, KeyError) as exc:
            raise fail(str(exc).strip("'\"")) from None
        except Exception as exc:
            message = _engine_limit_message(exc)
            if message is None:
                raise
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]


def _engine_limit_message(exc: Exception) -> str | None:
    """One line for the staging DuckDB running out of memory or of disk for its spill files (a
    limit of this machine, not an error in the data); None for anything else."""
    kind = type(exc).__name__
    if type(exc).__module__.lstrip("_") != "duckdb":
        return None
    if kind == "OutOfMemoryException":
        from amlcohort.io.cohort import duckdb_memory_limit, larger_memory_limit, machine_memory

        limit = duckdb_memory_limit()
        total = machine_memory()
        machine = f" (this machine has {total / 2**30:.1f} GiB)" if total else ""
        return (f"the in-process database ran out of memory (limit {limit}, where it can no longer "
                f"spill to disk): set a larger limit, e.g. "
                f"AMLCOHORT_DUCKDB_MEMORY={larger_memory_limit(limit) or '16GB'}{machine} "
                f"(DuckDB: {str(exc).splitlines()[0]})")
    if kind == "IOException" and "No space left" in str(exc):
        return ("the in-process database's temporary files filled the disk (it spills what does not "
                f"fit in memory to {tempfile.gettempdir()}): free space there or set TMPDIR "
                f"elsewhere (DuckDB: {str(exc).splitlines()[0]})")
    return None


def validate_bundle(path: Path | None, con: Any = None) -> tuple[ValidationReport, Cohort | None]:
    """:func:`amlcohort.io.cohort.validate_bundle`, imported on first use (looked up here at call
    time, so a test can replace it to prove a command stops before loading a bundle); with
    ``con`` (:func:`engine_connection`) the cohort is loaded there, as temporary tables."""
    from amlcohort.io.cohort import validate_bundle as validate

    return validate(path) if con is None else validate(path, con=con, temporary=True)


def engine_for(engine: EngineName | None, db: str | None) -> EngineName | None:
    """The engine ``--engine`` names, or the one ``--db`` implies (a PostgreSQL URL, a Spark
    master, a .sqlite/.db or .duckdb file); None: the default in-process DuckDB. A usage error when
    neither says which, or the two disagree."""
    if db is None:
        return engine
    text = db.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    implied: EngineName | None = None
    if scheme in ("postgres", "postgresql"):
        implied = EngineName.postgres
    elif scheme == "spark" or text == "local" or text.startswith(("local[", "yarn")):
        implied = EngineName.spark
    elif not scheme and text.lower().endswith((".sqlite", ".sqlite3", ".db")):
        implied = EngineName.sqlite
    elif not scheme and text.lower().endswith(".duckdb"):
        implied = EngineName.duckdb
    if engine is None and implied is None:
        raise fail(f"--db {db}: say which engine it is for with --engine "
                   f"({', '.join(e.value for e in EngineName)})", USAGE_ERROR)
    file_engines = (EngineName.duckdb, EngineName.sqlite)
    if engine is not None and implied is not None and engine != implied and not (
        engine in file_engines and implied in file_engines
    ):
        raise fail(f"--db {db} looks like a {implied.value} address, not one for --engine {engine.value}",
                   USAGE_ERROR)
    if engine in file_engines and scheme:
        raise fail(f"--db {db}: --engine {engine.value} takes a database file, not a URL", USAGE_ERROR)
    return engine or implied


def engine_connection(engine: EngineName | None, db: str | None) -> Any:
    """The Ibis connection the command loads the bundle into (None: the in-process default).
    On Spark a new database of its own (Spark has no temporary tables), in a warehouse folder the
    process removes at exit (:func:`amlcohort.engines.connect`)."""
    chosen = engine_for(engine, db)
    if chosen is None or (chosen is EngineName.duckdb and db is None):
        return None
    import uuid

    from amlcohort.engines import DatabasePathError, EngineUnavailable, connect

    try:
        con = connect(chosen.value, db)
    except EngineUnavailable as exc:
        code = USAGE_ERROR if isinstance(exc, DatabasePathError) else DATA_ERROR
        raise fail(f"--engine {chosen.value}: {exc}", code) from None
    if chosen is EngineName.spark:
        database = f"amlcohort_{uuid.uuid4().hex[:12]}"
        con.raw_sql(f"CREATE DATABASE {database}")
        con.raw_sql(f"USE {database}")
    return con


def _check_bundle(path: Path | None) -> None:
    """Usage error (exit 2) when ``path`` is not a bundle; nothing else is done before."""
    if path is None:
        return
    from amlcohort.io.readers import bundle_path_problems

    problems = bundle_path_problems(path)
    if problems:
        raise fail(f"{path}: {problems[0].reason}", USAGE_ERROR)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: is a file; give a folder (it is created if missing)", USAGE_ERROR)


app.add_typer(protocol_app, name="protocol", help="The treatment protocol: definition, due, audit.")
app.add_typer(import_app, name="import", help="Import a cohort from REDCap (records, dictionary, mapping).")
app.command("serve")(serve)  # the study workspace


def _print_report(report: ValidationReport) -> None:
    for p in report.problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(Text(str(p), style=style), soft_wrap=True)
    line = Text(f"{report.path}: ")
    line.append("valid" if report.ok else "invalid", style="green" if report.ok else "red")
    line.append(f" — {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    console.print(line, soft_wrap=True)


def cohort_summary(cohort: Cohort) -> Table:
    """Patients per arm, with sex, age range and reported risk groups (Ibis, then a small table)."""
    p = cohort.table("patients")
    agg = (
        p.group_by("study_arm")
        .aggregate(
            patients=p.count(),
            female=(p.sex == "female").sum(),
            age_min=p.age_at_onset.min(),
            age_max=p.age_at_onset.max(),
            adverse=(p.risk_group_reported == "adverse").sum(),
            intermediate=(p.risk_group_reported == "intermediate").sum(),
            favorable=(p.risk_group_reported == "favorable").sum(),
        )
        .order_by("study_arm")
        .to_pyarrow()
        .to_pylist()
    )
    t = Table(
        title=Text(
            f"{cohort.metadata.study_name}\ncut-off {cohort.metadata.cutoff_date}"
            + ("  [RECONSTRUCTED DATA]" if cohort.metadata.reconstructed else "")
        )
    )
    for col in ("arm", "patients", "female", "onset age", "adverse / intermediate / favorable"):
        t.add_column(col)
    for r in agg:
        t.add_row(
            Text(cohort.study.arm_label(str(r["study_arm"]))),
            Text(str(r["patients"])),
            Text(str(r["female"])),
            Text(f"{r['age_min']}–{r['age_max']}"),
            Text(f"{r['adverse']} / {r['intermediate']} / {r['favorable']}"),
        )
    return t


@app.command()
@guarded
def validate(
    path: Path = typer.Argument(
        None, help="Bundle folder or its .xlsx workbook (default: the embedded study)."
    ),
    engine: EngineName = typer.Option(None, "--engine", help=ENGINE_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Validate a cohort bundle; exit 1 when it has errors (2 when PATH is not a bundle). With
    --engine or --db a valid bundle is also loaded into that engine, and its rows counted there."""
    _check_bundle(path)
    con = engine_connection(engine, db)
    report, cohort = validate_bundle(path, con)
    _print_report(report)
    if cohort is not None and con is not None:
        from amlcohort.io.cohort import table_rows

        rows = table_rows(cohort.tables)
        console.print(Text(f"loaded into {engine_for(engine, db)}: " + ", ".join(
            f"{name} {n}" for name, n in rows.items())), soft_wrap=True)
    raise typer.Exit(0 if report.ok else 1)


def _report(
    path: Path | None, out: Path, claims: Path | None, pdf: bool, criteria: str | None, png: bool = False,
    engine: EngineName | None = None, db: str | None = None,
) -> None:
    _check_bundle(path)
    _check_out(out)
    engine_for(engine, db)  # a usage error before any work
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from amlcohort.io.output import OutputError, preflight
    from amlcohort.report.build import assemble, write_report

    try:
        preflight(out)  # a locked, linked, foreign or unwritable --out fails before any work
    except OutputError as exc:
        raise fail(str(exc), USAGE_ERROR) from None

    report, cohort = validate_bundle(path, engine_connection(engine, db))
    _print_report(report)
    if cohort is None:
        raise typer.Exit(1)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def step(text: str) -> None:
            bar.update(task, description=text)

        chosen = criteria or cohort.study.criteria
        built = assemble(cohort, claims_path=claims, criteria=chosen, progress=step)
        try:
            paths = write_report(built, out, pdf=pdf, png=png, progress=step)
        except OutputError as exc:
            raise fail(str(exc)) from None
    console.print(cohort_summary(cohort))
    counts = {
        s: sum(v.status == s for v in built.verdicts) for s in ("reproduced", "discrepant", "not computed")
    }
    console.print(
        f"claims audit: {counts['reproduced']} reproduced, {counts['discrepant']} discrepant, "
        f"{counts['not computed']} not computed"
        if built.verdicts else "claims audit: none (the study names no claims file; --claims adds one)"
    )
    for kind, p in paths.items():
        console.print(Text(f"{kind:>8}: {p}"), soft_wrap=True)
    console.print(Text(f"report written to {out.resolve()}"), soft_wrap=True)


@app.command()
@guarded
def report(
    path: Path = typer.Argument(
        None, help="Bundle folder or its .xlsx workbook (default: the embedded study)."
    ),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder."),
    claims: Path = typer.Option(
        None, "--claims", exists=True, dir_okay=False, help="Claims file to audit (default: the study's)."
    ),
    pdf: bool = typer.Option(False, "--pdf", help="Also write report.pdf (typeset, A4)."),
    png: bool = typer.Option(False, "--png", help="Also write figures/*.png (150 dpi)."),
    criteria: Criteria = typer.Option(
        None, "--criteria", help="Response criteria (default: the study definition's)."
    ),
    engine: EngineName = typer.Option(None, "--engine", help=ENGINE_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """The main job: validate, derive, analyse and write the report (HTML, figures, tables, results.json)."""
    _report(path, out, claims, pdf, None if criteria is None else criteria.value, png, engine, db)


@app.command()
@guarded
def demo(
    out: Path = typer.Option(Path("report"), "--out", help="Output folder."),
) -> None:
    """The report on the embedded (reconstructed) study cohort."""
    _report(None, out, None, True, None)


@app.command()
@guarded
def export(
    dest: Path = typer.Argument(..., help="Folder to write the bundle to."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.csv, "--format", help="csv, parquet, xlsx or adam (CDISC ADaM datasets)."
    ),
    path: Path = typer.Option(
        None, "--from", help="Bundle folder or .xlsx to read (default: the embedded study)."
    ),
    engine: EngineName = typer.Option(None, "--engine", help=ENGINE_HELP),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write a validated cohort as a bundle (canonical units, with its study definition) in another format.

    DEST must be a new or empty folder, or an earlier amlcohort export (replaced whole), outside the
    bundle read; it is written atomically: all of it, or (on any error) nothing."""
    from amlcohort.io import writers

    _check_bundle(path)
    _check_out(dest)
    engine_for(engine, db)  # a usage error before any work
    source = path
    if source is None:
        from amlcohort.io.cohort import embedded_study_path

        source = embedded_study_path()
    try:
        writers.check_export_target(source, dest)
    except writers.ExportTargetError as exc:
        raise fail(str(exc), USAGE_ERROR) from None
    report, cohort = validate_bundle(path, engine_connection(engine, db))
    if cohort is None:
        _print_report(report)
        raise typer.Exit(1)
    try:
        if fmt is ExportFormat.adam:
            from amlcohort.interop.cli import export_adam

            writers.staged_export(dest, lambda folder: export_adam(cohort, dest, into=folder))
            return
        writers.staged_export(dest, lambda folder: writers.write_bundle(cohort, folder, fmt.value))  # type: ignore[arg-type]
    except writers.ExportTargetError as exc:
        raise fail(str(exc), USAGE_ERROR) from None
    console.print(Text(f"wrote {dest}  ({fmt.value})"), soft_wrap=True)


@app.command()
@guarded
def dictionary(out: Path = typer.Option(None, help="Write to this file instead of printing.")) -> None:
    """The data dictionary of the cohort model, as Markdown."""
    from amlcohort.schema.dictionary import data_dictionary

    text = data_dictionary()
    if out is None:
        console.print(text, markup=False, highlight=False)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(Text(f"wrote {out}"), soft_wrap=True)


def main() -> None:
    """The ``amlcohort`` command (the console script): :data:`app`, then a quick exit.

    Before the interpreter shuts down, every object left is moved out of the cyclic garbage
    collector's reach (``gc.freeze``): its last collections would otherwise walk the hundreds of
    thousands of objects a run leaves (Ibis expressions, compiled SQL), 0.3 s of a 2 s
    ``validate``, only to free memory the process is about to return anyway. Exit handlers still
    run (temporary folders are removed), and every output is written and closed before this."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
