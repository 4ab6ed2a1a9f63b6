"""How large tables are loaded (issue 9 item 2), on the small embedded bundle: tables typed in slices
give the same cohort and the same problems as one pass, and the staging DuckDB is memory-capped and
spills only to a private temporary folder. The 2,000,000-row case is tests/hostile/test_large.py."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest
from tests.hostile.bundles import copy_bundle, set_cell

from amlcohort import validate_bundle
from amlcohort.io import cohort as cohort_module
from amlcohort.io.cohort import duckdb_memory_limit, machine_memory, staging_connection


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
    monkeypatch.delenv("AMLCOHORT_DUCKDB_MEMORY", raising=False)  # the default, not a caller's
    con = staging_connection()
    limit, spill = con.con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    # half of what the machine (or its control group) gives the process, at least 1 GiB
    share = max(cohort_module.machine_memory() // 2, 2**30) // 2**20
    assert limit == duckdb_limit_text(f"{share}MiB")
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


def duckdb_limit_text(limit: str) -> str:
    """How DuckDB shows the memory limit ``limit`` once it is set."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET memory_limit = ?", [limit])
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


GIB = 2**30


@pytest.mark.parametrize(
    ("machine", "limit"),
    [
        (16 * GIB, "8192MiB"),
        (4 * GIB, "2048MiB"),
        (2 * GIB + 2**20, "1024MiB"),  # half is 1024.5 MiB: whole MiB, rounded down
        (2 * GIB, "1024MiB"),  # half is the floor itself
        (2 * GIB - 2**20, "1024MiB"),  # half is under the floor: the floor
        (512 * 2**20, "1024MiB"),
        (None, "1024MiB"),  # unknown: the floor
    ],
)
def test_the_staging_memory_is_half_the_machines_at_least_1_gib(monkeypatch, machine, limit):
    monkeypatch.delenv("AMLCOHORT_DUCKDB_MEMORY", raising=False)
    monkeypatch.setattr(cohort_module, "machine_memory", lambda: machine)
    assert duckdb_memory_limit() == limit


def test_a_control_group_limit_lower_than_the_machine_is_the_one_that_counts(monkeypatch, tmp_path):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    monkeypatch.setattr(cohort_module, "CGROUP_MEMORY_FILES", (str(v2), str(v1)))
    assert machine_memory() == physical  # no control-group file
    v2.write_text("max\n")  # cgroup v2 without a limit
    v1.write_text("9223372036854771712\n")  # cgroup v1 without a limit: a huge number
    assert machine_memory() == physical
    v1.write_text(f"{3 * GIB}\n")
    assert machine_memory() == min(physical, 3 * GIB)
    v2.write_text(f"{2 * GIB}\n")
    assert machine_memory() == min(physical, 2 * GIB)


def test_an_asked_memory_limit_is_used_as_given(monkeypatch):
    monkeypatch.setattr(cohort_module, "machine_memory", lambda: 64 * GIB)
    monkeypatch.setenv("AMLCOHORT_DUCKDB_MEMORY", "300MB")
    assert duckdb_memory_limit() == "300MB"
    monkeypatch.setenv("AMLCOHORT_DUCKDB_MEMORY", "  ")  # blank: as if unset
    assert duckdb_memory_limit() == "32768MiB"
