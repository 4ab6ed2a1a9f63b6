"""REDCap import: the embedded study exported as a longitudinal REDCap project (with repeating
instruments) imports to a bundle with the same analysis; every unusable value is located."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from amlcohort import load_cohort
from amlcohort.cli import app
from amlcohort.criteria import response as resp
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.interop import redcap as rc
from amlcohort.io.cohort import validate_bundle
from amlcohort.schema import TABLES
from amlcohort.stats import event_counts, kaplan_meier_by_group_from_counts, logrank_test_from_counts

HERE = Path(__file__).parent
FIX = HERE / "fixtures" / "redcap_study"


def _fixture_script():
    spec = importlib.util.spec_from_file_location("make_redcap_fixture", HERE / "make_redcap_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _import(records: Path | str, tmp: Path, mapping: Path | dict = FIX / "mapping.yaml") -> Path:
    result = rc.import_redcap(records, FIX / "dictionary.csv", mapping)
    assert result.problems == []
    return rc.write_bundle(result, tmp)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return load_cohort(_import(FIX / "records.csv", tmp_path_factory.mktemp("redcap_raw")))


def test_fixture_script_writes_the_committed_files(tmp_path):
    for path in _fixture_script().write(tmp_path):
        assert path.read_text(encoding="utf-8") == (FIX / path.name).read_text(encoding="utf-8"), path.name


def test_fixture_is_longitudinal_with_repeating_instruments():
    rows = list(csv.DictReader((FIX / "records.csv").open(encoding="utf-8")))
    events = {r["redcap_event_name"] for r in rows}
    assert events == {"screening_arm_1", "treatment_arm_1", "follow_up_arm_1"}
    assessments = [r for r in rows if r["redcap_repeat_instrument"] == "assessments"]
    assert {r["redcap_event_name"] for r in assessments} == {"screening_arm_1", "treatment_arm_1"}
    assert max(int(r["redcap_repeat_instance"]) for r in assessments) > 5
    assert any(k.startswith("pt_comorbidities___") for k in rows[0])


def _per_patient(cohort) -> pd.DataFrame:
    t = analysis_table(cohort, "study").execute()
    t = t[t.paramcd.isin(["BESTRESP", "OS", "EFS", "CRDUR", "DAYSCR"])]
    return t.set_index(["paramcd", "patient_id"]).sort_index()[["avalc", "aval", "cnsr", "adt"]]


def _km(cohort, code: str):
    t = analysis_table(cohort, "study")
    best = t.filter(t.paramcd == "BESTRESP").select("patient_id", cr=t.avalc == "cr")
    x = t.filter(t.paramcd == code).join(best, "patient_id")
    x = x.mutate(event=(1 - x.cnsr).cast("int64"))
    counts = event_counts(x, "aval", "event", group="cr")
    km = kaplan_meier_by_group_from_counts(counts, conf_type="log")
    return {k: v.median_ for k, v in km.items()}, logrank_test_from_counts(counts).p_value


def test_imported_study_gives_the_same_analysis(study, imported):
    ours, ref = _per_patient(imported), _per_patient(study)
    pd.testing.assert_frame_equal(ours, ref)
    best = resp.best_response(resp.derive(imported, "study")).execute().set_index("patient_id").best_response
    assert (
        best.value_counts().to_dict()
        == resp.best_response(resp.derive(study, "study")).execute().best_response.value_counts().to_dict()
    )
    for code in ("OS", "EFS"):
        (m1, p1), (m2, p2) = _km(imported, code), _km(study, code)
        assert m1 == m2 and p1 == pytest.approx(p2, rel=1e-12)
    assert _km(imported, "OS")[0] == {True: 520, False: 344}  # the paper's medians


def test_imported_tables_equal_the_embedded_tables(study, imported):
    for t in TABLES:
        a = study.table(t.name).select(*t.column_names).execute()
        b = imported.table(t.name).select(*t.column_names).execute()
        key = list(t.key)
        a, b = (x.sort_values(key).reset_index(drop=True) for x in (a, b))
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=t.name)
    for attr in ("name", "index_drug", "criteria", "ctcae_version", "arms"):
        assert getattr(imported.study, attr) == getattr(study.study, attr), attr
    comorbid = imported.table("patients").execute().set_index("patient_id").comorbidities
    assert "mitral regurgitation; atrial fibrillation" in set(comorbid)


def test_label_export_imports_to_the_same_rows():
    raw = rc.import_redcap(FIX / "records.csv", FIX / "dictionary.csv", FIX / "mapping.yaml")
    labels = rc.import_redcap(FIX / "records_labels.csv", FIX / "dictionary.csv", FIX / "mapping.yaml")
    assert labels.problems == [] and labels.tables == raw.tables
    assert raw.tables["patients"][0]["sex"] in ("female", "male")
    assert raw.sources["assessments"][0].instrument == "assessments"


def _edit(tmp: Path, edits: list[tuple[dict[str, str], str, str]], extra: str | None = None) -> Path:
    """A copy of records.csv with cells changed: (row selector, field, new value); optional extra column."""
    rows = list(csv.DictReader((FIX / "records.csv").open(encoding="utf-8")))
    header = list(rows[0])
    if extra:
        header.append(extra)
    for sel, field, value in edits:
        hit = [r for r in rows if all(r[k] == v for k, v in sel.items())]
        assert hit, sel
        hit[0][field] = value
    path = tmp / "records.csv"
    rc.write_csv([{k: r.get(k, "") for k in header} for r in rows], path, header)
    return path


def test_errors_name_record_event_instrument_instance_and_field(tmp_path):
    sel = {"record_id": "P02", "redcap_repeat_instrument": "assessments", "redcap_repeat_instance": "2"}
    path = _edit(
        tmp_path,
        [
            ({"record_id": "P03", "redcap_repeat_instrument": ""}, "pt_sex", "7"),
            (sel, "as_assessment_date", "2016-13-45"),
            (
                {"record_id": "P04", "redcap_repeat_instrument": "events", "redcap_repeat_instance": "1"},
                "ev_free_text",
                "seen in clinic",
            ),
        ],
        extra="ev_free_text",
    )
    result = rc.import_redcap(path, FIX / "dictionary.csv", FIX / "mapping.yaml")
    by_code = {p.code: p for p in result.problems}
    choice = by_code["redcap.choice"]
    assert (choice.record, choice.event, choice.instrument, choice.instance, choice.field, choice.value) == (
        "P03",
        "screening_arm_1",
        "patients",
        "",
        "pt_sex",
        "7",
    )
    assert "1=female" in choice.reason and choice.severity == "error"
    date = by_code["redcap.date"]
    event = next(
        r["redcap_event_name"] for r in csv.DictReader(path.open()) if all(r[k] == v for k, v in sel.items())
    )
    assert (date.record, date.event, date.instrument, date.instance, date.field, date.value) == (
        "P02",
        event,
        "assessments",
        "2",
        "as_assessment_date",
        "2016-13-45",
    )
    unmapped = by_code["redcap.unmapped"]
    assert (unmapped.record, unmapped.event, unmapped.instrument, unmapped.instance, unmapped.field) == (
        "P04",
        "follow_up_arm_1",
        "events",
        "1",
        "ev_free_text",
    )
    assert unmapped.severity == "warning" and unmapped.value == "seen in clinic"
    assert len(result.errors) == 2
    text = str(date)
    assert "record 'P02'" in text and "instance '2'" in text and "field 'as_assessment_date'" in text


def test_unmapped_field_of_the_dictionary_and_ignore(tmp_path):
    mapping = yaml.safe_load((FIX / "mapping.yaml").read_text(encoding="utf-8"))
    del mapping["tables"]["patients"]["columns"]["weight_kg"]
    result = rc.import_redcap(FIX / "records.csv", FIX / "dictionary.csv", mapping)
    unmapped = [p for p in result.problems if p.code == "redcap.unmapped"]
    assert len(unmapped) == 13 and {p.field for p in unmapped} == {"pt_weight_kg"}
    assert {p.instrument for p in unmapped} == {"patients"}
    mapping["ignore"] = ["pt_weight_kg"]
    assert rc.import_redcap(FIX / "records.csv", FIX / "dictionary.csv", mapping).problems == []


def test_model_validation_problems_are_located_at_the_source(tmp_path):
    path = _edit(tmp_path, [({"record_id": "P05", "redcap_repeat_instrument": ""}, "pt_age_at_onset", "212")])
    result = rc.import_redcap(path, FIX / "dictionary.csv", FIX / "mapping.yaml")
    assert result.errors == []
    bundle = rc.write_bundle(result, tmp_path / "bundle")
    report, cohort = validate_bundle(bundle)
    assert cohort is None
    located = rc.locate(result, report.errors, rc.read_mapping(FIX / "mapping.yaml"))
    hit = [p for p in located if p.field == "pt_age_at_onset"]
    assert hit and (hit[0].record, hit[0].event, hit[0].instrument) == ("P05", "screening_arm_1", "patients")


def test_model_dictionary_covers_the_model():
    rows = rc.model_dictionary()
    names = [r["Variable / Field Name"] for r in rows]
    assert names[0] == "record_id" and rows[0]["Form Name"] == "patients"
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,99}", n) for n in names)
    expected = sum(len(t.columns) for t in TABLES) - (len(TABLES) - 1)  # patient_id once, as record_id
    assert len(rows) == expected
    by = {r["Variable / Field Name"]: r for r in rows}
    assert by["pt_sex"]["Field Type"] == "dropdown"
    assert by["pt_sex"]["Choices, Calculations, OR Slider Labels"] == "1, female | 2, male"
    assert by["as_assessment_date"]["Text Validation Type OR Show Slider Number"] == "date_ymd"
    assert by["as_marrow_spicules"]["Field Type"] == "yesno"
    assert by["pt_age_at_onset"]["Text Validation Max"] == "120"
    assert {r["form_name"] for r in rc.repeating_instruments()} == {t.name for t in TABLES} - {"patients"}


def test_starter_mapping_of_the_model_dictionary_maps_every_column(tmp_path):
    path = rc.write_csv(rc.model_dictionary(), tmp_path / "d.csv", rc.DICTIONARY_HEADER)
    starter = yaml.safe_load(rc.starter_mapping(path))
    model = rc.model_mapping()
    assert starter["tables"] == {
        k: {"instrument": v["instrument"], "columns": v["columns"]} for k, v in model["tables"].items()
    }


def test_starter_mapping_marks_what_it_cannot_match(tmp_path):
    dictionary = tmp_path / "d.csv"
    rc.write_csv(
        [
            {"Variable / Field Name": "study_id", "Form Name": "demographics", "Field Type": "text"},
            {
                "Variable / Field Name": "gender",
                "Form Name": "demographics",
                "Field Type": "radio",
                "Choices, Calculations, OR Slider Labels": "1, Female | 2, Male",
            },
            {
                "Variable / Field Name": "sex",
                "Form Name": "demographics",
                "Field Type": "radio",
                "Choices, Calculations, OR Slider Labels": "1, F | 2, M",
            },
        ],
        dictionary,
        rc.DICTIONARY_HEADER,
    )
    text = rc.starter_mapping(dictionary)
    assert "record_id: study_id" in text
    assert "# age_at_onset: TODO (required)" in text
    assert "values:   # TODO" in text  # the codes' labels are not the model's values
    assert "#   gender (demographics, radio)" in text


def test_cli_imports_the_fixture(tmp_path):
    out = tmp_path / "bundle"
    res = CliRunner().invoke(
        app,
        [
            "import",
            "redcap",
            "--records",
            str(FIX / "records.csv"),
            "--dictionary",
            str(FIX / "dictionary.csv"),
            "--mapping",
            str(FIX / "mapping.yaml"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "patients.csv").exists() and (out / "redcap" / "sources.csv").exists()
    assert "valid" in res.output


def test_cli_writes_nothing_on_errors(tmp_path):
    path = _edit(tmp_path, [({"record_id": "P03", "redcap_repeat_instrument": ""}, "pt_sex", "7")])
    out = tmp_path / "bundle"
    res = CliRunner().invoke(
        app,
        [
            "import",
            "redcap",
            "--records",
            str(path),
            "--dictionary",
            str(FIX / "dictionary.csv"),
            "--mapping",
            str(FIX / "mapping.yaml"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 1 and not out.exists()
    assert "pt_sex" in res.output and "P03" in res.output


def test_cli_model_dictionary(tmp_path):
    res = CliRunner().invoke(app, ["import", "redcap", "--model-dictionary", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert rc.read_dictionary(tmp_path / "dictionary.csv")["pt_sex"].codes == {"1": "female", "2": "male"}
    assert {t.table for t in rc.read_mapping(tmp_path / "mapping.yaml").tables} == {t.name for t in TABLES}


def test_pycap_is_optional(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redcap", None)
    with pytest.raises(RuntimeError, match="PyCap"):
        rc.pull_from_api("https://redcap.example.org/api/", "0" * 32, tmp_path)


def test_dictionary_reads_api_metadata_names(tmp_path):
    path = tmp_path / "meta.csv"
    shutil.copy(FIX / "dictionary.csv", path)
    text = path.read_text(encoding="utf-8").splitlines()
    text[0] = ",".join(f'"{n}"' for n in rc._API_NAMES)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    assert rc.read_dictionary(path) == rc.read_dictionary(FIX / "dictionary.csv")


def test_rows_of_an_event_the_mapping_excludes_are_reported():
    mapping = yaml.safe_load((FIX / "mapping.yaml").read_text(encoding="utf-8"))
    mapping["tables"]["assessments"]["events"] = ["treatment_arm_1"]
    result = rc.import_redcap(FIX / "records.csv", FIX / "dictionary.csv", mapping)
    skipped = [p for p in result.problems if p.code == "redcap.event"]
    screening = [
        w
        for w in rc.import_redcap(FIX / "records.csv", FIX / "dictionary.csv", FIX / "mapping.yaml").sources[
            "assessments"
        ]
        if w.event == "screening_arm_1"
    ]
    assert len(skipped) == len(screening) > 0
    assert {(p.event, p.instrument) for p in skipped} == {("screening_arm_1", "assessments")}
    assert len(result.tables["assessments"]) == 144 - len(screening)


def test_imported_study_gives_the_same_report_figures(study, imported):
    """Issue 12: the REDCap export of the study, imported, gives the report's numbers, every one of
    them (results.json `figures` and `not_estimable`), apart from the audits of files a REDCap
    project does not hold (the protocol and the claims)."""
    from amlcohort.report.results import analyse

    def figures(cohort) -> tuple[dict, dict]:
        r = json.loads(json.dumps(analyse(cohort).results_json(), default=str))
        keep = {k: v for k, v in r["figures"].items() if not k.startswith(("protocol.", "stopping_rule."))}
        return keep, r.get("not_estimable", {})

    (ours, ours_ne), (ref, ref_ne) = figures(imported), figures(study)
    assert sorted(ours) == sorted(ref)
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}
    assert ours_ne == ref_ne
    assert ours["fisher.p_value"] == pytest.approx(0.031857, abs=1e-6)
