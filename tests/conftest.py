"""Shared fixtures: the embedded study cohort (loaded once) and writable copies of its bundle."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from amlcohort import Cohort, load_cohort
from amlcohort.io.cohort import embedded_study_path

# The report's forked helpers (report/parallel.py) are off in the tests, which run on every core
# already and mostly call assemble() without writing its figures; tests/report/test_parallel.py
# turns them on where it checks them.
os.environ.setdefault("AMLCOHORT_PARALLEL", "0")


@pytest.fixture(scope="session")
def study() -> Cohort:
    return load_cohort()


@pytest.fixture()
def bundle_copy(tmp_path: Path) -> Path:
    """A writable copy of the embedded study bundle (tables, metadata, study.yaml and its files)."""
    dest = tmp_path / "bundle"
    shutil.copytree(
        embedded_study_path(),
        dest,
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__"),
    )
    return dest


def rows(expr) -> list[dict]:
    """An Ibis expression's result as a list of dicts (small results only)."""
    return expr.to_pyarrow().to_pylist()


@pytest.fixture()
def office_clock(monkeypatch):
    """``set(moment)``: from then on openpyxl stamps ``moment`` into the workbooks it writes (the
    document's created and modified times, every zip part's date), as if the run happened then."""
    import datetime as dt
    import time
    import types
    import zipfile

    from openpyxl.packaging import core

    def set_clock(moment: dt.datetime) -> None:
        class Clock(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return moment.replace(tzinfo=tz)

            @classmethod
            def utcnow(cls):
                return moment

        monkeypatch.setattr(core, "datetime", types.SimpleNamespace(datetime=Clock, timezone=dt.timezone))
        monkeypatch.setattr(zipfile, "time", types.SimpleNamespace(
            time=moment.timestamp, localtime=time.localtime, struct_time=time.struct_time))

    return set_clock
