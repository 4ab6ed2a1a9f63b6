"""Report figures: real properties of the drawn artists, and the saved files."""

from __future__ import annotations

import base64
import itertools
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from amlcohort.report.figures import (
    BAND_CELLS,
    CENSOR_MARK_GRID,
    EVENT_STYLES,
    GRADE_COLOURS,
    KIND_STYLES,
    OKABE_ITO,
    band_steps,
    bar_by_grade,
    blast_trajectories,
    censor_marks,
    figure_to_data_uri,
    kaplan_meier_plot,
    kind_styles,
    risk_times,
    save_figure,
    swimmer_plot,
)
from amlcohort.stats.kaplan_meier import kaplan_meier

OKABE_HEX = {v.lower() for v in OKABE_ITO.values()}


def hexcolour(c) -> str:
    return mcolors.to_hex(c).lower()


def by_gid(artists, prefix: str) -> list:
    return [a for a in artists if (a.get_gid() or "").startswith(prefix)]


def legend_labels(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts() if t.get_text()]


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def blasts() -> pd.DataFrame:
    rows = []
    for pid, base, arm in [("P01", 60, "S+LDAC"), ("P03", 45, "S+LDAC"), ("P12", 80, "S")]:
        for day, frac in [(-2, 1.0), (8, 0.5), (29, 0.1), (57, 0.03), (150, 0.02)]:
            rows.append({"patient_id": pid, "study_day": day, "marrow_blasts_pct": base * frac, "group": arm})
    return pd.DataFrame(rows)


@pytest.fixture()
def km_inputs() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, list[int]]:
    cr = kaplan_meier([520, 250, 700, 380, 600], [1, 1, 0, 1, 0]).table
    no = kaplan_meier([344, 60, 120, 200, 400, 90, 500, 30], [1, 1, 1, 1, 0, 1, 1, 1]).table
    times = [0, 180, 360, 540, 720]
    risk = pd.DataFrame([[5, 5, 4, 2, 0], [8, 4, 2, 0, 0]], index=["CR", "No CR"], columns=times)
    return {"CR": cr, "No CR": no}, risk, times


@pytest.fixture()
def swimmer_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    segs = pd.DataFrame(
        [
            ("P01", 0, 60, "sorafenib induction"),
            ("P01", 0, 28, "low-dose cytarabine"),
            ("P01", 60, 400, "sorafenib maintenance"),
            ("P01", 400, 460, "off treatment"),
            ("P02", 0, 45, "sorafenib induction"),
            ("P02", 45, 120, "off treatment"),
            ("P03", 0, 60, "sorafenib induction"),
            ("P03", 60, 700, "sorafenib maintenance"),
        ],
        columns=["patient_id", "start_day", "end_day", "kind"],
    )
    events = pd.DataFrame(
        [
            ("P01", 57, "CR"),
            ("P01", 400, "relapse"),
            ("P01", 460, "death"),
            ("P02", 120, "death"),
            ("P03", 50, "CR"),
            ("P03", 150, "HSCT"),
            ("P03", 700, "last contact"),
        ],
        columns=["patient_id", "day", "event"],
    )
    return segs, events


@pytest.fixture()
def adverse() -> pd.DataFrame:
    return pd.DataFrame(
        [("Rash", 1, 2), ("Rash", 3, 1), ("Diarrhoea", 1, 4), ("Diarrhoea", 2, 1), ("Bleeding", 5, 1)],
        columns=["term", "grade", "n_patients"],
    )


# ---------------------------------------------------------------------------------------------
# Figures 1–2
# ---------------------------------------------------------------------------------------------
def test_blast_trajectories_lines_labels_and_colours(blasts):
    fig = blast_trajectories(blasts, title="Figure 1", max_day=120, reference_lines=(5, 10))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "Days" in ax.get_xlabel() and "first dose" in ax.get_xlabel()
    assert "%" in ax.get_ylabel() and "blast" in ax.get_ylabel().lower()
    assert ax.get_title(loc="left") == "Figure 1"

    lines = by_gid(ax.get_lines(), "patient:")
    assert len(lines) == blasts["patient_id"].nunique() == 3
    for line in lines:
        pid = line.get_gid().removeprefix("patient:")
        rows = blasts[blasts["patient_id"] == pid].sort_values("study_day")
        np.testing.assert_allclose(line.get_xdata(), rows["study_day"])
        np.testing.assert_allclose(line.get_ydata(), rows["marrow_blasts_pct"])
        assert hexcolour(line.get_color()) in OKABE_HEX
        assert line.get_marker() not in (None, "", "None")
    # Greyscale redundancy: every patient has a distinct (colour, marker) pair and distinct markers.
    assert len({line.get_marker() for line in lines}) == len(lines)
    # Group encoded by line style: the two arms differ.
    styles = {line.get_gid(): line.get_linestyle() for line in lines}
    assert styles["patient:P01"] == styles["patient:P03"] != styles["patient:P12"]

    refs = sorted(float(a.get_ydata()[0]) for a in by_gid(ax.get_lines(), "ref:"))
    assert refs == [5.0, 10.0]
    assert ax.get_xlim()[1] <= 125  # capped at ~max_day (+ small pad), although data run to day 150
    assert ax.get_xlim()[0] < -2  # baseline (negative day) visible

    assert legend_labels(ax.get_legend()) == ["P01", "P03", "P12"]
    group_legend = next(lg for lg in fig.legends if lg.get_gid() == "legend:groups")
    assert legend_labels(group_legend) == ["S+LDAC", "S"]


def test_blast_trajectories_without_group_and_many_patients():
    rows = [
        {"patient_id": f"P{i:02d}", "study_day": d, "marrow_blasts_pct": 10 + i + d / 10}
        for i in range(1, 11)
        for d in (-1, 8, 22)
    ]
    fig = blast_trajectories(pd.DataFrame(rows))
    ax = fig.axes[0]
    lines = by_gid(ax.get_lines(), "patient:")
    assert len(lines) == 10
    # colours repeat after 7, but then the line style differs: (colour, linestyle, marker) is unique
    keys = {(hexcolour(x.get_color()), str(x.get_linestyle()), x.get_marker()) for x in lines}
    assert len(keys) == 10
    assert not fig.legends  # no group legend without a group column
    assert [float(a.get_ydata()[0]) for a in by_gid(ax.get_lines(), "ref:")] == [5.0]


def test_blast_trajectories_missing_column():
    with pytest.raises(ValueError, match="marrow_blasts_pct"):
        blast_trajectories(pd.DataFrame({"patient_id": ["P1"], "study_day": [1]}))


# ---------------------------------------------------------------------------------------------
# Figure 3
# ---------------------------------------------------------------------------------------------
def test_kaplan_meier_steps_censoring_and_risk_table(km_inputs):
    curves, risk, times = km_inputs
    fig = kaplan_meier_plot(
        curves,
        risk_table=risk,
        title="Figure 3",
        annotation="Log-rank p = 0.20; median 520 vs 344 days",
        medians={"CR": 520.0, "No CR": 344.0},
    )
    ax = next(a for a in fig.axes if a.get_gid() == "km_axes")
    ax_risk = next(a for a in fig.axes if a.get_gid() == "risk_table")
    assert "Days" in ax.get_xlabel()
    assert "probability" in ax.get_ylabel().lower()
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 1.0

    for label, table in curves.items():
        (step,) = by_gid(ax.get_lines(), f"km:{label}")
        assert step.get_drawstyle() == "steps-post"  # right-continuous
        assert hexcolour(step.get_color()) in OKABE_HEX
        # starts at (0, 1), then exactly the given (time, survival) pairs
        np.testing.assert_allclose(step.get_xdata(), [0.0, *table["time"]])
        np.testing.assert_allclose(step.get_ydata(), [1.0, *table["survival"]])

        cens = table[table["n_censor"] > 0]
        (marks,) = by_gid(ax.get_lines(), f"censor:{label}")
        assert marks.get_marker() == "+"
        assert marks.get_linestyle() == "None"
        np.testing.assert_allclose(marks.get_xdata(), cens["time"])
        np.testing.assert_allclose(marks.get_ydata(), cens["survival"])  # on the curve at that time
        assert hexcolour(marks.get_color()) == hexcolour(step.get_color())

        assert by_gid(ax.collections, f"ci:{label}")  # light band drawn
        (median,) = by_gid(ax.get_lines(), f"median:{label}")
        assert list(median.get_ydata()) == [0.5, 0.5, 0]

    # right-continuity as drawn: the path value just after an event time is the new S(t)
    (step,) = by_gid(ax.get_lines(), "km:CR")
    path = step._get_transformed_path().get_fully_transformed_path()  # display coordinates
    data = ax.transData.inverted().transform(path.vertices)
    # vertical drop at t=250 from 1.0 to 0.8: both (250, 1) and (250, 0.8) are vertices, in that order
    i = next(k for k, (x, y) in enumerate(data) if np.isclose(x, 250) and np.isclose(y, 1.0))
    assert np.allclose(data[i + 1], [250, 0.8])

    # number-at-risk table: texts equal the numbers given, at the tick times (aligned: shared x axis)
    np.testing.assert_allclose(ax.get_xticks(), times)
    assert ax_risk.get_shared_x_axes().joined(ax, ax_risk)
    for label in risk.index:
        for t in times:
            (txt,) = by_gid(ax_risk.texts, f"risk:{label}:{t}")
            assert txt.get_text() == str(risk.loc[label, t])
            assert txt.get_position()[0] == t
    assert [t.get_text() for t in ax_risk.get_yticklabels()] == ["CR", "No CR"]
    # rendered: each column's numbers are centred under the corresponding x tick
    renderer = fig.canvas.get_renderer()
    tick_x = {
        float(tk.get_loc()): tk.label1.get_window_extent(renderer).x0 / 2
        + tk.label1.get_window_extent(renderer).x1 / 2
        for tk in ax.xaxis.get_major_ticks()
    }
    for txt in by_gid(ax_risk.texts, "risk:"):
        box = txt.get_window_extent(renderer)
        assert abs((box.x0 + box.x1) / 2 - tick_x[txt.get_position()[0]]) < 1.0

    assert legend_labels(ax.get_legend()) == ["CR", "No CR", "Censored"]
    (note,) = by_gid(ax.texts, "annotation")
    assert note.get_text().startswith("Log-rank p = 0.20")


def test_kaplan_meier_times_subset_and_nan_band():
    curve = pd.DataFrame(
        {
            "time": [10.0, 20.0, 30.0],
            "survival": [0.5, 0.5, 0.0],
            "lower": np.nan,
            "upper": np.nan,
            "n_censor": [0, 1, 0],
        }
    )
    risk = pd.DataFrame([[2, 1, 0]], index=["All"], columns=[0, 15, 30])
    fig = kaplan_meier_plot({"All": curve}, risk_table=risk, times=[0, 30])
    ax, ax_risk = fig.axes[:2]
    np.testing.assert_allclose(ax.get_xticks(), [0, 30])
    assert sorted(t.get_text() for t in ax_risk.texts if t.get_gid()) == ["0", "2"]
    assert not by_gid(ax.collections, "ci:")  # all-NaN band: nothing drawn
    (marks,) = by_gid(ax.get_lines(), "censor:All")
    assert (list(marks.get_xdata()), list(marks.get_ydata())) == ([20.0], [0.5])
    assert not ax.texts  # no annotation requested


def test_censor_marks_all_up_to_the_grid_then_one_per_cell():
    x = np.arange(1.0, CENSOR_MARK_GRID + 1)
    assert censor_marks(x, np.linspace(1, 0, len(x)), x.max()).all()
    # one more point than the grid: two points in one cell keep the first only
    # (cells 4 days wide over 1,000 days: 0 and 0.001 share the first; then one point per cell)
    x = np.array([0.0, 0.001, *(4.0 * np.arange(1, CENSOR_MARK_GRID) + 2)])
    y = np.full(len(x), 0.5)
    keep = censor_marks(x, y, 1000.0)
    assert keep[0] and not keep[1] and keep[2:].all()
    # a different survival in the same time cell is another cell
    y2 = y.copy()
    y2[1] = 0.2
    assert censor_marks(x, y2, 1000.0)[1]


def test_kaplan_meier_registry_curve_marks_every_occupied_cell():
    """A registry's curve: 20,000 censored times. At most a monotone path's cells get a mark (not
    20,000 SVG paths), each mark is a censored point, and every censored point's cell has one."""
    rng = np.random.default_rng(3)
    n = 20_000
    time = np.sort(rng.uniform(1, 2000, n))
    survival = np.sort(rng.uniform(0.05, 1, n))[::-1]
    curve = pd.DataFrame({"time": time, "survival": survival, "lower": survival * 0.9,
                          "upper": np.minimum(survival * 1.1, 1), "n_censor": rng.integers(0, 2, n)})
    risk = pd.DataFrame([[n, 10]], index=["All"], columns=[0, 2000])
    fig = kaplan_meier_plot({"All": curve}, risk_table=risk)
    ax = next(a for a in fig.axes if a.get_gid() == "km_axes")
    (marks,) = by_gid(ax.get_lines(), "censor:All")
    mx, my = np.asarray(marks.get_xdata()), np.asarray(marks.get_ydata())
    cens = curve[curve.n_censor > 0]
    assert 100 < len(mx) <= 2 * CENSOR_MARK_GRID + 1 < len(cens)
    assert set(zip(mx, my, strict=True)) <= set(zip(cens.time, cens.survival, strict=True))

    def cells(t, s):
        return set(zip(np.floor(np.asarray(t) / 2000 * CENSOR_MARK_GRID),
                       np.floor(np.asarray(s) * CENSOR_MARK_GRID), strict=True))

    assert cells(mx, my) == cells(cens.time, cens.survival)
    # the band: at most two steps per time cell (four vertices a step: two on each edge), not 20,000
    (band,) = by_gid(ax.collections, "ci:All")
    vertices = sum(len(p.vertices) for p in band.get_paths())
    assert 1000 < vertices <= 4 * (2 * BAND_CELLS) + 16


def test_band_steps_keep_the_first_and_last_step_of_each_cell():
    x = np.arange(0.0, 10_000.0) + 0.5  # no step on a cell boundary
    width = 10_000.0 / BAND_CELLS
    keep = band_steps(x, 10_000.0)
    cell = np.floor(x / width)
    assert (np.bincount(cell.astype(int)) > 2).all()  # several steps in every cell
    for c in (0, 1, BAND_CELLS // 2, BAND_CELLS - 1):
        idx = np.flatnonzero(cell == c)
        assert keep[idx[0]] and keep[idx[-1]] and not keep[idx[1:-1]].any()
    assert keep.sum() == 2 * BAND_CELLS
    assert band_steps(x[:BAND_CELLS], 10_000.0).all()  # few steps: all drawn


def test_kaplan_meier_requires_risk_rows(km_inputs):
    curves, risk, _ = km_inputs
    with pytest.raises(ValueError, match="No CR"):
        kaplan_meier_plot(curves, risk_table=risk.loc[["CR"]])
    with pytest.raises(ValueError, match="999"):
        kaplan_meier_plot(curves, risk_table=risk, times=[0, 999])


# ---------------------------------------------------------------------------------------------
# Swimmer plot and adverse events
# ---------------------------------------------------------------------------------------------
def test_swimmer_plot(swimmer_inputs):
    segs, events = swimmer_inputs
    fig = swimmer_plot(segs, events, overlays=("low-dose cytarabine",))
    ax = fig.axes[0]
    order = [k for k in dict.fromkeys(segs["kind"]) if k not in KIND_STYLES]
    fixed = [k for k in KIND_STYLES if k in set(segs["kind"])]
    expected = kind_styles([*order, *fixed], ("low-dose cytarabine",))
    assert "Days" in ax.get_xlabel()
    # one lane per patient, longest follow-up on top (y axis inverted: lane 0 at the top)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["P03", "P01", "P02"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]

    bars = by_gid(ax.patches, "kind:")
    assert len(bars) == len(segs)
    for kind, group in segs.groupby("kind"):
        patches = by_gid(ax.patches, f"kind:{kind}")
        assert sorted((p.get_x(), p.get_x() + p.get_width()) for p in patches) == sorted(
            zip(group["start_day"].astype(float), group["end_day"].astype(float), strict=True)
        )
        assert {hexcolour(p.get_facecolor()) for p in patches} == {expected[kind]["color"]}
        assert {round(p.get_height(), 2) for p in patches} == {expected[kind]["height"]}
    assert {hexcolour(p.get_facecolor()) for p in bars} <= OKABE_HEX

    markers = {}
    for name in EVENT_STYLES:
        (line,) = by_gid(ax.get_lines(), f"event:{name}")
        rows = events[events["event"] == name]
        np.testing.assert_allclose(sorted(line.get_xdata()), sorted(rows["day"]))
        markers[name] = line.get_marker()
    assert len(set(markers.values())) == len(EVENT_STYLES)  # distinct shapes

    (legend,) = fig.legends
    assert set(legend_labels(legend)) == set(segs["kind"]) | set(EVENT_STYLES)


def test_swimmer_rejects_unknown_event(swimmer_inputs):
    segs, events = swimmer_inputs
    bad = pd.concat([events, pd.DataFrame([{"patient_id": "P01", "day": 3, "event": "stroke"}])])
    with pytest.raises(ValueError, match="stroke"):
        swimmer_plot(segs, bad)


def test_bar_by_grade(adverse):
    fig = bar_by_grade(adverse, n_total=13)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Patients (n)"
    # ordered by total, largest on top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Diarrhoea", "Rash", "Bleeding"]
    assert ax.get_xlim()[1] == 13
    totals = {}
    for patch in by_gid(ax.patches, "grade:"):
        g = int(patch.get_gid().split(":")[1])
        assert hexcolour(patch.get_facecolor()) == GRADE_COLOURS[g]
        lane = round(patch.get_y() + patch.get_height() / 2)
        totals[lane] = max(totals.get(lane, 0), patch.get_x() + patch.get_width())
    assert totals == {0: 5, 1: 3, 2: 1}  # stacks end at the per-term totals
    (legend,) = fig.legends
    assert legend_labels(legend) == ["1", "2", "3", "5"]
    # sequential palette: lightness decreases with grade
    lum = [np.dot(mcolors.to_rgb(GRADE_COLOURS[g]), [0.299, 0.587, 0.114]) for g in range(1, 6)]
    assert lum == sorted(lum, reverse=True)


@pytest.mark.parametrize("n_total", [13, 1_000, 100_000, 2_000_000])
def test_bar_by_grade_count_labels_apart(adverse, n_total):
    """A registry's x axis (up to 10^5 or 10^6 patients) gets fewer ticks: its labels do not run
    into each other (drawn, then measured); a study's keeps matplotlib's own choice."""
    scaled = adverse.assign(n_patients=adverse.n_patients * max(n_total // 13, 1))
    fig = bar_by_grade(scaled, n_total=n_total)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown = [t for t in ax.get_xticklabels() if t.get_text() and 0 <= t.get_position()[0] <= n_total]
    boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
    assert len(boxes) >= 3
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))
    texts = [t.get_text() for t in shown]
    assert all(t.isdigit() for t in texts)  # whole patients, no "1e6" offset
    if n_total == 13:
        assert texts == ["0", "2", "4", "6", "8", "10", "12"]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def png_phys_dpi(path: Path) -> tuple[float, float]:
    """DPI from the PNG pHYs chunk (pixels per metre), checking chunk CRCs on the way."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(ctype + body) == crc
        if ctype == b"pHYs":
            x, y, unit = struct.unpack(">IIB", body)
            assert unit == 1  # metre
            return x * 0.0254, y * 0.0254
        pos += 12 + length
    raise AssertionError("no pHYs chunk")


def test_save_figure_png_300dpi_and_valid_svg(tmp_path, blasts):
    fig = blast_trajectories(blasts)
    paths = save_figure(fig, tmp_path / "figs", "figure1")
    assert set(paths) == {"png", "svg"}
    assert paths["png"] == tmp_path / "figs" / "figure1.png" and paths["png"].is_file()

    dpi_x, dpi_y = png_phys_dpi(paths["png"])
    assert round(dpi_x) == round(dpi_y) == 300
    pil = pytest.importorskip("PIL.Image")
    with pil.open(paths["png"]) as im:
        assert round(im.info["dpi"][0]) == 300
        # 3.5 in wide at 300 dpi (bbox "tight" trims/extends a little)
        assert 0.8 * 3.5 * 300 < im.size[0] < 1.2 * 3.5 * 300

    root = ET.parse(paths["svg"]).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width", "").endswith("pt")
    assert "Date" not in paths["svg"].read_text()  # reproducible output


def test_save_figure_is_reproducible(tmp_path, adverse):
    a = save_figure(bar_by_grade(adverse), tmp_path / "a", "ae")
    b = save_figure(bar_by_grade(adverse), tmp_path / "b", "ae")
    assert a["svg"].read_bytes() == b["svg"].read_bytes()
    assert a["png"].read_bytes() == b["png"].read_bytes()


def test_figure_to_data_uri(adverse):
    fig = bar_by_grade(adverse)
    svg = figure_to_data_uri(fig, "svg")
    assert svg.startswith("data:image/svg+xml;base64,")
    ET.fromstring(base64.b64decode(svg.split(",", 1)[1]))
    png = figure_to_data_uri(fig, fmt="png")
    assert png.startswith("data:image/png;base64,")
    assert base64.b64decode(png.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        figure_to_data_uri(fig, "jpg")  # type: ignore[arg-type]


def test_import_touches_no_global_backend():
    # (matplotlib.get_backend() itself imports pyplot, so it is not called here)
    code = (
        "import sys, matplotlib; before = matplotlib.rcParams['font.size']; "
        "import amlcohort.report.figures; "
        "assert 'matplotlib.pyplot' not in sys.modules; assert matplotlib.rcParams['font.size'] == before"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_legend_handles_are_lines_for_patients(blasts):
    ax = blast_trajectories(blasts).axes[0]
    assert all(isinstance(h, Line2D) for h in ax.get_legend().legend_handles)


def test_km_risk_table_labels_do_not_overlap_numbers(km_inputs):
    curves, risk, _ = km_inputs
    fig = kaplan_meier_plot(curves, risk_table=risk, figsize=(7.0, 3.2))  # double column too
    ax_risk = next(a for a in fig.axes if a.get_gid() == "risk_table")
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    label_right = max(t.get_window_extent(renderer).x1 for t in ax_risk.get_yticklabels())
    first_left = min(t.get_window_extent(renderer).x0 for t in by_gid(ax_risk.texts, "risk:"))
    assert label_right < first_left


def test_swimmer_overlays_are_thin_and_colours_distinct():
    styles = kind_styles(["azacitidine induction", "venetoclax induction", "off treatment"],
                         overlays=("venetoclax induction",))
    assert styles["azacitidine induction"]["height"] == 0.6
    assert styles["venetoclax induction"]["height"] == 0.22
    assert styles["off treatment"] == KIND_STYLES["off treatment"]
    assert styles["azacitidine induction"]["color"] != styles["venetoclax induction"]["color"]


def test_not_estimable_placeholder_says_why_literally():
    from amlcohort.report.figures import not_estimable_figure

    fig = not_estimable_figure("Overall survival by arm", "no deaths: every patient censored ($x$)")
    (text,) = fig.axes[0].texts
    assert text.get_text() == "Not estimable: no deaths: every patient censored ($x$)"
    assert text.get_gid() == "not_estimable"
    assert fig.axes[0].get_title(loc="left") == "Overall survival by arm"


def test_long_adverse_event_terms_are_wrapped_and_the_layout_holds():
    """A user's 80-character term used to squeeze the bars of the AE figure to nothing (matplotlib:
    "constrained_layout not applied because axes sizes collapsed to zero"); it is wrapped on two
    lines and cut with an ellipsis (the tables keep the full text)."""
    import warnings

    from amlcohort.report.figures import TICK_WIDTH, render_figure, tick_label

    assert tick_label("Anemia") == "Anemia"
    assert tick_label("Alanine aminotransferase increased") == "Alanine aminotransferase\nincreased"
    long = "Febrile neutropenia with documented gram-negative bacteraemia requiring intensive care"
    label = tick_label(long)
    first, second = label.split("\n")
    assert len(first) <= TICK_WIDTH and len(second) <= TICK_WIDTH and second.endswith("…")
    assert long.startswith(first) and tick_label("y" * TICK_WIDTH) == "y" * TICK_WIDTH
    ae = pd.DataFrame({"term": [long, "Anemia", "<script>x</script>" * 4], "grade": [3, 2, 1],
                       "n_patients": [2, 5, 1]})
    fig = bar_by_grade(ae, n_total=13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout warning fails the test
        svg = render_figure(fig, "svg")
        render_figure(fig, "png", dpi=150)
    assert svg.startswith(b"<?xml")
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert shown == ["Anemia", label, tick_label("<script>x</script>" * 4)]
    assert ax.get_position().width > 0.3  # the bars keep most of the figure's width


def test_a_long_km_note_is_wrapped_and_the_plot_keeps_its_width(km_inputs):
    """The report's note under the curves ("Log-rank p ...; median <arm> 344 d; <arm> 455 d") was
    one line wider than the plot: the layout gave up (matplotlib: "constrained_layout not
    applied"), the plot shrank to a third of the figure and the day ticks ran together (the
    embedded study's figures 7 and 8). The note is one line per part now and takes no room in
    the layout."""
    import warnings

    from amlcohort.report.figures import annotation_lines, render_figure

    note = "Log-rank p = 0.920 (1 df); median Sorafenib alone 344 d; Sorafenib + LDAC 455 d"
    assert annotation_lines(note).split("\n") == [
        "Log-rank p = 0.920 (1 df)", "median Sorafenib alone 344 d", "Sorafenib + LDAC 455 d"]
    assert all(len(x) <= 44 for x in annotation_lines("median " + "a very long arm name " * 6).split("\n"))
    curves, risk, _ = km_inputs
    fig = kaplan_meier_plot(curves, risk_table=risk, title="OS by arm", annotation=note)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout warning fails the test
        render_figure(fig, "svg")
        render_figure(fig, "png", dpi=150)
    ax = next(a for a in fig.axes if a.get_gid() == "km_axes")
    assert ax.get_position().width > 0.5
    (text,) = [t for t in ax.texts if t.get_gid() == "annotation"]
    assert text.get_text() == annotation_lines(note) and not text.get_in_layout()


@pytest.mark.parametrize(
    ("horizon", "n", "step"),
    [
        (700.0, 13, 90.0),  # the paper's figures: as before
        (1700.0, 13, 180.0),
        (4745.0, 13, 730.0),  # long follow-up: at most ten intervals
        (4745.0, 50_000, 1095.0),  # a registry's five-digit numbers: at most six
        (4745.0, 500_000, 1095.0),  # six digits: the group names move left of them
    ],
)
def test_risk_times_fit_their_numbers_under_the_plot(horizon, n, step):
    """The number-at-risk times (also the x ticks) of a Kaplan–Meier figure: a registry's long
    follow-up and large numbers get a longer step, so neither the day labels nor the numbers at
    risk run into each other (drawn, then measured)."""
    times = risk_times(horizon, n)
    assert times[0] == 0.0 and times[1] - times[0] == step and times[-1] <= horizon
    rng = np.random.default_rng(5)
    curves, rows = {}, {}
    for g in ("Sorafenib alone", "Sorafenib + LDAC"):
        t = np.sort(rng.uniform(1, horizon, 2000))
        surv = np.linspace(1, 0.05, 2000)
        curves[g] = pd.DataFrame({"time": t, "survival": surv, "lower": surv * 0.9, "upper": surv,
                                  "n_censor": 1})
        rows[g] = [int(n * (1 - k / len(times))) for k in range(len(times))]
    risk = pd.DataFrame(rows, index=times).T
    fig = kaplan_meier_plot(curves, risk_table=risk, times=times)
    renderer = fig.canvas.get_renderer()
    ax = next(a for a in fig.axes if a.get_gid() == "km_axes")
    ax_risk = next(a for a in fig.axes if a.get_gid() == "risk_table")

    def apart(boxes):
        boxes = sorted(boxes, key=lambda b: b.x0)
        return all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))

    labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) == len(times) and apart(labels)
    names = {t.get_text(): t.get_window_extent(renderer) for t in ax_risk.get_yticklabels()}
    for g in curves:
        numbers = [t.get_window_extent(renderer) for t in by_gid(ax_risk.texts, f"risk:{g}:")]
        assert len(numbers) == len(times) and apart(numbers), g
        assert apart([names[g], *numbers]), g  # the group's name ends before its first number
