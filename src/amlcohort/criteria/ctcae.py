"""CTCAE grading of laboratory adverse events (v4.03, v5.0, v6.0), and checks of reported grades.

The thresholds live in ``amlcohort/rules/ctcae_4.03.csv``, ``ctcae_5.0.csv`` and ``ctcae_6.0.csv``
(one rule set per term and version, read by :mod:`amlcohort.criteria.engine`; ``<term>@mg/dL``
where CTCAE prints the criteria in conventional units too); this module only maps data onto the
rule variables and shapes the results:

* :func:`grade` grades one value (``grade("alt_increased", 130, uln=40)``);
* :func:`grade_assessments` grades a whole ``assessments`` table (Ibis, any backend) into a long
  table, one row per patient, assessment date and term; :func:`worst_grade` summarises it;
* :func:`check_reported_grades` checks the grades reported in ``adverse_events`` against the
  grades each CTCAE term defines.

Rule variables: ``value``; ``uln`` or ``lln`` (the reference limit the term is graded against);
``baseline`` (v5.0 liver terms, creatinine); ``symptomatic`` (hypokalemia, v5.0 hyponatremia,
where CTCAE separates two grades by symptoms only). Decisions where CTCAE needs clinical
information are documented in the rule files' ``note`` column and in ``rules/README.md``.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Literal

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import (
    NOT_EVALUABLE,
    RuleSet,
    apply_rules,
    decided_by,
    decision_outputs,
    evaluate_fast,
    load_rules,
    ruleset,
    with_decision,
)

# ---- versions -----------------------------------------------------------------------------------

RULE_FILES: dict[str, str] = {"4.03": "ctcae_4.03.csv", "5.0": "ctcae_5.0.csv", "6.0": "ctcae_6.0.csv"}
# the reported-grade check (term -> allowed grades) exists for these versions
REPORTED_GRADE_FILES: dict[str, str] = dict(RULE_FILES)
UNIT_FILE = "ctcae_units.csv"
CONVENTIONS = ("lab_only", "worst_case")
# CTCAE v4.0 (2009) is graded with the v4.03 tables (2010 corrections release); the model allows
# ``ctcae_version = "4.0"`` and the study reports "v 4.0". See rules/README.md.
VERSION_ALIASES: dict[str, str] = {"4.03": "4.03", "4.0": "4.03", "4": "4.03", "5.0": "5.0", "5": "5.0",
                                   "6.0": "6.0", "6": "6.0"}
GRADES = ("0", "1", "2", "3", "4")


def resolve_version(version: str) -> str:
    """``"4.0"``/``"4.03"`` → ``"4.03"``, ``"5.0"`` → ``"5.0"``; anything else raises ValueError."""
    key = str(version).strip().lower().removeprefix("v")
    try:
        return VERSION_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown CTCAE version {version!r}; known: {sorted(VERSION_ALIASES)} "
                         f"(graded with the rule tables of {sorted(RULE_FILES)})") from None


# ---- terms: the one mapping from the cohort model to the rule variables -------------------------

@dataclass(frozen=True)
class LabTerm:
    """How one CTCAE laboratory term reads the ``assessments`` table."""

    key: str                      # rule set name, e.g. "alt_increased"
    term: str                     # CTCAE term, e.g. "Alanine aminotransferase increased"
    value_column: str             # assessments column graded
    limit: Literal["uln", "lln"]  # the reference limit the term is graded against (direction)
    limit_column: str             # column holding it (may be absent from the model: see README)


LAB_TERMS: tuple[LabTerm, ...] = (
    LabTerm("alt_increased", "Alanine aminotransferase increased", "alt", "uln", "alt_uln"),
    LabTerm("ast_increased", "Aspartate aminotransferase increased", "ast", "uln", "ast_uln"),
    LabTerm("blood_bilirubin_increased", "Blood bilirubin increased", "bilirubin", "uln", "bilirubin_uln"),
    LabTerm("creatinine_increased", "Creatinine increased", "creatinine", "uln", "creatinine_uln"),
    LabTerm("neutrophil_count_decreased", "Neutrophil count decreased", "anc", "lln", "anc_lln"),
    LabTerm("platelet_count_decreased", "Platelet count decreased", "platelets", "lln", "platelets_lln"),
    LabTerm("white_blood_cell_decreased", "White blood cell decreased", "wbc", "lln", "wbc_lln"),
    LabTerm("anemia", "Anemia", "hemoglobin", "lln", "hemoglobin_lln"),
    LabTerm("hypokalemia", "Hypokalemia", "potassium", "lln", "potassium_lln"),
    LabTerm("hyponatremia", "Hyponatremia", "sodium", "lln", "sodium_lln"),
    LabTerm("hypocalcemia", "Hypocalcemia", "calcium", "lln", "calcium_lln"),
    LabTerm("hyperkalemia", "Hyperkalemia", "potassium", "uln", "potassium_uln"),
    LabTerm("hypernatremia", "Hypernatremia", "sodium", "uln", "sodium_uln"),
    LabTerm("hypercalcemia", "Hypercalcemia", "calcium", "uln", "calcium_uln"),
    # issue 10: the other laboratory terms graded by pharmaverse admiral (v4.03, v5.0, v6.0)
    LabTerm("leukocytosis", "Leukocytosis", "wbc", "uln", "wbc_uln"),
    LabTerm("aptt_prolonged", "Activated partial thromboplastin time prolonged", "aptt", "uln", "aptt_uln"),
    LabTerm("alkaline_phosphatase_increased", "Alkaline phosphatase increased", "alp", "uln", "alp_uln"),
    LabTerm("cd4_lymphocytes_decreased", "CD4 lymphocytes decreased", "cd4", "lln", "cd4_lln"),
    LabTerm("cholesterol_high", "Cholesterol high", "cholesterol", "uln", "cholesterol_uln"),
    LabTerm("cpk_increased", "CPK increased", "cpk", "uln", "cpk_uln"),
    LabTerm("fibrinogen_decreased", "Fibrinogen decreased", "fibrinogen", "lln", "fibrinogen_lln"),
    LabTerm("ggt_increased", "GGT increased", "ggt", "uln", "ggt_uln"),
    LabTerm("haptoglobin_decreased", "Haptoglobin decreased", "haptoglobin", "lln", "haptoglobin_lln"),
    LabTerm("hemoglobin_increased", "Hemoglobin increased", "hemoglobin", "uln", "hemoglobin_uln"),
    LabTerm("inr_increased", "INR increased", "inr", "uln", "inr_uln"),
    LabTerm("lipase_increased", "Lipase increased", "lipase", "uln", "lipase_uln"),
    LabTerm("lymphocyte_count_decreased", "Lymphocyte count decreased",
            "lymphocytes", "lln", "lymphocytes_lln"),
    LabTerm("lymphocyte_count_increased", "Lymphocyte count increased",
            "lymphocytes", "uln", "lymphocytes_uln"),
    LabTerm("serum_amylase_increased", "Serum amylase increased", "amylase", "uln", "amylase_uln"),
    LabTerm("ldh_increased", "Blood lactate dehydrogenase increased", "ldh", "uln", "ldh_uln"),
    LabTerm("hypercalcemia_ionized", "Hypercalcemia (ionized)",
            "ionized_calcium", "uln", "ionized_calcium_uln"),
    LabTerm("hypocalcemia_ionized", "Hypocalcemia (ionized)",
            "ionized_calcium", "lln", "ionized_calcium_lln"),
    LabTerm("hyperglycemia", "Hyperglycemia", "glucose", "uln", "glucose_uln"),
    LabTerm("hyperglycemia_fasting", "Hyperglycemia (fasting)",
            "fasting_glucose", "uln", "fasting_glucose_uln"),
    LabTerm("hypoglycemia", "Hypoglycemia", "glucose", "lln", "glucose_lln"),
    LabTerm("hypermagnesemia", "Hypermagnesemia", "magnesium", "uln", "magnesium_uln"),
    LabTerm("hypomagnesemia", "Hypomagnesemia", "magnesium", "lln", "magnesium_lln"),
    LabTerm("hypertriglyceridemia", "Hypertriglyceridemia", "triglycerides", "uln", "triglycerides_uln"),
    LabTerm("hyperuricemia", "Hyperuricemia", "uric_acid", "uln", "uric_acid_uln"),
    LabTerm("hypoalbuminemia", "Hypoalbuminemia", "albumin", "lln", "albumin_lln"),
    LabTerm("hypophosphatemia", "Hypophosphatemia", "phosphate", "lln", "phosphate_lln"),
    LabTerm("acidosis", "Acidosis", "ph", "lln", "ph_lln"),
    LabTerm("alkalosis", "Alkalosis", "ph", "uln", "ph_uln"),
    LabTerm("hdl_decreased", "HDL decreased", "hdl", "lln", "hdl_lln"),
    LabTerm("ldl_increased", "LDL increased", "ldl", "uln", "ldl_uln"),
    LabTerm("creatinine_clearance_decreased", "Creatinine clearance decreased", "creatinine_clearance", "lln",
            "creatinine_clearance_lln"),
)
# other names of a term (CTCAE v6.0 renamed platelet count decreased)
TERM_ALIASES: dict[str, str] = {"thrombocytopenia": "platelet_count_decreased",
                                "blood_lactate_dehydrogenase_increased": "ldh_increased",
                                "activated_partial_thromboplastin_time_prolonged": "aptt_prolonged"}
# clinical facts a grade may need, beyond the laboratory value (see rules/README.md)
CLINICAL_INPUTS = ("symptomatic", "on_anticoagulation")
_BY_KEY: dict[str, LabTerm] = {t.key: t for t in LAB_TERMS}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


_LOOKUP: dict[str, LabTerm] = {**{_norm(t.term): t for t in LAB_TERMS}, **{t.key: t for t in LAB_TERMS},
                               **{a: _BY_KEY[k] for a, k in TERM_ALIASES.items()}}


def lab_term(term: str) -> LabTerm:
    """The lab term for a CTCAE term ("Alanine aminotransferase increased") or key ("alt_increased")."""
    try:
        return _LOOKUP[_norm(term)]
    except KeyError:
        known = ", ".join(f"{t.key} ({t.term})" for t in LAB_TERMS)
        raise ValueError(f"unknown CTCAE laboratory term {term!r}; known: {known}") from None


def terms_of(version: str) -> tuple[LabTerm, ...]:
    """The laboratory terms CTCAE ``version`` grades (those with a rule set in its file)."""
    v = resolve_version(version)
    book = load_rules(RULE_FILES[v])
    return tuple(t for t in LAB_TERMS if (t.key, v) in book)


def rules_for(term: str, version: str = "4.03") -> RuleSet:
    """The rule set grading ``term`` in CTCAE ``version``."""
    v = resolve_version(version)
    return ruleset(RULE_FILES[v], lab_term(term).key, v)


# ---- one value ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grade:
    """A CTCAE grade with what produced it. ``grade`` is None when the value cannot be graded."""

    grade: int | None
    reason: str
    version: str
    term: str
    key: str
    rule_id: str | None = None
    missing: tuple[str, ...] = ()

    @property
    def graded(self) -> bool:
        return self.grade is not None

    def __int__(self) -> int:
        if self.grade is None:
            raise ValueError(f"{self.term} (CTCAE v{self.version}) not gradable: {self.reason}")
        return self.grade

    def __str__(self) -> str:
        g = "not gradable" if self.grade is None else f"grade {self.grade}"
        return f"{self.term} (CTCAE v{self.version}): {g}. {self.reason}"


def _bad_number(name: str, x: object, *, positive: bool) -> str | None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return f"{name} must be a number, not {type(x).__name__} {x!r}"
    x = float(x)
    if not math.isfinite(x):
        return f"{name} must be finite, not {x!r}"
    if positive and x <= 0:
        return f"{name} must be > 0, not {x!r}"
    if x < 0:
        return f"{name} must be >= 0, not {x!r}"
    return None


@functools.cache
def units() -> dict[tuple[str, str], tuple[Decimal, str, str]]:
    """(analyte, unit lower-case) -> (factor to the rule unit, rule unit, source): ``ctcae_units.csv``."""
    text = resources.files("amlcohort.rules").joinpath(UNIT_FILE).read_text(encoding="utf-8")
    out: dict[tuple[str, str], tuple[Decimal, str, str]] = {}
    for r in csv.DictReader(io.StringIO(text)):
        key = (r["analyte"].strip(), r["unit"].strip().lower())
        out[key] = (Decimal(r["factor"]), r["rule_unit"].strip(), r["source"])
    return out


@functools.cache
def _unit_spelling() -> dict[tuple[str, str], str]:
    """(analyte, unit lower-case) -> the unit as ``ctcae_units.csv`` spells it (names rule sets)."""
    text = resources.files("amlcohort.rules").joinpath(UNIT_FILE).read_text(encoding="utf-8")
    return {(r["analyte"].strip(), r["unit"].strip().lower()): r["unit"].strip()
            for r in csv.DictReader(io.StringIO(text))}


def conventional_rules(term: str, version: str, unit: str | None) -> RuleSet | None:
    """The rule set grading ``term`` in ``unit`` itself, when CTCAE states its criteria in that unit.

    CTCAE prints some criteria in two units whose numbers are not the same quantity (cholesterol
    >300 mg/dL; >7.75 mmol/L, but 300 mg/dL = 7.758 mmol/L). A value reported in mg/dL is then
    graded against the mg/dL numbers (rule set ``<key>@mg/dL`` of the version's rule file), not
    converted; None when there is no such rule set (the value is converted to the rule unit).
    """
    if unit is None:
        return None
    spec = lab_term(term)
    spelled = _unit_spelling().get((spec.value_column, unit.strip().lower()))
    if spelled is None:
        return None
    v = resolve_version(version)
    try:
        return ruleset(RULE_FILES[v], f"{spec.key}@{spelled}", v)
    except KeyError:
        return None


def convert(analyte: str, x: float | None, unit: str | None) -> float | Decimal | None:
    """``x`` in ``unit`` to the unit the rules of ``analyte`` use (exact decimal factor; see units())."""
    if x is None or unit is None:
        return x
    try:
        factor, _, _ = units()[(analyte, unit.strip().lower())]
    except KeyError:
        known = sorted(u for a, u in units() if a == analyte)
        raise ValueError(f"unit {unit!r} not known for {analyte}; known: {known}") from None
    return Decimal(repr(float(x))) * factor


def _derived_inputs(variables: tuple[str, ...], value: object, limit: object,
                    baseline: object) -> dict[str, object]:
    """Inputs computed from value, limit and baseline, exactly in decimal (None when an input is)."""
    def d(x: object) -> Decimal | None:
        return None if x is None else (x if isinstance(x, Decimal) else Decimal(repr(float(x))))  # type: ignore[arg-type]
    v, lim, b = d(value), d(limit), d(baseline)
    out: dict[str, object] = {}
    if "excess_uln" in variables:
        out["excess_uln"] = None if v is None or lim is None else v - lim
    if "excess_baseline" in variables:
        out["excess_baseline"] = None if v is None or b is None else v - b
    if "pchg" in variables:
        out["pchg"] = None if v is None or b is None or b == 0 else (v - b) / b * 100
    return out


def grade(term: str, value: float | None, *, uln: float | None = None, lln: float | None = None,
          baseline: float | None = None, symptomatic: bool | None = None,
          on_anticoagulation: bool | None = None, version: str = "4.03", unit: str | None = None,
          convention: str = "lab_only", percent_change: float | None = None,
          baseline_below_lln: bool | None = None) -> Grade:
    """Grade one laboratory value in CTCAE ``version`` (``"4.03"``, ``"4.0"`` = 4.03, ``"5.0"``, ``"6.0"``).

    Values are in the rule unit of the term (``rules/ctcae_units.csv``: counts x10^9/L, haemoglobin
    g/dL, electrolytes and glucose mmol/L, bilirubin, creatinine and uric acid umol/L, albumin and
    fibrinogen g/L), or in ``unit`` (e.g. ``"mg/dL"``), converted with the exact factor of the unit
    file, or, where CTCAE prints the criteria in that unit too (calcium, glucose, magnesium,
    phosphate, cholesterol, triglycerides, uric acid in mg/dL), graded against CTCAE's numbers in
    that unit (:func:`conventional_rules`); ``uln``/``lln``/``baseline`` are in the same unit as
    ``value``.

    ``percent_change`` (change from baseline, %) may be given instead of computed from ``baseline``
    (fibrinogen decreased); ``baseline_below_lln`` (v6.0 creatinine: the x baseline criteria apply
    when the baseline was below the LLN). Clinical facts CTCAE grades need besides the value: ``symptomatic``
    (hypokalemia, v5.0/v6.0 hyponatremia, hyperuricemia, v5.0/v6.0 lipase and amylase) and
    ``on_anticoagulation`` (INR x
    baseline). ``convention="lab_only"`` (default) grades what the value proves when a fact is not
    given; ``convention="worst_case"`` takes a fact not given as present, as pharmaverse admiral's
    ``derive_var_atoxgr_dir`` grades (see rules/README.md). Missing inputs give ``grade=None`` and
    name what is missing; a wrong input gives ``grade=None`` and says why. Cached and SQL-free: a
    call after the first takes well under a millisecond.
    """
    spec = lab_term(term)
    v = resolve_version(version)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    try:
        rules = ruleset(RULE_FILES[v], spec.key, v)
    except KeyError:
        raise ValueError(f"{spec.term} is not a laboratory term of CTCAE v{v}") from None
    other = "lln" if spec.limit == "uln" else "uln"
    if (uln if other == "uln" else lln) is not None:
        raise ValueError(f"{spec.term} is graded against the {spec.limit.upper()} ({spec.limit}=), "
                         f"not the {other.upper()} ({other}=)")
    limit = uln if spec.limit == "uln" else lln

    def out(g: int | None, reason: str, rule_id: str | None = None, missing: tuple[str, ...] = ()) -> Grade:
        return Grade(g, reason, v, spec.term, spec.key, rule_id, missing)

    problems = [p for p in (
        None if value is None else _bad_number("value", value, positive=False),
        None if limit is None else _bad_number(spec.limit, limit, positive=True),
        None if baseline is None else _bad_number("baseline", baseline, positive=False),
    ) if p]
    for name, given in (("symptomatic", symptomatic), ("on_anticoagulation", on_anticoagulation),
                        ("baseline_below_lln", baseline_below_lln)):
        if given is not None and not isinstance(given, bool):
            problems.append(f"{name} must be True, False or None, not {given!r}")
    if problems:
        return out(None, "wrong input: " + "; ".join(problems))
    in_unit = conventional_rules(spec.key, v, unit)
    if in_unit is not None:  # CTCAE's own criteria in this unit: no conversion
        rules, unit = in_unit, None
    try:
        cv, cl, cb = (convert(spec.value_column, x, unit) for x in (value, limit, baseline))
    except ValueError as e:
        return out(None, f"wrong input: {e}")

    notes: list[str] = []
    facts = {"symptomatic": symptomatic, "on_anticoagulation": on_anticoagulation}
    values: dict[str, object] = {"value": cv, spec.limit: cl, "baseline_below_lln": baseline_below_lln}
    values.update(_derived_inputs(rules.variables, cv, cl, cb))
    if percent_change is not None and "pchg" in rules.variables:
        values["pchg"] = percent_change  # given change from baseline (%), e.g. admiral's PCHG
    uses_baseline = {"baseline", "excess_baseline", "pchg"} & set(rules.variables)
    for name, given in (("baseline", cb), *facts.items()):
        if name in rules.variables or (name == "baseline" and uses_baseline):
            if given is None and name in facts and convention == "worst_case":
                given = True
                notes.append(f"{name} not given: taken as present (worst-case convention, as admiral)")
            values[name] = given
        elif given is not None:
            notes.append(f"{name} ignored: not a criterion of {spec.term} in CTCAE v{v}")
    values = {k: x for k, x in values.items() if k in rules.variables}
    ev = evaluate_fast(rules, values)
    if ev.outcome == NOT_EVALUABLE:
        reason = f"{', '.join(ev.missing)} not given; rule {ev.rule_id} needs it [{ev.source}]"
        return out(None, _join(reason, notes), ev.rule_id, ev.missing)
    if ev.outcome not in GRADES:
        why = ev.source or f"no rule applies ({ev.outcome!r})"
        return out(None, _join(why, notes), ev.rule_id)
    for name, given in facts.items():
        if name in rules.variables and given is None and convention == "lab_only":
            notes.append(f"{name} not given: graded on the laboratory value alone")
    return out(int(ev.outcome), _join(f"{ev.source} (rule {ev.rule_id}: {ev.criterion})", notes), ev.rule_id)


def _join(reason: str, notes: list[str]) -> str:
    return reason if not notes else f"{reason}; " + "; ".join(notes)


# ---- a whole assessments table -------------------------------------------------------------------

def _baseline_table(table: ir.Table, column: str) -> ir.Table:
    """Per patient: the last non-missing ``column`` value before the first dose (study day < 1)."""
    pre = table.filter(table.assessment_study_day < 1, table[column].notnull())
    last = pre.group_by(bl_patient_id=pre.patient_id).aggregate(bl_date=pre.assessment_date.max())
    joined = pre.join(last, [pre.patient_id == last.bl_patient_id, pre.assessment_date == last.bl_date])
    return joined.select(bl_patient_id=joined.patient_id, bl_value=joined[column].cast("float64"))


_LIMIT_DERIVED = ("excess_uln",)
_BASELINE_DERIVED = ("baseline", "excess_baseline", "pchg")


def _gradable_without_limit(rules: RuleSet, spec: LabTerm) -> bool:
    """Some grade >0 of ``rules`` is decided without the reference limit (e.g. ANC < 0.5)."""
    needs = {spec.limit, *_LIMIT_DERIVED}
    return any(r.outcome in GRADES[1:] and not (needs & set(r.variables)) for r in rules.rules)


def table_terms(columns: Sequence[str], version: str = "4.03",
                default_limits: Mapping[str, float] | None = None) -> tuple[LabTerm, ...]:
    """The terms :func:`grade_assessments` grades by default for a table with ``columns``.

    A term is graded when CTCAE ``version`` defines it, its value column is present, and either
    its reference limit is available (column or default) or some grade is decided without it.
    """
    v = resolve_version(version)
    book = load_rules(RULE_FILES[v])
    out = []
    for spec in LAB_TERMS:
        if (spec.key, v) not in book or spec.value_column not in columns:
            continue
        has_limit = spec.limit_column in columns or spec.limit_column in (default_limits or {})
        if has_limit or _gradable_without_limit(book[(spec.key, v)], spec):
            out.append(spec)
    return tuple(out)


def grade_assessments(table: ir.Table, *, version: str = "4.03", terms: tuple[str, ...] | None = None,
                      default_limits: Mapping[str, float] | None = None,
                      convention: str = "lab_only") -> ir.Table:
    """Grade every laboratory value of an ``assessments`` table; one row per patient, date and term.

    Columns: ``patient_id``, ``assessment_date`` (``assessment_study_day`` when the input has it),
    ``term``, ``term_key``, ``ctcae_version``, ``value``, ``limit`` (the ULN or LLN used),
    ``limit_kind`` ("ULN"/"LLN"), ``limit_source`` ("data", "default" or NULL), ``baseline``,
    ``grade`` (int64; NULL when not gradable), ``rule_id`` and ``not_graded_reason``.

    Only rows where the term's value is present are graded. Limits come from the table's
    ``<value>_uln``/``<value>_lln`` columns; the model has no LLN for blood counts and haemoglobin
    and no ULN for electrolytes, so a table may carry such columns (``anc_lln``, ``hemoglobin_lln``,
    ``potassium_uln``, ...) or the caller may pass ``default_limits={"anc_lln": 1.8, ...}``
    (used where the row has no limit; marked ``limit_source = "default"``). Nothing else is
    assumed: without a limit, grades that need it are not gradable and say so.

    The baseline (v5.0 liver terms, creatinine in both versions) is each patient's last
    non-missing value before the first dose (``assessment_study_day < 1``, as the model defines
    baseline); without an ``assessment_study_day`` column there is no baseline.
    Clinical facts come from the optional boolean columns ``symptomatic`` and
    ``on_anticoagulation``; where NULL (or the column is absent) ``convention="lab_only"`` grades
    what the value proves and ``"worst_case"`` takes the fact as present (admiral's convention).
    ``terms=None`` grades :func:`table_terms` (the terms the table has the values for).
    """
    v = resolve_version(version)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    specs = (table_terms(table.columns, v, default_limits) if terms is None
             else tuple(lab_term(t) for t in terms))
    book = load_rules(RULE_FILES[v])
    undefined = [s.key for s in specs if (s.key, v) not in book]
    if undefined:
        raise ValueError(f"not laboratory terms of CTCAE v{v}: {undefined}")
    defaults = dict(default_limits or {})
    known_limits = {s.limit_column for s in LAB_TERMS}
    unknown = sorted(set(defaults) - known_limits)
    if unknown:
        raise ValueError(f"default_limits has unknown limit column(s) {unknown}; "
                         f"known: {sorted(known_limits)}")
    for name, x in defaults.items():
        problem = _bad_number(name, x, positive=True)
        if problem:
            raise ValueError(f"default_limits: {problem}")
    needed = {"patient_id", "assessment_date"} | {s.value_column for s in specs}
    absent = sorted(needed - set(table.columns))
    if absent:
        raise KeyError(f"assessments table lacks column(s) {absent}")
    has_day = "assessment_study_day" in table.columns

    parts: list[ir.Table] = []
    for spec in specs:
        rules = ruleset(RULE_FILES[v], spec.key, v)
        t = table.filter(table[spec.value_column].notnull())
        baseline: ir.FloatingValue = ibis.null("float64")
        if set(_BASELINE_DERIVED) & set(rules.variables) and has_day:
            bl = _baseline_table(table, spec.value_column)
            t = t.left_join(bl, t.patient_id == bl.bl_patient_id)
            baseline = t.bl_value
        parts.append(_graded_term(t, spec, rules, baseline, limit_default=defaults.get(spec.limit_column),
                                  has_limit=spec.limit_column in table.columns,
                                  facts={f: f in table.columns for f in CLINICAL_INPUTS},
                                  convention=convention, has_day=has_day, version=v))
    return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)


def _graded_term(t: ir.Table, spec: LabTerm, rules: RuleSet, baseline: ir.FloatingValue, *,
                 limit_default: float | None, has_limit: bool, facts: Mapping[str, bool], convention: str,
                 has_day: bool, version: str) -> ir.Table:
    """The rows of ``t`` (one term's values, with ``baseline``) graded by ``rules``, in three
    SELECTs: the inputs, the rule set's decision (one CASE per row), then the grade, rule and reason
    read from it. So shallow a query is what lets SQLite's parser take the 40-odd terms stacked.
    (The inputs are columns before the rules read them: Ibis compares a bare NULL literal with
    ``IS NULL``, not with SQL's three-valued ``=``.)"""
    value = t[spec.value_column].cast("float64")
    data_limit = t[spec.limit_column].cast("float64") if has_limit else ibis.null("float64")
    limit = data_limit if limit_default is None else data_limit.fill_null(ibis.literal(float(limit_default)))
    limit_source = ibis.cases((data_limit.notnull(), "data"),
                              else_=ibis.null("string") if limit_default is None else ibis.literal("default"))
    given = {f: t[f].cast("boolean") if present else ibis.null("boolean") for f, present in facts.items()}
    clinical = {f: g.fill_null(True) if convention == "worst_case" else g for f, g in given.items()}
    keys = ["patient_id", "assessment_date", *(["assessment_study_day"] if has_day else [])]
    b = t.select(*[t[k] for k in keys], value=value, limit=limit, limit_source=limit_source,
                 baseline=baseline, **clinical,
                 baseline_below_lln=ibis.null("boolean"))  # needs a creatinine LLN: not in the model
    # the derived inputs (excess over the limit, % change, ...) once a row, as columns
    derived = {k: e for k, e in _rule_inputs(rules, spec, b).items() if k in _DERIVED}
    b = b.mutate(**derived) if derived else b
    b = with_decision(b, rules, lambda tt: _rule_inputs(rules, spec, tt), "_decision")
    # what the not-graded reason calls each input: the table's columns
    names = {"value": spec.value_column, spec.limit: spec.limit_column,
             "baseline": f"{spec.value_column}_baseline", "baseline_below_lln": "_baseline_below_lln",
             **{f: f for f in CLINICAL_INPUTS}, **{k: f"_{k}" for k in _DERIVED}}
    _, rule_id, missing = decision_outputs(rules, b._decision, _rule_inputs(rules, spec, b), names)
    grade = ibis.cases(*[(b._decision.isin(ks), int(g)) for g in GRADES if (ks := decided_by(rules, g))],
                       else_=ibis.null("int64"))
    reason = ibis.cases(
        (b._decision < 0, ibis.literal("not gradable: missing ").concat(
            missing.fill_null("?"), ibis.literal(" (rule "), rule_id, ibis.literal(")"))),
        (b._decision == 0, ibis.literal("no rule applies")),
        else_=ibis.null("string"),
    )
    return b.select(
        *keys, term=ibis.literal(spec.term), term_key=ibis.literal(spec.key),
        ctcae_version=ibis.literal(version), value=b["value"], limit=b["limit"],
        limit_kind=ibis.literal(spec.limit.upper()), limit_source=b["limit_source"], baseline=b["baseline"],
        grade=grade.cast("int64"), rule_id=rule_id, not_graded_reason=reason,
    )


_DERIVED = ("excess_uln", "excess_baseline", "pchg")


def _rule_inputs(rules: RuleSet, spec: LabTerm, t: ir.Table) -> dict[str, ir.Value]:
    """The rule variables of ``rules`` from a term's columns ``value``, ``limit``, ``baseline``,
    ``baseline_below_lln`` and clinical facts: the limit under its rule name (``uln`` or ``lln``),
    and the derived inputs: excess over the limit and over the baseline, % change from the baseline
    (NULL for a baseline of 0)."""
    value, limit, base = t["value"], t["limit"], t["baseline"]
    known: dict[str, ir.Value] = {
        "value": value, spec.limit: limit, "baseline": base, "baseline_below_lln": t["baseline_below_lln"],
        **{f: t[f] for f in CLINICAL_INPUTS},
        "excess_uln": value - limit, "excess_baseline": value - base,
        "pchg": ibis.ifelse(base == 0, ibis.null("float64"), (value - base) / base * 100),
    }
    # a derived input already kept as a column (see _graded_term) is read, not computed again
    return {k: t[k] if k in _DERIVED and k in t.columns else known[k] for k in rules.variables}


def worst_grade(graded: ir.Table, *, from_study_day: int | None = None, dates: bool = True) -> ir.Table:
    """Worst grade per patient and term of a :func:`grade_assessments` table.

    Columns: ``patient_id``, ``term``, ``term_key``, ``ctcae_version``, ``worst_grade`` (NULL when
    no value of that patient and term was gradable), ``worst_grade_date`` (first date at the worst
    grade), ``n_values``, ``n_not_graded``. ``from_study_day`` keeps only assessments from that
    study day on (e.g. 1 for on-treatment worst grades; needs ``assessment_study_day``).
    ``dates=False`` leaves out ``worst_grade_date``, whose join reads the graded values a second
    time (the engine then materialises them: every laboratory value of a registry).
    """
    t = graded
    if from_study_day is not None:
        t = t.filter(t.assessment_study_day >= from_study_day)
    keys = ["patient_id", "term", "term_key", "ctcae_version"]
    agg = t.group_by(keys).aggregate(
        worst_grade=t.grade.max(), n_values=t.count(), n_graded=t.grade.count(),
    )
    agg = agg.mutate(n_not_graded=agg.n_values - agg.n_graded).drop("n_graded")
    if not dates:
        return agg.select(*keys, "worst_grade", "n_values", "n_not_graded")
    at_worst = t.filter(t.grade.notnull()).group_by(
        w_patient_id=t.patient_id, w_term_key=t.term_key, w_grade=t.grade,
    ).aggregate(w_date=t.assessment_date.min())
    joined = agg.left_join(at_worst, [agg.patient_id == at_worst.w_patient_id,
                                      agg.term_key == at_worst.w_term_key,
                                      agg.worst_grade == at_worst.w_grade])
    return joined.select(*keys, "worst_grade", worst_grade_date=joined.w_date,
                         n_values="n_values", n_not_graded="n_not_graded")


# ---- reported grades -----------------------------------------------------------------------------

def _allowed_grades(rules: RuleSet) -> dict[str, str]:
    """rule_id → the grades a term allows, read from the ``reported_grade`` rule set."""
    out: dict[str, str] = {}
    for r in rules.rules:
        for clause in r.clauses:
            for cond in clause:
                if cond.variable == "grade" and cond.op == "in":
                    out[r.rule_id] = str(cond.value).replace("|", ",")
    return {rid.removesuffix(".allowed"): g for rid, g in out.items()}


def check_reported_grades(adverse_events: ir.Table) -> ir.Table:
    """Check reported AE grades against the grades the term defines in its CTCAE version.

    Adds ``ctcae_version_used`` ("4.03" for reported "4.0"/"4.03", "5.0", "6.0"), ``allowed_grades``
    (e.g. "1,2,3"), ``grade_check`` ("allowed", "not_allowed", "term_not_listed",
    "not_evaluable" when term or grade is missing, "version_unknown"), ``grade_allowed`` (bool;
    NULL unless the check could be made) and ``grade_check_reason`` (the CTCAE definition used).
    Terms are compared case-insensitively. Clinical grades are kept as reported. The v6.0 table
    lists the laboratory terms only (``rules/README.md``); other terms give "term_not_listed".
    """
    t = adverse_events.mutate(
        _term_norm=adverse_events.term.strip().lower(), _grade_text=adverse_events.grade.cast("string"),
        _version=adverse_events.ctcae_version.cast("string").strip(),
    )
    aliases = {alias: v for alias, v in VERSION_ALIASES.items() if "." in alias and v in REPORTED_GRADE_FILES}
    null_s = ibis.null("string")
    t = t.mutate(_version_used=ibis.cases(*[(t._version == a, v) for a, v in aliases.items()], else_=null_s))
    # each version's rules once, as columns; then pick by version and map rule ids to texts
    allowed: dict[tuple[str, str], str] = {}
    sources: dict[tuple[str, str], str] = {}
    for v, filename in REPORTED_GRADE_FILES.items():
        rules = ruleset(filename, "reported_grade", v)
        t = apply_rules(rules, t, {"term": "_term_norm", "grade": "_grade_text"},
                        outcome=_col(f"_outcome_{v}"), rule_id=_col(f"_rule_{v}"), missing=None)
        allowed.update({(v, k): g for k, g in _allowed_grades(rules).items()})
        sources.update({(v, r.rule_id): r.source for r in rules.rules})
    t = t.mutate(
        _outcome=ibis.cases(*[(t._version_used == v, t[_col(f"_outcome_{v}")]) for v in REPORTED_GRADE_FILES],
                            else_=ibis.literal("version_unknown")),
        _rule=ibis.cases(*[(t._version_used == v, t[_col(f"_rule_{v}")]) for v in REPORTED_GRADE_FILES],
                         else_=null_s),
    )
    t = t.mutate(_term_key=t._rule.re_replace(r"\.(allowed|not_allowed)$", ""))
    unknown_version = ibis.literal(f"CTCAE version not known; known: {sorted(aliases)}")
    t = t.mutate(
        ctcae_version_used=t._version_used,
        allowed_grades=ibis.cases(*[((t._version_used == v) & (t._term_key == k), g)
                                    for (v, k), g in allowed.items()], else_=null_s),
        grade_check=t._outcome,
        grade_check_reason=ibis.cases((t._version_used.isnull(), unknown_version),
                                      *[((t._version_used == v) & (t._rule == r), src)
                                        for (v, r), src in sources.items()], else_=null_s),
    )
    t = t.mutate(grade_allowed=ibis.cases((t.grade_check == "allowed", True),
                                          (t.grade_check == "not_allowed", False),
                                          else_=ibis.null("boolean")))
    helpers = [n for n in t.columns if n.startswith("_")]
    return t.drop(*helpers)


def _col(name: str) -> str:
    """Column-safe helper name: ``_outcome_4.03`` → ``_outcome_4_03``."""
    return name.replace(".", "_")
