"""INFINITY score arithmetic, rule expressions and nvpair-set resolution."""
from __future__ import annotations

import pytest

from hadaemon.core.cib import INFINITY, add_scores, parse_score, score_text
from hadaemon.core.cib.model import Expression, NvSet, Rule
from hadaemon.core.cib.rules import eval_expression, eval_rule, resolve_sets


def test_infinity_arithmetic():
    assert add_scores(INFINITY, -INFINITY) == -INFINITY  # -INFINITY wins
    assert add_scores(-INFINITY, INFINITY) == -INFINITY
    assert add_scores(INFINITY, 5) == INFINITY
    assert add_scores(999999, 999999) == INFINITY  # clamped
    assert add_scores(-999999, -5) == -INFINITY
    assert add_scores(100, -30) == 70


@pytest.mark.parametrize("text,value", [("INFINITY", INFINITY), ("+INFINITY", INFINITY), ("-INFINITY", -INFINITY),
                                        ("100", 100), ("-5", -5), ("2000000", INFINITY), ("2.0", 2),
                                        ("abc", None)])
def test_parse_score(text, value):
    assert parse_score(text, None) == value


def test_score_text():
    assert [score_text(s) for s in (INFINITY, -INFINITY, 7)] == ["INFINITY", "-INFINITY", "7"]


def expr(attr, op, value=None, typ=None):
    return Expression("e", attr, op, value, typ, 1)


ATTRS = {"#uname": "node1", "ram": "2048", "zone": "a", "ver": "1.10.0"}


@pytest.mark.parametrize("e,ok", [
    (expr("#uname", "eq", "node1"), True), (expr("#uname", "ne", "node1"), False),
    (expr("ram", "gt", "1024", "integer"), True), (expr("ram", "lt", "300"), False),  # numeric when both are
    (expr("ram", "gte", "2048", "number"), True), (expr("ram", "lte", "2047", "integer"), False),
    (expr("zone", "defined"), True), (expr("rack", "not_defined"), True), (expr("rack", "eq", "x"), False),
    (expr("ver", "gt", "1.9.0", "version"), True), (expr("ver", "gt", "1.9.0"), False),  # string compare
])
def test_expressions(e, ok):
    assert eval_expression(e, ATTRS) is ok


def test_rule_boolean_ops_and_nesting():
    yes, no = expr("zone", "eq", "a"), expr("zone", "eq", "b")
    assert eval_rule(Rule("r", 1, None, "and", None, (yes, yes), 1), ATTRS)
    assert not eval_rule(Rule("r", 1, None, "and", None, (yes, no), 1), ATTRS)
    assert eval_rule(Rule("r", 1, None, "or", None, (no, yes), 1), ATTRS)
    inner = Rule("i", None, None, "or", None, (no, no), 1)
    assert not eval_rule(Rule("r", 1, None, "and", None, (yes, inner), 1), ATTRS)


def test_sets_higher_score_first_first_value_wins():
    low = NvSet("a", 1, None, (("x", "low"), ("y", "only-low")), 1)
    high = NvSet("b", 10, None, (("x", "high"),), 1)
    gated = NvSet("c", 100, Rule("r", None, None, "and", None, (expr("zone", "eq", "b"),), 1), (("x", "gated"),), 1)
    assert resolve_sets([low, high, gated], ATTRS) == {"x": "high", "y": "only-low"}
    assert resolve_sets([low, high, gated], {"zone": "b"})["x"] == "gated"
