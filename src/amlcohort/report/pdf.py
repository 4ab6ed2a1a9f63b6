"""The PDF route: matplotlib's PDF backend only (installs from PyPI; no system library).

Pages: a title page with the summary and the audit counts, then every figure, then every table
(split over pages when long), drawn as text tables.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from amlcohort.report.build import Report

A4 = (8.27, 11.69)
ROWS_PER_PAGE = 28


def _text_page(title: str, paragraphs: list[str]) -> Figure:
    f = Figure(figsize=A4)
    f.text(0.08, 0.94, title, fontsize=14, weight="bold", va="top")
    y = 0.88
    for p in paragraphs:
        wrapped = textwrap.fill(p, 95)
        f.text(0.08, y, wrapped, fontsize=9, va="top")
        y -= 0.03 * (wrapped.count("\n") + 2)
    return f


def _table_pages(title: str, df: pd.DataFrame) -> list[Figure]:
    pages = []
    df = df.astype(str).map(lambda s: textwrap.shorten(s, 60, placeholder="…"))
    for start in range(0, max(len(df), 1), ROWS_PER_PAGE):
        chunk = df.iloc[start : start + ROWS_PER_PAGE]
        f = Figure(figsize=(A4[1], A4[0]))  # landscape
        f.text(0.04, 0.95, title + (" (continued)" if start else ""), fontsize=11, weight="bold")
        ax = f.add_axes((0.03, 0.03, 0.94, 0.88))
        ax.axis("off")
        if len(chunk):
            tbl = ax.table(
                cellText=chunk.to_numpy(), colLabels=list(chunk.columns), loc="upper left", cellLoc="left"
            )
            tbl.auto_set_font_size(False)
            tbl.set_fontsize(6)
        pages.append(f)
    return pages


def write_pdf(report: Report, path: str | Path) -> Path:
    from amlcohort.report.html import CAPTIONS, TABLE_TITLES, summary_text

    path = Path(path)
    m = report.analysis.cohort.metadata
    counts = Counter(v.status for v in report.verdicts)
    intro = [
        summary_text(report),
        f"Audit of the paper's statements: {counts.get('reproduced', 0)} reproduced, "
        f"{counts.get('discrepant', 0)} discrepant, {counts.get('not computed', 0)} not computed.",
        f"Data cut-off {m.cutoff_date}. "
        + (
            "RECONSTRUCTED DATA: consistent with the published figures, not the original records. "
            if m.reconstructed
            else ""
        ),
        "Research software, not a medical device.",
    ]
    with PdfPages(path, metadata={"Title": m.study_name, "Creator": "amlcohort"}) as pdf:
        pdf.savefig(_text_page(m.study_name, intro))
        for name, f in report.figures.items():
            f.suptitle(CAPTIONS.get(name, name)[:90], fontsize=7)
            pdf.savefig(f)
        for name, t in report.tables.items():
            for page in _table_pages(TABLE_TITLES.get(name, name), t):
                pdf.savefig(page)
    return path
