"""Validation names table, row, column, value and reason for every broken bundle.

The broken bundles are kept as edits of the embedded study bundle in
``tests/fixtures/broken_bundles.yaml``; each must fail with its specific problem, through the
Python API and through ``amlcohort validate`` (exit code 1).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from amlcohort import InputError, load_cohort, validate_bundle
from amlcohort.cli import app

CASES = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "broken_bundles.yaml").read_text())


def read_table(bundle: Path, table: str) -> tuple[list[str], list[dict[str, str]]]:
    with (bundle / f"{table}.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_table(bundle: Path, table: str, header: list[str], data: list[dict[str, str]]) -> None:
    with (bundle / f"{table}.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(data)


def apply_edit(bundle: Path, edit: dict) -> int | None:
    """Apply one edit; return the 1-based data row it touched, if any."""
    ((kind, arg),) = edit.items()
    if kind == "drop_table":
        (bundle / f"{arg}.csv").unlink()
    elif kind == "drop_column":
        header, data = read_table(bundle, arg["table"])
        header.remove(arg["column"])
        write_table(bundle, arg["table"], header, [{k: r[k] for k in header} for r in data])
    elif kind == "set":
        header, data = read_table(bundle, arg["table"])
        hits = [i for i, r in enumerate(data) if all(r[k] == str(v) for k, v in arg["where"].items())]
        assert hits, f"fixture selects no row: {arg}"
        data[hits[0]][arg["column"]] = str(arg["value"])
        write_table(bundle, arg["table"], header, data)
        return hits[0] + 1
    elif kind in ("metadata_set", "metadata_delete"):
        meta = yaml.safe_load((bundle / "metadata.yaml").read_text())
        items = arg.items() if kind == "metadata_set" else [(arg, None)]
        for dotted, value in items:
            *parents, leaf = dotted.split(".")
            node = meta
            for p in parents:
                node = node[p]
            if kind == "metadata_set":
                node[leaf] = value
            else:
                del node[leaf]
        (bundle / "metadata.yaml").write_text(yaml.safe_dump(meta))
    else:
        raise AssertionError(f"unknown fixture edit {kind}")
    return None


def test_there_are_at_least_15_distinct_broken_bundles():
    assert len(CASES) >= 15
    assert len({c["name"] for c in CASES}) == len(CASES)


def test_the_embedded_bundle_is_valid():
    report, cohort = validate_bundle()
    assert report.ok and cohort is not None
    assert report.problems == ()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_broken_bundle_reports_the_specific_problem(case, bundle_copy):
    row = None
    for edit in case["edits"]:
        row = apply_edit(bundle_copy, edit) or row
    expect = case["expect"]
    with pytest.raises(InputError) as info:
        load_cohort(bundle_copy)
    matches = [
        p
        for p in info.value.errors
        if p.code == expect["code"]
        and p.table == expect["table"]
        and p.column == expect.get("column", p.column)
    ]
    assert matches, f"no {expect['code']} in {[str(p) for p in info.value.errors]}"
    p = matches[0]
    if "value" in expect:
        assert p.value == expect["value"]
    if "reason" in expect:
        assert expect["reason"] in p.reason
    if row is not None and expect["code"] not in ("anchor.missing", "anchor.after_cutoff"):
        assert p.row == row, str(p)
    assert expect["code"] in str(info.value)


@pytest.mark.parametrize("case", CASES[:4], ids=[c["name"] for c in CASES[:4]])
def test_validate_command_exits_1_and_prints_the_problem(case, bundle_copy):
    for edit in case["edits"]:
        apply_edit(bundle_copy, edit)
    result = CliRunner().invoke(app, ["validate", str(bundle_copy)])
    assert result.exit_code == 1
    assert case["expect"]["code"] in result.output


def test_validate_command_passes_on_the_embedded_cohort():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "valid — 0 error(s), 0 warning(s)" in result.output


def test_nothing_is_loaded_half_way(bundle_copy):
    """A bundle with an error writes no table to an injected connection."""
    import ibis

    apply_edit(bundle_copy, CASES[2]["edits"][0])
    con = ibis.duckdb.connect()
    with pytest.raises(InputError):
        load_cohort(bundle_copy, con=con)
    assert con.list_tables() == []


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_a_table_of_the_connection_is_not_replaced_unless_asked(engine):
    """A connection that already has a table named like one of the model's: loading refuses,
    names it and writes nothing; ``temporary=True`` shadows it (the user's table stays as it was);
    ``replace=True`` replaces it."""
    import ibis

    from amlcohort.io.cohort import TablesExistError

    def users_connection() -> ibis.BaseBackend:
        con = ibis.duckdb.connect() if engine == "duckdb" else ibis.sqlite.connect()
        con.raw_sql("CREATE TABLE patients (mine INTEGER)")
        con.raw_sql("INSERT INTO patients VALUES (1), (2), (3)")
        return con

    con = users_connection()
    with pytest.raises(TablesExistError, match=r"\['patients'\].*replace=True"):
        load_cohort(con=con)
    assert con.list_tables() == ["patients"]
    assert con.table("patients").to_pyarrow().to_pydict() == {"mine": [1, 2, 3]}
    shadowed = load_cohort(con=con, temporary=True)
    assert shadowed.table("patients").count().to_pyarrow().as_py() == 13
    con2 = users_connection()
    replaced = load_cohort(con=con2, replace=True)
    assert replaced.table("patients").count().to_pyarrow().as_py() == 13
    assert "mine" not in con2.table("patients").columns


def test_unknown_column_and_implausible_value_are_warnings_and_kept(bundle_copy):
    header, data = read_table(bundle_copy, "patients")
    for r in data:
        r["favourite_colour"] = "blue"
    data[0]["age_at_onset"] = "12"
    write_table(bundle_copy, "patients", [*header, "favourite_colour"], data)
    cohort = load_cohort(bundle_copy)
    codes = {(w.code, w.column) for w in cohort.warnings}
    assert ("column.unknown", "favourite_colour") in codes
    assert ("value.implausible", "age_at_onset") in codes
    p = cohort.table("patients")
    assert p.filter(p.patient_id == "P01").age_at_onset.execute().tolist() == [12]


def test_declared_units_are_converted_explicitly(bundle_copy, study):
    """ANC in /uL (1000/uL = 1.0 x10^9/L) and hemoglobin in g/L load as the canonical values."""
    header, data = read_table(bundle_copy, "assessments")
    for r in data:
        if r["anc"]:
            r["anc"] = str(round(float(r["anc"]) * 1000))
        if r["hemoglobin"]:
            r["hemoglobin"] = str(round(float(r["hemoglobin"]) * 10, 1))
    write_table(bundle_copy, "assessments", header, data)
    apply_edit(bundle_copy, {"metadata_set": {"units.anc": "/uL", "units.hemoglobin": "g/L"}})
    converted = load_cohort(bundle_copy).table("assessments").order_by(["patient_id", "assessment_date"])
    original = study.table("assessments").order_by(["patient_id", "assessment_date"])
    a, b = converted.execute(), original.execute()
    assert (a.anc - b.anc).abs().max() < 1e-9
    assert (a.hemoglobin - b.hemoglobin).abs().max() < 1e-9
    one = a[(a.patient_id == "P04") & (a.assessment_date.astype(str) == "2018-04-19")]
    assert one.anc.tolist() == [pytest.approx(1.4, abs=1e-12)]  # 1400/uL


def test_missing_bundle_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"nowhere': no such file or folder"):
        load_cohort(tmp_path / "nowhere")


def test_absent_optional_table_is_unknown_not_empty(bundle_copy):
    """Without transfusions.csv, transfusion independence is unknown: no CR under the study criteria."""
    from amlcohort.criteria import response

    (bundle_copy / "transfusions.csv").unlink()
    cohort = load_cohort(bundle_copy)
    assert [(w.code, w.table) for w in cohort.warnings] == [("table.absent", "transfusions")]
    assert not cohort.has("transfusions") and cohort.has("assessments")
    best = response.best_response(response.derive(cohort, "study")).execute()
    assert "cr" not in set(best.best_response)
    r = response.derive(cohort, "study")
    p04 = r.filter((r.patient_id == "P04") & (r.assessment_study_day == 46)).execute().iloc[0]
    assert p04.response == "not_evaluable" and "transfusion_independent" in p04.missing
