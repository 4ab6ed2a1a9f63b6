"""`amlcohort export` neutralises text a spreadsheet would run as a formula (OWASP CSV
injection) and never cuts text, while the bundle still loads back to the same values."""

from __future__ import annotations

import shutil

import openpyxl
import pytest

from amlcohort import load_cohort
from amlcohort.io.cohort import embedded_study_path
from amlcohort.io.writers import XLSX_MAX_CELL_CHARS, is_formula_like, neutralised, write_bundle

PAYLOADS = [
    '=HYPERLINK("http://x","y")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_formula_like_text_gets_a_quote(text):
    assert is_formula_like(text)
    assert neutralised(text) == "'" + text


@pytest.mark.parametrize("text", ["sorafenib", "1,5", "", "a=b", " =x"])
def test_other_text_is_unchanged(text):
    assert not is_formula_like(text)
    assert neutralised(text) == text


@pytest.fixture()
def hostile_cohort(tmp_path):
    b = tmp_path / "in"
    shutil.copytree(
        embedded_study_path(), b, ignore=shutil.ignore_patterns("__init__.py", "__pycache__")
    )
    lines = (b / "adverse_events.csv").read_text().splitlines()
    for i, payload in enumerate(PAYLOADS[:4], start=1):
        cells = lines[i].split(",")
        lines[i] = ",".join([*cells[:-1], '"' + payload.replace('"', '""') + '"'])
    (b / "adverse_events.csv").write_text("\n".join(lines) + "\n")
    return load_cohort(b)


def _descriptions(cohort) -> list[str]:
    return sorted(cohort.tables["adverse_events"].description.execute().dropna().tolist())


def test_csv_export_neutralises_and_loads_back(hostile_cohort, tmp_path):
    out = write_bundle(hostile_cohort, tmp_path / "csv", "csv")
    text = (out / "adverse_events.csv").read_text()
    assert "'=HYPERLINK" in text and "'+SUM" in text and "'@cmd" in text
    assert '\n"=' not in text and ",=" not in text and ',"=' not in text
    assert _descriptions(load_cohort(out)) == _descriptions(hostile_cohort)


def test_xlsx_export_writes_text_never_formulas(hostile_cohort, tmp_path):
    out = write_bundle(hostile_cohort, tmp_path / "x", "xlsx")
    book = openpyxl.load_workbook(out / "cohort.xlsx")
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    quoted = [c for c in cells if isinstance(c.value, str) and is_formula_like(c.value)]
    assert len(quoted) >= 4 and all(c.quotePrefix for c in quoted)
    assert _descriptions(load_cohort(out)) == _descriptions(hostile_cohort)


def test_xlsx_export_refuses_text_it_would_cut(study, tmp_path, monkeypatch):
    import pyarrow as pa

    import amlcohort.io.writers as writers

    real = writers._arrow

    def long_text(cohort, name):
        t = real(cohort, name)
        if name != "patients":
            return t
        col = t.column("diagnosis_text").to_pylist()
        col[2] = "z" * (XLSX_MAX_CELL_CHARS + 1)
        return t.set_column(t.column_names.index("diagnosis_text"), "diagnosis_text", pa.array(col))

    monkeypatch.setattr(writers, "_arrow", long_text)
    with pytest.raises(ValueError, match=r"'patients', row 3, column 'diagnosis_text'.*32767"):
        write_bundle(study, tmp_path / "x", "xlsx")
    write_bundle(study, tmp_path / "c", "csv")  # CSV has no such limit: written whole
    assert "z" * (XLSX_MAX_CELL_CHARS + 1) in (tmp_path / "c" / "patients.csv").read_text()


def test_a_table_longer_than_an_xlsx_sheet_is_refused_before_anything_is_written(
    study, tmp_path, monkeypatch
):
    """A worksheet holds 1,048,576 rows (the header included); openpyxl writes more, which Excel
    cannot open. The export refuses, naming the table and its rows, and nothing is cut. (The limit
    is lowered here so that the embedded study's assessments, 144 rows, exceed it.)"""
    import amlcohort.io.writers as writers
    from amlcohort.io.excel import XLSX_MAX_ROWS

    assert XLSX_MAX_ROWS == 1_048_576
    rows = int(study.tables["assessments"].count().execute())
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", rows)  # room for rows - 1 under the header
    with pytest.raises(ValueError, match=rf"table 'assessments': {rows:,} rows; an XLSX worksheet holds "
                                         rf"at most {rows - 1:,} under its header \(nothing is cut\)"):
        write_bundle(study, tmp_path / "x", "xlsx")
    assert not (tmp_path / "x" / "cohort.xlsx").exists()
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", rows + 1)  # exactly full: written
    write_bundle(study, tmp_path / "y", "xlsx")
    assert (tmp_path / "y" / "cohort.xlsx").exists()


def test_xlsx_export_is_reproducible(study, tmp_path, office_clock):
    """The same cohort exported twice gives the same bytes: openpyxl's time stamps (the document's
    created and modified times, every zip part's date) are left out. The two runs see clocks four
    years apart, so a stamp left in would show."""
    import datetime as dt
    import zipfile

    office_clock(dt.datetime(2020, 1, 2, 3, 4, 5))
    a = (write_bundle(study, tmp_path / "a", "xlsx") / "cohort.xlsx").read_bytes()
    office_clock(dt.datetime(2024, 6, 7, 8, 9, 10))
    b = (write_bundle(study, tmp_path / "b", "xlsx") / "cohort.xlsx").read_bytes()
    assert a == b
    with zipfile.ZipFile(tmp_path / "a" / "cohort.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        props = z.read("docProps/core.xml")
    assert b"dcterms:created" not in props and b"dcterms:modified" not in props
    assert b"<dc:creator>" in props  # the rest of the properties are kept
    book = openpyxl.load_workbook(tmp_path / "a" / "cohort.xlsx")  # still a workbook
    assert book["patients"].max_row == 14  # 13 patients under the header
