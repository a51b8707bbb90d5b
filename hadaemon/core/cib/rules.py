"""Rule evaluation: node-attribute expressions joined by and/or, and nvpair-set resolution."""
from __future__ import annotations

from hadaemon.core.cib.dates import spec_matches
from hadaemon.core.cib.model import DateExpression, Expression, NvSet, OpExpression, Rule, RscExpression

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, Iterable, Mapping, Tuple

_CMP_OPS = ("lt", "gt", "lte", "gte")


def _number(text: str | None):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def _version(text: str):
    parts = []
    for p in text.split("."):
        n = _number(p)
        parts.append(n if n is not None else 0)
    return tuple(parts)


def eval_expression(expr: Expression, attrs: Mapping[str, str]) -> bool:
    """Evaluate one expression against a node's attributes (#uname, #id, #is_dc included)."""
    actual = attrs.get(expr.attribute)
    op = expr.operation
    if op == "defined":
        return actual is not None
    if op == "not_defined":
        return actual is None
    cmp = compare_values(actual, expr.value, expr.type, op)
    if op == "eq":
        return cmp == 0
    if op == "ne":
        return cmp != 0
    if actual is None or expr.value is None:
        return False  # an ordering comparison with a missing side means nothing
    if op == "lt":
        return cmp < 0
    if op == "gt":
        return cmp > 0
    if op == "lte":
        return cmp <= 0
    if op == "gte":
        return cmp >= 0
    return False


_INTEGER = r"^\s*[-+]?\d+\s*$"


def compare_values(a: str | None, b: str | None, kind: str | None, op: str) -> int:
    """Pacemaker's comparison of an expression's two values (compare_attr_expr_vals): without a
    type, lt/gt/lte/gte compare as numbers ('number' when either has a '.', else 'integer') and
    eq/ne as strings; a value that does not parse as the type falls back to a string comparison;
    strings compare case-insensitively."""
    if a is None or b is None:
        return 0 if a is None and b is None else (-1 if a is None else 1)
    kind = (kind or "").lower()
    if not kind:
        if op in _CMP_OPS:
            kind = "number" if ("." in a or "." in b) else "integer"
        else:
            kind = "string"
    if kind == "integer":
        import re  # here: most runs compare no attribute as a number, and re costs start-up time

        if re.match(_INTEGER, a) and re.match(_INTEGER, b):
            x, y = int(a), int(b)
            return (x > y) - (x < y)
        kind = "string"
    elif kind == "number":
        try:
            x, y = float(a), float(b)
            return (x > y) - (x < y)
        except ValueError:
            kind = "string"
    elif kind == "version":
        x, y = _version(a), _version(b)
        return (x > y) - (x < y)
    x, y = a.lower(), b.lower()
    return (x > y) - (x < y)


def eval_date(expr: DateExpression, now: int | None) -> bool:
    """A date_expression at time now (seconds; None: the time is not known, the expression holds)."""
    if now is None:
        return True
    if expr.operation == "date_spec":
        return spec_matches(expr.spec, now)
    if expr.operation == "lt":
        return now < expr.end
    if expr.operation == "gt":
        return now > expr.start
    return (expr.start is None or expr.start <= now) and (expr.end is None or now <= expr.end)


def eval_rsc_expression(expr: RscExpression, rsc: Tuple[str | None, str | None, str | None] | None) -> bool:
    """Pacemaker's pe__eval_rsc_expr: rsc is the resource's (class, provider, type), None where the rule
    is not about a resource (then it never matches). A class or type left out matches any; a provider
    left out matches only a resource without one."""
    if rsc is None:
        return False
    cls, provider, rtype = rsc
    if expr.cls is not None and expr.cls != cls:
        return False
    if expr.provider != provider:
        return False
    return expr.type is None or expr.type == rtype


def eval_op_expression(expr: OpExpression, op: Tuple[str, int] | None) -> bool:
    """Pacemaker's pe__eval_op_expr: op is the operation's (name, interval in ms), None where the rule is
    not about an operation (then it never matches)."""
    if op is None or expr.interval_ms == -1:
        return False
    if expr.interval_ms is not None and expr.interval_ms != op[1]:
        return False
    return expr.name == op[0]


def eval_rule(rule: Rule, attrs: Mapping[str, str], role: str | None = None, now: int | None = None,
              rsc: Tuple[str | None, str | None, str | None] | None = None,
              op: Tuple[str, int] | None = None) -> bool:
    """True when the rule's terms hold for these node attributes (date expressions at time now; resource
    and operation expressions for the resource `rsc` and the operation `op`, in rsc_defaults/op_defaults)."""
    if rule.role and role is not None and rule.role.lower() != role.lower():
        return False
    if not rule.terms:
        return rule.boolean_op == "and"
    for term in rule.terms:
        if isinstance(term, Rule):
            ok = eval_rule(term, attrs, role, now, rsc, op)
        elif isinstance(term, DateExpression):
            ok = eval_date(term, now)
        elif isinstance(term, RscExpression):
            ok = eval_rsc_expression(term, rsc)
        elif isinstance(term, OpExpression):
            ok = eval_op_expression(term, op)
        else:
            ok = eval_expression(term, attrs)
        if ok and rule.boolean_op == "or":
            return True
        if not ok and rule.boolean_op == "and":
            return False
    return rule.boolean_op == "and"


def resolve_sets(sets: Iterable[NvSet], attrs: Mapping[str, str] | None = None,
                 into: Dict[str, str] | None = None,
                 rsc: Tuple[str | None, str | None, str | None] | None = None,
                 op: Tuple[str, int] | None = None, now: int | None = None) -> Dict[str, str]:
    """Merge nvpair sets the way Pacemaker does: higher set score first, first value wins (rules with
    resource / operation expressions evaluated for `rsc` and `op`, date expressions at time `now`, see
    eval_rule)."""
    out: Dict[str, str] = {} if into is None else into
    ordered = sorted(sets, key=lambda s: -s.score)
    for s in ordered:
        if s.rule is not None and not eval_rule(s.rule, attrs or {}, now=now, rsc=rsc, op=op):
            continue
        for name, value in s.pairs:
            if value is not None and value.lower() == "#default":
                out.pop(name, None)  # populate_hash: "#default" lets the default apply
                continue
            if name not in out:
                out[name] = value
    return out
