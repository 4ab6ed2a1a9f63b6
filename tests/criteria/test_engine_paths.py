"""The evaluation paths of the rule engine agree: compiled SQL (cohort derivations: ``apply_rules``,
the rule set's CASE once per row as a column, and ``compile_rules``, three expressions) and plain
Python (single lookups: ``evaluate``, ``grade``).

Every rule set of every rule file is evaluated on the values that sit on, just below and just
above each of its thresholds (and missing), through both paths; outcome, rule and missing inputs
must be identical. The SQL side runs as one query per rule set (all cases as rows).
"""

from __future__ import annotations

import itertools
import math
import random

import ibis
import pytest

from amlcohort.criteria.engine import (
    RuleSet,
    _none,
    apply_rules,
    compile_rules,
    evaluate,
    evaluate_fast,
    evaluate_sql,
    load_rules,
    ruleset,
)

RULE_FILES = ("response.csv", "population.csv", "stopping_rule.csv", "protocol_xu2019.csv",
              "eln_risk.csv", "ctcae_4.03.csv", "ctcae_5.0.csv", "ctcae_6.0.csv")
CASES_PER_SET = 120


def _candidates(rs: RuleSet) -> dict[str, list]:
    """Per input: missing, and every threshold's value on, below and above it (or each option)."""
    types = rs.variable_types()
    out: dict[str, set] = {v: {None} for v in types}
    for rule in rs.rules:
        for clause in rule.clauses:
            for c in clause:
                t = types[c.variable]
                if t == "boolean":
                    out[c.variable] |= {True, False}
                elif t == "string":
                    opts = [s.strip() for s in str(c.value).split("|")] if c.value is not None else []
                    out[c.variable] |= {*opts, "something else"}
                elif c.ref:
                    out[c.ref] |= {1.0, 0.7, 1.2, 106.1}
                    for ref in (0.7, 1.2, 106.1):
                        edge = ref * c.factor
                        out[c.variable] |= {round(edge, 6), round(edge - 0.01, 6), round(edge + 0.01, 6)}
                elif isinstance(c.value, float):
                    out[c.variable] |= {c.value, c.value - 0.01, c.value + 0.01, c.value - 1, c.value + 1}
    return {v: sorted(vals, key=lambda x: (x is None, str(type(x)), x if x is not None else 0))
            for v, vals in out.items()}


def _cases(rs: RuleSet) -> list[dict]:
    cand = _candidates(rs)
    names = list(cand)
    every = math.prod(len(v) for v in cand.values())
    if every <= CASES_PER_SET:
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*cand.values())]
    rng = random.Random(f"{rs.name}@{rs.version}")
    return [{v: rng.choice(cand[v]) for v in names} for _ in range(CASES_PER_SET)]


def _sql_batch(rs: RuleSet, cases: list[dict]) -> list[tuple]:
    types = rs.variable_types()
    t = ibis.memtable({v: [c[v] for c in cases] for v in types}, schema=ibis.schema(types))
    t = t.mutate(_i=ibis.row_number())
    comp = compile_rules(rs, t)
    df = (t.select("_i", outcome=comp.outcome, rule_id=comp.rule_id, missing=comp.missing)
          .order_by("_i").execute())
    applied = (apply_rules(rs, t, outcome="outcome", rule_id="rule_id", missing="missing")
               .select("_i", "outcome", "rule_id", "missing").order_by("_i").execute())
    rows = [(_none(o), _none(r), tuple(m for m in (_none(s) or "").split(";") if m))
            for o, r, s in zip(df.outcome, df.rule_id, df.missing, strict=True)]
    same = [(_none(o), _none(r), tuple(m for m in (_none(s) or "").split(";") if m))
            for o, r, s in zip(applied.outcome, applied.rule_id, applied.missing, strict=True)]
    assert rows == same, f"apply_rules and compile_rules differ on {rs.name} v{rs.version}"
    return rows


def _rule_sets() -> list[tuple[str, tuple[str, str]]]:
    """Every rule set of the clinical rule files; of the CTCAE files (whose two paths are also
    checked against admiral's vectors, tests/criteria/test_ctcae_admiral.py) every fifth term."""
    out = []
    for f in RULE_FILES:
        keys = sorted(load_rules(f))
        out += [(f, k) for k in (keys[::5] if f.startswith("ctcae") else keys)]
    return out


RULE_SETS = _rule_sets()


@pytest.mark.parametrize(("filename", "key"), RULE_SETS, ids=[f"{f}:{k[0]}@{k[1]}" for f, k in RULE_SETS])
def test_python_and_sql_paths_agree(filename, key):
    rs = ruleset(filename, *key)
    cases = _cases(rs)
    assert cases
    sql = _sql_batch(rs, cases)
    for values, expected in zip(cases, sql, strict=True):
        ev = evaluate_fast(rs, values)
        assert (ev.outcome, ev.rule_id, ev.missing) == expected, (rs.name, rs.version, values)


def test_evaluate_is_the_python_path_and_treats_nan_as_missing():
    rs = ruleset("response.csv", *sorted(load_rules("response.csv"))[0])
    values = dict.fromkeys(rs.variables)
    nan = {v: float("nan") for v, t in rs.variable_types().items() if t == "float64"}
    a = evaluate(rs, {**values, **nan})
    assert a == evaluate_fast(rs, values) == evaluate_sql(rs, values)
    assert a.outcome == "not_evaluable" and a.missing


def test_evaluate_refuses_unknown_inputs():
    rs = ruleset("stopping_rule.csv", *sorted(load_rules("stopping_rule.csv"))[0])
    with pytest.raises(KeyError, match="takes"):
        evaluate(rs, {"no_such_input": 1.0})
