"""The ADaM dataset specifications: every dataset, variable, label, type and derivation, declared once.

The derivations (:mod:`amlcohort.interop.adam`), the writers (Parquet, CSV, SAS transport) and the
define-style metadata (:mod:`amlcohort.interop.define`) all read these specifications, so a label
or a derivation text is never written twice. Names and labels follow CDISC ADaM IG 1.3 and the
pharmaverse admiral / admiralonco conventions (``STUDYID`` "Study Identifier", ``CNSR`` "Censor",
``ATOXGR`` "Analysis Toxicity Grade", ...); variables the IG does not name (the ELN risk groups,
the study-population flag) are marked ``origin = "Derived (sponsor-defined)"``.

SAS transport v5 limits, checked by :func:`check_spec`: names at most 8 characters, labels at
most 40, dataset labels at most 40.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VarType = Literal["Char", "Num", "Date"]


@dataclass(frozen=True)
class Var:
    """One ADaM variable. ``Date`` is a SAS numeric date (days since 1960-01-01, format DATE9.)."""

    name: str
    label: str
    type: VarType
    derivation: str
    origin: str = "Derived"

    @property
    def sas_type(self) -> str:
        return "Char" if self.type == "Char" else "Num"

    @property
    def sas_format(self) -> str:
        return "DATE9." if self.type == "Date" else ""


@dataclass(frozen=True)
class Dataset:
    name: str
    label: str
    structure: str
    keys: tuple[str, ...]
    variables: tuple[Var, ...]
    adam_class: str = "BASIC DATA STRUCTURE"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def var(self, name: str) -> Var:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"{self.name} has no variable {name!r}")


_STUDYID = Var(
    "STUDYID",
    "Study Identifier",
    "Char",
    "The study definition's name (metadata.study_name when the bundle has no study.yaml), upper-cased; "
    "every run of characters other than A-Z and 0-9 becomes '_'; leading/trailing '_' removed; "
    "prefixed with 'S' when it starts with a digit; cut to 32 characters (amlcohort.interop.adam.study_id).",
    "Assigned",
)
_USUBJID = Var("USUBJID", "Unique Subject Identifier", "Char", "STUDYID || '-' || patients.patient_id")
_SUBJID = Var("SUBJID", "Subject Identifier for the Study", "Char", "patients.patient_id", "Predecessor")
_ARMCD = Var(
    "ARMCD",
    "Planned Arm Code",
    "Char",
    "patients.study_arm (the arm code of the study definition)",
    "Predecessor",
)
_ARM = Var(
    "ARM",
    "Description of Planned Arm",
    "Char",
    "The label of arm ARMCD in the study definition (the code itself when the study declares no label)",
)
_TRT01P = Var("TRT01P", "Planned Treatment for Period 01", "Char", "= ARM")
_SAFFL = Var(
    "SAFFL", "Safety Population Flag", "Char", "'Y' if the subject has any exposure record, else 'N'"
)
_CRFL = Var(
    "CRFL",
    "Complete Remission Flag",
    "Char",
    "'Y' if the best overall response (ADRS PARAMCD BOR) is CR, else 'N'",
    "Derived (sponsor-defined)",
)
SUBJECT_KEYS = (_STUDYID, _USUBJID, _SUBJID)

ADSL = Dataset(
    "ADSL",
    "Subject-Level Analysis Dataset",
    "One record per subject",
    ("STUDYID", "USUBJID"),
    (
        *SUBJECT_KEYS,
        Var(
            "SITEID",
            "Study Site Identifier",
            "Char",
            "metadata.notes.site_id when given, else '01' (a single-site cohort)",
            "Assigned",
        ),
        Var("AGE", "Age", "Num", "patients.age_at_onset (completed years at AML diagnosis)", "Predecessor"),
        Var("AGEU", "Age Units", "Char", "'YEARS'", "Assigned"),
        Var("SEX", "Sex", "Char", "patients.sex: female -> 'F', male -> 'M' (CDISC CT SEX)"),
        _ARMCD,
        _ARM,
        Var("ACTARMCD", "Actual Arm Code", "Char", "= ARMCD for subjects with an exposure record, else NULL"),
        Var("ACTARM", "Description of Actual Arm", "Char", "= ARM for subjects with an exposure record"),
        _TRT01P,
        Var(
            "TRT01A",
            "Actual Treatment for Period 01",
            "Char",
            "= TRT01P for subjects with an exposure record (no cross-over is recorded), else NULL",
        ),
        Var(
            "TRTSDT",
            "Date of First Exposure to Treatment",
            "Date",
            "Study day 1: the first dose of the study's index drug (any study drug when none is named); "
            "cohort.first_dose()",
        ),
        Var(
            "TRTEDT",
            "Date of Last Exposure to Treatment",
            "Date",
            "Latest exposures.end_date of any study drug (an ongoing period ends at the data cut-off), "
            "capped at the cut-off",
        ),
        Var("TRTDURD", "Total Treatment Duration (Days)", "Num", "TRTEDT - TRTSDT + 1"),
        Var(
            "DTHDT",
            "Date of Death",
            "Date",
            "events.event_date of event_type 'death' on or before the cut-off",
        ),
        Var("DTHFL", "Subject Death Flag", "Char", "'Y' when DTHDT is not missing, else NULL"),
        Var("DTHCAUS", "Cause of Death", "Char", "events.death_cause of the death, upper-cased"),
        Var(
            "LSTALVDT",
            "Date Last Known Alive",
            "Date",
            "Latest date of any record of the subject (events, assessments, exposures), capped at the "
            "cut-off (amlcohort.endpoints.key_dates.last_known_alive)",
        ),
        Var(
            "RISKRPT",
            "Risk Group as Reported",
            "Char",
            "patients.risk_group_reported, upper-cased",
            "Predecessor",
        ),
        Var(
            "ELN2017",
            "ELN 2017 Genetic Risk",
            "Char",
            "amlcohort.criteria.risk.derive_risk(version='eln2017') (rules/eln_risk.csv), upper-cased",
            "Derived (sponsor-defined)",
        ),
        Var(
            "ELN2022",
            "ELN 2022 Genetic Risk",
            "Char",
            "amlcohort.criteria.risk.derive_risk(version='eln2022') (rules/eln_risk.csv), upper-cased",
            "Derived (sponsor-defined)",
        ),
        Var(
            "DISSTAT",
            "Disease Status Before Treatment",
            "Char",
            "amlcohort.criteria.population.derive_population status (rules/population.csv), upper-cased",
            "Derived (sponsor-defined)",
        ),
        Var(
            "ITTFL",
            "Intent-To-Treat Population Flag",
            "Char",
            "'Y' for every subject in the cohort",
            "Assigned",
        ),
        _SAFFL,
        Var(
            "POPFL",
            "Study Population Flag",
            "Char",
            "'Y' when derive_population membership is 'in_population' (rules/population.csv), else 'N'",
            "Derived (sponsor-defined)",
        ),
        _CRFL,
    ),
    "SUBJECT LEVEL ANALYSIS DATASET",
)

_ADY = Var(
    "ADY",
    "Analysis Relative Day",
    "Num",
    "ADT - TRTSDT + 1 on or after TRTSDT, ADT - TRTSDT before it (no day 0)",
)

ADRS = Dataset(
    "ADRS",
    "Response Analysis Dataset",
    "One record per subject, parameter and analysis date",
    ("STUDYID", "USUBJID", "PARAMCD", "ADT"),
    (
        *SUBJECT_KEYS,
        _ARMCD,
        _ARM,
        _TRT01P,
        Var(
            "PARAMCD",
            "Parameter Code",
            "Char",
            "'OVR' one record per response assessment after TRTSDT; 'BOR' one record per subject",
            "Assigned",
        ),
        Var("PARAM", "Parameter", "Char", "Description of PARAMCD naming the response criteria", "Assigned"),
        Var(
            "PARCAT1",
            "Parameter Category 1",
            "Char",
            "Response criteria set: 'STUDY', 'ELN2017' or 'ELN2022' (rules/response.csv)",
            "Assigned",
        ),
        Var(
            "AVALC",
            "Analysis Value (C)",
            "Char",
            "OVR: amlcohort.criteria.response.derive category; BOR: best_response (analysis table "
            "BESTRESP); codes cr crh cri mlfs pr sd nr pd relapse not_evaluable -> CR CRh CRi MLFS PR SD "
            "NR PD RELAPSE NE",
        ),
        Var(
            "AVAL",
            "Analysis Value",
            "Num",
            "Rank of AVALC, 1 = best: CR 1, CRh 2, CRi 3, MLFS 4, PR 5, SD 6, NR 7, PD 8, RELAPSE 9, NE 10",
        ),
        Var(
            "ADT",
            "Analysis Date",
            "Date",
            "OVR: assessments.assessment_date; BOR: first date of the best response",
        ),
        _ADY,
        Var(
            "SRCRULE",
            "Deciding Rule Identifier",
            "Char",
            "OVR: rule_id of the response rule that decided AVALC (rules/response.csv)",
            "Derived (sponsor-defined)",
        ),
        Var("ANL01FL", "Analysis Flag 01", "Char", "'Y' when AVALC is not NE"),
    ),
)

ADTTE = Dataset(
    "ADTTE",
    "Time-to-Event Analysis Dataset",
    "One record per subject and parameter",
    ("STUDYID", "USUBJID", "PARAMCD"),
    (
        *SUBJECT_KEYS,
        _ARMCD,
        _ARM,
        _TRT01P,
        _SAFFL,
        _CRFL,
        Var(
            "PARAMCD",
            "Parameter Code",
            "Char",
            "OS, EFS, RFS, TTCR from the analysis table's OS, EFS, CRDUR, DAYSCR parameters",
            "Assigned",
        ),
        Var("PARAM", "Parameter", "Char", "Description of PARAMCD, unit days", "Assigned"),
        Var("PARAMN", "Parameter (N)", "Num", "OS 1, EFS 2, RFS 3, TTCR 4", "Assigned"),
        Var(
            "STARTDT",
            "Time to Event Origin Date for Subject",
            "Date",
            "OS, EFS, TTCR: TRTSDT; RFS: date of the first CR",
        ),
        Var("ADT", "Analysis Date", "Date", "Date of the event, or of censoring (analysis table adt)"),
        Var(
            "AVAL",
            "Analysis Value",
            "Num",
            "ADT - STARTDT in days (elapsed days, as the report's analysis table: an event on STARTDT "
            "has AVAL 0; admiral's derive_vars_duration(add_one = TRUE) would add 1)",
        ),
        Var("AVALU", "Analysis Value Unit", "Char", "'DAYS'", "Assigned"),
        Var("CNSR", "Censor", "Num", "0 = event, 1 = censored (analysis table cnsr)"),
        Var("EVNTDESC", "Event or Censoring Description", "Char", "What the event (or censoring) is"),
        Var("CNSDTDSC", "Censor Date Description", "Char", "For a censored record, what ADT is"),
        Var("SRCDOM", "Source Data", "Char", "'ADSL' for OS/EFS/RFS events and censoring, 'ADRS' for TTCR"),
    ),
)

ADAE = Dataset(
    "ADAE",
    "Adverse Events Analysis Dataset",
    "One record per subject and adverse event",
    ("STUDYID", "USUBJID", "AESEQ"),
    (
        *SUBJECT_KEYS,
        _ARMCD,
        _ARM,
        _TRT01P,
        Var("TRTSDT", "Date of First Exposure to Treatment", "Date", "ADSL.TRTSDT"),
        Var("TRTEDT", "Date of Last Exposure to Treatment", "Date", "ADSL.TRTEDT"),
        Var("AESEQ", "Sequence Number", "Num", "Row number within subject, ordered by ASTDT then AETERM"),
        Var("AETERM", "Reported Term for the Adverse Event", "Char", "adverse_events.term", "Predecessor"),
        Var(
            "AEDECOD",
            "Dictionary-Derived Term",
            "Char",
            "adverse_events.term: the CTCAE term as reported (no MedDRA coding is applied)",
            "Predecessor",
        ),
        Var("ASTDT", "Analysis Start Date", "Date", "adverse_events.onset_date"),
        Var(
            "ASTDY", "Analysis Start Relative Day", "Num", "ASTDT - TRTSDT + 1 on or after TRTSDT (no day 0)"
        ),
        Var("AENDT", "Analysis End Date", "Date", "adverse_events.resolution_date (NULL: not resolved)"),
        Var("AENDY", "Analysis End Relative Day", "Num", "AENDT - TRTSDT + 1 on or after TRTSDT (no day 0)"),
        Var("AETOXGR", "Standard Toxicity Grade", "Char", "adverse_events.grade", "Predecessor"),
        Var("ATOXGR", "Analysis Toxicity Grade", "Char", "= AETOXGR (worst grade as reported)"),
        Var("AETOXVER", "CTCAE Version", "Char", "adverse_events.ctcae_version", "Predecessor"),
        Var(
            "TRTEMFL",
            "Treatment Emergent Analysis Flag",
            "Char",
            "'Y' when TRTSDT <= ASTDT <= TRTEDT + the treatment-emergent window (30 days unless the export "
            "is told otherwise), else NULL",
        ),
        Var(
            "AEACN",
            "Action Taken with Study Treatment",
            "Char",
            "adverse_events action (for the index drug when actions are recorded per drug) in CDISC CT: "
            "none -> DOSE NOT CHANGED, dose_reduced -> DOSE REDUCED, interrupted -> DRUG INTERRUPTED, "
            "withdrawn -> DRUG WITHDRAWN, not_applicable -> NOT APPLICABLE",
        ),
        Var(
            "AEACNOTH",
            "Other Action Taken",
            "Char",
            "Every recorded action as 'drug: action', ';'-separated",
        ),
        Var(
            "AEOUT",
            "Outcome of Adverse Event",
            "Char",
            "adverse_events.outcome in CDISC CT (RECOVERED/RESOLVED, RECOVERING/RESOLVING, "
            "NOT RECOVERED/NOT RESOLVED, RECOVERED/RESOLVED WITH SEQUELAE, FATAL, UNKNOWN)",
        ),
    ),
    "OCCURRENCE DATA STRUCTURE",
)

ADLB = Dataset(
    "ADLB",
    "Laboratory Analysis Dataset",
    "One record per subject, parameter and analysis date",
    ("STUDYID", "USUBJID", "PARAMCD", "ADT"),
    (
        *SUBJECT_KEYS,
        _ARMCD,
        _ARM,
        _TRT01P,
        Var("PARAMCD", "Parameter Code", "Char", "One code per assessments column (see PARAM)", "Assigned"),
        Var("PARAM", "Parameter", "Char", "The column's description with its canonical unit", "Assigned"),
        Var("AVAL", "Analysis Value", "Num", "The assessments value in the model's canonical unit"),
        Var("AVALU", "Analysis Value Unit", "Char", "The model's canonical unit of the column", "Assigned"),
        Var("ADT", "Analysis Date", "Date", "assessments.assessment_date"),
        _ADY,
        Var("ANRLO", "Analysis Normal Range Lower Limit", "Num", "assessments.<column>_lln when recorded"),
        Var("ANRHI", "Analysis Normal Range Upper Limit", "Num", "assessments.<column>_uln when recorded"),
        Var(
            "ABLFL",
            "Baseline Record Flag",
            "Char",
            "'Y' on the last record with a value on or before TRTSDT (ADY <= 1), per subject and parameter",
        ),
        Var("BASE", "Baseline Value", "Num", "AVAL of the ABLFL = 'Y' record"),
        Var("ATOXDSCL", "Analysis Toxicity Description Low", "Char", "CTCAE term graded for low values"),
        Var("ATOXDSCH", "Analysis Toxicity Description High", "Char", "CTCAE term graded for high values"),
        Var(
            "ATOXGRL",
            "Analysis Toxicity Grade Low",
            "Char",
            "amlcohort.criteria.ctcae.grade_assessments grade of ATOXDSCL (rules/ctcae_<version>.csv)",
        ),
        Var(
            "ATOXGRH",
            "Analysis Toxicity Grade High",
            "Char",
            "amlcohort.criteria.ctcae.grade_assessments grade of ATOXDSCH (rules/ctcae_<version>.csv)",
        ),
        Var(
            "ATOXGR",
            "Analysis Toxicity Grade",
            "Char",
            "admiral's derive_var_atoxgr: '-' || ATOXGRL when ATOXGRL > 0; else ATOXGRH when > 0; "
            "else '0' when a direction is graded 0; else NULL",
        ),
        Var("BTOXGR", "Baseline Toxicity Grade", "Char", "ATOXGR of the ABLFL = 'Y' record"),
        Var(
            "CTCAEVER", "CTCAE Version of Grading", "Char", "The study definition's CTCAE version", "Assigned"
        ),
    ),
)

DATASETS: tuple[Dataset, ...] = (ADSL, ADRS, ADTTE, ADAE, ADLB)
DATASETS_BY_NAME = {d.name: d for d in DATASETS}


def check_spec(datasets: tuple[Dataset, ...] = DATASETS) -> list[str]:
    """SAS transport v5 limits every specification must meet (an empty list when all do)."""
    out = []
    for d in datasets:
        if len(d.name) > 8 or len(d.label) > 40:
            out.append(f"dataset {d.name}: name > 8 or label > 40 characters")
        for v in d.variables:
            if len(v.name) > 8 or not v.name.isupper() or not v.name[0].isalpha():
                out.append(f"{d.name}.{v.name}: not a SAS v5 name")
            if len(v.label) > 40:
                out.append(f"{d.name}.{v.name}: label longer than 40 characters")
        if len(set(d.names)) != len(d.names):
            out.append(f"dataset {d.name}: duplicate variable")
    return out
