"""The ``protocol`` Typer sub-app (show, due, audit, ical), run with CliRunner."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from amlcohort.protocol.cli import protocol_app
from amlcohort.protocol.definition import default_protocol_path

runner = CliRunner()
DISCLAIMER = "not a medical device"


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_show() -> None:
    res = runner.invoke(protocol_app, ["show"])
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    for s in (
        "xu2019 v2019.1",
        "400 mg bid",
        "25 mg/m² bid",
        "mosteller",
        "Nexavar",
        "rbc.hemoglobin",
        "marrow.first_month",
        "pathway.hsct_referral_after_cr",
        DISCLAIMER,
    ):
        assert s in out, s


def test_due_p02_day_15() -> None:
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2016-12-26"])
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert "study day 15: phase induction" in out
    for s in ("marrow.first_month", "counts.weekly", "FIRES", "protocol.g_csf", "Xu 2019 §2.1", DISCLAIMER):
        assert s in out, s


def test_due_with_observations_and_errors(tmp_path: Path) -> None:
    res = runner.invoke(
        protocol_app, ["due", "P02", "--on", "2016-12-26", "--no-symptomatic-anemia", "--bleeding"]
    )
    assert res.exit_code == 0 and "plt.bleeding" in _flat(res.output)
    res = runner.invoke(protocol_app, ["due", "P99", "--on", "2016-12-26"])
    assert res.exit_code == 2 and "no patient" in res.output
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "26/12/2016"])
    assert res.exit_code != 0
    broken = yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))
    broken["dosing"]["bsa_formula"] = "haycock"
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2016-12-26", "--protocol", str(f)])
    assert res.exit_code == 1 and "dosing.bsa_formula" in _flat(res.output)


def test_audit(tmp_path: Path) -> None:
    out_csv = tmp_path / "dev.csv"
    res = runner.invoke(protocol_app, ["audit", "--csv", str(out_csv)])
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert "stopping_rule" in out and "P09" in out and "Deviations per rule" in out and DISCLAIMER in out
    assert "P09,2015-08-24,22,stopping_rule" in out_csv.read_text(encoding="utf-8")


def test_ical(tmp_path: Path) -> None:
    f = tmp_path / "p02.ics"
    res = runner.invoke(
        protocol_app, ["ical", "P02", "--out", str(f), "--on", "2016-12-26", "--horizon", "28"]
    )
    assert res.exit_code == 0, res.output
    text = f.read_bytes().decode("utf-8")
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert text.count("BEGIN:VEVENT") == text.count("END:VEVENT") > 0
    assert "DTSTART;VALUE=DATE:20170102" in text


# ---- issue 9: refused dates, escaping, one-line errors ---------------------------------------------


def _one_line_error(res, code: int, *needles: str) -> str:
    assert res.exit_code == code, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # a message, not a traceback
    out = res.output.strip()
    assert "Traceback" not in out and len(out.splitlines()) <= 2, out
    for n in needles:
        assert n in _flat(out), (n, out)
    return out


def test_due_after_death_or_cutoff_is_refused() -> None:
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2099-01-01"])
    _one_line_error(res, 2, "patient P02 died on 2018-03-12")
    assert "FIRES" not in res.output
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2018-03-13"])  # the day after death
    _one_line_error(res, 2, "died on 2018-03-12")
    assert runner.invoke(protocol_app, ["due", "P02", "--on", "2018-03-12"]).exit_code == 0  # the day itself
    res = runner.invoke(protocol_app, ["due", "P01", "--on", "2019-10-01"])  # P01 alive at the cut-off
    _one_line_error(res, 2, "after the data cut-off 2019-09-30")
    res = runner.invoke(protocol_app, ["ical", "P01", "--out", "x.ics", "--on", "2099-01-01"])
    _one_line_error(res, 2, "cut-off")


def test_user_text_is_not_rich_markup() -> None:
    for pid in ("[/x]", "[bold]P02", "[link=http://x]P02[/link]"):
        res = runner.invoke(protocol_app, ["due", pid, "--on", "2016-12-26"])
        out = _one_line_error(res, 2, "no patient")
        assert pid in out


def test_bad_date_is_a_usage_error() -> None:
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2016-13-40"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_output_that_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    args = ["P02", "--on", "2016-12-26"]
    res = runner.invoke(protocol_app, ["ical", *args, "--out", str(tmp_path / "missing" / "p02.ics")])
    _one_line_error(res, 1, "cannot write", "p02.ics")
    res = runner.invoke(protocol_app, ["ical", *args, "--out", str(tmp_path)])
    _one_line_error(res, 2, "it is a folder")

    def read_only(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    res = runner.invoke(protocol_app, ["ical", *args, "--out", str(tmp_path / "p02.ics")])
    _one_line_error(res, 1, "Permission denied", "writable")
    res = runner.invoke(protocol_app, ["audit", "--csv", str(tmp_path / "nowhere" / "dev.csv")])
    assert res.exit_code == 1 and "cannot write" in _flat(res.output)


def test_missing_bundle_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(protocol_app, ["due", "P02", "--on", "2016-12-26", "--path", str(tmp_path / "none")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit) and "Traceback" not in res.output


def test_audit_csv_neutralises_formulas(tmp_path: Path) -> None:
    """Text that starts like a formula reaches the CSV only as text (OWASP: prefixed with ')."""
    data = yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))
    data["dose_modification"]["source"] = '=HYPERLINK("http://x","y")'
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out_csv = tmp_path / "dev.csv"
    res = runner.invoke(protocol_app, ["audit", "--protocol", str(f), "--csv", str(out_csv)])
    assert res.exit_code == 0, res.output
    import csv

    with out_csv.open(newline="", encoding="utf-8") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
