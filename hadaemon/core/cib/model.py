"""The immutable CIB model: configuration (nodes, resources, constraints) and status."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Mapping, Tuple, Union

# Pacemaker 3.0 option names and their older spellings: looked up in this order.
OPTION_ALIASES = {
    "fencing-enabled": ("fencing-enabled", "stonith-enabled"),
    "fencing-action": ("fencing-action", "stonith-action"),
    "stop-removed-resources": ("stop-removed-resources", "stop-orphan-resources"),
    "cancel-removed-actions": ("cancel-removed-actions", "stop-orphan-actions"),
    "no-quorum-policy": ("no-quorum-policy", "no_quorum-policy", "no_quorum_policy"),
    "symmetric-cluster": ("symmetric-cluster", "symmetric_cluster"),
}


class Record:
    """Base of the model's classes: a value object whose fields are its __slots__, set once by its __init__
    and never changed afterwards (the model is read-only: make a changed copy with replace()). Equal when
    of the same class with equal compared fields (all fields unless the class lists `_compared`), hashable
    when those are. Hand-written rather than frozen dataclasses: creating dataclasses costs ~14 ms of
    `hactl simulate`'s start-up, and a frozen instance's guarded setters made loading a large CIB slower."""

    __slots__ = ()
    _compared: Tuple[str, ...] = ()

    def _key(self) -> tuple:
        return tuple([getattr(self, name) for name in (self._compared or self.__slots__)])

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in (self._compared or self.__slots__))
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes) -> Record:
        """A copy with the given fields changed (as dataclasses.replace)."""
        for name in changes:
            if name not in self.__slots__:
                raise TypeError(f"{type(self).__name__} has no field '{name}'")
        return type(self)(**{name: changes.get(name, getattr(self, name)) for name in self.__slots__})


class Expression(Record):
    """A rule expression on a node attribute (#uname, #id, #is_dc or any attribute); type None: not given
    (Pacemaker then picks one from the operation and the values)."""

    __slots__ = ("id", "attribute", "operation", "value", "type", "line")

    def __init__(self, id: str, attribute: str, operation: str, value: str | None, type: str | None, line: int):
        self.id = id
        self.attribute = attribute
        self.operation = operation
        self.value = value
        self.type = type
        self.line = line


class DateExpression(Record):
    """A date_expression (operation lt, gt, in_range or date_spec) with start/end in seconds since the
    epoch; in_range without an end takes start + duration ((months, seconds)); date_spec matches the
    fields of `spec`: (field, low, high) with low/high None for an open side."""

    __slots__ = ("id", "operation", "start", "end", "line", "duration", "spec")

    def __init__(self, id: str, operation: str, start: int | None, end: int | None, line: int,
                 duration: Tuple[int, int] | None = None, spec: Tuple[Tuple[str, int | None, int | None], ...] = ()):
        self.id = id
        self.operation = operation
        self.start = start
        self.end = end
        self.line = line
        self.duration = duration
        self.spec = spec


class RscExpression(Record):
    """An rsc_expression (rules in rsc_defaults / op_defaults): matches a resource by agent; an attribute
    left out matches any value, except the provider, which must then be absent too (as Pacemaker does)."""

    __slots__ = ("id", "cls", "provider", "type", "line")

    def __init__(self, id: str, cls: str | None, provider: str | None, type: str | None, line: int):
        self.id = id
        self.cls = cls
        self.provider = provider
        self.type = type
        self.line = line


class OpExpression(Record):
    """An op_expression (rules in op_defaults): matches an operation by name and, when given, interval
    (interval_ms None: any interval; -1: an interval that does not parse, which matches nothing)."""

    __slots__ = ("id", "name", "interval_ms", "line")

    def __init__(self, id: str, name: str, interval_ms: int | None, line: int):
        self.id = id
        self.name = name
        self.interval_ms = interval_ms
        self.line = line


class Rule(Record):
    """A rule: expressions and sub-rules joined by boolean-op, with a score."""

    __slots__ = ("id", "score", "score_attribute", "boolean_op", "role", "terms", "line")

    def __init__(self, id: str, score: int | None, score_attribute: str | None, boolean_op: str, role: str | None,
                 terms: Tuple[Union[Expression, DateExpression, RscExpression, OpExpression, Rule], ...], line: int):
        self.id = id
        self.score = score
        self.score_attribute = score_attribute
        self.boolean_op = boolean_op
        self.role = role
        self.terms = terms
        self.line = line


class NvSet(Record):
    """An instance_attributes/meta_attributes/cluster_property_set block."""

    __slots__ = ("id", "score", "rule", "pairs", "line")

    def __init__(self, id: str, score: int, rule: Rule | None, pairs: Tuple[Tuple[str, str], ...], line: int):
        self.id = id
        self.score = score
        self.rule = rule
        self.pairs = pairs
        self.line = line


class Op(Record):
    """A configured operation (monitor with interval, start, stop ...)."""

    __slots__ = ("id", "name", "interval_ms", "role", "timeout", "on_fail", "enabled", "instance_sets",
                 "meta_sets", "line")

    def __init__(self, id: str, name: str, interval_ms: int, role: str | None, timeout: str | None,
                 on_fail: str | None, enabled: bool, instance_sets: Tuple[NvSet, ...], meta_sets: Tuple[NvSet, ...],
                 line: int):
        self.id = id
        self.name = name
        self.interval_ms = interval_ms
        self.role = role
        self.timeout = timeout
        self.on_fail = on_fail
        self.enabled = enabled
        self.instance_sets = instance_sets
        self.meta_sets = meta_sets
        self.line = line


class Primitive(Record):
    __slots__ = ("id", "cls", "provider", "type", "meta_sets", "instance_sets", "ops", "parent", "line",
                 "utilization")

    def __init__(self, id: str, cls: str, provider: str | None, type: str, meta_sets: Tuple[NvSet, ...],
                 instance_sets: Tuple[NvSet, ...], ops: Tuple[Op, ...], parent: str | None, line: int,
                 utilization: Tuple[NvSet, ...] = ()):
        self.id = id
        self.cls = cls
        self.provider = provider
        self.type = type
        self.meta_sets = meta_sets
        self.instance_sets = instance_sets
        self.ops = ops
        self.parent = parent
        self.line = line
        self.utilization = utilization

    @property
    def agent(self) -> str:
        if self.provider:
            return f"{self.cls}:{self.provider}:{self.type}"
        return f"{self.cls}:{self.type}"


class Group(Record):
    __slots__ = ("id", "members", "meta_sets", "instance_sets", "line")

    def __init__(self, id: str, members: Tuple[Primitive, ...], meta_sets: Tuple[NvSet, ...],
                 instance_sets: Tuple[NvSet, ...], line: int):
        self.id = id
        self.members = members
        self.meta_sets = meta_sets
        self.instance_sets = instance_sets
        self.line = line


class Clone(Record):
    """A clone of one primitive or group (<clone>; promotable clones are <clone> with
    promotable=true or the older <master>)."""

    __slots__ = ("id", "child", "meta_sets", "instance_sets", "promotable", "line")

    def __init__(self, id: str, child: Union[Primitive, Group], meta_sets: Tuple[NvSet, ...],
                 instance_sets: Tuple[NvSet, ...], promotable: bool, line: int):
        self.id = id
        self.child = child
        self.meta_sets = meta_sets
        self.instance_sets = instance_sets
        self.promotable = promotable
        self.line = line


if TYPE_CHECKING:
    Resource = Union[Primitive, Group, Clone]


class Node(Record):
    __slots__ = ("id", "uname", "type", "attr_sets", "line", "utilization")

    def __init__(self, id: str, uname: str, type: str, attr_sets: Tuple[NvSet, ...], line: int,
                 utilization: Tuple[NvSet, ...] = ()):
        self.id = id
        self.uname = uname
        self.type = type
        self.attr_sets = attr_sets
        self.line = line
        self.utilization = utilization


class Location(Record):
    __slots__ = ("id", "rsc", "node", "score", "rules", "role", "discovery", "line")

    def __init__(self, id: str, rsc: str, node: str | None, score: int | None, rules: Tuple[Rule, ...],
                 role: str | None, discovery: str | None, line: int):
        self.id = id
        self.rsc = rsc
        self.node = node
        self.score = score
        self.rules = rules
        self.role = role
        self.discovery = discovery
        self.line = line


class Colocation(Record):
    __slots__ = ("id", "rsc", "with_rsc", "score", "rsc_role", "with_rsc_role", "node_attribute", "influence",
                 "line")

    def __init__(self, id: str, rsc: str, with_rsc: str, score: int, rsc_role: str | None,
                 with_rsc_role: str | None, node_attribute: str | None, influence: bool | None, line: int):
        self.id = id
        self.rsc = rsc
        self.with_rsc = with_rsc
        self.score = score
        self.rsc_role = rsc_role
        self.with_rsc_role = with_rsc_role
        self.node_attribute = node_attribute
        self.influence = influence
        self.line = line


class Order(Record):
    """An ordering. require_all false: 'then' may run once any instance of a 'first' clone runs; any_of /
    then_all: a set ordering with require-all=false (any one of any_of first, then each of then_all);
    inverse_only: only the symmetric (stop/demote) half of this order applies."""

    __slots__ = ("id", "first", "then", "first_action", "then_action", "kind", "score", "symmetrical", "line",
                 "require_all", "any_of", "then_all", "inverse_only")

    def __init__(self, id: str, first: str, then: str, first_action: str, then_action: str, kind: str,
                 score: int | None, symmetrical: bool | None, line: int, require_all: bool = True,
                 any_of: Tuple[str, ...] = (), then_all: Tuple[str, ...] = (), inverse_only: bool = False):
        self.id = id
        self.first = first
        self.then = then
        self.first_action = first_action
        self.then_action = then_action
        self.kind = kind
        self.score = score
        self.symmetrical = symmetrical
        self.line = line
        self.require_all = require_all
        self.any_of = any_of
        self.then_all = then_all
        self.inverse_only = inverse_only


class RscTicket(Record):
    """rsc_ticket: the resource (in the role, when given) needs the ticket; loss_policy says what
    happens when it is revoked (stop, demote, fence, freeze; None: Pacemaker's default)."""

    __slots__ = ("id", "rsc", "ticket", "role", "loss_policy", "line")

    def __init__(self, id: str, rsc: str, ticket: str, role: str | None, loss_policy: str | None, line: int):
        self.id = id
        self.rsc = rsc
        self.ticket = ticket
        self.role = role
        self.loss_policy = loss_policy
        self.line = line


class Ticket(Record):
    """A ticket's state from the status section (<tickets><ticket_state>)."""

    __slots__ = ("id", "granted", "standby")

    def __init__(self, id: str, granted: bool, standby: bool):
        self.id = id
        self.granted = granted
        self.standby = standby


class LrmOp(Record):
    """One entry of a resource's operation history on a node."""

    __slots__ = ("id", "operation", "call_id", "rc_code", "op_status", "interval_ms", "op_digest",
                 "op_restart_digest", "restart_params", "last_rc_change", "transition_key", "migrate_source",
                 "migrate_target", "line")

    def __init__(self, id: str, operation: str, call_id: int, rc_code: int, op_status: int, interval_ms: int,
                 op_digest: str | None, op_restart_digest: str | None, restart_params: str | None,
                 last_rc_change: int | None, transition_key: str | None, migrate_source: str | None,
                 migrate_target: str | None, line: int):
        self.id = id
        self.operation = operation
        self.call_id = call_id
        self.rc_code = rc_code
        self.op_status = op_status
        self.interval_ms = interval_ms
        self.op_digest = op_digest
        self.op_restart_digest = op_restart_digest
        self.restart_params = restart_params
        self.last_rc_change = last_rc_change
        self.transition_key = transition_key
        self.migrate_source = migrate_source
        self.migrate_target = migrate_target
        self.line = line


class LrmResource(Record):
    """A resource's history on a node; shutdown_lock: when a clean shutdown locked it to this node."""

    __slots__ = ("id", "cls", "provider", "type", "ops", "line", "shutdown_lock")

    def __init__(self, id: str, cls: str | None, provider: str | None, type: str | None, ops: Tuple[LrmOp, ...],
                 line: int, shutdown_lock: int | None = None):
        self.id = id
        self.cls = cls
        self.provider = provider
        self.type = type
        self.ops = ops
        self.line = line
        self.shutdown_lock = shutdown_lock


class NodeState(Record):
    __slots__ = ("id", "uname", "in_ccm", "crmd", "join", "expected", "transient_sets", "lrm", "line",
                 "transient_utilization")

    def __init__(self, id: str, uname: str | None, in_ccm: str | None, crmd: str | None, join: str | None,
                 expected: str | None, transient_sets: Tuple[NvSet, ...], lrm: Tuple[LrmResource, ...], line: int,
                 transient_utilization: Tuple[NvSet, ...] = ()):
        self.id = id
        self.uname = uname
        self.in_ccm = in_ccm
        self.crmd = crmd
        self.join = join
        self.expected = expected
        self.transient_sets = transient_sets
        self.lrm = lrm
        self.line = line
        self.transient_utilization = transient_utilization


class Cib(Record):
    """A whole CIB. feature_set: <cib crm_feature_set> (below 3.0.13, fail counts are per resource);
    _index (every resource, member and clone child by id) and option_sets (crm_config's sets) are not
    compared."""

    __slots__ = ("path", "options", "nodes", "resources", "locations", "colocations", "orders", "rsc_defaults",
                 "op_defaults", "node_states", "have_quorum", "dc_uuid", "rsc_tickets", "tickets", "feature_set",
                 "_index", "option_sets")
    _compared = __slots__[:-2]

    def __init__(self, path: str, options: Mapping[str, str], nodes: Tuple[Node, ...], resources: Tuple[Resource, ...],
                 locations: Tuple[Location, ...], colocations: Tuple[Colocation, ...], orders: Tuple[Order, ...],
                 rsc_defaults: Tuple[NvSet, ...], op_defaults: Tuple[NvSet, ...], node_states: Tuple[NodeState, ...],
                 have_quorum: bool, dc_uuid: str | None, rsc_tickets: Tuple[RscTicket, ...] = (),
                 tickets: Mapping[str, Ticket] | None = None, feature_set: str | None = None,
                 _index: Dict[str, Resource] | None = None, option_sets: Tuple[NvSet, ...] = ()):
        self.path = path
        self.options = options
        self.nodes = nodes
        self.resources = resources
        self.locations = locations
        self.colocations = colocations
        self.orders = orders
        self.rsc_defaults = rsc_defaults
        self.op_defaults = op_defaults
        self.node_states = node_states
        self.have_quorum = have_quorum
        self.dc_uuid = dc_uuid
        self.rsc_tickets = rsc_tickets
        self.tickets = {} if tickets is None else tickets
        self.feature_set = feature_set
        self._index = {} if _index is None else _index
        self.option_sets = option_sets

    def options_at(self, now: int | None) -> Mapping[str, str]:
        """The cluster options with the rules of crm_config's sets evaluated at time `now` (date
        expressions; no node, so node-attribute expressions are false); `options` when no set has a rule
        or the time is not known. cib-bootstrap-options first, then by set score; the first value wins."""
        if now is None or not any(s.rule is not None for s in self.option_sets):
            return self.options
        from hadaemon.core.cib.rules import eval_rule
        out: Dict[str, str] = {}
        for s in sorted(self.option_sets, key=lambda x: (x.id != "cib-bootstrap-options", -x.score)):
            if s.rule is not None and not eval_rule(s.rule, {}, now=now):
                continue
            for name, value in s.pairs:
                out.setdefault(name, value)
        return out

    def option(self, name: str, default: str | None = None) -> str | None:
        """A cluster option by its current name, accepting older spellings."""
        for alias in OPTION_ALIASES.get(name, (name,)):
            if alias in self.options:
                return self.options[alias]
        return default

    def primitives(self) -> Dict[str, Primitive]:
        out: Dict[str, Primitive] = {}
        for r in self.resources:
            if isinstance(r, Clone):
                r = r.child
            if isinstance(r, Group):
                for m in r.members:
                    out[m.id] = m
            else:
                out[r.id] = r
        return out

    def find(self, rsc_id: str) -> Resource | None:
        """A resource (primitive, group, clone, or a group's or clone's member) by id."""
        return self._index.get(rsc_id)
