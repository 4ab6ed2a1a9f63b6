"""Writing a cohort back out as a bundle (CSV folder, Parquet folder or one XLSX workbook).

Values are written in the model's canonical units, and the metadata says so, so a written
bundle loads back to the same cohort.

Text a spreadsheet would run as a formula (a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return; OWASP "CSV injection") is neutralised: in CSV it gets a leading ``'``
(which the CSV reader removes again, so the bundle loads back to the same values); in XLSX it is
written as a text cell with the "quote prefix" flag, Excel's own form of the leading ``'``, so
the stored value is unchanged. Text longer than a spreadsheet cell holds (32,767 characters)
and a table longer than a worksheet holds (1,048,575 rows under the header) are errors for XLSX,
never cut.

The bundle's study definition goes with it: ``study.yaml`` and the files it names (population
rules, protocol, claims) are copied unchanged (:func:`write_study`), so the written bundle is
analysed under the same criteria, arms and index drug. A file it names that would be read as a
table of the new format's bundle (``population: rules.csv`` beside Parquet tables) is put under
``study_files/`` and ``study.yaml`` is rewritten to point there.

``amlcohort export`` writes through :func:`staged_export`: never into the bundle it reads (or a folder
inside it or around it), never into a non-empty folder that is not an earlier amlcohort output (the
report's own rule, :func:`amlcohort.io.output.preflight`), and atomically (a fresh folder swapped
in whole, with a ``manifest.json``, as the report is written), so a refused or failed export leaves
nothing half-written.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from amlcohort.io.cohort import Cohort, table_rows
from amlcohort.io.excel import XLSX_MAX_CELL_CHARS, XLSX_MAX_ROWS, reproducible_xlsx
from amlcohort.io.metadata import METADATA_FILE
from amlcohort.io.output import OutputError, file_digest, preflight, staged_output
from amlcohort.io.readers import FORMULA_START
from amlcohort.schema import TABLES
from amlcohort.schema.study import STUDY_FILE

Format = Literal["csv", "parquet", "xlsx"]


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (OWASP CSV injection)."""
    return text.startswith(FORMULA_START)


def neutralised(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula."""
    return "'" + text if is_formula_like(text) else text


def _neutralise_csv(data: pa.Table) -> pa.Table:
    cols = [
        pc.replace_substring_regex(c, r"^([=+\-@\t\r])", r"'\1") if pa.types.is_string(c.type) else c
        for c in data.columns
    ]
    return pa.table(cols, names=data.column_names)


def _metadata(cohort: Cohort) -> dict:
    m = cohort.metadata
    units = {c.name: c.unit for t in TABLES for c in t.columns if c.units}
    return {
        "study_name": m.study_name,
        "source": m.source,
        "reconstructed": m.reconstructed,
        "cutoff_date": m.cutoff_date.isoformat(),
        "description": m.description,
        "units": units,
        "provenance": m.provenance,
        "notes": m.notes,
    }


def _arrow(cohort: Cohort, name: str) -> pa.Table:
    """Table ``name``'s rows in the order of its key (unique in a validated cohort), sorted after
    they are read: an engine returns rows in any order (Spark's differ from DuckDB's), and text by
    code point here is the same on every engine, whatever a database's collation."""
    model = next(t for t in TABLES if t.name == name)
    data = cohort.tables[name].select(*model.column_names).to_pyarrow()
    return data.sort_by([(k, "ascending") for k in model.key])  # missing values last (the default)


def write_bundle(cohort: Cohort, dest: str | Path, fmt: Format = "csv") -> Path:
    """Write ``cohort`` to the folder ``dest`` as a bundle of format ``fmt``; returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if fmt not in ("csv", "parquet", "xlsx"):
        raise ValueError(f"unknown bundle format {fmt!r}; use csv, parquet or xlsx")
    (dest / METADATA_FILE).write_text(yaml.safe_dump(_metadata(cohort), sort_keys=False), encoding="utf-8")
    write_study(cohort, dest, fmt)
    if fmt == "xlsx":
        _write_xlsx(cohort, dest / "cohort.xlsx")
        return dest
    for t in TABLES:
        if not cohort.has(t.name):  # an absent optional table stays absent (unknown, not empty)
            continue
        data = _arrow(cohort, t.name)
        if fmt == "parquet":
            pq.write_table(data, dest / f"{t.name}.parquet")
        elif fmt == "csv":
            pacsv.write_csv(_neutralise_csv(data), dest / f"{t.name}.csv")
        else:
            raise ValueError(f"unknown bundle format {fmt!r}; use csv, parquet or xlsx")
    return dest


def _write_xlsx(cohort: Cohort, path: Path) -> None:
    import openpyxl
    from openpyxl.cell.cell import Cell

    supplied = [t for t in TABLES if cohort.has(t.name)]
    rows = table_rows({t.name: cohort.tables[t.name] for t in supplied})
    for t in supplied:  # before anything is written
        n = rows[t.name]
        if n > XLSX_MAX_ROWS - 1:
            raise ValueError(
                f"table {t.name!r}: {n:,} rows; an XLSX worksheet holds at most {XLSX_MAX_ROWS - 1:,} "
                "under its header (nothing is cut): export as csv or parquet"
            )
    book = openpyxl.Workbook()
    book.remove(book.active)
    for t in supplied:
        sheet = book.create_sheet(t.name)
        data = _arrow(cohort, t.name)
        sheet.append(list(data.column_names))
        for i, row in enumerate(data.to_pylist(), start=1):
            cells = []
            for col, v in row.items():
                if isinstance(v, str):
                    if len(v) > XLSX_MAX_CELL_CHARS:
                        raise ValueError(
                            f"table {t.name!r}, row {i}, column {col!r}: text of {len(v)} characters; "
                            f"an XLSX cell holds at most {XLSX_MAX_CELL_CHARS} (nothing is cut): "
                            "export as csv or parquet"
                        )
                    cell = Cell(sheet, value=v)
                    cell.data_type = "s"  # never a formula, whatever it starts with
                    if is_formula_like(v):
                        cell.quotePrefix = True
                    v = cell
                cells.append(v)
            sheet.append(cells)
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(reproducible_xlsx(buf.getvalue()))


# ---- the study definition ----------------------------------------------------------------------

STUDY_FILES_FOLDER = "study_files"
_STUDY_FILE_KEYS = ("population", "protocol", "claims")
_TABLE_SUFFIXES = (".csv", ".parquet", ".xlsx")


def source_folder(cohort: Cohort) -> Path:
    """The folder of the bundle ``cohort`` was loaded from."""
    path = Path(cohort.report.path)
    return path if path.is_dir() else path.parent


def write_study(cohort: Cohort, dest: Path, fmt: Format = "csv") -> list[Path]:
    """Copy the source bundle's ``study.yaml`` and the files it names into ``dest``; the paths written.

    Nothing is written for a bundle without ``study.yaml`` (its definition is derived from the data,
    and will be again from the written bundle). Files keep their place inside the bundle, except a
    top-level file a reader would take for a table of a ``fmt`` bundle: it goes to ``study_files/``.
    """
    if not cohort.study.declared:
        return []
    folder = source_folder(cohort)
    source = folder / STUDY_FILE
    if not source.is_file():
        raise ValueError(
            f"{source}: the study definition the cohort was loaded with is gone; "
            "restore it (or load the bundle again) before exporting"
        )
    root = folder.resolve()
    moved: dict[str, str] = {}
    written = []
    for key in _STUDY_FILE_KEYS:
        path: Path | None = getattr(cohort.study, key)
        if path is None:
            continue
        rel = Path(path).resolve().relative_to(root)  # the loader only accepts files inside the bundle
        if len(rel.parts) == 1 and rel.suffix.lower() in _TABLE_SUFFIXES and rel.suffix.lower() != f".{fmt}":
            rel = Path(STUDY_FILES_FOLDER) / rel
            moved[key] = rel.as_posix()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    if moved:
        from amlcohort.io.metadata import safe_yaml

        raw = safe_yaml(source.read_text(encoding="utf-8"))
        raw.update(moved)
        text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
        (dest / STUDY_FILE).write_text(text, encoding="utf-8")
    else:
        shutil.copyfile(source, dest / STUDY_FILE)
    return [dest / STUDY_FILE, *written]


# ---- where an export may go --------------------------------------------------------------------


class ExportTargetError(Exception):
    """The export folder cannot be used (one line naming it and the fix)."""


def check_export_target(source: str | Path, dest: str | Path) -> None:
    """Refuse an export folder that is the source bundle, inside it or around it, or (the report's
    rule) a non-empty folder that is not an earlier amlcohort output; nothing is written but the
    lock file beside ``dest`` that :func:`~amlcohort.io.output.preflight` uses."""

    src = Path(source)
    src = (src if src.is_dir() else src.parent).resolve()
    out = Path(dest).resolve()
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        where = "is" if out == src else ("is inside" if out.is_relative_to(src) else "contains")
        raise ExportTargetError(
            f"{dest} {where} the bundle being exported ({src}); writing there would overwrite or mix "
            "with its files: choose a new or empty folder outside it"
        )
    try:
        preflight(out)
    except OutputError as exc:
        raise ExportTargetError(_export_wording(str(exc))) from None


def _export_wording(message: str) -> str:
    return (
        message.replace("an amlcohort report", "an amlcohort export or report")
        .replace("the report", "the export")
        .replace("report folder", "export folder")
        .replace("--out", "the export folder")
    )


T = TypeVar("T")


class _Failed(Exception):
    """Carries the body's own error through :func:`staged_output` (which rewords OSErrors)."""


def staged_export(dest: str | Path, write: Callable[[Path], T]) -> T:
    """Run ``write(folder)`` on a fresh folder beside ``dest`` and swap it in as ``dest`` whole, with
    a ``manifest.json`` listing every file (the report's :func:`~amlcohort.io.output.staged_output`);
    on any error ``dest`` is left as it was. ``write``'s own errors propagate unchanged."""

    try:
        with staged_output(dest) as stage:
            try:
                result = write(stage.root)
            except Exception as exc:
                raise _Failed() from exc
            for f in sorted(stage.root.rglob("*")):
                if f.is_file():
                    stage.files[f.relative_to(stage.root).as_posix()] = file_digest(f)
    except _Failed as failed:
        raise failed.__cause__ from None  # type: ignore[misc]
    except OutputError as exc:
        raise ExportTargetError(_export_wording(str(exc))) from None
    return result
