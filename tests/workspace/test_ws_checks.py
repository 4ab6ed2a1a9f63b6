"""At each save, the checks `amlcohort validate` runs across tables, on the patient; arm and drug
offered as choices from the study definition."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import sqlalchemy as sa
import yaml
from tests.workspace.conftest import login

from amlcohort.io.cohort import embedded_study_path
from amlcohort.workspace import db, store

EXPOSURE = {"phase": "induction", "dose": "20", "dose_unit": "mg/m2", "frequency": "qd", "route": "sc"}


def _post(c, url: str, data: dict):
    return c.post(url, data={"csrf_token": c.csrf, **data}, follow_redirects=False)


def _count(site, table: str, patient_id: str) -> int:
    t = db.COHORT[table]
    with site.engine.connect() as con:
        q = sa.select(sa.func.count()).select_from(t).where(t.c.patient_id == patient_id)
        return con.execute(q).scalar()


def _options(html: str, field_id: str) -> list[str]:
    select = re.search(rf'<select id="{field_id}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"', select)


def test_rows_breaking_a_cross_table_rule_are_refused_with_the_validators_message(site):
    c = login(site, "investigator")
    before = _count(site, "events", "P02"), _count(site, "exposures", "P02")
    # P02: diagnosis 2016-05-30, death 2018-03-12 (embedded bundle)
    r = _post(c, "/s/demo/p/P02/t/events", {"event_type": "last_contact", "event_date": "2016-05-29"})
    assert r.status_code == 422
    assert re.search(r'data-column="event_date">before the diagnosis date \(diagnosis 2016-05-30\)</span>',
                     r.text)
    r = _post(c, "/s/demo/p/P02/t/exposures", {**EXPOSURE, "drug": "sorafenib", "start_date": "2018-03-13"})
    assert r.status_code == 422
    assert 'data-column="start_date">after the patient&#39;s death (2018-03-12)</span>' in r.text
    assert (_count(site, "events", "P02"), _count(site, "exposures", "P02")) == before
    # on the boundary (the diagnosis day itself) the row is accepted, then deleted again
    r = _post(c, "/s/demo/p/P02/t/events", {"event_type": "last_contact", "event_date": "2016-05-30"})
    assert r.status_code == 303
    t = db.COHORT["events"]
    with site.engine.connect() as con:
        rid = con.execute(sa.select(t.c.id).where(t.c.patient_id == "P02", t.c.event_type == "last_contact",
                                                  t.c.event_date == dt.date(2016, 5, 30))).scalar()
    assert _post(c, f"/s/demo/p/P02/t/events/{rid}/delete", {"reason": "test"}).status_code == 303
    assert _count(site, "events", "P02") == before[0]


def test_a_patient_edit_is_refused_when_it_breaks_another_rows_rule(site):
    c = login(site, "investigator")
    with site.engine.connect() as con:
        p = store.patient(con, store.study(con, "demo")["id"], "P02")
    form = {k: store.as_text(p[k]) or "" for k in store.model("patients").column_names}
    # a diagnosis after the first assessments: the assessments (other rows) would break the rule
    r = _post(c, f"/s/demo/p/P02/t/patients/{p['id']}", {**form, "diagnosis_date": "2016-12-11",
                                                         "reason": "test"})
    assert r.status_code == 422
    assert "assessment before the diagnosis date (diagnosis 2016-12-11)" in r.text
    assert "Not saved: assessments row #" in r.text
    # an arm the study definition does not declare
    r = _post(c, f"/s/demo/p/P02/t/patients/{p['id']}", {**form, "study_arm": "placebo", "reason": "test"})
    assert r.status_code == 422
    assert ('data-column="study_arm">arm not declared in study.yaml; arms: '
            "[&#39;sorafenib_ldac&#39;, &#39;sorafenib_alone&#39;]</span>") in r.text
    with site.engine.connect() as con:
        assert store.patient(con, store.study(con, "demo")["id"], "P02")["study_arm"] == "sorafenib_ldac"


def test_a_warning_saves_and_is_shown_beside_the_table(site):
    c = login(site, "investigator")
    r = _post(c, "/s/demo/patients", {"patient_id": "W1", "diagnosis_date": "2017-01-02", "sex": "female",
                                      "age_at_onset": "70", "karyotype": "46,XX[20]",
                                      "risk_group_reported": "intermediate", "study_arm": "sorafenib_alone",
                                      "who2008_category": "AML with maturation"})
    assert r.status_code == 303
    # a new patient has no first dose yet: said, not refused
    checks = c.get("/s/demo/p/W1/checks").text
    assert "no sorafenib exposure in `exposures`: study day 1 is undefined" in checks
    r = _post(c, "/s/demo/p/W1/t/exposures", {**EXPOSURE, "drug": "cytarabine", "start_date": "2017-01-10"})
    assert r.status_code == 303  # a warning of the validator: kept as given
    checks = c.get("/s/demo/p/W1/checks").text
    beside = checks.split('id="checks-exposures"')[1].split("</div>")[0]
    assert "drug not in the regimen of arm &#39;sorafenib_alone&#39; (study.yaml); kept as given" in beside


def test_arm_and_drug_are_choices_from_the_study_definition(site):
    declared = yaml.safe_load((embedded_study_path() / "study.yaml").read_text(encoding="utf-8"))
    arms = [a["code"] for a in declared["arms"]]
    drugs = list(dict.fromkeys(d["drug"] for a in declared["arms"] for d in a.get("regimen", [])))
    assert arms == ["sorafenib_ldac", "sorafenib_alone"] and drugs == ["sorafenib", "cytarabine"]
    c = login(site, "investigator")
    assert _options(c.get("/s/demo").text, "f-patients-study_arm") == ["", *arms]
    form = c.get("/s/demo/p/P01/t/exposures/form").text
    assert _options(form, "f-exposures-drug") == ["", *drugs]
    assert 'name="drug" value' not in form  # no free text
    assert _options(c.get("/s/demo/p/P01/t/adverse_events/form").text, "f-adverse_events-action_drug") == [
        "", *drugs]


def test_a_study_without_arms_keeps_arm_and_drug_open_text(site, tmp_path):
    src, bundle = embedded_study_path(), tmp_path / "noarms"
    bundle.mkdir()
    shutil.copy(src / "metadata.yaml", bundle)
    (bundle / "study.yaml").write_text('name: "A study without arms"\n', encoding="utf-8")
    for p in src.glob("*.csv"):  # one patient is enough
        lines = p.read_text(encoding="utf-8").splitlines()
        kept = [lines[0], *[x for x in lines[1:] if x.startswith("P01,")]]
        (bundle / p.name).write_text("\n".join(kept) + "\n", encoding="utf-8")
    with site.engine.begin() as con:
        store.import_bundle(con, bundle, "noarms", "test", store.centre_id(con, "site-1"))
    c = login(site, "investigator")
    assert '<input id="f-patients-study_arm" name="study_arm"' in c.get("/s/noarms").text
    form = c.get("/s/noarms/p/P01/t/exposures/form").text
    assert '<input id="f-exposures-drug" name="drug" value=""' in form
    assert 'id="f-exposures-drug"' in form and "<select id=\"f-exposures-drug\"" not in form
