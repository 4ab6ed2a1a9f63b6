"""Writing a cohort back out as a bundle (CSV folder, Parquet folder or one XLSX workbook).

Values are written in the model's canonical units, and the metadata says so, so a written
bundle loads back to the same cohort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from amlcohort.io.cohort import Cohort
from amlcohort.io.metadata import METADATA_FILE
from amlcohort.schema import TABLES

Format = Literal["csv", "parquet", "xlsx"]


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
            pacsv.write_csv(data, dest / f"{t.name}.csv")
        else:
            raise ValueError(f"unknown bundle format {fmt!r}; use csv, parquet or xlsx")
    return dest


def _write_xlsx(cohort: Cohort, path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for t in TABLES:
        if not cohort.has(t.name):
            continue
        sheet = book.create_sheet(t.name)
        data = _arrow(cohort, t.name)
        sheet.append(list(data.column_names))
        for row in data.to_pylist():
            sheet.append(list(row.values()))
    book.save(path)
