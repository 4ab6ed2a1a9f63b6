"""The report's tables, as small pandas DataFrames built from a :class:`StudyAnalysis`."""

from __future__ import annotations

import pandas as pd

from amlcohort.criteria.ctcae import grade_assessments, worst_grade
from amlcohort.report.audit import Verdict
from amlcohort.report.results import ARM_LABELS, ARMS, StudyAnalysis


def _n_pct(mask: pd.Series) -> str:
    n, d = int(mask.sum()), len(mask)
    return f"{n} ({100 * n / d:.0f}%)" if d else "0"


def _median_range(x: pd.Series) -> str:
    x = x.dropna()
    return f"{x.median():g} ({x.min():g}–{x.max():g})" if len(x) else "–"


def _karyotype_group(p: pd.DataFrame) -> pd.Series:
    n = p.n_abnormalities
    return pd.Series(
        [
            "normal"
            if v == 0
            else "complex (≥3 abnormalities)"
            if v >= 3
            else "other abnormal"
            if v > 0
            else "not evaluable"
            for v in n.fillna(-1)
        ],
        index=p.index,
    )


def table1(a: StudyAnalysis) -> pd.DataFrame:
    """Baseline characteristics, overall and by arm (counts with %, medians with range)."""
    p = a.patients.copy()
    p["karyotype_group"] = _karyotype_group(p)
    groups = {f"All (n={len(p)})": p}
    groups |= {f"{ARM_LABELS[arm]} (n={(p.study_arm == arm).sum()})": p[p.study_arm == arm] for arm in ARMS}
    rows: list[tuple[str, dict[str, str]]] = []

    def add(label: str, fn) -> None:
        rows.append((label, {name: fn(g) for name, g in groups.items()}))

    add("Age at onset, years, median (range)", lambda g: _median_range(g.age_at_onset))
    add("Female", lambda g: _n_pct(g.sex == "female"))
    for cat in sorted(p.who2008_category.unique()):
        add(f"WHO 2008: {cat}", lambda g, c=cat: _n_pct(g.who2008_category == c))
    for kg in ("normal", "other abnormal", "complex (≥3 abnormalities)"):
        add(f"Karyotype: {kg}", lambda g, k=kg: _n_pct(g.karyotype_group == k))
    m = a.cohort.table("mutations").execute()
    for gene in sorted(m.gene.unique()):
        mutated = set(m[(m.gene == gene) & (m.result == "mutated")].patient_id)
        add(f"{gene} mutated", lambda g, s=mutated: _n_pct(g.index.isin(s)))
    for risk in ("favorable", "intermediate", "adverse"):
        add(f"Risk group as reported: {risk}", lambda g, r=risk: _n_pct(g.risk_group_reported == r))
    for risk in ("favorable", "intermediate", "adverse", "not_evaluable"):
        add(f"ELN 2017 risk: {risk}", lambda g, r=risk: _n_pct(g.eln2017 == r))
    for status in ("primary_refractory", "relapsed", "elderly_unfit"):
        add(f"Population (§2.4): {status.replace('_', ' ')}", lambda g, s=status: _n_pct(g.status == s))
    add("Prior lines, median (range)", lambda g: _median_range(g.prior_lines))
    add("Prior allogeneic HSCT", lambda g: _n_pct(g.prior_hsct))
    return pd.DataFrame({label: vals for label, vals in rows}).T.rename_axis("Characteristic").reset_index()


def response_table(a: StudyAnalysis) -> pd.DataFrame:
    """Best response by arm with CR rates, exact and Wilson intervals, and the tests."""
    f, p = a.figures, a.patients
    rows = []
    for arm in ARMS:
        g = p[p.study_arm == arm]
        b = f["cr.by_arm"][arm]
        rows.append(
            {
                "Arm": ARM_LABELS[arm],
                "n": len(g),
                **{cat.upper(): int((g.best_response == cat).sum()) for cat in ("cr", "cri", "pr")},
                "CR rate": f"{100 * b['rate']:.1f}%",
                "95% CI (exact)": f"{100 * b['ci95_exact'][0]:.1f}–{100 * b['ci95_exact'][1]:.1f}%",
                "95% CI (Wilson)": f"{100 * b['ci95_wilson'][0]:.1f}–{100 * b['ci95_wilson'][1]:.1f}%",
            }
        )
    return pd.DataFrame(rows)


def tests_table(a: StudyAnalysis) -> pd.DataFrame:
    f = a.figures
    warn = "; ".join(f.get("chisq.warnings") or [])
    return pd.DataFrame(
        [
            {
                "Test": "Fisher's exact, two-sided",
                "Statistic": "",
                "p": f"{f['fisher.p_value']:.4f}",
                "Note": f"odds ratio {f['fisher.odds_ratio']:.2f} (conditional MLE)",
            },
            {
                "Test": "Fisher's exact, one-sided (combination better)",
                "Statistic": "",
                "p": f"{f['fisher.p_value.greater']:.4f}",
                "Note": "",
            },
            {
                "Test": "Chi-square with Yates' correction",
                "Statistic": f"{f['chisq.yates.statistic']:.3f}",
                "p": f"{f['chisq.yates.p_value']:.4f}",
                "Note": warn,
            },
            {
                "Test": "Chi-square without correction",
                "Statistic": f"{f['chisq.statistic']:.3f}",
                "p": f"{f['chisq.p_value']:.4f}",
                "Note": warn,
            },
        ]
    )


def days_to_cr_table(a: StudyAnalysis) -> pd.DataFrame:
    p = a.patients[a.patients.cr]
    return pd.DataFrame(
        {
            "Patient": p.index,
            "Arm": p.study_arm.map(ARM_LABELS),
            "Days to CR": p.days_to_cr.astype(int),
            "First CR": p.first_cr_date.astype(str),
        }
    )


def _num(x: float | None) -> str:
    return "NA" if x is None else f"{x:g}"


def survival_table(a: StudyAnalysis) -> pd.DataFrame:
    rows = []
    for name, title in (
        ("os_by_cr", "Overall survival"),
        ("efs_by_cr", "Event-free survival"),
        ("os_by_arm", "Overall survival"),
    ):
        lr = a.logrank[name]
        for group, km in a.km[name].items():
            lo, hi = km.median_ci_
            rows.append(
                {
                    "Endpoint": title,
                    "Group": group,
                    "n": km.n,
                    "Events": km.n_events,
                    "Median, days": "not reached" if km.median_ is None else f"{km.median_:g}",
                    "95% CI (log)": f"{_num(lo)}–{_num(hi)}",
                    "Log-rank p": "" if group == "All patients" else f"{lr.p_value:.3f}",
                }
            )
    return pd.DataFrame(rows)


def adverse_events_table(a: StudyAnalysis) -> pd.DataFrame:
    """Reported adverse events: patients by term and worst grade (CTCAE as reported)."""
    ae = a.cohort.table("adverse_events").execute()
    if ae.empty:
        return pd.DataFrame(
            columns=["Term", "Grade 1", "Grade 2", "Grade 3", "Grade 4", "Grade 5", "Patients"]
        )
    worst = ae.groupby(["term", "patient_id"]).grade.max().reset_index()
    t = worst.pivot_table(index="term", columns="grade", values="patient_id", aggfunc="count", fill_value=0)
    t = t.reindex(columns=range(1, 6), fill_value=0)
    t.columns = [f"Grade {g}" for g in t.columns]
    t["Patients"] = t.sum(axis=1)
    return t.sort_values("Patients", ascending=False).rename_axis("Term").reset_index()


def lab_grades_table(a: StudyAnalysis) -> pd.DataFrame:
    """Worst CTCAE v4.03 grade per patient of every graded laboratory term, after the first dose."""
    w = worst_grade(grade_assessments(a.cohort.table("assessments"), version="4.03"), from_study_day=1)
    w = w.execute()
    w = w[w.worst_grade.notna() & (w.worst_grade > 0)]
    if w.empty:
        return pd.DataFrame(columns=["Term"])
    t = w.pivot_table(index="term", columns="worst_grade", values="patient_id", aggfunc="count", fill_value=0)
    t.columns = [f"Grade {int(g)}" for g in t.columns]
    return t.rename_axis("Term (laboratory, CTCAE v4.03)").reset_index()


def dose_modifications_table(a: StudyAnalysis) -> pd.DataFrame:
    ex = a.cohort.table("exposures").execute()
    mod = ex[ex.end_reason.isin(["dose_reduction", "interruption", "toxicity", "stopping_rule"])]
    return (
        mod[
            [
                "patient_id",
                "drug",
                "phase",
                "dose",
                "dose_unit",
                "frequency",
                "start_date",
                "end_date",
                "end_reason",
            ]
        ]
        .rename(columns={"patient_id": "Patient"})
        .reset_index(drop=True)
    )


def audit_table(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Status": v.status,
                "Claim": v.claim.name,
                "Section": v.claim.section,
                "Paper": v.claim.value,
                "Data": v.computed,
                "Comparison": v.detail,
                "Sentence": v.claim.sentence,
            }
            for v in verdicts
        ]
    )
