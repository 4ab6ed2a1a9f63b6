"""Helpers for the hostile-input suite: bundles built from the embedded study, then damaged."""

from __future__ import annotations

import csv
import re
import shutil
import zipfile
from pathlib import Path

from amlcohort.io.cohort import embedded_study_path


def copy_bundle(dest: Path) -> Path:
    shutil.copytree(
        embedded_study_path(),
        dest,
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__"),
    )
    return dest


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> None:
    with path.open("w", newline="", encoding=encoding) as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def set_cell(bundle: Path, table: str, row: int, column: str, value: str) -> None:
    """Set data row ``row`` (1-based) of ``column`` in ``table``.csv to ``value``."""
    rows = read_csv(bundle / f"{table}.csv")
    rows[row][rows[0].index(column)] = value
    write_csv(bundle / f"{table}.csv", rows)


def rename_patient(bundle: Path, old: str, new: str) -> None:
    """Rename a patient in every table of a CSV bundle."""
    for f in bundle.glob("*.csv"):
        rows = read_csv(f)
        if "patient_id" not in rows[0]:
            continue
        j = rows[0].index("patient_id")
        for r in rows[1:]:
            if r[j] == old:
                r[j] = new
        write_csv(f, rows)


def xlsx_bundle(study, dest: Path) -> Path:
    """The embedded study written as one workbook (typed cells) with its metadata."""
    from amlcohort.io.writers import write_bundle

    write_bundle(study, dest, "xlsx")
    return dest / "cohort.xlsx"


def inject_formula(xlsx: Path, sheet_index: int, cell: str, formula: str) -> None:
    """Give cell ``cell`` of sheet ``sheet_index`` (1-based) a formula, keeping its saved value
    (what a spreadsheet program writes; openpyxl cannot write cached values)."""
    tmp = xlsx.with_suffix(".tmp")
    with zipfile.ZipFile(xlsx) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == f"xl/worksheets/sheet{sheet_index}.xml":
                text = data.decode()
                pattern = re.compile(rf'(<c r="{cell}"[^>]*>)(<v>)')
                assert pattern.search(text), f"cell {cell} not found"
                text = pattern.sub(rf"\1<f>{formula}</f>\2", text, count=1)
                data = text.encode()
            out.writestr(item, data)
    tmp.replace(xlsx)
