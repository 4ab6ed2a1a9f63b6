"""Render the report's figures (SVG) in a forked process while the main one goes on deriving.

Drawing a figure is cheap; encoding it as SVG (every glyph a path) takes 0.2-0.4 s per figure, about
two seconds for the report's eight, all in matplotlib's Python code. :func:`render_in_background`
forks one child that encodes the figures exactly as :func:`amlcohort.report.figures.render_figure`
does (same bytes: the child holds a copy of the very same figures), writes them to a private
temporary file and exits, while the parent audits the protocol and grades the laboratory values.
:meth:`PendingSvgs.collect` waits for it and returns the bytes; on any failure (no ``fork`` on the
platform, one CPU, a child that died, a figure changed since) it renders in-process instead, so the
result never depends on whether the child ran.

The child only runs matplotlib and writes one file; it never touches the database connection, and it
ends with ``os._exit`` (no ``atexit`` handlers, nothing of the parent's is cleaned up by the child).
``AMLCOHORT_PARALLEL=0`` turns the child off.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
import warnings
import weakref
from collections.abc import Mapping

from matplotlib.figure import Figure

from amlcohort.report import figures as fig

#: Fewer figures than this are rendered in-process (a fork costs a few milliseconds plus page faults).
MIN_FIGURES = 3


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

    def start(self) -> None:
        fd, path = tempfile.mkstemp(prefix="amlcohort-svg-", suffix=".pickle")
        os.close(fd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads alive
            pid = os.fork()
        if pid == 0:  # the child: render, write, leave without running the parent's exit handlers
            code = 1
            try:
                # nothing to the terminal: the parent's streams may be wrapped (a progress display
                # whose lock another thread held at the fork), and the parent reports any warning
                warnings.simplefilter("ignore")
                devnull = open(os.devnull, "w")  # noqa: SIM115 (lives until os._exit)
                sys.stdout = sys.stderr = devnull
                data = pickle.dumps(render_serially(self.figures), protocol=pickle.HIGHEST_PROTOCOL)
                with open(path, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        self._pid, self._path = pid, path
        self._finalizer = weakref.finalize(self, _reap, pid, path)

    def collect(self, figures: Mapping[str, Figure]) -> dict[str, bytes]:
        """The SVG of each of ``figures``: the child's bytes when it rendered these very figures,
        otherwise (or for any figure it did not render) rendered here."""
        if self._result is None:
            self._result = self._wait()
        out: dict[str, bytes] = {}
        for name, f in figures.items():
            data = self._result.get(name) if self.figures.get(name) is f else None
            out[name] = data if data is not None else fig.render_figure(f, "svg")
        return out

    def _wait(self) -> dict[str, bytes]:
        if self._pid is None or self._path is None or self._finalizer is None:
            return {}
        self._finalizer.detach()
        pid, path = self._pid, self._path
        self._pid = None
        try:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                return {}
            with open(path, "rb") as f:
                data = pickle.load(f)  # written by our own child, from our own figures
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
