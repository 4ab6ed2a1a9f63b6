"""Table 1's gene rows: patients per gene, arm and status counted in the engine
(:func:`amlcohort.report.tables.gene_status_counts`), checked against the patients' statuses worked
out one by one in pandas, and the table's rows and p-values built from them."""

from __future__ import annotations

import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.report import tables as tab
from amlcohort.report.results import analyse
from amlcohort.synth import write_synthetic_bundle


def _statuses_in_pandas(cohort) -> pd.DataFrame:
    """Every patient's status per gene, the long way: "mutated", "not mutated" (any other tested
    result), or not tested (no row, or ``not_tested``)."""
    m = cohort.table("mutations").select("patient_id", "gene", "result").execute()
    p = cohort.table("patients").select("patient_id", "study_arm").execute()
    m = m[m.result != "not_tested"].merge(p, on="patient_id")
    m["status"] = m.result.map(lambda r: "mutated" if r == "mutated" else "not mutated")
    return m


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("genes") / "s"
    write_synthetic_bundle(out, 300, seed=11)
    return load_cohort(out)


def test_counts_equal_the_patients_counted_one_by_one(synthetic):
    got = tab.gene_status_counts(synthetic)
    long = _statuses_in_pandas(synthetic)
    genes = sorted(synthetic.table("mutations").execute().gene.unique())
    assert list(got) == genes and len(genes) >= 5
    for gene, counts in got.items():
        want = long[long.gene == gene].groupby(["study_arm", "status"]).size()
        have = counts.set_index(["study_arm", "status"]).n
        assert have.sort_index().to_dict() == want.sort_index().to_dict(), gene
        # every tested patient counted once
        assert counts.n.sum() == long[long.gene == gene].patient_id.nunique()


def test_table1_gene_rows_from_the_counts(synthetic):
    """NPM1 in the 300-patient cohort (seed 11): the rows read from the counts, "Not tested" the
    rest of each arm, and the chi-square p-value of arms x (mutated, not mutated) as scipy gives it."""
    from scipy.stats import chi2_contingency

    a = analyse(synthetic)
    t1 = tab.table1(a, p_values=True)
    i = list(t1.Characteristic).index("NPM1, n (%)")
    assert list(t1.Characteristic[i + 1:i + 4]) == ["    mutated", "    not mutated", "    Not tested"]
    long = _statuses_in_pandas(synthetic)
    npm1 = long[long.gene == "NPM1"]
    groups = [c for c in t1.columns if c not in ("Characteristic", "p-value")]
    for col, arm in zip(groups, [None, *a.arms], strict=True):
        g = npm1 if arm is None else npm1[npm1.study_arm == arm]
        size = len(a.patients) if arm is None else int((a.patients.study_arm == arm).sum())
        mutated, not_mutated = int((g.status == "mutated").sum()), int((g.status == "not mutated").sum())
        assert list(t1[col][i + 1:i + 4]) == [f"{mutated} ({100 * mutated / size:.0f}%)",
                                               f"{not_mutated} ({100 * not_mutated / size:.0f}%)",
                                               str(size - mutated - not_mutated)]
    table = pd.crosstab(npm1.study_arm, npm1.status).to_numpy()
    p = chi2_contingency(table, correction=False)[1]
    assert t1["p-value"][i] == f"{p:.3f} (χ²)"


def test_a_gene_never_tested_is_all_not_tested():
    """The embedded study: every gene row has 13 patients, none "Not tested"; the p-value needs two
    levels, so a gene nobody carries has none."""
    a = analyse(load_cohort())
    counts = tab.gene_status_counts(a.cohort)
    assert all(c.n.sum() == 13 for c in counts.values())
    assert sorted(counts) == sorted(a.cohort.table("mutations").execute().gene.unique())
    assert tab._cat_p_table(pd.DataFrame([[0, 5], [0, 8]]).to_numpy()) == ""
