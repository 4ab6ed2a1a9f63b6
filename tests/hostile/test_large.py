"""A 2,000,000-row assessments table validates in bounded time and memory (issue 9 item 2).

Slow (about a minute on two free cores): runs only with ``AMLCOHORT_SLOW=1``. The bundle is
20,000 synthetic patients x 100 assessments, written as CSV or Parquet; the check runs in a
child process so its peak memory (max RSS) can be measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from amlcohort.io.cohort import embedded_study_path

PATIENTS, PER_PATIENT = 20_000, 100
SECONDS, GIB = 180, 2.0

pytestmark = pytest.mark.skipif(os.environ.get("AMLCOHORT_SLOW") != "1", reason="slow: AMLCOHORT_SLOW=1")


def _csv(path: Path) -> pa.Table:
    names = pacsv.read_csv(path).column_names
    opts = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    return pacsv.read_csv(path, convert_options=opts)


def make_large_bundle(dest: Path, fmt: str) -> Path:
    src = embedded_study_path()
    dest.mkdir(parents=True)
    shutil.copy(src / "metadata.yaml", dest / "metadata.yaml")
    ids = pa.array([f"S{i:06d}" for i in range(PATIENTS)])
    p01 = _csv(src / "patients.csv").slice(0, 1)
    patients = pa.table({c: pa.repeat(p01.column(c)[0], PATIENTS) for c in p01.column_names})
    patients = patients.set_column(0, "patient_id", ids)
    ex = _csv(src / "exposures.csv")
    ex = ex.filter(pc.equal(ex.column("patient_id"), "P01")).slice(0, 1)
    exposures = pa.table({c: pa.repeat(ex.column(c)[0], PATIENTS) for c in ex.column_names})
    exposures = exposures.set_column(0, "patient_id", ids)
    a = _csv(src / "assessments.csv").slice(1, 1)  # a full laboratory row of P01
    n = PATIENTS * PER_PATIENT
    start = dt.date.fromisoformat(a.column("assessment_date")[0].as_py())
    days = [(start + dt.timedelta(days=k)).isoformat() for k in range(PER_PATIENT)]
    assessments = pa.table({c: pa.repeat(a.column(c)[0], n) for c in a.column_names})
    assessments = assessments.set_column(
        0, "patient_id", pc.take(ids, pa.array([i // PER_PATIENT for i in range(n)]))
    )
    assessments = assessments.set_column(1, "assessment_date", pa.array(days * PATIENTS))
    empty = {"events", "adverse_events"}
    tables = {"patients": patients, "exposures": exposures, "assessments": assessments}
    for t in empty:
        tables[t] = _csv(src / f"{t}.csv").slice(0, 0)
    for name, t in tables.items():
        if fmt == "csv":
            pacsv.write_csv(t, dest / f"{name}.csv")
        else:
            pq.write_table(t, dest / f"{name}.parquet")
    return dest


CHILD = """
import json, resource, sys, time
from amlcohort import validate_bundle
t = time.perf_counter()
report, cohort = validate_bundle(sys.argv[1])
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
print(json.dumps({"seconds": seconds, "gib": rss, "errors": [str(p) for p in report.errors][:5],
                  "rows": None if cohort is None else int(cohort.tables["assessments"].count().execute())}))
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_two_million_assessments_validate_in_bounded_time_and_memory(fmt, tmp_path):
    bundle = make_large_bundle(tmp_path / fmt, fmt)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(fmt, result)
    assert result["rows"] == PATIENTS * PER_PATIENT, result["errors"]
    assert result["seconds"] < SECONDS
    assert result["gib"] < GIB
