"""Where the derivations run: one call gives an Ibis connection to DuckDB, SQLite, PostgreSQL or Spark.

>>> con = connect("duckdb")
>>> con.name
'duckdb'

``load_cohort(path, con=connect("postgres", url))`` then loads (validates in-process, writes the
typed tables to) that engine, and every derivation (an Ibis expression) runs there:

* ``duckdb`` (default): in-process; ``url`` is a database file (None: in memory);
* ``sqlite``: ``url`` is a database file (None: in memory);
* ``postgres``: ``url`` like ``postgres://user@host:5432/db`` (default: the local server,
  ``postgres://postgres@127.0.0.1:5432/test``); optional dependency ``psycopg``;
* ``spark``: a local Spark session (``local[2]``; ``url`` may name another master, e.g.
  ``spark://host:7077``); optional dependency ``pyspark`` (needs Java 17).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from typing import Literal

import ibis

__all__ = [
    "DEFAULT_POSTGRES_URL", "ENGINES", "DatabasePathError", "Engine", "EngineUnavailable", "connect",
    "without_password",
]

Engine = Literal["duckdb", "sqlite", "postgres", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "sqlite", "postgres", "spark")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"


class EngineUnavailable(RuntimeError):
    """The engine's driver or server is not there (the message says which and how to get it)."""


class DatabasePathError(EngineUnavailable):
    """A database file that cannot be (a folder, or in a folder that does not exist): a usage error."""


def connect(engine: str = "duckdb", url: str | None = None) -> ibis.BaseBackend:
    """An Ibis backend for ``engine`` at ``url`` (see the module docstring for the defaults)."""
    if engine in ("duckdb", "sqlite"):
        return _database_file(engine, url)
    if engine == "postgres":
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise EngineUnavailable("PostgreSQL needs psycopg: pip install 'amlcohort[engines]'") from err
        target = url or os.environ.get("AMLCOHORT_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        try:
            con = ibis.connect(target)
        except Exception as err:  # the driver's own error type varies with the version
            raise EngineUnavailable(
                f"cannot connect to PostgreSQL at {without_password(target)}: {err}") from err
        _without_jit(con)
        return con
    if engine == "spark":
        return _spark(url)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def _database_file(engine: str, path: str | None) -> ibis.BaseBackend:
    """DuckDB or SQLite on the database file ``path`` (created when missing; None: in memory). A
    folder that does not exist, or a file that is not such a database, is :class:`EngineUnavailable`
    naming the file and why (the driver's own error is a traceback)."""
    name = {"duckdb": "DuckDB", "sqlite": "SQLite"}[engine]
    if path and path != ":memory:":
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise DatabasePathError(f"{name} database {path}: the folder {folder} does not exist")
        if os.path.isdir(path):
            raise DatabasePathError(f"{name} database {path}: is a folder; give a database file")
    try:
        if engine == "duckdb":
            return ibis.duckdb.connect(path or ":memory:")
        return ibis.sqlite.connect(path) if path else ibis.sqlite.connect()
    except Exception as err:  # the drivers' error types differ (duckdb.IOException, sqlite3.DatabaseError)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EngineUnavailable(f"cannot open {path} as a {name} database: {reason}") from err


def without_password(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (an error message must not repeat it)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _without_jit(con: ibis.BaseBackend) -> None:
    """Turn PostgreSQL's JIT compilation off for this session (``SET jit = off``, committed, so a
    later rollback keeps it).

    The derivations compile to very large expressions (the CTCAE rule set is one CASE of several
    hundred thousand characters), and LLVM compiling them costs far more than it saves: grading
    the laboratory values of 500 synthetic patients took 192 s with JIT (the server's default) and
    7 s without, with the same rows. ``AMLCOHORT_POSTGRES_JIT=on`` leaves the server's setting."""
    if os.environ.get("AMLCOHORT_POSTGRES_JIT", "").strip().lower() in ("on", "1", "true", "yes"):
        return
    cursor = con.raw_sql("SET jit = off")  # type: ignore[attr-defined]
    cursor.close()
    con.con.commit()  # type: ignore[attr-defined]


@functools.cache
def _warehouse() -> str:
    """Spark's warehouse folder: ``AMLCOHORT_SPARK_WAREHOUSE``, else one temporary folder per
    process, removed when it exits (Spark's default writes ``spark-warehouse`` into the working
    folder). Asked once: a later ``connect`` reuses the running session and its folder."""
    given = os.environ.get("AMLCOHORT_SPARK_WAREHOUSE")
    if given:
        return given
    folder = tempfile.mkdtemp(prefix="amlcohort-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _spark(master: str | None) -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise EngineUnavailable("Spark needs pyspark: pip install 'amlcohort[engines]'") from err
    try:
        session = (
            SparkSession.builder.master(master or "local[2]")
            .appName("amlcohort")
            .config("spark.sql.session.timeZone", "UTC")
            # tables go to a folder of this process (removed at exit), not ./spark-warehouse
            .config("spark.sql.warehouse.dir", _warehouse())
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            # Spark writes each query's plan out as text (for its UI and its events) and keeps the
            # last 1,000: the protocol audit's plan, the rule engine's CASEs repeated through it,
            # ran the driver out of heap while being written ("Java heap space" in
            # QueryExecution.explainString). The text is cut at 10^6 characters and few are kept.
            .config("spark.sql.maxPlanStringLength", "1000000")
            .config("spark.sql.ui.retainedExecutions", "10")
            .config("spark.ui.retainedJobs", "50")
            .config("spark.ui.retainedStages", "50")
            .config("spark.ui.retainedTasks", "1000")
            # the driver collects the results (e.g. every graded laboratory value of a registry)
            .config("spark.driver.memory", os.environ.get("AMLCOHORT_SPARK_DRIVER_MEMORY", "6g"))
            .getOrCreate()
        )
    except Exception as err:  # no Java, wrong Java: py4j/pyspark raise various errors
        raise EngineUnavailable(f"cannot start Spark ({master or 'local[2]'}): {err}") from err
    return ibis.pyspark.connect(session)
