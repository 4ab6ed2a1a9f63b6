"""The protocol module serves any regimen: no drug is written into its code, another regimen's
protocol (azacitidine + venetoclax, tests/protocol/fixtures/aza_ven.yaml) loads and audits a cohort
of that regimen, and a study without a protocol gets no protocol audit."""

from __future__ import annotations

import ast
import csv
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from amlcohort import load_cohort
from amlcohort.protocol import audit, audit_section, load_protocol, recommendations
from amlcohort.protocol.cli import protocol_app

FIXTURES = Path(__file__).parent / "fixtures"
AZA_VEN = FIXTURES / "aza_ven.yaml"
PROTOCOL_SRC = Path(__file__).resolve().parents[2] / "src" / "amlcohort" / "protocol"
FORBIDDEN = ("sorafenib", "cytarabine", "xu et al", "xu 2019", "sorafenib_ldac", "sorafenib_alone")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _code_strings(text: str) -> list[tuple[int, str]]:
    """Every string literal of a module except docstrings (comments are not in the AST)."""
    tree = ast.parse(text)
    skip = _docstrings(tree)
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
    ]


def test_the_check_finds_a_drug_in_code_not_in_docstrings_or_comments() -> None:
    src = '"""Doc: sorafenib."""\n# sorafenib\nx = f"stop {1} sorafenib"\n'
    assert [t for _, t in _code_strings(src) if "sorafenib" in t] == [" sorafenib"]


def test_no_protocol_module_names_a_drug_arm_or_the_paper() -> None:
    modules = sorted(PROTOCOL_SRC.glob("*.py"))
    assert len(modules) >= 8
    hits = [
        f"{m.name}:{line}: {text!r}"
        for m in modules
        for line, text in _code_strings(m.read_text(encoding="utf-8"))
        if any(w in text.lower() for w in FORBIDDEN)
    ]
    assert hits == []


# ---- another regimen ------------------------------------------------------------------------------


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    rows = edit(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def aza_ven_bundle(bundle: Path) -> Path:
    """The embedded bundle turned into an azacitidine + venetoclax cohort: one arm ``aza_ven``;
    each patient's index-drug course becomes azacitidine 75 mg/m2 SC qd on days 1-7 and venetoclax
    400 mg PO qd over the same course; no study definition (day 1 = first dose of any drug).
    Deviations built in: P03 azacitidine on 5 days only, P05 venetoclax 200 mg."""
    for extra in ("study.yaml", "claims.yaml", "protocol.yaml"):
        (bundle / extra).unlink(missing_ok=True)

    def exposures(rows: list[dict]) -> list[dict]:
        courses: dict[str, list[dict]] = {}
        for r in rows:
            if r["drug"].lower() == "sorafenib":
                courses.setdefault(r["patient_id"], []).append(r)
        out = []
        for pid, rs in courses.items():
            start = min(r["start_date"] for r in rs)
            ends = [r["end_date"] for r in rs]
            last = max(rs, key=lambda r: r["end_date"] or "9999")
            d1 = dt.date.fromisoformat(start)
            aza_days = 5 if pid == "P03" else 7
            base = dict.fromkeys(rs[0], "")
            base.update(patient_id=pid, phase="induction", start_date=start)
            out.append(
                {
                    **base,
                    "drug": "azacitidine",
                    "dose": "75",
                    "dose_unit": "mg/m2",
                    "frequency": "qd",
                    "route": "sc",
                    "end_date": (d1 + dt.timedelta(days=aza_days - 1)).isoformat(),
                    "end_reason": "planned_end",
                }
            )
            out.append(
                {
                    **base,
                    "drug": "venetoclax",
                    "dose": "200" if pid == "P05" else "400",
                    "dose_unit": "mg",
                    "frequency": "qd",
                    "route": "oral",
                    "end_date": "" if "" in ends else last["end_date"],
                    "end_reason": "" if "" in ends else last["end_reason"],
                }
            )
        return out

    _rewrite(bundle / "exposures.csv", exposures)
    _rewrite(bundle / "patients.csv", lambda rows: [{**r, "study_arm": "aza_ven"} for r in rows])

    def adverse(rows: list[dict]) -> list[dict]:  # dose actions named the old drugs: not applicable
        for r in rows:
            for k in list(r):
                if k.startswith("action_"):
                    r[k] = ""
        return rows

    _rewrite(bundle / "adverse_events.csv", adverse)
    return bundle


@pytest.fixture(scope="module")
def aza_ven(tmp_path_factory):
    import shutil

    from amlcohort.io.cohort import embedded_study_path

    dest = tmp_path_factory.mktemp("azaven") / "bundle"
    shutil.copytree(embedded_study_path(), dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return aza_ven_bundle(dest)


@pytest.fixture(scope="module")
def aza_cohort(aza_ven):
    return load_cohort(aza_ven)


@pytest.fixture(scope="module")
def aza_dev(aza_cohort) -> pd.DataFrame:
    return audit(aza_cohort, load_protocol(AZA_VEN)).to_pandas()


def test_other_regimen_protocol_loads() -> None:
    p = load_protocol(AZA_VEN)
    assert p.drug_names == ("azacitidine", "venetoclax") and p.index_drug is None
    aza, ven = p.drug("azacitidine"), p.drug("venetoclax")
    assert (aza.dose_text, aza.route, aza.min_days, aza.max_days) == ("75 mg/m² qd", "sc", 7, 7)
    assert (ven.dose_text, ven.route, ven.dose_levels) == ("400 mg qd", "oral", ())
    assert p.dose_modification is None and not p.has_rule("stopping_rule")
    assert p.rules["platelet_transfusion"].file.endswith("aza_ven_rules.csv")


def test_other_regimen_audit_has_its_own_deviations_only(aza_dev) -> None:
    dose = aza_dev[aza_dev.category == "dose"]
    assert {(r.patient_id, r.rule_id) for r in dose.itertuples()} == {
        ("P03", "dose.azacitidine_duration"),
        ("P05", "dose.venetoclax_dose"),
    }
    p05 = dose[dose.patient_id == "P05"].iloc[0]
    assert p05.evidence == "recorded 200 mg" and "venetoclax 400 mg" in p05.expected
    assert "5 days" in dose[dose.patient_id == "P03"].iloc[0].evidence
    text = " ".join(aza_dev[["rule_id", "expected", "evidence", "source"]].astype(str).agg(" ".join, axis=1))
    assert (
        "sorafenib" not in text.lower() and "cytarabine" not in text.lower() and "xu 2019" not in text.lower()
    )
    assert not aza_dev.rule_id.isin(["stopping_rule", "g_csf", "rbc_transfusion"]).any()
    assert not aza_dev.rule_id.str.startswith("dose_modification").any()


def test_other_regimen_thresholds_come_from_its_rule_file(aza_cohort, aza_dev) -> None:
    # the fixture transfuses platelets below 10 (not 20): every flagged count is below 10
    plt = aza_dev[aza_dev.rule_id == "platelet_transfusion"]
    assert plt.evidence.str.extract(r"platelets ([\d.]+)")[0].astype(float).lt(10).all()
    p = load_protocol(AZA_VEN)
    recs = {r.topic: r for r in recommendations(aza_cohort, "P09", dt.date(2015, 8, 24), protocol=p)}
    assert "Stopping rule" not in recs and "G-CSF" not in recs
    assert recs["Platelet transfusion"].rule.startswith("fixture.platelet_transfusion v1")
    assert not any("sorafenib" in r.action.lower() for r in recs.values())


def test_other_regimen_section_and_cli(aza_cohort, aza_ven) -> None:
    sec = audit_section(aza_cohort, load_protocol(AZA_VEN))
    assert sec is not None and "aza_ven_fixture" in sec["text"]
    assert "sorafenib" not in sec["text"].lower() and "Stopping rule" not in sec["text"]
    res = CliRunner().invoke(protocol_app, ["audit", str(aza_ven), "--protocol", str(AZA_VEN)])
    assert res.exit_code == 0, res.output
    assert "dose.venetoclax_dose" in res.output and "sorafenib" not in res.output.lower()
    res = CliRunner().invoke(protocol_app, ["show", "--protocol", str(AZA_VEN)])
    assert res.exit_code == 0 and "75 mg/m² qd" in res.output and "sorafenib" not in res.output.lower()


# ---- a study without a protocol -----------------------------------------------------------------


class _Study:
    def __init__(self, protocol):
        self.protocol = protocol
        self.index_drug = None
        self.name = "no-protocol study"


class _WithStudy:
    """A cohort whose study definition names no protocol (the contract of schema/study.py)."""

    def __init__(self, cohort, protocol=None):
        self._c, self.study = cohort, _Study(protocol)

    def __getattr__(self, name):
        return getattr(self._c, name)


def test_no_protocol_no_audit_section(study) -> None:
    assert audit_section(_WithStudy(study)) is None
    assert audit(_WithStudy(study)).count().execute() == 0


def test_the_study_definition_names_the_protocol(study) -> None:
    sec = audit_section(_WithStudy(study, AZA_VEN))
    assert sec is not None and sec["protocol"] == "aza_ven_fixture v1"
    # relative to the bundle, or among the shipped protocols by name
    sec = audit_section(_WithStudy(study, Path("protocol.yaml")))
    assert sec is not None and sec["protocol"] == "xu2019 v2019.1"
