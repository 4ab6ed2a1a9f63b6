"""The rule engine: rule files parse with clear errors; three-valued logic names missing inputs."""

from __future__ import annotations

import ibis
import pytest

from amlcohort.criteria.engine import (
    NOT_EVALUABLE,
    compile_rules,
    decision_expr,
    evaluate,
    parse_rules,
    with_decision,
)
from amlcohort.problems import InputError

HEADER = "ruleset,version,rule_id,outcome,priority,clause,variable,op,value,ref,factor,source,note\n"
RULES = (
    HEADER
    + """\
grade,1,g3,3,1,1,value,>,,uln,5,test >5 x ULN,
grade,1,g2,2,2,1,value,>,,uln,3,test >3 x ULN,
grade,1,g1,1,3,1,value,>,,uln,1,test >ULN,
grade,1,g0,0,4,1,value,<=,,uln,1,test <=ULN,
cr,1,cr,CR,1,1,blasts,<,5,,,paper,
cr,1,cr,CR,1,1,spicules,is_true,,,,paper,
cr,1,cr,CR,1,1,emd,is_false,,,,paper,
cr,1,nr,NR,2,1,blasts,>=,5,,,paper,
cr,1,nr,NR,2,2,emd,is_true,,,,paper,
kind,1,cbf,core_binding,1,1,karyotype,matches,t\\(8;21\\)|inv\\(16\\),,,who,
kind,1,other,other,2,1,karyotype,not_null,,,,who,
"""
)
BOOK = parse_rules(RULES, "test.csv")


@pytest.mark.parametrize(
    ("value", "uln", "grade"),
    [
        (200.0, 40.0, "2"),
        (200.1, 40.0, "3"),
        (120.0, 40.0, "1"),
        (120.1, 40.0, "2"),
        (40.0, 40.0, "0"),
        (40.1, 40.0, "1"),
        (0.0, 40.0, "0"),
    ],
)
def test_priority_and_boundaries(value, uln, grade):
    assert evaluate(BOOK[("grade", "1")], {"value": value, "uln": uln}).outcome == grade


def test_missing_input_is_not_evaluable_and_named():
    e = evaluate(BOOK[("grade", "1")], {"value": 50.0})
    assert (e.outcome, e.missing) == (NOT_EVALUABLE, ("uln",))
    assert "missing uln" in e.reason


def test_missing_input_that_cannot_change_the_result_is_not_needed():
    # blasts 40 % rules out CR whatever the spicules: FALSE AND NULL is FALSE.
    e = evaluate(BOOK[("cr", "1")], {"blasts": 40.0, "spicules": None, "emd": False})
    assert e.outcome == "NR" and e.rule_id == "nr"
    e = evaluate(BOOK[("cr", "1")], {"blasts": 3.0, "spicules": None, "emd": False})
    assert (e.outcome, e.missing) == (NOT_EVALUABLE, ("spicules",))


def test_or_clauses():
    e = evaluate(BOOK[("cr", "1")], {"blasts": 3.0, "spicules": True, "emd": True})
    assert (e.outcome, e.rule_id) == ("NR", "nr")
    e = evaluate(BOOK[("cr", "1")], {"blasts": 4.9, "spicules": True, "emd": False})
    assert e.outcome == "CR" and e.source == "paper"


def test_regex_matches():
    assert (
        evaluate(BOOK[("kind", "1")], {"karyotype": "46,XY,t(8;21)(q22;q22)[20]"}).outcome == "core_binding"
    )
    assert evaluate(BOOK[("kind", "1")], {"karyotype": "46,XY[20]"}).outcome == "other"


def test_unknown_input_name_is_an_error():
    with pytest.raises(KeyError, match="takes"):
        evaluate(BOOK[("grade", "1")], {"valu": 3.0})


def test_compiled_rules_over_a_table_match_single_evaluations_on_two_backends():
    data = {"value": [10.0, 41.0, 130.0, 250.0, None, 99.0], "uln": [40.0, 40.0, 40.0, 40.0, 40.0, None]}
    rules = BOOK[("grade", "1")]
    expected = [evaluate(rules, {"value": v, "uln": u}).outcome for v, u in zip(*data.values(), strict=True)]
    assert expected == ["0", "1", "2", "3", NOT_EVALUABLE, NOT_EVALUABLE]
    for con in (ibis.duckdb.connect(), ibis.sqlite.connect()):
        t = con.create_table("labs", ibis.memtable(data))
        c = compile_rules(rules, t)
        got = t.mutate(i=ibis.row_number(), grade=c.outcome).order_by("i").grade.execute().tolist()
        assert got == expected


def test_a_null_literal_input_is_unknown_not_false():
    """Ibis compiles ``NULL == TRUE`` as ``TRUE IS NULL`` (false): a rule input given as a bare NULL
    literal (a column the table lacks) must leave the rule undecided, as a NULL column does."""
    rules = BOOK[("cr", "1")]
    con = ibis.duckdb.connect()
    t = con.create_table("marrow", ibis.memtable({"blasts": [2.0, 2.0], "spicules": [True, None]}))
    inputs = {"blasts": t.blasts, "spicules": t.spicules, "emd": ibis.null("boolean")}
    got = t.mutate(i=ibis.row_number(), d=decision_expr(rules, inputs)).order_by("i").d.execute().tolist()
    # rule 1 (CR) needs emd: undecided (-1) on both rows, never "emd is false" by default
    assert got == [-1, -1]
    assert evaluate(rules, {"blasts": 2.0, "spicules": True, "emd": None}).outcome == NOT_EVALUABLE


@pytest.mark.parametrize("backend", ["duckdb", "sqlite"])
def test_with_decision_equals_the_single_case(backend):
    """with_decision (operands and rule truths as columns, then the CASE; on SQLite one CASE)
    gives decision_expr's value on every row, boundaries on both sides included."""
    rules = BOOK[("grade", "1")]
    data = {"value": [40.0, 40.1, 120.0, 120.1, 200.0, 200.1, None, 99.0, 0.0],
            "uln": [40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0, None, 40.0]}
    con = getattr(ibis, backend).connect()
    t = con.create_table("labs", ibis.memtable(data)).mutate(i=ibis.row_number())
    expected = t.mutate(d=decision_expr(rules, {"value": t.value, "uln": t.uln})).order_by("i").d
    got = with_decision(t, rules, lambda tt: {"value": tt.value, "uln": tt.uln}, "d").order_by("i")
    assert list(got.columns) == [*t.columns, "d"]
    assert got.d.execute().tolist() == expected.execute().tolist() == [4, 3, 3, 2, 2, 1, -1, -1, 4]


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("grade,1,x,1,1,1,value,~,3,,,s,", "op", "unknown operator"),
        ("grade,1,x,1,one,1,value,>,3,,,s,", "priority", "whole numbers"),
        ("grade,1,x,1,1,1,value,>,,,,s,", "value", "needs a value or a ref"),
        ("grade,1,x,1,1,1,value,>,high,,,s,", "value", "needs a number"),
        ("grade,1,x,1,1,1,,>,3,,,s,", "variable", "needs a variable"),
    ],
)
def test_rule_file_errors_name_row_column_value(row, column, reason):
    with pytest.raises(InputError) as info:
        parse_rules(HEADER + row + "\n", "bad.csv")
    p = info.value.errors[0]
    assert (p.table, p.row, p.column) == ("bad.csv", 1, column)
    assert reason in p.reason


def test_rule_file_without_required_columns():
    with pytest.raises(InputError, match="missing column"):
        parse_rules("ruleset,version\nx,1\n", "bad.csv")
