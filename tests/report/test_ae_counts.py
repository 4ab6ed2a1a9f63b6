"""The report's adverse events, counted in the engine (:func:`ae_counts`, :func:`earliest_onsets`),
checked against the records worked through in pandas: each patient's worst grade per term, the
patients per term, grade and arm, and each term's earliest record (ties to the first patient id)."""

from __future__ import annotations

import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.report import tables as tab
from amlcohort.report.results import ae_counts, analyse, earliest_onsets
from amlcohort.synth import write_synthetic_bundle


def _records(cohort) -> pd.DataFrame:
    ae = cohort.table("adverse_events").select("patient_id", "term", "grade", "onset_date").execute()
    arms = cohort.table("patients").select("patient_id", "study_arm").execute()
    return ae.merge(arms, on="patient_id", how="left")


@pytest.fixture(scope="module", params=["embedded", "synthetic"])
def cohort(request, tmp_path_factory):
    if request.param == "embedded":
        return load_cohort()
    out = tmp_path_factory.mktemp("ae") / "s"
    write_synthetic_bundle(out, 300, seed=11)
    return load_cohort(out)


def test_patients_per_term_grade_and_arm(cohort):
    rec = _records(cohort)
    worst = rec.groupby(["patient_id", "term", "study_arm"], dropna=False).grade.max().reset_index()
    want = worst.groupby(["term", "grade", "study_arm"], dropna=False).size()
    got = ae_counts(cohort).set_index(["term", "worst_grade", "study_arm"]).n_patients
    assert got.sort_index().to_dict() == want.sort_index().to_dict()
    assert got.sum() == len(worst) > 0


def test_earliest_record_per_term(cohort):
    rec = _records(cohort)
    first = rec.groupby(["patient_id", "term"]).onset_date.min().reset_index()
    want = first.sort_values(["onset_date", "patient_id"]).groupby("term").head(1).set_index("term")
    got = earliest_onsets(cohort).set_index("term")
    assert sorted(got.index) == sorted(want.index)
    assert got.patient_id.to_dict() == want.patient_id.to_dict()
    assert (got.first_onset == want.onset_date.reindex(got.index)).all()


class _Tables:
    """A stand-in cohort: ``table(name)`` from one connection."""

    def __init__(self, con) -> None:
        self.con = con

    def table(self, name: str):
        return self.con.table(name)


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_a_tie_goes_to_the_first_patient_id(engine):
    """Patients sharing a term's earliest onset: the first id in code-point order, whatever the
    engine's collation ("P10" before "P9", "Z1" before "a1"); a later record of the same patient
    and term does not count, and a tie on another term is decided on its own."""
    import datetime as dt

    import ibis

    con = ibis.duckdb.connect() if engine == "duckdb" else ibis.sqlite.connect()
    d = dt.date
    rows = pd.DataFrame({
        "patient_id": ["a1", "P9", "P10", "Z1", "P10", "a1", "Z1"],
        "term": ["Rash", "Rash", "Rash", "Rash", "Fever", "Fever", "Fever"],
        "grade": [1, 2, 3, 1, 2, 2, 1],
        "onset_date": [d(2020, 1, 5), d(2020, 1, 5), d(2020, 1, 5), d(2020, 1, 9), d(2020, 2, 1),
                       d(2020, 1, 20), d(2020, 1, 20)],
        "worst_grade_date": [None, d(2020, 1, 7), None, None, None, d(2020, 1, 22), None],
    })
    con.create_table("adverse_events", ibis.memtable(rows, schema={
        "patient_id": "string", "term": "string", "grade": "int64", "onset_date": "date",
        "worst_grade_date": "date"}))
    got = earliest_onsets(_Tables(con)).set_index("term")
    assert got.patient_id.to_dict() == {"Fever": "Z1", "Rash": "P10"}
    assert got.first_onset.dt.date.to_dict() == {"Fever": d(2020, 1, 20), "Rash": d(2020, 1, 5)}


def test_adverse_events_table_reads_the_counts():
    """The embedded study's table (Xu et al. 2019, §3.3 as reconstructed): every term's patients
    equal the per-grade columns' sum, and the arms' columns add up to the patients."""
    a = analyse(load_cohort())
    t = tab.adverse_events_table(a)
    grades = [f"Grade {g}" for g in range(1, 6)]
    arm_cols = [c for c in t.columns if "(N=" in c]
    assert (t[grades].sum(axis=1) == t.Patients).all()
    assert (t[arm_cols].sum(axis=1) == t.Patients).all()
    rec = _records(a.cohort)
    assert dict(zip(t.Term, t.Patients, strict=True)) == rec.groupby("term").patient_id.nunique().to_dict()
