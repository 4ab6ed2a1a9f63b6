"""The surveillance schedule: due / overdue from actual assessments, month boundaries, iCalendar."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pytest

from amlcohort import load_cohort
from amlcohort.protocol import add_months, as_of, due, load_protocol, plan, to_ical
from amlcohort.protocol.timeline import add_interval, interval_expr
from tests.protocol.gaps import open_gaps


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (dt.date(2016, 1, 31), 1, dt.date(2016, 2, 29)),  # leap year
        (dt.date(2015, 1, 31), 1, dt.date(2015, 2, 28)),
        (dt.date(2015, 1, 30), 1, dt.date(2015, 2, 28)),
        (dt.date(2016, 3, 31), 1, dt.date(2016, 4, 30)),
        (dt.date(2016, 12, 31), 1, dt.date(2017, 1, 31)),
        (dt.date(2016, 1, 31), 2, dt.date(2016, 3, 31)),  # from the anchor, not chained
        (dt.date(2016, 2, 29), 12, dt.date(2017, 2, 28)),
        (dt.date(2017, 12, 20), 1, dt.date(2018, 1, 20)),
    ],
)
def test_calendar_month(start, months, expected) -> None:
    assert add_months(start, months) == expected
    assert add_interval(start, months=months) == expected


def test_month_arithmetic_python_equals_duckdb() -> None:
    days = [dt.date(2015, 1, 1) + dt.timedelta(days=i) for i in range(0, 800, 3)]
    days += [dt.date(y, m, 1) - dt.timedelta(days=1) for y in (2015, 2016, 2017) for m in range(1, 13)]
    t = ibis.memtable({"d": days})
    got = ibis.duckdb.connect().execute(
        t.select(t.d, m=interval_expr(t.d, months=1), w=interval_expr(t.d, days=14))
    )
    for row in got.itertuples():
        d = row.d.date() if hasattr(row.d, "date") else row.d
        assert (row.m.date() if hasattr(row.m, "date") else row.m) == add_months(d, 1)
        assert (row.w.date() if hasattr(row.w, "date") else row.w) == d + dt.timedelta(days=14)


def _items(report):
    return {i.item_id: i for i in report.items}


def test_p02_day_15_marrow_and_counts_due(study) -> None:
    r = due(study, "P02", dt.date(2016, 12, 26))
    assert (r.study_day, r.phase) == (15, "induction")
    it = _items(r)
    assert set(it) == {"marrow.first_month", "counts.weekly", "chemistry.every_other_week"}
    assert it["counts.weekly"].status == "due" and it["counts.weekly"].due_study_day == 15
    m = it["marrow.first_month"]
    assert (m.status, m.anchor_date, m.due_date, m.window_start) == (
        "due",
        dt.date(2016, 12, 19),
        dt.date(2017, 1, 2),
        dt.date(2016, 12, 26),
    )
    assert all(i.done_on_date for i in r.items)  # the day-15 assessment is recorded on that date
    assert all(i.source.startswith("Xu 2019 §2") for i in r.items)
    fired = {x.topic for x in r.firing}
    assert {"G-CSF", "Antifungal prophylaxis", "Response assessment"} <= fired
    assert "not a medical device" in r.disclaimer


def test_window_opens_and_overdue_days(study, bundle_copy: Path) -> None:
    it = _items(due(study, "P02", dt.date(2016, 12, 25)))  # day 14
    assert it["counts.weekly"].status == "due" and it["marrow.first_month"].status == "upcoming"
    gapped = load_cohort(open_gaps(bundle_copy))  # P10's 11-20 chemistry and P06's July counts removed
    # P10's chemistry: last 2017-11-06, due 11-20 (+3 days grace): overdue by 5 days on 11-25
    chem = _items(due(gapped, "P10", dt.date(2017, 11, 25)))["chemistry.every_other_week"]
    assert (chem.status, chem.due_date, chem.days_overdue) == ("overdue", dt.date(2017, 11, 20), 5)
    assert "overdue by 5 day" in chem.describe()
    # P06 after CR: monthly counts, last 2017-06-01 -> due 07-01; on 08-01 overdue by 31 days
    cnt = _items(due(gapped, "P06", dt.date(2017, 8, 1)))
    assert set(cnt) == {"counts.monthly_post_cr"}
    assert (cnt["counts.monthly_post_cr"].status, cnt["counts.monthly_post_cr"].days_overdue) == (
        "overdue",
        31,
    )


def test_marrow_hands_over_to_monthly_after_the_first_month(study) -> None:
    it = _items(due(study, "P10", dt.date(2017, 10, 20)))  # last marrow 10-09 = study day 29
    assert "marrow.first_month" not in it
    assert (it["marrow.monthly"].anchor_study_day, it["marrow.monthly"].due_date) == (
        29,
        dt.date(2017, 11, 9),
    )


def test_not_started_and_off_protocol(study) -> None:
    r = due(study, "P02", dt.date(2016, 12, 1))
    assert (r.phase, r.items, r.study_day) == ("not_started", [], None)
    off = due(study, "P09", dt.date(2015, 10, 1))
    assert off.phase == "off_protocol" and off.items == [] and "no_response" in off.off_reason
    with pytest.raises(KeyError):
        due(study, "P99", dt.date(2015, 10, 1))


def test_monthly_schedule_around_month_end(bundle_copy: Path) -> None:
    """P10's first post-CR count moved to 2018-01-31 (and the 02-18 one removed): the next is due
    2018-02-28 (clipped), then 03-28."""
    f = bundle_copy / "assessments.csv"
    lines = (
        f.read_text(encoding="utf-8").replace("P10,2018-01-19,", "P10,2018-01-31,").splitlines(keepends=True)
    )
    f.write_text("".join(x for x in lines if not x.startswith("P10,2018-02-18,")), encoding="utf-8")
    cohort = load_cohort(bundle_copy)
    c = _items(due(cohort, "P10", dt.date(2018, 2, 15)))["counts.monthly_post_cr"]
    assert (c.anchor_date, c.due_date, c.window_start, c.overdue_after, c.status) == (
        dt.date(2018, 1, 31),
        dt.date(2018, 2, 28),
        dt.date(2018, 2, 21),
        dt.date(2018, 3, 7),
        "upcoming",
    )
    late = _items(due(cohort, "P10", dt.date(2018, 3, 8)))["counts.monthly_post_cr"]
    assert (late.status, late.days_overdue) == ("overdue", 8)
    assert _items(due(cohort, "P10", dt.date(2018, 3, 7)))["counts.monthly_post_cr"].status == "due"
    report = due(cohort, "P10", dt.date(2018, 2, 15))
    dates = [e.date for e in plan(report, horizon_days=60) if e.item_id == "counts.monthly_post_cr"]
    assert dates == [dt.date(2018, 2, 28), dt.date(2018, 3, 28)]


def test_as_of_view_hides_later_data(study) -> None:
    v = as_of(study, dt.date(2018, 5, 3))
    ex = v.table("exposures")
    p04 = (
        ex.filter((ex.patient_id == "P04") & (ex.drug == "sorafenib"))
        .order_by("start_date")
        .to_pyarrow()
        .to_pylist()
    )
    assert [r["start_date"] for r in p04] == [dt.date(2018, 3, 5), dt.date(2018, 4, 19)]
    assert p04[-1]["end_date"] is None and p04[-1]["end_reason"] is None
    ae = v.table("adverse_events")
    rows = ae.filter(ae.patient_id == "P04").to_pyarrow().to_pylist()
    hfs = [r for r in rows if r["term"].startswith("Palmar")]
    assert len(hfs) == 1 and hfs[0]["grade"] is None and hfs[0]["resolution_date"] is None
    a = v.table("assessments")
    assert a.filter(a.assessment_date > dt.date(2018, 5, 3)).count().execute() == 0
    assert v.metadata.cutoff_date == dt.date(2018, 5, 3)


# ---- iCalendar -------------------------------------------------------------------------------------


def _parse_ics(text: str) -> list[dict]:
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    raw = text.split("\r\n")[:-1]
    assert all(len(line.encode("utf-8")) <= 75 for line in raw)
    lines: list[str] = []
    for line in raw:  # unfold (RFC 5545 §3.1)
        if line.startswith(" "):
            lines[-1] += line[1:]
        else:
            lines.append(line)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR" and "VERSION:2.0" in lines
    events, cur = [], None
    for line in lines:
        if line == "BEGIN:VEVENT":
            cur = {}
        elif line == "END:VEVENT":
            events.append(cur)
            cur = None
        elif cur is not None:
            key, _, value = line.partition(":")
            cur[key] = value
    return events


def test_ical_export(study) -> None:
    p = load_protocol()
    report = due(study, "P02", dt.date(2016, 12, 26))
    events = plan(report, p, horizon_days=56)
    text = to_ical(
        events, disclaimer=p.disclaimer, protocol_label=p.label, stamp=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    vevents = _parse_ics(text)
    assert len(vevents) == len(events) > 0
    assert len({e["UID"] for e in vevents}) == len(vevents)
    for e in vevents:
        assert e["DTSTAMP"] == "20200101T000000Z" and "DTSTART;VALUE=DATE" in e and "SUMMARY" in e
        assert "not a medical device" in e["DESCRIPTION"]
    marrow = sorted(
        (e["DTSTART;VALUE=DATE"], e["CATEGORIES"]) for e in vevents if e["CATEGORIES"].startswith("marrow")
    )
    # day 22 and day 36 (1-2 weeks in the first month), then monthly from day 36
    assert marrow == [
        ("20170102", "marrow.first_month"),
        ("20170116", "marrow.first_month"),
        ("20170216", "marrow.monthly"),
    ]
    weekly = [e for e in vevents if e["CATEGORIES"] == "counts.weekly"]
    assert len(weekly) == 9 and weekly[0]["DTSTART;VALUE=DATE"] == "20161226"
    assert "P02: Blood counts (ANC\\, platelets\\, hemoglobin) (due)" in {e["SUMMARY"] for e in vevents}


def test_ical_escapes_user_text_rfc5545() -> None:
    """A patient id with a newline, ';', ',' and '\\' cannot inject properties (issue 9)."""
    import icalendar

    from amlcohort.protocol.schedule import PlannedEvent

    pid = "P02\nX-INJECTED:1\nATTENDEE:mailto:x@y;a,b\\"
    e = PlannedEvent(pid, "counts.weekly", "Blood counts, weekly", dt.date(2017, 1, 2), 22, "due", "n", "s")
    text = to_ical([e], disclaimer="d", protocol_label="L", stamp=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert "\nX-INJECTED" not in text and "\nATTENDEE" not in text
    (ev,) = icalendar.Calendar.from_ical(text).walk("VEVENT")
    assert "X-INJECTED" not in ev and "ATTENDEE" not in ev
    assert str(ev["UID"]) == f"{pid}-counts.weekly-20170102@amlcohort"
    assert str(ev["SUMMARY"]) == f"{pid}: Blood counts, weekly (due)"
    assert ev.decoded("DTSTART") == dt.date(2017, 1, 2)
    _parse_ics(text)  # CRLF, folded at 75 octets


def test_dates_the_data_cannot_answer_are_refused(study) -> None:
    from amlcohort.protocol import DateOutOfRange, recommendations

    with pytest.raises(DateOutOfRange, match="patient P02 died on 2018-03-12"):
        due(study, "P02", dt.date(2099, 1, 1))
    with pytest.raises(DateOutOfRange, match="after the data cut-off 2019-09-30"):
        due(study, "P07", dt.date(2019, 10, 1))
    with pytest.raises(DateOutOfRange, match="died on"):
        recommendations(study, "P09", dt.date(2017, 4, 5))
    assert due(study, "P07", dt.date(2019, 9, 30)).on == dt.date(2019, 9, 30)  # the cut-off itself
