"""Engines for the equivalence tests: DuckDB, SQLite, PostgreSQL (a real server) and Spark (local[2]).

PostgreSQL and Spark are skipped, with the reason, when they are not reachable, unless the
environment sets ``AMLCOHORT_REQUIRE_ENGINES=1`` (CI does): then an unreachable engine fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import ibis
import pytest

from amlcohort.engines import DEFAULT_POSTGRES_URL, EngineUnavailable, connect
from amlcohort.synth import write_synthetic_bundle

REQUIRED = os.environ.get("AMLCOHORT_REQUIRE_ENGINES") == "1"


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"AMLCOHORT_REQUIRE_ENGINES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this test run (dropped at the end)."""
    base = os.environ.get("AMLCOHORT_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        admin = connect("postgres", base)
    except EngineUnavailable as err:
        unavailable(f"PostgreSQL is not reachable: {err}")
    name = f"amlcohort_test_{uuid.uuid4().hex[:10]}"
    admin.raw_sql(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + f"/{name}"
    yield url
    admin.raw_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.disconnect()


@pytest.fixture(scope="session")
def spark_backend() -> ibis.BaseBackend:
    try:
        return connect("spark")
    except EngineUnavailable as err:
        unavailable(f"Spark is not available: {err}")
        raise


@pytest.fixture(scope="session")
def synthetic_10k(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "registry"
    write_synthetic_bundle(out, 10_000, seed=2026)
    return out


def new_connection(engine: str, request) -> ibis.BaseBackend:
    """A connection with a clean namespace for one cohort on ``engine``."""
    if engine == "duckdb":
        return connect("duckdb")
    if engine == "sqlite":
        return connect("sqlite")
    if engine == "postgres":
        url = request.getfixturevalue("postgres_server")
        con = connect("postgres", url)
        schema = f"s_{uuid.uuid4().hex[:8]}"
        con.raw_sql(f"CREATE SCHEMA {schema}")
        return connect("postgres", f"{url}?options=-csearch_path%3D{schema}")
    if engine == "spark":
        con = request.getfixturevalue("spark_backend")
        database = f"d_{uuid.uuid4().hex[:8]}"
        con.raw_sql(f"CREATE DATABASE {database}")
        con.raw_sql(f"USE {database}")
        return con
    raise ValueError(engine)


@pytest.fixture(scope="session")
def postgres_icu_database(postgres_server) -> Iterator[str]:
    """A database whose text sorts by an ICU locale (en-US: "a1" before "P10", "_" before "-"),
    as many registries' databases do, unlike the C collation of a plain test database. Skipped
    (with the reason) on a server built without ICU."""
    base = os.environ.get("AMLCOHORT_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = connect("postgres", base)
    name = f"amlcohort_icu_{uuid.uuid4().hex[:10]}"
    try:
        admin.raw_sql(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                      "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    except Exception as err:  # a server without ICU (or before PostgreSQL 15)
        pytest.skip(f"PostgreSQL cannot create an ICU-collated database: {err}")
    yield base.rsplit("/", 1)[0] + f"/{name}"
    admin.raw_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.disconnect()
