"""The cohort model: every table, column, type, unit and allowed value, declared once.

Loaders, validation, derivations, the data dictionary (``docs/data_dictionary.md``),
reports and exports all read this module; nothing else declares a column.

Conventions
-----------
* Dates are calendar dates (ISO 8601, ``YYYY-MM-DD``).
* Each date column ``X_date`` gets a derived ``X_study_day`` on load: the day relative
  to study day 1 (the first dose of the study's index drug, or of any drug; see the study
  definition, :mod:`amlcohort.schema.study`), day -1 = the day before, no day 0 (CDISC SDTM
  ``--DY`` convention).
* What is particular to a study (its arms, drugs, day-1 event, criteria) is not in this model:
  arms and drugs are open vocabularies here, checked against the study definition on load.
* Quantities carry a *canonical unit* (what every derivation assumes). A bundle may declare
  another unit for a column in its metadata only if the model lists a conversion for it;
  the conversion is then explicit, never guessed from the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DType = Literal["string", "int", "float", "date", "bool"]

RESPONSES_PRIOR = ("cr", "cri", "pr", "refractory", "not_evaluable", "not_available")
MUTATION_RESULTS = ("mutated", "wild_type", "not_tested")


@dataclass(frozen=True)
class Unit:
    """A unit a column may be declared in, with the factor that converts it to canonical."""

    name: str
    to_canonical: float
    note: str = ""


@dataclass(frozen=True)
class Column:
    """One column of one table.

    ``hard_min``/``hard_max`` bound what is physically possible (outside: error);
    ``soft_min``/``soft_max`` bound what is clinically plausible (outside: warning).
    Both are in the canonical unit and checked *after* the declared unit is applied.
    ``unit_check`` names a bound beyond which the value is far more likely to be in another
    unit than a real value; it is reported as an error that names the suspected unit.
    ``lower_case`` text is normalised to lower case on load (drug names: ``Sorafenib`` and
    ``sorafenib`` are one drug).
    """

    name: str
    dtype: DType
    description: str
    required: bool = False
    unit: str | None = None
    units: tuple[Unit, ...] = ()
    allowed: tuple[str, ...] | None = None
    hard_min: float | None = None
    hard_max: float | None = None
    soft_min: float | None = None
    soft_max: float | None = None
    unit_check: tuple[float, str] | None = None
    lower_case: bool = False

    @property
    def accepted_units(self) -> dict[str, float]:
        """Declarable units → factor to the canonical unit (canonical itself maps to 1)."""
        out = {self.unit: 1.0} if self.unit else {}
        out.update({u.name: u.to_canonical for u in self.units})
        return out


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True
    patient_scoped: bool = True

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def date_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.dtype == "date")


def _id() -> Column:
    return Column("patient_id", "string", "Patient identifier, unique in `patients`.", required=True)


# ---- units -----------------------------------------------------------------------------
_COUNT_UNITS = (
    Unit("10^3/uL", 1.0, "same as 10^9/L"),
    Unit("/uL", 0.001, "cells per microlitre: 1000/uL = 1.0 x10^9/L"),
    Unit("/mm3", 0.001, "cells per mm3 = per microlitre"),
)
_HB_UNITS = (Unit("g/L", 0.1), Unit("mmol/L", 1.0 / 0.6206, "haemoglobin monomer, 1 g/dL = 0.6206 mmol/L"))
_BILI_UNITS = (Unit("mg/dL", 17.104),)
_CREAT_UNITS = (Unit("mg/dL", 88.42),)
_CA_UNITS = (Unit("mg/dL", 0.2495),)


def _count(name: str, what: str, soft_max: float, unit_bound: float) -> Column:
    return Column(
        name,
        "float",
        what,
        unit="10^9/L",
        units=_COUNT_UNITS,
        hard_min=0,
        soft_max=soft_max,
        unit_check=(unit_bound, "/uL (cells per microlitre)"),
    )


def _lab(name: str, what: str, unit: str, units: tuple[Unit, ...] = (), **kw: object) -> Column:
    return Column(name, "float", what, unit=unit, units=units, hard_min=0, **kw)  # type: ignore[arg-type]


# ---- CTCAE laboratory terms (issue 10; appended: optional values and reference limits) ----------
_CHOL_UNITS = (Unit("mg/dL", 0.02586),)
_TG_UNITS = (Unit("mg/dL", 0.01129),)
_GLUC_UNITS = (Unit("mg/dL", 0.05551),)
_MG_UNITS = (Unit("mg/dL", 0.4114), Unit("mEq/L", 0.5))
_URIC_UNITS = (Unit("mg/dL", 59.48), Unit("mmol/L", 1000.0))
_GL_UNITS = (Unit("g/dL", 10.0),)
_FIB_UNITS = (Unit("mg/dL", 0.01),)
_PHOS_UNITS = (Unit("mg/dL", 0.3229),)


def _ctcae_lab_columns() -> tuple[Column, ...]:
    """Values and limits the CTCAE lab terms grade (``criteria/ctcae.py``); all optional."""
    labs: list[tuple[str, str, str, tuple[Unit, ...], tuple[str, ...]]] = [
        # name, description, canonical unit, other units, reference limits carried
        ("aptt", "Activated partial thromboplastin time", "s", (), ("uln",)),
        ("alp", "Alkaline phosphatase", "U/L", (), ("uln",)),
        ("cd4", "CD4 lymphocyte count", "10^9/L", _COUNT_UNITS, ("lln",)),
        ("cholesterol", "Total cholesterol", "mmol/L", _CHOL_UNITS, ("uln",)),
        ("cpk", "Creatine phosphokinase", "U/L", (), ("uln",)),
        ("fibrinogen", "Fibrinogen", "g/L", _FIB_UNITS, ("lln",)),
        ("ggt", "Gamma-glutamyl transferase", "U/L", (), ("uln",)),
        ("haptoglobin", "Haptoglobin", "g/L", (), ("lln",)),
        ("inr", "International normalised ratio", "ratio", (), ("uln",)),
        ("lipase", "Lipase", "U/L", (), ("uln",)),
        ("lymphocytes", "Lymphocyte count", "10^9/L", _COUNT_UNITS, ("lln",)),
        ("amylase", "Serum amylase", "U/L", (), ("uln",)),
        ("ldh", "Lactate dehydrogenase", "U/L", (), ("uln",)),
        ("ionized_calcium", "Ionized calcium", "mmol/L", _CA_UNITS, ("lln", "uln")),
        ("glucose", "Glucose (any)", "mmol/L", _GLUC_UNITS, ("lln", "uln")),
        ("fasting_glucose", "Fasting glucose", "mmol/L", _GLUC_UNITS, ("uln",)),
        ("magnesium", "Magnesium", "mmol/L", _MG_UNITS, ("lln", "uln")),
        ("triglycerides", "Triglycerides", "mmol/L", _TG_UNITS, ()),
        ("uric_acid", "Uric acid", "umol/L", _URIC_UNITS, ("uln",)),
        ("albumin", "Albumin", "g/L", _GL_UNITS, ("lln",)),
        ("phosphate", "Phosphate", "mmol/L", _PHOS_UNITS, ("lln",)),
        ("ph", "Blood pH", "pH", (), ("lln", "uln")),
        ("hdl", "HDL cholesterol", "mmol/L", _CHOL_UNITS, ("lln",)),
        ("ldl", "LDL cholesterol", "mmol/L", _CHOL_UNITS, ("uln",)),
        ("creatinine_clearance", "Creatinine clearance", "mL/min", (), ()),
    ]
    out: list[Column] = []
    # limits of the values the model already has (previously supplied as extra columns)
    for name, what, unit, units in (("anc", "ANC", "10^9/L", _COUNT_UNITS),
                                    ("platelets", "Platelet", "10^9/L", _COUNT_UNITS),
                                    ("wbc", "White-cell", "10^9/L", _COUNT_UNITS),
                                    ("hemoglobin", "Haemoglobin", "g/dL", _HB_UNITS)):
        out.append(Column(f"{name}_lln", "float", f"{what} lower limit of normal.", unit=unit, units=units,
                          hard_min=0))
    out.append(Column("hemoglobin_uln", "float", "Haemoglobin upper limit of normal.", unit="g/dL",
                      units=_HB_UNITS, hard_min=0))
    for name, what, units in (("potassium", "Potassium", ()), ("sodium", "Sodium", ()),
                              ("calcium", "Calcium", _CA_UNITS)):
        out.append(Column(f"{name}_uln", "float", f"{what} ULN.", unit="mmol/L", units=units, hard_min=0))
    for name, what, unit, units, limits in labs:
        out.append(_lab(name, f"{what}.", unit, units))
        for lim in limits:
            kind = "upper" if lim == "uln" else "lower"
            out.append(Column(f"{name}_{lim}", "float", f"{what} {kind} limit of normal.", unit=unit,
                              units=units, hard_min=0))
    out.append(Column("symptomatic", "bool", "Symptoms attributable to the abnormal laboratory value(s) on "
                      "this date (CTCAE grades that need them: hypokalemia, hyponatremia, hyperuricemia, "
                      "lipase, amylase); empty = not recorded."))
    out.append(Column("on_anticoagulation", "bool", "On anticoagulation at this date (CTCAE INR x baseline "
                      "criteria); empty = not recorded."))
    return tuple(out)



WHO2008_CATEGORIES = (
    "AML with t(8;21)(q22;q22); RUNX1-RUNX1T1",
    "AML with inv(16)(p13.1q22) or t(16;16)(p13.1;q22); CBFB-MYH11",
    "APL with t(15;17)(q22;q12); PML-RARA",
    "AML with t(9;11)(p22;q23); MLLT3-MLL",
    "AML with t(6;9)(p23;q34); DEK-NUP214",
    "AML with inv(3)(q21q26.2) or t(3;3)(q21;q26.2); RPN1-EVI1",
    "AML (megakaryoblastic) with t(1;22)(p13;q13); RBM15-MKL1",
    "AML with mutated NPM1",
    "AML with mutated CEBPA",
    "AML with myelodysplasia-related changes",
    "Therapy-related myeloid neoplasms",
    "AML with minimal differentiation",
    "AML without maturation",
    "AML with maturation",
    "Acute myelomonocytic leukemia",
    "Acute monoblastic/monocytic leukemia",
    "Acute erythroid leukemia",
    "Acute megakaryoblastic leukemia",
    "Acute basophilic leukemia",
    "Acute panmyelosis with myelofibrosis",
    "Myeloid sarcoma",
)

WHO2016_CATEGORIES = (
    "AML with t(8;21)(q22;q22.1); RUNX1-RUNX1T1",
    "AML with inv(16)(p13.1q22) or t(16;16)(p13.1;q22); CBFB-MYH11",
    "APL with PML-RARA",
    "AML with t(9;11)(p21.3;q23.3); MLLT3-KMT2A",
    "AML with t(6;9)(p23;q34.1); DEK-NUP214",
    "AML with inv(3)(q21.3q26.2) or t(3;3)(q21.3;q26.2); GATA2, MECOM",
    "AML (megakaryoblastic) with t(1;22)(p13.3;q13.3); RBM15-MKL1",
    "AML with BCR-ABL1",
    "AML with mutated NPM1",
    "AML with biallelic mutations of CEBPA",
    "AML with mutated RUNX1",
    "AML with myelodysplasia-related changes",
    "Therapy-related myeloid neoplasms",
    "AML with minimal differentiation",
    "AML without maturation",
    "AML with maturation",
    "Acute myelomonocytic leukemia",
    "Acute monoblastic/monocytic leukemia",
    "Pure erythroid leukemia",
    "Acute megakaryoblastic leukemia",
    "Acute basophilic leukemia",
    "Acute panmyelosis with myelofibrosis",
    "Myeloid sarcoma",
    "Myeloid leukemia associated with Down syndrome",
)
"""WHO 2016 (Arber et al., Blood 2016;127:2391, Table 3): AML and related neoplasms."""

WHO2022_CATEGORIES = (
    "Acute promyelocytic leukaemia with PML::RARA fusion",
    "AML with RUNX1::RUNX1T1 fusion",
    "AML with CBFB::MYH11 fusion",
    "AML with DEK::NUP214 fusion",
    "AML with RBM15::MRTFA fusion",
    "AML with BCR::ABL1 fusion",
    "AML with KMT2A rearrangement",
    "AML with MECOM rearrangement",
    "AML with NUP98 rearrangement",
    "AML with NPM1 mutation",
    "AML with CEBPA mutation",
    "AML, myelodysplasia-related",
    "AML with other defined genetic alterations",
    "AML with minimal differentiation",
    "AML without maturation",
    "AML with maturation",
    "Acute basophilic leukaemia",
    "Acute myelomonocytic leukaemia",
    "Acute monocytic leukaemia",
    "Acute erythroid leukaemia",
    "Acute megakaryoblastic leukaemia",
    "Myeloid sarcoma",
)
"""WHO 2022, 5th edition (Khoury et al., Leukemia 2022;36:1703, Table 2): AML types."""

ICC2022_CATEGORIES = (
    "APL with t(15;17)(q24.1;q21.2)/PML::RARA",
    "APL with other RARA rearrangements",
    "AML with t(8;21)(q22;q22.1)/RUNX1::RUNX1T1",
    "AML with inv(16)(p13.1q22) or t(16;16)(p13.1;q22)/CBFB::MYH11",
    "AML with t(9;11)(p21.3;q23.3)/MLLT3::KMT2A",
    "AML with other KMT2A rearrangements",
    "AML with t(6;9)(p22.3;q34.1)/DEK::NUP214",
    "AML with inv(3)(q21.3q26.2) or t(3;3)(q21.3;q26.2)/GATA2; MECOM(EVI1)",
    "AML with other MECOM rearrangements",
    "AML with other rare recurring translocations",
    "AML with t(9;22)(q34.1;q11.2)/BCR::ABL1",
    "AML with mutated NPM1",
    "AML with in-frame bZIP mutated CEBPA",
    "AML with mutated TP53",
    "AML with myelodysplasia-related gene mutations",
    "AML with myelodysplasia-related cytogenetic abnormalities",
    "AML not otherwise specified",
    "Myeloid sarcoma",
)
"""ICC 2022 (Arber et al., Blood 2022;140:1200, Table 6): AML categories (MDS/AML qualifiers aside)."""

DIAGNOSIS_COLUMNS = ("who2008_category", "who2016_category", "who2022_category", "icc2022_category")

# exposures: open where medicine is open (any drug), closed where the derivations read the value
PHASES = ("induction", "consolidation", "maintenance", "salvage")
DOSE_UNITS = ("mg", "mg/m2", "mg/kg", "g", "g/m2", "ug", "ug/m2", "ug/kg", "IU", "IU/m2", "units", "units/m2")
FREQUENCIES = ("once", "qd", "bid", "tid", "qid", "q48h", "weekly", "continuous_infusion")
ROUTES = ("oral", "sc", "iv", "im", "intrathecal", "inhaled", "topical")

PATIENTS = Table(
    "patients",
    "One row per patient: demographics, diagnosis, genetics summary, fitness and study arm.",
    (
        _id(),
        Column("sex", "string", "Sex.", required=True, allowed=("female", "male")),
        Column(
            "age_at_onset",
            "int",
            "Age at AML diagnosis, completed years.",
            required=True,
            unit="years",
            hard_min=0,
            hard_max=120,
            soft_min=15,
        ),
        Column("birth_date", "date", "Date of birth, if known."),
        Column("diagnosis_date", "date", "Date of AML diagnosis.", required=True),
        Column("who2008_category", "string", "WHO 2008 AML category.", allowed=WHO2008_CATEGORIES),
        Column("who2016_category", "string", "WHO 2016 AML category.", allowed=WHO2016_CATEGORIES),
        Column(
            "who2022_category", "string", "WHO 2022 (5th edition) AML category.", allowed=WHO2022_CATEGORIES
        ),
        Column("icc2022_category", "string", "ICC 2022 AML category.", allowed=ICC2022_CATEGORIES),
        Column("diagnosis_text", "string", "Diagnosis and risk status as reported (free text)."),
        Column(
            "karyotype",
            "string",
            "Karyotype in ISCN notation, e.g. 46,XX[20] or 46,XY,inv(3)(q21q26.2)[20].",
            required=True,
        ),
        Column(
            "ecog_ps",
            "int",
            "ECOG performance status at study day 1.",
            hard_min=0,
            hard_max=5,
            soft_max=4,
        ),
        Column("comorbidities", "string", "Relevant comorbidities, ';'-separated."),
        Column(
            "study_arm",
            "string",
            "Arm code; the arms the study definition declares (any code when it declares none).",
            required=True,
        ),
        Column(
            "risk_group_reported",
            "string",
            "Risk group as reported by the centre.",
            required=True,
            allowed=("favorable", "intermediate", "adverse"),
        ),
        Column(
            "disease_status_reported",
            "string",
            "Disease status before study treatment as reported.",
            allowed=("primary_refractory", "relapsed", "relapsed_refractory", "elderly_unfit"),
        ),
        Column(
            "height_cm", "float", "Height.", unit="cm", hard_min=30, hard_max=250, soft_min=120, soft_max=215
        ),
        Column(
            "weight_kg",
            "float",
            "Weight at study day 1.",
            unit="kg",
            hard_min=2,
            hard_max=400,
            soft_min=30,
            soft_max=180,
        ),
    ),
    key=("patient_id",),
    patient_scoped=False,
)

MUTATIONS = Table(
    "mutations",
    "One row per patient and gene tested (open to any gene). The study tested FLT3-ITD, NPM1, "
    "CEBPA, RUNX1, ASXL1 and TP53.",
    (
        _id(),
        Column(
            "gene",
            "string",
            "Gene or lesion, HGNC symbol; FLT3-ITD and FLT3-TKD are separate lesions.",
            required=True,
        ),
        Column("result", "string", "Test result.", required=True, allowed=MUTATION_RESULTS),
        Column("variant", "string", "Variant description (HGVS or free text)."),
        Column("allelic_ratio", "float", "FLT3-ITD allelic ratio.", hard_min=0, soft_max=10),
        Column("vaf_percent", "float", "Variant allele frequency.", unit="%", hard_min=0, hard_max=100),
        Column("cebpa_biallelic", "bool", "CEBPA: two mutations (biallelic)."),
        Column("cebpa_bzip_inframe", "bool", "CEBPA: in-frame bZIP mutation (ELN 2022)."),
    ),
    key=("patient_id", "gene"),
)

PRIOR_THERAPIES = Table(
    "prior_therapies",
    "One row per line of therapy before the study treatment, including HSCT and donor lymphocyte infusion.",
    (
        _id(),
        Column("line", "int", "Line number, 1 = first induction.", required=True, hard_min=1, soft_max=20),
        Column("regimen", "string", "Regimen as reported.", required=True),
        Column("agents", "string", "Agents, ';'-separated generic names.", required=True),
        Column(
            "therapy_type",
            "string",
            "Kind of therapy.",
            required=True,
            allowed=("intensive_chemotherapy", "low_intensity_chemotherapy", "hsct", "dli"),
        ),
        Column("cycles", "int", "Number of cycles (rounds).", hard_min=1, soft_max=12),
        Column("start_date", "date", "First day of the line."),
        Column("end_date", "date", "Last day of the line."),
        Column("response", "string", "Best response to this line.", required=True, allowed=RESPONSES_PRIOR),
        Column("cr_date", "date", "Date of CR, when the line gave one."),
        Column("relapsed", "bool", "Relapse after the CR this line gave."),
        Column("relapse_date", "date", "Date of relapse after that CR."),
        Column(
            "relapse_interval_months",
            "float",
            "Interval between CR and relapse, months, as reported.",
            unit="months",
            hard_min=0,
            soft_max=240,
        ),
        Column(
            "hsct_donor",
            "string",
            "Donor type, for an HSCT line.",
            allowed=(
                "hla_identical_sibling",
                "hla_identical_unrelated",
                "hla_identical",
                "haploidentical",
                "cord_blood",
                "autologous",
            ),
        ),
    ),
    key=("patient_id", "line"),
)

EXPOSURES = Table(
    "exposures",
    "One row per administration period of a study drug at constant dose; a dose reduction or "
    "interruption ends one period and the next period starts a new row.",
    (
        _id(),
        Column(
            "drug",
            "string",
            "Study drug, generic name (any drug; normalised to lower case).",
            required=True,
            lower_case=True,
        ),
        Column("atc_code", "string", "WHO ATC code of the drug, e.g. L01EX02."),
        Column("phase", "string", "Treatment phase.", required=True, allowed=PHASES),
        Column("dose", "float", "Dose per administration.", required=True, hard_min=0, soft_max=100000),
        Column("dose_unit", "string", "Unit of `dose`.", required=True, allowed=DOSE_UNITS),
        Column(
            "frequency",
            "string",
            "Administrations: qd/bid/tid/qid per day, q48h, weekly, once, or a continuous infusion.",
            required=True,
            allowed=FREQUENCIES,
        ),
        Column("route", "string", "Route.", required=True, allowed=ROUTES),
        Column("start_date", "date", "First day of the period.", required=True),
        Column("end_date", "date", "Last day of the period; empty if ongoing at the cut-off."),
        Column(
            "end_reason",
            "string",
            "Why the period ended.",
            allowed=(
                "planned_end",
                "dose_reduction",
                "interruption",
                "toxicity",
                "stopping_rule",
                "no_response",
                "relapse",
                "hsct",
                "death",
                "patient_decision",
                "ongoing",
                "other",
            ),
        ),
    ),
    key=("patient_id", "drug", "start_date"),
)

ASSESSMENTS = Table(
    "assessments",
    "One row per patient and assessment date: marrow, blood counts and chemistry (any may be "
    "empty). Assessments before the first dose give the baseline.",
    (
        _id(),
        Column("assessment_date", "date", "Date of sampling.", required=True),
        Column(
            "marrow_blasts_pct",
            "float",
            "Bone-marrow blasts, % of nucleated cells.",
            unit="%",
            hard_min=0,
            hard_max=100,
        ),
        Column("marrow_spicules", "bool", "Aspirate with spicules (adequate for CR)."),
        Column("extramedullary_disease", "bool", "Evidence of extramedullary disease."),
        _count("anc", "Absolute neutrophil count.", soft_max=50, unit_bound=100),
        _count("platelets", "Platelet count.", soft_max=1500, unit_bound=5000),
        _count("wbc", "White-cell count.", soft_max=300, unit_bound=1000),
        Column(
            "hemoglobin",
            "float",
            "Haemoglobin.",
            unit="g/dL",
            units=_HB_UNITS,
            hard_min=0,
            soft_min=3,
            soft_max=20,
            unit_check=(30, "g/L"),
        ),
        Column(
            "peripheral_blasts_pct",
            "float",
            "Blasts in blood, % of white cells.",
            unit="%",
            hard_min=0,
            hard_max=100,
        ),
        _lab("alt", "Alanine aminotransferase.", "U/L", soft_max=5000),
        Column("alt_uln", "float", "ALT upper limit of normal.", unit="U/L", hard_min=1, soft_max=100),
        _lab("ast", "Aspartate aminotransferase.", "U/L", soft_max=5000),
        Column("ast_uln", "float", "AST upper limit of normal.", unit="U/L", hard_min=1, soft_max=100),
        _lab("bilirubin", "Total bilirubin.", "umol/L", _BILI_UNITS, soft_max=700),
        Column(
            "bilirubin_uln",
            "float",
            "Total bilirubin ULN.",
            unit="umol/L",
            units=_BILI_UNITS,
            hard_min=0.1,
            soft_max=50,
        ),
        _lab("creatinine", "Serum creatinine.", "umol/L", _CREAT_UNITS, soft_max=2000),
        Column(
            "creatinine_uln",
            "float",
            "Creatinine ULN.",
            unit="umol/L",
            units=_CREAT_UNITS,
            hard_min=1,
            soft_max=200,
        ),
        _lab("potassium", "Serum potassium.", "mmol/L", soft_min=1.5, soft_max=9),
        Column("potassium_lln", "float", "Potassium LLN.", unit="mmol/L", hard_min=0.1, soft_max=5),
        _lab("sodium", "Serum sodium.", "mmol/L", soft_min=100, soft_max=180),
        Column("sodium_lln", "float", "Sodium LLN.", unit="mmol/L", hard_min=50, soft_max=150),
        _lab("calcium", "Serum calcium (corrected).", "mmol/L", _CA_UNITS, soft_min=1, soft_max=5),
        Column(
            "calcium_lln", "float", "Calcium LLN.", unit="mmol/L", units=_CA_UNITS, hard_min=0.1, soft_max=3
        ),
        *_ctcae_lab_columns(),
    ),
    key=("patient_id", "assessment_date"),
)

TRANSFUSIONS = Table(
    "transfusions",
    "One row per transfusion episode.",
    (
        _id(),
        Column("transfusion_date", "date", "Date given.", required=True),
        Column("product", "string", "Blood product.", required=True, allowed=("rbc", "platelets")),
        Column("units_given", "int", "Units (RBC) or adult doses (platelets).", hard_min=1, soft_max=10),
    ),
    key=("patient_id", "transfusion_date", "product"),
    required=False,
)

SUPPORTIVE_CARE = Table(
    "supportive_care",
    "One row per supportive-care period (G-CSF, antifungal prophylaxis, other).",
    (
        _id(),
        Column(
            "category",
            "string",
            "Kind of supportive care.",
            required=True,
            allowed=("g_csf", "antifungal_prophylaxis", "other"),
        ),
        Column("agent", "string", "Agent, e.g. filgrastim, voriconazole, posaconazole.", required=True),
        Column("start_date", "date", "First day.", required=True),
        Column("end_date", "date", "Last day; empty if ongoing at the cut-off."),
    ),
    key=("patient_id", "category", "start_date"),
    required=False,
)

ADVERSE_EVENTS = Table(
    "adverse_events",
    "One row per adverse event as reported (clinical and laboratory).",
    (
        _id(),
        Column(
            "term", "string", "CTCAE term, e.g. 'Palmar-plantar erythrodysesthesia syndrome'.", required=True
        ),
        Column("onset_date", "date", "Onset.", required=True),
        Column("worst_grade_date", "date", "Date the worst grade was reached."),
        Column("resolution_date", "date", "Resolution; empty if not resolved at the cut-off."),
        Column("grade", "int", "Worst CTCAE grade as reported.", required=True, hard_min=1, hard_max=5),
        Column(
            "ctcae_version",
            "string",
            "CTCAE version of the grade.",
            required=True,
            allowed=("4.0", "4.03", "5.0", "6.0"),
        ),
        Column(
            "action_taken",
            "string",
            "Action taken with study treatment (CDISC AEACN).",
            allowed=("none", "dose_reduced", "interrupted", "withdrawn", "not_applicable"),
        ),
        Column(
            "action_drug",
            "string",
            "Drug(s) the action applied to, ';'-separated (empty: all study drugs).",
            lower_case=True,
        ),
        Column(
            "outcome",
            "string",
            "Outcome.",
            allowed=(
                "recovered",
                "recovering",
                "not_recovered",
                "recovered_with_sequelae",
                "fatal",
                "unknown",
            ),
        ),
        Column("description", "string", "Narrative."),
    ),
    key=("patient_id", "term", "onset_date"),
    required=False,
)

EVENTS = Table(
    "events",
    "Key clinical events after study day 1: CR as reported by the centre, HSCT, "
    "relapse, death (with cause), last contact.",
    (
        _id(),
        Column(
            "event_type",
            "string",
            "Event.",
            required=True,
            allowed=("cr_reported", "hsct", "relapse", "death", "last_contact"),
        ),
        Column("event_date", "date", "Date of the event.", required=True),
        Column(
            "hsct_donor",
            "string",
            "Donor type, for an HSCT.",
            allowed=PRIOR_THERAPIES.column("hsct_donor").allowed,
        ),
        Column(
            "death_cause",
            "string",
            "Cause of death, for a death.",
            allowed=("leukemia", "infection", "hemorrhage", "treatment_related", "other", "unknown"),
        ),
        Column("description", "string", "Narrative."),
    ),
    key=("patient_id", "event_type", "event_date"),
)

TABLES: tuple[Table, ...] = (
    PATIENTS,
    MUTATIONS,
    PRIOR_THERAPIES,
    EXPOSURES,
    ASSESSMENTS,
    TRANSFUSIONS,
    SUPPORTIVE_CARE,
    ADVERSE_EVENTS,
    EVENTS,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    """The model of table ``name``; raises ``KeyError`` naming the known tables."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the model has {sorted(TABLES_BY_NAME)}") from None


def study_day_column(date_column: str) -> str:
    """``onset_date`` → ``onset_study_day``; ``assessment_date`` → ``assessment_study_day``."""
    stem = date_column[: -len("_date")] if date_column.endswith("_date") else date_column
    return f"{stem}_study_day"
