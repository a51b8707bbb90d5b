"""Stage 4b: groups and clones: their pseudo-actions and internal orderings, clone notifications,
and their pseudo-actions' flags from the members' and instances' (split from actions.py)."""
from __future__ import annotations

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.planner import (
    COLLECTIVE, CONVERTED, FIRST_PRINTED, GRAPH_HIDDEN, IMPLIES_FIRST, IMPLIES_THEN, RESTART, RUNNABLE_LEFT,
    THEN_PRINTED, Planner, _instance_number, _order_tasks)
from hadaemon.core.policy.primitives import create_primitive_actions
from hadaemon.core.policy.working import leaves


# --- groups -------------------------------------------------------------------------------

def create_group_actions(p: Planner, g) -> None:
    p.action(g, "start", None, pseudo=True)
    p.action(g, "running", None, pseudo=True)
    p.action(g, "stop", None, pseudo=True)
    p.action(g, "stopped", None, pseudo=True)
    if g.promotable:  # an instance of a promotable cloned group
        for task in ("demote", "demoted", "promote", "promoted"):
            p.action(g, task, None, pseudo=True)


# --- clones -------------------------------------------------------------------------------

def create_clone_actions(p: Planner, c) -> None:
    """Instances' actions, then the clone's pseudo-actions (pcmk__create_instance_actions)."""
    for inst in c.instances:
        if inst.is_group:
            for m in inst.members:
                create_primitive_actions(p, m)
            create_group_actions(p, inst)
        else:
            create_primitive_actions(p, inst)
    starting = stopping = active = False
    for r in leaves(c):
        active = active or bool(r.running_on)
        for a in p.rsc_actions(r.id, "start"):
            starting = starting or (not a.optional and a.runnable)
        for a in p.rsc_actions(r.id, "stop"):
            stopping = stopping or (not a.optional and (a.runnable or a.pseudo))
    start = p.action(c, "start", None, pseudo=True, optional=not starting)
    running = p.action(c, "running", None, pseudo=True, optional=not starting)
    # runnable when an instance's start is (pcmk__collective_action_flags): active instances that
    # are not staying up do not count
    running.runnable = any(a.runnable for r in leaves(c) for a in p.rsc_actions(r.id, "start"))
    p.action(c, "stop", None, pseudo=True, optional=not stopping)
    p.action(c, "stopped", None, pseudo=True, optional=not stopping)
    start.runnable = True
    if c.promotable:
        promoting = demoting = False
        for r in leaves(c):
            for a in p.rsc_actions(r.id, "promote"):
                promoting = promoting or not a.optional
            for a in p.rsc_actions(r.id, "demote"):
                demoting = demoting or not a.optional
        p.action(c, "promote", None, pseudo=True, optional=not promoting)
        promoted = p.action(c, "promoted", None, pseudo=True, optional=not promoting)
        promoted.runnable = any(a.runnable for r in leaves(c) for a in p.rsc_actions(r.id, "promote"))
        p.action(c, "demote", None, pseudo=True, optional=not demoting)
        p.action(c, "demoted", None, pseudo=True, optional=not demoting)


def clone_constraints(p: Planner, c) -> None:
    _order_tasks(p, c, "stopped", c, "start", 0)
    _order_tasks(p, c, "start", c, "running", RUNNABLE_LEFT)
    _order_tasks(p, c, "stop", c, "stopped", RUNNABLE_LEFT)
    running = p.rsc_actions(c.id, "running")[0]
    stopped = p.rsc_actions(c.id, "stopped")[0]
    last = None
    for r in sorted(c.instances, key=lambda x: _instance_number(x)):
        _order_tasks(p, c, "start", r, "start", RUNNABLE_LEFT | IMPLIES_FIRST)
        for a in p.rsc_actions(r.id, "running" if r.is_group else "start"):
            p.order(a, running, IMPLIES_THEN | COLLECTIVE)
            p.collective.setdefault(running.id, []).append(a)
        _order_tasks(p, c, "stop", r, "stop", IMPLIES_FIRST)
        p.constraint(r, "stop", c, "stopped", IMPLIES_THEN)
        for a in p.rsc_actions(r.id, "stopped" if r.is_group else "stop"):
            p.order(a, stopped, IMPLIES_THEN | COLLECTIVE)
            p.collective.setdefault(stopped.id, []).append(a)
        if c.ordered and last is not None:
            _order_tasks(p, last, "start", r, "start", 0)
            _order_tasks(p, r, "stop", last, "stop", 0)
        last = r
    if c.promotable:
        _promotable_constraints(p, c)


def _promotable_constraints(p: Planner, c) -> None:
    # (pcmk__promotable_restart_ordering; promote -> promoted is no ordering of Pacemaker's: its flags come
    # from the instances' promotes, so it is no graph input)
    for first, then, flags in (("demoted", "stop", 0), ("running", "promote", RUNNABLE_LEFT),
                               ("demoted", "start", 0), ("stopped", "promote", 0),
                               ("demoted", "promote", 0), ("promote", "promoted", RUNNABLE_LEFT | GRAPH_HIDDEN),
                               ("demote", "demoted", RUNNABLE_LEFT)):
        _order_tasks(p, c, first, c, then, flags)
    promoted = p.rsc_actions(c.id, "promoted")[0]
    demoted = p.rsc_actions(c.id, "demoted")[0]
    last = None
    for r in sorted(c.instances, key=lambda x: _instance_number(x)):
        _order_tasks(p, c, "promote", r, "promote", RUNNABLE_LEFT | IMPLIES_FIRST)
        for a in p.rsc_actions(r.id, "promoted" if r.is_group else "promote"):
            p.order(a, promoted, IMPLIES_THEN | COLLECTIVE)
            p.collective.setdefault(promoted.id, []).append(a)
        _order_tasks(p, c, "demote", r, "demote", IMPLIES_FIRST)
        for a in p.rsc_actions(r.id, "demoted" if r.is_group else "demote"):
            p.order(a, demoted, IMPLIES_THEN)
        if c.ordered and last is not None:
            _order_tasks(p, last, "promote", r, "promote", 0)
            _order_tasks(p, r, "demote", last, "demote", 0)
        last = r


def group_constraints(p: Planner, g) -> None:
    _order_tasks(p, g, "stopped", g, "start", 0)
    _order_tasks(p, g, "stop", g, "stopped", RUNNABLE_LEFT)
    _order_tasks(p, g, "start", g, "running", RUNNABLE_LEFT)
    last = None
    for m in g.members:
        stop_flags = 0
        stopped_flags = THEN_PRINTED | IMPLIES_THEN
        start_flags = IMPLIES_THEN | RUNNABLE_LEFT
        started_flags = RUNNABLE_LEFT | IMPLIES_THEN | THEN_PRINTED
        if last is None and g.ordered:
            stopped_flags = IMPLIES_THEN
        _order_tasks(p, g, "stop", m, "stop", stop_flags | FIRST_PRINTED)
        _order_tasks(p, m, "stop", g, "stopped", stopped_flags)
        _order_tasks(p, m, "start", g, "running", started_flags)
        _order_tasks(p, g, "start", m, "start", start_flags | FIRST_PRINTED)
        if g.promotable:  # demote and promote like stop and start (member_internal_constraints)
            _order_tasks(p, g, "demote", m, "demote", stop_flags | FIRST_PRINTED)
            _order_tasks(p, m, "demote", g, "demoted", stopped_flags)
            _order_tasks(p, m, "promote", g, "promoted", started_flags)
            _order_tasks(p, g, "promote", m, "promote", start_flags | FIRST_PRINTED)
            if g.ordered and last is not None:
                _order_tasks(p, last, "promote", m, "promote", start_flags)
                _order_tasks(p, m, "demote", last, "demote", 0)
        if not g.ordered:
            pass
        elif last is not None:
            _order_tasks(p, last, "start", m, "start", start_flags)
            _order_tasks(p, m, "stop", last, "stop", RESTART)
        last = m
    if g.ordered and last is not None:
        _order_tasks(p, g, "stop", last, "stop", IMPLIES_THEN)
        _order_tasks(p, last, "stop", g, "stopped", 0)


_NOTIFY_TASKS = (("demote", "demoted"), ("stop", "stopped"), ("start", "running"), ("promote", "promoted"))


def _notifications(p: Planner, c) -> None:
    """notify=true: around each of the clone's executed start/stop/promote/demote, pre- and post-
    notifications to the instances active before and after it, each batch confirmed by a pseudo-action
    (pe__create_clone_notifications); demote, stop, start and promote notifications in that order."""
    ws = p.ws

    def executed(task):
        return [a for a in p.rsc_actions(c.id, task) if not a.optional and a.runnable]

    def doing(r, task) -> bool:
        # collect_resource_data: a required action that can run; a stop on an unclean node counts even
        # when it cannot (the node may not be fenceable)
        return any(not a.optional and (a.runnable or (task == "stop" and _unclean(a.node)))
                   for a in p.rsc_actions(r.id, task))

    def _unclean(uname) -> bool:
        node = ws.node_by_uname.get(uname) if uname is not None else None
        return node is not None and node.unclean

    def pseudo(key: str) -> Action:
        a = Action(len(p.actions), key, "notify", c.id, None, pseudo=True, optional=False)
        p.actions.append(a)
        return a

    def notify(r, node_uname: str, key: str) -> Action | None:
        node = ws.node_by_uname.get(node_uname)
        if node is None or not node.online:
            return None  # new_notify_action: no notification for an instance on an offline node
        a = Action(len(p.actions), key, "notify", r.id, node_uname, optional=False)
        p.actions.append(a)
        p.by_task[(r.id, "notify")].append(a)
        return a

    prims = leaves(c)
    previous_confirmed = None
    for task, done in _NOTIFY_TASKS:
        acts, completed = executed(task), executed(done)
        if not acts or not completed or not any(doing(r, task) for r in prims):
            continue  # notifications are required only when an instance really does it (expand_notification_data)
        staying = [r for r in prims if r.running_on and not doing(r, "stop")]
        # create_notify_actions: stop/demote notify the instances active now (a demote's post-notification
        # too, a stop's only those staying); start/promote the instances placed (a start's pre-notification
        # only those already running, a promote's also those starting in this transition)
        if task in ("stop", "demote"):
            before = [(r, r.running_on[0].uname) for r in prims if r.running_on]
            after = before if task == "demote" else [(r, r.running_on[0].uname) for r in staying]
        else:
            after = [(r, r.assigned.uname) for r in prims if r.assigned is not None
                     and (r.running_on or doing(r, "start"))]
            before = after if task == "promote" else [(r, r.running_on[0].uname) for r in staying]
        pre = pseudo(f"{c.id}_pre_notify_{task}_0")
        pre_done = pseudo(f"{c.id}_confirmed-pre_notify_{task}_0")
        if previous_confirmed is not None:
            p.order(previous_confirmed, pre, 0)
        for r, node in before:
            n = notify(r, node, f"{r.id}_pre_notify_{task}_0")
            if n is None:
                continue
            p.order(pre, n, 0)
            p.order(n, pre_done, 0)
        p.order(pre, pre_done, 0)
        for a in acts:
            p.order(pre_done, a, 0)
        post = pseudo(f"{c.id}_post_notify_{done}_0")
        post_done = pseudo(f"{c.id}_confirmed-post_notify_{done}_0")
        for a in completed:
            p.order(a, post, 0)
        for r, node in after:
            # an instance's key names the notified operation for both types (pcmk__notify_key with
            # notify_operation); only the clone's pseudo-actions use the completed form (running, ...)
            n = notify(r, node, f"{r.id}_post_notify_{task}_0")
            if n is None:
                continue
            p.order(post, n, 0)
            p.order(n, post_done, 0)
        # new_post_notify_action: the instance's recurring monitors wait for all post-notifications
        for r, _node in after:
            for a in p.by_task.get((r.id, "monitor"), ()):
                if a.interval_ms > 0:
                    p.order(post_done, a, 0)
        p.order(post, post_done, 0)
        p.order(pre_done, post, 0)  # pe__clone_notif_pseudo_ops
        # what is ordered after the clone's completed action waits for its notifications to be confirmed
        # (action_uuid_for_ordering: <clone>_confirmed-post_notify_<done>_0 with notify=true)
        for i, (f, t, flags) in enumerate(p.edges):
            if flags & CONVERTED and not flags & GRAPH_HIDDEN and f in completed:
                p.edges[i] = (f, t, flags | GRAPH_HIDDEN)
                p.order(post_done, t, 0)
        previous_confirmed = post_done


def _group_pseudo_runnable(p: Planner, g) -> None:
    """A group's stopped (demoted) pseudo-action cannot complete when a member's stop (demote) cannot
    run (pcmk__group_action_flags: a completion pseudo-action is unrunnable with any member's action)."""
    for task, done in (("stop", "stopped"), ("demote", "demoted")):
        if any(not a.runnable for m in g.members for a in p.rsc_actions(m.id, task)[:1]):
            for a in p.rsc_actions(g.id, done):
                a.runnable = False


def _clone_pseudo_runnable(p: Planner, c) -> None:
    """A clone's start/stop/promote/demote pseudo-action is required when some instance's action of that
    kind is, and it and the one completing it are runnable only when some instance's own action of that
    kind is (pcmk__collective_action_flags: a primitive instance's action, a cloned group's pseudo-action):
    one that no instance can carry out is not in the graph."""
    for task, done in _NOTIFY_TASKS:
        own = p.rsc_actions(c.id, task)
        if not own:
            continue
        # ... and required when some instance's is (a cloned group's through its members')
        if any(not a.optional for r in leaves(c) for a in p.rsc_actions(r.id, task)):
            for a in own:
                a.optional = False
        if any(a.runnable for inst in c.instances for a in p.rsc_actions(inst.id, task)[:1]):
            continue
        for a in own + p.rsc_actions(c.id, done):
            a.runnable = False
