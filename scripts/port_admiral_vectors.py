"""Port pharmaverse admiral's CTCAE test vectors (data only) to tests/criteria/fixtures/admiral_ctcae_vectors.csv.

Reads ``tests/testthat/test-derive_var_atoxgr.R`` of pharmaverse/admiral (path given as the first
argument) and keeps the rows of every ``tibble::tribble`` that a ``test_low``/``test_high`` call
uses unchanged (no ``%>%`` pipeline) with the SI grading metadata ``atoxgr_criteria_ctcv4/5/6``.
Each output row cites the admiral test (``test_that`` title and line) and the tribble's
``TESTNUM``. No admiral code is copied: only the input values and the expected grades.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "criteria" / "fixtures" / "admiral_ctcae_vectors.csv"
COLUMNS = ("admiral_test", "admiral_line", "tribble", "testnum", "version", "direction", "term", "aval", "anrlo",
           "anrhi", "base", "bnrind", "pchg", "avalu", "expected")


def cell(x: str) -> str:
    x = x.strip()
    if x.startswith("NA") or x == "":
        return ""
    return x.strip('"')


def split_row(line: str) -> list[str]:
    return [c for c in re.findall(r'"[^"]*"|[^,]+', line) if c.strip()]


def definitions(text: str) -> list[tuple[int, str, tuple[list[str], list[list[str]]] | None]]:
    """(offset, name, table or None) for every assignment ``exp_x <- ...``, in file order.

    A ``tibble::tribble`` not piped further gives its table; anything else (a pipeline, a
    ``bind_rows``) gives None: the vectors it makes are not ported.
    """
    out: list[tuple[int, str, tuple[list[str], list[list[str]]] | None]] = []
    for m in re.finditer(r"(exp_[A-Za-z0-9_]+)\s*<-\s*", text):
        name, rest = m.group(1), text[m.end():]
        t = re.match(r"tibble::tribble\((.*?)\n\s*\)(\s*%>%)?", rest, re.S)
        constants: dict[str, str] = {}
        if t and t.group(2):
            # one mutate() setting columns to constants (e.g. AVALU = NA_character_) is applied
            after = rest[t.end():]
            mm = re.match(r"\s*mutate\(((?:\s*\w+\s*=\s*(?:NA_character_|NA_real_|NA|\"[^\"]*\"|-?[0-9.]+)\s*,?)+)\s*\)"
                          r"(\s*%>%)?", after)
            if mm and not mm.group(2):
                for a in re.finditer(r"(\w+)\s*=\s*(NA_character_|NA_real_|NA|\"[^\"]*\"|-?[0-9.]+)", mm.group(1)):
                    constants[a.group(1)] = cell(a.group(2))
            else:
                t = None
        if not t:
            out.append((m.start(), name, None))
            continue
        lines = [ln.split("#")[0].strip() for ln in t.group(1).splitlines()]
        lines = [ln for ln in lines if ln]
        header = [h.strip().lstrip("~") for h in lines[0].split(",") if h.strip()]
        rows = [[cell(c) for c in split_row(ln)] for ln in lines[1:]]
        rows = [r for r in rows if len(r) == len(header)]
        for col, val in constants.items():
            if col in header:
                rows = [[val if h == col else x for h, x in zip(header, r, strict=True)] for r in rows]
            else:
                header, rows = [*header, col], [[*r, val] for r in rows]
        out.append((m.start(), name, (header, rows)))
    return out


def main() -> None:
    text = Path(sys.argv[1]).read_text(encoding="utf-8")
    defs = definitions(text)
    rows = []
    title = ""
    offset = 0
    for i, line in enumerate(text.splitlines(keepends=True), start=1):
        here = offset
        offset += len(line)
        t = re.search(r'test_that\("([^"]+)"', line)
        if t:
            title = t.group(1)
        m = re.search(r"test_(low|high)\(expected = (exp_[A-Za-z0-9_]+), meta = atoxgr_criteria_ctcv([456])\)", line)
        if not m:
            continue
        direction, name, v = m.group(1), m.group(2), m.group(3)
        latest = [d for d in defs if d[1] == name and d[0] < here]
        if not latest or latest[-1][2] is None:
            continue
        header, data = latest[-1][2]  # type: ignore[misc]
        for r in data:
            d = dict(zip(header, r, strict=True))
            term = d.get("ATOXDSCL" if direction == "low" else "ATOXDSCH", "")
            if not term or term == "Not a term":
                continue
            rows.append({
                "admiral_test": title, "admiral_line": i, "tribble": f"{name}@{latest[-1][0]}", "testnum": d.get("TESTNUM", ""),
                "version": {"4": "4.03", "5": "5.0", "6": "6.0"}[v], "direction": direction, "term": term,
                "aval": d.get("AVAL", ""), "anrlo": d.get("ANRLO", ""), "anrhi": d.get("ANRHI", ""),
                "base": d.get("BASE", ""), "bnrind": d.get("BNRIND", ""), "pchg": d.get("PCHG", ""),
                "avalu": d.get("AVALU", ""),
                "expected": d.get("ATOXGRL" if direction == "low" else "ATOXGRH", ""),
            })
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} vectors from {len({r['tribble'] for r in rows})} tribbles -> {OUT}")


if __name__ == "__main__":
    main()
