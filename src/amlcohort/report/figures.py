"""Publication figures for the report (Figures 1–3 of the study, the swimmer plot, adverse events).

Every function takes a small, already computed :class:`pandas.DataFrame` and returns a
:class:`matplotlib.figure.Figure`. Figures are built with the object-oriented API
(``matplotlib.figure.Figure`` attached to an Agg canvas), never with ``pyplot``: no global figure
registry, no backend switch, nothing to close, usable in batch runs and servers alike. The
house style lives in :data:`STYLE` (applied through a ``matplotlib.rc_context`` while a figure is built
and while it is written) and in the palette constants below; write figures with :func:`save_figure` or
:func:`figure_to_data_uri` so the output settings (dpi, tight bounding box, reproducible metadata) apply.

Conventions
-----------
* sizes for a journal page: :data:`SINGLE_COLUMN` (3.5 in) and :data:`DOUBLE_COLUMN` (7 in) wide, text
  7–8 pt;
* colours from the Okabe–Ito palette (colour-blind safe); every series is also told apart by marker
  and/or line style so the figures survive greyscale printing; adverse-event grades use a sequential
  palette (viridis samples) whose lightness increases monotonically from grade 5 to grade 1;
* no chart junk: no top/right spines, no grid, no shadows, labelled axes with units.

Artists that tests (or a report) need to find carry a ``gid``: ``"patient:<id>"`` for trajectory lines,
``"km:<group>"`` / ``"censor:<group>"`` / ``"ci:<group>"`` / ``"median:<group>"`` for survival curves,
``"risk:<group>:<time>"`` for the number-at-risk table, ``"kind:<kind>"`` and ``"event:<event>"`` for the
swimmer plot and ``"grade:<g>"`` for adverse-event bars.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

__all__ = [
    "DOUBLE_COLUMN",
    "EVENT_STYLES",
    "GRADE_COLOURS",
    "KIND_STYLES",
    "OKABE_ITO",
    "SERIES_COLOURS",
    "SINGLE_COLUMN",
    "STYLE",
    "bar_by_grade",
    "blast_trajectories",
    "figure_style",
    "figure_to_data_uri",
    "kaplan_meier_plot",
    "kind_styles",
    "not_estimable_figure",
    "render_figure",
    "risk_times",
    "save_figure",
    "swimmer_plot",
]

# ---------------------------------------------------------------------------------------------
# Style: one place
# ---------------------------------------------------------------------------------------------
#: Journal column widths in inches.
SINGLE_COLUMN: float = 3.5
DOUBLE_COLUMN: float = 7.0

#: Okabe & Ito (2008) colour-universal-design palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#e69f00",
    "sky blue": "#56b4e9",
    "bluish green": "#009e73",
    "yellow": "#f0e442",
    "blue": "#0072b2",
    "vermillion": "#d55e00",
    "reddish purple": "#cc79a7",
}

#: Order in which series take colours. Yellow is left out: too little contrast for lines on white; from
#: the 8th series on colours repeat with another line style (and marker).
SERIES_COLOURS: tuple[str, ...] = tuple(
    OKABE_ITO[c]
    for c in ("blue", "vermillion", "bluish green", "reddish purple", "orange", "sky blue", "black")
)
#: Markers and line styles cycled independently of colours (greyscale redundancy).
SERIES_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
SERIES_LINESTYLES: tuple[str | tuple[int, tuple[int, ...]], ...] = (
    "-",
    (0, (4, 1.5)),
    (0, (1, 1)),
    (0, (4, 1.5, 1, 1.5)),
)

#: CTCAE grade 1–5: viridis samples, light (grade 1) to dark (grade 5); colour-blind safe, greyscale monotone.
GRADE_COLOURS: dict[int, str] = {1: "#fde725", 2: "#5ec962", 3: "#21918c", 4: "#3b528b", 5: "#440154"}

#: Swimmer-plot segments with a fixed style: colour, bar height (fraction of a row) and hatch. Every other
#: kind (e.g. "<drug> <phase>") takes the next Okabe–Ito colour in order of appearance; kinds passed as
#: ``overlays`` are thin bars drawn on top (e.g. a second drug given together with the first).
KIND_STYLES: dict[str, dict[str, object]] = {
    "off treatment": {"color": OKABE_ITO["black"], "height": 0.07, "hatch": None},
}
_KIND_COLOURS: tuple[str, ...] = tuple(
    OKABE_ITO[c] for c in ("blue", "sky blue", "orange", "bluish green", "reddish purple", "vermillion")
)
_EXTRA_KIND_COLOURS: tuple[str, ...] = (OKABE_ITO["yellow"],)

#: Swimmer-plot events: marker, face colour and size (points).
EVENT_STYLES: dict[str, dict[str, object]] = {
    "CR": {"marker": "^", "color": OKABE_ITO["bluish green"], "size": 5.5},
    "HSCT": {"marker": "D", "color": OKABE_ITO["reddish purple"], "size": 4.5},
    "relapse": {"marker": "X", "color": OKABE_ITO["vermillion"], "size": 5.5},
    "death": {"marker": "s", "color": OKABE_ITO["black"], "size": 4.5},
    "last contact": {"marker": ">", "color": "#ffffff", "size": 5.0},
}

#: rcParams applied while a figure is built and saved.
STYLE: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": 7.5,
    "axes.labelsize": 7.5,
    "axes.titlesize": 8,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "legend.frameon": False,
    "legend.handlelength": 2.2,
    "legend.borderaxespad": 0.3,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.edgecolor": "#000000",
    "axes.labelcolor": "#000000",
    "xtick.color": "#000000",
    "ytick.color": "#000000",
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.4,
    "hatch.linewidth": 0.5,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "svg.fonttype": "path",  # self-contained: no dependency on the viewer's fonts
    "svg.hashsalt": "amlcohort",  # deterministic element ids
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    # User text (patient ids, adverse-event terms, arm labels) is drawn literally: never TeX, never
    # mathtext ("$\\alpha$-02" stays those characters, "$$" does not crash the renderer).
    "text.usetex": False,
    "text.parse_math": False,
}

REFERENCE_GREY = "#777777"
#: Width of a digit in the figures' font (DejaVu Sans), in em: for room computed before drawing.
DIGIT_EM = 0.64
DAY_LABEL = "Days since the first dose"


@contextmanager
def figure_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of a block (figure construction or saving)."""
    with matplotlib.rc_context(STYLE):
        yield


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def _series_style(i: int) -> dict[str, object]:
    """Colour, marker and line style of the i-th series (cycled at different periods)."""
    return {
        "color": SERIES_COLOURS[i % len(SERIES_COLOURS)],
        "marker": SERIES_MARKERS[i % len(SERIES_MARKERS)],
        "linestyle": SERIES_LINESTYLES[(i // len(SERIES_COLOURS)) % len(SERIES_LINESTYLES)],
    }


def _sort_key(value: object) -> tuple[int, object]:
    """Natural-ish order for patient ids: numbers numerically, then strings with digits padded."""
    if isinstance(value, int | np.integer):
        return (0, int(value))
    text = str(value)
    digits = "".join(ch for ch in text if ch.isdigit())
    prefix = "".join(ch for ch in text if not ch.isdigit())
    return (1, (prefix, int(digits) if digits else -1, text))


# ---------------------------------------------------------------------------------------------
# Figures 1 and 2: marrow blasts over time
# ---------------------------------------------------------------------------------------------
def blast_trajectories(
    df: pd.DataFrame,
    *,
    title: str | None = None,
    max_day: float | None = None,
    reference_lines: Sequence[float] = (5.0,),
    figsize: tuple[float, float] = (SINGLE_COLUMN, 2.8),
    xlabel: str = DAY_LABEL,
) -> Figure:
    """Marrow blast percentage over time, one line with markers per patient.

    ``df`` columns: ``patient_id``, ``study_day`` (integer, day 1 = the first dose, baseline
    negative or 0), ``marrow_blasts_pct`` (0–100) and optionally ``group`` (e.g. the arm). Patients are
    told apart by colour *and* marker; when ``group`` is present it is encoded by line style (solid for
    the first group in order of appearance, dashed for the second, ...) and shown in the legend.
    ``reference_lines`` are drawn as thin grey dashed lines labelled at the right edge (5 % is the CR
    threshold; pass ``(5.0, 10.0)`` to add 10 %). ``max_day`` caps the x axis (e.g. 120 for the first
    four months; points beyond are clipped at the frame, lines still run towards them).
    """
    _require(df, ("patient_id", "study_day", "marrow_blasts_pct"), "blast_trajectories")
    data = df.dropna(subset=["study_day", "marrow_blasts_pct"]).sort_values(["patient_id", "study_day"])
    if data.empty:
        raise ValueError("blast_trajectories: no (study_day, marrow_blasts_pct) values to plot")
    has_group = "group" in data.columns and data["group"].notna().any()
    patients = sorted(data["patient_id"].unique(), key=_sort_key)
    groups = list(dict.fromkeys(data["group"].dropna())) if has_group else []
    group_ls = {g: SERIES_LINESTYLES[i % len(SERIES_LINESTYLES)] for i, g in enumerate(groups)}

    with figure_style():
        fig = _new_figure(figsize)
        ax = fig.add_subplot()
        for i, pid in enumerate(patients):
            rows = data[data["patient_id"] == pid]
            style = _series_style(i)
            if has_group:
                g = rows["group"].dropna()
                style["linestyle"] = group_ls[g.iloc[0]] if len(g) else "-"
            ax.plot(
                rows["study_day"].to_numpy(dtype=float),
                rows["marrow_blasts_pct"].to_numpy(dtype=float),
                label=str(pid),
                gid=f"patient:{pid}",
                markerfacecolor=style["color"],
                markeredgecolor="white",
                markeredgewidth=0.4,
                clip_on=True,
                zorder=3,
                **style,
            )

        x_min = float(data["study_day"].min())
        x_max = float(data["study_day"].max())
        if max_day is not None:
            x_max = min(x_max, float(max_day))
        pad = 0.02 * max(x_max - min(x_min, 0.0), 1.0)
        ax.set_xlim(min(x_min, 0.0) - pad, x_max + pad)
        y_top = float(data["marrow_blasts_pct"].max())
        ax.set_ylim(0, min(100.0, max(10.0, 10 * math.ceil(y_top * 1.05 / 10))))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=True))

        for ref in reference_lines:
            ax.axhline(
                ref, color=REFERENCE_GREY, linewidth=0.6, linestyle=(0, (3, 2)), zorder=1, gid=f"ref:{ref:g}"
            )
            ax.annotate(
                f"{ref:g} %",
                xy=(1.0, ref),
                xycoords=("axes fraction", "data"),
                xytext=(2, 0),
                textcoords="offset points",
                ha="left",
                va="center",
                fontsize=6,
                color=REFERENCE_GREY,
                annotation_clip=False,
            )

        ax.set_xlabel(xlabel)
        ax.set_ylabel("Marrow blasts (%)")
        if title:
            ax.set_title(title)

        handles, labels = ax.get_legend_handles_labels()
        ncol = 1 if len(patients) <= 9 else 2
        legend = ax.legend(
            handles,
            labels,
            title="Patient",
            loc="upper left",
            bbox_to_anchor=(1.08, 1.0),
            ncol=ncol,
            handlelength=2.0,
            borderaxespad=0.0,
            labelspacing=0.3,
            columnspacing=0.8,
        )
        legend.set_gid("legend:patients")
        if has_group and len(groups) > 1:
            legend_g = fig.legend(
                [Line2D([], [], color="#000000", linestyle=group_ls[g], linewidth=1.0) for g in groups],
                [str(g) for g in groups],
                loc="outside lower center",
                ncol=min(len(groups), 3),
                handlelength=2.6,
            )
            legend_g.set_gid("legend:groups")
    return fig


def annotation_lines(text: str, width: int = 44) -> str:
    """A figure note (e.g. "Log-rank p = 0.92 (1 df); median A 344 d; B 455 d") as lines that fit
    a single-column plot: one line per "; "-separated part, each wrapped at ``width`` characters.

    >>> note = "Log-rank p = 0.920 (1 df); median Sorafenib alone 344 d; Sorafenib + LDAC 455 d"
    >>> print(annotation_lines(note))
    Log-rank p = 0.920 (1 df)
    median Sorafenib alone 344 d
    Sorafenib + LDAC 455 d
    """
    lines: list[str] = []
    for part in text.split("; "):
        lines += textwrap.wrap(part, width, break_on_hyphens=False) or [part]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figure 3: Kaplan–Meier curves with a number-at-risk table
# ---------------------------------------------------------------------------------------------
#: A curve's censoring marks are drawn on a grid of this many cells a side over the plot (x from 0
#: to the last time, y from 0 to 1): one mark per cell. A cell is under a point wide, a mark five, so
#: the figure looks the same, and a registry's curve (thousands of censored times, marks merged
#: into a band) is not thousands of SVG paths. A monotone curve crosses at most twice as many cells.
CENSOR_MARK_GRID = 250


def _cell(values: np.ndarray, top: float, n: int) -> np.ndarray:
    """The cell (0 to ``n``) of each value when [0, ``top``] is cut into ``n`` equal cells."""
    return np.floor(np.clip(values / top, 0.0, 1.0) * n)


def censor_marks(x: np.ndarray, y: np.ndarray, x_max: float, grid: int = CENSOR_MARK_GRID) -> np.ndarray:
    """Which of the censored points (``x``, ``y``; in time order) get a mark: the first in each cell
    of a ``grid`` x ``grid`` grid over [0, ``x_max``] x [0, 1]. With no more points than ``grid``
    every point is marked."""
    keep = np.ones(len(x), dtype=bool)
    if len(x) <= grid or not x_max > 0:
        return keep
    cell = _cell(x, x_max, grid) * (grid + 1) + _cell(np.nan_to_num(y, nan=0.0), 1.0, grid)
    keep[1:] = cell[1:] != cell[:-1]  # points in time order: a cell's points are consecutive
    return keep


#: A Kaplan–Meier band (the pointwise CI, a filled step polygon that SVG never simplifies) keeps the
#: first and the last step in each of this many time cells: a registry's band of thousands of steps
#: differs from the full one only inside a cell, half a point wide at most (the plot is about 200
#: points wide).
BAND_CELLS = 400


def band_steps(x: np.ndarray, x_max: float, cells: int = BAND_CELLS) -> np.ndarray:
    """Which steps (times ``x``, in order) of a band are drawn: the first and the last of each of
    ``cells`` cells over [0, ``x_max``] (with steps-post, the value between two cells is the last
    step's of the first cell, as drawn). With no more steps than ``cells`` every step is drawn."""
    keep = np.ones(len(x), dtype=bool)
    if len(x) <= cells or not x_max > 0:
        return keep
    cell = _cell(x, x_max, cells)
    keep[1:-1] = (cell[1:-1] != cell[:-2]) | (cell[1:-1] != cell[2:])
    return keep


def _km_steps(curve: pd.DataFrame) -> pd.DataFrame:
    """The curve's rows with a leading (0, 1) row unless the curve already starts there."""
    _require(curve, ("time", "survival"), "kaplan_meier_plot curve")
    c = curve.copy()
    for col, default in (("lower", np.nan), ("upper", np.nan), ("n_censor", 0)):
        if col not in c.columns:
            c[col] = default
    c = c.sort_values("time", kind="stable").reset_index(drop=True)
    c["n_censor"] = c["n_censor"].fillna(0)
    if c.empty or not (float(c["time"].iloc[0]) == 0.0 and float(c["survival"].iloc[0]) == 1.0):
        start = pd.DataFrame(
            {"time": [0.0], "survival": [1.0], "lower": [1.0], "upper": [1.0], "n_censor": [0]}
        )
        c = pd.concat([start, c[["time", "survival", "lower", "upper", "n_censor"]]], ignore_index=True)
    return c


#: Steps (days) of the number-at-risk times of a Kaplan–Meier figure, shortest first.
RISK_STEPS = (30.0, 90.0, 180.0, 365.0, 730.0, 1095.0, 1826.0, 3652.0)


def risk_times(horizon: float, largest_group: int) -> list[float]:
    """The times of the number-at-risk table of :func:`kaplan_meier_plot` (and its x ticks): every
    30, 90, 180 or 365 days by the follow-up ``horizon``, with no more intervals than the numbers
    (up to ``largest_group``) fit side by side under a single-column plot (10 of two or three
    digits; fewer for a registry's five or six: a longer step then)."""
    step = 30.0 if horizon <= 240 else 90.0 if horizon <= 720 else 180.0 if horizon <= 1800 else 365.0
    digits = len(str(max(int(largest_group), 1)))
    most = min(10, max(4, 36 // (digits + 1)))
    for longer in RISK_STEPS:
        if longer >= step and horizon / longer <= most:
            step = longer
            break
    else:
        step = max(RISK_STEPS[-1], float(np.ceil(horizon / most)))
    return [float(t) for t in np.arange(0.0, max(horizon, step) + 1.0, step)]


def kaplan_meier_plot(
    curves: Mapping[str, pd.DataFrame],
    *,
    risk_table: pd.DataFrame,
    title: str | None = None,
    xlabel: str = DAY_LABEL,
    ylabel: str = "Overall survival (probability)",
    annotation: str | None = None,
    times: Sequence[float] | None = None,
    show_ci: bool = True,
    medians: Mapping[str, float] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Kaplan–Meier step curves with censoring marks and a number-at-risk table under the x axis.

    ``curves``: group label → frame with columns ``time``, ``survival`` (the right-continuous estimate
    S(t) *after* the events at ``time``), ``lower``/``upper`` (pointwise band, may be NaN) and
    ``n_censor`` (censorings at ``time``); a (0, 1) start is added unless the frame begins there (the
    frame of :func:`amlcohort.stats.kaplan_meier` ``.table`` fits as is). Curves are drawn with
    ``drawstyle="steps-post"``; each censoring is a ``+`` at (time, S(time)) (above
    ``CENSOR_MARK_GRID`` censored times, one ``+`` per cell of that grid: :func:`censor_marks`;
    above ``BAND_CELLS`` steps, the band keeps the first and last step of each cell: :func:`band_steps`).
    ``risk_table``: index = the group labels, columns = times, values = numbers at risk; its
    columns (or ``times``) become the x ticks, and the counts are written in an axes sharing the x
    axis, so they sit under the ticks.
    ``medians`` (group → median time, as computed by the stats module; NaN/None = not reached) adds
    dotted drop lines at S = 0.5. ``annotation`` (e.g. the log-rank p) is written in the empty lower
    left corner.
    """
    if not curves:
        raise ValueError("kaplan_meier_plot: no curves")
    labels = [str(k) for k in curves]
    tick_times = [float(t) for t in (risk_table.columns if times is None else times)]
    risk = risk_table.copy()
    risk.index = [str(i) for i in risk.index]
    missing = [g for g in labels if g not in risk.index]
    if missing:
        raise ValueError(f"kaplan_meier_plot: risk_table has no row for {missing}")
    col_by_time = {float(c): c for c in risk.columns}
    absent = [t for t in tick_times if t not in col_by_time]
    if absent:
        raise ValueError(f"kaplan_meier_plot: risk_table has no column for time(s) {absent}")

    steps = {label: _km_steps(curves[key]) for label, key in zip(labels, curves, strict=True)}
    t_max = max([float(s["time"].max()) for s in steps.values()] + tick_times)
    n_groups = len(labels)
    if figsize is None:
        figsize = (SINGLE_COLUMN, 2.7 + 0.14 * n_groups)

    with figure_style():
        fig = _new_figure(figsize)
        table_ratio = 0.55 + 0.2 * n_groups
        ax, ax_risk = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4.0, table_ratio]})
        for i, label in enumerate(labels):
            s = steps[label]
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            ls = SERIES_LINESTYLES[i % len(SERIES_LINESTYLES)]
            x = s["time"].to_numpy(dtype=float)
            y = s["survival"].to_numpy(dtype=float)
            if show_ci:
                lo = s["lower"].to_numpy(dtype=float)
                hi = s["upper"].to_numpy(dtype=float)
                after_start = x > 0  # the (0, 1) start alone is no band
                if np.isfinite(lo[after_start]).any() and np.isfinite(hi[after_start]).any():
                    drawn = band_steps(x, t_max)
                    band = ax.fill_between(
                        x[drawn], lo[drawn], hi[drawn], step="post", color=colour, alpha=0.12, linewidth=0,
                        zorder=1,
                    )
                    band.set_gid(f"ci:{label}")
            ax.plot(
                x,
                y,
                drawstyle="steps-post",
                color=colour,
                linestyle=ls,
                linewidth=1.1,
                label=label,
                gid=f"km:{label}",
                zorder=3,
            )
            censored = s["n_censor"].to_numpy(dtype=float) > 0
            if censored.any():
                cx, cy = x[censored], y[censored]
                marked = censor_marks(cx, cy, t_max)
                ax.plot(
                    cx[marked],
                    cy[marked],
                    linestyle="none",
                    marker="+",
                    markersize=5,
                    markeredgewidth=0.9,
                    color=colour,
                    gid=f"censor:{label}",
                    zorder=4,
                    clip_on=False,
                )
            m = None if medians is None else medians.get(label)
            if m is not None and np.isfinite(m):
                ax.plot(
                    [0, m, m],
                    [0.5, 0.5, 0],
                    color=colour,
                    linestyle=(0, (1, 1.5)),
                    linewidth=0.6,
                    gid=f"median:{label}",
                    zorder=2,
                )

        ax.set_ylim(0, 1.04)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_yticklabels(["0", "0.25", "0.50", "0.75", "1.00"])
        ax.set_xlim(0, t_max * 1.03)
        ax.set_xticks(tick_times)
        ax.set_xticklabels([f"{t:g}" for t in tick_times])
        ax.tick_params(axis="x", labelbottom=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        # Key: line samples (colour + dash) plus a censoring glyph.
        handles = [
            Line2D(
                [],
                [],
                color=SERIES_COLOURS[i % len(SERIES_COLOURS)],
                linestyle=SERIES_LINESTYLES[i % len(SERIES_LINESTYLES)],
                linewidth=1.1,
            )
            for i in range(n_groups)
        ]
        key_labels = list(labels)
        if any((s["n_censor"] > 0).any() for s in steps.values()):
            handles.append(Line2D([], [], color="#000000", linestyle="none", marker="+", markersize=5))
            key_labels.append("Censored")
        legend = ax.legend(handles, key_labels, loc="upper right", handlelength=2.4)
        legend.set_gid("legend:groups")
        if annotation:
            ax.text(
                0.02,
                0.03,
                annotation_lines(annotation),
                transform=ax.transAxes,
                in_layout=False,  # a long note must not squeeze the axes (it is wrapped to fit)
                ha="left",
                va="bottom",
                fontsize=6.5,
                gid="annotation",
                zorder=5,
                bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )

        # Number-at-risk table: rows = groups (top to bottom in curve order), columns = tick times.
        ax_risk.set_ylim(n_groups - 0.5, -0.5)
        for i, label in enumerate(labels):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            for t in tick_times:
                value = risk.loc[label, col_by_time[t]]
                text = "" if pd.isna(value) else f"{int(value)}"
                ax_risk.text(
                    t,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color=colour,
                    gid=f"risk:{label}:{t:g}",
                    clip_on=False,
                )
        ax_risk.set_yticks(range(n_groups))
        ax_risk.set_yticklabels(labels, fontsize=6.5)
        for i, tick in enumerate(ax_risk.get_yticklabels()):
            tick.set_color(SERIES_COLOURS[i % len(SERIES_COLOURS)])
        # the group names end left of the first column's numbers, which are centred on day 0 (a
        # registry's five or six digits reach further left than the usual two or three)
        first = [risk.loc[label, col_by_time[tick_times[0]]] for label in labels] if tick_times else []
        digits = max((len(f"{int(v)}") for v in first if not pd.isna(v)), default=1)
        ax_risk.tick_params(axis="y", length=0, pad=max(12.0, 0.5 * DIGIT_EM * 6.5 * digits + 4.0))
        ax_risk.tick_params(axis="x", length=0, labelbottom=False)
        for spine in ax_risk.spines.values():
            spine.set_visible(False)
        ax_risk.set_title("Number at risk", fontsize=6.5, fontweight="normal", loc="left", pad=2)
        ax_risk.set_gid("risk_table")
        ax.set_gid("km_axes")
    return fig


# ---------------------------------------------------------------------------------------------
# Swimmer plot
# ---------------------------------------------------------------------------------------------
def kind_styles(kinds: Sequence[str], overlays: Sequence[str] = ()) -> dict[str, dict[str, object]]:
    """Style of each swimmer-plot kind: :data:`KIND_STYLES`, else the next colour in order (full
    height), thin for ``overlays``; beyond the palette, hatching tells kinds apart."""
    styles: dict[str, dict[str, object]] = {}
    palette = iter((*_KIND_COLOURS, *_EXTRA_KIND_COLOURS))
    n = 0
    for kind in kinds:
        if kind in KIND_STYLES:
            styles[kind] = KIND_STYLES[kind]
            continue
        colour = next(palette, None)
        hatch = None
        if colour is None:
            colour, hatch = SERIES_COLOURS[n % len(SERIES_COLOURS)], "////"
        n += 1
        styles[kind] = {"color": colour, "height": 0.22 if kind in overlays else 0.6, "hatch": hatch}
    return styles


_kind_styles = kind_styles


def swimmer_plot(
    df: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    title: str | None = None,
    sort_by: Literal["follow_up", "patient_id"] = "follow_up",
    figsize: tuple[float, float] | None = None,
    overlays: Sequence[str] = (),
    xlabel: str = DAY_LABEL,
) -> Figure:
    """One horizontal lane per patient showing treatment periods and clinical events.

    ``df`` columns: ``patient_id``, ``start_day``, ``end_day`` (days since the first dose) and ``kind``
    (e.g. "<drug> induction", "off treatment"; see :func:`kind_styles`). Kinds in ``overlays`` are thin
    bars on top: a second drug given with the first shows as a stripe inside its bar; off-treatment
    follow-up is a thin black line. ``events`` columns: ``patient_id``, ``day``,
    ``event`` in :data:`EVENT_STYLES` ("CR", "HSCT", "relapse", "death", "last contact").
    Lanes are sorted by follow-up (longest on top) or by patient id.
    """
    _require(df, ("patient_id", "start_day", "end_day", "kind"), "swimmer_plot")
    if events is None:
        events = pd.DataFrame(columns=["patient_id", "day", "event"])
    _require(events, ("patient_id", "day", "event"), "swimmer_plot events")
    unknown = sorted(set(events["event"].dropna()) - set(EVENT_STYLES))
    if unknown:
        raise ValueError(f"swimmer_plot: unknown event(s) {unknown}; expected {list(EVENT_STYLES)}")
    if df.empty:
        raise ValueError("swimmer_plot: no treatment periods")

    patients = list(dict.fromkeys(list(df["patient_id"]) + list(events["patient_id"])))
    last_day = pd.concat(
        [df[["patient_id", "end_day"]].set_axis(["patient_id", "day"], axis=1), events[["patient_id", "day"]]]
    )
    ends = last_day.groupby("patient_id", sort=False)["day"].max().astype(float).fillna(0.0).to_dict()
    if sort_by == "follow_up":
        order = sorted(patients, key=lambda p: (-float(ends[p]), _sort_key(p)))
    else:
        order = sorted(patients, key=_sort_key)
    lane = {p: i for i, p in enumerate(order)}  # 0 = top (y axis inverted)

    seen = list(dict.fromkeys(df["kind"]))
    kinds = [k for k in seen if k not in KIND_STYLES] + [k for k in KIND_STYLES if k in seen]
    styles = kind_styles(kinds, overlays)
    # Full-height bars first, then thinner overlays on top.
    draw_order = sorted(kinds, key=lambda k: -float(styles[k]["height"]))  # type: ignore[arg-type]
    if figsize is None:
        figsize = (SINGLE_COLUMN, 1.3 + 0.17 * len(order))

    with figure_style():
        fig = _new_figure(figsize)
        ax = fig.add_subplot()
        for z, kind in enumerate(draw_order):
            st = styles[kind]
            rows = df[df["kind"] == kind]
            height = float(st["height"])  # type: ignore[arg-type]
            bars = ax.barh(
                [lane[p] for p in rows["patient_id"]],
                (rows["end_day"] - rows["start_day"]).to_numpy(dtype=float),
                left=rows["start_day"].to_numpy(dtype=float),
                height=height,
                color=st["color"],
                hatch=st["hatch"],
                edgecolor="white" if st["hatch"] else st["color"],
                linewidth=0.3,
                label=kind,
                zorder=2 + z,
            )
            for patch in bars.patches:
                patch.set_gid(f"kind:{kind}")

        present_events = [e for e in EVENT_STYLES if (events["event"] == e).any()]
        for e in present_events:
            st = EVENT_STYLES[e]
            rows = events[events["event"] == e]
            ax.plot(
                rows["day"].to_numpy(dtype=float),
                [lane[p] for p in rows["patient_id"]],
                linestyle="none",
                marker=st["marker"],
                markersize=st["size"],
                markerfacecolor=st["color"],
                markeredgecolor="#000000",
                markeredgewidth=0.5,
                gid=f"event:{e}",
                label=e,
                zorder=10,
                clip_on=False,
            )

        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([str(p) for p in order])
        ax.set_ylim(len(order) - 0.4, -0.6)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        x_lo = min(0.0, float(df["start_day"].min()))
        x_hi = max(float(v) for v in ends.values())
        ax.set_xlim(x_lo, x_hi * 1.03 + 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Patient")
        if title:
            ax.set_title(title)

        kind_handles = [
            # overlays (thin bars) keep their thinness in the key, so shape tells them apart in greyscale
            Line2D(
                [], [], color=styles[k]["color"], linewidth=max(1.2, 14 * float(styles[k]["height"])), label=k
            )  # type: ignore[arg-type]
            if float(styles[k]["height"]) < 0.3  # type: ignore[arg-type]
            else Patch(
                facecolor=styles[k]["color"],
                edgecolor="white" if styles[k]["hatch"] else styles[k]["color"],
                hatch=styles[k]["hatch"],
                label=k,
            )
            for k in kinds
        ]
        event_handles = [
            Line2D(
                [],
                [],
                linestyle="none",
                marker=EVENT_STYLES[e]["marker"],
                markersize=EVENT_STYLES[e]["size"],
                markerfacecolor=EVENT_STYLES[e]["color"],
                markeredgecolor="#000000",
                markeredgewidth=0.5,
                label=e,
            )
            for e in present_events
        ]
        # Two columns, treatments left and events right (legend fills column by column).
        rows_n = max(len(kind_handles), len(event_handles))
        blank = Line2D([], [], linestyle="none", label="")
        handles = kind_handles + [blank] * (rows_n - len(kind_handles))
        if event_handles:
            handles += event_handles + [blank] * (rows_n - len(event_handles))
        legend = fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=2 if event_handles else 1,
            handlelength=1.6,
            columnspacing=1.0,
            labelspacing=0.35,
        )
        legend.set_gid("legend:swimmer")
    return fig


# ---------------------------------------------------------------------------------------------
# Adverse events by grade
# ---------------------------------------------------------------------------------------------
#: A category label (an adverse-event term) is wrapped at this many characters, on at most
#: TICK_LINES lines; the rest is cut with an ellipsis (the tables carry the full text).
TICK_WIDTH, TICK_LINES = 30, 2


def tick_label(text: str, width: int = TICK_WIDTH, lines: int = TICK_LINES) -> str:
    r"""``text`` wrapped at ``width`` characters on at most ``lines`` lines, cut with "…" beyond:
    a long term (a user's own, e.g. 80 characters) would otherwise squeeze the bars to nothing in a
    single-column figure.

    >>> tick_label("Alanine aminotransferase increased")
    'Alanine aminotransferase\nincreased'
    >>> tick_label("x" * 70)
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'
    """
    parts = textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [text]
    if len(parts) > lines:
        parts = [*parts[: lines - 1], parts[lines - 1][: width - 1].rstrip() + "…"]
    return "\n".join(parts)


def _count_ticks(x_hi: float) -> dict[str, Any]:
    """Locator settings of a count axis up to ``x_hi`` in a single-column figure: matplotlib's own
    choice for a study's counts; for a registry's (four digits and more) fewer ticks, so that the
    labels do not run into each other."""
    digits = len(f"{int(x_hi)}")
    if digits <= 3:
        return {"integer": True}
    return {"integer": True, "nbins": max(2, 24 // (digits + 1))}


def bar_by_grade(
    df: pd.DataFrame,
    *,
    title: str | None = None,
    n_total: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Horizontal stacked bars: patients with each adverse event, split by (worst) CTCAE grade.

    ``df`` columns: ``term``, ``grade`` (1–5), ``n_patients`` (patients whose worst grade of that term
    is ``grade``, so the stack length is the number of patients with the term). Terms are ordered by
    total (largest on top); the total is printed at the bar end. ``n_total`` (cohort size) sets the x
    limit so bars read as a fraction of the cohort.
    """
    _require(df, ("term", "grade", "n_patients"), "bar_by_grade")
    data = df.dropna(subset=["term", "grade"]).copy()
    data["grade"] = data["grade"].astype(int)
    bad = sorted(set(data["grade"]) - set(GRADE_COLOURS))
    if bad:
        raise ValueError(f"bar_by_grade: grades must be 1–5, got {bad}")
    wide = data.pivot_table(index="term", columns="grade", values="n_patients", aggfunc="sum", fill_value=0)
    totals = wide.sum(axis=1)
    terms = sorted(wide.index, key=lambda t: (-float(totals[t]), str(t)))
    wide = wide.loc[terms]
    grades = sorted(int(g) for g in wide.columns)
    labels = [tick_label(str(t)) for t in terms]
    if figsize is None:
        extra_lines = sum(label.count("\n") for label in labels)
        figsize = (SINGLE_COLUMN, 1.1 + 0.2 * len(terms) + 0.1 * extra_lines)

    with figure_style():
        fig = _new_figure(figsize)
        ax = fig.add_subplot()
        y = np.arange(len(terms))
        left = np.zeros(len(terms))
        for g in grades:
            widths = wide[g].to_numpy(dtype=float)
            bars = ax.barh(
                y,
                widths,
                left=left,
                height=0.65,
                color=GRADE_COLOURS[g],
                edgecolor="white",
                linewidth=0.5,
                label=f"{g}",
                zorder=2,
            )
            for patch in bars.patches:
                patch.set_gid(f"grade:{g}")
            left += widths
        for yi, total in zip(y, left, strict=True):
            ax.text(total, yi, f" {total:g}", ha="left", va="center", fontsize=6.5, gid="total")
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        ax.set_ylim(len(terms) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        x_hi = float(n_total) if n_total is not None else float(left.max()) * 1.12 + 0.5
        x_hi = max(x_hi, float(left.max()) * 1.08)
        ax.set_xlim(0, x_hi)
        ax.xaxis.set_major_locator(MaxNLocator(**_count_ticks(x_hi)))
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)  # counts, never "1e6"
        ax.set_xlabel("Patients (n)")
        if title:
            ax.set_title(title)
        legend = fig.legend(
            *ax.get_legend_handles_labels(),
            title="CTCAE grade",
            loc="outside upper center",
            ncol=len(grades),
            handlelength=1.2,
            handletextpad=0.4,
            columnspacing=1.0,
        )
        legend.set_gid("legend:grades")
    return fig


# ---------------------------------------------------------------------------------------------
# A figure that cannot be drawn on this cohort
# ---------------------------------------------------------------------------------------------
def not_estimable_figure(
    title: str, reason: str, *, figsize: tuple[float, float] = (SINGLE_COLUMN, 1.4)
) -> Figure:
    """A placeholder saying why a figure is not estimable on this cohort (e.g. "no deaths: every
    patient censored"); the text is drawn literally (no mathtext)."""
    with figure_style():
        fig = _new_figure(figsize)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title, usetex=False)
        ax.text(
            0.5,
            0.5,
            f"Not estimable: {reason}",
            ha="center",
            va="center",
            wrap=True,
            fontsize=7.5,
            parse_math=False,
            gid="not_estimable",
            transform=ax.transAxes,
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def render_figure(fig: Figure, fmt: Literal["svg", "png", "pdf"] = "svg", *, dpi: int = 300) -> bytes:
    """The figure encoded once as ``fmt`` (SVG vector, PNG at ``dpi``), with reproducible metadata.

    Text is drawn literally (``text.parse_math`` off, see :data:`STYLE`); SVG glyphs are paths, so the
    SVG holds no user text as markup.
    """
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render_figure: fmt must be 'svg', 'png' or 'pdf', got {fmt!r}")
    buf = io.BytesIO()
    metadata = {"Software": "amlcohort (matplotlib)"} if fmt == "png" else {"Date": None}
    if fmt == "pdf":
        metadata = {"CreationDate": None, "Creator": "amlcohort (matplotlib)"}
    with figure_style():
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def save_figure(
    fig: Figure,
    out_dir: str | Path,
    name: str,
    *,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = 300,
) -> dict[str, Path]:
    """Write ``fig`` as ``<out_dir>/<name>.<fmt>`` (PNG at ``dpi``, SVG vector); return fmt → path.

    Output is reproducible: no creation date in the metadata, fixed SVG ids. (The report itself writes
    through :func:`render_figure` and :mod:`amlcohort.io.output`, atomically.)
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        path.write_bytes(render_figure(fig, fmt, dpi=dpi))  # type: ignore[arg-type]
        paths[fmt] = path
    return paths


def figure_to_data_uri(fig: Figure, fmt: Literal["svg", "png"] = "svg", *, dpi: int = 300) -> str:
    """The figure as a base64 ``data:`` URI, for an ``<img src=...>`` in a self-contained HTML report."""
    mime = {"svg": "image/svg+xml", "png": "image/png"}
    if fmt not in mime:
        raise ValueError(f"figure_to_data_uri: fmt must be 'svg' or 'png', got {fmt!r}")
    return data_uri(render_figure(fig, fmt, dpi=dpi), fmt)


def data_uri(data: bytes, fmt: Literal["svg", "png"]) -> str:
    """Encoded figure bytes as a base64 ``data:`` URI."""
    mime = {"svg": "image/svg+xml", "png": "image/png"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
