"""The report's tables, as small pandas DataFrames built from a :class:`StudyAnalysis`.

Every table is about the cohort it is given: one column (or row) per arm of the study definition,
labels from the definition, response columns from the criteria set, laboratory grades in the
study's CTCAE version. A cell that cannot be computed says so and why ("not estimable: only one arm
has patients"); p-values print as "< 0.001", medians that are not reached as "not reached".

Table 1 follows the gtsummary/tableone conventions: a header row per characteristic naming its
summary ("n (%)", "median (IQR)"), one indented row per level, "Missing" and "Not tested" as rows of
their own (a gene that was not tested is never counted as "not mutated"), and optional p-values
(Fisher's exact test for categorical rows with expected counts below 5, else chi-square; Kruskal-Wallis
for continuous rows -- gtsummary's ``add_p()`` defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import ibis
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import ibis.expr.types as ir

from amlcohort.engines.order import read_in_order
from amlcohort.report.audit import Verdict
from amlcohort.report.results import (
    ALL,
    EFS_DAY1_NOTE,
    StudyAnalysis,
    no_marrow_reason,
    response_categories,
)

INDENT = "    "
#: labels of response categories (codes of rules/response.csv)
CATEGORY_LABELS = {
    "cr": "CR",
    "crh": "CRh",
    "cri": "CRi",
    "mlfs": "MLFS",
    "pr": "PR",
    "sd": "SD",
    "nr": "No response",
    "pd": "PD",
    "not_evaluable": "Not evaluable",
}


def fmt_p(p: float | None, reason: str | None = None) -> str:
    """A p-value as journals print it: "< 0.001" below 0.001, else three decimals."""
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return f"not estimable: {reason}" if reason else "not estimable"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float | None) -> str:
    """A p-value after "p" in a sentence: "= 0.032" or "< 0.001"."""
    text = fmt_p(p)
    return text if text.startswith(("<", "not")) else f"= {text}"


def fmt_num(x: float | None, na: str = "NA") -> str:
    return na if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:g}"


def fmt_ci(lo: float | None, hi: float | None, *, scale: float = 1.0, unit: str = "") -> str:
    """An interval; a bound that cannot be estimated prints NA and the cell says so."""

    def one(x: float | None) -> str:
        return (
            "NA"
            if x is None or (isinstance(x, float) and np.isnan(x))
            else f"{scale * x:.1f}{unit}"
            if scale != 1.0
            else f"{x:g}{unit}"
        )

    text = f"{one(lo)}–{one(hi)}"
    if "NA" in text:
        text += " (NA: bound not estimable)"
    return text


def _n_pct(mask: pd.Series) -> str:
    return _count_pct(int(mask.sum()), len(mask))


def _count_pct(n: int, d: int) -> str:
    return f"{n} ({100 * n / d:.0f}%)" if d else "0"


def gene_status_counts(cohort: Any) -> dict[str, pd.DataFrame]:
    """Per gene of the ``mutations`` table (sorted): patients per arm and status ("mutated", or
    "not mutated" for any other tested result), counted in the engine. Columns: study_arm, status,
    n. A gene whose every row is ``not_tested`` has no rows (all its patients are not tested).
    Rows are unique by patient and gene (the model's key), so rows are patients."""
    m = cohort.table("mutations")
    genes = sorted(str(g) for g in m.select("gene").distinct().to_pyarrow().column("gene").to_pylist()
                   if g is not None)
    tested = m.filter(m.result != "not_tested")
    pts = cohort.table("patients")
    pts = pts.select(_pid=pts.patient_id, study_arm=pts.study_arm)
    j = tested.inner_join(pts, tested.patient_id == pts._pid)
    status = ibis.ifelse(j.result == "mutated", "mutated", "not mutated")
    counts = j.group_by(gene=j.gene, study_arm=j.study_arm, status=status).agg(n=j.count()).execute()
    return {g: counts[counts.gene == g][["study_arm", "status", "n"]].reset_index(drop=True) for g in genes}


def _median_iqr(x: pd.Series) -> str:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if not len(x):
        return "–"
    q1, q3 = x.quantile(0.25), x.quantile(0.75)
    return f"{x.median():g} ({q1:g}, {q3:g})"


def _karyotype_group(p: pd.DataFrame) -> pd.Series:
    if "n_abnormalities" not in p.columns:
        return pd.Series(pd.NA, index=p.index, dtype="object")
    n = p.n_abnormalities
    return pd.Series(
        [
            None
            if pd.isna(v)
            else "normal"
            if v == 0
            else "complex (≥3 abnormalities)"
            if v >= 3
            else "other abnormal"
            for v in n
        ],
        index=p.index,
        dtype="object",
    )


def _groups(a: StudyAnalysis) -> dict[str, pd.DataFrame]:
    p = a.patients
    groups = {f"Overall (N={len(p)})": p}
    for arm in a.arms:
        g = p[p.study_arm == arm]
        groups[f"{a.arm_label(arm)} (N={len(g)})"] = g
    return groups


def _cat_p(p: pd.DataFrame, values: pd.Series, arms: list[str]) -> str:
    d = pd.DataFrame({"arm": p.study_arm, "v": values}).dropna()
    d = d[d.arm.isin(arms)]
    return _cat_p_table(pd.crosstab(d.arm, d.v).to_numpy())


def _cat_p_table(t: np.ndarray) -> str:
    """The p-value of a categorical Table 1 row from its arms x levels counts (rows and columns
    without patients left out, as a crosstab of the patients would)."""
    from amlcohort.stats import chi_square_test, fisher_exact
    from amlcohort.stats._distributions import chi2_contingency

    t = t[t.sum(1) > 0][:, t.sum(0) > 0] if t.size else t
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        return ""
    expected = np.outer(t.sum(1), t.sum(0)) / t.sum()
    if (expected < 5).any() and t.sum() <= 200:
        try:
            return fmt_p(fisher_exact(t).p_value) + " (Fisher)"
        except Exception:
            pass
    try:
        return fmt_p(chi_square_test(t, correction=False).p_value) + " (χ²)"
    except ValueError:
        return fmt_p(chi2_contingency(t)[1]) + " (χ²)"


def _cont_p(p: pd.DataFrame, values: pd.Series, arms: list[str]) -> str:
    from amlcohort.stats._distributions import kruskal_wallis

    samples = [pd.to_numeric(values[p.study_arm == arm], errors="coerce").dropna() for arm in arms]
    samples = [s for s in samples if len(s)]
    if len(samples) < 2 or len(pd.concat(samples).unique()) < 2:
        return ""
    return fmt_p(kruskal_wallis(samples)[1]) + " (Kruskal-Wallis)"


def table1(a: StudyAnalysis, *, p_values: bool = False) -> pd.DataFrame:
    """Baseline characteristics, overall and by arm (gtsummary/tableone conventions)."""
    p = a.patients.copy()
    p["karyotype_group"] = _karyotype_group(p)
    groups = _groups(a)
    arms = [arm for arm in a.arms if (p.study_arm == arm).any()]
    test = p_values and len(arms) >= 2
    rows: list[dict[str, str]] = []

    def row(label: str, fn: Callable[[pd.DataFrame], str] | None, pv: str = "",
            cells: dict[str, str] | None = None) -> None:
        """One row: each group's cell from ``fn(group)``, or given (``cells``, by group label)."""
        r = {"Characteristic": label,
             **(cells if cells is not None else {k: (fn(g) if fn else "") for k, g in groups.items()})}
        if test:
            r["p-value"] = pv
        rows.append(r)

    def continuous(label: str, col: str) -> None:
        if col not in p.columns:
            return
        row(f"{label}, median (IQR)", lambda g: _median_iqr(g[col]), _cont_p(p, p[col], arms) if test else "")
        miss = p[col].isna()
        if miss.any():
            row(f"{INDENT}Missing", lambda g: str(int(g[col].isna().sum())))

    def categorical(
        label: str,
        values: pd.Series,
        levels: list[Any] | None = None,
        missing_label: str = "Missing",
        names: dict[Any, str] | None = None,
    ) -> None:
        values = values.reindex(p.index)
        present = list(dict.fromkeys(v for v in values.dropna()))
        lv = list(levels or []) + [x for x in sorted(present, key=str) if x not in (levels or [])]
        row(f"{label}, n (%)", None, _cat_p(p, values, arms) if test else "")
        for level in lv:
            text = (names or {}).get(level, str(level).replace("_", " "))
            row(f"{INDENT}{text}", lambda g, v=level: _n_pct(values.reindex(g.index) == v))
        miss = values.isna()
        if miss.any():
            row(f"{INDENT}{missing_label}", lambda g: str(int(values.reindex(g.index).isna().sum())))

    continuous("Age at onset, years", "age_at_onset")
    categorical("Sex", p.sex, ["female", "male"])
    if "ecog_ps" in p.columns and p.ecog_ps.notna().any():
        categorical(
            "ECOG performance status", p.ecog_ps.astype("Int64").astype(object).where(p.ecog_ps.notna())
        )
    for col, label in (
        ("who2008_category", "WHO 2008 category"),
        ("diagnosis_category", "Diagnosis category"),
        ("who2016_category", "WHO 2016 category"),
        ("who2022_category", "WHO 2022 category"),
        ("icc2022_category", "ICC 2022 category"),
    ):
        if col in p.columns and p[col].notna().any():
            categorical(label, p[col])
    categorical(
        "Karyotype",
        p.karyotype_group,
        ["normal", "other abnormal", "complex (≥3 abnormalities)"],
        missing_label="Not evaluable",
    )
    group_arms = dict(zip(groups, [None, *a.arms], strict=True))  # _groups: overall, then each arm
    for gene, counts in gene_status_counts(a.cohort).items():
        # patients per arm and status, counted in the engine (a registry's mutations are never
        # read row by row); the patients of a group without a tested row are its "Not tested"
        n = {(arm, level): int(k) for arm, level, k in counts.itertuples(index=False)}

        def in_group(label: str, level: str, n: dict[tuple[Any, str], int] = n) -> int:
            arm = group_arms[label]
            return sum(k for (ar, lv), k in n.items() if lv == level and (arm is None or ar == arm))

        levels = ["mutated", "not mutated"]
        pv = _cat_p_table(np.array([[n.get((arm, lv), 0) for lv in levels] for arm in arms])) if test else ""
        row(f"{gene}, n (%)", None, pv)
        for level in levels:
            row(f"{INDENT}{level}", None,
                cells={k: _count_pct(in_group(k, level), len(g)) for k, g in groups.items()})
        if sum(n.values()) < len(p):
            row(f"{INDENT}Not tested", None,
                cells={k: str(len(g) - sum(in_group(k, lv) for lv in levels)) for k, g in groups.items()})
    if p.risk_group_reported.notna().any():
        categorical("Risk group as reported", p.risk_group_reported, ["favorable", "intermediate", "adverse"])
    for col, label in (("eln2017", "ELN 2017 genetic risk"), ("eln2022", "ELN 2022 genetic risk")):
        if col in p.columns:
            categorical(
                label,
                p[col].where(p[col] != "not_evaluable"),
                ["favorable", "intermediate", "adverse"],
                missing_label="Not evaluable",
            )
    if "status" in p.columns:
        categorical("Study population", p.status)
    continuous("Prior lines of therapy", "prior_lines")
    categorical("Prior HSCT", p.prior_hsct.map({True: "yes", False: "no"}), ["yes", "no"])
    return pd.DataFrame(rows)


def response_table(a: StudyAnalysis) -> pd.DataFrame:
    """Best response by arm (columns: the categories of the criteria set), CR rates with exact and
    Wilson intervals; not-estimable cells say why."""
    p = a.patients
    cats = response_categories(a.criteria)
    rows = []
    marrow = no_marrow_reason(a)
    for arm in [*a.arms, None]:
        g = p if arm is None else p[p.study_arm == arm]
        row: dict[str, Any] = {"Arm": "All patients" if arm is None else a.arm_label(arm), "n": len(g)}
        row |= {CATEGORY_LABELS.get(c, c): int((g.best_response == c).sum()) for c in cats}
        if not len(g):
            reason = "no patients in this arm"
            row |= {
                "CR rate": f"not estimable: {reason}",
                "95% CI (exact)": "not estimable",
                "95% CI (Wilson)": "not estimable",
            }
        elif marrow:
            row |= {"CR rate": marrow, "95% CI (exact)": "", "95% CI (Wilson)": ""}
        else:
            from amlcohort.stats import proportion_ci

            x = int(g.cr.sum())
            ex, wi = proportion_ci(x, len(g)), proportion_ci(x, len(g), method="wilson")
            row |= {
                "CR rate": f"{100 * x / len(g):.1f}%",
                "95% CI (exact)": fmt_ci(ex.lower, ex.upper, scale=100, unit="%"),
                "95% CI (Wilson)": fmt_ci(wi.lower, wi.upper, scale=100, unit="%"),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def tests_table(a: StudyAnalysis) -> pd.DataFrame:
    """CR by arm: Fisher's exact test (2×2 or r×c), chi-square with and without Yates' correction."""
    f = a.figures
    k = a.frames.get("cr_table", pd.DataFrame()).shape[0]
    shape = f"{k}×2" if k else "arms × CR"

    def p(name: str) -> str:
        return fmt_p(f.get(name), a.reason(name))

    def stat(name: str) -> str:
        v = f.get(name)
        return "" if v is None else f"{v:.3f}"

    warn = "; ".join(f.get("chisq.warnings") or [])
    rows = [
        {
            "Test": f"Fisher's exact, two-sided ({shape} table)",
            "Statistic": "",
            "df": "",
            "p": p("fisher.p_value"),
            "Note": ""
            if f.get("fisher.odds_ratio") is None
            else f"odds ratio {f['fisher.odds_ratio']:.2f} (conditional MLE)",
        },
    ]
    if f.get("fisher.p_value.greater") is not None:
        rows.append(
            {
                "Test": "Fisher's exact, one-sided (first arm better)",
                "Statistic": "",
                "df": "",
                "p": p("fisher.p_value.greater"),
                "Note": a.notes.get("fisher.p_value.greater", ""),
            }
        )
    if k == 2:
        rows.append(
            {
                "Test": "Chi-square with Yates' correction",
                "Statistic": stat("chisq.yates.statistic"),
                "df": str(f.get("chisq.yates.dof") or ""),
                "p": p("chisq.yates.p_value"),
                "Note": warn,
            }
        )
    rows.append(
        {
            "Test": "Chi-square without correction",
            "Statistic": stat("chisq.statistic"),
            "df": str(f.get("chisq.dof") or ""),
            "p": p("chisq.p_value"),
            "Note": warn,
        }
    )
    return pd.DataFrame(rows)


def days_to_cr_table(a: StudyAnalysis) -> pd.DataFrame:
    p = a.patients[a.patients.cr]
    if not len(p):
        reason = a.reason("days_to_cr.median") or "nobody reached CR"
        return pd.DataFrame(
            [{"Patient": "", "Arm": "", "Days to CR": f"not estimable: {reason}", "First CR": ""}]
        )
    return pd.DataFrame(
        {
            "Patient": p.index,
            "Arm": [a.arm_label(x) for x in p.study_arm],
            "Days to CR": p.days_to_cr.astype("Int64").astype(str),
            "First CR": p.first_cr_date.astype(str),
        }
    )


SURVIVAL_ENDPOINTS = (
    ("os_by_cr", "Overall survival", "CR status"),
    ("efs_by_cr", "Event-free survival", "CR status"),
    ("os_by_arm", "Overall survival", "arm"),
    ("efs_by_arm", "Event-free survival", "arm"),
)


def survival_table(a: StudyAnalysis) -> pd.DataFrame:
    """Per endpoint and group: n, events, median (not reached / not estimable with the reason), CI,
    log-rank p (k-1 df)."""
    from amlcohort.report.results import median_reason

    rows = []
    for name, title, by in SURVIVAL_ENDPOINTS:
        fits = a.km.get(name, {})
        lr = a.logrank.get(name)
        code = "EFS" if name.startswith("efs") else "OS"
        lr_text = (
            fmt_p(lr.p_value) + f" (df = {lr.dof})"
            if lr is not None and lr.p_value is not None and lr.dof >= 1
            else fmt_p(
                None,
                a.reason(f"logrank.{name}.p_value")
                or (lr.reason if lr is not None else None)
                or "the log-rank test gave no p-value",
            )
        )
        if not fits:
            rows.append(
                {
                    "Endpoint": f"{title} by {by}",
                    "Group": ALL,
                    "n": 0,
                    "Events": 0,
                    "Median, days": "not estimable: no patients",
                    "95% CI (log)": "",
                    "Log-rank p": lr_text,
                    "Note": "",
                }
            )
            continue
        for group, km in fits.items():
            if by == "arm" and group == ALL:
                continue
            lo, hi = km.median_ci_
            note = ""
            if km.median_ is None:
                med = median_reason(km, code)
            else:
                med = f"{km.median_:g}"
                if code == "EFS" and km.median_ == 0:
                    note = EFS_DAY1_NOTE
            rows.append(
                {
                    "Endpoint": f"{title} by {by}",
                    "Group": group,
                    "n": km.n,
                    "Events": km.n_events,
                    "Median, days": med,
                    "95% CI (log)": fmt_ci(lo, hi)
                    if km.median_ is not None or lo is not None
                    else "NA–NA (not estimable)",
                    "Log-rank p": "" if group == ALL else lr_text,
                    "Note": note,
                }
            )
    return pd.DataFrame(rows)


def adverse_events_table(a: StudyAnalysis) -> pd.DataFrame:
    """Reported adverse events: patients by term and worst grade, overall and by arm."""
    ae = a.frames.get("ae_counts")
    cols = ["Term", *(f"Grade {g}" for g in range(1, 6)), "Patients"]
    arm_cols = [f"{a.arm_label(arm)} (N={int((a.patients.study_arm == arm).sum())})" for arm in a.arms]
    if ae is None or ae.empty:
        reason = a.reason("ae.worst_grade.by_term") or "no adverse events reported"
        return pd.DataFrame(
            [{"Term": f"none: {reason}", **{c: 0 for c in cols[1:]}, **{c: 0 for c in arm_cols}}]
        )
    # patients per term and worst grade, counted in the engine (results.ae_counts)
    t = ae.pivot_table(index="term", columns="worst_grade", values="n_patients", aggfunc="sum", fill_value=0)
    t = t.reindex(columns=range(1, 6), fill_value=0)
    t.columns = [f"Grade {g}" for g in t.columns]
    t["Patients"] = ae.groupby("term").n_patients.sum()
    for arm, col in zip(a.arms, arm_cols, strict=True):
        in_arm = ae[ae.study_arm == arm].groupby("term").n_patients.sum()
        t[col] = in_arm.reindex(t.index).fillna(0).astype(int)
    return t.sort_values("Patients", ascending=False, kind="stable").rename_axis("Term").reset_index()


def lab_version(a: StudyAnalysis) -> str:
    return str(getattr(a.study, "ctcae_version", None) or "5.0")


def lab_terms(cohort: Any) -> tuple[str, ...]:
    """The CTCAE laboratory terms whose values the cohort's assessments hold (one small query)."""
    from amlcohort.criteria.ctcae import LAB_TERMS

    t = cohort.table("assessments")
    cols = sorted({s.value_column for s in LAB_TERMS if s.value_column in t.columns})
    present = t.aggregate(**{c: t[c].count() for c in cols}).execute().iloc[0] if cols else pd.Series()
    return tuple(
        s.term for s in LAB_TERMS if s.value_column in cols and int(present[s.value_column] or 0) > 0
    )


def lab_grade_counts(assessments: ir.Table, version: str, terms: tuple[str, ...]) -> ir.Table:
    """Patients per laboratory term and worst CTCAE grade (``version``) from day 1, grades 1 to 5:
    ``term``, ``worst_grade``, ``n_patients``. An aggregate computed in the engine (a few rows per
    term, whatever the cohort's size); the worst grade is :func:`~amlcohort.criteria.ctcae.worst_grade`'s
    (the highest grade of a patient's values of the term from study day 1)."""
    from amlcohort.criteria.ctcae import grade_assessments, worst_grade
    from amlcohort.criteria.engine import parser_depth_limited

    graded = grade_assessments(assessments, version=version, terms=terms)
    if parser_depth_limited(graded):  # SQLite: the terms' union, then the worst grade, nest too deep
        graded = graded.cache()
    worst = worst_grade(graded, from_study_day=1, dates=False)
    worst = worst.filter(worst.worst_grade >= 1)
    return worst.group_by(["term", "worst_grade"]).aggregate(n_patients=worst.count())


def lab_grades_query(cohort: Any, version: str) -> ir.Table | None:
    """:func:`lab_grade_counts` over the terms whose values the cohort has (None: it has none)."""
    # grade only the terms whose values the cohort has (one small query instead of a union of 14)
    terms = lab_terms(cohort)
    if not terms:
        return None
    return lab_grade_counts(cohort.table("assessments"), version, terms)


def lab_grades_table(a: StudyAnalysis, counts: ir.Table | Literal[False] | None = False) -> pd.DataFrame:
    """Patients by worst CTCAE grade (the study's version) of every graded laboratory term, from day 1.

    ``counts``: :func:`lab_grades_query`'s table when already built (e.g. materialised), else False."""
    version = lab_version(a)
    title = f"Term (laboratory, CTCAE v{version})"
    if counts is False:
        counts = lab_grades_query(a.cohort, version)
    if counts is None:
        return pd.DataFrame([{title: "none: the assessments hold no laboratory value CTCAE grades"}])
    w = counts.execute()
    if w.empty:
        return pd.DataFrame([{title: "none: no laboratory value reached grade 1 or more"}])
    t = w.pivot_table(index="term", columns="worst_grade", values="n_patients", aggfunc="sum", fill_value=0)
    t.columns = [f"Grade {int(g)}" for g in t.columns]
    return t.astype(int).rename_axis(title).reset_index()


def dose_modifications_table(a: StudyAnalysis) -> pd.DataFrame:
    ex = a.cohort.table("exposures")
    mod = ex.filter(ex.end_reason.isin(["dose_reduction", "interruption", "toxicity", "stopping_rule"]))
    cols = [
        c
        for c in (
            "patient_id",
            "drug",
            "phase",
            "dose",
            "dose_unit",
            "frequency",
            "start_date",
            "end_date",
            "end_reason",
        )
        if c in mod.columns
    ]
    df = read_in_order(mod.select(*cols), ["patient_id", "start_date"])
    if df.empty:
        return pd.DataFrame([{"Patient": "none: no dose modification or treatment stop recorded"}])
    return df.rename(columns={"patient_id": "Patient"}).reset_index(drop=True)


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
        ],
        columns=["Status", "Claim", "Section", "Paper", "Data", "Comparison", "Sentence"],
    )
