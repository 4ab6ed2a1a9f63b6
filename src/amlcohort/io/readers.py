"""Reading a bundle's tables as text, exactly as written (typing is validation's job).

A bundle is a folder holding ``metadata.yaml`` and the tables as ``<table>.csv`` files,
``<table>.parquet`` files, or one ``.xlsx`` workbook with a sheet per table. Every table comes
back as a pyarrow table of strings (empty cells as null) with a ``_row`` column: the 1-based
data row (header not counted), so every problem can name the row a person sees.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from amlcohort.problems import Problem

ROW = "_row"


@dataclass(frozen=True)
class RawBundle:
    format: str
    tables: dict[str, pa.Table]
    files: dict[str, str]


def _with_rows(table: pa.Table) -> pa.Table:
    return table.append_column(ROW, pa.array(range(1, table.num_rows + 1), pa.int64()))


def _as_text(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            cols.append(col.cast(pa.string()))
        elif pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
            cols.append(col.cast(pa.date32()).cast(pa.string()))
        else:
            cols.append(col.cast(pa.string()))
    return pa.table(cols, names=table.column_names)


def _read_csv(path: Path) -> pa.Table:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), [])
    names = [n.strip() for n in header]
    if len(set(names)) != len(names):
        raise ValueError(f"{path.name}: repeated column name in header {names}")
    opts = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding="utf-8"), convert_options=opts)
    return table.rename_columns(names)


def _read_xlsx(path: Path) -> dict[str, pa.Table]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    out: dict[str, pa.Table] = {}
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        if not rows:
            continue
        header = [str(h).strip() if h is not None else "" for h in rows[0]]
        data = rows[1:]
        while data and all(v is None or str(v).strip() == "" for v in data[-1]):
            data.pop()
        cols = {}
        for j, name in enumerate(header):
            if not name:
                continue
            cols[name] = pa.array([_cell(r[j] if j < len(r) else None) for r in data], pa.string())
        out[sheet.title.strip()] = pa.table(cols) if cols else pa.table({})
    book.close()
    return out


def _cell(v: object) -> str | None:
    import datetime as dt

    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v).strip()
    return s or None


def read_bundle(path: Path) -> tuple[RawBundle | None, list[Problem]]:
    """Read every table file of the bundle at ``path`` (a folder, or an .xlsx inside one)."""
    folder = path if path.is_dir() else path.parent
    if not folder.exists():
        return None, [Problem("error", str(path), "no such bundle folder or file", code="bundle.path")]
    xlsx = [path] if path.suffix.lower() == ".xlsx" else sorted(folder.glob("*.xlsx"))
    csvs, parquets = sorted(folder.glob("*.csv")), sorted(folder.glob("*.parquet"))
    kinds = [k for k, files in (("csv", csvs), ("parquet", parquets), ("xlsx", xlsx)) if files]
    if not kinds:
        return None, [
            Problem(
                "error",
                str(folder),
                "no table files (.csv, .parquet or .xlsx) in the bundle",
                code="bundle.empty",
            )
        ]
    if len(kinds) > 1:
        return None, [
            Problem("error", str(folder), f"mixes table formats {kinds}; use one", code="bundle.mixed")
        ]
    tables: dict[str, pa.Table] = {}
    files: dict[str, str] = {}
    try:
        if kinds == ["xlsx"]:
            if len(xlsx) > 1:
                return None, [Problem("error", str(folder), "more than one workbook", code="bundle.mixed")]
            for name, t in _read_xlsx(xlsx[0]).items():
                tables[name], files[name] = t, f"{xlsx[0].name}[{name}]"
        else:
            for f in csvs or parquets:
                t = _read_csv(f) if f.suffix == ".csv" else _as_text(pq.read_table(f))
                tables[f.stem], files[f.stem] = t, f.name
    except (pa.ArrowInvalid, OSError, ValueError, UnicodeDecodeError, KeyError, csv.Error) as exc:
        return None, [Problem("error", str(folder), f"cannot be read: {exc}", code="bundle.unreadable")]
    tables = {k: _with_rows(_as_text(v)) for k, v in tables.items()}
    return RawBundle(kinds[0], tables, files), []
