"""`amlcohort export`: XPT never alters text (non-ASCII is refused), the export folder is never the
source bundle or someone else's folder, the write is all-or-nothing, and a bundle export keeps the
study definition."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from amlcohort import load_cohort
from amlcohort.cli import app
from amlcohort.interop.export import write_adam
from amlcohort.interop.xpt import XptTextError
from amlcohort.io.cohort import embedded_study_path

SRC = Path(__file__).resolve().parents[2] / "src" / "amlcohort"


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def error_line(result) -> str:
    lines = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def relabel_arms(bundle: Path, labels: dict[str, str]) -> None:
    study = yaml.safe_load((bundle / "study.yaml").read_text(encoding="utf-8"))
    for arm in study["arms"]:
        arm["label"] = labels.get(arm["code"], arm["label"])
    (bundle / "study.yaml").write_text(yaml.safe_dump(study, allow_unicode=True), encoding="utf-8")


# ---- 1. XPT v5 holds ASCII only: refused, never blanked ---------------------------------------------------


def test_xpt_refuses_non_ascii_arm_names_and_writes_nothing(bundle_copy, tmp_path):
    relabel_arms(bundle_copy, {"sorafenib_ldac": "索拉非尼组", "sorafenib_alone": "Ärm ünïcode 中文"})
    cohort = load_cohort(bundle_copy)
    with pytest.raises(XptTextError, match=r"ADSL\.ARM: 2 distinct value\(s\) are not ASCII") as info:
        write_adam(cohort, tmp_path / "api")
    assert "索拉非尼组" in str(info.value) and "XPT v5" in str(info.value) and "study.yaml" in str(info.value)
    assert not (tmp_path / "api").exists()  # checked before the first file

    out = tmp_path / "cli"
    result = run("export", str(out), "--format", "adam", "--from", str(bundle_copy))
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "ADSL.ARM" in line and "ASCII" in line and "--format" in line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no staging folder left behind


def test_xpt_exports_plain_ascii_arm_names(bundle_copy, tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    relabel_arms(bundle_copy, {"sorafenib_ldac": "Sorafenib plus LDAC"})
    out = tmp_path / "adam"
    result = run("export", str(out), "--format", "adam", "--from", str(bundle_copy))
    assert result.exit_code == 0, result.output
    adsl, _ = pyreadstat.read_xport(str(out / "adsl.xpt"))
    assert set(adsl.ARM) == {"Sorafenib plus LDAC", "Sorafenib alone"}
    assert set(adsl.ARMCD) == {"sorafenib_ldac", "sorafenib_alone"}


# ---- 2. where an export may go ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["itself", "inside", "around"])
def test_export_refuses_the_source_bundle(tmp_path, where):
    bundle = tmp_path / "outer" / "bundle"
    ignore = shutil.ignore_patterns("__init__.py", "__pycache__")
    shutil.copytree(embedded_study_path(), bundle, ignore=ignore)
    dest = {"itself": bundle, "inside": bundle / "sub", "around": tmp_path / "outer"}[where]
    before = listing(tmp_path)
    result = run("export", str(dest), "--format", "parquet", "--from", str(bundle))
    assert result.exit_code == 2, result.output
    assert "the bundle being exported" in error_line(result)
    assert listing(tmp_path) == before


def test_export_refuses_a_non_empty_foreign_folder(tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me", encoding="utf-8")
    result = run("export", str(dest), "--format", "csv")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert str(dest) in line and "not empty" in line
    assert listing(dest) == {"notes.txt": b"keep me"}


def test_reexport_replaces_a_previous_export_whole(tmp_path):
    dest = tmp_path / "out"
    assert run("export", str(dest), "--format", "csv").exit_code == 0
    assert (dest / "manifest.json").is_file() and (dest / "patients.csv").is_file()
    result = run("export", str(dest), "--format", "parquet")
    assert result.exit_code == 0, result.output
    assert not list(dest.glob("*.csv"))  # no mixed formats: the old export is replaced, not added to
    assert load_cohort(dest).table("patients").count().execute() == 13


def test_a_failed_export_leaves_the_previous_one(tmp_path, monkeypatch):
    import amlcohort.io.writers as writers

    dest = tmp_path / "out"
    assert run("export", str(dest), "--format", "csv").exit_code == 0
    before = listing(dest)

    def half(cohort, folder, fmt="csv"):
        (Path(folder) / "patients.parquet").write_bytes(b"half")
        raise ValueError("disk trouble")

    monkeypatch.setattr(writers, "write_bundle", half)
    result = run("export", str(dest), "--format", "parquet")
    assert result.exit_code == 1 and "disk trouble" in error_line(result)
    assert listing(dest) == before


# ---- 3. the study definition goes with the bundle ---------------------------------------------------------


def test_exported_bundle_keeps_the_study_definition(study, tmp_path):
    dest = tmp_path / "pq"
    assert run("export", str(dest), "--format", "parquet").exit_code == 0
    again = load_cohort(dest)
    a, b = study.study, again.study
    assert b.declared and (b.criteria, b.arms, b.index_drug) == (a.criteria, a.arms, a.index_drug)
    same = ("name", "response_landmark_days", "ctcae_version", "citation", "description")
    assert [getattr(b, k) for k in same] == [getattr(a, k) for k in same]
    assert b.criteria == "study" and b.index_drug == "sorafenib"
    assert b.protocol == dest.resolve() / "protocol.yaml" and b.claims == dest.resolve() / "claims.yaml"
    for name in ("study.yaml", "protocol.yaml", "claims.yaml"):
        assert (dest / name).read_bytes() == (embedded_study_path() / name).read_bytes()


def test_a_table_like_study_file_is_moved_out_of_the_way(bundle_copy, tmp_path):
    """`population: my_population.csv` beside Parquet tables would make a bundle of mixed formats."""
    from amlcohort.io.writers import write_bundle

    shutil.copyfile(SRC / "rules" / "population.csv", bundle_copy / "my_population.csv")
    raw = yaml.safe_load((bundle_copy / "study.yaml").read_text(encoding="utf-8"))
    raw["population"] = "my_population.csv"
    (bundle_copy / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cohort = load_cohort(bundle_copy)
    dest = write_bundle(cohort, tmp_path / "pq", "parquet")
    assert not list(dest.glob("*.csv"))
    again = load_cohort(dest)
    assert again.study.population == dest.resolve() / "study_files" / "my_population.csv"
    assert again.study.population.read_bytes() == (bundle_copy / "my_population.csv").read_bytes()
    assert (again.study.criteria, again.study.arms) == (cohort.study.criteria, cohort.study.arms)


def test_an_exported_bundle_lists_each_tables_rows_in_key_order(tmp_path):
    """Rows are written in the order of each table's key, not in the order an engine returns them
    (Spark's differ from DuckDB's): a bundle whose rows are shuffled exports the same bytes as the
    bundle in order, and every table of the export is sorted by its key."""
    import csv
    import random

    from amlcohort.schema import TABLES_BY_NAME

    shuffled = tmp_path / "shuffled"
    shutil.copytree(embedded_study_path(), shuffled)
    rng = random.Random(11)
    for f in shuffled.glob("*.csv"):
        head, *rows = f.read_text(encoding="utf-8").splitlines(keepends=True)
        rng.shuffle(rows)
        f.write_text(head + "".join(rows), encoding="utf-8")
    assert run("export", str(tmp_path / "a"), "--format", "csv").exit_code == 0
    assert run("export", str(tmp_path / "b"), "--format", "csv", "--from", str(shuffled)).exit_code == 0
    a, b = listing(tmp_path / "a"), listing(tmp_path / "b")
    tables = [n for n in a if n.endswith(".csv") and n[:-4] in TABLES_BY_NAME]
    assert len(tables) >= 6
    assert {n: a[n] for n in tables} == {n: b[n] for n in tables}
    for name in tables:
        key = TABLES_BY_NAME[name[:-4]].key
        rows = list(csv.DictReader((tmp_path / "a" / name).read_text(encoding="utf-8").splitlines()))
        keys = [tuple(r[k] for k in key) for r in rows]
        assert keys == sorted(keys), name
