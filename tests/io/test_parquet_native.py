"""A Parquet bundle is validated from its stored types (numbers, dates, booleans never turned into
text and parsed back) and one slice at a time: every finding must be exactly the one the text
path gives (same problems, rows, columns, values, order), on each side of a slice boundary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import amlcohort.io.cohort as cohort_module
from amlcohort.io import readers
from amlcohort.io.cohort import validate_bundle
from amlcohort.synth import write_synthetic_bundle


def _text_source(path: Path, table: str) -> readers.TableSource:
    """The text path: the whole file read and written as text, as :func:`read_bundle` does."""
    text = readers._with_rows(readers._as_text(readers._read_parquet(path, table)))
    return readers.ArrowSource(table, path.name, text)


def _set(table: pa.Table, column: str, rows: dict[int, object], type_: pa.DataType | None = None) -> pa.Table:
    values = table.column(column).to_pylist()
    for r, v in rows.items():
        values[r] = v
    i = table.column_names.index(column)
    return table.set_column(i, column, pa.array(values, type_ or table.schema.field(column).type))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Parquet bundle with NaN, infinities, a value that overflows in its unit, a
    date with a five-digit year, 32-bit integers, a 32-bit float column and repeated keys."""
    out = tmp_path_factory.mktemp("native") / "bundle"
    write_synthetic_bundle(out, 40, seed=3)
    meta = (out / "metadata.yaml").read_text().replace("bilirubin: umol/L", "bilirubin: mg/dL")
    (out / "metadata.yaml").write_text(meta)
    a = pq.read_table(out / "assessments.parquet")
    a = _set(a, "anc", {2: float("nan"), 9: float("inf"), 30: float("-inf"), 31: -0.0})
    a = _set(a, "bilirubin", {4: 1e308, 5: 40.0, 33: 1e-320})  # overflow after x17.104; suspect
    a = _set(a, "platelets", {7: -3.0, 8: 1e9})
    a = _set(a, "marrow_spicules", {11: None})
    # repeated keys, one on each side of the 7-row slice boundaries used below
    key_rows = {12: a.column("assessment_date")[3].as_py(), 20: a.column("assessment_date")[13].as_py()}
    pids = {12: a.column("patient_id")[3].as_py(), 20: a.column("patient_id")[13].as_py()}
    a = _set(a, "assessment_date", key_rows)
    a = _set(a, "patient_id", pids)
    a = a.set_column(a.column_names.index("wbc"), "wbc", a.column("wbc").cast(pa.float32()))
    pq.write_table(a, out / "assessments.parquet")
    e = pq.read_table(out / "events.parquet")
    e = _set(e, "event_date", {1: dt.date(9999, 12, 31)})
    pq.write_table(e, out / "events.parquet")
    ex = pq.read_table(out / "exposures.parquet")
    pq.write_table(ex, out / "exposures.parquet", row_group_size=5)
    return out


def _problems(path: Path, monkeypatch: pytest.MonkeyPatch, *, text: bool, slice_rows: int) -> list:
    with monkeypatch.context() as m:
        if text:
            m.setattr(readers, "parquet_source", _text_source)
        m.setattr(cohort_module, "SLICE_ROWS", slice_rows)
        report, _ = validate_bundle(path)
    return list(report.problems)


@pytest.mark.parametrize("slice_rows", [7, 250_000])
def test_native_parquet_findings_equal_the_text_path(hostile, monkeypatch, slice_rows):
    text = _problems(hostile, monkeypatch, text=True, slice_rows=250_000)
    native = _problems(hostile, monkeypatch, text=False, slice_rows=slice_rows)
    assert native == text
    codes = {(p.table, p.column, p.code) for p in native}
    assert ("assessments", "anc", "value.type") in codes  # NaN and infinities: text, not a number
    assert ("assessments", "bilirubin", "value.range") in codes  # overflows in its declared unit
    assert ("assessments", "platelets", "value.range") in codes
    assert ("assessments", "assessment_date", "key.duplicate") in codes
    rows = {p.row for p in native if p.code == "value.type" and p.column == "anc"}
    assert rows == {3, 10, 31}  # 1-based data rows, across slices of 7
    dup = [p for p in native if p.code == "key.duplicate"]
    assert [p.row for p in dup] == [13, 21] and "same as row 4" in dup[0].reason


def test_native_columns_are_the_exact_ones(hostile):
    bundle, _ = readers.open_bundle(hostile)
    assert bundle is not None
    a = bundle.sources["assessments"]
    assert isinstance(a, readers.ParquetSource)
    assert {"anc", "bilirubin", "assessment_date", "marrow_spicules"} <= a.native
    assert "wbc" not in a.native  # 32-bit float: its text is not the 64-bit value
    assert "patient_id" not in a.native
    assert "event_date" in bundle.sources["events"].native  # 9999-12-31: four digits
    assert a.cell_text("anc", [3, 10, 32]) == {3: "nan", 10: "inf", 32: "-0"}


def test_a_year_outside_four_digits_is_read_as_text(tmp_path, monkeypatch):
    out = tmp_path / "b"
    write_synthetic_bundle(out, 5, seed=1)
    e = pq.read_table(out / "events.parquet")
    pq.write_table(_set(e, "event_date", {0: dt.date(1, 1, 1)}), out / "events.parquet")
    bundle, _ = readers.open_bundle(out)
    assert bundle is not None
    assert "event_date" not in bundle.sources["events"].native  # year 1: the statistics say so
    native = _problems(out, monkeypatch, text=False, slice_rows=250_000)
    assert native == _problems(out, monkeypatch, text=True, slice_rows=250_000)
    first = next(p for p in native if p.table == "events")
    assert (first.row, first.column, first.value, first.code) == (1, "event_date", "0001-01-01", "date.order")
