"""REDCap "labels" exports through a mapping whose `values:` translate choice CODES: a label
(sex "Male" for code "1") is looked up as the label of its code (docs/interop.md: raw codes and
labels are both accepted); a value that is neither a code nor a label is an error naming record,
field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlcohort.interop import redcap as rc

DICTIONARY = (
    "field_name,form_name,field_type,field_label,select_choices_or_calculations,"
    "text_validation_type_or_show_slider_number\n"
) + """record_id,patients,text,Patient,,
pt_sex,patients,dropdown,Sex,"1, Male | 2, Female",
pt_risk,patients,radio,Risk group,"1, Favourable | 2, Intermediate | 3, Adverse",
pt_age,patients,text,Age at onset,,integer
"""

RAW = """record_id,pt_sex,pt_risk,pt_age,patients_complete
P01,1,3,67,2
P02,2,2,45,2
"""

LABELS = """record_id,pt_sex,pt_risk,pt_age,patients_complete
P01,Male,Adverse,67,Complete
P02,Female,Intermediate,45,Complete
"""

MAPPING = {
    "record_id": "record_id",
    "metadata": {"study_name": "labels export", "cutoff_date": "2024-06-30"},
    "tables": {
        "patients": {
            "instrument": "patients",
            "columns": {
                "patient_id": "record_id",
                "sex": {"field": "pt_sex", "values": {"1": "male", "2": "female"}},
                "risk_group_reported": {
                    "field": "pt_risk",
                    "values": {"1": "favorable", "2": "intermediate", "3": "adverse"},
                },
                "age_at_onset": "pt_age",
            },
        }
    },
}

EXPECTED = [
    {"patient_id": "P01", "sex": "male", "risk_group_reported": "adverse", "age_at_onset": "67"},
    {"patient_id": "P02", "sex": "female", "risk_group_reported": "intermediate", "age_at_onset": "45"},
]


def _import(tmp_path: Path, records: str, mapping: dict = MAPPING) -> rc.RedcapImport:
    (tmp_path / "dictionary.csv").write_text(DICTIONARY, encoding="utf-8")
    (tmp_path / "records.csv").write_text(records, encoding="utf-8")
    return rc.import_redcap(tmp_path / "records.csv", tmp_path / "dictionary.csv", mapping)


def test_raw_export_through_code_keyed_values(tmp_path):
    result = _import(tmp_path, RAW)
    assert result.problems == []
    assert result.tables["patients"] == EXPECTED


def test_labels_export_through_code_keyed_values_gives_the_raw_rows(tmp_path):
    result = _import(tmp_path, LABELS)
    assert [str(p) for p in result.problems] == []
    assert result.tables["patients"] == EXPECTED


@pytest.mark.parametrize("label", ["Male", "male", "MALE"])
def test_a_label_is_matched_ignoring_case(tmp_path, label):
    result = _import(tmp_path, LABELS.replace("P01,Male,", f"P01,{label},"))
    assert result.problems == []
    assert result.tables["patients"][0]["sex"] == "male"


def test_an_unknown_label_is_an_error_naming_record_field_and_value(tmp_path):
    result = _import(tmp_path, LABELS.replace("P02,Female,", "P02,Woman,"))
    assert [(p.severity, p.code, p.record, p.instrument, p.field, p.value) for p in result.problems] == [
        ("error", "redcap.choice", "P02", "patients", "pt_sex", "Woman")
    ]
    reason = result.problems[0].reason
    assert "neither a code nor a label" in reason and "1=Male, 2=Female" in reason
    assert result.tables["patients"][1]["sex"] == ""  # nothing guessed


def test_values_keyed_by_labels_read_codes_and_labels(tmp_path):
    """The other way round (unchanged): `values:` keyed by the labels, a raw export's code is
    looked up by its label."""
    mapping = {**MAPPING, "tables": {"patients": {**MAPPING["tables"]["patients"], "columns": {
        **MAPPING["tables"]["patients"]["columns"],
        "sex": {"field": "pt_sex", "values": {"Male": "male", "Female": "female"}},
    }}}}
    for records in (RAW, LABELS):
        result = _import(tmp_path, records, mapping)
        assert result.problems == [] and result.tables["patients"] == EXPECTED


def test_an_untranslated_value_of_a_field_without_choices_is_an_error(tmp_path):
    """A text field (no choices in the dictionary) with `values:`: a value they do not list is an
    error naming record, field and value."""
    dictionary = DICTIONARY.replace('pt_sex,patients,dropdown,Sex,"1, Male | 2, Female",',
                                    "pt_sex,patients,text,Sex,,")
    (tmp_path / "dictionary.csv").write_text(dictionary, encoding="utf-8")
    (tmp_path / "records.csv").write_text(LABELS, encoding="utf-8")
    result = rc.import_redcap(tmp_path / "records.csv", tmp_path / "dictionary.csv", MAPPING)
    assert [(p.severity, p.code, p.record, p.field, p.value) for p in result.problems] == [
        ("error", "redcap.unmapped_value", "P01", "pt_sex", "Male"),
        ("error", "redcap.unmapped_value", "P02", "pt_sex", "Female"),
    ]
