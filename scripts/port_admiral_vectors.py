"""Port pharmaverse admiral's CTCAE test vectors (data only) to tests/criteria/fixtures/admiral_ctcae_vectors.csv.

Reads ``tests/testthat/test-derive_var_atoxgr.R`` of pharmaverse/admiral (path given as the first
argument) and evaluates, with the small R/dplyr evaluator of ``scripts/rmini.py``, every table a
``test_low``/``test_high`` call compares against with a CTCAE grading metadata
(``atoxgr_criteria_ctcv4/5/6`` for SI units, ``..._uscv`` for conventional units, or both bound
together): literal ``tibble::tribble`` tables and the pipelines admiral builds from them
(``mutate`` of units and values, ``filter``, ``bind_rows``; each ``test_that`` block is its own
scope, as in R). Each output row cites the admiral test (``test_that`` title and the line of the
``test_low``/``test_high`` call), the table and its ``TESTNUM``, and says which metadata
(``meta``: ``si``, ``uscv``, ``si+uscv``) and abnormal-baseline indicator admiral graded it
with. No admiral code is copied: only the input values and the expected grades.

``unit_check`` is the unit (``|``-separated when several) admiral's metadata checks the value's unit
against for that term, version and metadata (its ``UNIT_CHECK``, read from admiral's
``data-raw/adlb_grading/ncictcaev<4|5|6>[_uscv].json``; empty: no unit check).

Run: ``python scripts/port_admiral_vectors.py /path/to/test-derive_var_atoxgr.R /path/to/data-raw/adlb_grading``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rmini import NA, Unsupported, parse, table

OUT = Path(__file__).resolve().parents[1] / "tests" / "criteria" / "fixtures" / "admiral_ctcae_vectors.csv"
COLUMNS = ("admiral_test", "admiral_line", "tribble", "testnum", "version", "meta", "direction", "term", "aval",
           "anrlo", "anrhi", "base", "bnrind", "high_indicator", "low_indicator", "pchg", "avalu", "unit_check", "expected")
METAS = {f"atoxgr_criteria_ctcv{v}{s}": {(v, "uscv" if s else "si")} for v in "456" for s in ("", "_uscv")}
VERSIONS = {"4": "4.03", "5": "5.0", "6": "6.0"}


def _fmt(x: Any) -> str:
    if x is NA or x is None:
        return ""
    if isinstance(x, float):
        y = float(f"{x:.15g}")  # admiral compares at 15 significant digits
        return str(int(y)) if y.is_integer() else repr(y)
    return str(x)


def _name(node: Any) -> str | None:
    return node[1][1] if node[0] == "call" and node[1][0] == "name" else None


def _meta_of(node: Any, metas: dict[str, set[tuple[str, str]]]) -> set[tuple[str, str]] | None:
    """The grading metadata an expression denotes (names and bind_rows of them), else None."""
    if node[0] == "name":
        return metas.get(node[1])
    parts = ([node[2], node[3]] if node[0] == "bin" and node[1] == "%>%"
             else [a for _, a in node[2]] if _name(node) in ("bind_rows", "dplyr::bind_rows") else None)
    if parts is None:
        return None
    found = [_meta_of(p, metas) for p in parts]
    if any(f is None for f in found):
        return None
    return set().union(*found)  # type: ignore[arg-type]


def unit_checks(folder: Path) -> dict[tuple[str, str, str], set[str]]:
    """(term upper-case, version digit, "si"/"uscv") -> admiral's UNIT_CHECK values for it."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for v in "456":
        for system, suffix in (("si", ""), ("uscv", "_uscv")):
            for r in json.loads((folder / f"ncictcaev{v}{suffix}.json").read_text(encoding="utf-8")):
                units = out.setdefault((r["TERM"].upper(), v, system), set())
                if r.get("UNIT_CHECK"):
                    units.add(r["UNIT_CHECK"])
    return out


class Porter:
    def __init__(self, src: str, units: dict[tuple[str, str, str], set[str]]) -> None:
        self.src = src
        self.units = units
        self.rows: list[dict[str, str]] = []
        self.unsupported: list[tuple[str, str, str]] = []

    def line(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def run(self, stmts: list[Any], env: dict[str, list], metas: dict[str, set], title: str) -> None:
        for st in stmts:
            if st[0] == "assign" and st[1][0] == "name":
                name = st[1][1]
                meta = _meta_of(st[2], metas)
                if meta is not None:
                    metas[name] = meta
                    continue
                try:
                    env[name] = table(st[2], env)
                except Unsupported as e:
                    env.pop(name, None)
                    self.unsupported.append((title, name, str(e)))
            elif _name(st) == "test_that":
                args = st[2]
                body = args[1][1]
                if args[0][1][0] != "str" or body[0] != "block":
                    continue
                self.run(body[1], dict(env), dict(metas), args[0][1][1])
            elif _name(st) in ("test_low", "test_high"):
                self.record(st, env, metas, title)

    def record(self, st: Any, env: dict[str, list], metas: dict[str, set], title: str) -> None:
        args = dict(st[2])
        meta = _meta_of(args["meta"], metas)
        if not meta or len({v for v, _ in meta}) != 1:
            return  # DAIDS, or an unknown metadata
        (version,) = {v for v, _ in meta}
        systems = "+".join(sorted({s for _, s in meta}, key=["si", "uscv"].index))
        direction = "low" if _name(st) == "test_low" else "high"
        expected_node = args["expected"]
        try:
            data = table(expected_node, env)
        except Unsupported as e:
            self.unsupported.append((title, str(expected_node), str(e)))
            return
        high = args.get("high", ("str", "HIGH"))[1]
        low = args.get("low", ("str", "LOW"))[1]
        line = self.line(st[3])
        for r in data:
            term = r.get("ATOXDSCL" if direction == "low" else "ATOXDSCH", NA)
            if term is NA or term == "Not a term":
                continue
            self.rows.append({
                "admiral_test": title, "admiral_line": str(line),
                "tribble": expected_node[1] if expected_node[0] == "name" else "expr",
                "testnum": _fmt(r.get("TESTNUM")), "version": VERSIONS[version], "meta": systems,
                "direction": direction, "term": term,
                **{k.lower(): _fmt(r.get(k)) for k in ("AVAL", "ANRLO", "ANRHI", "BASE", "BNRIND", "PCHG", "AVALU")},
                "high_indicator": high, "low_indicator": low,
                "unit_check": "|".join(sorted(set().union(*(
                    self.units.get((str(term).upper(), version, system), set()) for _, system in meta)))),
                "expected": _fmt(r.get("ATOXGRL" if direction == "low" else "ATOXGRH")),
            })


def main() -> None:
    src = Path(sys.argv[1]).read_text(encoding="utf-8")
    porter = Porter(src, unit_checks(Path(sys.argv[2])))
    porter.run(parse(src), {}, {k: set(v) for k, v in METAS.items()}, "")
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(porter.rows)
    calls = {(r["admiral_test"], r["admiral_line"]) for r in porter.rows}
    print(f"{len(porter.rows)} vectors from {len(calls)} admiral test calls -> {OUT}")
    for title, name, why in porter.unsupported:
        print(f"not evaluated: {title or '(top level)'}: {name}: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
