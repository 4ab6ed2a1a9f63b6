"""Work of the report done by forked children while the main process goes on deriving.

Two kinds of work need no database and are pure Python (so threads would not help):

* **SVG encoding** (:func:`render_in_background`, :class:`PendingSvgs`). Encoding a figure as SVG
  (every glyph a path) takes 0.2-0.4 s, about two seconds for the report's eight. A child encodes
  two thirds of the figures exactly as :func:`amlcohort.report.figures.render_figure` does (same
  bytes: it holds a copy of the very same figures) while the parent grades the laboratory values
  and audits the protocol; the parent encodes the rest when it writes.
* **building and compiling large queries** (:func:`compile_in_background`, :class:`PendingSql`):
  the laboratory CTCAE grades and the protocol audit, about a second of Ibis each; the parent
  creates each as a temporary table from the child's SQL.

Each child writes its result to a private temporary file and leaves with ``os._exit`` (no
``atexit`` handlers: nothing of the parent's is cleaned up by a child); it runs no garbage
collection, writes nothing to the terminal and never touches the database (the connection object
is cut off in the child). Whatever a child did not deliver (no ``fork`` on the platform, one CPU,
another engine than an in-process DuckDB, a child that failed or died, a figure changed since) is
done in-process, so the result never depends on whether a child ran. ``AMLCOHORT_PARALLEL=0`` turns
the children off.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import pickle
import sys
import tempfile
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
from matplotlib.figure import Figure

from amlcohort.report import figures as fig

#: Fewer figures than this are rendered in-process (a fork costs a few milliseconds plus page faults).
MIN_FIGURES = 3
#: Share of the figures the child renders; the parent renders the rest when it writes the report
#: (after the laboratory grades and the protocol audit, which leave it about a third of the time).
CHILD_SHARE = 2 / 3


def parallel_allowed() -> bool:
    """Whether a child process may be forked: POSIX ``fork``, 2+ usable CPUs, not turned off."""
    if os.environ.get("AMLCOHORT_PARALLEL", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not hasattr(os, "fork"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus >= 2


def render_serially(figures: Mapping[str, Figure]) -> dict[str, bytes]:
    return {name: fig.render_figure(f, "svg") for name, f in figures.items()}


def _reap(pid: int, path: str) -> None:
    """Finaliser of an uncollected render: stop and reap the child, remove its file."""
    with contextlib.suppress(OSError):
        os.kill(pid, 9)
    with contextlib.suppress(OSError, ChildProcessError):
        os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        os.unlink(path)


class PendingSvgs:
    """SVG bytes of some figures, being rendered by a child process (or to be rendered in-process)."""

    def __init__(self, figures: Mapping[str, Figure]) -> None:
        self.figures = dict(figures)
        self._pid: int | None = None
        self._path: str | None = None
        self._finalizer: weakref.finalize | None = None
        self._result: dict[str, bytes] | None = None
        self.child: frozenset[str] = frozenset()  # the figures the child renders

    def start(self, share: float = CHILD_SHARE) -> None:
        """Fork the child, to render the first ``share`` of the figures (the rest: :meth:`collect`)."""
        names = list(self.figures)[: math.ceil(len(self.figures) * share)]
        mine = {n: self.figures[n] for n in names}
        self._pid, self._path = _fork_job(lambda: render_serially(mine))
        self._finalizer = weakref.finalize(self, _reap, self._pid, self._path)
        self.child = frozenset(names)

    def collect(self, figures: Mapping[str, Figure]) -> dict[str, bytes]:
        """The SVG of each of ``figures``: the child's bytes when it rendered these very figures,
        otherwise (or for any figure it did not render) rendered here, the parent's share first."""
        out: dict[str, bytes] = {
            n: fig.render_figure(f, "svg") for n, f in figures.items() if n not in self.child
        }
        if self._result is None:
            self._result = self._wait()
        for name, f in figures.items():
            if name not in out:
                data = self._result.get(name) if self.figures.get(name) is f else None
                out[name] = data if data is not None else fig.render_figure(f, "svg")
        return {n: out[n] for n in figures}

    def _wait(self) -> dict[str, bytes]:
        if self._pid is None or self._path is None or self._finalizer is None:
            return {}
        self._finalizer.detach()
        pid, path, self._pid = self._pid, self._path, None
        return _job_result(pid, path)


def _fork_job(job: Callable[[], dict]) -> tuple[int, str]:
    """Fork a child that runs ``job`` and pickles its result to a private temporary file, then
    leaves with ``os._exit`` (never returns in the child); returns the child's pid and the file."""
    fd, path = tempfile.mkstemp(prefix="amlcohort-job-", suffix=".pickle")
    os.close(fd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads alive
        pid = os.fork()
    if pid == 0:  # the child
        # No garbage collection: a cycle collected here could run a finaliser of the parent's
        # (e.g. Ibis dropping a cached table on the database the child must never touch).
        gc.disable()
        code = 1
        try:
            # nothing to the terminal: the parent's streams may be wrapped (a progress display
            # whose lock another thread held at the fork), and the parent reports any warning
            warnings.simplefilter("ignore")
            devnull = open(os.devnull, "w")  # noqa: SIM115 (lives until os._exit)
            sys.stdout = sys.stderr = devnull
            data = pickle.dumps(job(), protocol=pickle.HIGHEST_PROTOCOL)
            with open(path, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    return pid, path


#: Seconds the parent waits for a child before it stops it and does the work itself: a child
#: normally needs a few seconds; one that is stuck (a lock held by another thread at the fork)
#: must never stall the report.
CHILD_TIMEOUT = float(os.environ.get("AMLCOHORT_CHILD_TIMEOUT", "120"))


def _wait_child(pid: int, timeout: float) -> int | None:
    """The exit status of child ``pid``, or None (the child killed) when it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
            with contextlib.suppress(OSError, ChildProcessError):
                os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _job_result(pid: int, path: str, timeout: float | None = None) -> dict:
    """Wait (at most ``timeout`` s, default :data:`CHILD_TIMEOUT`) for the child ``pid`` and read
    its result ({} when it failed, died or took too long: the caller then does the work)."""
    try:
        status = _wait_child(pid, CHILD_TIMEOUT if timeout is None else timeout)
        if status is None or os.waitstatus_to_exitcode(status) != 0:
            return {}
        with open(path, "rb") as f:
            data = pickle.load(f)  # written by our own child
        return data if isinstance(data, dict) else {}
    except (OSError, ChildProcessError, pickle.UnpicklingError, EOFError):
        return {}
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def render_in_background(figures: Mapping[str, Figure]) -> PendingSvgs:
    """Start rendering ``figures`` as SVG in a forked child (see the module docstring)."""
    pending = PendingSvgs({n: f for n, f in figures.items() if isinstance(f, Figure)})
    if len(pending.figures) >= MIN_FIGURES and parallel_allowed():
        with contextlib.suppress(OSError):  # no fork today: collect() renders in-process
            pending.start()
    return pending


class PendingSql:
    """Queries being built and compiled to SQL by a forked child (DuckDB only), materialised here.

    Building and compiling a large Ibis expression (the CTCAE grades of every laboratory value, the
    protocol audit: one CASE tree per rule) takes a second or more of pure Python each and needs no
    database: a child builds and compiles them while the parent derives the analysis, and
    :meth:`table` creates each as a temporary table from the child's SQL (the SQL the parent would
    have compiled). Whatever the child did not compile (it failed, another engine, an in-memory
    table in the expression) is built and compiled here (``build().cache()``), so errors surface
    here as they would without the child. A builder must run no query: in the child the
    connection is cut off (a query there fails instead of touching the parent's database).
    """

    def __init__(self, con: ibis.BaseBackend, builders: Mapping[str, Callable[[], ir.Table]]) -> None:
        self.con = con
        self.builders = dict(builders)
        self._pid: int | None = None
        self._path: str | None = None
        self._finalizer: weakref.finalize | None = None
        self._sql: dict[str, str] | None = None
        self._tables: dict[str, ir.Table] = {}

    def start(self) -> None:
        con, builders = self.con, self.builders

        def job() -> dict[str, str]:
            _cut_off(con)
            out = {}
            for key, build in builders.items():
                with contextlib.suppress(Exception):  # the parent builds it again and reports
                    expr = build()
                    if not expr.op().find(ops.InMemoryTable):  # to be registered by the parent
                        out[key] = str(con.compile(expr))
            return out

        self._pid, self._path = _fork_job(job)
        self._finalizer = weakref.finalize(self, _reap, self._pid, self._path)

    def _wait(self) -> dict[str, str]:
        if self._sql is None:
            self._sql = {}
            if self._pid is not None and self._path is not None and self._finalizer is not None:
                self._finalizer.detach()
                pid, path, self._pid = self._pid, self._path, None
                self._sql = _job_result(pid, path)
        return self._sql

    def table(self, key: str) -> ir.Table:
        """Query ``key``, materialised (a temporary table) once."""
        if key not in self._tables:
            sql = self._wait().get(key)
            if not isinstance(sql, str):
                self._tables[key] = self.builders[key]().cache()
            else:
                name = f"amlcohort_pre_{uuid.uuid4().hex}"
                self.con.raw_sql(f'CREATE TEMPORARY TABLE "{name}" AS {sql}')
                self._tables[key] = self.con.table(name)
        return self._tables[key]


#: The parent's database connections, held by a child for as long as it lives (see :func:`_cut_off`).
_HELD_IN_CHILD: list[object] = []


class _CutOff:
    """What a child sees in place of the parent's database connection: any use fails."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the parent's database is not used in a child process")


def _cut_off(con: ibis.BaseBackend) -> None:
    """In a child: make the parent's connection unusable without letting it go. The child's copy
    of the DuckDB connection is kept referenced until the child leaves (``os._exit`` runs no
    destructor): dropped, its destructor would close the database *in the child* and delete the
    temporary files the parent's tables have spilled to, which the parent then cannot read ("IO
    Error: Could not read enough bytes from file .../duckdb_temp_storage...")."""
    if hasattr(con, "con"):
        _HELD_IN_CHILD.append(con.con)
        con.con = _CutOff()


def can_fork_for(con: ibis.BaseBackend) -> bool:
    """Whether queries on ``con`` may be compiled by a child: an in-process DuckDB, fork allowed."""
    return getattr(con, "name", None) == "duckdb" and parallel_allowed()


def compile_in_background(
    con: ibis.BaseBackend, builders: Mapping[str, Callable[[], ir.Table]]
) -> PendingSql:
    """Start building and compiling queries in a forked child (DuckDB only; see :class:`PendingSql`)."""
    pending = PendingSql(con, builders)
    if builders and can_fork_for(con):
        with contextlib.suppress(OSError):
            pending.start()
    return pending
