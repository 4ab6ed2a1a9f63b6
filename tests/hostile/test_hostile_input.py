"""Hostile input (issue 9, input side; issue 8 item 6): every case gives a named problem or loads
the same values as the clean bundle. One parametrised test per case; docs/guarantees.md lists
the behaviour each one checks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from amlcohort import validate_bundle
from amlcohort.io.readers import number_text
from tests.hostile.bundles import (
    copy_bundle,
    inject_formula,
    read_csv,
    rename_patient,
    set_cell,
    write_csv,
    xlsx_bundle,
)


@dataclass(frozen=True)
class Expect:
    """``code`` must be among the problems at ``severity``, naming ``where`` (table or file) and
    holding ``reason`` in its text; ``loads``: whether the bundle must still load."""

    code: str
    severity: str = "error"
    where: str | None = None
    reason: str = ""
    column: str | None = None
    row: int | None = None
    loads: bool = False


def _meta(bundle: Path, **changes: object) -> None:
    meta = yaml.safe_load((bundle / "metadata.yaml").read_text())
    meta.update(changes)
    (bundle / "metadata.yaml").write_text(yaml.safe_dump(meta))


# ---- builders: each returns the path to validate ---------------------------------------------


def xlsx_repeated_column(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["patients"]
    col = sheet.max_column + 1
    sheet.cell(1, col, "sex")
    for r in range(2, sheet.max_row + 1):
        sheet.cell(r, col, "male")
    book.save(x)
    return tmp / "b"


def csv_repeated_column_other_case(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    rows = read_csv(b / "patients.csv")
    rows[0].append("Sex")
    for r in rows[1:]:
        r.append("male")
    write_csv(b / "patients.csv", rows)
    return b


def parquet_repeated_column(tmp: Path, study) -> Path:
    from amlcohort.io.writers import write_bundle

    write_bundle(study, tmp / "b", "parquet")
    t = pq.read_table(tmp / "b" / "patients.parquet")
    t = t.append_column(pa.field("sex", pa.string()), pa.array(["male"] * t.num_rows))
    pq.write_table(t, tmp / "b" / "patients.parquet")
    return tmp / "b"


def parquet_list_column(tmp: Path, study) -> Path:
    from amlcohort.io.writers import write_bundle

    write_bundle(study, tmp / "b", "parquet")
    t = pq.read_table(tmp / "b" / "patients.parquet")
    t = t.append_column("comorbidity_list", pa.array([["a", "b"]] * t.num_rows))
    pq.write_table(t, tmp / "b" / "patients.parquet")
    return tmp / "b"


def xlsx_merged_cells(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["patients"]
    j = [c.value for c in sheet[1]].index("ecog_ps") + 1
    letter = openpyxl.utils.get_column_letter(j)
    sheet.merge_cells(f"{letter}2:{letter}4")
    book.save(x)
    return tmp / "b"


def xlsx_hidden_sheet(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    book["mutations"].sheet_state = "hidden"
    book.save(x)
    return tmp / "b"


def xlsx_hidden_row(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    book["patients"].row_dimensions[3].hidden = True
    book.save(x)
    return tmp / "b"


def xlsx_formula_cached(tmp: Path, study) -> Path:
    x = xlsx_bundle(study, tmp / "b")
    inject_formula(x, 1, "C2", "40+9")  # patients.age_at_onset of P01 (49), saved value kept
    return tmp / "b"


def xlsx_formula_uncached(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    book["patients"]["C2"] = "=40+9"  # openpyxl saves no value: nothing to read
    book.save(x)
    return tmp / "b"


def xlsx_column_without_header(tmp: Path, study) -> Path:
    import openpyxl

    x = xlsx_bundle(study, tmp / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["patients"]
    col = sheet.max_column + 1
    for r in range(2, sheet.max_row + 1):
        sheet.cell(r, col, "note")
    book.save(x)
    return tmp / "b"


def xlsx_spreadsheet_error(tmp: Path, study) -> Path:
    x = xlsx_bundle(study, tmp / "b")
    import openpyxl

    book = openpyxl.load_workbook(x)
    book["patients"]["C2"].value = "#N/A"
    book["patients"]["C2"].data_type = "e"
    book.save(x)
    return tmp / "b"


def csv_decimal_comma_unquoted(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    lines = (b / "assessments.csv").read_text().splitlines()
    parts = lines[2].split(",")
    parts[5] = "1,2"  # anc
    lines[2] = ",".join(parts)
    (b / "assessments.csv").write_text("\n".join(lines) + "\n")
    return b


def csv_empty_file(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    (b / "events.csv").write_bytes(b"")
    return b


def csv_latin1(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    rows = read_csv(b / "adverse_events.csv")
    rows[3][-1] = "fièvre"
    write_csv(b / "adverse_events.csv", rows, encoding="latin-1")
    return b


def value_1e400(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "assessments", 2, "creatinine", "1e400")
    return b


def overflow_after_unit_conversion(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    meta = yaml.safe_load((b / "metadata.yaml").read_text())
    meta["units"]["bilirubin"] = "mg/dL"
    (b / "metadata.yaml").write_text(yaml.safe_dump(meta))
    rows = read_csv(b / "assessments.csv")
    j = rows[0].index("bilirubin")
    for r in rows[1:]:
        if r[j]:
            r[j] = "0.7"
    rows[2][j] = "1.7e308"
    write_csv(b / "assessments.csv", rows)
    return b


def metadata_list_study_name(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    _meta(b, study_name=["a", "b"])
    return b


def metadata_reconstructed_string(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    _meta(b, reconstructed="false")
    return b


def metadata_cutoff_with_timezone(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    text = (
        (b / "metadata.yaml")
        .read_text()
        .replace("cutoff_date: 2019-09-30", "cutoff_date: 2019-09-30T10:00:00+02:00")
    )
    assert "T10:00" in text
    (b / "metadata.yaml").write_text(text)
    return b


def metadata_is_a_folder(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    (b / "metadata.yaml").unlink()
    (b / "metadata.yaml").mkdir()
    return b


def metadata_alias_bomb(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    lol = ['lol0: &a0 ["lol"]']
    for i in range(1, 12):
        lol.append(f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (b / "metadata.yaml").write_text((b / "metadata.yaml").read_text() + "\n".join(lol) + "\n")
    return b


def metadata_too_large(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    with (b / "metadata.yaml").open("a") as fh:
        fh.write("# " + "x" * 2_000_000 + "\n")
    return b


def symlink_table_outside(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    (b / "mutations.csv").unlink()
    (b / "mutations.csv").symlink_to("/etc/passwd")
    return b


def symlink_metadata_outside(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    secret = tmp / "secret.yaml"
    secret.write_text("study_name: SECRET-CONTENT\n")
    (b / "metadata.yaml").unlink()
    (b / "metadata.yaml").symlink_to(secret)
    return b


def symlink_folder_outside(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    (tmp / "elsewhere").mkdir()
    (b / "notes.csv").symlink_to(tmp / "elsewhere", target_is_directory=True)
    return b


def path_typo(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "bundle")
    return b / "typo"


def path_table_file(tmp: Path, study) -> Path:
    return copy_bundle(tmp / "bundle") / "patients.csv"


def path_zip(tmp: Path, study) -> Path:
    import shutil

    b = copy_bundle(tmp / "bundle")
    return Path(shutil.make_archive(str(tmp / "x"), "zip", b))


def patients_table_fails(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    rows = read_csv(b / "patients.csv")
    rows[0][0] = "id"  # no patient_id column: patients cannot be read
    write_csv(b / "patients.csv", rows)
    return b


def table_name_typo(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    (b / "events.csv").rename(b / "evnets.csv")
    return b


def column_name_typo(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    rows = read_csv(b / "patients.csv")
    rows[0][rows[0].index("sex")] = "sexx"
    write_csv(b / "patients.csv", rows)
    return b


def csv_semicolons(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    rows = read_csv(b / "events.csv")
    (b / "events.csv").write_text("\n".join(";".join(r) for r in rows) + "\n")
    return b


def csv_decimal_comma_quoted(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "assessments", 2, "anc", "1,2")
    return b


def date_other_form(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "patients", 5, "diagnosis_date", "08/06/2015")
    return b


def value_nan(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "assessments", 2, "anc", "NaN")
    return b


def value_inf(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "assessments", 2, "anc", "inf")
    return b


def value_1e308(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "assessments", 2, "marrow_blasts_pct", "1e308")
    return b


def category_other_case(tmp: Path, study) -> Path:
    b = copy_bundle(tmp / "b")
    set_cell(b, "patients", 1, "sex", "Female")
    return b


CASES: dict[str, tuple[Callable[[Path, object], Path], Expect]] = {
    # silent data changes
    "xlsx_repeated_column": (
        xlsx_repeated_column,
        Expect("column.repeated", where="cohort.xlsx[patients]", column="sex"),
    ),
    "csv_repeated_column_other_case": (
        csv_repeated_column_other_case,
        Expect("column.repeated", where="patients.csv", reason="appears twice"),
    ),
    "parquet_repeated_column": (parquet_repeated_column, Expect("column.repeated", where="patients.parquet")),
    "parquet_list_column": (
        parquet_list_column,
        Expect("column.type", where="patients.parquet", column="comorbidity_list", reason="nested"),
    ),
    "xlsx_merged_cells": (
        xlsx_merged_cells,
        Expect("cell.merged", where="cohort.xlsx[patients]", column="ecog_ps", row=1, reason="2:"),
    ),
    "xlsx_hidden_sheet": (
        xlsx_hidden_sheet,
        Expect("sheet.hidden", "warning", where="cohort.xlsx[mutations]", loads=True),
    ),
    "xlsx_hidden_row": (
        xlsx_hidden_row,
        Expect("row.hidden", "warning", where="cohort.xlsx[patients]", reason="hidden rows 3", loads=True),
    ),
    "xlsx_formula_cached": (
        xlsx_formula_cached,
        Expect(
            "cell.formula", "warning", where="cohort.xlsx[patients]", reason="formula cells C2", loads=True
        ),
    ),
    "xlsx_formula_uncached": (
        xlsx_formula_uncached,
        Expect("cell.formula", where="cohort.xlsx[patients]", reason="no saved value"),
    ),
    "xlsx_column_without_header": (
        xlsx_column_without_header,
        Expect("column.unnamed", where="cohort.xlsx[patients]", reason="no header", row=1),
    ),
    "xlsx_spreadsheet_error": (xlsx_spreadsheet_error, Expect("cell.error", where="cohort.xlsx[patients]")),
    # unreadable files name the file and row
    "csv_decimal_comma_unquoted": (
        csv_decimal_comma_unquoted,
        Expect("file.fields", where="assessments.csv", row=2, reason="decimal comma"),
    ),
    "csv_empty_file": (csv_empty_file, Expect("file.empty", where="events.csv")),
    "csv_latin1": (
        csv_latin1,
        Expect("file.encoding", where="adverse_events.csv", row=3, reason="byte 0xe8"),
    ),
    # numbers
    "value_1e400": (value_1e400, Expect("value.range", where="assessments", column="creatinine", row=2)),
    "overflow_after_unit_conversion": (
        overflow_after_unit_conversion,
        Expect("value.range", where="assessments", column="bilirubin", row=2, reason="finite"),
    ),
    # metadata
    "metadata_list_study_name": (
        metadata_list_study_name,
        Expect("metadata", column="study_name", reason="text"),
    ),
    "metadata_reconstructed_string": (
        metadata_reconstructed_string,
        Expect("metadata", column="reconstructed", reason="true or false"),
    ),
    "metadata_cutoff_with_timezone": (
        metadata_cutoff_with_timezone,
        Expect("metadata", column="cutoff_date", reason="time zone"),
    ),
    "metadata_is_a_folder": (metadata_is_a_folder, Expect("metadata", reason="is a folder")),
    "metadata_alias_bomb": (metadata_alias_bomb, Expect("metadata", reason="aliases")),
    "metadata_too_large": (metadata_too_large, Expect("metadata", reason="larger than 1024 KiB")),
    # reading outside the bundle
    "symlink_table_outside": (symlink_table_outside, Expect("bundle.outside", where="mutations.csv")),
    "symlink_metadata_outside": (symlink_metadata_outside, Expect("metadata", reason="outside the bundle")),
    "symlink_folder_outside": (symlink_folder_outside, Expect("bundle.outside", where="notes.csv")),
    # input friction
    "path_typo": (path_typo, Expect("bundle.path", reason="no such file or folder")),
    "path_table_file": (path_table_file, Expect("bundle.path", reason="give the folder")),
    "path_zip": (path_zip, Expect("bundle.path", reason="archive")),
    "table_name_typo": (
        table_name_typo,
        Expect("table.unknown", "warning", where="evnets", reason="did you mean 'events'"),
    ),
    "column_name_typo": (
        column_name_typo,
        Expect("column.missing", where="patients", column="sex", reason="did you mean 'sexx'"),
    ),
    # cases that already passed
    "csv_semicolons": (csv_semicolons, Expect("file.delimiter", where="events.csv", reason="semicolons")),
    "csv_decimal_comma_quoted": (
        csv_decimal_comma_quoted,
        Expect("value.type", where="assessments", column="anc", row=2, reason="use a point"),
    ),
    "date_other_form": (
        date_other_form,
        Expect("value.type", where="patients", column="diagnosis_date", row=5),
    ),
    "value_nan": (value_nan, Expect("value.type", where="assessments", column="anc", row=2)),
    "value_inf": (value_inf, Expect("value.type", where="assessments", column="anc", row=2)),
    "value_1e308": (
        value_1e308,
        Expect("value.range", where="assessments", column="marrow_blasts_pct", row=2, reason="maximum 100"),
    ),
    "category_other_case": (
        category_other_case,
        Expect("value.allowed", where="patients", column="sex", row=1),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_bundle_is_named_or_loaded(case, study, tmp_path):
    build, expect = CASES[case]
    path = build(tmp_path, study)
    started = time.perf_counter()
    report, cohort = validate_bundle(path)
    assert time.perf_counter() - started < 300  # no hang (about 1 s on a free machine)
    hits = [p for p in report.problems if p.code == expect.code and p.severity == expect.severity]
    assert hits, f"no {expect.code} {expect.severity}; got: " + "\n".join(map(str, report.problems))
    p = hits[0]
    if expect.where is not None:
        assert p.table == expect.where, str(p)
    if expect.column is not None:
        assert p.column == expect.column, str(p)
    if expect.row is not None:
        assert p.row == expect.row, str(p)
    assert expect.reason in str(p), str(p)
    assert (cohort is not None) == expect.loads, "\n".join(map(str, report.problems))
    for q in report.problems:  # nothing from outside the bundle is ever echoed
        assert "root:" not in str(q) and "SECRET-CONTENT" not in str(q)


def test_alias_bomb_is_refused_fast(tmp_path, study):
    path = metadata_alias_bomb(tmp_path, study)
    started = time.perf_counter()
    from amlcohort.io.metadata import read_metadata

    meta, problems = read_metadata(path / "metadata.yaml")
    assert meta is None and "line" in str(problems[0])
    assert time.perf_counter() - started < 5


def test_patients_failing_gives_one_line_not_a_cascade(tmp_path, study):
    report, _ = validate_bundle(patients_table_fails(tmp_path, study))
    unknown = [p for p in report.problems if p.code == "key.unknown_patient"]
    assert len(unknown) == 1 and unknown[0].table == "patients", "\n".join(map(str, unknown))
    assert any(p.code == "column.missing" and p.column == "patient_id" for p in report.errors)


# ---- faithful reads: the same values as the clean bundle -------------------------------------


def _values(cohort, table: str) -> list[dict]:
    return cohort.tables[table].order_by(["patient_id"]).to_pyarrow().to_pylist()


def test_formula_cached_value_is_read(tmp_path, study):
    _, cohort = validate_bundle(xlsx_formula_cached(tmp_path, study))
    p = cohort.table("patients")
    assert p.filter(p.patient_id == "P01").age_at_onset.execute().tolist() == [49]


def test_hidden_sheet_and_rows_are_read(tmp_path, study):
    _, cohort = validate_bundle(xlsx_hidden_row(tmp_path, study))
    assert _values(cohort, "patients") == _values(study, "patients")


@pytest.mark.parametrize(
    "variant",
    ["Patients.csv", " PATIENTS .csv", "patients.CSV"],
)
def test_table_file_names_match_case_and_space_insensitively(variant, tmp_path, study):
    b = copy_bundle(tmp_path / "b")
    (b / "patients.csv").rename(b / variant)
    report, cohort = validate_bundle(b)
    assert report.ok, "\n".join(map(str, report.problems))
    assert _values(cohort, "patients") == _values(study, "patients")


def test_headers_match_case_and_space_insensitively(tmp_path, study):
    b = copy_bundle(tmp_path / "b")
    rows = read_csv(b / "patients.csv")
    rows[0] = [" ".join(w.capitalize() for w in h.split("_")) for h in rows[0]]  # "Patient Id"
    assert rows[0][0] == "Patient Id"
    write_csv(b / "patients.csv", rows)
    report, cohort = validate_bundle(b)
    assert report.ok and not report.problems, "\n".join(map(str, report.problems))
    assert _values(cohort, "patients") == _values(study, "patients")


def test_sheet_names_match_case_insensitively(tmp_path, study):
    import openpyxl

    x = xlsx_bundle(study, tmp_path / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["patients"]
    sheet.title = "Renamed"
    sheet.title = "Patients"
    sheet["A1"] = "Patient ID"
    book.save(x)
    report, cohort = validate_bundle(tmp_path / "b")
    assert report.ok, "\n".join(map(str, report.problems))
    assert _values(cohort, "patients") == _values(study, "patients")


def test_percent_cells_read_as_shown(tmp_path, study):
    import openpyxl

    x = xlsx_bundle(study, tmp_path / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["assessments"]
    j = [c.value for c in sheet[1]].index("marrow_blasts_pct") + 1
    cell = sheet.cell(2, j)
    assert cell.value == 30
    cell.value, cell.number_format = 0.3, "0%"  # shows "30%"
    book.save(x)
    report, cohort = validate_bundle(tmp_path / "b")
    assert any(p.code == "cell.percent" and p.value == cell.coordinate for p in report.warnings)
    a = cohort.table("assessments")
    first = a.filter(a.patient_id == "P01").order_by("assessment_date").limit(1)
    assert first.marrow_blasts_pct.execute().tolist() == [30.0]


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (5.0, "0.0", "5.0"),  # what the user sees
        (5, "General", "5"),
        (5, "0.0", "5.0"),  # a spreadsheet saves a typed 5.0 as 5 with the format 0.0
        (5.0, "General", "5"),  # a spreadsheet shows 5
        (1.234, "0.0", "1.234"),  # never fewer digits than stored
        (0.1 + 0.2, "General", "0.3"),  # 15 significant digits, as a spreadsheet keeps
        (4.03, "0.00", "4.03"),
        (0.3, "0%", "30"),
        (0.305, "0.0%", "30.5"),
        (1500.0, "#,##0", "1500"),
        (2.5, '0.00" mg"', "2.50"),
    ],
)
def test_number_text_is_what_the_cell_shows(value, fmt, shown):
    assert number_text(value, fmt) == shown


def test_ctcae_version_typed_5_0_stays_5_0(tmp_path, study):
    import openpyxl

    x = xlsx_bundle(study, tmp_path / "b")
    book = openpyxl.load_workbook(x)
    sheet = book["adverse_events"]
    j = [c.value for c in sheet[1]].index("ctcae_version") + 1
    for r in range(2, sheet.max_row + 1):
        cell = sheet.cell(r, j)
        cell.value, cell.number_format = 5.0, "0.0"
    book.save(x)
    report, cohort = validate_bundle(tmp_path / "b")
    assert report.ok, "\n".join(map(str, report.errors))
    assert set(cohort.table("adverse_events").ctcae_version.execute()) == {"5.0"}


@pytest.mark.parametrize(
    "edit",
    ["bom", "long_text", "emoji_ids", "padded_ids", "crlf", "quoted_everything", "export_quote_prefix"],
)
def test_already_faithful_cases_load_the_same_values(edit, tmp_path, study):
    b = copy_bundle(tmp_path / "b")
    expect_patient = None
    if edit == "bom":
        data = (b / "patients.csv").read_bytes()
        (b / "patients.csv").write_bytes(b"\xef\xbb\xbf" + data)
    elif edit == "long_text":
        set_cell(b, "patients", 1, "diagnosis_text", "x" * 10_000)
        expect_patient = ("P01", "diagnosis_text", "x" * 10_000)
    elif edit == "emoji_ids":
        rename_patient(b, "P01", "P01🧬")
        expect_patient = ("P01🧬", "sex", "female")
    elif edit == "padded_ids":
        rows = read_csv(b / "events.csv")
        for r in rows[1:]:
            r[0] = f"  {r[0]} "
        write_csv(b / "events.csv", rows)
    elif edit == "crlf":
        data = (b / "events.csv").read_bytes().replace(b"\n", b"\r\n")
        (b / "events.csv").write_bytes(data)
    elif edit == "quoted_everything":
        import csv

        rows = read_csv(b / "events.csv")
        with (b / "events.csv").open("w", newline="") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL).writerows(rows)
    elif edit == "export_quote_prefix":
        set_cell(b, "adverse_events", 1, "description", '\'=HYPERLINK("http://x","y")')
    report, cohort = validate_bundle(b)
    assert report.ok, "\n".join(map(str, report.errors))
    if expect_patient is not None:
        pid, col, value = expect_patient
        p = cohort.table("patients")
        assert p.filter(p.patient_id == pid)[col].execute().tolist() == [value]
    elif edit == "export_quote_prefix":
        ae = cohort.table("adverse_events").description.execute().tolist()
        assert '=HYPERLINK("http://x","y")' in ae
    else:
        for t in ("patients", "events"):
            assert cohort.tables[t].count().execute() == study.tables[t].count().execute()
        ev = cohort.table("events")
        assert sorted(ev.patient_id.execute().unique()) == sorted(
            study.table("events").patient_id.execute().unique()
        )


if os.name != "posix":  # pragma: no cover - symlinks need a POSIX file system
    pytestmark = pytest.mark.skip("POSIX only")
