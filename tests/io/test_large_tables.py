"""How large tables are loaded (issue 9 item 2), on the small embedded bundle: tables typed in slices
give the same cohort and the same problems as one pass, and the staging DuckDB is memory-capped and
spills only to a private temporary folder. The 2,000,000-row case is tests/hostile/test_large.py."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import pytest
from tests.hostile.bundles import copy_bundle, set_cell

from amlcohort import validate_bundle
from amlcohort.io import cohort as cohort_module
from amlcohort.io.cohort import staging_connection


def _rows(cohort, name: str) -> list[dict]:
    t = cohort.tables[name].to_pyarrow().to_pylist()
    return sorted(t, key=lambda r: tuple(str(v) for v in r.values()))


def test_a_table_typed_in_slices_is_the_table_typed_at_once(monkeypatch):
    _, whole = validate_bundle()
    monkeypatch.setattr(cohort_module, "SLICE_ROWS", 10)  # assessments (144 rows): 15 slices
    _, sliced = validate_bundle()
    for name in ("assessments", "patients", "exposures", "adverse_events"):
        assert _rows(sliced, name) == _rows(whole, name)
    assert len(_rows(sliced, "assessments")) == 144


@pytest.mark.parametrize("slice_rows", [250_000, 7])
def test_problems_in_later_slices_name_their_rows(monkeypatch, tmp_path, slice_rows):
    monkeypatch.setattr(cohort_module, "SLICE_ROWS", slice_rows)
    bundle = copy_bundle(tmp_path / "b")
    set_cell(bundle, "assessments", 100, "platelets", "-1")
    set_cell(bundle, "assessments", 144, "anc", "1,5")
    report, cohort = validate_bundle(bundle)
    assert cohort is None
    found = {(p.code, p.row, p.column, p.value) for p in report.errors}
    assert found == {("value.range", 100, "platelets", "-1"), ("value.type", 144, "anc", "1,5")}


def test_staging_duckdb_is_capped_and_spills_to_a_private_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    con = staging_connection()
    limit, spill = con.con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    assert limit == "953.6 MiB"  # 1 GB
    folder = Path(spill)
    assert folder.is_dir() and folder.is_relative_to(tempfile.gettempdir())
    assert not folder.is_relative_to(tmp_path)  # never the working directory
    del con
    gc.collect()
    assert not folder.exists()


def test_the_staging_memory_cap_can_be_raised(monkeypatch):
    monkeypatch.setenv("AMLCOHORT_DUCKDB_MEMORY", "4GB")
    con = staging_connection()
    assert con.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "3.7 GiB"
