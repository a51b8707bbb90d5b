"""Stage 3c: clone instances: their order (pcmk__cmp_instance) and placement limits (split from placement.py)."""
from __future__ import annotations

try:  # the C function functools itself exports: importing functools (and collections) costs start-up time
    from _functools import cmp_to_key
except ImportError:  # a Python without CPython's accelerator modules
    from functools import cmp_to_key

from hadaemon.core.cib.scores import INFINITY
from hadaemon.core.policy.resources import WNode
from hadaemon.core.policy.working import WorkingSet


def _active_node(ws: WorkingSet, r):
    return r.current_node() if r.running_on else None


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _cmp_instance(ws: WorkingSet, r1, r2) -> int:
    """pcmk__cmp_instance: which instance is assigned first."""
    n1, n2 = len(r1.running_on), len(r2.running_on)
    if n1 and n2 and n1 != n2:
        return _cmp(n1, n2)
    node1, node2 = _active_node(ws, r1), _active_node(ws, r2)
    can1 = node1 is None or r1.allowed.get(node1.uname, -INFINITY) >= 0
    can2 = node2 is None or r2.allowed.get(node2.uname, -INFINITY) >= 0
    if not can1:
        node1 = None
    if not can2:
        node2 = None
    if can1 != can2:
        return -1 if can1 else 1
    if r1.priority != r2.priority:
        return -1 if r1.priority > r2.priority else 1
    if node1 is None and node2 is None:
        return 0
    if node1 is None or node2 is None:
        return 1 if node1 is None else -1
    a1, a2 = node1.can_run(), node2.can_run()
    if a1 != a2:
        return -1 if a1 else 1
    c = r1.clone
    p1, p2 = node1.uname in c.allowed, node2.uname in c.allowed
    if not p1 and not p2:
        return 0
    if p1 != p2:
        return -1 if p1 else 1
    f1, f2 = r1.failed, r2.failed
    if f1 != f2:
        return 1 if f1 else -1
    return _cmp(_instance_number(r1), _instance_number(r2))


def _instance_number(r) -> int:
    try:
        return int(r.id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _can_run_instance(ws: WorkingSet, r, node: WNode, max_per_node: int) -> bool:
    if r.removed or not node.can_run():
        return False
    c = r.clone
    score = c.allowed.get(node.uname)
    if score is None or score < 0:
        return False
    return c.counts.get(node.uname, 0) < max_per_node


def _ban_unavailable(ws: WorkingSet, r, max_per_node: int) -> None:
    for uname in r.allowed:
        if not _can_run_instance(ws, r, ws.node_by_uname[uname], max_per_node):
            r.allowed[uname] = -INFINITY
            for m in (r.members if r.is_group else ()):
                if uname in m.allowed:
                    m.allowed[uname] = -INFINITY


def _unassign(r) -> None:
    if r.is_group:
        for m in r.members:
            _unassign(m)
        r.provisional = True
        return
    if r.assigned is not None:
        r.assigned.num_resources -= 1
        for key, value in r.utilization.items():
            r.assigned.capacity[key] = r.assigned.capacity.get(key, 0) + value
    r.assigned = None
    r.provisional = True


def _save_tables(r):
    return [(x, dict(x.allowed), x.next_role if not x.is_group else None)
            for x in ([r] + (r.members if r.is_group else []))]


def _restore_tables(saved) -> None:
    for x, allowed, role in saved:
        x.allowed = dict(allowed)
        if not x.is_group:
            x.next_role = role


def _sort_key(ws: WorkingSet, rsc, current: WNode | None):
    strategy = ws.placement_strategy
    if strategy != "default":
        return cmp_to_key(lambda a, b: _compare_nodes(ws, rsc, current, a, b))

    def key(uname):
        node = ws.node_by_uname[uname]
        w = rsc.allowed[uname] if node.can_run() else -INFINITY
        pref = 0 if (current is not None and current is node) else 1
        return (-w, node.num_resources, pref, uname.encode())
    return key


def _compare_nodes(ws: WorkingSet, rsc, current, u1: str, u2: str) -> int:
    """Pacemaker's node order with a placement strategy: score; balanced: more free capacity;
    not minimal: fewer assigned resources; then the current node, then the name."""
    n1, n2 = ws.node_by_uname[u1], ws.node_by_uname[u2]
    w1 = rsc.allowed[u1] if n1.can_run() else -INFINITY
    w2 = rsc.allowed[u2] if n2.can_run() else -INFINITY
    if w1 != w2:
        return -1 if w1 > w2 else 1
    if ws.placement_strategy != "minimal":
        if ws.placement_strategy == "balanced":
            result = compare_capacities(n1, n2)
            if result:
                return -1 if result < 0 else 1
        if n1.num_resources != n2.num_resources:
            return -1 if n1.num_resources < n2.num_resources else 1
    if current is not None and (current is n1) != (current is n2):
        return -1 if current is n1 else 1
    return _cmp(u1.encode(), u2.encode())


# --- utilization (pcmk_sched_utilization.c) -----------------------------------------------

def compare_capacities(n1: WNode, n2: WNode) -> int:
    """Negative when n1 has more free capacity (counted attribute by attribute)."""
    result = 0
    for key in list(n1.capacity) + [k for k in n2.capacity if k not in n1.capacity]:
        c1, c2 = n1.capacity.get(key, 0), n2.capacity.get(key, 0)
        if c1 > c2:
            result -= 1
        elif c1 < c2:
            result += 1
    return result
