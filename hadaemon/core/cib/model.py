"""The immutable CIB model: configuration (nodes, resources, constraints) and status."""
from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Expression:
    """A rule expression on a node attribute (#uname, #id, #is_dc or any attribute)."""

    id: str
    attribute: str
    operation: str
    value: str | None
    type: str | None  # None: not given (Pacemaker then picks one from the operation and the values)
    line: int


@dataclass(frozen=True)
class DateExpression:
    """A date_expression (operation lt, gt, in_range or date_spec) with start/end in seconds since the
    epoch; in_range without an end takes start + duration ((months, seconds)); date_spec matches the
    fields of `spec`: (field, low, high) with low/high None for an open side."""

    id: str
    operation: str
    start: int | None
    end: int | None
    line: int
    duration: Tuple[int, int] | None = None
    spec: Tuple[Tuple[str, int | None, int | None], ...] = ()


@dataclass(frozen=True)
class RscExpression:
    """An rsc_expression (rules in rsc_defaults / op_defaults): matches a resource by agent; an attribute
    left out matches any value, except the provider, which must then be absent too (as Pacemaker does)."""

    id: str
    cls: str | None
    provider: str | None
    type: str | None
    line: int


@dataclass(frozen=True)
class OpExpression:
    """An op_expression (rules in op_defaults): matches an operation by name and, when given, interval."""

    id: str
    name: str
    interval_ms: int | None  # None: any interval; -1: an interval that does not parse (matches nothing)
    line: int


@dataclass(frozen=True)
class Rule:
    """A rule: expressions and sub-rules joined by boolean-op, with a score."""

    id: str
    score: int | None
    score_attribute: str | None
    boolean_op: str
    role: str | None
    terms: Tuple[Union[Expression, DateExpression, RscExpression, OpExpression, Rule], ...]
    line: int


@dataclass(frozen=True)
class NvSet:
    """An instance_attributes/meta_attributes/cluster_property_set block."""

    id: str
    score: int
    rule: Rule | None
    pairs: Tuple[Tuple[str, str], ...]
    line: int


@dataclass(frozen=True)
class Op:
    """A configured operation (monitor with interval, start, stop ...)."""

    id: str
    name: str
    interval_ms: int
    role: str | None
    timeout: str | None
    on_fail: str | None
    enabled: bool
    instance_sets: Tuple[NvSet, ...]
    meta_sets: Tuple[NvSet, ...]
    line: int


@dataclass(frozen=True)
class Primitive:
    id: str
    cls: str
    provider: str | None
    type: str
    meta_sets: Tuple[NvSet, ...]
    instance_sets: Tuple[NvSet, ...]
    ops: Tuple[Op, ...]
    parent: str | None
    line: int
    utilization: Tuple[NvSet, ...] = ()

    @property
    def agent(self) -> str:
        if self.provider:
            return f"{self.cls}:{self.provider}:{self.type}"
        return f"{self.cls}:{self.type}"


@dataclass(frozen=True)
class Group:
    id: str
    members: Tuple[Primitive, ...]
    meta_sets: Tuple[NvSet, ...]
    instance_sets: Tuple[NvSet, ...]
    line: int


@dataclass(frozen=True)
class Clone:
    """A clone of one primitive or group (<clone>; promotable clones are <clone> with
    promotable=true or the older <master>)."""

    id: str
    child: Union[Primitive, Group]
    meta_sets: Tuple[NvSet, ...]
    instance_sets: Tuple[NvSet, ...]
    promotable: bool
    line: int


Resource = Union[Primitive, Group, Clone]


@dataclass(frozen=True)
class Node:
    id: str
    uname: str
    type: str
    attr_sets: Tuple[NvSet, ...]
    line: int
    utilization: Tuple[NvSet, ...] = ()


@dataclass(frozen=True)
class Location:
    id: str
    rsc: str
    node: str | None
    score: int | None
    rules: Tuple[Rule, ...]
    role: str | None
    discovery: str | None
    line: int


@dataclass(frozen=True)
class Colocation:
    id: str
    rsc: str
    with_rsc: str
    score: int
    rsc_role: str | None
    with_rsc_role: str | None
    node_attribute: str | None
    influence: bool | None
    line: int


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    then: str
    first_action: str
    then_action: str
    kind: str
    score: int | None
    symmetrical: bool | None
    line: int
    require_all: bool = True  # false: 'then' may run once any instance of a 'first' clone runs
    any_of: Tuple[str, ...] = ()  # set ordering with require-all=false: any one of these first ...
    then_all: Tuple[str, ...] = ()  # ... then each of these
    inverse_only: bool = False  # only the symmetric (stop/demote) half of this order applies


@dataclass(frozen=True)
class RscTicket:
    """rsc_ticket: the resource (in the role, when given) needs the ticket; loss_policy says what
    happens when it is revoked (stop, demote, fence, freeze; None: Pacemaker's default)."""

    id: str
    rsc: str
    ticket: str
    role: str | None
    loss_policy: str | None
    line: int


@dataclass(frozen=True)
class Ticket:
    """A ticket's state from the status section (<tickets><ticket_state>)."""

    id: str
    granted: bool
    standby: bool


@dataclass(frozen=True)
class LrmOp:
    """One entry of a resource's operation history on a node."""

    id: str
    operation: str
    call_id: int
    rc_code: int
    op_status: int
    interval_ms: int
    op_digest: str | None
    op_restart_digest: str | None
    restart_params: str | None
    last_rc_change: int | None
    transition_key: str | None
    migrate_source: str | None
    migrate_target: str | None
    line: int


@dataclass(frozen=True)
class LrmResource:
    id: str
    cls: str | None
    provider: str | None
    type: str | None
    ops: Tuple[LrmOp, ...]
    line: int
    shutdown_lock: int | None = None  # when the resource was locked to this node by a clean shutdown


@dataclass(frozen=True)
class NodeState:
    id: str
    uname: str | None
    in_ccm: str | None
    crmd: str | None
    join: str | None
    expected: str | None
    transient_sets: Tuple[NvSet, ...]
    lrm: Tuple[LrmResource, ...]
    line: int
    transient_utilization: Tuple[NvSet, ...] = ()


@dataclass(frozen=True)
class Cib:
    path: str
    options: Mapping[str, str]
    nodes: Tuple[Node, ...]
    resources: Tuple[Resource, ...]
    locations: Tuple[Location, ...]
    colocations: Tuple[Colocation, ...]
    orders: Tuple[Order, ...]
    rsc_defaults: Tuple[NvSet, ...]
    op_defaults: Tuple[NvSet, ...]
    node_states: Tuple[NodeState, ...]
    have_quorum: bool
    dc_uuid: str | None
    rsc_tickets: Tuple[RscTicket, ...] = ()
    tickets: Mapping[str, Ticket] = field(default_factory=dict)
    feature_set: str | None = None  # <cib crm_feature_set>: below 3.0.13, fail counts are per resource
    _index: Dict[str, Resource] = field(default_factory=dict, compare=False, repr=False)
    option_sets: Tuple[NvSet, ...] = field(default=(), compare=False, repr=False)  # crm_config's sets

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
