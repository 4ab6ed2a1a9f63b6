"""A per-patient derivation run per block of patients gives the rows of the one query
(``amlcohort.engines.blocks``)."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.criteria import response as resp
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.engines import blocks
from amlcohort.report.results import materialise
from amlcohort.synth import write_synthetic_bundle

PATIENTS = 300


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocks") / "b"
    write_synthetic_bundle(folder, PATIENTS, seed=21)
    return folder


def _sorted(t: ibis.Table) -> pd.DataFrame:
    return t.to_pandas().sort_values(["patient_id", "assessment_date"]).reset_index(drop=True)


@pytest.mark.parametrize("criteria", ["study", "eln2017", "eln2022"])
def test_responses_per_block_equal_the_one_query(bundle, criteria, monkeypatch):
    cohort = load_cohort(bundle)
    one = _sorted(resp.derive(cohort, criteria))
    n = len(one) + PATIENTS * 2  # a few rows more than the responses: the pre-treatment ones
    made: list[str] = []
    real = blocks.patient_blocks

    def spy(patients, n_blocks):
        out = real(patients, n_blocks)
        made.extend(map(str, out))
        return out

    monkeypatch.setattr(blocks, "patient_blocks", spy)
    per_block = blocks.materialise_by_patient(cohort, lambda c: resp.derive(c, criteria), block_rows=n // 7)
    assert len(made) in (7, 8)  # ceil(rows / block_rows) blocks
    pd.testing.assert_frame_equal(_sorted(per_block), one)


def test_patient_blocks_cover_every_patient_once(bundle):
    cohort = load_cohort(bundle)
    patients = cohort.table("patients")
    ids = sorted(patients.patient_id.execute())
    for n_blocks in (1, 2, 7, PATIENTS, PATIENTS + 50):
        bounds = blocks.patient_blocks(patients, n_blocks)
        assert bounds[0][0] is None and bounds[-1][1] is None
        assert len(bounds) <= max(n_blocks, 1)
        seen = []
        for lo, hi in bounds:
            inside = [p for p in ids if (lo is None or p >= lo) and (hi is None or p < hi)]
            assert inside, (lo, hi)  # no empty block
            seen += inside
        assert seen == ids  # each patient in exactly one block, in order
        if 1 < n_blocks <= PATIENTS:
            sizes = [sum((lo is None or p >= lo) and (hi is None or p < hi) for p in ids)
                     for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= -(-PATIENTS // n_blocks)


def test_analysis_table_of_a_cohort_derived_per_block(bundle, monkeypatch):
    """The cohort's responses (``Cohort.cached_responses``) per block: the same analysis table."""
    expected = analysis_table(load_cohort(bundle)).to_pandas()
    monkeypatch.setattr(blocks, "block_rows_for", lambda con: 2_000)
    cohort = load_cohort(bundle)
    got = analysis_table(cohort).to_pandas()
    assert cohort.cached_responses(cohort.study.criteria).op().name.startswith("amlcohort_blocks_")
    key = ["patient_id", "paramcd"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True))
    # the report's cohort too
    mc = materialise(load_cohort(bundle))
    got = analysis_table(mc).to_pandas()
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True))


class _Tiny:
    """A cohort-like object over one table, with patient ids that need quoting in SQL."""

    def __init__(self, con, t):
        self.con, self._t = con, t

    def table(self, name):
        return self._t

    def first_dose(self):
        return self._t.group_by("patient_id").aggregate(first_dose=self._t.d.min())

    def has(self, name):
        return True


def test_bounds_with_quotes_and_the_sql_compiled_once(monkeypatch):
    con = ibis.duckdb.connect()
    ids = [f"O'Neil-{i:02d}" for i in range(12)] + ["back\\slash", "z'"]
    rows = pd.DataFrame({"patient_id": [p for p in ids for _ in range(3)], "v": range(3 * len(ids))})
    rows["d"] = pd.Timestamp("2020-01-01")
    con.create_table("assessments", rows)
    con.create_table("patients", rows[["patient_id"]].drop_duplicates())
    tiny = _Tiny(con, con.table("assessments"))
    tiny.table = lambda name: con.table(name)
    compiles = []
    real = con.compile

    def counting(expr, *a, **k):
        sql = real(expr, *a, **k)
        if 'AS "n"' in str(sql):  # the derivation's (not the block bounds' or the final read's)
            compiles.append(str(sql))
        return sql

    monkeypatch.setattr(con, "compile", counting)

    def build(c):
        t = c.table("assessments")
        return t.group_by("patient_id").aggregate(n=t.count(), s=t.v.sum())

    got = blocks.materialise_by_patient(tiny, build, rows=len(rows), block_rows=6).to_pandas()
    assert len(compiles) == 3  # first, middle and last block shapes, whatever the number of blocks
    got = got.sort_values("patient_id").reset_index(drop=True)
    assert got.patient_id.tolist() == sorted(ids)
    assert got.n.tolist() == [3] * len(ids)
    assert got.s.sum() == sum(range(3 * len(ids)))


def test_memory_limit_and_block_size():
    con = ibis.duckdb.connect()
    con.raw_sql("SET memory_limit = '3GB'")
    assert 2.7 * 2**30 * 0.99 < blocks.memory_limit_bytes(con) <= 3e9
    assert blocks.block_rows_for(con) == blocks.memory_limit_bytes(con) // blocks.BYTES_PER_ROW
    con.raw_sql("SET memory_limit = '10MB'")
    assert blocks.block_rows_for(con) == 100_000  # the floor
    assert blocks.memory_limit_bytes(ibis.sqlite.connect()) is None
    assert blocks.block_rows_for(ibis.sqlite.connect()) == blocks.BLOCK_ROWS


def test_other_engines_derive_in_one_query(bundle):
    """SQLite (and PostgreSQL, Spark) plan and spill on their own: one query, no block tables."""
    duck = load_cohort(bundle)
    lite = load_cohort(bundle, con=ibis.sqlite.connect())
    got = blocks.materialise_by_patient(lite, lambda c: resp.derive(c, "study"), block_rows=10)
    assert not got.op().name.startswith("amlcohort_blocks_")
    def plain(df: pd.DataFrame) -> pd.DataFrame:  # SQLite's missing text is None, DuckDB's NaN
        return df.astype(object).where(df.notna(), None)

    pd.testing.assert_frame_equal(plain(_sorted(got)), plain(_sorted(resp.derive(duck, "study"))))
