"""The self-contained HTML report (inline CSS, figures embedded as data URIs, no scripts)."""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd

from amlcohort.report.audit import contradictions
from amlcohort.report.figures import figure_to_data_uri

if TYPE_CHECKING:
    from amlcohort.report.build import Report

CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;
line-height:1.45;font-size:15px}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}th,td{border-bottom:1px solid #ddd;
padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#444}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:.6rem .8rem;margin:1rem 0}
.reproduced{color:#1a7f37}.discrepant{color:#b3261e;font-weight:bold}.muted{color:#777}
"""

CAPTIONS = {
    "figure1_blasts_cr": "Figure 1. Marrow blasts (%) over time in the patients who reached CR "
    "(reference lines at 5 % and 10 %).",
    "figure2_blasts_no_cr": "Figure 2. Marrow blasts (%) over time in the patients without CR.",
    "figure3_os_by_cr": "Figure 3. Overall survival from the first sorafenib dose by CR status "
    "(Kaplan–Meier; + censored; log-transformed pointwise 95% CI as R's survfit).",
    "figure4_efs_by_cr": "Figure 4. Event-free survival by CR status "
    "(induction failure is an event on day 1).",
    "figure5_swimmer": "Figure 5. Each patient's course: treatment periods, CR, HSCT, relapse, death or last "
    "contact.",
    "figure6_adverse_events": "Figure 6. Adverse events as reported, patients by worst CTCAE grade.",
}
TABLE_TITLES = {
    "table1_baseline": "Table 1. Baseline characteristics",
    "response_by_arm": "Table 2. Best response by arm",
    "response_tests": "Table 3. CR rate by arm: tests",
    "days_to_cr": "Table 4. Days from the first dose to CR",
    "survival": "Table 5. Survival medians and log-rank tests",
    "adverse_events": "Table 6. Adverse events as reported (patients by worst grade)",
    "lab_ctcae_grades": "Table 7. Laboratory adverse events graded by CTCAE v4.03 from the assessments",
    "dose_modifications": "Table 8. Dose modifications and treatment stops",
    "protocol_summary": "Table 9. Protocol deviations by rule",
    "protocol_deviations": "Table 10. Protocol deviations",
    "claims_audit": "Table 11. The paper's statements against the data",
}


def _e(x: object) -> str:
    return html.escape(str(x))


def _table(name: str, df: pd.DataFrame) -> str:
    body = df.to_html(index=False, escape=True, border=0, na_rep="", classes="data")
    return f'<section class="table" id="{name}"><h3>{_e(TABLE_TITLES.get(name, name))}</h3>{body}</section>'


def _figure(name: str, f) -> str:
    uri = figure_to_data_uri(f, "svg")
    cap = CAPTIONS.get(name, name)
    return f'<figure id="{name}"><img src="{uri}" alt="{_e(cap)}"><figcaption>{_e(cap)}</figcaption></figure>'


def _audit_rows(report: Report) -> str:
    rows = []
    for v in report.verdicts:
        cls = v.status.replace(" ", "-")
        rows.append(
            f'<tr class="{cls}"><td class="{cls}">{_e(v.status)}</td><td>{_e(v.claim.section)}</td>'
            f"<td>{_e(v.claim.name)}</td><td>{_e(v.detail)}</td><td>{_e(v.claim.sentence)}</td></tr>"
        )
    head = "<tr><th>Status</th><th>§</th><th>Figure</th><th>Paper vs data</th><th>Sentence</th></tr>"
    return (
        f'<section class="table" id="claims_audit"><h3>{_e(TABLE_TITLES["claims_audit"])}</h3>'
        f"<table>{head}{''.join(rows)}</table></section>"
    )


def summary_text(report: Report) -> str:
    if getattr(report, "summary", ""):  # written by assemble() from the study definition, any arms
        return report.summary
    f = report.analysis.figures
    ldac, alone = f["cr.by_arm"]["sorafenib_ldac"], f["cr.by_arm"]["sorafenib_alone"]
    med = f["os.median_days.by_cr"]
    return (
        f"{f['cohort.n_patients']} patients; CR in {ldac['cr']}/{ldac['n']} with sorafenib + low-dose "
        f"cytarabine and {alone['cr']}/{alone['n']} with sorafenib alone (Fisher's exact two-sided p = "
        f"{f['fisher.p_value']:.4f}); days to CR median {f['days_to_cr.median']:g} (range "
        f"{f['days_to_cr.range'][0]:g}–{f['days_to_cr.range'][1]:g}); median overall survival "
        f"{med['cr']:g} days with CR and {med['no_cr']:g} without (log-rank p = {f['logrank.os_by_cr.p_value']:.3f}); median "
        f"follow-up {f['followup.median_days']:g} days by reverse Kaplan–Meier."
    )


def render_html(report: Report) -> str:
    a = report.analysis
    m = a.cohort.metadata
    t, figs = report.tables, report.figures
    counts = Counter(v.status for v in report.verdicts)
    contra = contradictions(report.verdicts)
    banner = (
        "<div class='banner'><b>Reconstructed data.</b> This cohort is a reconstruction consistent with "
        "the published figures, not the original records.</div>"
        if m.reconstructed
        else ""
    )
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(m.study_name)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(m.study_name)}</h1>",
        f"<p class='muted'>Data cut-off {_e(m.cutoff_date)}. Response criteria: {_e(a.criteria)}. "
        f"{_e(m.source)}</p>",
        banner,
        "<div class='banner'>Research software, not a medical device: this report supports research and "
        "protocol documentation and does not recommend treatment for any patient.</div>",
        f"<h2 id='summary'>Summary</h2><p>{_e(summary_text(report))}</p>",
        "<h2 id='baseline'>Patients</h2>",
        _table("table1_baseline", t["table1_baseline"]),
        "<h2 id='response'>Response</h2>",
        _table("response_by_arm", t["response_by_arm"]),
        _table("response_tests", t["response_tests"]),
        _table("days_to_cr", t["days_to_cr"]),
        _figure("figure1_blasts_cr", figs["figure1_blasts_cr"]),
        _figure("figure2_blasts_no_cr", figs["figure2_blasts_no_cr"]),
        "<h2 id='survival'>Survival</h2>",
        _figure("figure3_os_by_cr", figs["figure3_os_by_cr"]),
        _figure("figure4_efs_by_cr", figs["figure4_efs_by_cr"]),
        _table("survival", t["survival"]),
        _figure("figure5_swimmer", figs["figure5_swimmer"]),
        "<h2 id='safety'>Adverse events and dose modifications</h2>",
        _table("adverse_events", t["adverse_events"]),
        _figure("figure6_adverse_events", figs["figure6_adverse_events"]),
        _table("lab_ctcae_grades", t["lab_ctcae_grades"]),
        _table("dose_modifications", t["dose_modifications"]),
    ]
    if report.protocol is not None:
        parts += [
            "<h2 id='protocol'>Protocol adherence</h2>",
            f"<p>{_e(report.protocol['text'])}</p>",
            _table("protocol_summary", t["protocol_summary"]),
            _table("protocol_deviations", t["protocol_deviations"]),
        ]
    contra_html = (
        "".join(
            f"<li>{_e(x.claim.name)} ({_e(x.claim.section)}) is reproduced, but "
            f"{_e(y.claim.name)} ({_e(y.claim.section)}) states the same figure differently: "
            f"{_e(y.detail)}</li>"
            for x, y in contra
        )
        or "<li>none</li>"
    )
    parts += [
        "<h2 id='audit'>Audit of the paper's statements</h2>",
        f"<p>{counts.get('reproduced', 0)} reproduced, {counts.get('discrepant', 0)} discrepant, "
        f"{counts.get('not computed', 0)} not computed, {counts.get('not auditable', 0)} not auditable "
        "(numbers about other studies).</p>",
        f"<p>Statements of the paper that contradict each other:</p><ul>{contra_html}</ul>",
        _audit_rows(report),
        "<h2 id='methods'>Methods of this report</h2><p>Kaplan–Meier estimates with Greenwood standard "
        "errors and log-transformed intervals, medians by R's rule (midpoint where S = 0.5 exactly), log-rank "
        "tests as R's survdiff, Fisher's exact test as R's fisher.test, exact (Clopper–Pearson) and Wilson intervals; "
        "every statistic is verified against R in the test suite. Days are counted from the first sorafenib "
        "dose; months are days / 30.4375. Median follow-up is by reverse Kaplan–Meier.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
