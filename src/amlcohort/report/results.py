"""Every figure the report states, computed from a cohort and named stably (``results.json``).

:func:`analyse` runs the derivations (Ibis), pulls the small per-patient results to pandas and
computes the statistics. Names are dotted and stable (``cr.by_arm``, ``fisher.p_value``,
``os.median_days.by_cr``, ``logrank.os_by_cr.p_value``, ``days_to_cr.median``,
``followup.median_days``, ...); the claims audit looks figures up by these names.

Conventions: days are elapsed days from the first sorafenib dose (the day of the first dose is
0; the paper's "day 54 since sorafenib usage" is 54 elapsed days); months are days / 30.4375.
Survival medians follow R's ``survfit`` (midpoint where S = 0.5 exactly).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd

from amlcohort.criteria.population import derive_population
from amlcohort.criteria.risk import derive_risk
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.endpoints.blast_patterns import blast_patterns
from amlcohort.endpoints.neutropenia import first_neutropenia
from amlcohort.io.cohort import Cohort
from amlcohort.stats import (
    KaplanMeierResult,
    LogRankResult,
    chi_square_test,
    event_counts,
    fisher_exact,
    kaplan_meier_by_group_from_counts,
    kaplan_meier_from_counts,
    logrank_test_from_counts,
    median_follow_up_from_counts,
    proportion_ci,
)

DAYS_PER_MONTH = 365.25 / 12
ARMS = ("sorafenib_ldac", "sorafenib_alone")
ARM_LABELS = {"sorafenib_ldac": "Sorafenib + LDAC", "sorafenib_alone": "Sorafenib alone"}
CR_LABELS = {True: "CR", False: "No CR"}
CONF_TYPE = "log"  # R's survfit default, so the medians' intervals match what R users see


def months(days: float) -> float:
    return days / DAYS_PER_MONTH


def _clean(x: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN to None, dates to ISO text."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.date().isoformat()
    if isinstance(x, dt.date):
        return x.isoformat()
    return x


@dataclass
class StudyAnalysis:
    """The computed study: per-patient frames, fitted estimates and the named figures."""

    cohort: Cohort
    criteria: str
    patients: pd.DataFrame
    adtte: pd.DataFrame
    adtte_table: ibis.Table
    km: dict[str, dict[str, KaplanMeierResult]] = field(default_factory=dict)
    logrank: dict[str, LogRankResult] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: Any, note: str = "") -> None:
        self.figures[name] = _clean(value)
        if note:
            self.notes[name] = note

    def results_json(self) -> dict[str, Any]:
        m = self.cohort.metadata
        return {
            "study": m.study_name,
            "cutoff_date": m.cutoff_date.isoformat(),
            "reconstructed": m.reconstructed,
            "criteria": self.criteria,
            "figures": dict(sorted(self.figures.items())),
            "notes": self.notes,
        }


def _param(adtte: pd.DataFrame, code: str) -> pd.DataFrame:
    return adtte[adtte.paramcd == code].set_index("patient_id").sort_index()


def per_patient(cohort: Cohort, adtte: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: baseline, population, risk, blast pattern and endpoints."""
    p = cohort.table("patients").execute().set_index("patient_id").sort_index()
    pop = derive_population(cohort).execute().set_index("patient_id")
    risk = derive_risk(cohort.table("patients"), cohort.table("mutations")).execute().set_index("patient_id")
    pat = blast_patterns(cohort).execute().set_index("patient_id")
    out = p.join(pop[["status", "rr", "elderly_unfit", "flt3_itd_negative", "membership"]])
    out = out.join(risk[["eln2017", "eln2022", "karyotype_lesions", "n_abnormalities"]])
    out = out.join(pat[["baseline_blasts_pct", "week1_blasts_pct", "weeks_2_3_max_blasts_pct", "pattern"]])
    first = cohort.first_dose().execute().set_index("patient_id").first_dose
    out["first_dose"] = first
    best = _param(adtte, "BESTRESP")
    out["best_response"] = best.avalc
    out["cr"] = best.avalc == "cr"
    dcr = _param(adtte, "DAYSCR")
    out["days_to_cr"] = dcr.aval.where(dcr.cnsr == 0)
    out["first_cr_date"] = dcr.adt.where(dcr.cnsr == 0)
    for code in ("OS", "EFS", "CRDUR"):
        d = _param(adtte, code)
        out[f"{code.lower()}_days"] = d.aval
        out[f"{code.lower()}_event"] = 1 - d.cnsr
    tr = _param(adtte, "TRTDUR")
    out["sorafenib_days"], out["sorafenib_stop_reason"], out["sorafenib_last_date"] = (
        tr.aval,
        tr.avalc,
        tr.adt,
    )
    out["stopping_rule"] = _param(adtte, "STOPRULE").avalc
    pt = cohort.table("prior_therapies").execute()
    out["prior_lines"] = pt.groupby("patient_id").size().reindex(out.index, fill_value=0)
    out["prior_hsct"] = pt[pt.therapy_type == "hsct"].groupby("patient_id").size().reindex(out.index).notna()
    out["prior_relapse"] = (
        pt[pt.relapsed.astype("boolean").fillna(False).astype(bool)]
        .groupby("patient_id")
        .size()
        .reindex(out.index)
        .notna()
    )
    years = (out.first_dose - out.diagnosis_date).map(lambda d: d.days) / 365.25
    out["age_at_first_dose_min"] = out.age_at_onset + np.floor(years)
    out["age_at_first_dose_lower_bound"] = out.age_at_onset + years
    return out


def _km_by(analysis: StudyAnalysis, name: str, code: str, group_expr: str) -> None:
    """KM by group from counts aggregated by the engine, plus the log-rank test."""
    cohort = analysis.cohort
    t = analysis.adtte_table.filter(analysis.adtte_table.paramcd == code)
    best = analysis.adtte_table
    best = best.filter(best.paramcd == "BESTRESP").select("patient_id", cr=best.avalc == "cr")
    arms = cohort.table("patients").select("patient_id", "study_arm")
    j = t.join(best, "patient_id").join(arms, "patient_id")
    j = j.mutate(event=(1 - j.cnsr).cast("int64"), group=j.cr if group_expr == "cr" else j.study_arm)
    counts = event_counts(j, "aval", "event", group="group")
    curves = kaplan_meier_by_group_from_counts(counts, conf_type=CONF_TYPE)
    labels = CR_LABELS if group_expr == "cr" else ARM_LABELS
    analysis.km[name] = {labels[k]: v for k, v in curves.items()}
    analysis.km[name]["All patients"] = kaplan_meier_from_counts(
        event_counts(j, "aval", "event"), conf_type=CONF_TYPE
    )
    analysis.logrank[name] = logrank_test_from_counts(counts)


def analyse(cohort: Cohort, criteria: str = "study") -> StudyAnalysis:
    """Compute everything the report shows, under response criteria ``criteria``."""
    table = analysis_table(cohort, criteria).cache()
    adtte = table.execute()
    a = StudyAnalysis(cohort, criteria, per_patient(cohort, adtte), adtte, table)
    _baseline(a)
    _response(a)
    _survival(a)
    _adverse_events(a)
    _follow_up(a)
    _protocol(a)
    _criteria(a)
    return a


# ---- sections ----------------------------------------------------------------------------------


def _baseline(a: StudyAnalysis) -> None:
    p = a.patients
    a.put("cohort.n_patients", len(p))
    for arm in ARMS:
        a.put(f"arm.n.{arm}", int((p.study_arm == arm).sum()))
    a.put("baseline.female.n", int((p.sex == "female").sum()))
    a.put("baseline.age_at_onset.range", [int(p.age_at_onset.min()), int(p.age_at_onset.max())])
    a.put("baseline.age_at_onset.median", float(p.age_at_onset.median()))
    for g in ("favorable", "intermediate", "adverse"):
        a.put(f"baseline.risk.{g}.n", int((p.risk_group_reported == g).sum()))
    a.put("baseline.eln2017.by_group", p.eln2017.value_counts().to_dict())
    a.put(
        "baseline.eln2017.discordant.n",
        int((p.eln2017 != p.risk_group_reported).sum()),
        "ELN 2017 category differs from the risk group the paper reports",
    )
    a.put("baseline.flt3_itd_negative.n", int(p.flt3_itd_negative.sum()))
    a.put("population.refractory_or_relapsed.n", int(p.rr.sum()))
    a.put("population.elderly_unfit.n", int(p.elderly_unfit.sum()))
    a.put("population.by_status", p.status.value_counts().to_dict())
    a.put(
        "prior.relapsed.n", int(p.prior_relapse.sum()), "patients with a relapse after a prior CR (Table 1)"
    )
    pt = a.cohort.table("prior_therapies").execute()
    iv = pt.relapse_interval_months.dropna()
    a.put("prior.relapse_interval_months.range", [float(iv.min()), float(iv.max())] if len(iv) else None)
    a.put("prior.hsct.n", int(p.prior_hsct.sum()), "patients with an HSCT line in prior_therapies (Table 1)")
    a.put("prior.lines.median", float(p.prior_lines.median()))
    f = p.first_dose
    a.put("enrolment.first_dose.range", [f.min(), f.max()])


def _response(a: StudyAnalysis) -> None:
    p = a.patients
    a.put("cr.n", int(p.cr.sum()))
    by_arm: dict[str, Any] = {}
    table = []
    for arm in ARMS:
        g = p[p.study_arm == arm]
        x, n = int(g.cr.sum()), len(g)
        exact, wilson = proportion_ci(x, n), proportion_ci(x, n, method="wilson")
        by_arm[arm] = {
            "cr": x,
            "n": n,
            "rate": x / n if n else None,
            "ci95_exact": [exact.lower, exact.upper],
            "ci95_wilson": [wilson.lower, wilson.upper],
        }
        a.put(f"cr.n.{arm}", x)
        a.put(f"cr.rate.{arm}", x / n if n else None)
        table.append([x, n - x])
    a.put("cr.by_arm", by_arm)
    for cat, n in p.best_response.value_counts().items():
        a.put(f"best_response.{cat}.n", int(n))
    fisher = fisher_exact(table)
    a.put(
        "fisher.p_value",
        fisher.p_value,
        "two-sided; R: fisher.test(matrix(c(cr1, no1, cr2, no2), 2, byrow=TRUE))",
    )
    a.put("fisher.p_value.rounded", round(fisher.p_value, 2))
    a.put("fisher.odds_ratio", fisher.odds_ratio)
    a.put("fisher.p_value.greater", fisher_exact(table, alternative="greater").p_value)
    for corr, name in ((True, "chisq.yates"), (False, "chisq")):
        c = chi_square_test(table, correction=corr)
        a.put(f"{name}.statistic", c.statistic)
        a.put(f"{name}.p_value", c.p_value)
        a.put(f"{name}.warnings", list(c.warnings))
    d = p.days_to_cr.dropna()
    a.put("days_to_cr.median", float(d.median()) if len(d) else None)
    a.put("days_to_cr.range", [float(d.min()), float(d.max())] if len(d) else None)
    a.put("days_to_cr.by_patient", d.to_dict())
    cr = p[p.cr]
    t = a.cohort.table("assessments")
    # within 6 weeks: study days 2-43 (elapsed days 1-42)
    m = t.filter(t.marrow_blasts_pct.notnull() & t.assessment_study_day.between(2, 43))
    lowest = m.group_by("patient_id").aggregate(lowest=m.marrow_blasts_pct.min()).execute()
    early = lowest.set_index("patient_id").lowest.reindex(cr.index) < 10
    a.put("cr.blasts_below_10pct_by_day_42.n", int(early.sum()))
    no_cr = p[~p.cr]
    for pattern in ("transient_fall", "unchanged", "rising", "sustained_fall"):
        a.put(f"no_cr.blast_pattern.{pattern}.n", int((no_cr.pattern == pattern).sum()))
    unfit = p[p.elderly_unfit]
    a.put("elderly_unfit.cr.n", int(unfit.cr.sum()))
    a.put("elderly_unfit.transient_fall.n", int((unfit.pattern == "transient_fall").sum()))
    p34 = p.loc[[i for i in ("P03", "P04") if i in p.index]]
    a.put(
        "cr.patients_3_4.aged_over_70.n",
        int(((p34.age_at_first_dose_lower_bound > 70) & p34.cr).sum()),
        "age at the first dose = onset age + years since diagnosis (a lower bound: birth dates unknown)",
    )


def _survival(a: StudyAnalysis) -> None:
    _km_by(a, "os_by_cr", "OS", "cr")
    _km_by(a, "efs_by_cr", "EFS", "cr")
    _km_by(a, "os_by_arm", "OS", "arm")
    for name, prefix in (("os_by_cr", "os"), ("efs_by_cr", "efs")):
        curves = a.km[name]
        meds = {
            ("cr" if k == "CR" else "no_cr" if k == "No CR" else "all"): v.median_ for k, v in curves.items()
        }
        a.put(f"{prefix}.median_days.by_cr", meds)
        for k, v in meds.items():
            a.put(f"{prefix}.median_days.{k}", v)
        a.put(f"{prefix}.median_ci_days.by_cr", {k: list(v.median_ci_) for k, v in curves.items()})
        a.put(f"logrank.{name}.p_value", a.logrank[name].p_value)
        a.put(f"logrank.{name}.statistic", a.logrank[name].statistic)
    a.put("os.median_days.by_arm", {k: v.median_ for k, v in a.km["os_by_arm"].items()})
    a.put("logrank.os_by_arm.p_value", a.logrank["os_by_arm"].p_value)
    p = a.patients
    t = ibis.memtable(p.reset_index()[["os_days", "os_event"]])
    fu = median_follow_up_from_counts(event_counts(t, "os_days", "os_event"), conf_type=CONF_TYPE)
    a.put("followup.median_days", fu.median, "reverse Kaplan-Meier (censoring as the event)")
    a.put("followup.median_months", months(fu.median) if fu.median is not None else None)
    a.put("followup.observation_median_days", float(p.os_days.median()), "median observed time, all patients")
    relapsed = p[p.cr & (p.crdur_event == 1)]
    a.put(
        "efs_after_cr_months.range",
        [months(relapsed.crdur_days.min()), months(relapsed.crdur_days.max())] if len(relapsed) else None,
        "CR patients with relapse or death: months from CR to the event",
    )
    deaths = p[(p.os_event == 1) & (p.os_days <= 30)]
    a.put("induction.early_deaths.n", len(deaths), "deaths within 30 days of the first dose")


def _adverse_events(a: StudyAnalysis) -> None:
    ae = a.cohort.table("adverse_events").execute()
    p = a.patients
    ae = ae.join(p[["first_dose", "first_cr_date"]], on="patient_id")
    ae["onset_day"] = (ae.onset_date - ae.first_dose).map(lambda d: d.days)
    worst = ae.groupby(["term"]).apply(
        lambda g: g.groupby("patient_id").grade.max().value_counts().to_dict(), include_groups=False
    )
    a.put("ae.worst_grade.by_term", {t: {int(k): int(v) for k, v in d.items()} for t, d in worst.items()})
    a.put("criteria.ctcae_version", ",".join(sorted(ae.ctcae_version.unique())) if len(ae) else None)
    nonheme = ae[
        ~ae.term.isin(
            ["Neutrophil count decreased", "Platelet count decreased", "Anemia", "White blood cell decreased"]
        )
    ]
    maint = nonheme[
        (nonheme.grade >= 3) & nonheme.first_cr_date.notna() & (nonheme.onset_date > nonheme.first_cr_date)
    ]
    a.put("ae.grade3_in_maintenance.n", int(maint.patient_id.nunique()))
    alt = ae[ae.term == "Alanine aminotransferase increased"]
    a.put("ae.alt_increased.grade1.n", int(alt[alt.grade == 1].patient_id.nunique()))
    ppe = ae[ae.term == "Palmar-plantar erythrodysesthesia syndrome"].sort_values("onset_date")
    if len(ppe):
        first = ppe.iloc[0]
        a.put("ae.ppe.onset_study_day", int(first.onset_day), "elapsed days from the first dose")
        a.put("ae.ppe.worst_grade", int(ppe.grade.max()))
        a.put(
            "ae.ppe.days_to_worst_grade",
            int((first.worst_grade_date - first.onset_date).days)
            if pd.notna(first.worst_grade_date)
            else None,
        )
        ex = a.cohort.table("exposures").execute()
        sor = ex[(ex.patient_id == first.patient_id) & (ex.drug == "sorafenib")].sort_values("start_date")
        after = sor[sor.start_date > first.onset_date]
        if len(after):
            a.put("ae.ppe.rechallenge_dose_fraction", float(after.iloc[0].dose / sor.iloc[0].dose))
        skin = ae[
            ae.term.isin(
                [
                    "Rash maculo-papular",
                    "Palmar-plantar erythrodysesthesia syndrome",
                    "Skin and subcutaneous tissue disorders - Other",
                ]
            )
        ]
        a.put("ae.other_dermal.n", int(skin[skin.patient_id != first.patient_id].patient_id.nunique()))
    assess = a.cohort.table("assessments")
    chem = assess.filter(
        (assess.alt.notnull() | assess.creatinine.notnull()) & assess.assessment_study_day.between(1, 15)
    )
    a.put("ae.liver_kidney_tested_by_day_14.n", int(chem.patient_id.nunique().execute()))
    a.put("ae.neutropenia_over_7_days_in_cr.n", _neutropenia_over_7_days(a))


def _neutropenia_over_7_days(a: StudyAnalysis) -> int:
    """CR patients whose ANC stayed < 1.0 x10^9/L for more than 7 days after the first dose."""
    n = first_neutropenia(a.cohort)
    days = n.execute().set_index("patient_id").days
    return int((days.reindex(a.patients.index[a.patients.cr]) > 7).sum())


def _follow_up(a: StudyAnalysis) -> None:
    p = a.patients
    ev = a.cohort.table("events").execute()
    first_of = lambda kind: ev[ev.event_type == kind].groupby("patient_id").event_date.min()  # noqa: E731
    hsct, death, relapse, contact = (first_of(k) for k in ("hsct", "death", "relapse", "last_contact"))
    cr = p[p.cr]
    h = cr.index.intersection(hsct.index)
    a.put("followup.hsct_after_cr.n", len(h))
    if len(h):
        pid = h[0]
        a.put("followup.hsct_after_cr_months", months((hsct[pid] - cr.first_cr_date[pid]).days))
        end = death.get(pid, contact.get(pid))
        if end is not None and pid not in relapse.index:
            a.put("hsct_after_cr.event_free_years", (end - hsct[pid]).days / 365.25)
    stop = cr.sorafenib_last_date
    tox = cr[cr.sorafenib_stop_reason == "toxicity"]
    if len(tox):
        a.put(
            "followup.stopped_for_side_effect.study_day",
            int(tox.sorafenib_days.iloc[0] - 1),
            "elapsed days from the first dose to the last dose",
        )
    kept = cr[cr.sorafenib_stop_reason == "patient_decision"]
    if len(kept):
        a.put(
            "followup.stopped_after_cr_months",
            months((kept.sorafenib_last_date - kept.first_cr_date).iloc[0].days),
        )
    stopped = cr[cr.sorafenib_stop_reason.isin(["toxicity", "patient_decision"])]
    gaps = [months((death[i] - stop[i]).days) for i in stopped.index if i in death.index]
    a.put("followup.death_after_stop_months", [min(gaps), max(gaps)] if gaps else None)
    on_maint = cr[cr.sorafenib_stop_reason == "relapse"]
    rel = [months((relapse[i] - cr.first_cr_date[i]).days) for i in on_maint.index if i in relapse.index]
    a.put(
        "followup.relapse_on_maintenance_months",
        [min(rel), max(rel)] if rel else None,
        "months from CR to a relapse that ended sorafenib maintenance",
    )
    a.put(
        "cr.relapsed_within_11_months.n",
        len(rel),
        "CR patients whose relapse ended sorafenib maintenance (the discussion's 'two other')",
    )
    a.put("followup.alive_at_last_contact.n", int((p.os_event == 0).sum()))


def _protocol(a: StudyAnalysis) -> None:
    ex = a.cohort.table("exposures").execute()
    sor = ex[ex.drug == "sorafenib"].sort_values("start_date").groupby("patient_id").first()
    doses = sor.dose.unique()
    a.put(
        "protocol.sorafenib_dose_mg",
        float(doses[0]) if len(doses) == 1 else sorted(doses.tolist()),
        "starting dose per administration in exposures",
    )
    ldac = ex[ex.drug == "cytarabine"]
    if len(ldac):
        days = (ldac.end_date - ldac.start_date).map(lambda d: d.days + 1)
        a.put("protocol.ldac_days.range", [int(days.min()), int(days.max())])
        a.put("protocol.ldac_dose_mg_m2", float(ldac.dose.iloc[0]) if ldac.dose.nunique() == 1 else None)
    a.put("stopping_rule.fired.n", int((a.patients.stopping_rule == "stop").sum()))


def _criteria(a: StudyAnalysis) -> None:
    """Thresholds the paper states, read back from the rule files the derivations used."""
    from amlcohort.criteria.engine import ruleset
    from amlcohort.criteria.population import status_rules
    from amlcohort.criteria.response import rules_for

    def threshold(rules, outcome: str, variable: str) -> float | None:
        for rule in rules.rules:
            if rule.outcome == outcome:
                for clause in rule.clauses:
                    for c in clause:
                        if c.variable == variable and isinstance(c.value, float):
                            return c.value
        return None

    a.put("criteria.cr.blasts_pct", threshold(rules_for("study"), "cr", "marrow_blasts_pct"))
    a.put("criteria.elderly_unfit.age", threshold(status_rules(), "elderly_unfit", "age_at_onset"))
    protocol = "protocol_xu2019.csv"
    for name, rs, outcome, variable in (
        ("protocol.rbc_transfusion_hb_g_dl", "protocol.rbc_transfusion", "transfuse_rbc", "hemoglobin"),
        ("protocol.platelet_transfusion_threshold", "protocol.platelet_transfusion", "transfuse_platelets",
         "platelets"),
        ("protocol.gcsf_anc_threshold", "protocol.g_csf", "give_g_csf", "anc"),
    ):
        a.put(name, threshold(ruleset(protocol, rs, "2019"), outcome, variable),
              "threshold of the protocol rule file the audit runs")
