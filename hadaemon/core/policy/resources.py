"""The working set's nodes, resources and colocations: role constants, WNode, Coloc, WRsc, WGroup, WClone
(split from working.py)."""
from __future__ import annotations

from itertools import groupby

from hadaemon.core.cib.model import Primitive

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List

STOPPED, STARTED, UNPROMOTED, PROMOTED = 1, 2, 3, 4
UNKNOWN = 0
ROLE_NAMES = {UNKNOWN: "Unknown", STOPPED: "Stopped", STARTED: "Started", UNPROMOTED: "Unpromoted",
              PROMOTED: "Promoted"}


def role_from_text(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip().lower()
    if t == "stopped":
        return STOPPED
    if t == "started":
        return STARTED
    if t in ("slave", "unpromoted"):
        return UNPROMOTED
    if t in ("master", "promoted"):
        return PROMOTED
    return None


def truth(text: str | None, default: bool = False) -> bool:
    if text is None:
        return default
    return text.strip().lower() in ("true", "yes", "1", "on", "y")


def natural_key(name: str):
    """Pacemaker's numeric-aware, case-insensitive node name order."""
    parts = ("".join(run) for _decimal, run in groupby(name.lower(), str.isdecimal))  # as re.split(r"(\d+)")
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


class WNode:
    """A cluster node as the scheduler sees it in this run."""

    __slots__ = ("id", "uname", "attrs", "online", "unclean", "standby", "pending", "shutdown",
                 "maintenance", "unseen", "expected_up", "is_dc", "fence_reason", "num_resources",
                 "fence_action", "has_state", "standby_onfail", "frozen", "fence_seq", "capacity")

    def __init__(self, nid: str, uname: str):
        self.id = nid
        self.uname = uname
        self.attrs: Dict[str, str] = {}
        self.online = False
        self.unclean = False
        self.standby = False
        self.standby_onfail = False
        self.pending = False
        self.shutdown = False
        self.maintenance = False
        self.unseen = True
        self.expected_up = False
        self.is_dc = False
        self.fence_reason: str | None = None
        self.fence_action = None
        self.num_resources = 0
        self.has_state = False
        self.frozen = None
        self.fence_seq = 0
        self.capacity: Dict[str, int] = {}  # utilization left (placement strategies other than default)

    def can_run(self) -> bool:
        if self.frozen is not None:
            return self.frozen
        return (self.online and not self.shutdown and not self.unclean and not self.standby
                and not self.maintenance and not self.pending)

    def freeze(self) -> None:
        """Node state is settled (after unpacking): remember whether it can run resources."""
        self.frozen = None
        self.frozen = self.can_run()

    def __repr__(self) -> str:
        return f"<WNode {self.uname}>"


class Coloc:
    """A colocation between working resources (dependent placed relative to primary)."""

    __slots__ = ("id", "dep", "primary", "score", "dep_role", "primary_role", "attr", "influence")

    def __init__(self, cid, dep, primary, score, dep_role=None, primary_role=None, attr=None,
                 influence=True):
        self.id = cid
        self.dep = dep
        self.primary = primary
        self.score = score
        self.dep_role = dep_role
        self.primary_role = primary_role
        self.attr = attr
        self.influence = influence


class WRsc:
    """A primitive resource's scheduling state (also each instance of a cloned primitive)."""

    is_group = False
    is_clone = False

    def __init__(self, rid: str, prim: Primitive | None, meta: Dict[str, str], group=None):
        self.id = rid
        self.prim = prim
        self.meta = meta
        self.group = group
        self.clone = None  # the WClone this is an instance of
        self.base_id = rid  # the id in the history and in fail-count attributes
        self.history_name: str | None = None  # the id its history uses, when another
        self.removed = False  # a clone instance beyond clone-max (history only)
        self.promotable = False  # an instance of a promotable clone
        self.promo_priority = 0  # promotion priority while roles are chosen
        self.sort_index = 0
        self.orphan = prim is None
        self.agent = prim.agent if prim else ""
        self.cls = prim.cls if prim else ""
        self.priority = _int(meta.get("priority"), 0)
        self.managed = truth(meta.get("is-managed", meta.get("is_managed")), True)
        self.target_role = role_from_text(meta.get("target-role", meta.get("target_role")))
        self.multiple_active = (meta.get("multiple-active") or "stop_start").lower()
        self.allow_migrate = truth(meta.get("allow-migrate", meta.get("allow_migrate")), False)
        self.critical = truth(meta.get("critical"), True)
        self.role = STOPPED
        self.next_role = UNKNOWN
        self.running_on: List[WNode] = []
        self.known_on: set = set()
        self.allowed: Dict[str, int] = {}
        self.assigned: WNode | None = None
        self.provisional = True
        self.allocating = False
        self.merging = False
        self.failed = False
        self.stop_flag = False
        self.blocked = False
        self.start_pending = False
        self.reload = False
        self.restart_reason: str | None = None
        self.failure_ignored = False
        self.definition_changed = False  # parameters changed: restart
        self.reload_node: str | None = None
        self.migrating: tuple | None = None  # (source, target) when live-migrating
        self.shown_managed = True  # is-managed as the status display shows it
        self.discovery: Dict[str, str] = {}  # node -> resource-discovery "never"/"exclusive"
        self.cons: List[Coloc] = []
        self.cons_lhs: List[Coloc] = []
        self.active_ops: Dict[str, set] = {}  # node uname -> {(task, interval_ms)}
        self.history: Dict[str, tuple] = {}  # node uname -> (LrmResource, active ops)
        self.history_all: Dict[str, tuple] = {}  # node uname -> (LrmResource, all ops in order)
        self.reschedule: set = set()  # (node uname, task, interval_ms) to send again
        self.cancel: list = []  # (node uname, task, interval_ms) no longer configured
        self.agent_changed: set = set()  # node unames whose history names another agent
        self.actions: Dict[tuple, object] = {}
        self.migration_threshold = 1000000
        self.stickiness = 0
        self.partial_migration_source = None
        self.partial_migration_target = None
        self.dangling_migrations: List[WNode] = []
        self.utilization: Dict[str, int] = {}
        self.lock_node: WNode | None = None  # shutdown-lock: may run only there
        self.lock_time = 0
        self.lock_expired: set = set()  # nodes whose expired lock clears the history
        self.interleave_node: WNode | None = None  # assigned there, then unassigned: no interleave partner

    def current_node(self) -> WNode | None:
        if self.partial_migration_source is not None and self.partial_migration_source in self.running_on:
            return self.partial_migration_source
        return self.running_on[0] if self.running_on else None

    def __repr__(self) -> str:
        return f"<WRsc {self.id}>"


class WGroup:
    """A group: members placed together and started in order."""

    is_group = True
    is_clone = False

    def __init__(self, gid: str, meta: Dict[str, str]):
        self.id = gid
        self.meta = meta
        self.members: List[WRsc] = []
        self.priority = _int(meta.get("priority"), 0)
        self.provisional = True
        self.allocating = False
        self.merging = False
        self.allowed: Dict[str, int] = {}
        self.cons: List[Coloc] = []
        self.cons_lhs: List[Coloc] = []
        self.ordered = truth(meta.get("ordered"), True)
        self.colocated = truth(meta.get("collocated"), True)
        self.orphan = False
        self.clone = None  # the WClone this group is an instance of
        self.removed = False
        self.promotable = False
        # as an instance of a promotable clone: its own next role (its members get theirs from it)
        self.next_role = UNKNOWN
        self.promo_priority = 0
        self.sort_index = 0
        self.history_name: str | None = None

    @property
    def role(self) -> int:
        """The highest role of its members (pe__group_resource_state)."""
        return max((m.role for m in self.members), default=STOPPED)

    @property
    def running_on(self) -> List[WNode]:
        seen: List[WNode] = []
        for m in self.members:
            for n in m.running_on:
                if n not in seen:
                    seen.append(n)
        return seen

    # as a clone instance, a group answers like a primitive instance does
    def current_node(self) -> WNode | None:
        nodes = self.running_on
        return nodes[0] if nodes else None

    @property
    def assigned(self) -> WNode | None:
        return self.members[0].assigned if self.members else None

    @property
    def failed(self) -> bool:
        return any(m.failed for m in self.members)

    @property
    def blocked(self) -> bool:
        return any(m.blocked for m in self.members)

    @property
    def managed(self) -> bool:
        return all(m.managed for m in self.members)

    @property
    def known_on(self) -> set:
        out: set = set()
        for m in self.members:
            out |= m.known_on
        return out

    def __repr__(self) -> str:
        return f"<WGroup {self.id}>"


class WClone:
    """A clone: clone-max instances of one primitive, placed by Pacemaker's instance rules."""

    is_group = False
    is_clone = True

    def __init__(self, cid: str, meta: Dict[str, str], child_id: str, nodes: int):
        self.id = cid
        self.meta = meta
        self.child_id = child_id
        self.instances: List[WRsc] = []
        self.priority = _int(meta.get("priority"), 0)
        self.provisional = True
        self.allocating = False
        self.merging = False
        self.allowed: Dict[str, int] = {}
        self.cons: List[Coloc] = []
        self.cons_lhs: List[Coloc] = []
        self.orphan = False
        self.unique = truth(meta.get("globally-unique"), False)
        self.clone_max = _count(meta.get("clone-max"), max(1, nodes))
        self.clone_node_max = _count(meta.get("clone-node-max"), 1)
        if not self.unique and self.clone_node_max > 1:
            self.clone_node_max = 1  # anonymous clones: one instance per node
        self.interleave = truth(meta.get("interleave"), False)
        self.ordered = truth(meta.get("ordered"), False)
        self.notify = truth(meta.get("notify"), False)
        self.promotable = False
        self.promoted_max = _count(meta.get("promoted-max", meta.get("master-max")), 1)
        self.promoted_node_max = _count(meta.get("promoted-node-max", meta.get("master-node-max")), 1)
        self.promoted_counts: Dict[str, int] = {}
        self.promotion_banned = False  # a ticket for the promoted role is missing
        self.group_cfg = None  # the configured Group when the clone clones a group
        self.managed = truth(meta.get("is-managed", meta.get("is_managed")), True)
        self.target_role = role_from_text(meta.get("target-role", meta.get("target_role")))
        self.known_on: set = set()  # anonymous: nodes where any instance's state is known
        self.counts: Dict[str, int] = {}  # node -> instances assigned there
        self.next_number = 0

    @property
    def running_on(self) -> List[WNode]:
        seen: List[WNode] = []
        for r in self.instances:
            for n in r.running_on:
                if n not in seen:
                    seen.append(n)
        return seen

    @property
    def members(self) -> List[WRsc]:
        return self.instances

    def __repr__(self) -> str:
        return f"<WClone {self.id}>"


def _count(text: str | None, default: int) -> int:
    """A clone count meta-attribute: default when unset, 0 when invalid or negative."""
    if text is None:
        return default
    try:
        return max(0, int(float(text.strip())))
    except ValueError:
        return 0


def _int(text: str | None, default: int) -> int:
    """An integer meta-attribute the way Pacemaker reads scores ("2.0" is 2, "INFINITY" is 1000000)."""
    if text is None:
        return default
    from hadaemon.core.cib.scores import parse_score
    value = parse_score(text, None)
    return default if value is None else value
