"""Stage 4: resource actions, probes, group pseudo-actions, user orderings and fencing: plan() runs
the action modules (planner, primitives, collective, orderings, fencing, probes) in Pacemaker's order;
their names stay importable from here."""
from __future__ import annotations

from hadaemon.core.policy.collective import (  # noqa: F401  (stage functions, importable from here)
    _clone_pseudo_runnable, _group_pseudo_runnable, _notifications, clone_constraints, create_clone_actions,
    create_group_actions, group_constraints)
from hadaemon.core.policy.fencing import (  # noqa: F401
    _disable_loop_orderings, _load_stopped, schedule_fencing, schedule_unfencing)
from hadaemon.core.policy.orderings import anti_colocation_orderings, user_orderings  # noqa: F401
from hadaemon.core.policy.planner import (  # noqa: F401  (flags and the Planner, importable from here)
    ANTI_COLOCATION, ASYMMETRIC, COLLECTIVE, CONVERTED, FIRST_PRINTED, GRAPH_HIDDEN, IMPLIES_FIRST, IMPLIES_THEN,
    LOAD, LOAD_MIGRATE, NODE_SCOPED, RESTART, RUNNABLE_LEFT, THEN_PRINTED, Planner, _children, _top)
from hadaemon.core.policy.primitives import (  # noqa: F401
    create_primitive_actions, create_probes, internal_constraints)
from hadaemon.core.policy.probes import order_probes
from hadaemon.core.policy.working import WorkingSet


def _mark_blocked(p: Planner, rsc, task: str, reason_rsc: str) -> bool:
    """mark_action_blocked: the resource's (and its children's) runnable 'task' actions cannot run."""
    changed = False
    for a in p.rsc_actions(rsc.id, task):
        if a.runnable:
            a.runnable = False
            a.reason = f"colocation with {reason_rsc}"
            changed = True
    for child in _children(rsc):
        changed |= _mark_blocked(p, child, task, reason_rsc)
    return changed


def _block_colocation_dependents(p: Planner, runnable_before: set, done: set) -> bool:
    """A start or promote that ordering made unrunnable blocks the same action of what is colocated
    with its resource at INFINITY, once no instance or member of the whole resource can do it
    (pcmk__block_colocation_dependents); a promote only for colocations with the promoted role."""
    from hadaemon.core.cib.scores import INFINITY
    ws = p.ws
    changed = False
    for a in list(p.actions):
        if a.runnable or a.id not in runnable_before or a.id in done or a.task not in ("start", "promote"):
            continue
        rsc = p.rsc_of.get(a.id)
        if rsc is None:
            continue
        done.add(a.id)
        top = _top(rsc)
        if any(not p.rsc_actions(ch.id, a.task) or any(x.runnable for x in p.rsc_actions(ch.id, a.task))
               for ch in _children(top)):
            continue
        for c in ws.cib.colocations:
            if c.with_rsc != top.id or c.score < INFINITY:
                continue
            if a.task == "promote" and (c.with_rsc_role or "").lower() not in ("promoted", "master"):
                continue
            dep = ws.lookup(c.rsc)
            if dep is None or dep is top:
                continue
            task = "promote" if (c.rsc_role or "").lower() in ("promoted", "master") else "start"
            changed |= _mark_blocked(p, dep, task, a.rsc)
    return changed


def _reloads_become_restarts(p: Planner) -> None:
    """A reload of a resource that restarts anyway (its start became required through an ordering)
    is dropped: the restart applies the new parameters (Pacemaker cancels the reload)."""
    for r in p.ws.prims.values():
        if not r.reload or r.reload_node is None:
            continue
        starts = [a for a in p.rsc_actions(r.id, "start") if a.node == r.reload_node]
        if any(not a.optional and a.runnable for a in starts):
            for a in p.rsc_actions(r.id, "reload-agent"):
                a.optional = True
                a.runnable = False
            r.reload = False


def plan(ws: WorkingSet) -> Planner:
    p = Planner(ws)
    for rsc in ws.resources:
        if rsc.is_group:
            for m in rsc.members:
                create_primitive_actions(p, m)
            create_group_actions(p, rsc)
        elif rsc.is_clone:
            create_clone_actions(p, rsc)
        else:
            create_primitive_actions(p, rsc)
    for r in ws.prims.values():
        if r.interleave_node is not None and r.managed:
            # Pacemaker unassigns such an instance after its actions exist: the start on the node it
            # had is required but cannot run (pcmk__assign_resource with stop_if_fail)
            start = p.action(r, "start", r.interleave_node, optional=False)
            start.runnable = False
    create_probes(p)
    schedule_unfencing(p)
    for r in ws.prims.values():
        internal_constraints(p, r)
    for g in ws.groups.values():
        group_constraints(p, g)
    for c in ws.clones.values():
        clone_constraints(p, c)
    user_orderings(p)
    anti_colocation_orderings(p)
    _load_stopped(p)
    schedule_fencing(p)
    runnable_before = {a.id for a in p.actions if a.runnable}
    p.settle()
    blocked: set = set()
    while _block_colocation_dependents(p, runnable_before, blocked):
        p.settle()
    _reloads_become_restarts(p)
    groups = list(ws.groups.values()) + [g for c in ws.clones.values() for g in c.instances if g.is_group]
    for g in groups:
        _group_pseudo_runnable(p, g)
    for c in ws.clones.values():
        _clone_pseudo_runnable(p, c)
    order_probes(p)
    for c in ws.clones.values():
        if c.notify:
            _notifications(p, c)
    _disable_loop_orderings(p)
    return p
