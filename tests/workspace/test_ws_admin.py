"""The administration page (users, centres): data managers only, CSRF, every change audited."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.workspace.conftest import login

from amlcohort.workspace import db


def _post(c, url: str, data: dict):
    return c.post(url, data={"csrf_token": c.csrf, **data}, follow_redirects=False)


def _admin_audit(site, table: str, row_id: int) -> list[tuple]:
    a = db.audit_log.c
    q = sa.select(a.action, a.field, a.old_value, a.new_value, a.reason, a.username, a.study_id).where(
        a.table_name == table, a.row_id == row_id).order_by(a.id)
    with site.engine.connect() as con:
        return [tuple(r) for r in con.execute(q)]


def _id(site, table: sa.Table, **where) -> int | None:
    with site.engine.connect() as con:
        return con.execute(sa.select(table.c.id).where(*[table.c[k] == v for k, v in where.items()])).scalar()


def _login_with(site, username: str, password: str) -> tuple[TestClient, int]:
    c = TestClient(site.app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": username, "password": password, "csrf_token": token},
               follow_redirects=False)
    c.csrf = token  # type: ignore[attr-defined]
    return c, r.status_code


@pytest.mark.parametrize("who", ["investigator", "monitor", "statistician"])
def test_only_a_data_manager_administers(site, who):
    c = login(site, who)
    uid = _id(site, db.users, username="investigator2")
    assert c.get("/admin").status_code == 403
    assert _post(c, "/admin/centres", {"code": f"x-{who}", "name": "X"}).status_code == 403
    assert _post(c, "/admin/users", {"username": f"x-{who}", "role": "data_manager"}).status_code == 403
    assert _post(c, f"/admin/users/{uid}/deactivate", {"reason": "x"}).status_code == 403
    assert _post(c, f"/admin/users/{uid}/centre", {"centre": "site-1", "reason": "x"}).status_code == 403
    assert _id(site, db.centres, code=f"x-{who}") is None and _id(site, db.users, username=f"x-{who}") is None
    assert "Users and centres" not in c.get("/studies").text


def test_admin_writes_need_the_csrf_token(site):
    dm = login(site, "data_manager")
    assert dm.get("/admin").status_code == 200
    uid = _id(site, db.users, username="investigator2")
    for url, data in (("/admin/centres", {"code": "nocsrf", "name": "N"}),
                      ("/admin/users", {"username": "nocsrf", "role": "monitor"}),
                      (f"/admin/users/{uid}/deactivate", {"reason": "x"})):
        assert dm.post(url, data=data, follow_redirects=False).status_code == 403
        assert dm.post(url, data={**data, "csrf_token": "forged"}, follow_redirects=False).status_code == 403
    assert _id(site, db.centres, code="nocsrf") is None and _id(site, db.users, username="nocsrf") is None
    with site.engine.connect() as con:
        assert con.execute(sa.select(db.users.c.active).where(db.users.c.id == uid)).scalar()


def test_centre_and_user_created_assigned_deactivated_each_audited(site):
    dm = login(site, "data_manager")
    r = _post(dm, "/admin/centres", {"code": "site-3", "name": "Centre 3", "reason": "new site"})
    assert r.status_code == 303
    cid = _id(site, db.centres, code="site-3")
    assert _admin_audit(site, "centres", cid) == [
        ("create", "code", None, "site-3", "new site", "data_manager", None),
        ("create", "name", None, "Centre 3", "new site", "data_manager", None)]
    assert _post(dm, "/admin/centres", {"code": "site-3", "name": "again"}).status_code == 400
    # an investigator needs a centre (without one it would see every centre)
    r = _post(dm, "/admin/users", {"username": "inv3", "role": "investigator", "centre": ""})
    assert r.status_code == 400 and "works at a centre" in r.text
    r = _post(dm, "/admin/users", {"username": "inv3", "role": "investigator", "centre": "site-3"})
    assert r.status_code == 200
    password = re.search(r'id="new-password">.*?<code>([^<]+)</code>', r.text).group(1)
    uid = _id(site, db.users, username="inv3")
    with site.engine.connect() as con:
        stored = con.execute(sa.select(db.users.c.password_hash).where(db.users.c.id == uid)).scalar()
    assert stored.startswith("$argon2id$") and password not in stored
    assert _admin_audit(site, "users", uid) == [
        ("create", "username", None, "inv3", None, "data_manager", None),
        ("create", "role", None, "investigator", None, "data_manager", None),
        ("create", "centre", None, "site-3", None, "data_manager", None),
        ("create", "active", None, "true", None, "data_manager", None)]
    assert password not in str(_admin_audit(site, "users", uid))
    inv3, status = _login_with(site, "inv3", password)
    assert status == 303
    assert inv3.get("/api/studies/demo/patients").json() == []  # site-3 has no patient
    # assign to site-1: a reason is required; then the demo patients are visible
    assert _post(dm, f"/admin/users/{uid}/centre", {"centre": "site-1", "reason": ""}).status_code == 400
    r = _post(dm, f"/admin/users/{uid}/centre", {"centre": "site-1", "reason": "moved to site 1"})
    assert r.status_code == 303
    assert len(inv3.get("/api/studies/demo/patients").json()) >= 13
    # deactivate: the session ends, login is refused
    r = _post(dm, f"/admin/users/{uid}/deactivate", {"reason": "left the study"})
    assert r.status_code == 303
    assert inv3.get("/s/demo", follow_redirects=False).headers["location"] == "/login"
    assert _login_with(site, "inv3", password)[1] == 401
    assert _admin_audit(site, "users", uid)[4:] == [
        ("update", "centre", "site-3", "site-1", "moved to site 1", "data_manager", None),
        ("update", "active", "true", "false", "left the study", "data_manager", None)]
    page = dm.get("/admin").text
    assert "left the study" in page and f'id="user-{uid}" class="inactive"' in page
    # a data manager cannot lock themselves out
    me = _id(site, db.users, username="data_manager")
    r = _post(dm, f"/admin/users/{me}/deactivate", {"reason": "oops"})
    assert r.status_code == 400 and "your own account" in r.text
