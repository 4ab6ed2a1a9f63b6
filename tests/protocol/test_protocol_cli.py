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
