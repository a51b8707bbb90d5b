"""The scheduler's working set: nodes, resources and colocations as mutable per-run state."""
from __future__ import annotations

from types import MappingProxyType

from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.model import Cib
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.resources import WClone, WGroup, WNode, WRsc, truth
# the working set's resources, importable from here as before the split
from hadaemon.core.policy.resources import (  # noqa: F401
    STOPPED, STARTED, UNPROMOTED, PROMOTED, UNKNOWN, ROLE_NAMES, role_from_text, natural_key, Coloc, _count,
    _int)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple


class WorkingSet:
    """Everything one scheduler run knows and decides."""

    def __init__(self, cib: Cib, now: int | None):
        options = cib.options_at(now)
        if options is not cib.options:  # crm_config rules (date expressions) evaluated at this run's time
            cib = cib.replace(options=MappingProxyType(dict(options)))
        self.cib = cib
        self.now = now
        self.nodes: List[WNode] = []
        self.node_by_uname: Dict[str, WNode] = {}
        self.node_by_id: Dict[str, WNode] = {}
        self.resources: list = []  # top-level WRsc / WGroup, allocation order
        self.display_resources: list | None = None  # the unpacked order when allocation sorted them
        self.prims: Dict[str, WRsc] = {}
        self.groups: Dict[str, WGroup] = {}
        self.clones: Dict[str, WClone] = {}
        self.clone_of: Dict[str, WClone] = {}  # cloned primitive's id -> clone
        self.scores: list = []
        self.actions = None  # filled by the actions stage
        self.fence_ops: List = []
        opt = cib.option
        self.stonith_enabled = truth(opt("fencing-enabled"), True)
        self.symmetric = truth(opt("symmetric-cluster"), True)
        self.no_quorum_policy = (opt("no-quorum-policy") or "stop").lower()
        self.have_quorum = cib.have_quorum
        self.stop_orphans = truth(opt("stop-removed-resources"), True)
        self.cancel_removed = truth(opt("cancel-removed-actions"), True)
        self.start_failure_fatal = truth(opt("start-failure-is-fatal"), True)
        self.startup_fencing = self.stonith_enabled and truth(opt("startup-fencing"), True)
        self.maintenance_mode = truth(opt("maintenance-mode"), False)
        self.stop_all = truth(opt("stop-all-resources"), False)
        self.concurrent_fencing = truth(opt("concurrent-fencing"), True)
        self.fence_action = opt("fencing-action") or "reboot"
        self.default_stickiness = parse_score(opt("default-resource-stickiness"), 0) or 0
        self.shutdown_lock = truth(opt("shutdown-lock"), False)
        limit = opt("shutdown-lock-limit")
        self.shutdown_lock_limit = ((parse_interval_ms(limit) or 0) // 1000) if limit else 0
        strategy = (opt("placement-strategy") or "default").lower()
        self.placement_strategy = strategy if strategy in ("utilization", "minimal", "balanced") else "default"
        # unpack_config: have-watchdog=true (SBD) counts as a fencing device (pe_flag_have_stonith_resource)
        self.have_stonith_resource = truth(opt("have-watchdog"), False)
        self.fence_seq = 0  # order in which nodes were found to need fencing
        self.migrations: list = []  # (resource, source node, migrate_to op, ops) to judge after unpacking

    def lookup(self, rid: str):
        """A configured primitive, group or clone by id (not a clone instance)."""
        r = self.prims.get(rid)
        if r is not None and r.clone is None:
            return r
        return self.groups.get(rid) or self.clones.get(rid)

    def can_fence(self, node: WNode | None) -> bool:
        if not self.stonith_enabled or not self.have_stonith_resource:
            return False
        if self.have_quorum or self.no_quorum_policy == "ignore":
            return True
        return node is not None and node.online

    def fence_node(self, node: WNode, reason: str) -> None:
        """Mark a node unclean; the first reason given is the one reported."""
        if not node.unclean:
            node.unclean = True
        if node.fence_reason is None:
            node.fence_reason = reason
            self.fence_seq += 1
            node.fence_seq = self.fence_seq

    def location(self, rsc, node: WNode | None, score: int) -> None:
        """Add a score for rsc on one node (or on every node when node is None)."""
        for r in leaves(rsc):
            for n in ([node] if node is not None else self.nodes):
                r.allowed[n.uname] = add_scores(r.allowed.get(n.uname, 0) if n.uname in r.allowed
                                                else 0, score)


def setup_primitive(ws: WorkingSet, r: WRsc) -> None:
    meta = r.meta
    stick = meta.get("resource-stickiness", meta.get("resource_stickiness"))
    r.stickiness = ws.default_stickiness if stick is None else (parse_score(stick, 0) or 0)
    thr = meta.get("migration-threshold", meta.get("migration_threshold"))
    r.migration_threshold = INFINITY if thr is None else (parse_score(thr, INFINITY) or 0)
    ft = meta.get("failure-timeout", meta.get("failure_timeout"))
    r.failure_timeout = (parse_interval_ms(ft) or 0) // 1000 if ft else 0
    r.is_stonith = r.cls == "stonith"
    if ws.placement_strategy != "default" and r.prim is not None and r.prim.utilization:
        r.utilization = {k: _utilization_value(v) for k, v in resolve_sets(r.prim.utilization, now=ws.now).items()}
    if r.is_stonith:
        ws.have_stonith_resource = True
    req = (meta.get("requires") or "").lower()
    r.needs_unfencing = False
    if req == "unfencing":  # pcmk__rsc_needs_unfencing (which needs fencing too); not for fence devices
        req = "quorum" if r.is_stonith or not ws.stonith_enabled else "fencing"
        r.needs_unfencing = req == "fencing"
    if not req:
        if r.is_stonith:
            req = "quorum"
        elif ws.stonith_enabled:
            req = "fencing"
            r.needs_unfencing = getattr(ws, "enable_unfencing", False)
        else:
            req = "quorum"
    r.requires = req
    if ws.symmetric:
        for n in ws.nodes:
            r.allowed[n.uname] = 0
    if not r.managed or ws.maintenance_mode:
        r.managed = False


def resource_meta(ws: WorkingSet, sets, parent_meta: Dict[str, str] | None, agent=None) -> Dict[str, str]:
    """Meta attributes: the resource's own, then its parent's, then rsc_defaults (rsc_expressions in their
    rules matched against `agent`, the primitive's configuration; a group or clone has no agent)."""
    meta = resolve_sets(sets, now=ws.now)
    if parent_meta:
        for k, v in parent_meta.items():
            meta.setdefault(k, v)
    resolve_sets(ws.cib.rsc_defaults, into=meta, rsc=agent_of(agent), now=ws.now)
    return meta


def agent_of(prim) -> Tuple[str | None, str | None, str | None]:
    """(class, provider, type) of a primitive's configuration for rsc_expression; all None otherwise."""
    if prim is None or not hasattr(prim, "cls"):
        return (None, None, None)
    return (prim.cls, prim.provider, prim.type)


def new_instance(ws: WorkingSet, c: WClone, prim):
    """The clone's next instance (`child:N`); beyond clone-max it is a removed one. A cloned
    group's instance is a group `group:N` of `member:N` primitives."""
    if c.group_cfg is not None:
        return _new_group_instance(ws, c)
    rid = f"{c.child_id}:{c.next_number}"
    c.next_number += 1
    r = WRsc(rid, prim, resource_meta(ws, prim.meta_sets, c.meta, prim))
    r.clone = c
    r.promotable = c.promotable
    r.base_id = rid if c.unique else c.child_id
    setup_primitive(ws, r)
    if not c.managed:
        r.managed = False
    if c.next_number > c.clone_max:
        r.removed = True
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    c.instances.append(r)
    ws.prims[r.id] = r
    return r


def _new_group_instance(ws: WorkingSet, c: WClone) -> WGroup:
    cfg = c.group_cfg
    n = c.next_number
    c.next_number += 1
    g = WGroup(f"{cfg.id}:{n}", resource_meta(ws, cfg.meta_sets, c.meta))
    g.clone = c
    g.promotable = c.promotable
    if ws.symmetric:
        g.allowed = {node.uname: 0 for node in ws.nodes}
    for m in cfg.members:
        r = WRsc(f"{m.id}:{n}", m, resource_meta(ws, m.meta_sets, g.meta, m), g)
        r.clone = c
        r.promotable = c.promotable
        r.base_id = r.id if c.unique else m.id
        setup_primitive(ws, r)
        if not c.managed:
            r.managed = False
        g.members.append(r)
        ws.prims[r.id] = r
    if c.next_number > c.clone_max:
        g.removed = True
        for r in [g] + g.members:
            for node in ws.nodes:
                r.allowed[node.uname] = -INFINITY
        for r in g.members:
            r.removed = True
    ws.groups[g.id] = g
    c.instances.append(g)
    return g


def leaves(rsc) -> List[WRsc]:
    """The primitives of a resource: itself, a group's members, a clone's instances (and their
    members when it clones a group)."""
    if rsc.is_clone:
        out: List[WRsc] = []
        for inst in rsc.instances:
            out.extend(inst.members if inst.is_group else [inst])
        return out
    if rsc.is_group:
        return list(rsc.members)
    return [rsc]


def _utilization_value(text: str | None) -> int:
    """A utilization amount: an integer (anything else counts as 0, as Pacemaker warns and does)."""
    try:
        return int((text or "").strip())
    except ValueError:
        return 0
