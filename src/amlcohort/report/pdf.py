"""The PDF report, typeset with Typst (the ``typst`` wheel from PyPI ships the compiler; nothing else).

A4, page numbers, wrapped titles and captions, tables that break across pages with their header
repeated, figures at full width (the same SVG as the HTML). The content is
:func:`amlcohort.report.html.report_context` — the HTML's — handed to the Typst template
(``templates/report.typ``) as a JSON file: every text from the cohort (study name, adverse-event terms,
patient ids) reaches Typst as a *string value*, displayed literally, never parsed as Typst markup or
code, so nothing needs escaping and nothing can be injected.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlcohort.report.html import TEMPLATES, FigureBlock, TableBlock, report_context

if TYPE_CHECKING:
    from amlcohort.report.build import Report

#: A cell longer than this is cut in the PDF, with a visible marker (the CSV and XLSX keep it).
PDF_CELL_LIMIT = 1500
#: Text width and height available on an A4 page with the template's margins, in cm.
TEXT_WIDTH_CM, TEXT_HEIGHT_CM = 17.0, 22.5


class PdfError(RuntimeError):
    """Typst could not typeset the report (a bug in amlcohort's template, not in the cohort)."""


def _cell(text: str) -> str:
    if len(text) > PDF_CELL_LIMIT:
        return text[:PDF_CELL_LIMIT] + f" … [cut: {len(text):,} characters; full text in the CSV]"
    return text


def _column_weights(b: TableBlock) -> list[float]:
    """Relative column widths: longest line per column (header words count), bounded to 3–40 chars."""
    weights = []
    for j, c in enumerate(b.columns):
        longest = max([len(w) for w in c.split()] or [1])
        for row in b.rows:
            longest = max(longest, min(len(row[j]), 40))
        weights.append(float(min(max(longest, 3), 40)))
    return weights


def _svg_size(svg: bytes) -> tuple[float, float] | None:
    head = svg[:2000].decode("utf-8", "replace")
    w = re.search(r'width="([\d.]+)pt"', head)
    h = re.search(r'height="([\d.]+)pt"', head)
    return (float(w.group(1)), float(h.group(1))) if w and h else None


def document_data(report: Report, svgs: dict[str, bytes], results: dict[str, Any] | None = None) -> dict:
    """The JSON the Typst template reads (figure files are named ``fig-<n>.svg``)."""
    ctx = report_context(report, svgs, results)
    sections = []
    n = 0
    for s in ctx.sections:
        blocks: list[dict[str, Any]] = []
        for b in s.blocks:
            if isinstance(b, TableBlock):
                blocks.append(
                    {
                        "kind": "table",
                        "title": b.title,
                        "columns": b.columns,
                        "rows": [[_cell(v) for v in r] for r in b.rows],
                        "weights": _column_weights(b),
                        "small": len(b.columns) > 6,
                    }
                )
            elif isinstance(b, FigureBlock):
                item: dict[str, Any] = {"kind": "figure", "caption": b.caption, "reason": b.reason}
                if b.svg:
                    n += 1
                    item["file"] = f"fig-{n}.svg"
                    size = _svg_size(b.svg)
                    tall = size is not None and size[1] / size[0] * TEXT_WIDTH_CM > TEXT_HEIGHT_CM
                    item["fit"] = "height" if tall else "width"
                blocks.append(item)
        sections.append({"title": s.title, "text": s.text, "blocks": blocks})
    st = ctx.study
    audit = None
    if ctx.audit:
        a = ctx.audit
        c = a["counts"]
        audit = {
            "title": a["title"],
            "counts": f"{c['reproduced']} reproduced, {c['discrepant']} discrepant, "
            f"{c['not computed']} not computed, {c['not auditable']} not auditable.",
            "contradictions": [
                f"{x['a']} ({x['a_section']}) is reproduced, but {x['b']} ({x['b_section']}) states the "
                f"same figure differently: {x['detail']}"
                for x in a["contradictions"]
            ],
            "columns": ["Status", "§", "Figure", "Source vs data", "Sentence"],
            "weights": [8.0, 3.0, 14.0, 18.0, 30.0],
            "rows": [
                [r["status"], r["section"], r["name"], _cell(str(r["detail"])), _cell(str(r["sentence"]))]
                for r in a["rows"]
            ],
        }
    return {
        "study": {
            **asdict(st),
            "arms": [label if label == code else f"{label} ({code})" for code, label in st.arms],
            "ctcae_version": st.ctcae_version or "",
            "citation": st.citation or "",
        },
        "summary": " ".join(ctx.summary),
        "sections": sections,
        "audit": audit,
        "methods": ctx.methods,
    }


def _figure_files(svgs: dict[str, bytes], report: Report) -> list[bytes]:
    """The SVGs in the order the document numbers them (fig-1.svg, fig-2.svg, ...)."""
    ctx = report_context(report, svgs)
    return [b.svg for s in ctx.sections for b in s.blocks if isinstance(b, FigureBlock) and b.svg]


def render_pdf(report: Report, svgs: dict[str, bytes] | None = None) -> bytes:
    """The typeset PDF as bytes (the caller writes it, atomically)."""
    import typst
    from matplotlib.figure import Figure

    from amlcohort.report.figures import render_figure

    if svgs is None:
        svgs = {n: render_figure(f, "svg") for n, f in report.figures.items() if isinstance(f, Figure)}
    results = report.analysis.results_json()
    data = document_data(report, svgs, results)
    with tempfile.TemporaryDirectory(prefix="amlcohort-typst-") as tmp:
        root = Path(tmp)
        (root / "report.typ").write_bytes((TEMPLATES / "report.typ").read_bytes())
        (root / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        for i, svg in enumerate(_figure_files(svgs, report), start=1):
            (root / f"fig-{i}.svg").write_bytes(svg)
        try:
            pdf = typst.compile(str(root / "report.typ"), root=str(root), format="pdf")
        except typst.TypstError as e:  # pragma: no cover - a template bug
            raise PdfError(f"Typst could not typeset the report: {e}") from e
    assert isinstance(pdf, bytes)
    return pdf


def write_pdf(report: Report, path: str | Path) -> Path:
    """Typeset the report and write it to ``path`` (outside a staged report folder; kept for scripts)."""
    path = Path(path)
    path.write_bytes(render_pdf(report))
    return path
