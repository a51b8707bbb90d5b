"""Stage 4c: user orderings (plain, symmetrical, clone-min and require-all=false sets, interleaved
clones) and anti-colocation orderings (split from actions.py)."""
from __future__ import annotations

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.planner import (
    _COMPLETED, _INVERSE, ANTI_COLOCATION, ASYMMETRIC, COLLECTIVE, CONVERTED, GRAPH_HIDDEN, IMPLIES_FIRST,
    IMPLIES_THEN, RESTART, RUNNABLE_LEFT, THEN_PRINTED, Planner, _acts)
from hadaemon.core.policy.resources import STARTED


# --- user orderings -----------------------------------------------------------------------

def user_orderings(p: Planner) -> None:
    ws = p.ws
    for o in ws.cib.orders:
        if o.any_of:
            _one_or_more(p, o)
            continue
        first = ws.lookup(o.first)
        then = ws.lookup(o.then)
        if first is None or then is None or first is then:
            continue
        clone_min = _clone_min(first)
        if first.is_clone and (not o.require_all or clone_min) and o.first_action in ("start", "promote") \
                and o.kind != "Serialize" and not o.inverse_only:
            _clone_min_order(p, o, first, then, clone_min or 1)
            sym = o.symmetrical if o.symmetrical is not None else True
            if sym and o.then_action in _INVERSE:
                inv = IMPLIES_FIRST if o.kind == "Mandatory" and not (o.score is not None and o.score == 0) else 0
                _user_order(p, then, _INVERSE[o.then_action], first, _INVERSE[o.first_action], inv)
            continue
        kind = o.kind
        if o.score is not None and o.kind == "Mandatory" and o.score == 0:
            kind = "Optional"
        sym = o.symmetrical if o.symmetrical is not None else kind != "Serialize"
        flags = 0
        inv_flags = 0
        if kind == "Mandatory" and not sym:
            flags = ASYMMETRIC
        elif kind == "Mandatory":
            flags = IMPLIES_THEN
            if o.first_action in ("start", "promote"):
                flags |= RUNNABLE_LEFT
            inv_flags = IMPLIES_FIRST
        if not o.inverse_only:
            _user_order(p, first, o.first_action, then, o.then_action, flags, o.require_all)
        if sym and o.first_action in _INVERSE and o.then_action in _INVERSE:
            _user_order(p, then, _INVERSE[o.then_action], first, _INVERSE[o.first_action], inv_flags)


def _clone_min(c) -> int:
    if not c.is_clone:
        return 0
    try:
        return max(0, int(c.meta.get("clone-min", "0")))
    except ValueError:
        return 0


def _clone_min_order(p: Planner, o, first, then, need: int) -> None:
    """An order after a clone with clone-min (or require-all=false): 'then' needs that many runnable
    instances of 'first' (Pacemaker's clone-one-or-more pseudo-action)."""
    pseudo = Action(len(p.actions), f"clone-one-or-more:{o.id}", "one-or-more", None, None, pseudo=True)
    p.actions.append(pseudo)
    pseudo.runnable = False
    p.collective_min[pseudo.id] = need
    for inst in first.instances:
        for x in ([inst] if not inst.is_group else [inst]):
            task = _COMPLETED.get(o.first_action, o.first_action) if x.is_group else o.first_action
            if not x.is_group and task == "start" and not p.rsc_actions(x.id, task):
                _missing_instance_start(p, first, x)
            for f in p.rsc_actions(x.id, task):
                p.order(f, pseudo, COLLECTIVE | THEN_PRINTED)
                p.collective.setdefault(pseudo.id, []).append(f)
    # runnable from the start when enough are (settling only ever takes runnability away)
    pseudo.runnable = sum(1 for f in p.collective.get(pseudo.id, ()) if f.runnable) >= need
    flags = IMPLIES_THEN | RUNNABLE_LEFT if o.kind == "Mandatory" else RUNNABLE_LEFT
    thens = list(_acts(p, then, o.then_action, False))
    members = []  # the ordering reaches them through their clone's or group's flags: no graph input
    if then.is_clone:
        for r in then.instances:
            members.extend(p.rsc_actions(r.id, o.then_action))
    elif then.is_group:
        for m in then.members:
            members.extend(p.rsc_actions(m.id, o.then_action))
    for t in thens:
        p.order(pseudo, t, flags)
    for t in members:
        p.order(pseudo, t, flags | GRAPH_HIDDEN)


def _missing_instance_start(p: Planner, c, inst) -> None:
    """rsc_order_first: an ordering from an instance's start that the instance does not have (it stops, or
    stays stopped) creates that start, unassigned and so unrunnable; the instance's internal orderings then
    apply to it (a required stop makes it required, and with it the clone's start: cloned_stop_one)."""
    if inst.next_role >= STARTED or inst.assigned is not None:
        return  # it has (or needs) no such start: already started
    start = p.action(inst, "start", None)
    for stop in p.rsc_actions(inst.id, "stop"):
        p.order(stop, start, IMPLIES_THEN | RESTART)
    for cstart in p.rsc_actions(c.id, "start"):
        p.order(cstart, start, RUNNABLE_LEFT | IMPLIES_FIRST)
    for running in p.rsc_actions(c.id, "running"):
        p.order(start, running, IMPLIES_THEN | COLLECTIVE)
        p.collective.setdefault(running.id, []).append(start)


def _one_or_more(p: Planner, o) -> None:
    """A set ordered with require-all=false: a pseudo-action runnable when any 'first' action is,
    before every 'then' action (Pacemaker's one-or-more pseudo-action)."""
    ws = p.ws
    pseudo = Action(len(p.actions), f"one-or-more:{o.id}", "one-or-more", None, None, pseudo=True)
    p.actions.append(pseudo)
    pseudo.runnable = False
    for rid in o.any_of:
        r = ws.lookup(rid)
        if r is None:
            continue
        task = _COMPLETED.get(o.first_action, o.first_action) if (r.is_group or r.is_clone) else o.first_action
        for f in _acts(p, r, task, True):
            p.order(f, pseudo, COLLECTIVE | THEN_PRINTED)
            p.collective.setdefault(pseudo.id, []).append(f)
    pseudo.runnable = any(f.runnable for f in p.collective.get(pseudo.id, ()))
    flags = IMPLIES_THEN | RUNNABLE_LEFT if o.kind == "Mandatory" else RUNNABLE_LEFT
    for rid in o.then_all:
        r = ws.lookup(rid)
        if r is not None:
            for t in _acts(p, r, o.then_action, False):
                p.order(pseudo, t, flags)


def _user_order(p: Planner, first, ftask: str, then, ttask: str, flags: int,
                require_all: bool = True) -> None:
    p.constraint(first, ftask, then, ttask, flags)
    if first.is_clone and then.is_clone and _interleaved(first, ftask, then, ttask) and require_all:
        _interleave_order(p, first, ftask, then, ttask, flags)
        # the clones' own actions stay ordered too (a graph input; the instances carry the flags)
        done = _COMPLETED.get(ftask, ftask)
        for t in p.rsc_actions(then.id, ttask):
            for f in p.rsc_actions(first.id, done):
                p.order(f, t, CONVERTED if done != ftask else 0)
            if done != ftask:
                for f in p.rsc_actions(first.id, ftask):
                    p.first_links.append((f, t, flags))
        return
    original = ftask
    if (first.is_group or first.is_clone) and ftask in _COMPLETED:
        ftask = _COMPLETED[ftask]
    if then.is_clone and not first.is_clone:
        # then-implies-first makes a primitive's or group's action required only when it already is
        # (pcmk__update_ordered_actions): a required clone action requires nothing before it
        flags &= ~IMPLIES_FIRST
    firsts = _acts(p, first, ftask, True)
    thens = list(_acts(p, then, ttask, False))
    members = []  # their flags follow the ordering too, but they are no graph inputs of its first action
    if then.is_clone:
        for r in then.instances:
            acts = [a for a in p.rsc_actions(r.id, ttask) if a.runnable]
            members.extend(acts)
            if r.is_group and acts:
                # a cloned group's instance passes the ordering on to its members (as a group does)
                for m in r.members:
                    members.extend(p.rsc_actions(m.id, ttask))
    if then.is_group:
        # Pacemaker applies an ordering whose 'then' is a group action to the members' actions too
        for m in then.members:
            members.extend(p.rsc_actions(m.id, ttask))
    converted = CONVERTED if ftask != original else 0
    if converted:
        # a group's or clone's completed action takes its flags from its members' or instances' actions:
        # what is ordered after it being required does not make it required (B_stopped stays optional)
        flags &= ~IMPLIES_FIRST
    for f in firsts:
        for t in thens:
            p.order(f, t, flags | converted)
        for t in members:
            p.order(f, t, flags | converted | GRAPH_HIDDEN)
    if converted:
        for f in p.rsc_actions(first.id, original):
            for t in thens:
                p.first_links.append((f, t, flags))
    _migration_equivalents(p, first, original, then, ttask, firsts, converted)


def _migration_equivalents(p: Planner, first, ftask: str, then, ttask: str, firsts, flags: int) -> None:
    """pcmk__order_migration_equivalents: an ordering of starts, stops, promotes or demotes holds for a live
    migration of its 'then' resource too. "A start then B start": A's start (not one that is part of A's
    own migration) and, both migrating, A's migrate_from before B's migrate_to; "A stop then B stop": A's
    stop (not part of A's migration) before B's migrate_to; "A promote then B start" and "A demote then
    B stop": before B's migrate_to. The stop and demote cases also come before B's migrate_from when B is
    partially migrated."""
    if first is then or then.is_group or then.is_clone or not then.allow_migrate:
        return
    first_migrating = not (first.is_group or first.is_clone) and getattr(first, "migrating", None) is not None
    kind = (ftask, ttask)
    if kind not in (("start", "start"), ("stop", "stop"), ("promote", "start"), ("demote", "stop")):
        return
    if kind == ("start", "start") and first_migrating:
        befores = p.rsc_actions(first.id, "migrate_from")
    elif kind == ("stop", "stop") and first_migrating:
        befores = []
    else:
        befores = firsts
    tasks = ["migrate_to"]
    if ttask == "stop" and then.partial_migration_target is not None:
        tasks.append("migrate_from")
    for f in befores:
        for task in tasks:
            for t in p.rsc_actions(then.id, task):
                p.order(f, t, flags)


def _interleaved(first, ftask: str, then, ttask: str) -> bool:
    """can_interleave_actions: the 'then' clone's interleave decides (the 'first' one's for stops)."""
    rsc = first if ttask in ("stop", "demote") else then
    return rsc.interleave


def _interleave_order(p: Planner, first, ftask: str, then, ttask: str, flags: int) -> None:
    """Each 'then' instance is ordered after the 'first' instance on the same node (its current
    node for stops); with none there, a mandatory order keeps it from starting."""
    current = ftask in ("stop", "demote")
    for t in then.instances:
        node = t.current_node() if current else t.assigned
        f = None
        if node is not None:
            for inst in first.instances:
                where = inst.current_node() if current else inst.assigned
                if where is node and not inst.blocked:
                    f = inst
                    break
        if f is None:
            if not current and flags & (RUNNABLE_LEFT | IMPLIES_THEN):
                for x in ([t] + (t.members if t.is_group else [])):
                    for a in p.rsc_actions(x.id, ttask):
                        a.runnable = False
            continue
        fname = _COMPLETED.get(ftask, ftask) if f.is_group else ftask
        fa = [a for a in p.rsc_actions(f.id, fname) if node is None or a.node in (None, node.uname)]
        ta = [a for a in p.rsc_actions(t.id, ttask) if node is None or a.node in (None, node.uname)]
        for x in fa[:1]:
            for y in ta[:1]:
                p.order(x, y, flags)


def anti_colocation_orderings(p: Planner) -> None:
    """A colocation at -INFINITY orders, both ways, what makes one resource lose its role (stop, or
    demote from promoted; an unpromoted role is also lost by a promote) before what makes the other gain
    its role (start, or promote to promoted; demote to unpromoted) (anti_colocation_order). Such an
    ordering changes no action; it is a graph input only on the same node."""
    from hadaemon.core.cib.scores import INFINITY
    ws = p.ws

    def losing(role: str) -> tuple:
        return ("demote",) if role == "promoted" else (("stop", "promote") if role == "unpromoted" else ("stop",))

    def gaining(role: str) -> tuple:
        return ("promote",) if role == "promoted" else (("start", "demote") if role == "unpromoted" else ("start",))

    for c in ws.cib.colocations:
        if c.score > -INFINITY:
            continue
        dep, primary = ws.lookup(c.rsc), ws.lookup(c.with_rsc)
        if dep is None or primary is None:
            continue
        roles = {"master": "promoted", "slave": "unpromoted"}
        dep_role = (c.rsc_role or "").lower()
        primary_role = (c.with_rsc_role or "").lower()
        dep_role, primary_role = roles.get(dep_role, dep_role), roles.get(primary_role, primary_role)
        for first, frole, then, trole in ((dep, dep_role, primary, primary_role),
                                          (primary, primary_role, dep, dep_role)):
            for ftask in losing(frole):
                for ttask in gaining(trole):
                    p.constraint(first, ftask, then, ttask, ANTI_COLOCATION)
                    # a group's or clone's action ordered first is its completed one in the graph
                    done = _COMPLETED[ftask] if (first.is_group or first.is_clone) else ftask
                    for f in p.rsc_actions(first.id, done):
                        for t in p.rsc_actions(then.id, ttask):
                            p.order(f, t, ANTI_COLOCATION | (CONVERTED if done != ftask else 0))
