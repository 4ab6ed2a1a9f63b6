"""Write the CTCAE laboratory rules added for issue 10 into ``src/amlcohort/rules/ctcae_*.csv``.

The rule files are the source of truth the engine reads; this script is how their newer rows
were written (a compact notation expanded to one CSV row per condition), kept so a reviewer can
see every criterion next to the CTCAE text it encodes. Each criterion was written from the NCI
CTCAE text (v4.03 14 June 2010, v5.0 27 November 2017, v6.0 2025), quoted in ``source``.

Run: ``python scripts/build_ctcae_rules.py`` (idempotent: rows of the keys it writes are replaced).

Notation of a condition: ``<variable><op><rhs>`` with op in ``> >= < <= ==``; rhs a number, a
variable (``uln``), or ``<factor>*<variable>`` (``2.5*uln``). ``x!`` = not null, ``x?`` = null,
``x+`` = true (symptomatic+, on_anticoagulation+). A rule is ``(suffix, grade, clauses, text)``;
clauses are alternatives, each a list of conditions that must all hold.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "src" / "amlcohort" / "rules"
HEADER = ("ruleset", "version", "rule_id", "outcome", "priority", "clause", "variable", "op", "value", "ref",
          "factor", "source", "note")

Rule = tuple[str, int | str, list[list[str]], str]


def up(t: list[float], ref: str = "uln") -> list[Rule]:
    """Grades 1.. by '> f x ULN' factors (f=1 first)."""
    out: list[Rule] = []
    for g, f in sorted(enumerate(t, start=1), reverse=True):
        fac = ref if f == 1 else f"{f:g}*{ref}"
        out.append((f"g{g}", g, [[f"value>{fac}"]], ""))
    return out


def low_literal(lims: list[float | None], lln_first: bool = True) -> list[Rule]:
    """Grade 1 < LLN, grades 2.. < literal values (None = grade not defined)."""
    out: list[Rule] = []
    for g in range(len(lims) + 1, 1, -1):
        x = lims[g - 2]
        if x is not None:
            out.append((f"g{g}", g, [[f"value<{x:g}"]], ""))
    if lln_first:
        out.append(("g1", 1, [["value<lln"]], ""))
    return out


def high_literal(lims: list[float | None]) -> list[Rule]:
    out: list[Rule] = []
    for g in range(len(lims) + 1, 1, -1):
        x = lims[g - 2]
        if x is not None:
            out.append((f"g{g}", g, [[f"value>{x:g}"]], ""))
    out.append(("g1", 1, [["value>uln"]], ""))
    return out


def baseline_split(normal: list[float], abnormal: list[tuple[str, float]]) -> list[Rule]:
    """v5/v6 liver terms: x ULN if baseline normal (or not given), x baseline if baseline > ULN."""
    out: list[Rule] = []
    for g in (4, 3, 2, 1):
        f = normal[g - 1]
        fac = "uln" if f == 1 else f"{f:g}*uln"
        op, bf = abnormal[g - 1]
        out.append((f"g{g}.baseline_normal", g, [["baseline!", "baseline<=uln", f"value>{fac}"]], ""))
        out.append((f"g{g}.baseline_not_given", g, [["baseline?", f"value>{fac}"]],
                    " (baseline not given: taken as normal)"))
        out.append((f"g{g}.baseline_abnormal", g, [["baseline!", "baseline>uln", f"value{op}{bf:g}*baseline"]],
                    ""))
    return out


def sympt(split: list[tuple[int, list[str], bool]]) -> list[Rule]:
    """Rules whose grade depends on symptoms: (grade, conditions, needs symptomatic)."""
    out: list[Rule] = []
    for i, (g, conds, needs) in enumerate(split):
        extra = ["symptomatic!", "symptomatic+"] if needs else []
        out.append((f"g{g}.{'symptomatic' if needs else 'r' + str(i)}", g, [conds + extra], ""))
    return out


# key -> term, {version: rules}
T: dict[str, tuple[str, dict[str, list[Rule]]]] = {}


def term(key: str, name: str, **versions: list[Rule]) -> None:
    T[key] = (name, {v.replace("v", "").replace("_", "."): r for v, r in versions.items()})


V = ("v4_03", "v5_0", "v6_0")


def all3(rules: list[Rule]) -> dict[str, list[Rule]]:
    return dict.fromkeys(V, rules)


term("leukocytosis", "Leukocytosis", **all3([("g3", 3, [["value>100"]], "")]))
term("aptt_prolonged", "Activated partial thromboplastin time prolonged", **all3(up([1, 1.5, 2.5])))
term("alkaline_phosphatase_increased", "Alkaline phosphatase increased",
     v4_03=up([1, 2.5, 5, 20]),
     v5_0=baseline_split([1, 2.5, 5, 20], [(">=", 2.0), (">", 2.5), (">", 5), (">", 20)]),
     v6_0=[("g1", 1, [["value>baseline", "value>uln"]], "")])
term("cd4_lymphocytes_decreased", "CD4 lymphocytes decreased", **all3(low_literal([0.5, 0.2, 0.05])))
term("cholesterol_high", "Cholesterol high", **all3(high_literal([7.75, 10.34, 12.92])))
term("cpk_increased", "CPK increased", v4_03=up([1, 2.5, 5, 10]), v5_0=up([1, 2.5, 5, 10]))
# Fibrinogen: the LLN and the change-from-baseline alternatives are each sufficient; an alternative
# whose input is not given is not met (as admiral); v4.03 then needs both to call grade 0.
_fib = [("g4", 4, [["lln!", "value<0.25*lln"], ["pchg!", "pchg<=-75"], ["value<0.5"]], ""),
        ("g3", 3, [["lln!", "value<0.5*lln"], ["pchg!", "pchg<=-50"]], ""),
        ("g2", 2, [["lln!", "value<0.75*lln"], ["pchg!", "pchg<=-25"]], ""),
        ("g1", 1, [["lln!", "value<lln"], ["pchg!", "pchg<0"]], ""),
        ("undetermined", "undefined", [["lln?"], ["pchg?"]],
         " (not below the LLN nor decreased from baseline as far as known; LLN or change from baseline not given)")]
_fib5 = [("g4", 4, [["value<0.5"], ["value<0.25*lln"], ["value<lln", "pchg!", "pchg<=-75"]], ""),
         ("g3", 3, [["value<0.5*lln"], ["value<lln", "pchg!", "pchg<=-50"]], ""),
         ("g2", 2, [["value<0.75*lln"], ["value<lln", "pchg!", "pchg<=-25"]], ""),
         ("g1", 1, [["value<lln"]], "")]
term("fibrinogen_decreased", "Fibrinogen decreased", v4_03=_fib, v5_0=_fib5, v6_0=_fib5)
term("ggt_increased", "GGT increased", v4_03=up([1, 2.5, 5, 20]),
     v5_0=baseline_split([1, 2.5, 5, 20], [(">=", 2.0), (">", 2.5), (">", 5), (">", 20)]),
     v6_0=baseline_split([1, 2.5, 5, 20], [(">=", 1.0), (">", 1.5), (">", 3), (">", 10)]))
term("haptoglobin_decreased", "Haptoglobin decreased", **all3([("g1", 1, [["value<lln"]], "")]))
_hb4 = [(f"g{g}", g, [["baseline!", "baseline>uln", f"excess_baseline>{x:g}"],
                      ["baseline!", "baseline<=uln", f"excess_uln>{x:g}"], ["baseline?", f"excess_uln>{x:g}"]], "")
        for g, x in ((3, 4), (2, 2), (1, 0))]
_hb5 = [(f"g{g}", g, [[f"excess_uln>{x:g}"]], "") for g, x in ((3, 4), (2, 2), (1, 0))]
term("hemoglobin_increased", "Hemoglobin increased", v4_03=_hb4, v5_0=_hb5, v6_0=_hb5)
_inr4 = [(f"g{g}", g, [[f"value>{f}"], ["on_anticoagulation!", "on_anticoagulation+", f"value>{b}"]], "")
         for g, f, b in ((3, "2.5*uln", "2.5*baseline"), (2, "1.5*uln", "1.5*baseline"), (1, "uln", "baseline"))]
_inr5 = [(f"g{g}", g, [[f"value>{f}"], ["on_anticoagulation!", "on_anticoagulation+", f"value>{b}"]], "")
         for g, f, b in ((3, "2.5", "2.5*baseline"), (2, "1.5", "1.5*baseline"), (1, "1.2", "baseline"))]
term("inr_increased", "INR increased", v4_03=_inr4, v5_0=_inr5, v6_0=_inr5)
_panc5 = sympt([(4, ["value>5*uln"], True), (3, ["value>5*uln"], False), (3, ["value>2*uln"], True),
                (2, ["value>1.5*uln"], False), (1, ["value>uln"], False)])
_lip6 = sympt([(4, ["value>5*uln"], True), (3, ["value>5*uln"], False), (3, ["value>3*uln"], True),
               (2, ["value>1.5*uln"], False), (1, ["value>uln"], False)])
term("lipase_increased", "Lipase increased", v4_03=up([1, 1.5, 2, 5]), v5_0=_panc5, v6_0=_lip6)
term("serum_amylase_increased", "Serum amylase increased", v4_03=up([1, 1.5, 2, 5]), v5_0=_panc5, v6_0=_panc5)
term("lymphocyte_count_decreased", "Lymphocyte count decreased", v4_03=low_literal([0.8, 0.5, 0.2]),
     v5_0=low_literal([0.8, 0.5, 0.2]))
term("lymphocyte_count_increased", "Lymphocyte count increased",
     **all3([("g3", 3, [["value>20"]], ""), ("g2", 2, [["value>4"]], "")]))
term("ldh_increased", "Blood lactate dehydrogenase increased", v5_0=up([1]), v6_0=up([1]))
term("hypercalcemia_ionized", "Hypercalcemia (ionized)", **all3(high_literal([1.5, 1.6, 1.8])))
term("hypocalcemia_ionized", "Hypocalcemia (ionized)", **all3(low_literal([1.0, 0.9, 0.8])))
term("hyperglycemia", "Hyperglycemia", v4_03=[("g4", 4, [["value>27.8"]], ""), ("g3", 3, [["value>13.9"]], "")],
     v6_0=[("g4", 4, [["value>27.8"]], ""), ("g3", 3, [["value>13.9"]], "")])
term("hyperglycemia_fasting", "Hyperglycemia (fasting)", v4_03=high_literal([8.9, 13.9, 27.8]),
     v6_0=high_literal([8.9, 13.9, 27.8]))
term("hypoglycemia", "Hypoglycemia", **all3(low_literal([3.0, 2.2, 1.7])))
term("hypermagnesemia", "Hypermagnesemia", **all3(high_literal([None, 1.23, 3.30])))  # type: ignore[list-item]
term("hypomagnesemia", "Hypomagnesemia", **all3(low_literal([0.5, 0.4, 0.3])))
term("hypertriglyceridemia", "Hypertriglyceridemia",
     **all3([("g4", 4, [["value>11.4"]], ""), ("g3", 3, [["value>5.7"]], ""), ("g2", 2, [["value>3.42"]], ""),
             ("g1", 1, [["value>1.71"]], "")]))
_uric = sympt([(3, ["value>uln"], True), (1, ["value>uln"], False)])
term("hyperuricemia", "Hyperuricemia", v4_03=[("g4", 4, [["value>590"]], ""), *_uric], v5_0=_uric, v6_0=_uric)
term("hypoalbuminemia", "Hypoalbuminemia", **all3(low_literal([30, 20])))
term("hypophosphatemia", "Hypophosphatemia", v4_03=low_literal([0.8, 0.6, 0.3]))
term("acidosis", "Acidosis", **all3([("g3", 3, [["value<7.3"]], ""), ("g1", 1, [["value<lln"]], "")]))
term("alkalosis", "Alkalosis", **all3([("g3", 3, [["value>7.5"]], ""), ("g1", 1, [["value>uln"]], "")]))
# CTCAE v6.0 only
term("hdl_decreased", "HDL decreased", v6_0=[("g1", 1, [["value<lln"]], "")])
term("ldl_increased", "LDL increased", v6_0=[("g1", 1, [["value>uln"]], "")])
term("creatinine_clearance_decreased", "Creatinine clearance decreased",
     v6_0=[("undefined", "undefined", [["value<10"]], " defined below 10 mL/min"),
           ("g3", 3, [["value<26"]], ""), ("g2", 2, [["value<50"]], "")])
# v6.0 rule sets of the terms v4.03/v5.0 already had (hand-written rows in those files)
term("anemia", "Anemia", v6_0=low_literal([10.0, 8.0]))
term("neutrophil_count_decreased", "Neutrophil count decreased",
     v6_0=[*low_literal([1.0, 0.5, 0.1], False), ("g1", 1, [["value<1.5"]], "")])
term("platelet_count_decreased", "Thrombocytopenia", v6_0=low_literal([75, 50, 10]))
term("white_blood_cell_decreased", "White blood cell decreased", v6_0=low_literal([3.0, 2.0, 1.0]))
term("alt_increased", "Alanine aminotransferase increased",
     v6_0=baseline_split([1, 3, 5, 20], [(">=", 1.0), (">", 1.5), (">", 2.0), (">", 4.0)]))
term("ast_increased", "Aspartate aminotransferase increased",
     v6_0=baseline_split([1, 3, 5, 20], [(">=", 1.0), (">", 1.5), (">", 2.0), (">", 4.0)]))
term("blood_bilirubin_increased", "Blood bilirubin increased",
     v6_0=baseline_split([1, 1.5, 3, 10], [(">=", 1.0), (">", 1.5), (">", 2.5), (">", 10)]))
term("creatinine_increased", "Creatinine increased", v6_0=[
    ("g4", 4, [["value>6*uln"]], ""),
    ("g3", 3, [["value>3*uln"], ["baseline_below_lln!", "baseline_below_lln+", "value>3*baseline"]], ""),
    ("g2", 2, [["value>1.5*uln"], ["baseline_below_lln!", "baseline_below_lln+", "value>1.5*baseline"]], ""),
    ("g1", 1, [["value>uln"]], "")])
term("hypokalemia", "Hypokalemia", v6_0=[("g4", 4, [["value<2.5"]], ""), ("g3", 3, [["value<3.0"]], ""),
                                         *sympt([(2, ["value<lln"], True), (1, ["value<lln"], False)])])
term("hyponatremia", "Hyponatremia", v6_0=[("g4", 4, [["value<120"]], ""), ("g3", 3, [["value<125"]], ""),
                                           *sympt([(3, ["value<130"], True), (2, ["value<130"], False)]),
                                           ("g1", 1, [["value<lln"]], "")])
term("hypocalcemia", "Hypocalcemia", v6_0=low_literal([2.0, 1.75, 1.5]))
term("hyperkalemia", "Hyperkalemia", v6_0=high_literal([5.5, 6.0, 7.0]))
term("hypernatremia", "Hypernatremia", v6_0=high_literal([150, 155, 160]))
term("hypercalcemia", "Hypercalcemia", v6_0=high_literal([2.9, 3.1, 3.4]))

# ---- conventional units ------------------------------------------------------------------------
# Where CTCAE states a criterion in conventional units too (mg/dL) and the two numbers are not the
# same quantity (300 mg/dL cholesterol = 7.758 mmol/L, CTCAE says 7.75), a value reported in mg/dL
# is graded against the mg/dL numbers CTCAE prints: rule set ``<key>@mg/dL`` (see ctcae.grade).
# Not for ionized calcium (CTCAE gives mmol/L only: mg/dL values are converted).
CV: dict[str, tuple[str, dict[str, list[Rule]]]] = {}


def conventional(key: str, name: str, unit: str, **versions: list[Rule]) -> None:
    CV[f"{key}@{unit}"] = (name, {v.replace("v", "").replace("_", "."): r for v, r in versions.items()})


conventional("cholesterol_high", "Cholesterol high", "mg/dL", **all3(high_literal([300, 400, 500])))
conventional("hypercalcemia", "Hypercalcemia", "mg/dL", **all3(high_literal([11.5, 12.5, 13.5])))
conventional("hypocalcemia", "Hypocalcemia", "mg/dL", **all3(low_literal([8.0, 7.0, 6.0])))
conventional("hyperglycemia_fasting", "Hyperglycemia (fasting)", "mg/dL",
             v4_03=high_literal([160, 250, 500]), v6_0=high_literal([160, 250, 500]))
conventional("hyperglycemia", "Hyperglycemia", "mg/dL",
             v4_03=[("g4", 4, [["value>500"]], ""), ("g3", 3, [["value>250"]], "")],
             v6_0=[("g4", 4, [["value>500"]], ""), ("g3", 3, [["value>250"]], "")])
conventional("hypoglycemia", "Hypoglycemia", "mg/dL", **all3(low_literal([55, 40, 30])))
conventional("hypermagnesemia", "Hypermagnesemia", "mg/dL",
             **all3(high_literal([None, 3.0, 8.0])))  # type: ignore[list-item]
conventional("hypomagnesemia", "Hypomagnesemia", "mg/dL", **all3(low_literal([1.2, 0.9, 0.7])))
conventional("hypertriglyceridemia", "Hypertriglyceridemia", "mg/dL",
             **all3([("g4", 4, [["value>1000"]], ""), ("g3", 3, [["value>500"]], ""), ("g2", 2, [["value>300"]], ""),
                     ("g1", 1, [["value>150"]], "")]))
conventional("hyperuricemia", "Hyperuricemia", "mg/dL", v4_03=[("g4", 4, [["value>10"]], ""), *_uric])
conventional("hypophosphatemia", "Hypophosphatemia", "mg/dL", v4_03=low_literal([2.5, 2.0, 1.0]))

# ---- the reported-grade check of CTCAE v6.0 (laboratory terms) -----------------------------------
# term key -> CTCAE v6.0 term; the grades each defines are read from the v6.0 texts ('-' = not
# defined). v6.0 renamed "Platelet count decreased" to "Thrombocytopenia". The non-laboratory terms
# of the v4.03/v5.0 tables (rash, PPE, febrile neutropenia, ...) have no v6.0 source at hand here.
REPORTED_V6 = [("alt_increased", "Alanine aminotransferase increased"),
               ("ast_increased", "Aspartate aminotransferase increased"),
               ("blood_bilirubin_increased", "Blood bilirubin increased"),
               ("creatinine_increased", "Creatinine increased"),
               ("neutrophil_count_decreased", "Neutrophil count decreased"),
               ("thrombocytopenia", "Thrombocytopenia"),
               ("white_blood_cell_decreased", "White blood cell decreased"),
               ("anemia", "Anemia"), ("hypokalemia", "Hypokalemia"), ("hyponatremia", "Hyponatremia"),
               ("hypocalcemia", "Hypocalcemia"), ("hyperkalemia", "Hyperkalemia"),
               ("hypernatremia", "Hypernatremia"), ("hypercalcemia", "Hypercalcemia")]


def _grades_text(version: str, name: str, allowed: list[int]) -> str:
    missing = [g for g in range(1, 6) if g not in allowed]
    head = f"CTCAE v{version} {name}: grades {allowed[0]}-{allowed[-1]}"
    if not missing:
        return head
    listed = ", ".join(str(g) for g in missing[:-1]) + (" and " if len(missing) > 1 else "") + str(missing[-1])
    return f"{head}; grade{'s' if len(missing) > 1 else ''} {listed} {'are' if len(missing) > 1 else 'is'} '-'"


def reported_rows(version: str, grades: dict[str, dict[int, str]]) -> list[dict[str, str]]:
    """``reported_grade`` rows: per term, the grades whose CTCAE text is not '-'."""
    out: list[dict[str, str]] = []
    prio = 0
    for key, name in REPORTED_V6:
        texts = grades[name.lower()]
        allowed = [g for g in range(1, 6) if (texts.get(g) or "-").strip() != "-"]
        source = _grades_text(version, name, allowed)
        prio += 10
        for rid, outcome, conds in ((f"{key}.allowed", "allowed", [("term", name.lower()),
                                                                    ("grade", "|".join(map(str, allowed)))]),
                                    (f"{key}.not_allowed", "not_allowed", [("term", name.lower())])):
            for i, (var, val) in enumerate(conds):
                row = dict.fromkeys(HEADER, "")
                row.update(ruleset="reported_grade", version=version, rule_id=rid, outcome=outcome,
                           priority=str(prio), clause="1", variable=var, op="in", value=val, source=source)
                if i == 0 and prio == 10 and outcome == "allowed":
                    row["note"] = "term is compared lower-cased and trimmed"
                out.append(row)
            prio += 10 if outcome == "allowed" else 0
    row = dict.fromkeys(HEADER, "")
    row.update(ruleset="reported_grade", version=version, rule_id="term_not_listed", outcome="term_not_listed",
               priority=str(prio + 10), clause="1", variable="term", op="not_null",
               source=f"CTCAE v{version}: term not in amlcohort's table of defined grades",
               note="Only the terms listed here are checked; others are reported as term_not_listed, not as errors.")
    return [*out, row]


_COND = re.compile(r"^([a-z_]+)(>=|<=|>|<|==)(-?[0-9.]+\*)?([a-z_]+|-?[0-9.]+)$")


def rows_for(key: str, name: str, version: str, rules: list[Rule], texts: dict[int, str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    prio = 0
    for suffix, grade, clauses, note in [*rules, ("g0", 0, [["value!"]], "")]:
        prio += 10
        rid = f"{key}.{suffix}"
        if grade == 0:
            source = f"CTCAE v{version} {name}: no grade-1 criterion met (grade 0)"
        elif grade == "undefined":
            source = f"CTCAE v{version} {name}: no grade{note}"
        else:
            source = f"CTCAE v{version} {name} grade {grade}: {texts.get(int(grade), '')}{note}"
        for ci, clause in enumerate(clauses, start=1):
            for cond in clause:
                row = dict.fromkeys(HEADER, "")
                row.update(ruleset=key, version=version, rule_id=rid, outcome=str(grade), priority=str(prio),
                           clause=str(ci), source=source)
                if cond.endswith("!"):
                    row.update(variable=cond[:-1], op="not_null")
                elif cond.endswith("?"):
                    row.update(variable=cond[:-1], op="is_null")
                elif cond.endswith("+"):
                    row.update(variable=cond[:-1], op="is_true")
                else:
                    m = _COND.match(cond)
                    assert m, cond
                    var, op, factor, rhs = m.groups()
                    row.update(variable=var, op=op)
                    if re.fullmatch(r"-?[0-9.]+", rhs):
                        row["value"] = rhs
                    else:
                        row.update(ref=rhs, factor=(factor or "").rstrip("*"))
                out.append(row)
    return out


def main() -> None:
    import json
    import sys
    texts: dict[tuple[str, str], dict[int, str]] = {}
    cv_texts: dict[tuple[str, str], dict[int, str]] = {}
    grades_v6: dict[str, dict[int, str]] = {}
    # optional: the CTCAE grade texts, as published (NCI), from JSON lists of {TERM, GRADE_1..4}:
    # SI files for v4.03, v5.0, v6.0, then the conventional-unit files (admiral's data-raw/adlb_grading)
    for i, (version, path) in enumerate(zip(("4.03", "5.0", "6.0") * 2, sys.argv[1:7], strict=False)):
        for t in json.loads(Path(path).read_text()):
            (texts if i < 3 else cv_texts)[(version, t["TERM"].lower())] = {
                g: t.get(f"GRADE_{g}") or "" for g in (1, 2, 3, 4)}
            if i == 2:
                grades_v6[t["TERM"].lower()] = {g: t.get(f"GRADE_{g}") or "" for g in (1, 2, 3, 4, 5)}
    files = {"4.03": "ctcae_4.03.csv", "5.0": "ctcae_5.0.csv", "6.0": "ctcae_6.0.csv"}
    for version, filename in files.items():
        path = RULES / filename
        keep: list[dict[str, str]] = []
        if path.exists():
            keep = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        written = {k for k, (_, vs) in (T | CV).items() if version in vs}
        keep = [r for r in keep if r["ruleset"] not in written or r["ruleset"] == "reported_grade"]
        if version == "6.0" and grades_v6:  # written from the v6.0 texts, replacing earlier rows
            keep = [r for r in keep if r["ruleset"] != "reported_grade"] + reported_rows(version, grades_v6)
        new: list[dict[str, str]] = []
        for key, (name, versions) in T.items():
            if version in versions:
                tx = texts.get((version, name.lower()), {}) or texts.get((version, name.lower().replace(
                    " (ionized)", " (Ionized)".lower())), {})
                new += rows_for(key, name, version, versions[version], tx)
        for key, (name, versions) in CV.items():
            if version in versions:
                new += rows_for(key, name, version, versions[version], cv_texts.get((version, name.lower()), {}))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
        w.writeheader()
        w.writerows(keep + new)
        path.write_text(buf.getvalue(), encoding="utf-8")
        print(f"{filename}: {len(keep)} rows kept, {len(new)} written")


if __name__ == "__main__":
    main()
