"""A tiny evaluator for the R/dplyr subset admiral's CTCAE tests build their expected tables with.

Used by ``scripts/port_admiral_vectors.py`` only (not part of the package). It reads R source as
data: ``tibble::tribble(...)`` literals and the pipelines built on them (``%>%`` with ``mutate``,
``filter``, ``bind_rows``, ``select``), with R's NA semantics for the few functions those
pipelines use (``if_else``, ``is.na``, ``toupper``/``str_to_upper``, ``%in%``, ``c``, arithmetic,
comparison, ``&``/``|``/``!``, ``case_when``). Anything else raises ``Unsupported``; the porter then leaves that
table out (and says so) rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Unsupported(Exception):
    """R code outside the subset this evaluator understands."""


class _NA:
    """R's NA: propagates through arithmetic and comparison."""

    _inst: _NA | None = None

    def __new__(cls) -> _NA:
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "NA"

    def __bool__(self) -> bool:
        raise Unsupported("NA used as a condition")


NA = _NA()

Row = dict[str, Any]
Table = list[Row]

# ---- tokens ------------------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<op>%[^%]*%|<-|<=|>=|==|!=|&&|\|\||::|[-+*/^<>!&|~(){}\[\],=$:])
  | (?P<name>[A-Za-z.][A-Za-z0-9._]*|`[^`]+`)
""", re.X)


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    pos: int


def tokenize(src: str) -> list[Tok]:
    out: list[Tok] = []
    i = 0
    while i < len(src):
        m = TOKEN.match(src, i)
        if not m:
            raise Unsupported(f"cannot tokenize at {src[i:i + 20]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Tok(kind, m.group(), i))
        i = m.end()
    out.append(Tok("eof", "", len(src)))
    return out


# ---- parser (R precedence, low to high) --------------------------------------------------------
# nodes: ("num", x) ("str", s) ("name", n) ("call", fname, [(argname|None, node)]) ("bin", op, a, b)
# ("un", op, a) ("assign", name, node) ("block", [nodes]) ("formula", node) ("func",)

BINARY = [("<-",), ("~",), ("||", "|"), ("&&", "&"), ("==", "!=", "<", ">", "<=", ">="), ("+", "-"),
          ("*", "/"), ("%",), (":",)]


class Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.t = toks
        self.i = 0
        self.depth = 0  # inside () or []: newlines are whitespace

    def peek(self) -> Tok:
        j = self.i
        while self.depth and self.t[j].kind == "nl":
            j += 1
        return self.t[j]

    def next(self) -> Tok:
        while self.depth and self.t[self.i].kind == "nl":
            self.i += 1
        tok = self.t[self.i]
        self.i += 1
        return tok

    def skip_nl(self) -> None:
        while self.t[self.i].kind == "nl":
            self.i += 1

    def expect(self, text: str) -> None:
        tok = self.next()
        if tok.text != text:
            raise Unsupported(f"expected {text!r} at {tok.pos}, got {tok.text!r}")

    def statements(self, end: str | None) -> list[Any]:
        out = []
        while True:
            while self.t[self.i].kind == "nl" or self.t[self.i].text == ";":
                self.i += 1
            tok = self.t[self.i]
            if tok.kind == "eof" or (end is not None and tok.text == end):
                return out
            out.append(self.expr(0))

    def expr(self, level: int) -> Any:
        if level == len(BINARY):
            return self.unary()
        left = self.expr(level + 1)
        while True:
            tok = self.peek()
            ops = BINARY[level]
            match = tok.kind == "op" and (tok.text in ops or (ops == ("%",) and tok.text.startswith("%")))
            if not match:
                return left
            self.next()
            self.skip_nl()  # an operator at line end continues the expression
            right = self.expr(level if tok.text == "<-" else level + 1)
            if tok.text == "<-":
                return ("assign", left, right)
            left = ("bin", tok.text, left, right)

    def unary(self) -> Any:
        tok = self.peek()
        if tok.text in ("-", "+", "!"):
            self.next()
            return ("un", tok.text, self.unary())
        if tok.text == "~":
            self.next()
            return ("formula", self.unary())
        return self.postfix(self.atom())

    def atom(self) -> Any:
        tok = self.next()
        if tok.kind == "num":
            return ("num", float(tok.text.rstrip("L")))
        if tok.kind == "str":
            return ("str", bytes(tok.text[1:-1], "utf-8").decode("unicode_escape"))
        if tok.kind == "name":
            if tok.text == "function":
                self.depth += 1
                self.expect("(")
                self._skip_balanced("(", ")")
                self.depth -= 1
                self.skip_nl()
                self.atom()
                return ("func",)
            return ("name", tok.text.strip("`"))
        if tok.text == "(":
            self.depth += 1
            inner = self.expr(0)
            self.expect(")")
            self.depth -= 1
            return inner
        if tok.text == "{":
            saved, self.depth = self.depth, 0
            body = self.statements("}")
            self.expect("}")
            self.depth = saved
            return ("block", body)
        raise Unsupported(f"unexpected {tok.text!r} at {tok.pos}")

    def _skip_balanced(self, open_: str, close: str) -> None:
        n = 1
        while n:
            tok = self.next()
            if tok.kind == "eof":
                raise Unsupported("unbalanced")
            n += (tok.text == open_) - (tok.text == close)

    def postfix(self, node: Any) -> Any:
        while True:
            tok = self.peek()
            if tok.text == "::":
                self.next()
                node = ("name", f"{node[1]}::{self.next().text}")
            elif tok.text == "(":
                pos = self.next().pos
                self.depth += 1
                args: list[tuple[str | None, Any]] = []
                while self.peek().text != ")":
                    name = None
                    a, b = self.peek(), self.t[self._after_nl(self._index_of_peek() + 1)]
                    if a.kind in ("name", "str") and b.text == "=":
                        self.next()
                        self.next()
                        name = a.text.strip("`\"'")
                    args.append((name, self.expr(0)))
                    if self.peek().text == ",":
                        self.next()
                self.expect(")")
                self.depth -= 1
                node = ("call", node, args, pos)
            elif tok.text in ("[", "$"):
                raise Unsupported("indexing")
            else:
                return node

    def _index_of_peek(self) -> int:
        j = self.i
        while self.depth and self.t[j].kind == "nl":
            j += 1
        return j

    def _after_nl(self, j: int) -> int:
        while self.t[j].kind == "nl":
            j += 1
        return j


def parse(src: str) -> list[Any]:
    return Parser(tokenize(src)).statements(None)


# ---- values --------------------------------------------------------------------------------------

def _na(*xs: Any) -> bool:
    return any(x is NA for x in xs)


def _arith(op: str) -> Callable[[Any, Any], Any]:
    def f(a: Any, b: Any) -> Any:
        if _na(a, b) or (op == "/" and b == 0):
            return NA
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else NA}[op]
    return f


def _cmp(op: str) -> Callable[[Any, Any], Any]:
    def f(a: Any, b: Any) -> Any:
        if _na(a, b):
            return NA
        return {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    return f


def _or(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    return NA if _na(a, b) else False


def _and(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    return NA if _na(a, b) else True


BIN: dict[str, Callable[[Any, Any], Any]] = {
    **{op: _arith(op) for op in "+-*/"}, **{op: _cmp(op) for op in ("==", "!=", "<", ">", "<=", ">=")},
    "|": _or, "||": _or, "&": _and, "&&": _and,
    "%in%": lambda a, b: a in [x for x in b if x is not NA] if a is not NA else (NA in b),
}
CONST = {"NA": NA, "NA_character_": NA, "NA_real_": NA, "NA_integer_": NA, "TRUE": True, "FALSE": False,
         "T": True, "F": False}


def _if_else(c: Any, a: Any, b: Any) -> Any:
    return NA if c is NA else (a if c else b)


def _upper(x: Any) -> Any:
    return NA if x is NA else str(x).upper()


FUNCS: dict[str, Callable[..., Any]] = {
    "if_else": _if_else, "ifelse": _if_else, "is.na": lambda x: x is NA, "toupper": _upper,
    "str_to_upper": _upper, "c": lambda *xs: list(xs),
}


def value(node: Any, row: Row) -> Any:
    """Evaluate an R expression on one row (columns are names)."""
    kind = node[0]
    if kind in ("num", "str"):
        return node[1]
    if kind == "name":
        if node[1] in CONST:
            return CONST[node[1]]
        if node[1] in row:
            return row[node[1]]
        raise Unsupported(f"unknown column or constant {node[1]}")
    if kind == "bin":
        return BIN[node[1]](value(node[2], row), value(node[3], row))
    if kind == "un":
        x = value(node[2], row)
        if node[1] == "!":
            return NA if x is NA else (not x)
        return NA if x is NA else (-x if node[1] == "-" else x)
    if kind == "call" and node[1][0] == "name" and node[1][1] == "case_when":
        for _, arm in node[2]:
            if arm[0] != "bin" or arm[1] != "~":
                raise Unsupported("case_when arm without ~")
            if value(arm[2], row) is True:
                return value(arm[3], row)
        return NA
    if kind == "call" and node[1][0] == "name" and node[1][1] in FUNCS:
        if any(name for name, _ in node[2]):
            raise Unsupported(f"named arguments to {node[1][1]}")
        return FUNCS[node[1][1]](*(value(a, row) for _, a in node[2]))
    raise Unsupported(f"expression {node[0]} {node[1] if len(node) > 1 else ''}")


# ---- tables and pipelines --------------------------------------------------------------------------

def tribble(args: list[tuple[str | None, Any]]) -> Table:
    cols = [a[1][1] for _, a in args if a[0] == "formula"]
    cells = [a for _, a in args if a[0] != "formula"]
    if not cols or len(cells) % len(cols):
        raise Unsupported("ragged tribble")
    return [{c: value(cells[i + j], {}) for j, c in enumerate(cols)} for i in range(0, len(cells), len(cols))]


def _call_name(node: Any) -> str:
    if node[0] != "call" or node[1][0] != "name":
        raise Unsupported(f"not a call: {node[0]}")
    return node[1][1]


def table(node: Any, env: dict[str, Table]) -> Table:
    """Evaluate a table-valued expression (a tribble, a name, or a pipeline)."""
    if node[0] == "name":
        if node[1] not in env:
            raise Unsupported(f"unknown table {node[1]}")
        return [dict(r) for r in env[node[1]]]
    if node[0] == "bin" and node[1] == "%>%":
        return verb(node[3], table(node[2], env), env)
    name = _call_name(node)
    if name == "tibble::tribble":
        return tribble(node[2])
    if name in ("bind_rows", "dplyr::bind_rows"):
        out: Table = []
        for _, a in node[2]:
            out += table(a, env)
        return out
    raise Unsupported(f"table function {name}")


def verb(node: Any, rows: Table, env: dict[str, Table]) -> Table:
    name = _call_name(node)
    args = node[2]
    if name == "mutate":
        for r in rows:  # dplyr: later assignments see earlier ones
            for col, expr in args:
                if col is None:
                    raise Unsupported("unnamed mutate argument")
                r[col] = value(expr, r)
        return rows
    if name == "filter":
        keep = []
        for r in rows:
            ok = True
            for _, expr in args:
                v = value(expr, r)
                ok = ok and v is True
            if ok:
                keep.append(r)
        return keep
    if name in ("bind_rows", "dplyr::bind_rows"):
        for _, a in args:
            rows = rows + table(a, env)
        return rows
    if name == "select":
        drop = []
        for _, a in args:
            if a[0] != "un" or a[1] != "-" or a[2][0] != "name":
                raise Unsupported("select other than -COL")
            drop.append(a[2][1])
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]
    raise Unsupported(f"verb {name}")
