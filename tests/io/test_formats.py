"""The same cohort from CSV, Parquet and XLSX bundles, and on other Ibis connections."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.io.cohort import embedded_study_path
from amlcohort.io.writers import write_bundle
from amlcohort.schema import TABLES


def frame(cohort, name: str) -> pd.DataFrame:
    model = next(t for t in TABLES if t.name == name)
    t = cohort.table(name)
    df = t.execute()
    return df.sort_values(list(model.key)).reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_written_bundle_loads_back_identical(fmt, study, tmp_path):
    write_bundle(study, tmp_path / fmt, fmt)  # type: ignore[arg-type]
    again = load_cohort(tmp_path / fmt)
    for t in TABLES:
        pd.testing.assert_frame_equal(frame(again, t.name), frame(study, t.name), check_dtype=False)


@pytest.mark.parametrize("backend", ["sqlite", "polars"])
def test_injected_connection_holds_the_same_tables(backend):
    con = getattr(ibis, backend).connect()
    cohort = load_cohort(con=con)
    assert cohort.con is con
    a = cohort.table("assessments")
    csv_rows = len((embedded_study_path() / "assessments.csv").read_text().splitlines()) - 1
    assert a.count().execute() == csv_rows
    p04 = a.filter((a.patient_id == "P04") & (a.marrow_blasts_pct == 3.0))
    # 2018-04-19 is 45 days after the first dose (2018-03-05): study day 46.
    assert p04.assessment_study_day.execute().tolist() == [46]
    baseline = a.filter((a.patient_id == "P04") & (a.marrow_blasts_pct == 38.0))
    assert baseline.assessment_study_day.execute().tolist() == [-2]  # no day 0


def test_study_day_has_no_day_zero(study):
    ev = study.table("events")
    days = ev.event_study_day.execute()
    assert (days != 0).all()
    ex = study.table("exposures")
    first = ex.filter(ex.drug == "sorafenib").group_by("patient_id").aggregate(d=ex.start_study_day.min())
    assert set(first.d.execute()) == {1}
