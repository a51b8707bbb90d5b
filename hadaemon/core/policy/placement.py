"""Stages 2-3: node criteria (locations, stickiness, fail limits) and assignment to nodes: allocate,
clones, sorting and assign_all; the other stage modules' names stay importable from here."""
from __future__ import annotations

try:  # the C function functools itself exports: importing functools (and collections) costs start-up time
    from _functools import cmp_to_key
except ImportError:  # a Python without CPython's accelerator modules
    from functools import cmp_to_key

from hadaemon.core.cib.scores import INFINITY
from hadaemon.core.policy.working import WorkingSet
from hadaemon.core.policy.resources import STOPPED, UNKNOWN, WNode

from hadaemon.core.policy.colocation import (
    _add_matching, _apply_colocation, _record, _running, can_run_any, merge_weights)
from hadaemon.core.policy.criteria import GROUP_STAGE, PRIMITIVE_STAGE
from hadaemon.core.policy.instances import (
    _ban_unavailable, _cmp, _cmp_instance, _restore_tables, _save_tables, _unassign, compare_capacities)
from hadaemon.core.policy.promotable import _add_promotion_scores, _set_instance_roles
from hadaemon.core.policy.utilization import _assign, _choose_node, ban_insufficient_capacity
# the other stage modules' public names, importable from here as before the split
from hadaemon.core.policy.colocation import UNUSABLE  # noqa: F401
from hadaemon.core.policy.criteria import (  # noqa: F401
    apply_exclusive_discovery, apply_fail_limits, apply_locations, apply_node_health, apply_shutdown_locks,
    apply_stickiness, apply_tickets, build_colocations, truth_meta)
from hadaemon.core.policy.promotable import promotion_score  # noqa: F401

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict


def allocate_group(ws: WorkingSet, g, prefer: WNode | None = None) -> None:
    if not g.provisional or g.allocating:
        return
    g.allocating = True
    _record(ws, GROUP_STAGE, g, g.allowed)
    for m in g.members:
        _record(ws, GROUP_STAGE, m, m.allowed)
    for m in g.members:
        allocate(ws, m, prefer)
    g.allocating = False
    g.provisional = False


def allocate(ws: WorkingSet, rsc, prefer: WNode | None = None) -> WNode | None:
    if rsc.is_group:
        if rsc.clone is not None and rsc.clone.provisional and not rsc.clone.allocating:
            allocate_clone(ws, rsc.clone)
        allocate_group(ws, rsc, prefer)
        return rsc.assigned if rsc.clone is not None else None
    if rsc.is_clone:
        allocate_clone(ws, rsc)
        return None
    if rsc.clone is not None and rsc.clone.provisional and not rsc.clone.allocating:
        allocate_clone(ws, rsc.clone)
    if rsc.group is not None and not rsc.group.allocating:
        allocate_group(ws, rsc.group)
    if not rsc.provisional:
        return rsc.assigned
    if rsc.allocating:
        return None
    rsc.allocating = True
    for c in rsc.cons:
        # apply_this_with: scores are reverted when no node is left after a negative optional colocation
        # or one for the promoted role
        archive = dict(rsc.allowed) if (-INFINITY < c.score < 0 or c.dep_role in ("promoted", "master")) \
            else None
        allocate(ws, c.primary)
        _apply_colocation(ws, rsc, c)
        if archive is not None and not can_run_any(ws, rsc.allowed):
            rsc.allowed = archive
    for c in rsc.cons_lhs:
        if not (c.influence or not _running(c.primary)):
            continue
        rsc.allowed = merge_weights(ws, c.dep, rsc.id, rsc.allowed, c.attr, c.score / float(INFINITY))
    if rsc.next_role == STOPPED:
        for uname in list(rsc.allowed) or [n.uname for n in ws.nodes]:
            rsc.allowed[uname] = -INFINITY
    elif (rsc.next_role > rsc.role and not ws.have_quorum and ws.no_quorum_policy == "freeze"):
        rsc.next_role = rsc.role
    _record(ws, PRIMITIVE_STAGE, rsc, rsc.allowed)
    if ws.stonith_enabled and not ws.have_stonith_resource:
        rsc.managed = False
    if not rsc.managed:
        if rsc.next_role == UNKNOWN or True:
            rsc.next_role = rsc.role
        _assign(rsc, rsc.current_node(), force=True)
    elif ws.stop_all:
        _assign(rsc, None, force=True)
    else:
        if ws.placement_strategy != "default":
            most = ban_insufficient_capacity(ws, rsc)
            if prefer is None:
                prefer = most
        _choose_node(ws, rsc, prefer)
    rsc.allocating = False
    return rsc.assigned


# --- clones (pcmk__clone_assign, pcmk__assign_instances) ---------------------------------

CLONE_STAGE = "pcmk__clone_assign"


def allocate_clone(ws: WorkingSet, c) -> None:
    if not c.provisional or c.allocating:
        return
    c.allocating = True
    if c.promotable:
        _add_promotion_scores(ws, c)
    for co in c.cons:
        allocate(ws, co.primary)
    for co in c.cons_lhs:
        if not (co.influence or not _running(co.primary)):
            continue
        # a clone takes only its dependents' positive preferences (pcmk__add_dependent_scores)
        c.allowed = merge_weights(ws, co.dep, c.id, c.allowed, co.attr, co.score / float(INFINITY), True)
    _record(ws, CLONE_STAGE, c, c.allowed)
    order = sorted(c.instances, key=cmp_to_key(lambda a, b: _cmp_instance(ws, a, b)))
    _assign_instances(ws, c, order)
    if c.promotable:
        _set_instance_roles(ws, c)
    c.allocating = False
    c.provisional = False


def _assign_instance(ws: WorkingSet, r, prefer: WNode | None, max_per_node: int) -> WNode | None:
    if r.allocating:
        return None
    _ban_unavailable(ws, r, max_per_node)
    chosen = allocate(ws, r, prefer)
    if chosen is not None:
        c = r.clone
        c.counts[chosen.uname] = c.counts.get(chosen.uname, 0) + 1
    return chosen


def _assign_early(ws: WorkingSet, c, r, current: WNode, max_per_node: int, available: int) -> bool:
    score = r.allowed.get(current.uname)
    if score is None or score < 0 or not current.can_run():
        return False
    saved = _save_tables(r)
    saved_counts = dict(c.counts)
    reserved = 0
    chosen = None
    while reserved < available:
        chosen = _assign_instance(ws, r, current, max_per_node)
        if chosen is current:
            break
        _restore_tables(saved)
        if chosen is None:
            _unassign(r)
            _restore_tables(saved)
            break
        reserved += 1
        _unassign(r)
        _restore_tables(saved)
        chosen = None
    c.counts = saved_counts
    if chosen is None:
        return False
    c.counts[chosen.uname] = c.counts.get(chosen.uname, 0) + 1
    return True


def _assign_instances(ws: WorkingSet, c, instances) -> None:
    c.counts = {}
    available_nodes = sum(1 for uname in c.allowed if ws.node_by_uname[uname].can_run())
    max_total, max_per_node = c.clone_max, c.clone_node_max
    optimal = max(1, max_total // available_nodes) if available_nodes else 1
    assigned = 0
    for r in instances:
        if assigned >= max_total:
            break
        if not r.provisional or not r.running_on or r.failed:
            continue
        current = r.current_node()
        if not current.can_run():
            continue
        if c.counts.get(current.uname, 0) >= optimal and current.uname in c.allowed:
            continue
        if _assign_early(ws, c, r, current, max_per_node, max_total - assigned):
            assigned += 1
    for r in instances:
        if not r.provisional:
            continue
        if assigned >= max_total:
            for x in ([r] + (r.members if r.is_group else [])):
                for uname in list(x.allowed) or [n.uname for n in ws.nodes]:
                    x.allowed[uname] = -INFINITY
            if r.is_group:
                allocate(ws, r)
            elif r.managed:
                _record(ws, PRIMITIVE_STAGE, r, r.allowed)
                _assign(r, None, force=False)
            else:
                allocate(ws, r)
        elif _assign_instance(ws, r, None, max_per_node) is not None:
            assigned += 1


def _sort_scores(ws: WorkingSet, rsc) -> Dict[str, int]:
    """A resource's node scores for pcmk__sort_resources: add_colocated_node_scores with 'this with'
    colocations, followed recursively with the product of the factors (a group through its last member,
    which reaches the others through the internal colocations and the first member's own)."""
    return _this_with_scores(ws, rsc, None, None, 1.0)


def _this_with_scores(ws: WorkingSet, rsc, work: Dict[str, int] | None, coloc, factor: float,
                      active: bool = False) -> Dict[str, int] | None:
    if rsc.is_group:  # pcmk__group_add_colocated_node_scores: the last member first, else the first
        if not rsc.members:
            return work
        rsc = rsc.members[-1] if work is None else rsc.members[0]
    if rsc.merging:
        return work
    rsc.merging = True
    if work is None:
        table = dict(rsc.allowed)
    else:
        table = dict(work)
        _add_matching(ws, table, rsc, coloc.attr, factor)
    if can_run_any(ws, table):
        for c in rsc.cons:
            table = _this_with_scores(ws, c.primary, table, c, factor * c.score / float(INFINITY), True)
    elif active:  # pcmk__coloc_select_active: roll back what this step added
        rsc.merging = False
        return work
    rsc.merging = False
    return table


def _cmp_resources(nodes: list, tables: Dict[str, Dict[str, int]], a, b) -> int:
    """cmp_resources: higher priority first, then the higher score on its current node, then the
    higher score on the nodes in order."""
    if a.priority != b.priority:
        return -1 if a.priority > b.priority else 1
    ta, tb = tables[a.id], tables[b.id]
    na = a.running_on[0] if a.running_on else None
    nb = b.running_on[0] if b.running_on else None
    sa = ta.get(na.uname, -INFINITY) if na is not None else -INFINITY
    sb = tb.get(nb.uname, -INFINITY) if nb is not None else -INFINITY
    if sa != sb:
        return -1 if sa > sb else 1
    for n in nodes:
        x, y = ta.get(n.uname, -INFINITY), tb.get(n.uname, -INFINITY)
        if x != y:
            return -1 if x > y else 1
    return 0


def _cmp_sort_nodes(ws: WorkingSet, n1: WNode, n2: WNode) -> int:
    """pcmk__sort_nodes before any assignment: usable first; balanced: more free capacity; not
    minimal: fewer resources; then the name."""
    a1, a2 = n1.can_run(), n2.can_run()
    if a1 != a2:
        return -1 if a1 else 1
    if ws.placement_strategy == "balanced":
        result = compare_capacities(n1, n2)
        if result:
            return -1 if result < 0 else 1
    if ws.placement_strategy != "minimal" and n1.num_resources != n2.num_resources:
        return -1 if n1.num_resources < n2.num_resources else 1
    return _cmp(n1.uname.encode(), n2.uname.encode())


def assign_all(ws: WorkingSet) -> None:
    if ws.placement_strategy != "default":
        # pcmk__sort_resources: with a placement strategy, resources that keep their nodes go first
        nodes = sorted(ws.nodes, key=cmp_to_key(lambda a, b: _cmp_sort_nodes(ws, a, b)))
        tables = {r.id: _sort_scores(ws, r) for r in ws.resources}
        ws.display_resources = list(ws.resources)  # status output keeps the unpacked (priority) order
        ws.resources = sorted(ws.resources, key=cmp_to_key(lambda a, b: _cmp_resources(nodes, tables, a, b)))
    for rsc in ws.resources:
        allocate(ws, rsc)
    _interleave_unassign(ws)


def _clone_min(c) -> int:
    try:
        return max(0, int(c.meta.get("clone-min", "0")))
    except ValueError:
        return 0


def _interleave_unassign(ws: WorkingSet) -> None:
    """A mandatory order between interleaved clones: an instance of 'then' that has no instance
    of 'first' on its node is not allowed to come up (unassign_if_mandatory), which may in turn
    leave instances of clones ordered after it without a partner."""
    pairs = []
    for o in ws.cib.orders:
        first, then = ws.lookup(o.first), ws.lookup(o.then)
        if first is None or then is None or not first.is_clone or not then.is_clone or first is then:
            continue
        mandatory = o.kind == "Mandatory" and not (o.score is not None and o.score == 0)
        symmetric = o.symmetrical if o.symmetrical is not None else True
        if not mandatory or not symmetric or not then.interleave or not o.require_all:
            continue
        if _clone_min(first) > 0:
            continue  # ordered through a clone-one-or-more pseudo-action: nothing to interleave
        if o.first_action in ("stop", "demote") or o.then_action in ("stop", "demote"):
            continue
        pairs.append((first, then))
    changed = True
    while changed and pairs:
        changed = False
        for first, then in pairs:
            nodes = {inst.assigned for inst in first.instances
                     if inst.assigned is not None and not inst.blocked}
            for inst in then.instances:
                if inst.assigned is not None and inst.assigned not in nodes and inst.managed:
                    for m in (inst.members if inst.is_group else [inst]):
                        if m.assigned is not None:
                            m.assigned.num_resources -= 1
                            m.interleave_node = m.assigned
                        m.assigned = None
                        m.next_role = STOPPED
                    changed = True
