"""The scheduler's working set: nodes, resources and colocations as mutable per-run state."""
from __future__ import annotations

import re
from typing import Dict, List

from hadaemon.core.cib.model import Primitive

STOPPED, STARTED = 1, 2
UNKNOWN = 0
ROLE_NAMES = {UNKNOWN: "Unknown", STOPPED: "Stopped", STARTED: "Started"}


def role_from_text(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip().lower()
    if t == "stopped":
        return STOPPED
    if t in ("started", "slave", "unpromoted", "master", "promoted"):
        return STARTED
    return None


def truth(text: str | None, default: bool = False) -> bool:
    if text is None:
        return default
    return text.strip().lower() in ("true", "yes", "1", "on", "y")


def natural_key(name: str):
    """Pacemaker's numeric-aware, case-insensitive node name order."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name.lower()) if p]


class WNode:
    """A cluster node as the scheduler sees it in this run."""

    __slots__ = ("id", "uname", "attrs", "online", "unclean", "standby", "pending", "shutdown",
                 "maintenance", "unseen", "expected_up", "is_dc", "fence_reason", "num_resources",
                 "fence_action", "has_state", "standby_onfail", "frozen", "fence_seq")

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
    """A primitive resource's scheduling state."""

    is_group = False

    def __init__(self, rid: str, prim: Primitive | None, meta: Dict[str, str], group=None):
        self.id = rid
        self.prim = prim
        self.meta = meta
        self.group = group
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
        self.cons: List[Coloc] = []
        self.cons_lhs: List[Coloc] = []
        self.active_ops: Dict[str, set] = {}  # node uname -> {(task, interval_ms)}
        self.history: Dict[str, tuple] = {}  # node uname -> (LrmResource, active ops)
        self.reschedule: set = set()  # (node uname, task, interval_ms) to send again
        self.cancel: list = []  # (node uname, task, interval_ms) no longer configured
        self.agent_changed: set = set()  # node unames whose history names another agent
        self.actions: Dict[tuple, object] = {}
        self.migration_threshold = 1000000
        self.stickiness = 0
        self.partial_migration_source = None
        self.partial_migration_target = None
        self.dangling_migrations: List[WNode] = []

    def current_node(self) -> WNode | None:
        return self.running_on[0] if self.running_on else None

    def __repr__(self) -> str:
        return f"<WRsc {self.id}>"


class WGroup:
    """A group: members placed together and started in order."""

    is_group = True

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

    @property
    def running_on(self) -> List[WNode]:
        seen: List[WNode] = []
        for m in self.members:
            for n in m.running_on:
                if n not in seen:
                    seen.append(n)
        return seen

    def __repr__(self) -> str:
        return f"<WGroup {self.id}>"


def _int(text: str | None, default: int) -> int:
    """An integer meta-attribute the way Pacemaker reads scores ("2.0" is 2, "INFINITY" is 1000000)."""
    if text is None:
        return default
    from hadaemon.core.cib.scores import parse_score
    value = parse_score(text, None)
    return default if value is None else value
