"""REDCap import accounts for every value: rows of an instrument the mapping does not cover, values on
a row their table does not read, records with nothing but their id and bad or repeated repeat instances
are reported (record, instrument, instance, field, value), never dropped silently."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from amlcohort.cli import app
from amlcohort.interop import redcap as rc
from amlcohort.problems import Problem

DICTIONARY = (
    (
        "field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,"
        "field_note,text_validation_type_or_show_slider_number\n"
    )
    + """\
record_id,baseline,,text,Record ID,,,
sex,baseline,,radio,Sex,"1, Female | 2, Male",,
age,baseline,,text,Age,,,integer
vdate,visit,,text,Visit date,,,date_ymd
blasts,visit,,text,Marrow blasts %,,,number
"""
)

MAPPING = """\
record_id: record_id
metadata: {study_name: accounting, cutoff_date: 2020-12-31, units: {}}
tables:
  patients:
    instrument: baseline
    columns:
      patient_id: record_id
      sex: {field: sex, values: {"1": female, "2": male}}
      age_at_onset: age
  assessments:
    instrument: visit
    columns: {assessment_date: vdate, marrow_blasts_pct: blasts}
"""

HEADER = "record_id,redcap_repeat_instrument,redcap_repeat_instance,sex,age,vdate,blasts\n"


def _import(tmp_path: Path, rows: str) -> rc.RedcapImport:
    (tmp_path / "dict.csv").write_text(DICTIONARY, encoding="utf-8")
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "rec.csv").write_text(HEADER + rows, encoding="utf-8")
    return rc.import_redcap(tmp_path / "rec.csv", tmp_path / "dict.csv", tmp_path / "map.yaml")


def _found(result: rc.RedcapImport, code: str) -> set[tuple]:
    return {
        (p.severity, p.record, p.instrument, p.instance, p.field, p.value)
        for p in result.problems
        if p.code == code
    }


def test_rows_of_an_instrument_the_mapping_does_not_cover_are_reported(tmp_path):
    result = _import(
        tmp_path,
        "R1,,,1,70,,\nR1,visit,1,,,2016-02-01,45\nR1,novisit,1,,,2016-02-05,49\n",
    )
    assert _found(result, "redcap.unmapped_instrument") == {
        ("warning", "R1", "novisit", "1", "vdate", "2016-02-05"),
        ("warning", "R1", "novisit", "1", "blasts", "49"),
    }
    assert all("'novisit'" in p.reason for p in result.problems)
    assert [p.code for p in result.problems if p.code != "redcap.unmapped_instrument"] == []
    assert result.tables["assessments"] == [
        {"assessment_date": "2016-02-01", "marrow_blasts_pct": "45", "patient_id": "R1"}
    ]


def test_values_on_a_row_their_table_does_not_read_are_reported(tmp_path):
    result = _import(tmp_path, "R1,,,1,70,2016-03-01,33\nR1,visit,1,1,,2016-02-01,45\n")
    found = {p[:6] for p in _found(result, "redcap.misplaced")}
    assert found == {
        ("warning", "R1", "", "", "vdate", "2016-03-01"),
        ("warning", "R1", "", "", "blasts", "33"),
        ("warning", "R1", "visit", "1", "sex", "1"),
    }
    sex = next(p for p in result.problems if p.field == "sex")
    assert "belongs to instrument 'baseline'" in sex.reason and "instrument 'visit'" in sex.reason
    assert not result.errors
    assert result.tables["assessments"] == [
        {"assessment_date": "2016-02-01", "marrow_blasts_pct": "45", "patient_id": "R1"}
    ]
    assert [(r["patient_id"], r["sex"]) for r in result.tables["patients"]] == [("R1", "female")]


def test_a_record_with_only_its_id_is_reported(tmp_path):
    result = _import(tmp_path, "R1,,,1,70,,\nR3,,,,,,\n")
    assert _found(result, "redcap.empty_record") == {("warning", "R3", None, None, "record_id", "R3")}
    assert [r["patient_id"] for r in result.tables["patients"]] == ["R1"]


def test_duplicate_and_invalid_repeat_instances_are_errors(tmp_path):
    result = _import(
        tmp_path,
        "R1,,,1,70,,\n"
        "R1,visit,1,,,2016-02-01,45\n"
        "R1,visit,1,,,2016-02-02,46\n"
        "R1,visit,-1,,,2016-02-03,47\n"
        "R1,visit,x,,,2016-02-04,48\n"
        "R1,visit,,,,2016-02-06,50\n"
        "R1,visit,2,,,2016-02-07,51\n",
    )
    field = "redcap_repeat_instance"
    assert _found(result, "redcap.instance") == {
        ("error", "R1", "visit", "-1", field, "-1"),
        ("error", "R1", "visit", "x", field, "x"),
        ("error", "R1", "visit", "", field, ""),
    }
    assert _found(result, "redcap.duplicate") == {("error", "R1", "visit", "1", field, "1")}
    assert len(result.errors) == 4


def test_cli_reports_and_keeps_every_problem(tmp_path):
    _import(tmp_path, "R1,,,1,70,,\nR1,novisit,1,,,2016-02-05,49\nR3,,,,,,\n")
    out = tmp_path / "bundle"
    files = {"--records": "rec.csv", "--dictionary": "dict.csv", "--mapping": "map.yaml"}
    args = [a for k, v in files.items() for a in (k, str(tmp_path / v))]
    res = CliRunner().invoke(app, ["import", "redcap", *args, "--out", str(out)])
    assert "redcap.unmapped_instrument" in res.output and "redcap.empty_record" in res.output
    with (out / "redcap" / "problems.csv").open(encoding="utf-8") as f:
        rows = {(r["code"], r["record"], r["field"], r["value"]) for r in csv.DictReader(f)}
    assert ("redcap.unmapped_instrument", "R1", "blasts", "49") in rows
    assert ("redcap.empty_record", "R3", "record_id", "R3") in rows


def test_a_table_level_validation_problem_names_its_code_once():
    located = rc.locate(
        rc.RedcapImport({}, {}, [], {}),
        [Problem("error", "mutations", "required table is missing", code="table.missing")],
    )
    assert str(located[0]).count("table.missing") == 1 and "'mutations'" in str(located[0])


def test_help_says_an_invalid_bundle_is_written_then_validated():
    helptext = CliRunner().invoke(app, ["import", "redcap", "--help"]).output
    helptext = " ".join(helptext.replace("│", " ").split())
    assert "nothing is written when there is an error" not in helptext
    assert "then validated" in helptext and "exit 1 if the bundle is invalid" in helptext
