"""A Hypothesis state machine edits a valid bundle at random; the loader must then either load
the same values (every cell the edits did not touch equals the clean bundle's) or name the
problem (an error with table and reason). Edits that change nothing a person would call data
(header case and spaces, column order, a byte-order mark, CRLF line ends, quoting) must load.

Each load takes about a second, so the machine is derandomized, short, and loads once per run
(in ``teardown``), not after every step.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from amlcohort import load_cohort, validate_bundle
from amlcohort.schema import TABLES_BY_NAME
from tests.hostile.bundles import copy_bundle

TABLES = ["patients", "assessments", "events", "adverse_events", "exposures"]
VALUES = st.sampled_from(
    [
        "",
        "NA",
        "-1",
        "1e400",
        "nan",
        "P99",
        "2019-02-30",
        "1,5",
        "=1+1",
        "'=x",
        " P01 ",
        "Female",
        "🧬",
        "x" * 50,
        "0",
        "2017-01-01",
        "true",
    ]
)
_CLEAN: dict[str, list[dict]] = {}


def clean_values() -> dict[str, list[dict]]:
    if not _CLEAN:
        cohort = load_cohort()
        for t in TABLES:
            _CLEAN[t] = cohort.tables[t].to_pyarrow().to_pylist()
    return _CLEAN


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def _write(path: Path, rows: list[list[str]], **kw) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, **kw).writerows(rows)


class BundleEdits(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.bundle = copy_bundle(self.tmp / "b")
        self.touched: set[tuple[str, int | None, str]] = set()  # (table, data row or None, column)
        self.breaking = False

    def _file(self, table: str) -> Path:
        return self.bundle / f"{table}.csv"

    # ---- edits that change no data ----------------------------------------------------------

    @rule(table=st.sampled_from(TABLES), style=st.sampled_from(["upper", "title", "padded", "hyphen"]))
    def rename_headers(self, table: str, style: str) -> None:
        rows = _read(self._file(table))
        change = {
            "upper": str.upper,
            "title": lambda h: " ".join(w.capitalize() for w in h.split("_")),
            "padded": lambda h: f"  {h} ",
            "hyphen": lambda h: h.replace("_", "-"),
        }[style]
        rows[0] = [change(h) for h in rows[0]]
        _write(self._file(table), rows)

    @rule(table=st.sampled_from(TABLES), seed=st.integers(0, 1000))
    def reorder_columns(self, table: str, seed: int) -> None:
        import random

        rows = _read(self._file(table))
        order = list(range(len(rows[0])))
        random.Random(seed).shuffle(order)
        _write(self._file(table), [[r[i] for i in order] for r in rows])

    @rule(table=st.sampled_from(TABLES), form=st.sampled_from(["bom", "crlf", "quote_all"]))
    def reformat(self, table: str, form: str) -> None:
        rows = _read(self._file(table))
        if form == "bom":
            _write(self._file(table), rows)
            self._file(table).write_bytes(b"\xef\xbb\xbf" + self._file(table).read_bytes())
        elif form == "crlf":
            _write(self._file(table), rows, lineterminator="\r\n")
        else:
            _write(self._file(table), rows, quoting=csv.QUOTE_ALL)

    # ---- edits that may break the bundle -------------------------------------------------------

    @rule(table=st.sampled_from(TABLES), row=st.integers(1, 60), col=st.integers(0, 30), value=VALUES)
    def set_cell(self, table: str, row: int, col: int, value: str) -> None:
        rows = _read(self._file(table))
        r = 1 + (row - 1) % (len(rows) - 1)
        j = col % len(rows[0])
        rows[r][j] = value
        _write(self._file(table), rows)
        name = TABLES_BY_NAME[table].column_names
        column = next((c for c in name if c.replace("_", "") == _norm(rows[0][j])), rows[0][j])
        self.touched.add((table, r, column))
        self.breaking = True

    @rule(table=st.sampled_from(TABLES), col=st.integers(0, 30))
    def drop_column(self, table: str, col: int) -> None:
        rows = _read(self._file(table))
        j = col % len(rows[0])
        header = rows[0][j]
        _write(self._file(table), [r[:j] + r[j + 1 :] for r in rows])
        column = next(
            (c for c in TABLES_BY_NAME[table].column_names if c.replace("_", "") == _norm(header)), header
        )
        self.touched.add((table, None, column))
        self.breaking = True

    @rule(table=st.sampled_from(TABLES), row=st.integers(1, 60))
    def duplicate_row(self, table: str, row: int) -> None:
        rows = _read(self._file(table))
        rows.append(list(rows[1 + (row - 1) % (len(rows) - 1)]))
        _write(self._file(table), rows)
        self.breaking = True
        self.touched.add((table, len(rows) - 1, "*"))

    def teardown(self) -> None:
        try:
            self._check()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _check(self) -> None:
        report, cohort = validate_bundle(self.bundle)
        if cohort is None:
            assert self.breaking, "edits that change no data must load:\n" + "\n".join(
                map(str, report.errors)
            )
            assert report.errors
            for p in report.errors:
                assert p.table and p.reason, p
            return
        clean = clean_values()
        for t in TABLES:
            got = cohort.tables[t].to_pyarrow().to_pylist()
            want = clean[t]
            rows_touched = {r for (tt, r, c) in self.touched if tt == t and c == "*"}
            assert len(got) == len(want) + len(rows_touched), t
            cols_touched = {c for (tt, r, c) in self.touched if tt == t and r is None}
            cells = {(r, c) for (tt, r, c) in self.touched if tt == t and r is not None}
            for i, (g, w) in enumerate(zip(got, want, strict=False), start=1):
                for c, v in w.items():
                    if c in cols_touched or (i, c) in cells:
                        continue
                    assert g[c] == v, f"{t} row {i} column {c}: {g[c]!r} != {v!r}"


def _norm(h: str) -> str:
    return h.strip().lower().replace("_", "").replace("-", "").replace(" ", "")


BundleEdits.TestCase.settings = settings(
    max_examples=6,
    stateful_step_count=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)
TestBundleEdits = BundleEdits.TestCase
