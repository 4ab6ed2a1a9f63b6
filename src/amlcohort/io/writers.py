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
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from amlcohort.io.cohort import Cohort, table_rows
from amlcohort.io.excel import XLSX_MAX_CELL_CHARS, XLSX_MAX_ROWS, reproducible_xlsx
from amlcohort.io.metadata import METADATA_FILE
from amlcohort.io.readers import FORMULA_START
from amlcohort.schema import TABLES

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
    model = next(t for t in TABLES if t.name == name)
    return cohort.tables[name].select(*model.column_names).to_pyarrow()


def write_bundle(cohort: Cohort, dest: str | Path, fmt: Format = "csv") -> Path:
    """Write ``cohort`` to the folder ``dest`` as a bundle of format ``fmt``; returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / METADATA_FILE).write_text(yaml.safe_dump(_metadata(cohort), sort_keys=False), encoding="utf-8")
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
