"""The self-contained HTML report, rendered from Jinja2 templates (``report/templates/*.j2``).

Autoescaped (every value from the cohort is text, never markup), one file: inline CSS, figures
embedded as SVG images (``data:image/svg+xml``; an SVG shown as an image can run nothing and load
nothing), no scripts, no network. Title, summary, captions and methods come from the study definition
(``cohort.study``: name, citation, arms, criteria, CTCAE version, what day 1 is) and from the computed
figures of ``results.json``; a figure that could not be computed is shown as "not estimable: <reason>".

:func:`report_context` is the one description of the report's content that both this module and
:mod:`amlcohort.report.pdf` render.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from amlcohort.report.audit import contradictions

if TYPE_CHECKING:
    import jinja2

    from amlcohort.report.build import Report

TEMPLATES = Path(__file__).with_name("templates")

#: Figure captions; ``{day1}``, ``{ctcae}`` and ``{criteria}`` come from the study definition.
CAPTIONS = {
    "figure1_blasts_cr": "Marrow blasts (%) over time in the patients who reached CR "
    "(reference lines at 5 % and 10 %).",
    "figure2_blasts_no_cr": "Marrow blasts (%) over time in the patients without CR.",
    "figure3_os_by_cr": "Overall survival from day 1 ({day1}) by CR status "
    "(Kaplan–Meier; + censored; log-transformed pointwise 95% CI as R's survfit).",
    "figure4_efs_by_cr": "Event-free survival from day 1 ({day1}) by CR status "
    "(induction failure is an event on day 1).",
    "figure5_swimmer": "Each patient's course: treatment periods, CR, HSCT, relapse, death or last contact.",
    "figure6_adverse_events": "Adverse events as reported, patients by worst CTCAE grade.",
}
#: Table titles (numbered in the order they appear).
TABLE_TITLES = {
    "table1_baseline": "Baseline characteristics",
    "response_by_arm": "Best response by arm ({criteria} criteria)",
    "response_tests": "CR rate by arm: tests",
    "days_to_cr": "Days from day 1 ({day1}) to CR",
    "survival": "Survival medians and log-rank tests",
    "adverse_events": "Adverse events as reported (patients by worst grade)",
    "lab_ctcae_grades": "Laboratory adverse events graded by CTCAE {ctcae} from the assessments",
    "dose_modifications": "Dose modifications and treatment stops",
    "protocol_summary": "Protocol deviations by rule",
    "protocol_deviations": "Protocol deviations",
    "claims_audit": "The source's statements against the data",
}
#: Sections and what they show, in order; tables and figures not named here go to "Other results".
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("baseline", "Patients", ("table1_baseline",)),
    (
        "response",
        "Response",
        ("response_by_arm", "response_tests", "days_to_cr", "figure1_blasts_cr", "figure2_blasts_no_cr"),
    ),
    ("survival", "Survival", ("figure3_os_by_cr", "figure4_efs_by_cr", "survival", "figure5_swimmer")),
    (
        "safety",
        "Adverse events and dose modifications",
        ("adverse_events", "figure6_adverse_events", "lab_ctcae_grades", "dose_modifications"),
    ),
    ("protocol", "Protocol adherence", ("protocol_summary", "protocol_deviations")),
)
NOT_ESTIMABLE = "not estimable"


# ---------------------------------------------------------------------------------------------
# The study, read defensively
# ---------------------------------------------------------------------------------------------
@dataclass
class StudyText:
    """What the report says about the study, from the study definition (or, lacking one, the data)."""

    name: str
    citation: str | None
    description: str
    arms: list[tuple[str, str]]
    criteria: str
    ctcae_version: str | None
    day1_text: str
    cutoff_date: str
    source: str
    reconstructed: bool

    def arm_label(self, code: str) -> str:
        return dict(self.arms).get(code, code)

    @property
    def placeholders(self) -> dict[str, str]:
        return {
            "day1": self.day1_text,
            "ctcae": f"v{self.ctcae_version}" if self.ctcae_version else "(version as declared)",
            "criteria": self.criteria,
        }


def _text(x: object, default: str = "") -> str:
    return default if x is None else str(x)


def study_text(report: Report, results: dict[str, Any] | None = None) -> StudyText:
    a = report.analysis
    cohort = a.cohort
    m = cohort.metadata
    st = getattr(cohort, "study", None)
    figures = (results or {}).get("figures", {})
    if st is not None and getattr(st, "arms", None):
        arms = [(str(x.code), str(getattr(x, "label", x.code) or x.code)) for x in st.arms]
    else:
        by_arm = figures.get("cr.by_arm")
        arms = [(str(c), str(c)) for c in by_arm] if isinstance(by_arm, dict) else []
    day1 = getattr(st, "day1_text", None) if st is not None else None
    return StudyText(
        name=_text(getattr(st, "name", None) or m.study_name, "Cohort study"),
        citation=getattr(st, "citation", None) if st is not None else None,
        description=_text(getattr(st, "description", "") if st is not None else ""),
        arms=arms,
        criteria=_text(a.criteria),
        ctcae_version=_text(getattr(st, "ctcae_version", None)) or None if st is not None else None,
        day1_text=_text(day1, "first dose of any study drug"),
        cutoff_date=_text(getattr(m, "cutoff_date", "")),
        source=_text(getattr(m, "source", "")),
        reconstructed=bool(getattr(m, "reconstructed", False)),
    )


# ---------------------------------------------------------------------------------------------
# Numbers, read defensively from results.json
# ---------------------------------------------------------------------------------------------
def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def lookup(results: dict[str, Any], name: str) -> tuple[Any, str | None]:
    """``(value, None)`` for a computed figure, ``(None, reason)`` for one that is not estimable."""
    figures = results.get("figures", {})
    notes = results.get("notes", {}) or {}
    extra = results.get("not_estimable", {}) or {}
    v = figures.get(name)
    if isinstance(v, dict) and ("not_estimable" in v or v.get("estimable") is False):
        return None, _text(v.get("not_estimable") or v.get("reason"), NOT_ESTIMABLE)
    if v is None:
        reason = extra.get(name) if isinstance(extra, dict) else None
        return None, _text(reason or notes.get(name), "not computed for this cohort")
    return v, None


def fmt_p(p: object) -> str:
    if not _is_num(p):
        return "NA"
    p = float(p)  # type: ignore[arg-type]
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p >= 0.01 else f"{p:.4f}"


def fmt_days(x: object) -> str:
    return f"{float(x):g} days" if _is_num(x) else "not reached"  # type: ignore[arg-type]


def summary_sentences(results: dict[str, Any], st: StudyText) -> list[str]:
    """The summary, one sentence per finding; a finding that is not estimable says why."""
    out: list[str] = []
    n, why = lookup(results, "cohort.n_patients")
    arms = f" in {len(st.arms)} arm{'s' if len(st.arms) != 1 else ''}" if st.arms else ""
    noun = "patient" if n == 1 else "patients"
    out.append(f"{n} {noun}{arms}." if n is not None else f"Number of patients {NOT_ESTIMABLE}: {why}.")

    by_arm, why = lookup(results, "cr.by_arm")
    if isinstance(by_arm, dict) and by_arm:
        parts = []
        for code, v in by_arm.items():
            if isinstance(v, dict) and _is_num(v.get("cr")) and _is_num(v.get("n")):
                parts.append(f"{v['cr']}/{v['n']} with {st.arm_label(code)}")
            else:
                parts.append(f"{st.arm_label(code)} {NOT_ESTIMABLE}")
        p, why_p = lookup(results, "fisher.p_value")
        test = (
            f" (Fisher's exact two-sided p = {fmt_p(p)})"
            if p is not None
            else f" (Fisher's exact test {NOT_ESTIMABLE}: {why_p})"
        )
        out.append("Complete remission (CR) in " + ", ".join(parts) + test + ".")
    else:
        out.append(f"CR by arm {NOT_ESTIMABLE}: {why}.")

    med, why = lookup(results, "days_to_cr.median")
    rng, _ = lookup(results, "days_to_cr.range")
    if _is_num(med):
        r = (
            f" (range {rng[0]:g}–{rng[1]:g})"
            if isinstance(rng, list | tuple) and len(rng) == 2 and all(_is_num(x) for x in rng)
            else ""
        )
        out.append(f"Days from day 1 to CR: median {med:g}{r}.")
    else:
        out.append(f"Days to CR {NOT_ESTIMABLE}: {why}.")

    os_med, why = lookup(results, "os.median_days.by_cr")
    lr, why_lr = lookup(results, "logrank.os_by_cr.p_value")
    if isinstance(os_med, dict):
        test = f"log-rank p = {fmt_p(lr)}" if lr is not None else f"log-rank test {NOT_ESTIMABLE}: {why_lr}"
        out.append(
            f"Median overall survival {fmt_days(os_med.get('cr'))} with CR and "
            f"{fmt_days(os_med.get('no_cr'))} without ({test})."
        )
    else:
        out.append(f"Overall survival by CR status {NOT_ESTIMABLE}: {why}.")

    fu, why = lookup(results, "followup.median_days")
    out.append(
        f"Median follow-up {fu:g} days by reverse Kaplan–Meier."
        if _is_num(fu)
        else f"Median follow-up {NOT_ESTIMABLE}: {why}."
    )
    return out


def summary_text(report: Report) -> str:
    if getattr(report, "summary", ""):  # written by assemble() from the study definition, any arms
        return report.summary
    results = report.analysis.results_json()
    return " ".join(summary_sentences(results, study_text(report, results)))


def methods_text(st: StudyText) -> str:
    ctcae = f"CTCAE v{st.ctcae_version}" if st.ctcae_version else "the declared CTCAE version"
    return (
        f"Day 1 is the day of the {st.day1_text}; the day before is day -1; months are days / 30.4375. "
        f"Response by the {st.criteria} criteria; laboratory adverse events graded by {ctcae}. "
        "Kaplan–Meier estimates with Greenwood standard errors and log-transformed intervals, medians by "
        "R's rule (midpoint where S = 0.5 exactly), log-rank tests as R's survdiff, Fisher's exact test as "
        "R's fisher.test, exact (Clopper–Pearson) and Wilson intervals; every statistic is verified "
        "against R in the test suite. Median follow-up is by reverse Kaplan–Meier. A figure that cannot "
        "be computed on this cohort is reported as not estimable, with the reason."
    )


# ---------------------------------------------------------------------------------------------
# The content, as plain data for the templates
# ---------------------------------------------------------------------------------------------
def cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:g}"
    if type(v).__name__ in {"NaTType", "NAType"}:
        return ""
    return str(v)


#: Rows of a table shown in the HTML and the PDF; a longer table (a registry's listing of dose
#: modifications) shows its first rows and says where all of them are (the CSV and the XLSX).
DOCUMENT_MAX_ROWS = 500


@dataclass
class TableBlock:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    kind: str = "table"
    note: str = ""  # e.g. that only the first rows are shown


@dataclass
class FigureBlock:
    id: str
    caption: str
    svg: bytes | None
    reason: str | None = None
    kind: str = "figure"


@dataclass
class Section:
    id: str
    title: str
    blocks: list[TableBlock | FigureBlock] = field(default_factory=list)
    text: str = ""


@dataclass
class ReportContext:
    study: StudyText
    summary: list[str]
    sections: list[Section]
    audit: dict[str, Any] | None
    methods: str


def _table_block(name: str, df: pd.DataFrame, title: str) -> TableBlock:
    shown = df.head(DOCUMENT_MAX_ROWS)
    note = ""
    if len(df) > len(shown):
        note = (f"The first {len(shown):,} of {len(df):,} rows; every row is in tables/{name}.csv "
                f"and tables.xlsx.")
    return TableBlock(
        id=name,
        title=title,
        columns=[str(c) for c in df.columns],
        rows=[[cell_text(v) for v in row] for row in shown.itertuples(index=False, name=None)],
        note=note,
    )


def _figure_reason(report: Report, results: dict[str, Any], name: str) -> str:
    reasons = getattr(report, "not_estimable", None)
    if isinstance(reasons, dict) and reasons.get(name):
        return str(reasons[name])
    value = report.figures.get(name)
    if isinstance(value, str) and value:
        return value
    _, why = lookup(results, name)
    return why or "the figure could not be drawn for this cohort"


def report_context(
    report: Report, svgs: dict[str, bytes], results: dict[str, Any] | None = None
) -> ReportContext:
    """Everything the HTML and the PDF show, in order, with numbered titles and captions."""
    results = results if results is not None else report.analysis.results_json()
    st = study_text(report, results)
    ph = st.placeholders
    tables = {k: v for k, v in report.tables.items() if isinstance(v, pd.DataFrame)}
    figure_names = list(report.figures)
    n_table = n_fig = 0
    placed: set[str] = set()

    def block(name: str) -> TableBlock | FigureBlock | None:
        nonlocal n_table, n_fig
        if name in tables and name != "claims_audit":
            n_table += 1
            title = report.table_titles.get(name) or TABLE_TITLES.get(
                name, name.replace("_", " ").capitalize()
            ).format(**ph)
            placed.add(name)
            return _table_block(name, tables[name], f"Table {n_table}. {title}")
        if name in figure_names:
            n_fig += 1
            cap = report.captions.get(name) or CAPTIONS.get(name, name.replace("_", " ").capitalize()).format(
                **ph
            )
            placed.add(name)
            svg = svgs.get(name)
            reason = None if svg else _figure_reason(report, results, name)
            return FigureBlock(id=name, caption=f"Figure {n_fig}. {cap}", svg=svg, reason=reason)
        return None

    sections: list[Section] = []
    for sid, title, names in SECTIONS:
        blocks = [b for b in (block(n) for n in names) if b is not None]
        if blocks:
            text = _text(report.protocol.get("text")) if sid == "protocol" and report.protocol else ""
            sections.append(Section(sid, title, blocks, text))
    rest = [n for n in [*tables, *figure_names] if n not in placed and n != "claims_audit"]
    if rest:
        sections.append(Section("other", "Other results", [b for b in map(block, rest) if b]))

    audit = None
    if report.verdicts:
        counts = Counter(v.status for v in report.verdicts)
        n_table += 1
        audit = {
            "title": f"Table {n_table}. {TABLE_TITLES['claims_audit']}",
            "counts": {
                s: counts.get(s, 0) for s in ("reproduced", "discrepant", "not computed", "not auditable")
            },
            "contradictions": [
                {
                    "a": x.claim.name,
                    "a_section": x.claim.section,
                    "b": y.claim.name,
                    "b_section": y.claim.section,
                    "detail": y.detail,
                }
                for x, y in contradictions(report.verdicts)
            ],
            "rows": [
                {
                    "status": v.status,
                    "css": v.status.replace(" ", "-"),
                    "section": v.claim.section,
                    "name": v.claim.name,
                    "detail": v.detail,
                    "sentence": v.claim.sentence,
                }
                for v in report.verdicts
            ],
        }
    summary = [report.summary] if report.summary else summary_sentences(results, st)
    return ReportContext(st, summary, sections, audit, report.methods or methods_text(st))


def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report, svgs: dict[str, bytes] | None = None) -> str:
    """The report as one HTML document. ``svgs``: figure name → SVG bytes (rendered once by the caller)."""
    from amlcohort.report.figures import data_uri, render_figure

    if svgs is None:
        svgs = {
            n: render_figure(f, "svg")
            for n, f in report.figures.items()
            if f is not None and not isinstance(f, str)
        }
    ctx = report_context(report, svgs)
    uris = {name: data_uri(data, "svg") for name, data in svgs.items()}
    return _environment().get_template("report.html.j2").render(r=ctx, uris=uris)
