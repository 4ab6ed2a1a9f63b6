"""amlcohort synth: seeded, valid, says it is synthetic, honours the arms asked for."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from amlcohort.io.cohort import validate_bundle
from amlcohort.synth import write_synthetic_bundle


def test_synthetic_bundle_is_valid_seeded_and_labelled(tmp_path):
    rows = write_synthetic_bundle(tmp_path / "a", 60, seed=5)
    assert rows["patients"] == 60 and rows["assessments"] > 60 * 5
    report, cohort = validate_bundle(tmp_path / "a")
    assert report.ok, report.errors[:3]
    assert cohort is not None
    assert cohort.table("patients").count().to_pyarrow().as_py() == 60
    meta = yaml.safe_load((tmp_path / "a" / "metadata.yaml").read_text())
    assert meta["reconstructed"] is True and "synthetic" in meta["description"]
    # same seed, same data; another seed, other data
    write_synthetic_bundle(tmp_path / "b", 60, seed=5)
    write_synthetic_bundle(tmp_path / "c", 60, seed=6)
    a, b, c = (pq.read_table(tmp_path / d / "assessments.parquet") for d in "abc")
    assert a.equals(b) and not a.equals(c)


def test_arms_parameter_and_csv(tmp_path):
    write_synthetic_bundle(tmp_path / "x", 30, seed=1, fmt="csv", arms=("sorafenib_alone",))
    arms = set((tmp_path / "x" / "patients.csv").read_text().split())
    assert any("sorafenib_alone" in line for line in arms)
    assert not any("sorafenib_ldac" in line for line in arms)
    with pytest.raises(ValueError, match="no template patient"):
        write_synthetic_bundle(tmp_path / "y", 5, arms=("azacitidine_venetoclax",))
