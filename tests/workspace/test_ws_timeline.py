"""The patient timeline: an inline SVG drawn from the patient's rows, text from the data escaped."""

from __future__ import annotations

import csv

import sqlalchemy as sa
from tests.workspace.conftest import login

from amlcohort.io.cohort import embedded_study_path
from amlcohort.workspace import db, store


def _rows_in_bundle(table: str, patient_id: str) -> int:
    """Rows of the patient in the embedded bundle's CSV (read independently of the workspace)."""
    with (embedded_study_path() / f"{table}.csv").open(newline="", encoding="utf-8") as f:
        return sum(r["patient_id"] == patient_id for r in csv.DictReader(f))


def _svg(page: str) -> str:
    start = page.index('<svg id="timeline"')
    return page[start:page.index("</svg>", start)]


def test_patient_page_draws_one_mark_per_row_on_study_days(site):
    svg = _svg(login(site, "monitor").get("/s/demo/p/P04").text)
    counts = {k: svg.count(f'data-kind="{k}"') for k in ("assessment", "exposure", "event", "ae")}
    assert counts == {"assessment": _rows_in_bundle("assessments", "P04"),
                      "exposure": _rows_in_bundle("exposures", "P04"),
                      "event": _rows_in_bundle("events", "P04"),
                      "ae": _rows_in_bundle("adverse_events", "P04")}
    assert counts == {"assessment": 12, "exposure": 4, "event": 3, "ae": 3}  # the bundle as shipped
    # day 1 = the first sorafenib dose (2018-03-05, study.yaml's index drug); by hand:
    # 2018-04-19 is 45 days later (26 + 19), day 46; the relapse on 2018-06-23 is day 111
    assert "from 2018-04-19 (day 46)" in svg and "relapse 2018-06-23 (day 111)" in svg
    assert "from 2018-03-05 (day 1)" in svg and "study day 1 = first sorafenib dose" in svg


def test_text_from_the_data_is_escaped_in_the_timeline(site):
    drug, term = '<script>alert("drug")</script>', '"><img src=x onerror=alert(1)>'
    with site.engine.begin() as con:
        st = store.study(con, "demo")
        site1 = con.execute(sa.select(db.centres.c.id).where(db.centres.c.code == "site-1")).scalar()
        for table, values in (
            ("patients", {"patient_id": "XSS1", "diagnosis_date": "2017-01-02", "centre_id": site1}),
            ("exposures", {"patient_id": "XSS1", "drug": drug, "start_date": "2017-01-10"}),
            ("adverse_events", {"patient_id": "XSS1", "term": term, "onset_date": "2017-01-20", "grade": 2}),
        ):
            model = store.model(table)
            typed = {c.name: _typed(c.dtype, values.get(c.name)) for c in model.columns}
            store.insert_row(con, st["id"], model, {**typed, "centre_id": values.get("centre_id")}, "test")
    page = login(site, "investigator").get("/s/demo/p/XSS1").text
    svg = _svg(page)
    assert svg.count('data-kind="exposure"') == 1 and svg.count('data-kind="ae"') == 1
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;drug&#34;)&lt;/script&gt;" in svg  # the bar's lane and title
    # no sorafenib (the index drug) dose: day 1 is the diagnosis date (2017-01-02), 01-20 is day 19
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt; grade 2 from 2017-01-20 (day 19)" in svg
    assert "no first dose entered yet: day 1 = the diagnosis date" in svg


def _typed(dtype: str, v):
    import datetime as dt

    return dt.date.fromisoformat(v) if dtype == "date" and v else v
