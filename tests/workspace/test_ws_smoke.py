from tests.workspace.conftest import login


def test_smoke(site):
    c = login(site, "investigator")
    r = c.get("/s/demo")
    assert r.status_code == 200
    assert "P01" in r.text
    r = c.get("/s/demo/p/P02")
    assert r.status_code == 200, r.text
    r = c.get("/s/demo/p/P02/rules")
    print(r.text[:3000])
    assert r.status_code == 200
