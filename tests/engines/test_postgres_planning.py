"""What PostgreSQL's planner needs to plan the derivations well (a real server; skipped without one).

Two defects made the 10^4-patient registry's report take 168 s on PostgreSQL against 14 s on
DuckDB (engines/statistics.py, criteria/engine.py ``evaluated_once``):

* the tables the loader and ``.cache()`` write had no planner statistics (autovacuum never analyses
  a temporary table), so the planner guessed a join's rows and chose nested loops;
* PostgreSQL pulls a subquery up into the query above it and re-evaluates its column expressions
  wherever they are read: a rule set's CASE, read by every branch of the CASEs over it.
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.criteria import engine as rule_engine
from amlcohort.criteria.population import derive_population
from amlcohort.criteria.risk import derive_risk
from amlcohort.engines import connect
from amlcohort.engines.statistics import keep_statistics
from amlcohort.report.results import materialise

from .conftest import new_connection


def _analysed(con, name: str) -> bool:
    """Whether table ``name`` (of this session's search path, temporary ones first) has statistics:
    ``reltuples`` is -1 until the table is first analysed (PostgreSQL 14 and later)."""
    cursor = con.raw_sql(f"SELECT reltuples FROM pg_class WHERE oid = '\"{name}\"'::regclass")
    try:
        return cursor.fetchone()[0] >= 0
    finally:
        cursor.close()


def _name(table: ibis.Table) -> str:
    return table.op().name


def test_loaded_and_cached_tables_are_analysed(request):
    con = new_connection("postgres", request)
    cohort = load_cohort(con=con, temporary=True)
    assert _analysed(con, "patients") and _analysed(con, "assessments")
    # a derivation's intermediate, written by .cache(), is analysed as it is written
    cached = cohort.table("mutations").filter(lambda t: t.gene == "FLT3-ITD").cache()
    assert _analysed(con, _name(cached))
    # a table created empty (no data to analyse) is left alone, and the wrapper is installed once
    empty = con.create_table("nothing_yet", schema=ibis.schema({"x": "int64"}), temp=True)
    assert not _analysed(con, _name(empty))
    assert keep_statistics(con) is con and keep_statistics(con).create_table is con.create_table


def test_statistics_left_alone_on_other_engines():
    con = connect("duckdb")
    create = con.create_table
    assert keep_statistics(con) is con and con.create_table == create


def _risk_and_population(cohort) -> dict[str, pd.DataFrame]:
    mc = materialise(cohort)
    risk = derive_risk(mc.table("patients"), mc.table("mutations"), karyotypes=mc.karyotype_lookup())
    return {
        "risk": risk.to_pandas().sort_values("patient_id").reset_index(drop=True),
        "population": derive_population(mc).to_pandas().sort_values("patient_id").reset_index(drop=True),
    }


def test_fenced_rules_give_the_same_rows(request, monkeypatch):
    """The fence changes how often PostgreSQL evaluates a rule set, never what it gives: the ELN
    risk and the study population with it equal those without it (and DuckDB's)."""
    cohort = load_cohort(con=new_connection("postgres", request), temporary=True)
    probe = cohort.table("patients")
    assert "LIMIT 4611686018427387904" in ibis.to_sql(rule_engine.evaluated_once(probe))
    fenced = _risk_and_population(cohort)
    reference = _risk_and_population(load_cohort())
    monkeypatch.setattr(rule_engine, "evaluated_once", lambda t: t)
    unfenced = _risk_and_population(load_cohort(con=new_connection("postgres", request), temporary=True))
    for name in fenced:
        pd.testing.assert_frame_equal(fenced[name], unfenced[name], check_dtype=False)
        pd.testing.assert_frame_equal(fenced[name], reference[name], check_dtype=False)
    assert fenced["risk"].eln2017.notna().all() and len(fenced["risk"]) == 13
    assert (fenced["population"].membership == "in_population").sum() == 13


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_no_fence_elsewhere(engine):
    table = load_cohort(con=connect(engine)).table("patients")
    assert "LIMIT" not in ibis.to_sql(rule_engine.evaluated_once(table))
