"""Report output: atomic and exclusive writes, no links followed, manifest, safe cells, inert HTML, PDF.

The report written here is the small stand-in of ``test_output_fake.py`` (real figures and the real
writers, no cohort), so faults can be injected in subprocesses quickly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from amlcohort.io.output import (
    XLSX_CELL_LIMIT,
    OutputError,
    OutputLocked,
    safe_cell,
    xlsx_cell,
)
from amlcohort.report.build import write_report

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from test_output_fake import (  # noqa: E402
    FORMULA,
    HTML_ID,
    HTML_TERM,
    STUDY_NAME,
    TYPST_TEXT,
    make_report,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def assert_complete(out: Path) -> dict:
    """The folder holds exactly the manifest's files (plus manifest.json), every hash matching."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"] == "amlcohort"
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"]) | {"manifest.json"}
    for rel, meta in manifest["files"].items():
        data = (out / rel).read_bytes()
        assert len(data) == meta["size"], rel
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], rel
    results = json.loads((out / "results.json").read_text())
    assert results["outputs"]["manifest"] == "manifest.json"
    assert set(results["outputs"]["files"]) == set(manifest["files"]) - {"results.json"}
    return results


def leftovers(out: Path) -> list[str]:
    return sorted(
        p.name
        for p in out.parent.iterdir()
        if p.name.startswith(f".{out.name}.") and not p.name.endswith("lock")
    )


CHILD = r"""
import os, signal, sys, time
# as in a terminal: Ctrl-C raises KeyboardInterrupt (a background job would inherit SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {here!r})
from test_output_fake import make_report
from amlcohort.io import output
from amlcohort.report.build import write_report

point, marker, out = sys.argv[1], sys.argv[2], sys.argv[3]

def pause():
    open(marker, "w").close()
    time.sleep(600)

original_write = output.Staging.write_bytes
count = [0]
def write_bytes(self, rel, data):
    count[0] += 1
    if point == "first-file" and count[0] == 1:
        # half a file on disk, then killed
        p = self.path(rel); p.write_bytes(data[: len(data) // 2]); pause()
    if point == "pdf" and rel == "report.pdf":
        pause()
    return original_write(self, rel, data)
output.Staging.write_bytes = write_bytes

original_swap = output._swap
def swap(new, out_):
    if point == "before-swap":
        pause()
    original_swap(new, out_)
    if point == "after-swap":
        pause()
output._swap = swap

if point == "between-renames":
    output._exchange = lambda a, b: False
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if ".old-" in str(dst):
            pause()
    output.os.rename = rename

write_report(make_report(tag="run B"), out, pdf=True)
"""


def start_child(point: str, out: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"paused-{point}"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(here=str(HERE)))
    proc = subprocess.Popen(
        [sys.executable, str(script), point, str(marker), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child ended before {point}: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child never reached {point}")
        time.sleep(0.05)
    return proc, marker


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture()
def previous(tmp_path) -> Path:
    """A complete report from an earlier run ("run A", with a table the next run does not have)."""
    out = tmp_path / "out"
    write_report(make_report(tag="run A", extra_table=True), out, pdf=True)
    return out


# ---------------------------------------------------------------------------------------------
# atomic, exclusive, only this run's files
# ---------------------------------------------------------------------------------------------


def test_report_folder_holds_only_the_current_run_with_a_manifest(previous):
    first = assert_complete(previous)
    assert first["tag"] == "run A" and (previous / "tables" / "extra_only_in_this_run.csv").exists()
    assert (previous / "report.pdf").exists()
    write_report(make_report(tag="run B"), previous)  # no PDF, no extra table this time
    second = assert_complete(previous)
    assert second["tag"] == "run B"
    assert not (previous / "report.pdf").exists()  # the stale PDF of run A is gone
    assert not (previous / "tables" / "extra_only_in_this_run.csv").exists()
    assert not list(previous.glob("figures/*.png"))  # PNG only on request
    assert leftovers(previous) == []


def test_png_only_on_request(tmp_path):
    out = tmp_path / "out"
    write_report(make_report(), out, png=True)
    assert_complete(out)
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["figure1_blasts_cr.png", "figure6_adverse_events.png"]
    assert (out / "figures" / "figure1_blasts_cr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("point", "expect"),
    [("first-file", "run A"), ("pdf", "run A"), ("before-swap", "run A"), ("after-swap", "run B")],
)
def test_sigkill_leaves_a_complete_report(previous, tmp_path, point, expect):
    proc, _ = start_child(point, previous, tmp_path)
    kill(proc)
    results = assert_complete(previous)  # the previous report, or the new one: never a mix
    assert results["tag"] == expect
    # the next run cleans up what the killed one left and writes normally
    write_report(make_report(tag="run C"), previous)
    assert assert_complete(previous)["tag"] == "run C"
    assert leftovers(previous) == []


def test_sigkill_between_the_fallback_renames_is_recovered(previous, tmp_path):
    """Without renameat2 the swap is two renames; a kill between them is undone by the next run."""
    proc, _ = start_child("between-renames", previous, tmp_path)
    kill(proc)
    assert not previous.exists() and any(".old-" in n for n in leftovers(previous))
    from amlcohort.io.output import _recover

    _recover(previous)
    assert assert_complete(previous)["tag"] == "run A"
    assert leftovers(previous) == []


def test_a_concurrent_second_run_fails_with_the_lock_message(previous, tmp_path):
    proc, _ = start_child("before-swap", previous, tmp_path)
    try:
        with pytest.raises(OutputLocked, match=rf"another amlcohort run \(pid {proc.pid}\) is writing"):
            write_report(make_report(tag="run C"), previous)
        assert assert_complete(previous)["tag"] == "run A"
    finally:
        kill(proc)
    write_report(make_report(tag="run D"), previous)  # the lock died with its holder
    assert assert_complete(previous)["tag"] == "run D"


# ---------------------------------------------------------------------------------------------
# links, permissions, foreign folders
# ---------------------------------------------------------------------------------------------


def test_a_symlinked_output_file_is_not_followed(previous, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (previous / "report.html").unlink()
    (previous / "report.html").symlink_to(outside)
    with pytest.raises(OutputError, match="symbolic link"):
        write_report(make_report(tag="run B"), previous)
    assert outside.read_text() == "precious"
    assert (previous / "report.html").is_symlink()


def test_an_out_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(OutputError, match="symbolic link"):
        write_report(make_report(), link)
    assert [p.name for p in real.iterdir()] == ["keep.txt"]


def test_a_folder_that_is_not_a_report_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.docx").write_text("years of work")
    with pytest.raises(OutputError, match="not an amlcohort report"):
        write_report(make_report(), home)
    assert (home / "thesis.docx").read_text() == "years of work"


NOBODY = """
import os, sys
sys.path.insert(0, {here!r})
import jinja2, openpyxl, typst  # imported before dropping privileges: the interpreter is root's
from test_output_fake import make_report
from amlcohort.io import output
from amlcohort.report import html, pdf
from amlcohort.report.build import write_report
report = make_report()
if os.geteuid() == 0:
    os.setuid(65534)  # root writes anywhere; a read-only folder is read-only for an ordinary user
try:
    write_report(report, {target!r})
except output.OutputError as e:
    print("OutputError:", e)
    sys.exit(3)
"""


def _nobody_writes(target: Path) -> subprocess.CompletedProcess:
    code = NOBODY.format(here=str(HERE), target=str(target))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["read-only parent", "read-only out"])
def test_read_only_out_raises_output_error(case):
    base = Path(tempfile.mkdtemp(prefix="amlcohort-ro-"))
    try:
        os.chmod(base, 0o755)
        parent = base / "parent"
        parent.mkdir()
        if case == "read-only out":
            os.chmod(parent, 0o777)
            (parent / "out").mkdir()
            os.chmod(parent / "out", 0o555)
        else:
            os.chmod(parent, 0o555)
        proc = _nobody_writes(parent / "out")
        assert proc.returncode == 3, proc.stderr[-2000:]
        line = proc.stdout.strip()
        assert line.startswith("OutputError: ") and "\n" not in line
        assert ("permission denied" in line) or ("read-only" in line)
        assert "--out" in line
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir():
                p.chmod(stat.S_IRWXU)
        shutil.rmtree(base)


# ---------------------------------------------------------------------------------------------
# spreadsheet cells
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-1", "-1"),  # a number written as text cannot be a formula
        ("+2.5e3", "+2.5e3"),
        ("a=b", "a=b"),
        (-3.0, -3.0),
        ("", ""),
    ],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_formula_text_is_neutralised_in_xlsx_and_csv_and_verbatim_in_results(tmp_path):
    import openpyxl

    out = tmp_path / "out"
    write_report(make_report(), out)
    ws = openpyxl.load_workbook(out / "tables.xlsx")["adverse_events"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no live formula anywhere
    term = next(c for c in cells if isinstance(c.value, str) and "HYPERLINK" in c.value)
    assert term.value == "'" + FORMULA and term.data_type == "s"
    numbers = [c.value for c in cells if c.column_letter == "D" and c.row > 1]
    assert numbers[:2] == [-1.5, 2.0] and numbers[2] is None  # numbers stay numbers, NaN is empty
    csv = (out / "tables" / "adverse_events.csv").read_text()
    assert "'=HYPERLINK" in csv and "\n=HYPERLINK" not in csv and ",=HYPERLINK" not in csv
    assert FORMULA in json.loads((out / "results.json").read_text())["figures"]["ae.terms"]


def test_tables_xlsx_is_the_same_file_on_every_run(tmp_path, office_clock):
    """Two runs on the same results, four years apart by the clock: the same tables.xlsx, so the
    same sha256 in results.json (openpyxl's time stamps are left out)."""
    import datetime as dt

    report = make_report()
    office_clock(dt.datetime(2020, 1, 2, 3, 4, 5))
    write_report(report, tmp_path / "a")
    office_clock(dt.datetime(2024, 6, 7, 8, 9, 10))
    write_report(report, tmp_path / "b")
    a, b = ((tmp_path / x / "tables.xlsx").read_bytes() for x in "ab")
    assert a == b and len(a) > 1000
    files = [json.loads((tmp_path / x / "results.json").read_text())["outputs"]["files"] for x in "ab"]
    assert files[0]["tables.xlsx"]["sha256"] == files[1]["tables.xlsx"]["sha256"]


def test_text_beyond_the_excel_cell_limit_is_cut_visibly_with_a_warning(tmp_path):
    import openpyxl

    out = tmp_path / "out"
    write_report(make_report(long_text=40_000), out)
    ws = openpyxl.load_workbook(out / "tables.xlsx")["adverse_events"]
    cell = ws["B2"].value
    assert len(cell) <= XLSX_CELL_LIMIT and "TRUNCATED: 40,000 characters" in cell
    warnings = json.loads((out / "results.json").read_text())["output_warnings"]
    assert warnings == [
        {
            "file": "tables.xlsx",
            "sheet": "adverse_events",
            "row": 2,
            "column": "Term",
            "length": 40_000,
            "message": warnings[0]["message"],
        }
    ]
    assert "x" * 40_000 in (out / "tables" / "adverse_events.csv").read_text()  # the CSV keeps it all
    assert xlsx_cell("y" * XLSX_CELL_LIMIT) == ("y" * XLSX_CELL_LIMIT, None)  # at the limit: kept


# ---------------------------------------------------------------------------------------------
# HTML: generic text, inert user text, figures drawn literally
# ---------------------------------------------------------------------------------------------


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _check_inert(html: str) -> None:
    dom = _Dom()
    dom.feed(html)
    tags = {t for t, _ in dom.tags}
    assert "script" not in tags and "svg" not in tags and "b" not in tags and "iframe" not in tags
    assert not [(t, a) for t, a in dom.tags for k in a if k.startswith("on")]
    imgs = [a.get("src", "") for t, a in dom.tags if t == "img"]
    assert imgs and all(s.startswith("data:image/svg+xml;base64,") for s in imgs)
    text = "".join(dom.text)
    assert HTML_TERM in text and HTML_ID in text  # shown as the text it is


@pytest.fixture(scope="module")
def html_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "out"
    write_report(make_report(missing_figure=True), out, pdf=True)
    return out


def test_html_is_generic_self_contained_and_says_what_is_not_estimable(html_report):
    html = (html_report / "report.html").read_text()
    _check_inert(html)
    assert f"<title>{STUDY_NAME.replace('+', '+')}</title>" in html
    assert "Azacitidine + venetoclax" in html and "1/2 with Azacitidine + venetoclax" in html
    assert "log-rank test not estimable: no events in one group" in html
    assert "Not estimable: " in html and 'id="figure6_adverse_events"' in html
    low = html.lower()
    assert "sorafenib" not in low and "xu " not in low and "cytarabine" not in low
    assert "http://" not in html.replace("http://x.invalid", "") and "https://" not in html
    assert "Content-Security-Policy" in html
    assert "Response criteria: eln2022." in html and "CTCAE v5.0." in html  # from the study definition
    assert "Day 1 is the day of the first dose of any study drug" in html


def test_html_payloads_are_inert_in_headless_chromium(html_report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium (apt-get install -y chromium); the live DOM was not checked")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", "--virtual-time-budget=3000", (html_report / "report.html").as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout  # fmt: skip
    assert "<title>" in dom and "pwned" not in dom.split("</title>")[0]  # no script rewrote the title
    _check_inert(dom)


def test_figures_draw_user_text_literally():
    import matplotlib

    from amlcohort.report import figures as fig

    report = make_report()
    for f in report.figures.values():
        svg = fig.render_figure(f, "svg")  # "$$" and "$\alpha$" do not break the renderer
        assert svg.lstrip().startswith(b"<?xml")
        with fig.figure_style(), matplotlib.rc_context({"svg.fonttype": "none"}):
            import io

            buf = io.BytesIO()
            f.savefig(buf, format="svg")
        text = buf.getvalue().decode()
        if f is report.figures["figure1_blasts_cr"]:
            assert "$\\alpha$-02" in text and "α" not in text
        else:
            assert "$$ rash" in text


# ---------------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------------


def test_pdf_is_a4_with_page_numbers_study_name_and_table_headers(html_report):
    from pypdf import PdfReader

    reader = PdfReader(html_report / "report.pdf")
    assert len(reader.pages) >= 2
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "azacitidine + venetoclax vs 7+3" in text
    for header in ("Patient", "Term", "Grade", "Change", "Characteristic"):
        assert header in text
    assert f"1 / {len(reader.pages)}" in reader.pages[0].extract_text()
    flat = text.replace("\n", "")
    assert "#panic" in flat and "*bold*" in flat  # Typst markup in user text is shown, not run
    assert "typst code ran" in flat
    assert "Not estimable" in text
    assert reader.metadata.title == STUDY_NAME


def test_pdf_long_table_breaks_across_pages_with_repeated_header(tmp_path):
    from pypdf import PdfReader

    from amlcohort.report.pdf import render_pdf

    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_pdf(make_report(rows=240)))
    pages = [p.extract_text() for p in PdfReader(pdf).pages]
    with_rows = [t for t in pages if "P04" in t]
    assert len(with_rows) >= 3
    assert all("Patient" in t and "Grade" in t for t in with_rows)  # the header repeats
    assert TYPST_TEXT.split()[0] in "".join(pages)


def test_preflight_fails_fast_and_a_legacy_report_folder_is_replaced(tmp_path):
    from amlcohort.io.output import preflight

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not an amlcohort report"):
        preflight(foreign)
    preflight(tmp_path / "new")  # nothing there yet: fine, and nothing written but the lock
    assert not (tmp_path / "new").exists()
    legacy = tmp_path / "legacy"  # a report of a version before manifests
    (legacy / "figures").mkdir(parents=True)
    (legacy / "figures" / "figure1.png").write_bytes(b"old")
    (legacy / "results.json").write_text("{}")
    (legacy / "report.pdf").write_text("stale")
    preflight(legacy)
    write_report(make_report(), legacy)
    assert_complete(legacy)
    assert not (legacy / "report.pdf").exists()


def test_ctrl_c_while_writing_leaves_the_previous_report_and_no_leftovers(previous, tmp_path):
    proc, _ = start_child("pdf", previous, tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=240) != 0  # generous: the machine is shared and loaded
    assert assert_complete(previous)["tag"] == "run A"
    assert leftovers(previous) == []  # the interrupted run removed its temporary folder itself


@pytest.mark.parametrize(
    ("figures", "notes", "expected"),
    [
        ({"fisher.p_value": 0.0004}, {}, (0.0004, None)),
        ({"fisher.p_value": None}, {"fisher.p_value": "one arm"}, (None, "one arm")),
        ({"fisher.p_value": {"not_estimable": "nobody in CR"}}, {}, (None, "nobody in CR")),
        ({}, {}, (None, "not computed for this cohort")),
    ],
)
def test_lookup_reads_results_defensively(figures, notes, expected):
    from amlcohort.report.html import lookup

    assert lookup({"figures": figures, "notes": notes}, "fisher.p_value") == expected


def test_summary_of_a_cohort_where_little_is_estimable():
    from amlcohort.report.html import StudyText, fmt_p, summary_sentences

    st = StudyText(
        "S", None, "", [("a", "Arm A")], "eln2022", "5.0", "the first dose", "2024-01-01", "", False
    )
    results = {
        "figures": {"cohort.n_patients": 1, "cr.by_arm": {"a": {"cr": 0, "n": 1}}},
        "notes": {"fisher.p_value": "one arm only"},
    }
    text = " ".join(summary_sentences(results, st))
    assert text.startswith("1 patient in 1 arm. Complete remission (CR) in 0/1 with Arm A")
    assert "Fisher's exact test not estimable: one arm only" in text
    assert "Days to CR not estimable" in text and "Median follow-up not estimable" in text
    assert (fmt_p(0.0004), fmt_p(0.0319), fmt_p(0.21), fmt_p(None)) == ("< 0.001", "0.032", "0.210", "NA")


def test_a_table_longer_than_an_excel_sheet_is_cut_with_a_warning(tmp_path, monkeypatch):
    """openpyxl writes any number of rows; Excel cannot open a sheet of more than 1,048,576. The
    sheet holds what fits (the limit set to 4 rows here: a header and 3 rows), the CSV every row."""
    import csv

    import openpyxl

    from amlcohort.io import output

    assert output.XLSX_ROW_LIMIT == 1_048_576
    monkeypatch.setattr(output, "XLSX_ROW_LIMIT", 4)
    out = tmp_path / "out"
    write_report(make_report(rows=6), out)
    ws = openpyxl.load_workbook(out / "tables.xlsx")["adverse_events"]
    with open(out / "tables" / "adverse_events.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.reader(f))
    assert len(csv_rows) == 1 + 6  # the header and every row
    assert ws.max_row == 4 and [r[0] for r in ws.iter_rows(values_only=True)] == [r[0] for r in csv_rows[:4]]
    warnings = json.loads((out / "results.json").read_text())["output_warnings"]
    cut = [w for w in warnings if w.get("sheet") == "adverse_events"]
    assert cut == [{"file": "tables.xlsx", "sheet": "adverse_events", "rows": 6, "rows_written": 3,
                    "message": "the sheet holds the first 3 of 6 rows (Excel's limit is 4 rows a sheet); "
                               "every row is in tables/adverse_events.csv"}]
    # a table that fits is written whole, without a warning
    monkeypatch.setattr(output, "XLSX_ROW_LIMIT", 7)
    out2 = tmp_path / "out2"
    write_report(make_report(rows=6), out2)
    assert openpyxl.load_workbook(out2 / "tables.xlsx")["adverse_events"].max_row == 7
    assert "output_warnings" not in json.loads((out2 / "results.json").read_text()) or not [
        w for w in json.loads((out2 / "results.json").read_text())["output_warnings"] if "rows" in w
    ]


def test_a_long_table_shows_its_first_rows_in_the_html_and_pdf_and_says_where_the_rest_are(
    tmp_path, monkeypatch
):
    """A registry's listing (dose modifications of 10^5 patients) would make an HTML page of many
    megabytes and a PDF of thousands of pages: the documents show the first rows and a note; the
    CSV and the XLSX keep every row."""
    from pypdf import PdfReader

    from amlcohort.report import html
    from amlcohort.report.pdf import render_pdf

    assert html.DOCUMENT_MAX_ROWS == 500
    monkeypatch.setattr(html, "DOCUMENT_MAX_ROWS", 5)
    out = tmp_path / "out"
    write_report(make_report(rows=12), out)
    page = (out / "report.html").read_text()
    table = page[page.index('id="adverse_events"'):]
    table = table[: table.index("</section>")]
    assert table.count("<tr>") == 1 + 5  # the header and the first 5 rows
    note = "The first 5 of 12 rows; every row is in tables/adverse_events.csv and tables.xlsx."
    assert note in table
    assert len((out / "tables" / "adverse_events.csv").read_text().strip().splitlines()) == 1 + 12
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(make_report(rows=12)))).pages)
    assert " ".join(note.split()) in " ".join(text.split())
    # at the limit: every row, no note
    out2 = tmp_path / "out2"
    write_report(make_report(rows=5), out2)
    assert "The first" not in (out2 / "report.html").read_text()
