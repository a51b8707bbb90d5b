"""Stage 3d: utilization (pcmk_sched_utilization.c) and choosing a node (split from placement.py)."""
from __future__ import annotations

from hadaemon.core.cib.scores import INFINITY
from hadaemon.core.policy.resources import STOPPED, WNode
from hadaemon.core.policy.working import WorkingSet

from hadaemon.core.policy.instances import _sort_key, compare_capacities

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict


def _enough(node: WNode, need: Dict[str, int]) -> bool:
    return all(value <= node.capacity.get(key, 0) for key, value in need.items())


def _colocated(rsc, out: list) -> list:
    """The primitives colocated with this one at INFINITY, either way, groups taken whole
    (colocated_resources); a clone counts as itself (its dependents only when they are clones)."""
    if rsc in out:
        return out
    if rsc.is_clone:
        out.append(rsc)
        for c in rsc.cons:
            if c.score >= INFINITY and c.dep_role is None and c.primary_role is None:
                _colocated(c.primary, out)
        for c in rsc.cons_lhs:
            if c.score >= INFINITY and c.dep.is_clone and c.dep_role is None and c.primary_role is None:
                _colocated(c.dep, out)
        return out
    if rsc.is_group:
        for m in rsc.members:
            _colocated(m, out)
        return out
    out.append(rsc)
    if rsc.group is not None:
        _colocated(rsc.group, out)
    for c in rsc.cons:
        if c.score >= INFINITY:
            _colocated(c.primary, out)
    for c in rsc.cons_lhs:
        if c.score >= INFINITY:
            _colocated(c.dep, out)
    return out


def _clone_utilization(c, together: list) -> Dict[str, int]:
    """pcmk__clone_add_utilization: a clone being placed adds the utilization of its instance whose
    group member is already counted, or of its first instance when none of its instances is."""
    out: Dict[str, int] = {}
    existing = False
    for inst in c.instances:
        if inst in together:
            existing = True
        elif inst.is_group and any(m in together for m in inst.members):
            for m in inst.members:
                for key, value in m.utilization.items():
                    out[key] = out.get(key, 0) + value
            existing = True
    if not existing and c.instances:
        first = c.instances[0]
        for m in (first.members if first.is_group else [first]):
            for key, value in m.utilization.items():
                out[key] = out.get(key, 0) + value
    return out


def ban_insufficient_capacity(ws: WorkingSet, rsc) -> WNode | None:
    """pcmk__ban_insufficient_capacity: nodes that cannot hold the resource (and what is colocated
    with it) are banned; returns the most capable node when none can hold them all."""
    together = [r for r in _colocated(rsc, []) if r is rsc or r.provisional]
    need: Dict[str, int] = {}
    for r in together:
        for key, value in (_clone_utilization(r, together) if r.is_clone else r.utilization).items():
            need[key] = need.get(key, 0) + value
    any_capable = False
    most = None
    for uname, score in rsc.allowed.items():
        node = ws.node_by_uname[uname]
        if score < 0 or not node.can_run():
            continue
        if _enough(node, need):
            any_capable = True
        if most is None or compare_capacities(node, most) < 0:
            most = node
    need_one = need if any_capable else rsc.utilization
    for uname, score in list(rsc.allowed.items()):
        node = ws.node_by_uname[uname]
        if score >= 0 and node.can_run() and not _enough(node, need_one):
            rsc.allowed[uname] = -INFINITY
    return None if any_capable else most


def _choose_node(ws: WorkingSet, rsc, prefer: WNode | None = None) -> None:
    if not rsc.provisional:
        return
    current = rsc.current_node()
    unames = sorted(rsc.allowed, key=_sort_key(ws, rsc, current))
    chosen = None
    if prefer is not None and unames:
        score = rsc.allowed.get(prefer.uname)
        best_score = rsc.allowed[unames[0]] if ws.node_by_uname[unames[0]].can_run() else -INFINITY
        if score is not None and score >= best_score and score >= 0 and prefer.can_run():
            _assign(rsc, prefer, force=False)
            return
    if unames:
        best = unames[0]
        node = ws.node_by_uname[best]
        if rsc.allowed[best] >= 0 and node.can_run():
            chosen = node
            # among equally good positive scores, stay where the resource runs now
            if current is not None and current.can_run() and rsc.allowed[best] > 0:
                for other in unames[1:]:
                    if rsc.allowed[other] != rsc.allowed[best]:
                        break
                    if other == current.uname:
                        chosen = current
    _assign(rsc, chosen, force=False)


def _assign(rsc, node: WNode | None, force: bool) -> None:
    rsc.provisional = False
    if node is None or (not force and not node.can_run()):
        rsc.assigned = None
        rsc.next_role = STOPPED
        return
    rsc.assigned = node
    node.num_resources += 1
    for key, value in rsc.utilization.items():
        node.capacity[key] = node.capacity.get(key, 0) - value
