"""MaterialisedCohort copies the model tables (with their study days) as temporary tables, except
those larger than MATERIALISE_MAX_CELLS, which are read where they are: the same results."""

from __future__ import annotations

import json

from amlcohort import load_cohort
from amlcohort.report import results
from amlcohort.report.results import MaterialisedCohort, analyse, table_cells


def test_table_cells_are_rows_times_columns():
    cohort = load_cohort()
    cells = table_cells(cohort.tables)
    for name, t in cohort.tables.items():
        assert cells[name] == t.count().execute() * len(t.columns)
    assert cells["patients"] == 13 * len(cohort.tables["patients"].columns)  # the study's 13 patients


def test_a_large_table_is_read_in_place_and_the_results_are_the_same(monkeypatch):
    cohort = load_cohort()
    copied = json.dumps(analyse(cohort).results_json(), sort_keys=True, default=str)
    cells = table_cells(cohort.tables)
    # every table above the limit but the patients: only they are copied
    monkeypatch.setattr(results, "MATERIALISE_MAX_CELLS", cells["patients"])
    mc = MaterialisedCohort(load_cohort())
    in_place = mc.table("assessments")
    assert in_place.get_name() == mc.base.table("assessments").get_name()  # the cohort's view
    assert mc.table("patients").get_name() != mc.base.table("patients").get_name()  # a copy
    assert json.dumps(analyse(mc).results_json(), sort_keys=True, default=str) == copied
