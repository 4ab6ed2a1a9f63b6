"""One function for each patient's key dates (endpoints/key_dates.py), as the endpoints and the
protocol read them; checked against the analysis table and the raw events of the embedded cohort."""

from __future__ import annotations

import datetime as dt

from amlcohort.endpoints.analysis import analysis_table
from amlcohort.endpoints.key_dates import KEY_DATE_COLUMNS, key_dates
from amlcohort.protocol.timeline import periods
from tests.conftest import rows


def _by_patient(t) -> dict[str, dict]:
    return {r["patient_id"]: r for r in rows(t)}


def test_columns_and_one_row_per_treated_patient(study) -> None:
    kd = key_dates(study)
    assert tuple(kd.columns) == KEY_DATE_COLUMNS
    got = _by_patient(kd)
    assert len(got) == 13
    assert got["P02"]["death_date"] == dt.date(2018, 3, 12)
    assert got["P01"]["death_date"] is None and got["P07"]["death_date"] is None
    assert {r["bound"] for r in got.values()} == {dt.date(2019, 9, 30)}


def test_same_dates_as_the_analysis_table(study) -> None:
    kd = _by_patient(key_dates(study))
    adtte = rows(analysis_table(study))
    os_ = {r["patient_id"]: r for r in adtte if r["paramcd"] == "OS"}
    crdur = {r["patient_id"]: r for r in adtte if r["paramcd"] == "CRDUR"}
    for pid, k in kd.items():
        assert os_[pid]["startdt"] == k["first_dose"]
        assert os_[pid]["adt"] == (k["death_date"] or k["last_alive"]), pid
        if k["first_cr_date"] is not None:
            assert crdur[pid]["startdt"] == k["first_cr_date"]
            end = k["relapse_date"] or k["death_date"] or k["last_alive"]
            assert crdur[pid]["adt"] == end, pid
        else:
            assert pid not in crdur or crdur[pid]["startdt"] is None


def test_as_of_hides_what_was_not_known(study) -> None:
    on = dt.date(2018, 1, 1)
    kd = _by_patient(key_dates(study, on))
    assert kd["P02"]["death_date"] is None  # died 2018-03-12
    assert kd["P05"]["death_date"] == dt.date(2016, 11, 8)
    assert all(r["last_alive"] <= on and r["bound"] == on for r in kd.values())
    assert "P04" not in kd  # first dose 2018-03-05


def test_the_protocol_phases_read_the_key_dates(study) -> None:
    kd = _by_patient(key_dates(study))
    per = _by_patient(periods(study))
    assert set(per) <= set(kd)
    for pid, p in per.items():
        for c in ("first_dose", "first_cr_date", "relapse_date", "death_date", "hsct_date"):
            assert p[c] == kd[pid][c], (pid, c)
