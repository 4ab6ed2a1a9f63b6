"""End to end in a real browser (Playwright driving Debian's Chromium, never a downloaded one):
log in, create a patient, enter an assessment, see the derived response, edit with a reason and
see the audit entry. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _browser_or_skip() -> None:
    missing = None
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        missing = "Debian's chromium is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright (Python) is not installed"
    if missing:
        if os.environ.get("AMLCOHORT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (AMLCOHORT_REQUIRE_BROWSER=1): {missing}")
        pytest.skip(missing)


@pytest.fixture()
def server(site):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning",
                                        access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 60
    while not srv.started and time.time() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(timeout=30)


@pytest.mark.slow
def test_browser_enter_assessment_see_response_edit_with_reason_see_audit(site, server):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    pid = "B" + str(int(time.time()) % 100000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(300_000)
        expect.set_options(timeout=300_000)  # a loaded CI machine: saves take seconds
        page.goto(server + "/login")
        page.fill("input[name=username]", "investigator")
        page.fill("input[name=password]", site.accounts["investigator"].password)
        page.click("button[type=submit]")
        page.wait_for_url("**/studies")
        page.click("text=demo")
        # a new patient
        for col, v in {"patient_id": pid, "age_at_onset": "58", "diagnosis_date": "2016-01-04",
                       "karyotype": "46,XX[20]"}.items():
            page.fill(f"#f-patients-{col}", v)
        for col, v in {"sex": "female", "who2008_category": "AML with maturation",
                       "risk_group_reported": "adverse", "study_arm": "sorafenib_alone"}.items():
            page.select_option(f"#f-patients-{col}", v)
        page.click("#form-patients button[type=submit]")
        page.wait_for_url(f"**/p/{pid}*")
        # the first dose, then a baseline and a post-dose assessment
        page.click("#add-exposures")
        page.select_option("#f-exposures-drug", "sorafenib")  # a choice of study.yaml's regimens
        page.select_option("#f-exposures-phase", "induction")
        page.fill("#f-exposures-dose", "400")
        page.select_option("#f-exposures-dose_unit", "mg")
        page.select_option("#f-exposures-frequency", "bid")
        page.select_option("#f-exposures-route", "oral")
        page.fill("#f-exposures-start_date", "2016-02-01")
        page.click("#form-exposures button[type=submit]")
        expect(page.locator("#exposures table")).to_contain_text("2016-02-01")
        expect(page.locator('#timeline [data-kind="exposure"]')).to_have_count(1)
        for date, blasts, anc in (("2016-01-30", "45", ""), ("2016-03-01", "2", "1.6")):
            page.click("#add-assessments")
            page.fill("#f-assessments-assessment_date", date)
            page.fill("#f-assessments-marrow_blasts_pct", blasts)
            page.select_option("#f-assessments-marrow_spicules", "true")
            page.select_option("#f-assessments-extramedullary_disease", "false")
            if anc:
                page.fill("#f-assessments-anc", anc)
                page.fill("#f-assessments-platelets", "140")
            page.click("#form-assessments button[type=submit]")
            expect(page.locator("#assessments table")).to_contain_text(date)
        expect(page.locator('#timeline [data-kind="assessment"]')).to_have_count(2)
        expect(page.locator("#checks")).to_contain_text("No finding")  # the checks across tables ran
        # the derived response, with its criteria set
        row = page.locator('tr.response[data-date="2016-03-01"]')
        expect(row.locator(".derived-response")).to_have_text("cr")
        expect(row).to_contain_text("study")
        # an edit without a reason is refused beside the field; with a reason it is saved
        page.locator("#assessments tr", has_text="2016-03-01").locator("button.edit").click()
        page.fill("#f-assessments-marrow_blasts_pct", "12")
        page.click("#form-assessments button[type=submit]")
        expect(page.locator("#form-assessments")).to_contain_text("a reason is required")
        page.fill("#f-assessments-reason", "corrected from the marrow report")
        page.click("#form-assessments button[type=submit]")
        row = page.locator('tr.response[data-date="2016-03-01"]')
        expect(row.locator(".derived-response")).not_to_have_text("cr")
        page.click("text=Audit trail")
        audit = page.locator("#audit tr.audit-update")
        expect(audit).to_contain_text("corrected from the marrow report")
        expect(audit).to_contain_text("marrow_blasts_pct")
        expect(audit).to_contain_text("investigator")
        browser.close()
