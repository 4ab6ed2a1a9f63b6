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
#: Table font sizes (points) in the template: normal, and for tables of more than six columns.
TABLE_PT, SMALL_PT = 7.8, 6.8


class PdfError(RuntimeError):
    """Typst could not typeset the report (a bug in amlcohort's template, not in the cohort)."""


ZWSP = "\u200b"
_AFTER = re.compile(r"([_./\\;:=&?|])(?=\S)")
_LONG_RUN = re.compile(r"[^\s\u200b]{24}(?=[^\s\u200b])")


def _breakable(text: str) -> str:
    """Let Typst wrap identifiers and long runs in narrow columns: a zero-width space after ``_ . /``
    and similar, and every 24 characters of a run without any break (visible text unchanged)."""
    return _LONG_RUN.sub(lambda m: m.group(0) + ZWSP, _AFTER.sub(lambda m: m.group(1) + ZWSP, text))


def _cell(text: str) -> str:
    if len(text) > PDF_CELL_LIMIT:
        text = text[:PDF_CELL_LIMIT] + f" … [cut: {len(text):,} characters; full text in the CSV]"
    return _breakable(text)


def _column_widths(columns: list[str], rows: list[list[str]], font_pt: float) -> list[float]:
    """Column widths in points that fit the text width: every column gets at least its longest unbreakable
    piece (so nothing overlaps), the rest of the width is shared by how much more each column would
    like (its longest value, up to 40 characters). Character width is estimated at 0.55 em."""
    char, pad = 0.55 * font_pt, 6.5
    width = TEXT_WIDTH_CM / 2.54 * 72
    lo, want = [], []
    for j, c in enumerate(columns):
        cells = [c, *(r[j] for r in rows)]
        piece = max((len(w) for t in cells for w in re.split(rf"[\s{ZWSP}]+", t)), default=1)
        longest = max((min(len(t), 40) for t in cells), default=1)
        lo.append(max(piece, 2) * char + pad)
        want.append(max(longest, piece, 2) * char + pad)
    if sum(want) <= width:
        return [round(w, 1) for w in want]
    if sum(lo) >= width:
        return [round(w * width / sum(lo), 1) for w in lo]
    spare, extra = width - sum(lo), [w - m for w, m in zip(want, lo, strict=True)]
    return [round(m + spare * e / sum(extra), 1) for m, e in zip(lo, extra, strict=True)]


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
                columns = [_breakable(c) for c in b.columns]
                rows = [[_cell(v) for v in r] for r in b.rows]
                small = len(b.columns) > 6
                blocks.append(
                    {
                        "kind": "table",
                        "title": b.title,
                        "columns": columns,
                        "rows": rows,
                        "widths": _column_widths(columns, rows, SMALL_PT if small else TABLE_PT),
                        "small": small,
                        "note": b.note,
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
        columns = ["Status", "§", "Figure", "Source vs data", "Sentence"]
        rows = [
            [_cell(str(r[k])) for k in ("status", "section", "name", "detail", "sentence")] for r in a["rows"]
        ]
        audit = {
            "title": a["title"],
            "counts": f"{c['reproduced']} reproduced, {c['discrepant']} discrepant, "
            f"{c['not computed']} not computed, {c['not auditable']} not auditable.",
            "contradictions": [
                f"{x['a']} ({x['a_section']}) is reproduced, but {x['b']} ({x['b_section']}) states the "
                f"same figure differently: {x['detail']}"
                for x in a["contradictions"]
            ],
            "columns": columns,
            "rows": rows,
            "widths": _column_widths(columns, rows, SMALL_PT),
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
