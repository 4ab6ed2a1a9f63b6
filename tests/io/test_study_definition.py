"""The study definition (``study.yaml``): the embedded study's, a derived one, and every named error."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from amlcohort import load_cohort, validate_bundle
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.io.study import parse_study
from amlcohort.schema.study import STUDY_FILE, StudyDefinition

SRC = Path(__file__).resolve().parents[2] / "src" / "amlcohort"


def _edit_csv(path: Path, fn) -> None:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    rows = [fn(r) or r for r in rows]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _study_yaml(bundle: Path) -> dict:
    return yaml.safe_load((bundle / STUDY_FILE).read_text(encoding="utf-8"))


def _write_study(bundle: Path, data: dict) -> None:
    (bundle / STUDY_FILE).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _codes(report) -> list[tuple[str, str | None, str]]:
    return [(p.code, p.column, p.severity) for p in report.problems if p.table == STUDY_FILE]


def test_the_embedded_study_is_declared_in_its_study_yaml():
    s = load_cohort().study
    assert s.declared and s.index_drug == "sorafenib"
    assert s.arm_codes == ("sorafenib_ldac", "sorafenib_alone")
    assert s.arm_labels == {"sorafenib_ldac": "Sorafenib + LDAC", "sorafenib_alone": "Sorafenib alone"}
    assert s.arm("sorafenib_ldac").drugs == ("sorafenib", "cytarabine")
    assert (
        s.arm("sorafenib_ldac").regimen[1].dose == 25 and s.arm("sorafenib_ldac").regimen[1].unit == "mg/m2"
    )
    assert (s.criteria, s.ctcae_version, s.response_landmark_days) == ("study", "4.03", None)
    assert s.protocol is not None and s.protocol.name == "protocol.yaml" and s.protocol.is_file()
    assert s.claims is not None and s.claims.name == "claims.yaml"
    assert "doi:10.11648/j.ijcems.20190506.11" in (s.citation or "")
    assert s.day1_text == "first sorafenib dose"


def test_without_study_yaml_the_definition_comes_from_the_data(bundle_copy):
    (bundle_copy / STUDY_FILE).unlink()
    cohort = load_cohort(bundle_copy)
    s = cohort.study
    assert not s.declared
    assert s.arm_codes == ("sorafenib_alone", "sorafenib_ldac")  # sorted distinct study_arm values
    assert s.arm_label("sorafenib_ldac") == "sorafenib_ldac"
    assert (s.index_drug, s.criteria, s.protocol, s.claims) == (None, "eln2022", None, None)
    assert s.ctcae_version == "4.03"  # the adverse events say 4.0, graded by the 4.03 tables
    assert s.day1_text == "first dose of any study drug"
    # day 1 is now the first dose of ANY drug: P02 started cytarabine and sorafenib the same day
    first = cohort.first_dose().execute().set_index("patient_id").first_dose
    assert len(first) == 13


def _three_arm_bundle(bundle: Path) -> None:
    """P01 and P06 move to an azacitidine + venetoclax arm, with drug names as a user types them."""
    (bundle / STUDY_FILE).unlink()
    moved = {"P01", "P06"}

    def arm(r: dict) -> None:
        if r["patient_id"] in moved:
            r["study_arm"] = "aza_ven"

    def drug(r: dict) -> None:
        if r["patient_id"] in moved:
            r["drug"] = "Azacitidine" if r["drug"] == "cytarabine" else "VENETOCLAX"
            r["dose"], r["dose_unit"], r["route"], r["frequency"] = "75", "mg/m2", "sc", "qd"

    _edit_csv(bundle / "patients.csv", arm)
    _edit_csv(bundle / "exposures.csv", drug)


def test_a_bundle_with_other_arms_and_drugs_validates_as_it_is(bundle_copy):
    _three_arm_bundle(bundle_copy)
    report, cohort = validate_bundle(bundle_copy)
    assert report.ok, [str(p) for p in report.errors]
    assert cohort is not None
    assert cohort.study.arm_codes == ("aza_ven", "sorafenib_alone", "sorafenib_ldac")
    ex = cohort.table("exposures")
    drugs = set(ex.drug.name("d").as_table().distinct().execute().d)
    assert drugs == {"sorafenib", "cytarabine", "azacitidine", "venetoclax"}  # normalised to lower case
    first = cohort.first_dose().execute().set_index("patient_id").first_dose
    p01 = ex.filter(ex.patient_id == "P01").start_date.min().execute()
    assert first["P01"] == p01


def test_declared_arms_are_checked_against_the_data(bundle_copy):
    _three_arm_bundle(bundle_copy)
    data = yaml.safe_load((SRC / "data" / "study" / STUDY_FILE).read_text(encoding="utf-8"))
    data.pop("protocol")
    data.pop("claims")
    _write_study(bundle_copy, data)
    report, _ = validate_bundle(bundle_copy)
    arm = [p for p in report.errors if p.code == "arm.unknown"]
    assert [(p.table, p.row, p.column, p.value) for p in arm] == [
        ("patients", 1, "study_arm", "aza_ven"),
        ("patients", 6, "study_arm", "aza_ven"),
    ]
    # the index drug is sorafenib: the moved patients have no day 1
    anchor = [p for p in report.errors if p.code == "anchor.missing"]
    assert {p.value for p in anchor} == {"P01", "P06"}
    assert "no sorafenib exposure" in anchor[0].reason


def test_a_drug_outside_the_arms_regimen_is_a_warning(bundle_copy):
    def drug(r: dict) -> None:
        if r["patient_id"] == "P02" and r["drug"] == "cytarabine":
            r["drug"] = "decitabine"

    _edit_csv(bundle_copy / "exposures.csv", drug)
    report, cohort = validate_bundle(bundle_copy)
    assert cohort is not None
    w = [p for p in report.warnings if p.code == "drug.not_in_regimen"]
    assert w and {(p.table, p.column, p.value) for p in w} == {("exposures", "drug", "decitabine")}
    assert "sorafenib_ldac" in w[0].reason


@pytest.mark.parametrize(
    ("edit", "column", "reason"),
    [
        ({"response": {"criteria": "recist"}}, "response.criteria", "not one of"),
        ({"response": {"landmark_days": -5}}, "response.landmark_days", "negative"),
        ({"response": {"landmark_days": 2.5}}, "response.landmark_days", "whole number"),
        ({"response": {"landmark_days": 0}}, "response.landmark_days", "1 or more"),
        ({"ctcae_version": "3.0"}, "ctcae_version", "not one of"),
        ({"arms": []}, "arms", "non-empty list"),
        ({"arms": [{"label": "no code"}]}, "arms[0].code", "required"),
        ({"arms": [{"code": "a"}, {"code": "a"}]}, "arms[1].code", "twice"),
        (
            {"arms": [{"code": "a", "regimen": [{"drug": "x", "dose": -1}]}]},
            "arms[0].regimen[0].dose",
            "negative",
        ),
        (
            {"arms": [{"code": "a", "regimen": [{"drug": "x", "unit": "spoons"}]}]},
            "arms[0].regimen[0].unit",
            "not one of",
        ),
        ({"arms": [{"code": "a", "regimen": "sorafenib"}]}, "arms[0].regimen", "list"),
        ({"name": ""}, "name", "required"),
        ({"protocol": "../metadata.yaml"}, "protocol", "inside the bundle"),
        ({"claims": "/etc/passwd"}, "claims", "inside the bundle"),
        ({"claims": "nowhere.yaml"}, "claims", "no such file"),
        # a misspelt key would silently change the analysis (the default criteria): an error
        ({"respones": {"criteria": "study"}}, "respones", "did you mean 'response'?"),
        ({"response": {"critera": "study"}}, "response.critera", "did you mean 'criteria'?"),
        ({"index_durg": "venetoclax"}, "index_durg", "did you mean 'index_drug'?"),
    ],
)
def test_study_yaml_errors_name_the_key_value_and_reason(tmp_path, edit, column, reason):
    (tmp_path / "metadata.yaml").write_text("x: 1\n", encoding="utf-8")
    data = {"name": "A study", **edit}
    study, problems = parse_study(data, tmp_path)
    errors = [p for p in problems if p.severity == "error"]
    assert study is None
    assert [(p.table, p.column) for p in errors] == [(STUDY_FILE, column)]
    assert reason in errors[0].reason


def test_study_yaml_reads_numbers_as_written_and_warns_on_unknown_keys(tmp_path):
    study, problems = parse_study(
        {
            "name": "S",
            "ctcae_version": 5.0,
            "index_drug": "Venetoclax",
            "response": {"landmark_days": 100},
            "colour": "red",
        },
        tmp_path,
    )
    assert isinstance(study, StudyDefinition)
    assert (study.ctcae_version, study.index_drug, study.response_landmark_days) == ("5.0", "venetoclax", 100)
    assert [(p.severity, p.column) for p in problems] == [("warning", "colour")]
    study, _ = parse_study({"name": "S", "ctcae_version": 4.03}, tmp_path)
    assert study is not None and study.ctcae_version == "4.03"


def test_study_yaml_refuses_aliases_and_links(bundle_copy, tmp_path):
    (bundle_copy / STUDY_FILE).write_text("a: &x [1, 2]\nb: *x\nname: S\n", encoding="utf-8")
    report, cohort = validate_bundle(bundle_copy)
    assert cohort is None
    assert any(p.table == STUDY_FILE and "aliases" in p.reason for p in report.errors)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("name: S\n", encoding="utf-8")
    (bundle_copy / STUDY_FILE).unlink()
    (bundle_copy / STUDY_FILE).symlink_to(outside)
    report, cohort = validate_bundle(bundle_copy)
    assert cohort is None
    assert any(p.table == STUDY_FILE and "not a link" in p.reason for p in report.errors)


def test_the_response_landmark_limits_best_response_and_days_to_cr(bundle_copy):
    full = analysis_table(load_cohort(bundle_copy)).execute()
    dcr = full[(full.paramcd == "DAYSCR") & (full.cnsr == 0)].set_index("patient_id").aval
    assert sorted(dcr) == [31, 45, 57, 78, 100]  # the paper: 31-100 days, median 57
    data = _study_yaml(bundle_copy)
    data["response"] = {"criteria": "study", "landmark_days": 60}
    _write_study(bundle_copy, data)
    limited = analysis_table(load_cohort(bundle_copy)).execute()
    lim = limited[(limited.paramcd == "DAYSCR") & (limited.cnsr == 0)].set_index("patient_id").aval
    # study day 60 = 59 elapsed days: the CRs on elapsed days 78 and 100 no longer count
    assert sorted(lim) == [31, 45, 57]
    best = limited[limited.paramcd == "BESTRESP"].set_index("patient_id").avalc
    assert (best == "cr").sum() == 3


def _code_text(path: Path) -> list[tuple[int, str]]:
    """Identifiers and string literals of a module, without docstrings and comments."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            out.append((node.lineno, node.name))
    return out


STUDY_WORDS = re.compile(r"sorafenib|cytarabine|\bxu\b|xu2019|xu et al", re.IGNORECASE)


def test_no_python_module_names_a_drug_an_arm_or_the_paper():
    """Issue 8: outside the embedded study's files and the protocol data, no code path names them."""
    found = [
        f"{p.relative_to(SRC)}:{line}: {text[:60]!r}"
        for p in sorted(SRC.rglob("*.py"))
        for line, text in _code_text(p)
        if STUDY_WORDS.search(text)
    ]
    assert found == []


def test_the_grep_helper_sees_code_but_not_docstrings(tmp_path):
    f = tmp_path / "m.py"
    code = '"""About sorafenib."""\n# cytarabine\nx = "ok"\n'
    f.write_text(code + 'def f():\n    """sorafenib"""\n    return "Sorafenib"\n')
    assert [t for _, t in _code_text(f) if STUDY_WORDS.search(t)] == ["Sorafenib"]


def test_embedded_bundle_is_self_contained():
    """Every file the embedded study.yaml names lies in the bundle folder (a template to copy)."""
    folder = (SRC / "data" / "study").resolve()
    s = load_cohort().study
    assert [p.parent if p else None for p in (s.protocol, s.claims)] == [folder, folder]


def test_drug_names_differing_only_in_case_are_one_drug_for_the_key(bundle_copy):
    path = bundle_copy / "exposures.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.append(lines[1].replace("sorafenib", "Sorafenib", 1))
    path.write_text("".join(lines), encoding="utf-8")
    report, cohort = validate_bundle(bundle_copy)
    dup = [p for p in report.errors if p.code == "key.duplicate"]
    assert cohort is None and [(p.table, p.row) for p in dup] == [("exposures", len(lines) - 1)]


def test_a_study_brings_its_own_population_rules(bundle_copy):
    """`population:` names a rule file in the bundle; the derivation compiles it instead of ours."""
    from amlcohort.criteria.population import derive_population

    shipped = (SRC / "rules" / "population.csv").read_text(encoding="utf-8")
    before = derive_population(load_cohort(bundle_copy)).execute().set_index("patient_id").status
    assert (before == "elderly_unfit").sum() == 3  # patients 11-13 (§3.1)
    # a stricter definition: unfit only above 80 (the 66-75 clause raised to 81-85), and no
    # "adverse cytogenetics and comorbidities" clause
    own = shipped.replace("age_at_onset,>,75,", "age_at_onset,>,80,").replace(
        "age_at_onset,>=,66,", "age_at_onset,>=,81,"
    ).replace("age_at_onset,<=,75,", "age_at_onset,<=,85,")
    own = "\n".join(x for x in own.splitlines() if ",elderly_unfit,3,3," not in x) + "\n"
    (bundle_copy / "my_population.csv").write_text(own, encoding="utf-8")
    data = _study_yaml(bundle_copy)
    data["population"] = "my_population.csv"
    _write_study(bundle_copy, data)
    after = derive_population(load_cohort(bundle_copy)).execute().set_index("patient_id").status
    assert sorted(after[after == "elderly_unfit"].index) == ["P12"]  # 82 years old
    (bundle_copy / "my_population.csv").write_text(
        "\n".join(x for x in own.splitlines() if not x.startswith("population.membership")), encoding="utf-8"
    )
    report, cohort = validate_bundle(bundle_copy)
    assert cohort is None
    bad = [p for p in report.errors if p.table == STUDY_FILE]
    assert [p.column for p in bad] == ["population"] and "population.membership" in bad[0].reason
