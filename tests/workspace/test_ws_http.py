"""HTTP tests of the workspace: role boundaries, CSRF, lock, validation at entry, audit, queries.

Run on SQLite and on a real PostgreSQL (see conftest). The demo study has every patient at site-1;
``investigator2`` works at site-2.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import sqlalchemy as sa
from tests.workspace.conftest import login

from amlcohort.workspace import db

ASSESSMENT = "/s/demo/p/P02/t/assessments"


def _audit(site, **where) -> list[dict]:
    q = sa.select(db.audit_log).order_by(db.audit_log.c.id)
    for k, v in where.items():
        q = q.where(db.audit_log.c[k] == v)
    with site.engine.connect() as con:
        return [dict(r) for r in con.execute(q).mappings()]


def _count(site, table: str, patient_id: str) -> int:
    t = db.COHORT[table]
    with site.engine.connect() as con:
        q = sa.select(sa.func.count()).select_from(t).where(t.c.patient_id == patient_id)
        return con.execute(q).scalar()


def _post(c, url: str, data: dict, **kw):
    return c.post(url, data={"csrf_token": c.csrf, **data}, follow_redirects=False, **kw)


def test_login_required_and_wrong_password_refused(site):
    from fastapi.testclient import TestClient

    c = TestClient(site.app)
    assert c.get("/s/demo", follow_redirects=False).headers["location"] == "/login"
    assert c.get("/api/studies").status_code == 401
    page = c.get("/login").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = c.post("/login", data={"username": "monitor", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401


def test_missing_or_wrong_csrf_token_is_refused_with_403(site):
    c = login(site, "investigator")
    before = _count(site, "assessments", "P02")
    data = {"assessment_date": "2017-03-01", "marrow_blasts_pct": "3"}
    assert c.post(ASSESSMENT, data=data, follow_redirects=False).status_code == 403
    forged = c.post(ASSESSMENT, data={**data, "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert c.post("/logout", follow_redirects=False).status_code == 403  # every POST, even log-out
    assert _count(site, "assessments", "P02") == before


def test_monitor_and_statistician_cannot_edit(site):
    before = _count(site, "assessments", "P02")
    for who in ("monitor", "statistician"):
        c = login(site, who)
        assert c.get("/s/demo/p/P02").status_code == 200  # they read
        r = _post(c, ASSESSMENT, {"assessment_date": "2017-03-01", "marrow_blasts_pct": "3"})
        assert r.status_code == 403, who
        assert _post(c, "/s/demo/patients", {"patient_id": "X1"}).status_code == 403
    assert _count(site, "assessments", "P02") == before


def test_investigator_cannot_see_or_touch_another_centres_patient(site):
    c = login(site, "investigator2")  # site-2; every demo patient is at site-1
    assert "P01" not in c.get("/s/demo").text
    assert c.get("/s/demo/p/P01").status_code == 404
    assert c.get("/api/studies/demo/patients/P01").status_code == 404
    assert c.get("/api/studies/demo/patients").json() == []
    assert c.get("/s/demo/audit.csv?patient=P01").status_code == 404
    r = _post(c, "/s/demo/p/P01/t/assessments", {"assessment_date": "2017-03-01"})
    assert r.status_code == 404
    own = login(site, "investigator")
    assert own.get("/s/demo/p/P01").status_code == 200
    assert len(own.get("/api/studies/demo/patients").json()) >= 13


def test_entry_is_validated_like_a_bundle_and_the_problem_is_shown_beside_the_field(site):
    c = login(site, "investigator")
    before = _count(site, "assessments", "P02")
    r = _post(c, ASSESSMENT, {"assessment_date": "2017-02-30", "marrow_blasts_pct": "120", "anc": "1500"})
    assert r.status_code == 422
    assert 'data-column="assessment_date"' in r.text and "not a date in the form YYYY-MM-DD" in r.text
    assert "above the possible maximum 100 %" in r.text
    assert "looks like /uL" in r.text  # the unit check of `amlcohort validate`
    r = _post(c, ASSESSMENT, {"marrow_blasts_pct": "5"})
    assert "required value is empty" in r.text
    assert _count(site, "assessments", "P02") == before


def test_new_patient_assessment_derived_response_edit_with_reason_and_audit(site):
    c = login(site, "investigator")
    patient = {"patient_id": "N01", "sex": "male", "age_at_onset": "61", "diagnosis_date": "2016-01-04",
               "who2008_category": "AML with maturation", "karyotype": "46,XY[20]",
               "study_arm": "sorafenib_alone", "risk_group_reported": "intermediate"}
    r = _post(c, "/s/demo/patients", patient)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/s/demo/p/N01"
    base = "/s/demo/p/N01/t/"
    assert _post(c, base + "exposures", {"drug": "sorafenib", "phase": "induction", "dose": "400",
                                          "dose_unit": "mg", "frequency": "bid", "route": "oral",
                                          "start_date": "2016-02-01"}).status_code == 303
    assert _post(c, base + "assessments", {"assessment_date": "2016-01-30", "marrow_blasts_pct": "40",
                                            "marrow_spicules": "true"}).status_code == 303
    assert _post(c, base + "assessments", {"assessment_date": "2016-03-01", "marrow_blasts_pct": "2",
                                            "marrow_spicules": "true", "anc": "1.5", "platelets": "150",
                                            "extramedullary_disease": "false"}).status_code == 303
    rules = c.get("/s/demo/p/N01/rules").text
    assert 'data-date="2016-03-01"' in rules
    row = rules.split('data-date="2016-03-01"')[1].split("</tr>")[0]
    assert '<strong class="derived-response">cr' in row or 'derived-response">cri' in row, row
    assert "study" in row  # the criteria set is named
    # the investigator's new patient is at the investigator's centre: site-2 cannot see it
    assert login(site, "investigator2").get("/s/demo/p/N01").status_code == 404
    # an edit needs a reason
    t = db.COHORT["assessments"]
    with site.engine.connect() as con:
        rid = con.execute(sa.select(t.c.id).where(
            t.c.patient_id == "N01", t.c.assessment_date == dt.date(2016, 3, 1))).scalar()
    edit = {"assessment_date": "2016-03-01", "marrow_blasts_pct": "12", "marrow_spicules": "true",
            "anc": "1.5", "platelets": "150", "extramedullary_disease": "false"}
    r = _post(c, f"{base}assessments/{rid}", edit)
    assert r.status_code == 422 and "a reason is required" in r.text
    r = _post(c, f"{base}assessments/{rid}", {**edit, "reason": "transcription error, source document p.3"})
    assert r.status_code == 303
    upd = _audit(site, patient_id="N01", action="update")
    assert [(a["field"], a["old_value"], a["new_value"], a["reason"], a["username"]) for a in upd] == [
        ("marrow_blasts_pct", "2", "12", "transcription error, source document p.3", "investigator")]
    page = c.get("/s/demo/p/N01/audit").text
    assert "transcription error, source document p.3" in page
    created = {a["field"] for a in _audit(site, patient_id="N01", action="create", table_name="patients")}
    assert created == set(patient)
    # the audit trail exports as CSV
    rows = list(csv.DictReader(io.StringIO(c.get("/s/demo/audit.csv?patient=N01").text)))
    assert any(r["action"] == "update" and r["old_value"] == "2" and r["new_value"] == "12" for r in rows)
    # delete: reason required, audited field by field
    assert _post(c, f"{base}assessments/{rid}/delete", {"reason": ""}).status_code == 400
    assert _post(c, f"{base}assessments/{rid}/delete", {"reason": "entered twice"}).status_code == 303
    deleted = _audit(site, patient_id="N01", action="delete")
    assert {a["field"] for a in deleted} >= {"assessment_date", "marrow_blasts_pct"}
    assert all(a["reason"] == "entered twice" for a in deleted)


def test_duplicate_key_is_refused(site):
    c = login(site, "investigator")
    t = db.COHORT["assessments"]
    with site.engine.connect() as con:
        d = con.execute(sa.select(t.c.assessment_date).where(t.c.patient_id == "P03").limit(1)).scalar()
    r = _post(c, "/s/demo/p/P03/t/assessments", {"assessment_date": d.isoformat()})
    assert r.status_code == 422 and "duplicate key" in r.text


def test_locked_study_refuses_every_write_until_unlocked_with_a_reason(site):
    dm = login(site, "data_manager")
    inv = login(site, "investigator")
    assert _post(inv, "/s/demo/lock", {"action": "lock", "reason": "x"}).status_code == 403
    assert _post(dm, "/s/demo/lock", {"action": "lock", "reason": ""}).status_code == 400
    assert _post(dm, "/s/demo/lock", {"action": "lock", "reason": "interim analysis"}).status_code == 303
    try:
        before = _count(site, "assessments", "P02")
        r = _post(inv, ASSESSMENT, {"assessment_date": "2017-03-01", "marrow_blasts_pct": "3"})
        assert r.status_code == 423
        assert _post(dm, ASSESSMENT, {"assessment_date": "2017-03-01"}).status_code == 423
        assert _post(inv, "/s/demo/patients", {"patient_id": "L1"}).status_code == 423
        assert _count(site, "assessments", "P02") == before
        assert "LOCKED" in inv.get("/s/demo").text
    finally:
        r = _post(dm, "/s/demo/lock", {"action": "unlock", "reason": "query resolution"})
        assert r.status_code == 303
    locks = _audit(site, action="lock") + _audit(site, action="unlock")
    assert {(a["action"], a["reason"], a["username"]) for a in locks} >= {
        ("lock", "interim analysis", "data_manager"), ("unlock", "query resolution", "data_manager")}


def test_query_raised_answered_closed(site):
    mon, inv = login(site, "monitor"), login(site, "investigator")
    assert _post(inv, "/s/demo/queries", {"patient_id": "P04", "table": "patients", "field": "sex",
                                          "text": "check"}).status_code == 403
    r = _post(mon, "/s/demo/queries", {"patient_id": "P04", "table": "patients", "field": "ecog_ps",
                                       "text": "ECOG at first dose? source says 2"})
    assert r.status_code == 303
    q = [q for q in mon.get("/api/studies/demo/queries").json() if q["patient_id"] == "P04"][-1]
    assert q["status"] == "open" and q["raised_by"] == "monitor"
    assert _post(mon, f"/s/demo/queries/{q['id']}/answer", {"answer": "x"}).status_code == 403
    assert _post(inv, f"/s/demo/queries/{q['id']}/answer", {"answer": "confirmed 1"}).status_code == 303
    assert _post(inv, f"/s/demo/queries/{q['id']}/close", {}).status_code == 403
    assert _post(mon, f"/s/demo/queries/{q['id']}/close", {}).status_code == 303
    q2 = next(x for x in mon.get("/api/studies/demo/queries").json() if x["id"] == q["id"])
    assert (q2["status"], q2["answer"], q2["answered_by"], q2["closed_by"]) == (
        "closed", "confirmed 1", "investigator", "monitor")
    trail = [a["new_value"] for a in _audit(site, patient_id="P04", action="query")]
    assert trail[-3:] == [f"query {q['id']} raised", f"query {q['id']} answered", f"query {q['id']} closed"]


def test_export_is_for_statistician_and_data_manager(site):
    assert login(site, "investigator").get("/s/demo/export.zip").status_code == 403
    assert login(site, "monitor").get("/s/demo/report").status_code == 403


def test_api_is_read_only_and_described_by_openapi(site):
    c = login(site, "statistician")
    spec = c.get("/api/openapi.json").json()
    assert "/api/studies/{code}/patients/{pid}" in spec["paths"]
    assert all(set(ops) <= {"get"} for ops in spec["paths"].values())
    p = c.get("/api/studies/demo/patients/P01").json()
    assert p["patient"]["patient_id"] == "P01" and len(p["assessments"]) > 0
    assert c.get("/docs").status_code == 404  # no CDN-served documentation page


def test_no_patient_data_in_the_logs(site, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="amlcohort.workspace")
    c = login(site, "investigator")
    c.get("/s/demo/p/P05")
    _post(c, "/s/demo/p/P05/t/assessments", {"assessment_date": "1999-99-99", "marrow_blasts_pct": "77.7"})
    text = caplog.text
    assert "/s/{code}/p/{pid}" in text
    assert "P05" not in text and "77.7" not in text and "1999-99-99" not in text
