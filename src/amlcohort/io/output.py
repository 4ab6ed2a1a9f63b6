"""Safe report output: a whole report appears at ``--out`` at once, or not at all.

:func:`staged_output` is the one way the report is written to disk:

* **atomic** — every file goes into a fresh temporary folder beside ``out`` (same file system),
  each file and folder is ``fsync``-ed, then the folders are swapped with one ``renameat2
  (RENAME_EXCHANGE)`` (Linux); elsewhere the old folder is renamed aside, the new one renamed in and
  the old one removed, and a run that finds ``out`` missing next to a set-aside folder restores it.
  A ``SIGKILL`` at any moment therefore leaves at ``out`` either the previous complete report or
  the new complete one; leftovers of a killed run (``.<name>.tmp-*``) are removed by the next run;
* **exclusive** — ``.<name>.lock`` beside ``out`` is locked with ``fcntl.flock`` for the whole run
  (released by the kernel if the process dies), so a second concurrent run stops with
  :class:`OutputLocked` instead of mixing two reports;
* **no links followed** — an ``out`` that is a symbolic link, or a report folder holding one, is
  refused; files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` inside the fresh folder;
* **only this run's files** — the folder is replaced as a whole, and ``manifest.json`` lists every file
  with its SHA-256 and size (``results.json`` points to it);
* **never someone else's folder** — an existing, non-empty ``out`` that is not an amlcohort report
  (no ``manifest.json`` written by amlcohort) is refused rather than replaced.

Failures the user can fix (read-only folder, a file where a folder is expected, a link, a lock held by
another run) raise :class:`OutputError` with a one-line message naming the path and the fix.

Spreadsheet cells: :func:`safe_cell` neutralises formula-like text (OWASP "CSV injection": a leading
``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'``) and :func:`xlsx_cell`
also truncates text beyond Excel's 32,767-character cell limit *with a visible marker*; the caller
records a warning (see :class:`OutputWarnings`). ``results.json`` keeps the text verbatim.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlcohort.io.excel import XLSX_MAX_CELL_CHARS, XLSX_MAX_ROWS

__all__ = [
    "MANIFEST",
    "XLSX_CELL_LIMIT",
    "XLSX_ROW_LIMIT",
    "OutputError",
    "OutputLocked",
    "OutputWarnings",
    "Staging",
    "preflight",
    "safe_cell",
    "staged_output",
    "xlsx_cell",
]

MANIFEST = "manifest.json"
GENERATOR = "amlcohort"
XLSX_CELL_LIMIT = XLSX_MAX_CELL_CHARS
#: Rows in an Excel worksheet, the header included; openpyxl writes more, which Excel cannot open.
XLSX_ROW_LIMIT = XLSX_MAX_ROWS
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class OutputError(Exception):
    """The report cannot be written where asked; ``str(error)`` is one line naming the path and the fix."""


class OutputLocked(OutputError):
    """Another run is writing the same report folder."""


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------
def safe_cell(value: object) -> object:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula; then ``"'" + value``.

    OWASP (CSV injection): cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are
    prefixed with a single quote. Plain numbers written as text (``"-1"``, ``"+2.5e3"``) are left alone:
    they cannot be formulas.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def truncation_marker(length: int) -> str:
    return (
        f" … [TRUNCATED: {length:,} characters, Excel's cell limit is {XLSX_CELL_LIMIT:,}; "
        "full text in the CSV]"
    )


def xlsx_cell(value: object) -> tuple[object, int | None]:
    """A value for an XLSX cell and, when it had to be cut, its original length.

    Missing values (None, NaN, NaT) become empty cells; numbers stay numbers; text is neutralised
    (:func:`safe_cell`) and cut to 32,767 characters with a visible marker at the end.
    """
    if value is None:
        return None, None
    if isinstance(value, float) and math.isnan(value):
        return None, None
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None, None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        with contextlib.suppress(ValueError, AttributeError):
            return xlsx_cell(value.item())
    if isinstance(value, bool | int | float):
        return value, None
    text = value if isinstance(value, str) else str(value)
    text = str(safe_cell(text))
    if len(text) > XLSX_CELL_LIMIT:
        marker = truncation_marker(len(text))
        return text[: XLSX_CELL_LIMIT - len(marker)] + marker, len(text)
    return text, None


@dataclass
class OutputWarnings:
    """What the writer had to change in an output; goes to ``results.json`` under ``output_warnings``."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **what: Any) -> None:
        self.items.append(what)


# ---------------------------------------------------------------------------------------------
# The staging folder
# ---------------------------------------------------------------------------------------------
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW


class Staging:
    """The fresh temporary folder a report is written into; records every file for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}

    def path(self, rel: str) -> Path:
        """Where ``rel`` will be; parent folders are created. Refuses names that leave the folder."""
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise ValueError(f"output name must be a relative path inside the report: {rel!r}")
        (self.root / p).parent.mkdir(parents=True, exist_ok=True)
        return self.root / p

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Create ``rel`` (never an existing file, never through a link), write, fsync and record it."""
        target = self.path(rel)
        fd = os.open(target, _OPEN_FLAGS, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.files[Path(rel).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        return target

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write_text(rel, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

    def manifest(self) -> dict[str, Any]:
        return {"generator": GENERATOR, "files": dict(sorted(self.files.items()))}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        _fsync_dir(Path(dirpath))


# renameat2(RENAME_EXCHANGE): swap two paths atomically (Linux >= 3.15, glibc >= 2.28).
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap ``a`` and ``b``; False when the system cannot (then the caller falls back)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


#: What a report folder written before manifests existed holds (recognised so upgrades keep working).
LEGACY_ENTRIES = frozenset(
    {"figures", "tables", "report.html", "report.pdf", "results.json", "tables.xlsx", MANIFEST}
)


def _is_report_folder(out: Path) -> bool:
    """True when ``out`` holds a manifest written by amlcohort (so replacing it loses nothing foreign),
    or is a report folder of an earlier version (only the report's own names, with ``results.json``)."""
    m = out / MANIFEST
    if m.is_symlink() or not m.is_file():
        names = {p.name for p in out.iterdir()}
        return "results.json" in names and names <= LEGACY_ENTRIES
    try:
        with open(m, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def _check_target(out: Path) -> None:
    if out.is_symlink():
        raise OutputError(
            f"{out} is a symbolic link; amlcohort does not write through links: give a real folder as --out"
        )
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder: remove it or choose another --out")
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out} is read-only: make it writable or choose another --out")
    links = [p for p in out.rglob("*") if p.is_symlink()]
    if links:
        raise OutputError(
            f"{links[0]} is a symbolic link inside the report folder; amlcohort does not follow links: "
            "remove it (or choose another --out)"
        )
    if any(out.iterdir()) and not _is_report_folder(out):
        raise OutputError(
            f"{out} is not empty and is not an amlcohort report (no {MANIFEST}); refusing to replace it: "
            "choose a new or empty folder as --out"
        )


def _leftovers(out: Path) -> list[Path]:
    prefix = f".{out.name}."
    return [
        p
        for p in out.parent.iterdir()
        if p.name.startswith(prefix) and (".tmp-" in p.name or ".old-" in p.name) and p.is_dir()
    ]


def _recover(out: Path) -> None:
    """Undo a killed fallback swap (out renamed aside, new one not yet in), then drop leftovers."""
    if not out.exists() and not out.is_symlink():
        aside = sorted(p for p in _leftovers(out) if ".old-" in p.name)
        if aside:
            os.rename(aside[-1], out)
    for p in _leftovers(out):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    lock_path = out.parent / f".{out.name}.lock"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputError(f"{lock_path} is a symbolic link; remove it") from e
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            raise OutputLocked(
                f"another amlcohort run (pid {holder or '?'}) is writing {out}; "
                "wait for it to finish or choose another --out"
            ) from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock (the kernel also releases it if the process is killed)


def _permission(e: OSError, out: Path) -> OutputError:
    where = e.filename or out
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            f"cannot write the report to {out}: permission denied on {where}; "
            "choose a folder you can write to with --out"
        )
    if e.errno == errno.ENOSPC:
        return OutputError(f"cannot write the report to {out}: no space left on the device")
    if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP):
        return OutputError(f"cannot write the report to {out}: {e.strerror} ({where}); choose another --out")
    return OutputError(f"cannot write the report to {out}: {e.strerror or e} ({where})")


def preflight(out: str | Path) -> None:
    """Check, before any work, that a report could be written to ``out`` now; raise :class:`OutputError`.

    The same checks as :func:`staged_output` (links, foreign folder, permissions, another run holding the
    lock), without writing anything but the lock file; a CLI calls it before the analysis so a bad
    ``--out`` fails in milliseconds, not after it.
    """
    out = Path(os.path.abspath(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(out.parent))
        with _lock(out):
            _check_target(out)
    except OutputError:
        raise
    except OSError as e:
        raise _permission(e, out) from e


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Staging]:
    """Lock ``out``, give a :class:`Staging` folder to write into, then swap it in as ``out``.

    The body writes every file through the :class:`Staging`; on a normal exit ``manifest.json`` is
    written, everything fsync-ed and the folder swapped in. On an exception (including Ctrl-C) the
    temporary folder is removed and ``out`` is left as it was. Raises :class:`OutputError` for paths the
    user must fix and :class:`OutputLocked` while another run holds the lock.
    """
    out = Path(os.path.abspath(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _lock(out):
            _recover(out)
            _check_target(out)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
            try:
                stage = Staging(tmp)
                yield stage
                stage.write_json(MANIFEST, stage.manifest())
                _fsync_tree(tmp)
                os.chmod(tmp, 0o755)
                _swap(tmp, out)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except OutputError:
        raise
    except OSError as e:
        raise _permission(e, out) from e


def _swap(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``; the old report (if any) ends at ``new`` and is removed by the caller."""
    if not out.exists():
        os.rename(new, out)
    elif not _exchange(new, out):
        aside = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, aside)
        os.rename(new, out)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_dir(out.parent)


def file_digest(path: Path) -> dict[str, Any]:
    """SHA-256 and size of a written file (what the manifest records)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"sha256": h.hexdigest(), "size": size}


def bytes_of(writer: Any) -> bytes:
    """Run ``writer(buffer)`` on an in-memory buffer and return what it wrote."""
    buf = io.BytesIO()
    writer(buf)
    return buf.getvalue()
