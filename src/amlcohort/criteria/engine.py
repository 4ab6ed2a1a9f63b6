"""The rule engine: clinical rule tables (CSV data files) compiled to Ibis expressions.

A rule file has one row per *condition*::

    ruleset,version,rule_id,outcome,priority,clause,variable,op,value,ref,factor,source,note
    ctcae.alt_increased,4.03,alt.g3,3,1,1,value,>,,uln,5,"CTCAE v4.03: >5.0-20.0 x ULN",

* All conditions of one ``(rule_id, clause)`` must hold together (AND); the clauses of one
  ``rule_id`` are alternatives (OR). Rules are tried in ``priority`` order (lowest first);
  the first rule that holds gives the outcome.
* A condition compares ``variable`` with either the literal ``value`` or ``ref * factor``
  (``ref`` is another variable, e.g. ``uln``; ``factor`` defaults to 1).
  Operators: ``< <= > >= == != in not_in matches is_true is_false is_null not_null``
  (``in``/``not_in`` take ``|``-separated values; ``matches`` a regular expression searched
  anywhere in the text, e.g. in an ISCN karyotype).
* Numeric comparisons are decimal-exact: both sides are rounded to ``DECIMAL_PLACES`` (9)
  decimal places before comparing, so ``factor x limit`` computed in binary floating point
  (1.5 x 1.2 = 1.7999999999999998) does not move a boundary. pharmaverse admiral rounds both
  sides to 15 significant digits instead; the two agree for laboratory values (< 10^6, at most
  6 decimals).
* Missing inputs follow three-valued logic: a rule whose truth cannot be decided because an
  input is missing, before any earlier rule held, makes the result *not evaluable*, and the
  missing inputs of that rule are named. Nothing is guessed.

The same rules serve a whole cohort (:func:`apply_rules`, which adds the outcome, the deciding
rule and the missing inputs as columns, the rule set's CASE computed once per row; or
:func:`compile_rules`, the three as expressions; any Ibis backend) and a single set of values
(:func:`evaluate`, plain Python; :func:`evaluate_sql`, the compiled SQL on a one-row table), and
the tests check that the paths agree, so the rule that a test checks is the rule a derivation runs.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis.common.exceptions import IbisError

from amlcohort.problems import InputError, Problem

NOT_EVALUABLE = "not_evaluable"
# Numeric comparisons are made on both sides rounded to this many decimal places (half away from
# zero), so a value exactly on a "factor x limit" boundary is on it: 1.8 vs 1.5 x 1.2 (binary
# 1.7999999999999998) compares equal. Single values (:func:`evaluate_fast`) compute factor x limit
# exactly in decimal and round the same way.
DECIMAL_PLACES = 9
_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
NUMERIC_OPS = ("<", "<=", ">", ">=")
OPS = (*NUMERIC_OPS, "==", "!=", "in", "not_in", "matches", "is_true", "is_false", "is_null", "not_null")
RULE_COLUMNS = (
    "ruleset",
    "version",
    "rule_id",
    "outcome",
    "priority",
    "clause",
    "variable",
    "op",
    "value",
    "ref",
    "factor",
    "source",
    "note",
)


@dataclass(frozen=True)
class Condition:
    variable: str
    op: str
    value: float | str | None = None
    ref: str | None = None
    factor: float = 1.0

    @property
    def variables(self) -> tuple[str, ...]:
        return (self.variable,) if self.ref is None else (self.variable, self.ref)

    def describe(self) -> str:
        if self.op in ("is_true", "is_false", "is_null", "not_null"):
            return f"{self.variable} {self.op}"
        rhs = f"{self.factor:g} x {self.ref}" if self.ref else repr(self.value)
        return f"{self.variable} {self.op} {rhs}"


@dataclass(frozen=True)
class Rule:
    """One outcome's rule: alternatives (clauses) of conjunctions (conditions)."""

    rule_id: str
    outcome: str
    priority: int
    clauses: tuple[tuple[Condition, ...], ...]
    source: str

    @property
    def variables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for clause in self.clauses:
            for cond in clause:
                seen.update(dict.fromkeys(cond.variables))
        return tuple(seen)

    def describe(self) -> str:
        return " OR ".join("(" + " AND ".join(c.describe() for c in cl) + ")" for cl in self.clauses)


@dataclass(frozen=True)
class RuleSet:
    """An ordered, versioned set of rules for one decision (e.g. CTCAE v4.03 ALT increased)."""

    name: str
    version: str
    rules: tuple[Rule, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            seen.update(dict.fromkeys(rule.variables))
        return tuple(seen)

    def variable_types(self) -> dict[str, str]:
        """Ibis type of each input, inferred from how the rules use it."""
        types: dict[str, str] = {}
        for rule in self.rules:
            for clause in rule.clauses:
                for c in clause:
                    if c.op in ("is_true", "is_false"):
                        types[c.variable] = "boolean"
                    elif c.op in NUMERIC_OPS or isinstance(c.value, float):
                        types.setdefault(c.variable, "float64")
                    elif c.op in ("==", "!=", "in", "not_in", "matches"):
                        types.setdefault(c.variable, "string")
                    if c.ref:
                        types[c.ref] = "float64"
        return {v: types.get(v, "float64") for v in self.variables}

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(f"rule set {self.name} v{self.version} has no rule {rule_id!r}")


# ---- loading -------------------------------------------------------------------------------


def _parse_value(raw: str) -> float | str | None:
    raw = raw.strip()
    if raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        return raw


def parse_rules(text: str, origin: str) -> dict[tuple[str, str], RuleSet]:
    """Parse rule-file text; raises :class:`InputError` naming file, row, column and value."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in RULE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"rule file {origin}",
            [
                Problem(
                    "error",
                    origin,
                    f"missing column(s) {missing}; a rule file has {list(RULE_COLUMNS)}",
                    code="rules.columns",
                )
            ],
        )
    problems: list[Problem] = []
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for i, row in enumerate(reader, start=1):

        def bad(column: str, reason: str, i: int = i, row: dict[str, str] = row) -> None:
            problems.append(Problem("error", origin, reason, i, column, row.get(column), "rules.value"))

        if row["op"] not in OPS:
            bad("op", f"unknown operator; allowed: {' '.join(OPS)}")
            continue
        try:
            priority, clause = int(row["priority"]), int(row["clause"] or 1)
            factor = float(row["factor"]) if (row["factor"] or "").strip() else 1.0
        except ValueError:
            bad("priority", "priority and clause must be whole numbers, factor a number")
            continue
        if not row["variable"]:
            bad("variable", "every condition needs a variable")
            continue
        value = _parse_value(row["value"] or "")
        ref = (row["ref"] or "").strip() or None
        needs_rhs = row["op"] not in ("is_true", "is_false", "is_null", "not_null")
        if needs_rhs and value is None and ref is None:
            bad("value", f"operator {row['op']!r} needs a value or a ref")
            continue
        if row["op"] in NUMERIC_OPS and isinstance(value, str):
            bad("value", f"operator {row['op']!r} needs a number")
            continue
        key = (row["ruleset"], row["version"])
        rule = rows.setdefault(key, {}).setdefault(
            row["rule_id"],
            {
                "outcome": row["outcome"],
                "priority": priority,
                "source": row["source"],
                "clauses": {},
            },
        )
        if rule["outcome"] != row["outcome"] or rule["priority"] != priority:
            bad("rule_id", "rows of one rule_id must share outcome and priority")
            continue
        cond = Condition(row["variable"].strip(), row["op"], value, ref, factor)
        rule["clauses"].setdefault(clause, []).append(cond)
    if problems:
        raise InputError(f"rule file {origin}", problems)
    out: dict[tuple[str, str], RuleSet] = {}
    for (name, version), rules in rows.items():
        built = tuple(
            sorted(
                (
                    Rule(
                        rid,
                        r["outcome"],
                        r["priority"],
                        tuple(tuple(c) for _, c in sorted(r["clauses"].items())),
                        r["source"],
                    )
                    for rid, r in rules.items()
                ),
                key=lambda r: r.priority,
            )
        )
        out[(name, version)] = RuleSet(name, version, built)
    return out


@functools.cache
def load_rules(filename: str) -> dict[tuple[str, str], RuleSet]:
    """Load a rule file shipped in ``amlcohort/rules/`` (cached)."""
    text = resources.files("amlcohort.rules").joinpath(filename).read_text(encoding="utf-8")
    return parse_rules(text, filename)


def ruleset(filename: str, name: str, version: str) -> RuleSet:
    book = load_rules(filename)
    try:
        return book[(name, version)]
    except KeyError:
        known = sorted(f"{n} v{v}" for n, v in book)
        raise KeyError(f"{filename} has no rule set {name!r} version {version!r}; it has {known}") from None


# ---- compiling -----------------------------------------------------------------------------


def _operand_keys(c: Condition) -> tuple[tuple, tuple | None] | None:
    """The keys of a numeric comparison's two rounded operands (see :func:`comparison_operands`):
    the variable's, and ``ref * factor``'s (None for a literal); None for other conditions."""
    if c.op in NUMERIC_OPS or (c.op in ("==", "!=") and not isinstance(c.value, str)):
        return ("var", c.variable), (("ref", c.ref, c.factor) if c.ref else None)
    return None


def _operand_expr(key: tuple, col: Mapping[str, ir.Value]) -> ir.FloatingValue:
    # decimal-exact boundaries: both sides rounded to DECIMAL_PLACES (see module docstring)
    if key[0] == "var":
        return _three_valued(col[key[1]]).cast("float64").round(DECIMAL_PLACES)
    return (_three_valued(col[key[1]]) * key[2]).round(DECIMAL_PLACES)


def comparison_operands(rules: RuleSet, col: Mapping[str, ir.Value]) -> dict[tuple, ir.Value]:
    """Each distinct operand of the rule set's numeric comparisons, rounded as the comparison
    rounds it: a variable (``("var", name)``) or a reference times its factor (``("ref", name,
    factor)``). Kept as columns (see :func:`with_decision`), each is computed once a row, not once
    a condition."""
    out: dict[tuple, ir.Value] = {}
    for rule in rules.rules:
        for clause in rule.clauses:
            for c in clause:
                keys = _operand_keys(c)
                for key in keys or ():
                    if key is not None and key not in out:
                        out[key] = _operand_expr(key, col)
    return out


def _three_valued(x: ir.Value) -> ir.Value:
    """``x``, but a bare NULL literal wrapped so that it compares as SQL's NULL: Ibis turns
    ``NULL == y`` into ``y IS NULL`` (true or false), where the rules need "unknown"."""
    op = x.op()
    if isinstance(op, ops.Literal) and op.value is None:
        return ibis.ifelse(ibis.literal(False), x, x)
    return x


def _condition_expr(c: Condition, col: Mapping[str, ir.Value],
                    operands: Mapping[tuple, ir.Value] | None = None) -> ir.BooleanValue:
    x = _three_valued(col[c.variable])
    if c.op == "is_true":
        return x == ibis.literal(True)
    if c.op == "is_false":
        return x == ibis.literal(False)
    if c.op == "is_null":
        return x.isnull()
    if c.op == "not_null":
        return x.notnull()
    if c.op == "matches":
        return x.re_search(str(c.value))
    if c.op in ("in", "not_in"):
        options = [s.strip() for s in str(c.value).split("|")]
        return x.isin(options) if c.op == "in" else x.notin(options)
    keys = _operand_keys(c)
    if keys is not None:
        xk, rk = keys
        x = operands[xk] if operands is not None else _operand_expr(xk, col)
        if rk is None:
            rhs: Any = _round_literal(c.value)
        else:
            rhs = operands[rk] if operands is not None else _operand_expr(rk, col)
    else:
        rhs = _three_valued(col[c.ref]) * c.factor if c.ref else c.value
    return {
        "<": x < rhs,
        "<=": x <= rhs,
        ">": x > rhs,
        ">=": x >= rhs,
        "==": x == rhs,
        "!=": x != rhs,
    }[c.op]


def _round_literal(value: object) -> object:
    if isinstance(value, float):
        return float(Decimal(repr(value)).quantize(_QUANTUM, rounding=ROUND_HALF_UP))
    return value


def _rule_expr(rule: Rule, col: Mapping[str, ir.Value],
               operands: Mapping[tuple, ir.Value] | None = None) -> ir.BooleanValue:
    clauses = []
    for clause in rule.clauses:
        expr = _condition_expr(clause[0], col, operands)
        for c in clause[1:]:
            expr = expr & _condition_expr(c, col, operands)
        clauses.append(expr)
    out = clauses[0]
    for e in clauses[1:]:
        out = out | e
    return out


def _missing_expr(
    variables: tuple[str, ...], col: Mapping[str, ir.Value], names: Mapping[str, str]
) -> ir.StringValue:
    # each missing input as ";name", then the first ";" cut off: no regular expression per row
    parts = [
        ibis.ifelse(col[v].isnull(), ibis.literal(";" + names.get(v, v)), ibis.literal("")) for v in variables
    ]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined.concat(p)
    return joined.substr(1)


@dataclass(frozen=True)
class Compiled:
    """Ibis expressions for one rule set over one table (see :func:`compile_rules`)."""

    outcome: ir.StringValue
    rule_id: ir.StringValue
    missing: ir.StringValue


def decision_expr(rules: RuleSet, col: Mapping[str, ir.Value]) -> ir.IntegerValue:
    """The whole rule set in one CASE over ``col`` (rule variable -> value, a column or any
    expression): ``k`` when rule ``k`` (1-based, priority order) is the first that holds, ``-k``
    when rule ``k`` is the first that cannot be decided for missing inputs, 0 when no rule holds
    (see :func:`decided_by`, :func:`decision_outputs`)."""
    return decision_from_holds([_rule_expr(rule, col) for rule in rules.rules])


def decision_from_holds(holds: Sequence[ir.BooleanValue]) -> ir.IntegerValue:
    """The :func:`decision_expr` value from each rule's truth (True, False or NULL), in priority
    order: a CASE over ``holds``, which may be expressions or columns computed once a row."""
    cases: list[tuple[ir.BooleanValue, int]] = []
    for k, h in enumerate(holds, start=1):
        # CASE WHEN treats NULL as not true: "holds" is tried first, then "undecided"
        cases += [(h, k), (h.isnull(), -k)]
    return ibis.cases(*cases, else_=ibis.literal(0, "int32")).cast("int32")


def backend_name(expr: ir.Expr) -> str | None:
    """The name of the Ibis backend ``expr`` lives on (``"duckdb"``, ``"sqlite"``, ``"postgres"``,
    ``"pyspark"``; None for an unbound table). A derivation asks only where an engine lacks what
    the plain expression needs, or cannot run it."""
    try:
        return ibis.get_backend(expr).name
    except IbisError:  # an unbound table: no backend to ask
        return None


def parser_depth_limited(table: ir.Table) -> bool:
    """Whether ``table`` lives on SQLite (whose parser stack overflows on deeply nested SQL)."""
    return backend_name(table) == "sqlite"


#: The LIMIT of :func:`evaluated_once`'s fence: more rows than any table has.
FENCE_ROWS = 2**62


def evaluated_once(table: ir.Table) -> ir.Table:
    """``table`` such that the engine computes its columns once a row before a later projection
    reads them. PostgreSQL pulls a subquery in FROM up into the query above it and substitutes its
    column expressions wherever they are read: a rule set's CASE read by each branch of the
    outcome, rule id and missing-inputs CASEs (and the ELN reasons read each rule id once per rule)
    was evaluated hundreds of times a row (the ELN risk of 10^4 patients: 43 s instead of 1 s).
    A subquery with a LIMIT is never pulled up, so on PostgreSQL this adds one larger than any
    table (no row is dropped; no order is implied). Other engines keep ``table`` as it is."""
    if backend_name(table) == "postgres":
        return table.limit(FENCE_ROWS)
    return table


def with_decision(table: ir.Table, rules: RuleSet, inputs: Callable[[ir.Table], Mapping[str, ir.Value]],
                  name: str) -> ir.Table:
    """``table`` with the :func:`decision_expr` value in column ``name``, computed in three
    projections so that the database evaluates each part once a row: the rounded operands of the
    numeric comparisons (:func:`comparison_operands`), each rule's truth, then the CASE over them.
    (One CASE with every rule inline evaluates a rule twice, for "holds" and "undecided", and rounds
    an input once per condition: at 5.6 x 10^7 laboratory values, most of them walking every rule
    to grade 0, that was most of the grading's time.) ``inputs`` gives the rule variables' values
    over a table with ``table``'s columns.

    On SQLite the decision is one projection (:func:`decision_expr`): its parser takes only so many
    nested SELECTs, and the CTCAE grades stack forty-odd such parts."""
    if parser_depth_limited(table):
        return table.mutate(**{name: decision_expr(rules, inputs(table))})
    operands = comparison_operands(rules, inputs(table))
    op_names = {key: f"_op{i}__{name}" for i, key in enumerate(operands)}
    t = evaluated_once(table.mutate(**{op_names[k]: e for k, e in operands.items()})) if operands else table
    col = inputs(t)
    rounded = {k: t[n] for k, n in op_names.items()}
    holds = {f"_holds{k}__{name}": _rule_expr(rule, col, rounded)
             for k, rule in enumerate(rules.rules, start=1)}
    t = evaluated_once(t.mutate(**holds))
    t = t.mutate(**{name: decision_from_holds([t[h] for h in holds])})
    return t.drop(*op_names.values(), *holds)


def decision_outputs(rules: RuleSet, decision: ir.IntegerValue, col: Mapping[str, ir.Value],
                     names: Mapping[str, str]) -> tuple[ir.StringValue, ir.StringValue, ir.StringValue]:
    """outcome, rule_id and missing as small CASEs over a :func:`decision_expr` value (read, e.g.,
    from the column it was kept in); ``col`` gives the rule variables' values (for the missing
    inputs) and ``names`` what the missing-inputs text calls them (default: the variable)."""
    null_str = ibis.null("string")
    by_outcome: dict[str, list[int]] = {}
    for k, rule in enumerate(rules.rules, start=1):
        by_outcome.setdefault(rule.outcome, []).append(k)
    outcome = ibis.cases(
        (decision < 0, ibis.literal(NOT_EVALUABLE)),
        *[(decision.isin(ks), ibis.literal(o)) for o, ks in by_outcome.items()],
        else_=null_str,
    )
    magnitude = decision.abs()
    rule_id = ibis.cases(
        *[(magnitude == k, ibis.literal(r.rule_id)) for k, r in enumerate(rules.rules, start=1)],
        else_=null_str,
    )
    by_inputs: dict[tuple[str, ...], list[int]] = {}  # rules with the same inputs share one text
    for k, rule in enumerate(rules.rules, start=1):
        by_inputs.setdefault(rule.variables, []).append(-k)
    missing = ibis.cases(
        *[(decision.isin(ks), _missing_expr(v, col, names)) for v, ks in by_inputs.items()],
        else_=null_str,
    )
    return outcome, rule_id, missing


def _columns_of(rules: RuleSet, table: ir.Table, columns: Mapping[str, str] | None
                ) -> tuple[dict[str, ir.Value], dict[str, str]]:
    columns = dict(columns or {})
    names = {v: columns.get(v, v) for v in rules.variables}
    absent = [n for n in names.values() if n not in table.columns]
    if absent:
        raise KeyError(f"rule set {rules.name} v{rules.version} needs column(s) {absent}")
    return {v: table[n] for v, n in names.items()}, names


def compile_rules(rules: RuleSet, table: ir.Table, columns: Mapping[str, str] | None = None) -> Compiled:
    """Compile ``rules`` over ``table``; ``columns`` maps rule variables to table columns.

    ``outcome`` is the first rule's outcome that holds, ``"not_evaluable"`` when a rule could
    not be decided for missing inputs before one held, and NULL when no rule holds.
    ``missing`` names (by table column) the inputs that left the result undecided.

    Each output holds every rule's condition in its own CASE. A caller that needs more than one
    output should prefer :func:`apply_rules` (the conditions once per row, in a column).
    """
    col, names = _columns_of(rules, table, columns)
    outcome_cases: list[tuple[ir.BooleanValue, Any]] = []
    rule_cases: list[tuple[ir.BooleanValue, Any]] = []
    missing_cases: list[tuple[ir.BooleanValue, Any]] = []
    null_str = ibis.null("string")
    for rule in rules.rules:
        holds = _rule_expr(rule, col)
        # CASE WHEN treats NULL as not true: "holds" is tried first, then "undecided"
        outcome_cases += [(holds, ibis.literal(rule.outcome)), (holds.isnull(), ibis.literal(NOT_EVALUABLE))]
        rule_cases += [(holds, ibis.literal(rule.rule_id)), (holds.isnull(), ibis.literal(rule.rule_id))]
        missing_cases += [(holds, null_str), (holds.isnull(), _missing_expr(rule.variables, col, names))]
    return Compiled(
        outcome=ibis.cases(*outcome_cases, else_=null_str),
        rule_id=ibis.cases(*rule_cases, else_=null_str),
        missing=ibis.cases(*missing_cases, else_=null_str),
    )


def rule_holds(rule: Rule, table: ir.Table, columns: Mapping[str, str] | None = None) -> ir.BooleanValue:
    """Whether ``rule`` holds on each row of ``table``: True, False, or NULL when a missing input
    leaves it undecided (the same three-valued logic as :func:`compile_rules`)."""
    columns = dict(columns or {})
    return _rule_expr(rule, {v: table[columns.get(v, v)] for v in rule.variables})


def apply_rules(rules: RuleSet, table: ir.Table, columns: Mapping[str, str] | None = None, *,
                outcome: str | None = "_outcome", rule_id: str | None = "_rule_id",
                missing: str | None = "_missing", decision: str | None = None) -> ir.Table:
    """``table`` with the rule set's outcome, rule id and missing inputs added as columns
    (named by ``outcome``, ``rule_id``, ``missing``; None leaves one out).

    The same result as :func:`compile_rules`, but the rule set's CASE is computed once per row as
    a column and the three outputs read it, so the SQL holds each rule once (not once per output):
    smaller SQL, much faster to compile, and within SQLite's parser depth for the CTCAE tables.
    ``decision`` names a column to keep that CASE's value in (see :func:`decided_by`; None:
    not kept).
    """
    col, names = _columns_of(rules, table, columns)
    decision_name = decision or "_decision__" + re.sub(r"\W", "_", rules.name)
    # one projection, not with_decision's three: on the response derivation's rule sets (few
    # numeric comparisons) the three saved no DuckDB CPU at 10^5 patients (11.6 against 11.9-12.3 s)
    t = evaluated_once(table.mutate(**{decision_name: decision_expr(rules, col)}))
    col = {v: t[n] for v, n in names.items()}
    o, r, m = decision_outputs(rules, t[decision_name], col, names)
    wanted = {k: e for k, e in ((outcome, o), (rule_id, r), (missing, m)) if k is not None}
    t = t.mutate(**wanted)
    return t if decision else t.drop(decision_name)


def decided_by(rules: RuleSet, outcome: str) -> tuple[int, ...]:
    """The values of :func:`apply_rules`' ``decision`` column that mean ``outcome``: rule ``k``
    (1-based, priority order) gives ``k`` when it holds first. ``-k``: rule ``k`` was undecided
    for missing inputs (the outcome is ``not_evaluable``); 0: no rule holds (NULL)."""
    return tuple(k for k, rule in enumerate(rules.rules, start=1) if rule.outcome == outcome)


# ---- single values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The result of a rule set on one set of values, with what produced it."""

    outcome: str | None
    rule_id: str | None
    missing: tuple[str, ...]
    ruleset: str
    version: str
    source: str | None
    criterion: str | None

    @property
    def evaluable(self) -> bool:
        return self.outcome not in (None, NOT_EVALUABLE)

    @property
    def reason(self) -> str:
        if self.outcome == NOT_EVALUABLE:
            return f"not evaluable: missing {', '.join(self.missing)} (rule {self.rule_id})"
        if self.outcome is None:
            return "no rule applies"
        return f"{self.rule_id}: {self.criterion} [{self.source}]"


@functools.cache
def _duckdb() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


def evaluate(rules: RuleSet, values: Mapping[str, object]) -> Evaluation:
    """Evaluate ``rules`` on one set of values (missing keys, None and NaN count as missing inputs).

    The single-value path: :func:`evaluate_fast` (plain Python, no SQL compilation, well under a
    millisecond). :func:`evaluate_sql` runs the same rules through the compiled SQL the cohort
    derivations use; ``tests/criteria/test_engine_paths.py`` checks that both agree on every
    rule file's boundaries.
    """
    return evaluate_fast(rules, {k: _none(v) for k, v in values.items()})


def evaluate_sql(rules: RuleSet, values: Mapping[str, object]) -> Evaluation:
    """:func:`evaluate` through :func:`compile_rules` on an in-process DuckDB (the reference path)."""
    unknown = set(values) - set(rules.variables)
    if unknown:
        raise KeyError(
            f"rule set {rules.name} v{rules.version} takes {list(rules.variables)}, not {sorted(unknown)}"
        )
    types = rules.variable_types()
    row = ibis.memtable({v: [values.get(v)] for v in types}, schema=ibis.schema(types))
    compiled = compile_rules(rules, row)
    result = (
        _duckdb()
        .execute(row.select(outcome=compiled.outcome, rule_id=compiled.rule_id, missing=compiled.missing))
        .iloc[0]
    )
    outcome, rule_id = _none(result["outcome"]), _none(result["rule_id"])
    missing = tuple(m for m in (_none(result["missing"]) or "").split(";") if m)
    rule = rules.rule(rule_id) if rule_id else None
    return Evaluation(
        outcome,
        rule_id,
        missing,
        rules.name,
        rules.version,
        rule.source if rule else None,
        rule.describe() if rule else None,
    )


def _none(x: object) -> Any:
    """None for every spelling of "missing": None, NaN, NaT, pandas.NA."""
    if x is None or isinstance(x, str):
        return x
    try:
        return None if bool(x != x) else x
    except TypeError:  # pandas.NA: its comparisons are NA, whose truth value raises
        return None


# ---- single values, in Python (no SQL): the same rules, the same three-valued logic ------------

_Value = Any
_Check = Callable[[Mapping[str, _Value]], "bool | None"]


def _dec(x: object) -> Decimal:
    return Decimal(repr(float(x))) if not isinstance(x, Decimal) else x  # type: ignore[arg-type]


def _q(x: Decimal) -> Decimal:
    return x.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def _py_condition(c: Condition) -> _Check:
    op, var = c.op, c.variable
    if op in ("is_true", "is_false"):
        want = op == "is_true"
        return lambda v: None if v.get(var) is None else bool(v[var]) == want
    if op == "is_null":
        return lambda v: v.get(var) is None
    if op == "not_null":
        return lambda v: v.get(var) is not None
    if op == "matches":
        pattern = re.compile(str(c.value))
        return lambda v: None if v.get(var) is None else bool(pattern.search(str(v[var])))
    if op in ("in", "not_in"):
        options = {s.strip() for s in str(c.value).split("|")}
        inside = op == "in"
        return lambda v: None if v.get(var) is None else (str(v[var]) in options) == inside
    compare = {"<": Decimal.__lt__, "<=": Decimal.__le__, ">": Decimal.__gt__, ">=": Decimal.__ge__,
               "==": Decimal.__eq__, "!=": Decimal.__ne__}[op]
    if isinstance(c.value, str):
        text = c.value
        return lambda v: None if v.get(var) is None else (str(v[var]) == text) == (op == "==")
    ref, factor = c.ref, _dec(c.factor)
    if ref is None:
        literal = _q(_dec(c.value))

        def check_literal(v: Mapping[str, _Value]) -> bool | None:
            x = v.get(var)
            return None if x is None else compare(_q(_dec(x)), literal)
        return check_literal

    def check_ref(v: Mapping[str, _Value]) -> bool | None:
        x, r = v.get(var), v.get(ref)
        return None if x is None or r is None else compare(_q(_dec(x)), _q(_dec(r) * factor))
    return check_ref


def _and(results: list[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def _or(results: list[bool | None]) -> bool | None:
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


@functools.cache
def _python_rules(rules: RuleSet) -> tuple[tuple[Rule, Callable[[Mapping[str, _Value]], bool | None]], ...]:
    """``rules`` compiled once to Python predicates (cached per rule set)."""
    out = []
    for rule in rules.rules:
        clauses = [[_py_condition(c) for c in clause] for clause in rule.clauses]

        def holds(v: Mapping[str, _Value], clauses: list[list[_Check]] = clauses) -> bool | None:
            return _or([_and([check(v) for check in clause]) for clause in clauses])
        out.append((rule, holds))
    return tuple(out)


def evaluate_fast(rules: RuleSet, values: Mapping[str, object]) -> Evaluation:
    """:func:`evaluate` in plain Python: same rules, same three-valued logic, same rounding.

    For single lookups (a clinician's value, a test): no SQL engine, the rule set's predicates
    compiled once and cached. The cohort derivations use :func:`compile_rules`; the tests check
    both give the same outcome on the same inputs.
    """
    unknown = set(values) - set(rules.variables)
    if unknown:
        raise KeyError(
            f"rule set {rules.name} v{rules.version} takes {list(rules.variables)}, not {sorted(unknown)}"
        )
    for rule, holds in _python_rules(rules):
        h = holds(values)
        if h is True:
            return Evaluation(rule.outcome, rule.rule_id, (), rules.name, rules.version, rule.source,
                              rule.describe())
        if h is None:
            missing = tuple(v for v in rule.variables if values.get(v) is None)
            return Evaluation(NOT_EVALUABLE, rule.rule_id, missing, rules.name, rules.version, rule.source,
                              rule.describe())
    return Evaluation(None, None, (), rules.name, rules.version, None, None)
