"""Out of the workspace: an exported bundle validates and gives the same results as its source."""

from __future__ import annotations

import io
import zipfile

import pytest
from tests.workspace.conftest import login

from amlcohort.io.cohort import embedded_study_path, load_cohort, validate_bundle
from amlcohort.report.results import analyse
from amlcohort.schema import TABLES
from amlcohort.workspace import store


@pytest.mark.slow
def test_exported_bundle_validates_and_gives_the_same_results(site, tmp_path):
    with site.engine.begin() as con:
        store.import_bundle(con, embedded_study_path(), "roundtrip", "test", store.centre_id(con, "site-1"))
    c = login(site, "statistician")
    r = c.get("/s/roundtrip/export.zip")
    assert r.status_code == 200, r.text[:2000]
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path / "bundle")
    report, exported = validate_bundle(tmp_path / "bundle")
    assert report.ok, [str(p) for p in report.errors]
    source = load_cohort(embedded_study_path())
    for m in TABLES:
        a = source.tables[m.name].select(*m.column_names).order_by(list(m.key)).to_pyarrow().to_pylist()
        b = exported.tables[m.name].select(*m.column_names).order_by(list(m.key)).to_pyarrow().to_pylist()
        assert a == b, m.name
    assert exported.supplied == source.supplied
    assert analyse(exported).results_json() == analyse(source).results_json()
    assert login(site, "statistician").get("/s/roundtrip/report/results.json").status_code == 200


@pytest.mark.slow
def test_data_manager_imports_a_bundle_by_upload_others_cannot(site):
    files = [("files", (p.name, p.read_bytes())) for p in sorted(embedded_study_path().iterdir())
             if p.is_file() and p.suffix in (".csv", ".yaml")]
    inv = login(site, "investigator")
    r = inv.post("/studies/import", data={"code": "upl", "csrf_token": inv.csrf}, files=files,
                 follow_redirects=False)
    assert r.status_code == 403
    dm = login(site, "data_manager")
    bad = [f for f in files if f[1][0] != "patients.csv"]  # a required table missing: refused
    r = dm.post("/studies/import", data={"code": "bad", "csrf_token": dm.csrf}, files=bad,
                follow_redirects=False)
    assert r.status_code == 422 and "patients" in r.text
    r = dm.post("/studies/import", data={"code": "upl", "centre": "site-2", "csrf_token": dm.csrf},
                files=files, follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    assert len(dm.get("/api/studies/upl/patients").json()) == 13
    assert len(login(site, "investigator2").get("/api/studies/upl/patients").json()) == 13  # site-2
    assert login(site, "investigator").get("/api/studies/upl/patients").json() == []
