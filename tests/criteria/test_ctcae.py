"""CTCAE v4.03 / v5.0 laboratory grading: every boundary, both sides, both versions.

Each case carries the published criterion it checks (CTCAE v4.03, 14 June 2010; CTCAE v5.0,
27 November 2017), in the same spirit as admiral's tests/testthat/test-derive_var_atoxgr.R.
"""

from __future__ import annotations

import datetime as dt
import math

import ibis
import pandas as pd
import pytest

from amlcohort.criteria import ctcae
from amlcohort.criteria.ctcae import (
    LAB_TERMS,
    Grade,
    check_reported_grades,
    grade,
    grade_assessments,
    worst_grade,
)
from amlcohort.criteria.engine import load_rules

BOTH = ("4.03", "5.0")


def _case(version, term, value, limits, expected, source):
    return pytest.param(version, term, value, limits, expected, source,
                        id=f"v{version}-{term}-{value}-{limits}-g{expected}-[{source}]")


def edges(versions, term, limits, table):
    """Two cases per boundary: exactly on it, and just past it."""
    out = []
    for version in versions:
        for at, g_at, past, g_past, source in table:
            out.append(_case(version, term, at, limits, g_at, f"CTCAE v{version} {source} (on the boundary)"))
            out.append(_case(version, term, past, limits, g_past, f"CTCAE v{version} {source} (past it)"))
    return out


ALT = [(40, 0, 40.01, 1, "ALT grade 1: >ULN - 3.0 x ULN"),
       (120, 1, 120.01, 2, "ALT grade 2: >3.0 - 5.0 x ULN"),
       (200, 2, 200.01, 3, "ALT grade 3: >5.0 - 20.0 x ULN"),
       (800, 3, 800.01, 4, "ALT grade 4: >20.0 x ULN")]
AST = [(35, 0, 35.01, 1, "AST grade 1: >ULN - 3.0 x ULN"),
       (105, 1, 105.01, 2, "AST grade 2: >3.0 - 5.0 x ULN"),
       (175, 2, 175.01, 3, "AST grade 3: >5.0 - 20.0 x ULN"),
       (700, 3, 700.01, 4, "AST grade 4: >20.0 x ULN")]
BILI = [(20, 0, 20.01, 1, "Blood bilirubin grade 1: >ULN - 1.5 x ULN"),
        (30, 1, 30.01, 2, "Blood bilirubin grade 2: >1.5 - 3.0 x ULN"),
        (60, 2, 60.01, 3, "Blood bilirubin grade 3: >3.0 - 10.0 x ULN"),
        (200, 3, 200.01, 4, "Blood bilirubin grade 4: >10.0 x ULN")]
CREA_ULN = [(100, 0, 100.01, 1, "Creatinine grade 1: >ULN - 1.5 x ULN"),
            (150, 1, 150.01, 2, "Creatinine grade 2: >1.5 - 3.0 x ULN"),
            (300, 2, 300.01, 3, "Creatinine grade 3: >3.0 - 6.0 x ULN"),
            (600, 3, 600.01, 4, "Creatinine grade 4: >6.0 x ULN")]

CASES = [
    # liver, v4.03 (x ULN) and v5.0 with a normal baseline (same criteria)
    *edges(["4.03"], "alt_increased", {"uln": 40}, ALT),
    *edges(["5.0"], "alt_increased", {"uln": 40, "baseline": 30}, [
        (a, ga, p, gp, s + " if baseline was normal") for a, ga, p, gp, s in ALT]),
    *edges(["4.03"], "ast_increased", {"uln": 35}, AST),
    *edges(["5.0"], "ast_increased", {"uln": 35, "baseline": 20}, [
        (a, ga, p, gp, s + " if baseline was normal") for a, ga, p, gp, s in AST]),
    *edges(["4.03"], "blood_bilirubin_increased", {"uln": 20}, BILI),
    *edges(["5.0"], "blood_bilirubin_increased", {"uln": 20, "baseline": 10}, [
        (a, ga, p, gp, s + " if baseline was normal") for a, ga, p, gp, s in BILI]),
    # v5.0 liver, baseline abnormal (baseline > ULN): x baseline criteria
    *edges(["5.0"], "alt_increased", {"uln": 40, "baseline": 100}, [
        (149.99, 0, 150, 1, "ALT grade 1: 1.5 - 3.0 x baseline if baseline was abnormal (1.5 inclusive)"),
        (300, 1, 300.01, 2, "ALT grade 2: >3.0 - 5.0 x baseline if baseline was abnormal"),
        (500, 2, 500.01, 3, "ALT grade 3: >5.0 - 20.0 x baseline if baseline was abnormal"),
        (2000, 3, 2000.01, 4, "ALT grade 4: >20.0 x baseline if baseline was abnormal")]),
    *edges(["5.0"], "ast_increased", {"uln": 35, "baseline": 50}, [
        (74.99, 0, 75, 1, "AST grade 1: 1.5 - 3.0 x baseline if baseline was abnormal (1.5 inclusive)"),
        (150, 1, 150.01, 2, "AST grade 2: >3.0 - 5.0 x baseline if baseline was abnormal"),
        (250, 2, 250.01, 3, "AST grade 3: >5.0 - 20.0 x baseline if baseline was abnormal"),
        (1000, 3, 1000.01, 4, "AST grade 4: >20.0 x baseline if baseline was abnormal")]),
    *edges(["5.0"], "blood_bilirubin_increased", {"uln": 20, "baseline": 30}, [
        (30, 0, 30.01, 1, "Blood bilirubin grade 1: >1.0 - 1.5 x baseline if baseline was abnormal"),
        (45, 1, 45.01, 2, "Blood bilirubin grade 2: >1.5 - 3.0 x baseline if baseline was abnormal"),
        (90, 2, 90.01, 3, "Blood bilirubin grade 3: >3.0 - 10.0 x baseline if baseline was abnormal"),
        (300, 3, 300.01, 4, "Blood bilirubin grade 4: >10.0 x baseline if baseline was abnormal")]),
    _case("5.0", "alt_increased", 41, {"uln": 40, "baseline": 40}, 1,
          "CTCAE v5.0 ALT grade 1: >ULN - 3.0 x ULN if baseline was normal (baseline = ULN is normal)"),
    _case("5.0", "alt_increased", 41, {"uln": 40}, 1,
          "CTCAE v5.0 ALT grade 1 if baseline was normal (baseline not given: taken as normal, as admiral)"),
    _case("5.0", "alt_increased", 130, {"uln": 40}, 2,
          "CTCAE v5.0 ALT grade 2: >3.0 - 5.0 x ULN (baseline not given: taken as normal, as admiral)"),
    _case("5.0", "alt_increased", 41, {"uln": 40, "baseline": 60}, 0,
          "CTCAE v5.0 ALT: below 1.5 x baseline with abnormal baseline is not an AE"),
    # creatinine: x ULN side (baseline = ULN so the x baseline alternatives coincide)
    *edges(BOTH, "creatinine_increased", {"uln": 100, "baseline": 100}, CREA_ULN),
    # creatinine: x baseline side (';' = or: the worse criterion counts)
    *edges(["4.03"], "creatinine_increased", {"uln": 100, "baseline": 40}, [
        (40, 0, 40.01, 1, "Creatinine grade 1: >1 - 1.5 x baseline"),
        (60, 1, 60.01, 2, "Creatinine grade 2: >1.5 - 3.0 x baseline"),
        (120, 2, 120.01, 3, "Creatinine grade 3: >3.0 x baseline")]),
    *edges(["5.0"], "creatinine_increased", {"uln": 100, "baseline": 40}, [
        (60, 0, 60.01, 2, "Creatinine grade 2: >1.5 - 3.0 x baseline (v5.0 grade 1 is x ULN only)"),
        (120, 2, 120.01, 3, "Creatinine grade 3: >3.0 x baseline")]),
    _case("5.0", "creatinine_increased", 50, {"uln": 100, "baseline": 40}, 0,
          "CTCAE v5.0 Creatinine grade 1: >ULN - 1.5 x ULN (no x baseline criterion for grade 1)"),
    # blood counts (x10^9/L) and hemoglobin (g/dL); same in both versions
    *edges(BOTH, "neutrophil_count_decreased", {"lln": 2.0}, [
        (2.0, 0, 1.99, 1, "Neutrophil count decreased grade 1: <LLN - 1.5 x 10e9/L"),
        (1.5, 1, 1.49, 2, "Neutrophil count decreased grade 2: <1.5 - 1.0 x 10e9/L"),
        (1.0, 2, 0.99, 3, "Neutrophil count decreased grade 3: <1.0 - 0.5 x 10e9/L"),
        (0.5, 3, 0.49, 4, "Neutrophil count decreased grade 4: <0.5 x 10e9/L")]),
    *edges(BOTH, "platelet_count_decreased", {"lln": 150}, [
        (150, 0, 149.9, 1, "Platelet count decreased grade 1: <LLN - 75.0 x 10e9/L"),
        (75, 1, 74.9, 2, "Platelet count decreased grade 2: <75.0 - 50.0 x 10e9/L"),
        (50, 2, 49.9, 3, "Platelet count decreased grade 3: <50.0 - 25.0 x 10e9/L"),
        (25, 3, 24.9, 4, "Platelet count decreased grade 4: <25.0 x 10e9/L")]),
    *edges(BOTH, "white_blood_cell_decreased", {"lln": 4.0}, [
        (4.0, 0, 3.99, 1, "White blood cell decreased grade 1: <LLN - 3.0 x 10e9/L"),
        (3.0, 1, 2.99, 2, "White blood cell decreased grade 2: <3.0 - 2.0 x 10e9/L"),
        (2.0, 2, 1.99, 3, "White blood cell decreased grade 3: <2.0 - 1.0 x 10e9/L"),
        (1.0, 3, 0.99, 4, "White blood cell decreased grade 4: <1.0 x 10e9/L")]),
    *edges(BOTH, "anemia", {"lln": 12.0}, [
        (12.0, 0, 11.99, 1, "Anemia grade 1: Hgb <LLN - 10.0 g/dL"),
        (10.0, 1, 9.99, 2, "Anemia grade 2: Hgb <10.0 - 8.0 g/dL"),
        (8.0, 2, 7.99, 3, "Anemia grade 3: Hgb <8.0 g/dL")]),
    *[_case(v, "anemia", 3.0, {"lln": 12.0}, 3,
            f"CTCAE v{v} Anemia grade 4 'Life-threatening consequences' is clinical: lab tops at 3")
      for v in BOTH],
    # electrolytes, low
    *edges(BOTH, "hypokalemia", {"lln": 3.5}, [
        (3.5, 0, 3.49, 1, "Hypokalemia grade 1: <LLN - 3.0 mmol/L (symptom status not given: lab-only)"),
        (3.0, 1, 2.99, 3, "Hypokalemia grade 3: <3.0 - 2.5 mmol/L"),
        (2.5, 3, 2.49, 4, "Hypokalemia grade 4: <2.5 mmol/L")]),
    *[_case(v, "hypokalemia", 3.2, {"lln": 3.5, "symptomatic": s}, g,
            f"CTCAE v{v} Hypokalemia grade {g}: <LLN - 3.0 mmol/L, symptomatic={s}")
      for v in BOTH for s, g in ((True, 2), (False, 1))],
    *[_case(v, "hypokalemia", 2.9, {"lln": 3.5, "symptomatic": True}, 3,
            f"CTCAE v{v} Hypokalemia grade 3: <3.0 - 2.5 mmol/L whatever the symptoms") for v in BOTH],
    *edges(["4.03"], "hyponatremia", {"lln": 135}, [
        (135, 0, 134.9, 1, "Hyponatremia grade 1: <LLN - 130 mmol/L"),
        (130, 1, 129.9, 3, "Hyponatremia grade 3: <130 - 120 mmol/L (grade 2 is '-')"),
        (120, 3, 119.9, 4, "Hyponatremia grade 4: <120 mmol/L")]),
    *edges(["5.0"], "hyponatremia", {"lln": 135}, [
        (135, 0, 134.9, 1, "Hyponatremia grade 1: <LLN - 130 mmol/L"),
        (130, 1, 129.9, 2, "Hyponatremia grade 2: 125-129 mmol/L and asymptomatic (not given: lab-only)"),
        (125, 2, 124.9, 3, "Hyponatremia grade 3: 120-124 mmol/L regardless of symptoms"),
        (120, 3, 119.9, 4, "Hyponatremia grade 4: <120 mmol/L")]),
    _case("5.0", "hyponatremia", 127, {"lln": 135, "symptomatic": True}, 3,
          "CTCAE v5.0 Hyponatremia grade 3: 125-129 mmol/L symptomatic"),
    _case("5.0", "hyponatremia", 127, {"lln": 135, "symptomatic": False}, 2,
          "CTCAE v5.0 Hyponatremia grade 2: 125-129 mmol/L and asymptomatic"),
    _case("5.0", "hyponatremia", 122, {"lln": 135, "symptomatic": False}, 3,
          "CTCAE v5.0 Hyponatremia grade 3: 120-124 mmol/L regardless of symptoms"),
    *edges(BOTH, "hypocalcemia", {"lln": 2.1}, [
        (2.1, 0, 2.09, 1, "Hypocalcemia grade 1: corrected calcium <LLN - 2.0 mmol/L"),
        (2.0, 1, 1.99, 2, "Hypocalcemia grade 2: corrected calcium <2.0 - 1.75 mmol/L"),
        (1.75, 2, 1.74, 3, "Hypocalcemia grade 3: corrected calcium <1.75 - 1.5 mmol/L"),
        (1.5, 3, 1.49, 4, "Hypocalcemia grade 4: corrected calcium <1.5 mmol/L")]),
    # electrolytes, high
    *edges(BOTH, "hyperkalemia", {"uln": 5.1}, [
        (5.1, 0, 5.11, 1, "Hyperkalemia grade 1: >ULN - 5.5 mmol/L"),
        (5.5, 1, 5.51, 2, "Hyperkalemia grade 2: >5.5 - 6.0 mmol/L"),
        (6.0, 2, 6.01, 3, "Hyperkalemia grade 3: >6.0 - 7.0 mmol/L"),
        (7.0, 3, 7.01, 4, "Hyperkalemia grade 4: >7.0 mmol/L")]),
    *edges(BOTH, "hypernatremia", {"uln": 145}, [
        (145, 0, 145.1, 1, "Hypernatremia grade 1: >ULN - 150 mmol/L"),
        (150, 1, 150.1, 2, "Hypernatremia grade 2: >150 - 155 mmol/L"),
        (155, 2, 155.1, 3, "Hypernatremia grade 3: >155 - 160 mmol/L"),
        (160, 3, 160.1, 4, "Hypernatremia grade 4: >160 mmol/L")]),
    *edges(BOTH, "hypercalcemia", {"uln": 2.6}, [
        (2.6, 0, 2.61, 1, "Hypercalcemia grade 1: corrected calcium >ULN - 2.9 mmol/L"),
        (2.9, 1, 2.91, 2, "Hypercalcemia grade 2: corrected calcium >2.9 - 3.1 mmol/L"),
        (3.1, 2, 3.11, 3, "Hypercalcemia grade 3: corrected calcium >3.1 - 3.4 mmol/L"),
        (3.4, 3, 3.41, 4, "Hypercalcemia grade 4: corrected calcium >3.4 mmol/L")]),
]


def test_enough_boundary_cases():
    assert len(CASES) >= 80


@pytest.mark.parametrize(("version", "term", "value", "limits", "expected", "source"), CASES)
def test_boundary(version, term, value, limits, expected, source):
    g = grade(term, value, version=version, **limits)
    assert g.grade == expected, f"{source}: got {g}"
    assert g.version == version
    assert f"CTCAE v{version}" in g.reason  # the reason names the published criterion used
    assert g.rule_id and g.rule_id.startswith(ctcae.lab_term(term).key)


# ---- missing inputs: not gradable, the missing item named ------------------------------------

NOT_GRADABLE = [
    ("4.03", "alt_increased", 50, {"uln": None}, "uln", "CTCAE v4.03 ALT grades are x ULN"),
    ("5.0", "alt_increased", 50, {"baseline": 100}, "uln", "CTCAE v5.0 ALT: baseline abnormal means > ULN"),
    ("4.03", "alt_increased", None, {"uln": 40}, "value", "no value, no grade"),
    ("5.0", "blood_bilirubin_increased", None, {"uln": 20, "baseline": 10}, "value", "no value, no grade"),
    ("4.03", "neutrophil_count_decreased", 2.0, {}, "lln", "CTCAE grade 1: <LLN - 1.5 x 10e9/L needs LLN"),
    ("5.0", "platelet_count_decreased", 100, {}, "lln", "CTCAE grade 1: <LLN - 75.0 x 10e9/L needs the LLN"),
    ("4.03", "anemia", 11, {}, "lln", "CTCAE grade 1: Hgb <LLN - 10.0 g/dL needs the LLN"),
    ("5.0", "hyperkalemia", 5.3, {}, "uln", "CTCAE grade 1: >ULN - 5.5 mmol/L needs the ULN"),
    ("4.03", "hypokalemia", 3.2, {}, "lln", "CTCAE grade 1: <LLN - 3.0 mmol/L needs the LLN"),
    ("4.03", "creatinine_increased", 90, {"uln": 100}, "baseline",
     "CTCAE v4.03 Creatinine grade 1: >1 - 1.5 x baseline (a value <= ULN may still be above baseline)"),
    ("4.03", "creatinine_increased", 90, {"baseline": 50}, "uln", "CTCAE Creatinine grade 4: >6.0 x ULN"),
]


@pytest.mark.parametrize(("version", "term", "value", "limits", "missing", "source"), NOT_GRADABLE,
                         ids=[f"v{c[0]}-{c[1]}-{c[2]}-missing-{c[4]}" for c in NOT_GRADABLE])
def test_not_gradable_names_what_is_missing(version, term, value, limits, missing, source):
    g = grade(term, value, version=version, **limits)
    assert g.grade is None, source
    assert missing in g.missing
    assert missing in g.reason and "not given" in g.reason
    with pytest.raises(ValueError, match="not gradable"):
        int(g)


GRADABLE_WITHOUT = [
    ("4.03", "neutrophil_count_decreased", 0.8, {}, 3, "grade 3 <1.0 - 0.5 x 10e9/L needs no LLN"),
    ("5.0", "platelet_count_decreased", 60, {}, 2, "grade 2 <75.0 - 50.0 x 10e9/L needs no LLN"),
    ("5.0", "hyperkalemia", 6.5, {}, 3, "grade 3 >6.0 - 7.0 mmol/L needs no ULN"),
    ("5.0", "hyponatremia", 127, {}, 2, "grade 2 125-129 mmol/L needs no LLN"),
    ("4.03", "creatinine_increased", 160, {"uln": 100}, 2, "grade 2 >1.5 - 3.0 x ULN; no baseline needed"),
    ("5.0", "creatinine_increased", 90, {"uln": 100}, 0,
     "v5.0 grade 1 is x ULN only; baseline not given: x baseline alternatives not applied (admiral)"),
]


@pytest.mark.parametrize(("version", "term", "value", "limits", "expected", "source"), GRADABLE_WITHOUT,
                         ids=[f"v{c[0]}-{c[1]}-{c[2]}-g{c[4]}" for c in GRADABLE_WITHOUT])
def test_higher_grades_need_no_limit(version, term, value, limits, expected, source):
    assert grade(term, value, version=version, **limits).grade == expected, source


def test_v5_baseline_missing_is_graded_as_normal_and_says_so():
    g = grade("alt_increased", 130, uln=40, version="5.0")
    assert g.grade == 2
    assert g.rule_id == "alt_increased.g2.baseline_not_given"
    assert "baseline not given" in g.reason
    normal = grade("alt_increased", 130, uln=40, baseline=30, version="5.0")
    abnormal = grade("alt_increased", 130, uln=40, baseline=100, version="5.0")
    assert (normal.grade, normal.rule_id) == (2, "alt_increased.g2.baseline_normal")
    assert (abnormal.grade, abnormal.rule_id) == (0, "alt_increased.g0")


# ---- terms, versions, wrong input --------------------------------------------------------------

@pytest.mark.parametrize("spelling", [
    "Alanine aminotransferase increased", "alanine aminotransferase INCREASED", "alt_increased",
    " ALT increased "])
def test_term_spellings(spelling):
    g = grade(spelling, 50, uln=40)
    assert (g.key, g.term, g.grade) == ("alt_increased", "Alanine aminotransferase increased", 1)


def test_unknown_term_names_known_terms():
    with pytest.raises(ValueError, match=r"unknown CTCAE laboratory term 'Hyperthyroidism'.*alt_increased"):
        grade("Hyperthyroidism", 10, uln=6)


@pytest.mark.parametrize("version", ["3.0", "7.0", "", "v4.02"])  # 6.0 is supported (issue 10)
def test_unknown_version_names_known_versions(version):
    with pytest.raises(ValueError, match=r"unknown CTCAE version.*4\.03.*5\.0"):
        grade("alt_increased", 50, uln=40, version=version)


def test_version_aliases():
    assert grade("alt_increased", 50, uln=40, version="4.0").version == "4.03"
    assert grade("alt_increased", 50, uln=40, version="v5.0").version == "5.0"


def test_wrong_limit_kind_is_an_error():
    with pytest.raises(ValueError, match="graded against the LLN"):
        grade("neutrophil_count_decreased", 1.2, uln=7.5)
    with pytest.raises(ValueError, match="graded against the ULN"):
        grade("alt_increased", 50, lln=5)


@pytest.mark.parametrize(("value", "limits", "what"), [
    (-1.0, {"lln": 2.0}, "value must be >= 0"),
    (float("nan"), {"lln": 2.0}, "value must be finite"),
    ("1.2", {"lln": 2.0}, "value must be a number"),
    (1.2, {"lln": 0}, "lln must be > 0"),
    (1.2, {"lln": 2.0, "baseline": -3}, "baseline must be >= 0"),
])
def test_wrong_input_is_not_graded_and_says_why(value, limits, what):
    g = grade("neutrophil_count_decreased", value, **limits)
    assert g.grade is None
    assert "wrong input" in g.reason and what in g.reason


def test_grade_int_and_ignored_inputs():
    g = grade("anemia", 9.0, lln=12.0, baseline=13.0)
    assert isinstance(g, Grade) and int(g) == 2 and g.graded
    assert "baseline ignored" in g.reason


# ---- the rule files themselves -------------------------------------------------------------------

@pytest.mark.parametrize("version", BOTH)
def test_every_term_has_a_rule_set_with_sources(version):
    book = load_rules(ctcae.RULE_FILES[version])
    for spec in ctcae.terms_of(version):
        rules = book[(spec.key, version)]
        assert rules.rules[-1].outcome == "0" and rules.rules[-1].rule_id == f"{spec.key}.g0"
        for r in rules.rules:
            assert r.source.startswith(f"CTCAE v{version} "), r.rule_id
    for r in book[("reported_grade", version)].rules:
        assert r.source.startswith(f"CTCAE v{version}")


# ---- a whole table, on DuckDB and on a second backend ----------------------------------------

def _assessments() -> pd.DataFrame:
    rows = [
        # patient, date, study day, alt, ast, bili, crea, anc, plt, wbc, hgb, k, na, ca
        ("P1", dt.date(2020, 1, 1), -6, 30.0, 20.0, 10.0, 60.0, 2.0, 100.0, 3.0, 9.0, 3.4, 127.0, 2.0),
        ("P1", dt.date(2020, 1, 6), 1, 120.0, 105.01, 30.01, 90.01, 1.0, 75.0, 2.0, 8.0, 3.0, 130.0, 1.75),
        ("P1", dt.date(2020, 1, 20), 15, 800.01, 36.0, 200.01, 600.01, 0.49, 24.9, 0.99, 7.99, 2.49, 119.9,
         1.49),
        ("P2", dt.date(2020, 2, 1), -1, 100.0, None, 30.0, 100.0, 1.5, 50.0, 4.0, 12.0, 3.6, 135.0, 2.1),
        ("P2", dt.date(2020, 2, 10), 9, 150.0, 80.0, 30.01, 100.01, 0.5, 49.9, 1.99, 10.0, 3.49, 124.9, 2.09),
        ("P2", dt.date(2020, 3, 1), 29, 2000.01, 35.0, None, 301.0, None, 150.0, 5.0, 13.0, 5.6, 146.0, 2.95),
        ("P3", dt.date(2020, 4, 2), 2, 41.0, 34.0, 21.0, 99.0, 1.49, 74.9, 2.99, 9.99, 7.01, 160.1, 3.41),
    ]
    cols = ["patient_id", "assessment_date", "assessment_study_day", "alt", "ast", "bilirubin", "creatinine",
            "anc", "platelets", "wbc", "hemoglobin", "potassium", "sodium", "calcium"]
    df = pd.DataFrame(rows, columns=cols)
    df = df.assign(alt_uln=40.0, ast_uln=35.0, bilirubin_uln=20.0, creatinine_uln=100.0, potassium_lln=3.5,
                   sodium_lln=135.0, calcium_lln=2.1, potassium_uln=5.1, platelets_lln=150.0)
    df.loc[6, "creatinine_uln"] = None  # P3: a missing ULN
    df["assessment_study_day"] = df["assessment_study_day"].astype("int64")
    for c in cols[3:]:
        df[c] = df[c].astype("float64")
    return df


DEFAULTS = {"anc_lln": 1.8}
KEY = ["term_key", "patient_id", "assessment_date"]


def _run(con, table, version) -> pd.DataFrame:
    out = con.execute(grade_assessments(table, version=version, default_limits=DEFAULTS))
    out["assessment_date"] = pd.to_datetime(out["assessment_date"]).dt.date
    return out.sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("version", BOTH)
def test_grade_assessments_matches_grade_per_row(version):
    df = _assessments()
    out = _run(ibis.duckdb.connect(), ibis.memtable(df), version)
    specs = ctcae.table_terms(df.columns, version, DEFAULTS)
    # the 14 original terms, plus leukocytosis (wbc, graded without a ULN); hemoglobin increased
    # needs a hemoglobin ULN the table lacks, so it is not graded by default
    assert {s.key for s in specs} == {s.key for s in LAB_TERMS[:14]} | {"leukocytosis"}
    assert len(out) == sum(df[s.value_column].notna().sum() for s in specs)
    for row in out.itertuples():
        spec = ctcae.lab_term(row.term_key)
        rules = ctcae.rules_for(spec.key, version)
        kw = {spec.limit: None if pd.isna(row.limit) else row.limit}
        if "baseline" in rules.variables:
            kw["baseline"] = None if pd.isna(row.baseline) else row.baseline
        one = grade(spec.key, row.value, version=version, **kw)
        got = None if pd.isna(row.grade) else int(row.grade)
        assert got == one.grade, (row, one)
        assert row.rule_id == one.rule_id
        assert (row.not_graded_reason is None or (isinstance(row.not_graded_reason, float)
                                                  and math.isnan(row.not_graded_reason))) == one.graded
    # baseline: the last value before the first dose (study day < 1)
    crea = out[out.term_key == "creatinine_increased"].set_index("patient_id")
    assert crea.loc["P1", "baseline"].tolist() == [60.0] * 3
    assert crea.loc["P2", "baseline"].tolist() == [100.0] * 3
    assert pd.isna(crea.loc["P3", "baseline"])  # no assessment before the first dose
    alt = out[out.term_key == "alt_increased"].set_index("patient_id")
    if version == "5.0":
        assert alt.loc["P1", "baseline"].tolist() == [30.0] * 3
    else:  # v4.03 ALT has no baseline criterion
        assert alt.baseline.isna().all()
    anc = out[out.term_key == "neutrophil_count_decreased"]
    assert set(anc.limit_source) == {"default"} and set(anc.limit) == {1.8}
    crea_p3 = out[(out.term_key == "creatinine_increased") & (out.patient_id == "P3")].iloc[0]
    assert pd.isna(crea_p3.grade) and "creatinine_uln" in crea_p3.not_graded_reason


def _on_sqlite(df: pd.DataFrame):
    con = ibis.sqlite.connect()
    schema = ibis.memtable(df).schema()
    con.create_table("t", schema=schema)
    con.insert("t", df.astype(object).where(df.notna(), None))  # sqlite binds None, not pd.NA
    return con, con.table("t")


def _on_polars(df: pd.DataFrame):
    con = ibis.polars.connect()
    return con, con.create_table("t", df)


@pytest.mark.parametrize("backend", [_on_sqlite, _on_polars], ids=["sqlite", "polars"])
@pytest.mark.parametrize("version", BOTH)
def test_grade_assessments_runs_unchanged_on_another_backend(backend, version):
    df = _assessments()
    expected = _run(ibis.duckdb.connect(), ibis.memtable(df), version)
    con, table = backend(df)
    got = _run(con, table, version)
    cols = ["term_key", "patient_id", "assessment_date", "value", "limit", "baseline", "grade", "rule_id",
            "not_graded_reason", "limit_source"]
    pd.testing.assert_frame_equal(got[cols], expected[cols], check_dtype=False)
    worst_dd = ibis.duckdb.connect().execute(
        worst_grade(grade_assessments(ibis.memtable(df), version=version))).sort_values(
        ["term_key", "patient_id"])
    worst_other = con.execute(worst_grade(grade_assessments(table, version=version))).sort_values(
        ["term_key", "patient_id"])
    pd.testing.assert_series_equal(worst_other.worst_grade.reset_index(drop=True),
                                   worst_dd.worst_grade.reset_index(drop=True), check_dtype=False)


def test_worst_grade():
    df = _assessments()
    graded = grade_assessments(ibis.memtable(df), version="4.03")
    con = ibis.duckdb.connect()
    w = con.execute(worst_grade(graded)).set_index(["patient_id", "term_key"])
    assert w.loc[("P1", "alt_increased"), "worst_grade"] == 4
    assert w.loc[("P1", "alt_increased"), "worst_grade_date"] == pd.Timestamp("2020-01-20")
    assert w.loc[("P1", "alt_increased"), "n_values"] == 3
    assert w.loc[("P1", "white_blood_cell_decreased"), "worst_grade"] == 4
    on_treatment = con.execute(worst_grade(graded, from_study_day=1)).set_index(["patient_id", "term_key"])
    assert on_treatment.loc[("P1", "anemia"), "n_values"] == 2
    # P3 creatinine: its only value has no ULN -> no worst grade, counted as not graded
    assert pd.isna(w.loc[("P3", "creatinine_increased"), "worst_grade"])
    assert w.loc[("P3", "creatinine_increased"), "n_not_graded"] == 1
    # without the dates: the same rows less that column (no second read of the graded values)
    nodate = con.execute(worst_grade(graded, dates=False)).set_index(["patient_id", "term_key"])
    assert "worst_grade_date" not in nodate.columns
    pd.testing.assert_frame_equal(nodate.sort_index(), w.drop(columns="worst_grade_date").sort_index())


def test_grade_assessments_input_errors():
    t = ibis.memtable(_assessments())
    with pytest.raises(ValueError, match="unknown limit column"):
        grade_assessments(t, default_limits={"anc_uln": 7.5})
    with pytest.raises(ValueError, match="must be > 0"):
        grade_assessments(t, default_limits={"anc_lln": 0})
    with pytest.raises(KeyError, match="alt"):  # a term asked for needs its value column
        grade_assessments(t.drop("alt"), terms=("alt_increased",))
    # by default only the terms the table has values for are graded (issue 10: 43 terms)
    assert "alt_increased" not in set(grade_assessments(t.drop("alt")).term_key.execute())
    with pytest.raises(ValueError, match=r"not laboratory terms of CTCAE v6\.0"):
        grade_assessments(t, version="6.0", terms=("cpk_increased",))
    with pytest.raises(ValueError, match="unknown CTCAE version"):
        grade_assessments(t, version="3.0")


# ---- reported grades ----------------------------------------------------------------------------

REPORTED = [
    # term, grade, version, expected check, source
    ("Palmar-plantar erythrodysesthesia syndrome", 3, "4.0", "allowed", "PPE grades 1-3 (study: grade 3)"),
    ("Palmar-plantar erythrodysesthesia syndrome", 4, "4.03", "not_allowed", "PPE grade 4 is '-'"),
    ("palmar-plantar erythrodysesthesia syndrome ", 2, "5.0", "allowed", "PPE grades 1-3; case-insensitive"),
    ("Rash maculo-papular", 3, "4.03", "allowed", "Rash maculo-papular grades 1-3"),
    ("Rash maculo-papular", 4, "5.0", "not_allowed", "Rash maculo-papular grade 4 is '-'"),
    ("Alanine aminotransferase increased", 1, "4.0", "allowed", "ALT grades 1-4 (study 3.3: grade 1)"),
    ("Alanine aminotransferase increased", 5, "5.0", "not_allowed", "ALT grade 5 is '-'"),
    ("Neutrophil count decreased", 4, "4.0", "allowed", "Neutrophil count decreased grades 1-4"),
    ("Febrile neutropenia", 2, "4.03", "not_allowed", "Febrile neutropenia grades 3-5; 1-2 are '-'"),
    ("Febrile neutropenia", 5, "5.0", "allowed", "Febrile neutropenia grade 5: death"),
    ("Hyponatremia", 2, "4.03", "not_allowed", "v4.03 Hyponatremia grade 2 is '-'"),
    ("Hyponatremia", 2, "5.0", "allowed", "v5.0 Hyponatremia grade 2: 125-129 mmol/L and asymptomatic"),
    ("Headache", 2, "4.0", "term_not_listed", "term not in the table of defined grades"),
    ("Anemia", 2, "7.0", "version_unknown", "no CTCAE v7.0"),
    ("Anemia", 5, "6.0", "allowed", "v6.0 Anemia grade 5: death"),
    ("Thrombocytopenia", 5, "6.0", "not_allowed", "v6.0 Thrombocytopenia grade 5 is '-'"),
    ("thrombocytopenia", 4, "6.0", "allowed", "v6.0 Thrombocytopenia grades 1-4; case-insensitive"),
    ("Platelet count decreased", 2, "6.0", "term_not_listed", "v6.0 renamed it Thrombocytopenia"),
    ("Alanine aminotransferase increased", 4, "6.0", "allowed", "v6.0 ALT grades 1-4"),
    ("Alanine aminotransferase increased", 5, "6.0", "not_allowed", "v6.0 ALT grade 5 is '-'"),
    ("Hyponatremia", 2, "6.0", "allowed", "v6.0 Hyponatremia grade 2: 125-<130 mmol/L and asymptomatic"),
    ("Neutrophil count decreased", 0, "6.0", "not_allowed", "grade 0 is not a CTCAE grade"),
    ("Febrile neutropenia", 3, "6.0", "term_not_listed", "v6.0 table: laboratory terms only"),
    ("Anemia", None, "5.0", "not_evaluable", "no grade reported"),
]


def _on_duckdb(df: pd.DataFrame):
    return ibis.duckdb.connect(), ibis.memtable(df)


@pytest.mark.parametrize("backend", [_on_duckdb, _on_sqlite, _on_polars], ids=["duckdb", "sqlite", "polars"])
def test_check_reported_grades(backend):
    ae = pd.DataFrame(REPORTED, columns=["term", "grade", "ctcae_version", "expected", "source"])
    ae["grade"] = ae["grade"].astype("Int64")
    ae.insert(0, "patient_id", [f"P{i}" for i in range(len(ae))])
    con, table = backend(ae.drop(columns=["expected", "source"]))
    out = con.execute(check_reported_grades(table))
    out = out.set_index("patient_id").loc[ae.patient_id]
    for (_, exp), (_, got) in zip(ae.iterrows(), out.iterrows(), strict=True):
        assert got.grade_check == exp.expected, exp.source
        allowed = {"allowed": True, "not_allowed": False}.get(exp.expected)
        assert (None if pd.isna(got.grade_allowed) else bool(got.grade_allowed)) == allowed, exp.source
    ppe = out.iloc[0]
    assert ppe.ctcae_version_used == "4.03" and ppe.allowed_grades == "1,2,3"
    assert "Palmar-plantar erythrodysesthesia syndrome" in ppe.grade_check_reason
    assert out.iloc[4].grade == 4  # the reported grade is kept as reported


def test_compiled_sql_stays_small():
    """Derived columns reference the compiled rule columns by name, never copies of their CASE trees."""
    ae = ibis.table({"patient_id": "string", "term": "string", "grade": "int64", "ctcae_version": "string"})
    assert len(ibis.to_sql(check_reported_grades(ae), dialect="duckdb")) < 200_000
    t = ibis.memtable(_assessments())
    assert len(ibis.to_sql(grade_assessments(t, version="5.0"), dialect="duckdb")) < 400_000


def test_reported_grade_v6_lists_the_laboratory_terms_of_v5():
    """The v6.0 table (from the v6.0 texts) has every laboratory term of the v5.0 table, under its
    v6.0 name, each rule citing CTCAE v6.0; v5.0's non-laboratory terms are not (no v6.0 source)."""
    def terms(version):
        rules = load_rules(ctcae.RULE_FILES[version])[("reported_grade", version)].rules
        out = {}
        for r in rules:
            for clause in r.clauses:
                for cond in clause:
                    if cond.variable == "term" and cond.op == "in":
                        out[str(cond.value)] = r.source
        return out
    v5, v6 = terms("5.0"), terms("6.0")
    lab_v5 = {t for t in v5 if ctcae._norm(t) in {s.key for s in ctcae.LAB_TERMS} | {
        ctcae._norm(s.term) for s in ctcae.LAB_TERMS}}
    assert len(lab_v5) == 14
    assert set(v6) == (lab_v5 - {"platelet count decreased"}) | {"thrombocytopenia"}
    assert all(src.startswith("CTCAE v6.0 ") for src in v6.values())
    assert v6["thrombocytopenia"].endswith("grade 5 is '-'") and v6["anemia"].endswith("grades 1-5")
