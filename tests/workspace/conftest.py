"""Workspace fixtures: one migrated database per engine (SQLite file, real PostgreSQL), with the
demo study and the demo users, shared by the HTTP tests of the module."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from amlcohort.workspace.app import create_app
from amlcohort.workspace.db import make_engine
from amlcohort.workspace.setup import DemoAccount, prepare

PG_ADMIN = os.environ.get("AMLCOHORT_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_or_skip() -> sa.Engine:
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as con:
            con.execute(sa.text("select 1"))
        return admin
    except Exception as e:  # no server: skip, unless the run requires every engine
        if os.environ.get("AMLCOHORT_REQUIRE_ENGINES") == "1":
            pytest.fail(f"PostgreSQL required (AMLCOHORT_REQUIRE_ENGINES=1) but unreachable: {e}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {type(e).__name__}")


@contextmanager
def fresh_database(kind: str, folder) -> Iterator[str]:
    """A new, empty database of ``kind`` ("sqlite" file or a new PostgreSQL database), dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'workspace_{secrets.token_hex(3)}.db'}"
        return
    admin = _pg_or_skip()
    name = f"amlcohort_ws_{secrets.token_hex(4)}"
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN)
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine_url(request, tmp_path_factory) -> Iterator[str]:
    """A fresh database per engine for the session's workspace."""
    with fresh_database(request.param, tmp_path_factory.mktemp("ws")) as url:
        yield url


@pytest.fixture()
def empty_url(engine_url, tmp_path) -> Iterator[str]:
    """Another fresh, empty database of the same engine (for the migration test)."""
    with fresh_database("postgresql" if engine_url.startswith("postgresql") else "sqlite", tmp_path) as url:
        yield url


def pytest_generate_tests(metafunc) -> None:
    if "engine_url" in metafunc.fixturenames:
        metafunc.parametrize("engine_url", ["sqlite", "postgresql"], indirect=True, scope="session")


@dataclass
class Site:
    engine: sa.Engine
    app: object
    accounts: dict[str, DemoAccount]


@pytest.fixture(scope="session")
def site(engine_url: str) -> Iterator[Site]:
    engine = make_engine(engine_url)
    accounts = {a.username: a for a in prepare(engine)}
    yield Site(engine, create_app(engine), accounts)
    engine.dispose()


def login(site: Site, username: str) -> TestClient:
    """A client logged in as ``username``; ``client.csrf`` is its session's CSRF token."""
    c = TestClient(site.app)
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"username": username, "password": site.accounts[username].password,
                               "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    c.csrf = token  # type: ignore[attr-defined]
    return c


@pytest.fixture()
def as_user(site: Site):
    return lambda username: login(site, username)
