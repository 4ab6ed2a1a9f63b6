"""Build the study report: HTML (self-contained), figures (SVG; PNG on request), tables (CSV + one
XLSX), ``results.json``, ``manifest.json`` and, on request, a typeset PDF; written atomically.

>>> from amlcohort import load_cohort
>>> from amlcohort.report.build import build_report
>>> paths = build_report(load_cohort(), "out")      # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from amlcohort.io.cohort import Cohort
from amlcohort.report import figures as fig
from amlcohort.report import tables as tab
from amlcohort.report.audit import Verdict, audit, contradictions, load_claims
from amlcohort.report.html import render_html
from amlcohort.report.results import ARM_LABELS, StudyAnalysis, analyse

if TYPE_CHECKING:
    from amlcohort.report.output import OutputWarnings, Staging

Progress = Callable[[str], None]


@dataclass
class Report:
    """Everything the report shows, before it is written."""

    analysis: StudyAnalysis
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    verdicts: list[Verdict]
    protocol: dict | None


def _blasts(a: StudyAnalysis, cr: bool) -> pd.DataFrame:
    t = a.cohort.table("assessments")
    m = (
        t.filter(t.marrow_blasts_pct.notnull())
        .select("patient_id", study_day=t.assessment_study_day, marrow_blasts_pct=t.marrow_blasts_pct)
        .execute()
    )
    keep = a.patients.index[a.patients.cr == cr]
    m = m[m.patient_id.isin(keep)]
    m["group"] = m.patient_id.map(a.patients.study_arm.map(ARM_LABELS))
    return m


def _km_figure(a: StudyAnalysis, name: str, ylabel: str, times: list[float]) -> Figure:
    curves = {g: km.table for g, km in a.km[name].items() if g != "All patients"}
    risk = pd.DataFrame(
        {g: a.km[name][g].survival_at(times)["n_risk"].to_numpy() for g in curves}, index=times
    ).T
    meds = {g: a.km[name][g].median_ for g in curves if a.km[name][g].median_ is not None}
    med_text = " vs ".join(f"{g} {m:g} d" for g, m in meds.items())
    note = f"Log-rank p = {a.logrank[name].p_value:.3f}" + (f"; median {med_text}" if med_text else "")
    return fig.kaplan_meier_plot(
        curves, risk_table=risk, ylabel=ylabel, annotation=note, times=times, medians=meds
    )


def _swimmer(a: StudyAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    ex = a.cohort.table("exposures").execute()
    first = a.patients.first_dose
    ex["start_day"] = [(s - first[p]).days for p, s in zip(ex.patient_id, ex.start_date, strict=True)]
    end = ex.end_date.fillna(pd.Timestamp(a.cohort.metadata.cutoff_date).date())
    ex["end_day"] = [(e - first[p]).days for p, e in zip(ex.patient_id, end, strict=True)]
    ex["kind"] = [
        ("low-dose cytarabine" if d == "cytarabine" else f"sorafenib {ph}")
        for d, ph in zip(ex.drug, ex.phase, strict=True)
    ]
    bars = ex[["patient_id", "start_day", "end_day", "kind"]]
    last = a.patients.os_days
    off = pd.DataFrame(
        {"patient_id": last.index, "start_day": 0, "end_day": last.values, "kind": "off treatment"}
    )
    ev = a.cohort.table("events").execute()
    names = {
        "cr_reported": "CR",
        "hsct": "HSCT",
        "relapse": "relapse",
        "death": "death",
        "last_contact": "last contact",
    }
    ev = ev[ev.event_type.isin(names)]
    events = pd.DataFrame(
        {
            "patient_id": ev.patient_id,
            "event": ev.event_type.map(names),
            "day": [(d - first[p]).days for p, d in zip(ev.patient_id, ev.event_date, strict=True)],
        }
    )
    return pd.concat([off, bars], ignore_index=True), events


def assemble(
    cohort: Cohort,
    *,
    claims_path: str | Path | None = None,
    criteria: str = "study",
    progress: Progress | None = None,
) -> Report:
    """Compute the analysis, the tables, the figures, the claims audit and the protocol section."""
    step = progress or (lambda _s: None)
    step("deriving responses, endpoints and statistics")
    a = analyse(cohort, criteria)
    step("building tables")
    tables = {
        "table1_baseline": tab.table1(a),
        "response_by_arm": tab.response_table(a),
        "response_tests": tab.tests_table(a),
        "days_to_cr": tab.days_to_cr_table(a),
        "survival": tab.survival_table(a),
        "adverse_events": tab.adverse_events_table(a),
        "lab_ctcae_grades": tab.lab_grades_table(a),
        "dose_modifications": tab.dose_modifications_table(a),
    }
    step("auditing the paper's claims")
    verdicts = audit(a.figures, load_claims(claims_path) if claims_path else None)
    tables["claims_audit"] = tab.audit_table(verdicts)
    step("auditing protocol adherence")
    protocol = _protocol_section(cohort)
    if protocol is not None:
        tables["protocol_deviations"] = protocol["deviations"]
        tables["protocol_summary"] = protocol["summary"]
    step("drawing figures")
    sw_bars, sw_events = _swimmer(a)
    ae = tables["adverse_events"].melt(
        id_vars=["Term"],
        value_vars=[f"Grade {g}" for g in range(1, 6)],
        var_name="grade",
        value_name="n_patients",
    )
    ae = ae.assign(term=ae.Term, grade=ae.grade.str[-1].astype(int))[["term", "grade", "n_patients"]]
    horizon = max(a.patients.os_days.max(), 1)
    times = [float(t) for t in range(0, int(horizon) + 1, 180)]
    figures = {
        "figure1_blasts_cr": fig.blast_trajectories(
            _blasts(a, True), title="Figure 1. Patients with CR", max_day=120, reference_lines=(5.0, 10.0)
        ),
        "figure2_blasts_no_cr": fig.blast_trajectories(
            _blasts(a, False), title="Figure 2. Patients without CR", max_day=60
        ),
        "figure3_os_by_cr": _km_figure(a, "os_by_cr", "Overall survival (probability)", times),
        "figure4_efs_by_cr": _km_figure(a, "efs_by_cr", "Event-free survival (probability)", times),
        "figure5_swimmer": fig.swimmer_plot(sw_bars, sw_events, title="Course of each patient"),
        "figure6_adverse_events": fig.bar_by_grade(
            ae[ae.n_patients > 0], title="Adverse events, worst grade", n_total=len(a.patients)
        ),
    }
    return Report(a, tables, figures, verdicts, protocol)


def _protocol_section(cohort: Cohort) -> dict | None:
    from amlcohort.protocol import audit_section

    return audit_section(cohort)


def write_report(
    report: Report,
    out: str | Path,
    *,
    pdf: bool = False,
    png: bool = False,
    png_dpi: int = 150,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write every output of ``report`` as the folder ``out``, atomically; returns the main paths.

    Each figure is rendered once as SVG (``figures/*.svg``, embedded in the HTML and set in the PDF);
    PNG (``png_dpi``) only when ``png``. The whole folder is written beside ``out`` and swapped in
    (see :mod:`amlcohort.report.output`): the previous report stays complete until the new one is,
    a concurrent run on the same ``out`` fails, links are never followed, and ``manifest.json`` lists
    every file with its SHA-256. Raises :class:`amlcohort.report.output.OutputError` (one-line message)
    when ``out`` cannot be written.
    """
    from amlcohort.report.output import OutputWarnings, staged_output

    step = progress or (lambda _s: None)
    out = Path(out)
    warnings = OutputWarnings()
    drawn = {name: f for name, f in report.figures.items() if isinstance(f, Figure)}
    with staged_output(out) as stage:
        step("rendering figures (SVG)")
        svgs = {name: fig.render_figure(f, "svg") for name, f in drawn.items()}
        for name, data in svgs.items():
            stage.write_bytes(f"figures/{name}.svg", data)
        if png:
            for name, f in drawn.items():
                stage.write_bytes(f"figures/{name}.png", fig.render_figure(f, "png", dpi=png_dpi))
        step("writing tables")
        _write_tables(report.tables, stage, warnings)
        step("writing HTML")
        stage.write_text("report.html", render_html(report, svgs))
        if pdf:
            from amlcohort.report.pdf import render_pdf

            step("writing PDF")
            stage.write_bytes("report.pdf", render_pdf(report, svgs))
        results = report.analysis.results_json()
        results["audit"] = {
            v.claim.name: {"status": v.status, "paper": v.claim.value, "data": v.computed}
            for v in report.verdicts
        }
        results["audit_contradictions"] = [
            [x.claim.name, y.claim.name] for x, y in contradictions(report.verdicts)
        ]
        results["output_warnings"] = warnings.items
        results["outputs"] = {"manifest": "manifest.json", "files": dict(sorted(stage.files.items()))}
        stage.write_bytes("results.json", _json_bytes(results))
    final = out.absolute()
    paths = {"html": final / "report.html", "results": final / "results.json", "xlsx": final / "tables.xlsx"}
    if pdf:
        paths["pdf"] = final / "report.pdf"
    paths["manifest"] = final / "manifest.json"
    return paths


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n").encode("utf-8")


def _write_tables(tables: dict[str, pd.DataFrame], stage: Staging, warnings: OutputWarnings) -> None:
    """``tables/<name>.csv`` and one ``tables.xlsx`` (a sheet per table), formula text neutralised."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from amlcohort.report.output import safe_cell, xlsx_cell

    wb = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    bold = Font(bold=True)
    for name, t in tables.items():
        if t is None:
            continue
        csv = t.map(safe_cell) if len(t.columns) else t.copy()
        csv.columns = [safe_cell(str(c)) for c in t.columns]
        stage.write_bytes(f"tables/{name}.csv", csv.to_csv(index=False).encode("utf-8"))
        sheet = _sheet_name(name, used)
        ws = wb.create_sheet(sheet)
        header = []
        for c in t.columns:
            cell = WriteOnlyCell(ws, value=xlsx_cell(str(c))[0])
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for i, row in enumerate(t.itertuples(index=False, name=None), start=2):
            values = []
            for col, v in zip(t.columns, row, strict=True):
                value, cut = xlsx_cell(v)
                if cut is not None:
                    warnings.add(
                        file="tables.xlsx",
                        sheet=sheet,
                        row=i,
                        column=str(col),
                        length=cut,
                        message=f"text of {cut:,} characters cut to Excel's 32,767-character cell limit "
                        f"(marked in the cell); the full text is in tables/{name}.csv",
                    )
                values.append(value)
            ws.append(values)
    buf = io.BytesIO()
    wb.save(buf)
    stage.write_bytes("tables.xlsx", buf.getvalue())


def _sheet_name(name: str, used: set[str]) -> str:
    base = "".join("_" if ch in '[]:*?/\\' else ch for ch in name)[:31] or "table"
    sheet, k = base, 1
    while sheet.lower() in used:
        k += 1
        sheet = f"{base[: 31 - len(str(k)) - 1]}_{k}"
    used.add(sheet.lower())
    return sheet


def build_report(
    cohort: Cohort,
    out: str | Path,
    *,
    claims_path: str | Path | None = None,
    pdf: bool = False,
    png: bool = False,
    criteria: str = "study",
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Assemble and write the report for ``cohort`` as the folder ``out`` (see :func:`write_report`)."""
    report = assemble(cohort, claims_path=claims_path, criteria=criteria, progress=progress)
    return write_report(report, out, pdf=pdf, png=png, progress=progress)
