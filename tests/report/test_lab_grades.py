"""The report's laboratory CTCAE table: patients by worst grade per term, aggregated in the engine."""

from __future__ import annotations

import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.criteria.ctcae import grade_assessments, worst_grade
from amlcohort.report import tables as tab
from amlcohort.report.results import analyse, materialise
from amlcohort.synth import write_synthetic_bundle


def _pivot_in_pandas(cohort, version: str) -> pd.DataFrame:
    """The same table the long way: every patient's worst grade per term pulled into pandas
    (:func:`worst_grade`, a separate aggregation with its own date join) and counted there."""
    terms = tab.lab_terms(cohort)
    w = worst_grade(grade_assessments(cohort.table("assessments"), version=version, terms=terms),
                    from_study_day=1).execute()
    w = w[w.worst_grade.notna() & (w.worst_grade > 0)]
    t = w.pivot_table(index="term", columns="worst_grade", values="patient_id", aggfunc="count", fill_value=0)
    t.columns = [f"Grade {int(g)}" for g in t.columns]
    return t.rename_axis(f"Term (laboratory, CTCAE v{version})").reset_index()


def test_embedded_study_lab_grades():
    a = analyse(materialise(load_cohort()))
    got = tab.lab_grades_table(a)
    assert list(got.columns) == ["Term (laboratory, CTCAE v4.03)", "Grade 1", "Grade 3", "Grade 4"]
    rows = {r[0]: list(r[1:]) for r in got.itertuples(index=False)}
    assert rows == {
        "Alanine aminotransferase increased": [1, 0, 0],
        "Anemia": [0, 13, 0],
        "Neutrophil count decreased": [0, 1, 12],
        "Platelet count decreased": [0, 1, 12],
        "White blood cell decreased": [0, 12, 1],
    }
    pd.testing.assert_frame_equal(got, _pivot_in_pandas(a.cohort, "4.03"))


@pytest.mark.parametrize("seed", [3, 8])
def test_synthetic_cohort_lab_grades_equal_the_per_patient_way(tmp_path, seed):
    write_synthetic_bundle(tmp_path / "b", 120, seed=seed)
    cohort = materialise(load_cohort(tmp_path / "b"))
    version = str(cohort.study.ctcae_version)
    query = tab.lab_grades_query(cohort, version)
    counts = query.execute()
    # a few rows per term, not one per patient
    assert len(counts) <= 5 * len(tab.lab_terms(cohort)) and set(counts.worst_grade) <= {1, 2, 3, 4, 5}
    a = analyse(cohort)
    got = tab.lab_grades_table(a)
    expected = _pivot_in_pandas(cohort, version)
    assert len(got) > 3 and got.iloc[:, 1:].to_numpy().sum() > 100
    pd.testing.assert_frame_equal(got, expected)
    # every patient with a graded value counted once per term
    assert (got.iloc[:, 1:].sum(axis=1) <= 120).all()
