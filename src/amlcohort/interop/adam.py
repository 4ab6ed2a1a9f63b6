"""ADaM-style datasets (ADSL, ADRS, ADTTE, ADAE, ADLB) derived from any cohort, as Ibis expressions.

Every dataset is built from the derivations the report uses, never re-implemented:

* ADSL: ``cohort.first_dose()`` (TRTSDT), ``endpoints.key_dates.last_known_alive`` (LSTALVDT),
  ``criteria.risk.derive_risk`` (ELN2017/ELN2022), ``criteria.population.derive_population``
  (DISSTAT, POPFL) and the analysis table's best response (CRFL);
* ADRS: ``criteria.response.derive`` (OVR, one record per assessment) and the analysis table's
  BESTRESP (BOR, the same as ``criteria.response.best_response``);
* ADTTE: the analysis table (``endpoints.analysis.analysis_table``) OS, EFS, CRDUR (as RFS) and
  DAYSCR (as TTCR), AVAL and CNSR unchanged, so Kaplan-Meier and log-rank from ADTTE alone equal
  the report's;
* ADAE: ``adverse_events`` with TRTEMFL against ADSL's TRTSDT/TRTEDT;
* ADLB: ``assessments`` long, graded by ``criteria.ctcae.grade_assessments`` (ATOXGRL/ATOXGRH,
  combined into ATOXGR as admiral's ``derive_var_atoxgr`` does).

Columns are named and ordered by :mod:`amlcohort.interop.spec`; dates stay dates (SAS dates in XPT).
Arms (ARMCD/ARM/TRT01P) come from the cohort's study definition (``cohort.study``) when it has one,
else from ``patients.study_arm`` (code and label).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from amlcohort.criteria import response as resp
from amlcohort.criteria.ctcae import LAB_TERMS, grade_assessments
from amlcohort.criteria.engine import NOT_EVALUABLE, parser_depth_limited
from amlcohort.criteria.population import derive_population
from amlcohort.criteria.risk import derive_risk
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.endpoints.key_dates import last_known_alive
from amlcohort.interop.spec import ADAE, ADLB, ADRS, ADSL, ADTTE, Dataset
from amlcohort.io.cohort import Cohort
from amlcohort.schema import TABLES_BY_NAME

TRTEMFL_WINDOW_DAYS = 30
DEFAULT_SITE = "01"

# response codes (criteria/response.py) -> ADaM AVALC, and AVAL = the best-response rank
RESPONSE_AVALC: dict[str, str] = {
    "cr": "CR",
    "crh": "CRh",
    "cri": "CRi",
    "mlfs": "MLFS",
    "pr": "PR",
    "sd": "SD",
    "nr": "NR",
    "pd": "PD",
    "relapse": "RELAPSE",
    NOT_EVALUABLE: "NE",
}
NE_RANK = max(resp.RANK.values()) + 1

# analysis-table parameter -> (ADTTE PARAMCD, PARAMN, PARAM, SRCDOM)
TTE_PARAMS: dict[str, tuple[str, int, str, str]] = {
    "OS": ("OS", 1, "Overall Survival (days)", "ADSL"),
    "EFS": ("EFS", 2, "Event-Free Survival (days)", "ADSL"),
    "CRDUR": ("RFS", 3, "Relapse-Free Survival From First CR (days)", "ADSL"),
    "DAYSCR": ("TTCR", 4, "Time to First CR (days)", "ADRS"),
}

# assessments column -> ADLB PARAMCD (CDISC LBTESTCD where one exists)
LAB_PARAMCD: dict[str, str] = {
    "anc": "NEUT",
    "platelets": "PLAT",
    "wbc": "WBC",
    "hemoglobin": "HGB",
    "peripheral_blasts_pct": "PBBLAST",
    "marrow_blasts_pct": "BMBLAST",
    "alt": "ALT",
    "ast": "AST",
    "bilirubin": "BILI",
    "creatinine": "CREAT",
    "potassium": "K",
    "sodium": "SODIUM",
    "calcium": "CA",
}

AE_ACTIONS: dict[str, str] = {
    "none": "DOSE NOT CHANGED",
    "dose_reduced": "DOSE REDUCED",
    "interrupted": "DRUG INTERRUPTED",
    "withdrawn": "DRUG WITHDRAWN",
    "not_applicable": "NOT APPLICABLE",
    "unknown": "UNKNOWN",
}
AE_OUTCOMES: dict[str, str] = {
    "recovered": "RECOVERED/RESOLVED",
    "recovering": "RECOVERING/RESOLVING",
    "not_recovered": "NOT RECOVERED/NOT RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
    "unknown": "UNKNOWN",
}


# ---- study-level values ---------------------------------------------------------------------------


def study_id(name: str) -> str:
    """A SAS-friendly STUDYID from a study name: upper case, runs of other characters -> ``_``,
    no leading/trailing ``_``, ``S`` prefixed before a leading digit, at most 32 characters.

    >>> study_id("Sorafenib +/- LDAC (Xu et al. 2019)")
    'SORAFENIB_LDAC_XU_ET_AL_2019'
    >>> study_id("2019 cohort")
    'S2019_COHORT'
    """
    s = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "STUDY"
    if s[0].isdigit():
        s = "S" + s
    return s[:32].rstrip("_")


def _study(cohort: Cohort) -> Any:
    return getattr(cohort, "study", None)


def study_name(cohort: Cohort) -> str:
    study = _study(cohort)
    return str(getattr(study, "name", "") or cohort.metadata.study_name)


def response_criteria(cohort: Cohort) -> str:
    """The study definition's response criteria set (``study`` when the cohort has none)."""
    return str(getattr(_study(cohort), "criteria", None) or "study")


def ctcae_version(cohort: Cohort) -> str:
    """The study definition's CTCAE version (``4.03`` when the cohort has none, as the report grades)."""
    return str(getattr(_study(cohort), "ctcae_version", None) or "4.03")


def index_drug(cohort: Cohort) -> str | None:
    return getattr(_study(cohort), "index_drug", None)


def arm_labels(cohort: Cohort) -> dict[str, str]:
    """Arm code -> label: the study definition's arms, and every code in ``patients.study_arm``
    (the code is its own label when the study does not declare it)."""
    study = _study(cohort)
    out: dict[str, str] = {}
    for arm in getattr(study, "arms", ()) or ():
        out[str(arm.code)] = str(arm.label or arm.code)
    p = cohort.table("patients")
    for code in p.select("study_arm").distinct().to_pyarrow().column("study_arm").to_pylist():
        if code is not None:
            out.setdefault(str(code), str(code))
    return out


def _map(value: ir.StringValue, mapping: Mapping[str, str], default: Any = None) -> ir.StringValue:
    else_ = ibis.null("string") if default is None else default
    return ibis.cases(*[(value == k, v) for k, v in mapping.items()], else_=else_)


#: Parts stacked per query where the engine's parser is shallow (see :func:`_stacked`).
STACK_CHUNK = 8


def _stacked(parts: list[ir.Table], shallow: bool) -> ir.Table:
    """The rows of ``parts`` stacked (UNION ALL). Where the parser is shallow (SQLite) a few parts
    at a time are stacked and materialised, then those: Ibis nests a union of many parts, one level
    a part, and the 38 laboratory parameters overflow SQLite's parser stack."""
    if not shallow or len(parts) <= STACK_CHUNK:
        return ibis.union(*parts, distinct=False)
    chunks = [ibis.union(*parts[i:i + STACK_CHUNK], distinct=False).cache()
              for i in range(0, len(parts), STACK_CHUNK)]
    return _stacked(chunks, shallow)


def _as_double(codes: ir.IntegerValue) -> ir.FloatingValue:
    """Whole-number codes as double precision (ADaM's numeric type). A CASE of float literals is not
    one: PostgreSQL types ``1.0`` as NUMERIC, which Ibis then cannot read as the float64 it declares;
    a CASE of integers cast to float64 compiles to an explicit cast on every engine."""
    return codes.cast("float64")


def _study_day(date: ir.DateValue, ref: ir.DateValue) -> ir.IntegerValue:
    d = date.delta(ref, unit="day")
    return ibis.ifelse(d >= 0, d + 1, d).cast("int64")


def _flag(cond: ir.BooleanValue) -> ir.StringValue:
    return ibis.ifelse(cond.fill_null(False), ibis.literal("Y"), ibis.null("string"))


def _yn(cond: ir.BooleanValue) -> ir.StringValue:
    return ibis.ifelse(cond.fill_null(False), ibis.literal("Y"), ibis.literal("N"))


def _ordered(t: ir.Table, spec: Dataset) -> ir.Table:
    return t.select(*spec.names)


# ---- the datasets ---------------------------------------------------------------------------------


class AdamBuilder:
    """Builds the five datasets of one cohort, sharing the analysis table and ADSL between them."""

    def __init__(
        self, cohort: Cohort, criteria: str | None = None, trtemfl_window_days: int = TRTEMFL_WINDOW_DAYS
    ) -> None:
        self.cohort = cohort
        self.criteria = criteria or response_criteria(cohort)
        self.window = trtemfl_window_days
        self.studyid = study_id(study_name(cohort))
        self.cutoff = ibis.literal(cohort.metadata.cutoff_date, "date")
        self._analysis: ir.Table | None = None
        self._adsl: ir.Table | None = None

    @property
    def analysis(self) -> ir.Table:
        if self._analysis is None:
            self._analysis = analysis_table(self.cohort, self.criteria).cache()
        return self._analysis

    def _subject(self, patient_id: ir.StringValue) -> dict[str, ir.Value]:
        return {
            "STUDYID": ibis.literal(self.studyid),
            "USUBJID": ibis.literal(self.studyid + "-").concat(patient_id),
            "SUBJID": patient_id,
        }

    def adsl(self) -> ir.Table:
        if self._adsl is not None:
            return self._adsl
        c = self.cohort
        p = c.table("patients")
        first = c.first_dose()
        ex = c.table("exposures")
        last = ex.group_by("patient_id").aggregate(
            trtedt=ibis.least(ex.end_date.fill_null(self.cutoff), self.cutoff).max(), n_exposures=ex.count()
        )
        ev = c.table("events")
        dth = ev.filter((ev.event_type == "death") & (ev.event_date <= self.cutoff))
        dth = dth.group_by("patient_id").aggregate(dthdt=dth.event_date.min(), dthcaus=dth.death_cause.max())
        alive = last_known_alive(c)
        # the two rule-set derivations, materialised before the join: inlined in one query, their
        # nested CASEs and joins overflow SQLite's parser ("parser stack overflow")
        risk = derive_risk(p, c.table("mutations"), karyotypes=c.karyotype_lookup())
        risk = risk.select("patient_id", "eln2017", "eln2022").cache()
        pop = derive_population(c).select("patient_id", "status", "membership").cache()
        a = self.analysis
        bor = a.filter(a.paramcd == "BESTRESP").select("patient_id", bor=a.avalc)
        labels = arm_labels(c)
        j = p
        for t in (first, last, dth, alive, risk, pop, bor):
            j = j.left_join(t, p.patient_id == t.patient_id)
        j = j.select(
            p.patient_id,
            p.age_at_onset,
            p.sex,
            p.study_arm,
            p.risk_group_reported,
            first.first_dose,
            last.trtedt,
            last.n_exposures,
            dth.dthdt,
            dth.dthcaus,
            alive.last_alive,
            risk.eln2017,
            risk.eln2022,
            pop.status,
            pop.membership,
            bor.bor,
            # the study's arm labels as a CASE (an in-memory table joined here is not found when
            # the query runs on Spark)
            arm_label=_map(p.study_arm, labels),
        )
        treated = j.n_exposures.fill_null(0) > 0
        site = (
            str(c.metadata.notes.get("site_id", DEFAULT_SITE))
            if isinstance(c.metadata.notes, dict)
            else DEFAULT_SITE
        )
        arm = j.arm_label.fill_null(j.study_arm)
        out = j.select(
            **self._subject(j.patient_id),
            SITEID=ibis.literal(site),
            AGE=j.age_at_onset.cast("float64"),
            AGEU=ibis.literal("YEARS"),
            SEX=_map(j.sex, {"female": "F", "male": "M"}, ibis.literal("U")),
            ARMCD=j.study_arm,
            ARM=arm,
            ACTARMCD=ibis.ifelse(treated, j.study_arm, ibis.null("string")),
            ACTARM=ibis.ifelse(treated, arm, ibis.null("string")),
            TRT01P=arm,
            TRT01A=ibis.ifelse(treated, arm, ibis.null("string")),
            TRTSDT=j.first_dose,
            TRTEDT=j.trtedt,
            TRTDURD=(j.trtedt.delta(j.first_dose, unit="day") + 1).cast("float64"),
            DTHDT=j.dthdt,
            DTHFL=_flag(j.dthdt.notnull()),
            DTHCAUS=j.dthcaus.upper(),
            LSTALVDT=j.last_alive,
            RISKRPT=j.risk_group_reported.upper(),
            ELN2017=j.eln2017.upper(),
            ELN2022=j.eln2022.upper(),
            DISSTAT=j.status.upper(),
            ITTFL=ibis.literal("Y"),
            SAFFL=_yn(treated),
            POPFL=_yn(j.membership == "in_population"),
            CRFL=_yn(j.bor == "cr"),
        )
        self._adsl = _ordered(out, ADSL).order_by("USUBJID").cache()
        return self._adsl

    def _with_arm(self, t: ir.Table, extra: tuple[str, ...] = ()) -> ir.Table:
        """``t`` (with ``patient_id``) joined to ADSL's subject keys and arm variables."""
        s = self.adsl()
        keep = ("STUDYID", "USUBJID", "SUBJID", "ARMCD", "ARM", "TRT01P", *extra)
        j = t.left_join(s, t.patient_id == s.SUBJID)
        return j.select(*[s[k] for k in keep], *[t[n] for n in t.columns])

    def adrs(self) -> ir.Table:
        r = resp.derive(self.cohort, self.criteria)
        parcat = self.criteria.partition("@")[0].upper()
        ovr = r.select(
            "patient_id",
            PARAMCD=ibis.literal("OVR"),
            PARAM=ibis.literal(f"Overall Response by Assessment ({parcat} criteria)"),
            PARCAT1=ibis.literal(parcat),
            resp_code=r.response.fill_null(NOT_EVALUABLE),
            ADT=r.assessment_date,
            ADY=r.assessment_study_day.cast("int64"),
            SRCRULE=r.rule_id,
        )
        a = self.analysis
        first = self.cohort.first_dose()
        b = a.filter(a.paramcd == "BESTRESP")
        b = b.left_join(first, b.patient_id == first.patient_id).select(b, first.first_dose)
        bor = b.select(
            "patient_id",
            PARAMCD=ibis.literal("BOR"),
            PARAM=ibis.literal(f"Best Overall Response ({parcat} criteria)"),
            PARCAT1=ibis.literal(parcat),
            resp_code=b.avalc,
            ADT=b.adt,
            ADY=_study_day(b.adt, b.first_dose),
            SRCRULE=ibis.null("string"),
        )
        t = ibis.union(ovr, bor)
        rank = _as_double(ibis.cases(*[(t.resp_code == k, int(v)) for k, v in resp.RANK.items()],
                                     else_=int(NE_RANK)))
        t = t.mutate(
            AVALC=_map(t.resp_code, RESPONSE_AVALC, t.resp_code.upper()),
            AVAL=rank,
            ANL01FL=_flag(t.resp_code != NOT_EVALUABLE),
        ).drop("resp_code")
        return _ordered(self._with_arm(t), ADRS).order_by("USUBJID", "PARAMCD", "ADT")

    def adtte(self) -> ir.Table:
        a = self.analysis
        t = a.filter(a.paramcd.isin(tuple(TTE_PARAMS)))
        t = t.select(
            "patient_id",
            PARAMCD=_map(t.paramcd, {k: v[0] for k, v in TTE_PARAMS.items()}),
            PARAM=_map(t.paramcd, {k: v[2] for k, v in TTE_PARAMS.items()}),
            PARAMN=_as_double(ibis.cases(*[(t.paramcd == k, int(v[1])) for k, v in TTE_PARAMS.items()])),
            STARTDT=t.startdt,
            ADT=t.adt,
            AVAL=t.aval,
            AVALU=ibis.literal("DAYS"),
            CNSR=t.cnsr.cast("float64"),
            EVNTDESC=t.evntdesc.fill_null(t.cnsdtdsc),
            CNSDTDSC=t.cnsdtdsc,
            SRCDOM=_map(t.paramcd, {k: v[3] for k, v in TTE_PARAMS.items()}),
        )
        out = self._with_arm(t, ("SAFFL", "CRFL"))
        return _ordered(out, ADTTE).order_by("USUBJID", "PARAMN")

    def adae(self) -> ir.Table:
        ae = self.cohort.table("adverse_events")
        s = self.adsl()
        j = ae.left_join(s, ae.patient_id == s.SUBJID)
        action, other = self._actions(ae)
        w = ibis.window(group_by=ae.patient_id, order_by=[ae.onset_date, ae.term])
        emergent = (j.onset_date >= s.TRTSDT) & (
            # days after the last dose as a difference of dates (SQLite before 3.46 has no date +
            # interval)
            s.TRTEDT.isnull() | (j.onset_date.delta(s.TRTEDT, unit="day") <= self.window)
        )
        out = j.select(
            s.STUDYID,
            s.USUBJID,
            s.SUBJID,
            s.ARMCD,
            s.ARM,
            s.TRT01P,
            s.TRTSDT,
            s.TRTEDT,
            AESEQ=(ibis.row_number().over(w) + 1).cast("float64"),
            AETERM=ae.term,
            AEDECOD=ae.term,
            ASTDT=ae.onset_date,
            ASTDY=_study_day(ae.onset_date, s.TRTSDT),
            AENDT=ae.resolution_date,
            AENDY=_study_day(ae.resolution_date, s.TRTSDT),
            AETOXGR=ae.grade.cast("string"),
            ATOXGR=ae.grade.cast("string"),
            AETOXVER=ae.ctcae_version,
            TRTEMFL=_flag(emergent),
            AEACN=action,
            AEACNOTH=other,
            AEOUT=_map(ae.outcome, AE_OUTCOMES),
        )
        return _ordered(out, ADAE).order_by("USUBJID", "AESEQ")

    def _actions(self, ae: ir.Table) -> tuple[ir.StringValue, ir.StringValue]:
        """AEACN and AEACNOTH from ``action_taken``/``action_drug`` or per-drug ``action_<drug>`` columns."""
        if "action_taken" in ae.columns:
            drug = ae.action_drug if "action_drug" in ae.columns else ibis.null("string")
            other = ibis.ifelse(
                ae.action_taken.isnull() | drug.isnull(),
                ibis.null("string"),
                drug.concat(": ", ae.action_taken),
            )
            return _map(ae.action_taken, AE_ACTIONS), other
        per_drug = [c for c in ae.columns if c.startswith("action_")]
        if not per_drug:
            return ibis.null("string"), ibis.null("string")
        index = index_drug(self.cohort)
        main = f"action_{index}" if index and f"action_{index}" in per_drug else per_drug[0]
        parts = [
            ibis.ifelse(
                ae[c].isnull(), ibis.literal(""), ibis.literal(c.removeprefix("action_") + ": ").concat(ae[c])
            )
            for c in per_drug
        ]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined.concat(ibis.ifelse((joined != "") & (part != ""), "; ", ""), part)
        return _map(ae[main], AE_ACTIONS), ibis.ifelse(joined == "", ibis.null("string"), joined)

    def adlb(self) -> ir.Table:
        c = self.cohort
        a = c.table("assessments")
        model = TABLES_BY_NAME["assessments"]
        version = ctcae_version(c)
        graded = grade_assessments(a, version=version)
        shallow = parser_depth_limited(graded)  # SQLite: the terms' unions below nest too deep
        if shallow:
            graded = graded.cache()
        wide = graded.group_by(g_pid=graded.patient_id, g_date=graded.assessment_date).aggregate(
            **{f"g_{t.key}": graded.grade.max(where=graded.term_key == t.key) for t in LAB_TERMS}
        ).cache()  # materialised: each parameter's part below reads it (on Spark each part re-planned
        # the grading: plans of 6 x 10^7 characters)
        first = c.first_dose()
        j = a.left_join(wide, [a.patient_id == wide.g_pid, a.assessment_date == wide.g_date])
        j = j.left_join(first, j.patient_id == first.patient_id).select(
            *[j[n] for n in j.columns if n not in ("g_pid", "g_date")], first.first_dose
        )
        if shallow:
            j = j.cache()
        parts = []
        for col in model.columns:
            if col.dtype != "float" or col.name.endswith(("_uln", "_lln")):
                continue
            low = next((t for t in LAB_TERMS if t.value_column == col.name and t.limit == "lln"), None)
            high = next((t for t in LAB_TERMS if t.value_column == col.name and t.limit == "uln"), None)
            null_f, null_s = ibis.null("float64"), ibis.null("string")
            lln, uln = f"{col.name}_lln", f"{col.name}_uln"
            t = j.filter(j[col.name].notnull())
            parts.append(
                t.select(
                    "patient_id",
                    PARAMCD=ibis.literal(LAB_PARAMCD.get(col.name, col.name.upper()[:8])),
                    PARAM=ibis.literal(
                        f"{col.description.rstrip('.')} ({col.unit})"
                        if col.unit
                        else col.description.rstrip(".")
                    ),
                    AVAL=t[col.name].cast("float64"),
                    AVALU=ibis.literal(col.unit or ""),
                    ADT=t.assessment_date,
                    ADY=_study_day(t.assessment_date, t.first_dose),
                    ANRLO=t[lln].cast("float64") if lln in t.columns else null_f,
                    ANRHI=t[uln].cast("float64") if uln in t.columns else null_f,
                    ATOXDSCL=ibis.literal(low.term) if low else null_s,
                    ATOXDSCH=ibis.literal(high.term) if high else null_s,
                    ATOXGRL=t[f"g_{low.key}"].cast("string") if low else null_s,
                    ATOXGRH=t[f"g_{high.key}"].cast("string") if high else null_s,
                )
            )
        t = _stacked(parts, shallow)
        lo, hi = t.ATOXGRL.cast("int64"), t.ATOXGRH.cast("int64")
        t = t.mutate(
            ATOXGR=ibis.cases(
                (lo > 0, ibis.literal("-").concat(t.ATOXGRL)),
                (hi > 0, t.ATOXGRH),
                ((lo == 0) | (hi == 0), ibis.literal("0")),
                else_=ibis.null("string"),
            ),
            CTCAEVER=ibis.literal(version),
        )
        w = ibis.window(group_by=[t.patient_id, t.PARAMCD])
        t = t.mutate(_bl=ibis.ifelse(t.ADY <= 1, t.ADT, ibis.null("date")).max().over(w))
        is_bl = (t._bl == t.ADT).fill_null(False)
        t = t.mutate(
            ABLFL=_flag(is_bl),
            BASE=ibis.ifelse(is_bl, t.AVAL, ibis.null("float64")).max().over(w),
            BTOXGR=ibis.ifelse(is_bl, t.ATOXGR, ibis.null("string")).max().over(w),
        ).drop("_bl")
        return _ordered(self._with_arm(t), ADLB).order_by("USUBJID", "PARAMCD", "ADT")

    def all(self) -> dict[str, ir.Table]:
        return {
            "ADSL": self.adsl(),
            "ADRS": self.adrs(),
            "ADTTE": self.adtte(),
            "ADAE": self.adae(),
            "ADLB": self.adlb(),
        }


def adam_datasets(
    cohort: Cohort, criteria: str | None = None, *, trtemfl_window_days: int = TRTEMFL_WINDOW_DAYS
) -> dict[str, ir.Table]:
    """ADSL, ADRS, ADTTE, ADAE and ADLB of ``cohort`` as Ibis tables (see the module docstring)."""
    return AdamBuilder(cohort, criteria, trtemfl_window_days).all()
