"""event_counts: the same Ibis aggregation on several backends feeds Kaplan–Meier and log-rank."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from amlcohort.stats import counts_from_arrays, event_counts, kaplan_meier, logrank_test, validate_counts


@pytest.fixture
def aml_frame(r_data) -> pd.DataFrame:
    return r_data("aml")


def _duckdb_table(df: pd.DataFrame) -> ibis.Table:
    """A table inside a DuckDB database (created with ibis; passing the DataFrame itself to
    create_table fails with ibis 12 + duckdb 2.0, a memtable works)."""
    con = ibis.duckdb.connect()
    return con.create_table("aml", ibis.memtable(df))


def _sqlite_table(df: pd.DataFrame, path: Path | None = None) -> ibis.Table:
    """A table in a SQLite database file written by the standard library, read through ibis."""
    if path is None:
        con = ibis.sqlite.connect()
        return con.create_table("aml", ibis.memtable(df))
    with sqlite3.connect(path) as raw:
        df.to_sql("aml", raw, index=False)
    return ibis.sqlite.connect(path).table("aml")


def _polars_table(df: pd.DataFrame) -> ibis.Table:
    con = ibis.polars.connect()
    return con.create_table("aml", df)


def test_same_ibis_code_on_duckdb_sqlite_and_polars(aml_frame, r_expected, assert_r, tmp_path):
    tables = {
        "duckdb": _duckdb_table(aml_frame),
        "sqlite": _sqlite_table(aml_frame, tmp_path / "aml.sqlite"),
        "polars": _polars_table(aml_frame),
    }
    for name, table in tables.items():
        assert table.get_backend().name == name
    counts = {name: event_counts(t, "time", "status") for name, t in tables.items()}
    curves = {name: kaplan_meier.from_counts(c, conf_type="log") for name, c in counts.items()}
    reference = curves["duckdb"].table
    for name in ("sqlite", "polars"):
        pd.testing.assert_frame_equal(counts[name], counts["duckdb"], check_dtype=True, obj=name)
        pd.testing.assert_frame_equal(curves[name].table, reference, obj=name)
    # and the curve is R's
    ref = r_expected["km_aml_log"]
    assert_r(reference["survival"].to_numpy(), ref["curve"]["surv"])
    assert_r(reference["lower"].to_numpy(), ref["curve"]["lower"])
    assert curves["sqlite"].median_ == ref["table"]["median"] == 27


def test_grouped_counts_on_duckdb_and_sqlite_give_r_logrank(aml_frame, r_expected, assert_r):
    ref = r_expected["survdiff"][0]
    assert ref["call"] == "survdiff(Surv(time, status) ~ x, data=aml, rho=0)"
    for table in (_duckdb_table(aml_frame), _sqlite_table(aml_frame)):
        counts = event_counts(table, "time", "status", group="x")
        assert list(counts.columns) == ["group", "time", "n_event", "n_censor"]
        result = logrank_test.from_counts(counts)
        assert_r(result.statistic, ref["chisq"])
        assert_r(result.p_value, ref["p"])
        assert_r(result.expected.to_numpy(), ref["exp"])


def test_stratified_counts_from_engine(r_data, r_expected, assert_r):
    ref = r_expected["survdiff"][8]
    assert ref["call"] == "survdiff(Surv(time, status) ~ trt + strata(celltype), data=veteran)"
    table = _duckdb_table(r_data("veteran"))
    counts = event_counts(table, "time", "status", group="trt", strata="celltype")
    assert list(counts.columns) == ["strata", "group", "time", "n_event", "n_censor"]
    assert counts["n_event"].sum() + counts["n_censor"].sum() == 137
    assert_r(logrank_test.from_counts(counts).statistic, ref["chisq"])


def test_boolean_event_column(aml_frame):
    df = aml_frame.assign(died=aml_frame["status"] == 1)
    counts = event_counts(_duckdb_table(df), "time", "died")
    pd.testing.assert_frame_equal(counts, event_counts(_duckdb_table(aml_frame), "time", "status"))


def test_counts_content_and_order():
    counts = counts_from_arrays([5, 5, 5, 8, 2], [1, 0, 1, 0, 1], group=["b", "b", "a", "a", "b"])
    expected = pd.DataFrame(
        {
            "group": ["a", "a", "b", "b"],
            "time": [5.0, 8.0, 2.0, 5.0],
            "n_event": [1, 0, 1, 1],
            "n_censor": [0, 1, 0, 1],
        }
    )
    pd.testing.assert_frame_equal(counts, expected)


def test_engine_side_errors_name_the_column(aml_frame):
    table = _duckdb_table(aml_frame.assign(code=aml_frame["status"] * 2))
    with pytest.raises(ValueError, match="event column 'code' must be boolean or coded 0/1"):
        event_counts(table, "time", "code")
    with pytest.raises(ValueError, match="time column 'nope' is not in the table"):
        event_counts(table, "nope", "status")
    missing = _duckdb_table(aml_frame.assign(time=aml_frame["time"].where(aml_frame.index > 0)))
    with pytest.raises(ValueError, match="time column 'time' contains missing"):
        event_counts(missing, "time", "status")


def test_validate_counts_rejects_bad_frames():
    with pytest.raises(ValueError, match="missing the columns"):
        validate_counts(pd.DataFrame({"time": [1.0], "n_event": [1]}))
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        validate_counts(pd.DataFrame({"time": [1.0], "n_event": [-1], "n_censor": [0]}))
    with pytest.raises(ValueError, match="empty"):
        validate_counts(pd.DataFrame({"time": [], "n_event": [], "n_censor": []}))


def test_large_input_goes_through_the_engine():
    rng = np.random.default_rng(1)
    n = 200_000
    time = rng.integers(1, 1000, size=n)
    event = rng.integers(0, 2, size=n)
    counts = counts_from_arrays(time, event)
    assert len(counts) == 999
    assert counts["n_event"].sum() == event.sum()
    km = kaplan_meier.from_counts(counts)
    assert km.n == n
