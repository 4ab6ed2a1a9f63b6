"""The cohort model is the single source of truth: docs, bundle provenance and recipe follow it."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

import yaml

from amlcohort.io.cohort import embedded_study_path
from amlcohort.schema import TABLES
from amlcohort.schema.dictionary import data_dictionary

ROOT = Path(__file__).resolve().parents[1]


def test_data_dictionary_in_docs_is_generated_from_the_model():
    assert (ROOT / "docs" / "data_dictionary.md").read_text(encoding="utf-8") == data_dictionary() + "\n", (
        "docs/data_dictionary.md is stale: run `make dictionary`"
    )


def test_every_column_has_a_description_and_its_canonical_unit_is_accepted():
    for t in TABLES:
        assert t.key and all(k in t.column_names for k in t.key)
        for c in t.columns:
            assert c.description, f"{t.name}.{c.name}"
            if c.unit:
                assert c.accepted_units[c.unit] == 1.0


def test_embedded_bundle_marks_every_column_published_reconstructed_or_derived():
    meta = yaml.safe_load((embedded_study_path() / "metadata.yaml").read_text(encoding="utf-8"))
    assert meta["reconstructed"] is True
    for t in TABLES:
        header = (embedded_study_path() / f"{t.name}.csv").read_text(encoding="utf-8").splitlines()[0]
        columns = set(header.split(","))
        assert columns <= set(meta["provenance"][t.name]), (
            f"{t.name}: unmarked {columns - set(meta['provenance'][t.name])}"
        )
        assert "reconstructed" in meta["provenance"][t.name].values() or t.name == "mutations"


def test_the_reconstruction_recipe_writes_the_committed_bundle(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("recipe", ROOT / "scripts" / "reconstruct_study.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    monkeypatch.setattr(recipe, "OUT", tmp_path)
    recipe.main()
    for t in TABLES:
        assert filecmp.cmp(
            tmp_path / f"{t.name}.csv", embedded_study_path() / f"{t.name}.csv", shallow=False
        ), t.name


def test_readme_says_reconstructed_and_not_a_medical_device():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").lower()
    assert "reconstruct" in readme
    assert "not a medical device" in readme
    assert "make demo" in readme and "make test" in readme
