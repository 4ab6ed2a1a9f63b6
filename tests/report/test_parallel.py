"""The report's compile-once and background work: same bytes, same rows, whether or not a child ran."""

from __future__ import annotations

import datetime as dt
import os

import ibis
import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.criteria.response import OUTCOME_COLUMNS
from amlcohort.endpoints.key_dates import key_dates
from amlcohort.report import parallel
from amlcohort.report.figures import bar_by_grade, not_estimable_figure, render_figure
from amlcohort.report.results import materialise

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(scope="module")
def cohort():
    return load_cohort()


def _figures() -> dict:
    ae = pd.DataFrame({"term": ["Rash", "Rash", "Fatigue"], "grade": [1, 3, 2], "n_patients": [2, 1, 4]})
    return {
        "a": bar_by_grade(ae, title="AEs", n_total=13),
        "b": not_estimable_figure("Nothing", "no patients"),
        "c": bar_by_grade(ae.iloc[:2], title="Rash only", n_total=13),
        "d": not_estimable_figure("Nothing either", "no marrow"),
    }


def test_svgs_from_the_child_are_the_bytes_rendered_here(monkeypatch):
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    figures = _figures()
    pending = parallel.render_in_background(figures)
    assert pending.child == frozenset({"a", "b", "c"})  # ceil(4 * 2/3): the parent renders "d"
    got = pending.collect(figures)
    assert list(got) == ["a", "b", "c", "d"]
    for name, f in figures.items():
        assert got[name] == render_figure(f, "svg"), name
        assert got[name].startswith(b"<?xml")


def test_svgs_without_a_child_and_for_a_figure_replaced_since(monkeypatch):
    monkeypatch.setenv("AMLCOHORT_PARALLEL", "0")
    assert not parallel.parallel_allowed()
    figures = _figures()
    pending = parallel.render_in_background(figures)
    assert pending.child == frozenset()
    assert pending.collect(figures)["a"] == render_figure(figures["a"], "svg")
    monkeypatch.delenv("AMLCOHORT_PARALLEL")
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    pending = parallel.render_in_background(figures)
    other = dict(figures, a=not_estimable_figure("Replaced", "after the fork"))
    got = pending.collect(other)
    assert got["a"] == render_figure(other["a"], "svg") != render_figure(figures["a"], "svg")
    assert got["b"] == render_figure(figures["b"], "svg")


def _duck() -> ibis.BaseBackend:
    con = ibis.duckdb.connect()
    con.create_table("t", pd.DataFrame({"g": ["x", "x", "y", "z"], "v": [1.0, 2.5, None, -4.0]}))
    return con


def test_sql_compiled_in_the_child_gives_the_rows_of_the_expression(monkeypatch):
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    con = _duck()
    t = con.table("t")

    def build() -> ibis.Table:
        return t.group_by("g").aggregate(n=t.count(), s=t.v.sum()).order_by("g")

    pending = parallel.compile_in_background(con, {"sums": build})
    assert pending._pid is not None  # a child was forked
    got = pending.table("sums").order_by("g").execute()
    assert got.g.tolist() == ["x", "y", "z"] and got.n.tolist() == [2, 1, 1]
    assert got.s[0] == 3.5 and pd.isna(got.s[1]) and got.s[2] == -4.0
    assert pending._sql is not None and "sums" in pending._sql  # the child's SQL was used
    assert pending.table("sums") is pending.table("sums")  # materialised once


def test_a_builder_that_queries_is_built_again_here(monkeypatch):
    """In the child the connection is cut off: a builder running a query fails there (never touching
    the parent's database) and the parent builds it itself, with the same rows."""
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    con = _duck()
    t = con.table("t")

    def build() -> ibis.Table:
        n = int(t.count().execute())  # a query while building
        return t.filter(t.v.notnull()).mutate(n=ibis.literal(n))

    pending = parallel.compile_in_background(con, {"q": build})
    got = pending.table("q").execute()
    assert "q" not in pending._sql
    assert sorted(got.v.tolist()) == [-4.0, 1.0, 2.5] and set(got.n) == {4}


def test_a_failing_builder_raises_here_as_without_the_child(monkeypatch):
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    con = _duck()
    t = con.table("t")
    pending = parallel.compile_in_background(con, {"bad": lambda: t.select(t.no_such_column)})
    with pytest.raises(AttributeError, match="no_such_column"):
        pending.table("bad")


def test_no_child_on_other_engines():
    con = ibis.sqlite.connect()
    pending = parallel.compile_in_background(con, {"one": lambda: ibis.memtable({"a": [1]})})
    assert pending._pid is None


def test_key_dates_materialised_once_equal_the_derived_ones(cohort):
    """The report's cohort derives the responses and key dates once; they are the plain derivation's."""
    mc = materialise(cohort)
    cached = mc.cached_key_dates(cohort.study.criteria)
    assert key_dates(mc) is cached  # every reader (endpoints, protocol phases) gets the same table
    assert mc.cached_responses(cohort.study.criteria) is mc.cached_responses(cohort.study.criteria)
    # materialised without the rule inputs (the readers need the outcomes only)
    assert tuple(mc.cached_responses(cohort.study.criteria).columns) == OUTCOME_COLUMNS
    plain = key_dates(cohort).execute().sort_values("patient_id").reset_index(drop=True)
    mine = cached.execute().sort_values("patient_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, plain)
    assert len(mine) == 13
    # the embedded study's 5 patients in CR (results.json cr.n, the paper's 5 of 13)
    assert mine.first_cr_date.notna().sum() == 5
    assert key_dates(mc, as_of=dt.date(2019, 1, 1)) is not cached  # a view on a date is derived anew


def test_a_stuck_child_is_stopped_and_its_work_done_here():
    """A child that never finishes (here: sleeps) is killed after the timeout; the result is {}
    (the caller then does the work in-process), and the wait does not outlast the timeout much."""
    import time as _time

    pid, path = parallel._fork_job(lambda: (_time.sleep(60), {"x": 1})[1])
    started = _time.monotonic()
    assert parallel._job_result(pid, path, timeout=0.5) == {}
    assert _time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_a_finished_child_delivers_its_result():
    pid, path = parallel._fork_job(lambda: {"x": 1})
    assert parallel._job_result(pid, path, timeout=60) == {"x": 1}


def _spilled_connection(monkeypatch):
    """A staging DuckDB whose tables no longer fit its memory: part of them is in its temporary
    (spill) files."""
    from amlcohort.io.cohort import staging_connection

    monkeypatch.setenv("AMLCOHORT_DUCKDB_MEMORY", "40MB")
    con = staging_connection()
    con.con.execute("SET preserve_insertion_order = false")
    con.raw_sql("CREATE TEMPORARY TABLE big AS SELECT range AS i, random() AS x, "
                "md5(range::VARCHAR) AS s FROM range(1500000)")
    spill = con.con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    return con, spill


def test_a_child_leaves_the_parents_spilled_tables_readable(monkeypatch):
    """Regression: the child used to drop its copy of the DuckDB connection, and DuckDB's
    destructor (in the child) removed the temporary files the parent's tables had spilled to; a
    report of 10^5 patients then failed with "IO Error: Could not read enough bytes from file
    .../duckdb_temp_storage...". The child must leave the database alone, its files included."""
    monkeypatch.setattr(parallel, "parallel_allowed", lambda: True)
    con, spill = _spilled_connection(monkeypatch)
    before = sorted(os.listdir(spill))
    assert before, "the table should have spilled (nothing in the temporary folder)"
    expected = con.con.execute("SELECT count(*), sum(i), count(DISTINCT s) FROM big").fetchone()
    t = con.table("big")
    pending = parallel.compile_in_background(con, {"n": lambda: t.aggregate(n=t.count())})
    assert pending._pid is not None
    assert pending.table("n").execute().n[0] == 1_500_000  # the child's SQL, run here
    assert os.listdir(spill)  # DuckDB's own files (it adds and drops some itself), still there
    assert con.con.execute("SELECT count(*), sum(i), count(DISTINCT s) FROM big").fetchone() == expected


def test_the_spill_folder_is_removed_by_its_own_process_only(monkeypatch):
    """The staging connection's spill folder is removed when the connection goes, but only by
    the process that made it (a forked child that drops its copy leaves it)."""
    con, spill = _spilled_connection(monkeypatch)
    pid = os.fork()
    if pid == 0:  # the child drops its copy of the connection, then leaves
        code = 0
        try:
            del con
            import gc

            gc.collect()
        except BaseException:
            code = 1
        os._exit(code)
    os.waitpid(pid, 0)
    assert os.path.isdir(spill)
    assert con.con.execute("SELECT count(*) FROM big").fetchone() == (1_500_000,)
    del con
    import gc

    gc.collect()
    assert not os.path.exists(spill)
