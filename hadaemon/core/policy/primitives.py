"""Stage 4a: a primitive's actions: stop/start, roles, migration, recurring monitors (active and
Stopped role), probes, its internal stop-then-start (split from actions.py)."""
from __future__ import annotations

try:  # the C type collections itself exports: importing collections costs start-up time
    from _collections import defaultdict
except ImportError:  # a Python without CPython's accelerator modules
    from collections import defaultdict

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.planner import (
    GRAPH_HIDDEN, IMPLIES_FIRST, IMPLIES_THEN, RESTART, RUNNABLE_LEFT, Planner, _top)
from hadaemon.core.policy.resources import PROMOTED, STARTED, STOPPED, UNKNOWN, UNPROMOTED, WNode
from hadaemon.core.policy.working import WorkingSet

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict


# --- primitives ---------------------------------------------------------------------------

def _stop_rsc(p: Planner, r, optional: bool) -> None:
    for node in r.running_on:
        a = p.action(r, "stop", node, optional=optional)
        if r.assigned is None and a.reason is None and r.interleave_node is None:
            a.reason = "node availability"
        if not r.managed:
            a.runnable = False


def _start_rsc(p: Planner, r, node: WNode | None, optional: bool) -> Action:
    a = p.action(r, "start", node, optional=True)
    if a.runnable and not optional and a.id not in p.frozen:
        a.optional = False
    return a


def create_primitive_actions(p: Planner, r) -> None:
    if not r.promotable:
        _create_primitive_actions(p, r)
        return
    # a promotable instance: start/stop as for any primitive, then promote/demote on top
    role, nxt = r.role, r.next_role
    r.full_next = nxt
    r.full_role = role  # the role it has now (r.role reads Started while its start/stop are created)
    r.role = STARTED if role > STARTED else role
    r.next_role = STARTED if nxt > STARTED else nxt
    try:
        _create_primitive_actions(p, r)
    finally:
        base_next = r.next_role
        r.role = role
        r.next_role = nxt if nxt > STARTED else base_next
    _role_actions(p, r)


def _role_actions(p: Planner, r) -> None:
    chosen = r.assigned
    current = r.current_node()
    demote = None
    if r.role == PROMOTED and current is not None:
        stays = r.next_role == PROMOTED and chosen is current
        demote = p.action(r, "demote", current, optional=stays)
        if not r.managed:
            demote.runnable = False
        for cancel, before in p.role_cancels:
            if before == "demote" and cancel.rsc == r.id and cancel.node == current.uname:
                p.order(cancel, demote, RUNNABLE_LEFT)
        for stop in p.rsc_actions(r.id, "stop"):
            if stop.node == current.uname:
                p.order(demote, stop, IMPLIES_FIRST)
    if r.next_role == PROMOTED and chosen is not None:
        stays = r.role == PROMOTED and chosen is current
        promote = p.action(r, "promote", chosen, optional=stays)
        for start in p.rsc_actions(r.id, "start"):
            if start.node == chosen.uname:
                p.order(start, promote, RUNNABLE_LEFT | IMPLIES_THEN)
        for cancel, before in p.role_cancels:
            if before == "promote" and cancel.rsc == r.id and cancel.node == chosen.uname:
                p.order(cancel, promote, RUNNABLE_LEFT)
        if demote is not None:
            p.order(demote, promote, 0)
        if not r.managed:
            promote.runnable = False
    # the new role's monitors run after the promote or demote (recurring_op_for_active)
    after = promote if r.next_role == PROMOTED and chosen is not None else demote
    if after is not None and chosen is not None:
        for mon in p.rsc_actions(r.id, "monitor"):
            if mon.interval_ms > 0 and mon.node == chosen.uname:
                p.order(after, mon, RUNNABLE_LEFT)


def _create_primitive_actions(p: Planner, r) -> None:
    ws = p.ws
    chosen = r.assigned
    if r.next_role == UNKNOWN:
        r.next_role = STOPPED if chosen is None else STARTED
    current = r.current_node()
    if r.requires != "fencing":
        active = [n for n in r.running_on if not n.unclean]
    else:
        active = r.running_on
    # a completed migration whose source still needs its stop (dangling) neither continues a partial
    # migration nor migrates again: the resource moves (as crm_simulate does)
    partial = (r.partial_migration_source is not None and chosen is not None
               and chosen is r.partial_migration_target and len(active) == 2 and not r.dangling_migrations)
    if partial:
        current = r.partial_migration_source
    multiply = len(active) > 1 and not partial
    if len(active) > 1 and not partial and r.partial_migration_source is not None:
        multiply = False  # a migration that will not continue: stopped on both nodes, not an error
        r.partial_migration_source = r.partial_migration_target = None
        need_stop_everywhere = True
    else:
        need_stop_everywhere = False
    for source in r.dangling_migrations:
        stop = p.action(r, "stop", source, optional=False)  # finish a completed migration
        stop.stage = 0
        p.dangling.add(stop.id)
    need_stop = need_stop_everywhere
    if multiply:
        if r.multiple_active in ("stop_start", "stop_unexpected"):
            need_stop = True
    if r.start_pending:
        _start_rsc(p, r, chosen, True).printed = True  # a pending start is sent again
    moving = current is not None and chosen is not None and current is not chosen
    if partial:
        _continue_migration(p, r, r.partial_migration_source, chosen)
        return
    if moving:
        need_stop = True
    elif r.failed:
        if r.stop_flag:
            need_stop = True
    elif r.blocked:
        need_stop = True
    if r.failed and r.stop_flag:
        for node in r.running_on:
            p.action(r, "stop", node).stage = 0  # Pacemaker schedules it while reading the history
    if r.role == STARTED:
        _stop_rsc(p, r, not need_stop)
        if r.next_role >= r.role and not r.blocked:
            _start_rsc(p, r, chosen, not need_stop)
    if r.role != r.next_role:
        if r.next_role == STOPPED:
            _stop_rsc(p, r, False)
        else:
            _start_rsc(p, r, chosen, False)
    if r.next_role == STARTED and chosen is not None and r.managed:
        if r.definition_changed or chosen.uname in r.agent_changed:
            start = p.action(r, "start", chosen)
            start.stage = min(start.stage, 1)
            if start.optional:
                start.optional = False
            if r.definition_changed and start.reason is None:
                start.reason = "resource definition change"
        if r.reload and current is chosen and not need_stop:
            p.action(r, "reload-agent", chosen, optional=False)
    elif r.definition_changed and chosen is None and r.managed and r.running_on and not r.removed \
            and not r.orphan:
        # pcmk__check_action_config restarts it before assignment: a required start on no node (unrunnable)
        start = p.action(r, "start", None, optional=False)
        start.stage = min(start.stage, 1)
    for uname in sorted(r.agent_changed):
        node = ws.node_by_uname[uname]
        delete = p.action(r, "delete", node, optional=False)
        delete.stage = 1
        for stop in p.rsc_actions(r.id, "stop"):
            p.order(stop, delete, 0)
        for start in p.rsc_actions(r.id, "start"):
            p.order(delete, start, 0)
    if (r.orphan or (r.removed and r.clone is not None and r.clone.unique)) and r.managed and not r.failed:
        _forget_removed(p, r)
    for uname, task, interval in r.cancel:
        cancel = p.action(r, "cancel", ws.node_by_uname[uname], interval, optional=False)
        cancel.stage = 1
        cancel.key = f"{r.id}_{task}_{interval}"  # pcmk__new_cancel_action: keyed by the cancelled operation
        for stop in p.rsc_actions(r.id, "stop"):
            p.order(stop, cancel, 0)  # pcmk__schedule_cancel: cancellations happen after stops
    if r.blocked:
        pass
    elif r.next_role != STOPPED or not r.managed:
        start = _start_rsc(p, r, chosen, True)
        _recurring(p, r, start, chosen)
    if not r.blocked and not ws.maintenance_mode:
        _recurring_inactive(p, r)
    allow = (r.allow_migrate and moving and r.managed and not r.failed and not r.start_pending
             and current is not None and not current.unclean and r.next_role >= STARTED
             and not multiply and not r.dangling_migrations)
    blocker = _first_moving(ws, r) if allow else None
    if blocker is not None:
        allow = False
        for stop in p.rsc_actions(r.id, "stop"):
            if stop.reason is None:
                stop.reason = f"unrunnable {blocker.id} stop"  # crm_simulate's reason for the move
    if allow:
        start = p.action(r, "start", chosen)
        if start.runnable:
            r.migrating = (current, chosen)
            _migration_actions(p, r, current, chosen, start)


def _forget_removed(p: Planner, r) -> None:
    """A removed resource's history is deleted on every node that has it and can take an action
    (pcmk__handle_rsc_config_changes: the node is available, or in maintenance; DeleteRsc: online and clean,
    the resource not failed), after its stops there; not for an anonymous clone's removed instance."""
    for uname in r.history_all:
        node = p.ws.node_by_uname.get(uname)
        if node is None or not node.online or node.unclean:
            continue
        if not node.maintenance and (node.shutdown or node.standby or node.pending):
            continue
        delete = p.action(r, "delete", node, optional=False)
        for stop in p.rsc_actions(r.id, "stop"):
            if stop.node == uname:
                p.order(stop, delete, IMPLIES_THEN | RUNNABLE_LEFT)


def _first_moving(ws, r):
    """A resource ordered (mandatory start-then-start) before r that cannot migrate and is stopped or
    moved itself: r cannot live-migrate then (crm_simulate: "Move ... due to unrunnable FIRST stop"),
    it moves. None when there is none."""
    for o in ws.cib.orders:
        if o.then != r.id or o.inverse_only or (o.first_action or "start") != "start" \
                or (o.then_action or "start") != "start" or (o.kind or "Mandatory").lower() != "mandatory" \
                or (o.score is not None and o.score == 0):
            continue
        x = ws.prims.get(o.first)
        if x is None or x is r or (x.allow_migrate and x.managed) or not x.running_on or not x.managed:
            continue
        if x.assigned is None or x.assigned not in x.running_on:
            return x
    return None


def _continue_migration(p: Planner, r, source: WNode, target: WNode) -> None:
    """A partial migration whose target is still the choice: only migrate_from and the stop remain."""
    r.migrating = (source, target)
    start = p.action(r, "start", target, optional=False)
    frm = p.action(r, "migrate_from", target, optional=False)
    frm.migrate_source, frm.migrate_target = source.uname, target.uname
    stop = p.action(r, "stop", source, optional=False)
    start.pseudo = True
    start.runnable = True
    p.order(frm, stop, IMPLIES_THEN | RUNNABLE_LEFT)
    p.order(frm, start, IMPLIES_THEN | RUNNABLE_LEFT)
    _recurring(p, r, start, target)


def _migration_actions(p: Planner, r, source: WNode, target: WNode, start: Action) -> None:
    """Live migration: migrate_to on the source, migrate_from on the target, then the stop on
    the source; the start on the target becomes a pseudo-action."""
    to = p.action(r, "migrate_to", source, optional=False)
    frm = p.action(r, "migrate_from", target, optional=False)
    to.migrate_source = frm.migrate_source = source.uname
    to.migrate_target = frm.migrate_target = target.uname
    start.pseudo = True
    start.runnable = True
    p.order(to, frm, IMPLIES_THEN | RUNNABLE_LEFT)
    for stop in p.rsc_actions(r.id, "stop"):
        if stop.node == source.uname:
            p.order(frm, stop, IMPLIES_THEN | RUNNABLE_LEFT)
    p.order(frm, start, IMPLIES_THEN | RUNNABLE_LEFT)


def _recurring(p: Planner, r, start: Action | None, node: WNode | None) -> None:
    if r.prim is None:
        return
    counts: Dict[tuple, int] = defaultdict(int)
    for op in r.prim.ops:
        counts[(op.name, op.interval_ms)] += 1
    for op in r.prim.ops:
        if op.interval_ms <= 0 or not op.enabled:
            continue
        if counts[(op.name, op.interval_ms)] > 1:
            continue  # is_op_dup: operations sharing a name and interval are all ignored (a config error)
        if not _op_role_matches(r, op.role):
            _cancel_role_monitor(p, r, op, start, node)
            continue
        optional = start.optional if start is not None else True
        active = r.active_ops.get(node.uname, set()) if node is not None else set()
        if (op.name, op.interval_ms) not in active:
            optional = False
        elif node is not None and (node.uname, op.name, op.interval_ms) in r.reschedule:
            optional = False
        mon = p.action(r, op.name, node, op.interval_ms, optional=optional)
        if (op.name, op.interval_ms) in active:
            mon.stage = 0  # an active recurring op: Pacemaker knows it from the history
        if start is None or not start.runnable or node is None or not node.online or node.unclean:
            mon.runnable = False
        if start is not None:
            p.order(start, mon, IMPLIES_THEN | RUNNABLE_LEFT)
            # and after the resource's reload (recurring_op_for_active orders reload_key before it)
            for reload in p.rsc_actions(r.id, "reload-agent"):
                p.order(reload, mon, IMPLIES_THEN | RUNNABLE_LEFT)


def _recurring_inactive(p: Planner, r) -> None:
    """recurring_op_for_inactive: a monitor configured for the Stopped role runs on every node where the
    resource will not be (expecting "not running"), after its probes and stops there; where it will run, a
    running one is cancelled before the start. Not for an anonymous clone's instances (unsupported)."""
    if r.prim is None or (r.clone is not None and not r.clone.unique):
        return
    counts: Dict[tuple, int] = defaultdict(int)
    for op in r.prim.ops:
        counts[(op.name, op.interval_ms)] += 1
    for op in r.prim.ops:
        if (op.role or "").lower() != "stopped" or op.interval_ms <= 0 or not op.enabled \
                or counts[(op.name, op.interval_ms)] > 1:
            continue
        for node in p.ws.nodes:
            active = (op.name, op.interval_ms) in r.active_ops.get(node.uname, set())
            if node is r.assigned:
                if active:  # cancel_if_running
                    cancel = p.action(r, "cancel", node, op.interval_ms, optional=False)
                    cancel.key = f"{r.id}_{op.name}_{op.interval_ms}"
                    if r.next_role in (STARTED, UNPROMOTED):
                        for start in p.rsc_actions(r.id, "start"):
                            p.order(cancel, start, RUNNABLE_LEFT)
                continue
            mon = p.action(r, op.name, node, op.interval_ms, optional=active)
            mon.target_rc = 7
            p.stopped_monitors.setdefault(r.id, []).append(mon)
            if active:
                mon.stage = 0
            # (after the resource's probe there: create_probes orders it, probes come later here)
            for stop in p.rsc_actions(r.id, "stop"):  # order_after_stops
                if stop.node != node.uname:
                    continue
                if not stop.optional and not mon.optional and not r.managed:
                    mon.optional = True
                if not stop.runnable:
                    mon.runnable = False
                if r.managed:
                    p.order(stop, mon, IMPLIES_THEN | RUNNABLE_LEFT)
            if not node.online or node.unclean:
                mon.runnable = False


def _cancel_role_monitor(p: Planner, r, op, start: Action | None, node: WNode | None) -> None:
    """A monitor configured for the role the instance leaves, running now and not restarted, is
    cancelled before the promote or demote (recurring_op_for_active)."""
    if node is None or start is None or not start.optional or not r.promotable:
        return
    if (op.name, op.interval_ms) not in r.active_ops.get(node.uname, set()):
        return
    if (node.uname, op.name, op.interval_ms) in r.reschedule:
        return
    nxt = getattr(r, "full_next", r.next_role)
    if getattr(r, "full_role", r.role) == PROMOTED:
        before = "demote"
    elif nxt == PROMOTED:
        before = "promote"
    else:
        return
    cancel = p.action(r, "cancel", node, op.interval_ms, optional=False)
    cancel.stage = 1
    cancel.key = f"{r.id}_{op.name}_{op.interval_ms}"  # keyed by the cancelled operation
    p.role_cancels.append((cancel, before))


def _probe_targets(ws: WorkingSet, node: WNode):
    """Resources to probe on a node: an anonymous clone probes one instance per node (the one
    known or running there, else the one assigned there, else the first)."""
    for r in ws.prims.values():
        c = r.clone
        if c is None or c.unique:
            yield r
            continue
        first = c.instances[0]
        if r is not (first.members[0] if first.is_group else first):
            continue
        pick = None
        for inst in c.instances:
            if node.uname in inst.known_on or node in inst.running_on:
                pick = inst
                break
        if pick is None:
            for inst in c.instances:
                if inst.assigned is node:
                    pick = inst
                    break
        pick = pick if pick is not None else first
        yield from (pick.members if pick.is_group else [pick])


def _op_role_matches(r, role: str | None) -> bool:
    """A recurring operation runs in the role it names or, without one, in any role but promoted
    (recurring_op_for_active): a promotable instance is unpromoted or promoted, never plain Started, so an
    operation for the Started role does not run on it."""
    role = (role or "").lower()
    if not r.promotable:
        return role in ("", "started")
    promoted = getattr(r, "full_next", r.next_role) == PROMOTED
    if role in ("promoted", "master"):
        return promoted
    if role == "started":
        return False
    return not promoted


def create_probes(p: Planner) -> None:
    ws = p.ws
    for node in ws.nodes:
        if not node.online or node.unclean:
            continue  # a pending node is probed too (the probes cannot run there yet)
        for r in _probe_targets(ws, node):
            if r.orphan or r.removed or node.uname in r.known_on:
                continue
            mode = r.discovery.get(node.uname)
            if mode == "never" or (mode is None and "exclusive" in r.discovery.values()):
                continue  # resource-discovery=never here, or exclusive to other nodes
            probe = p.action(r, "monitor", node, 0, optional=False)
            p.frozen.discard(probe.id)  # unmanaged resources are still probed
            probe.optional = False
            probe.probe = True
            probe.stage = 2
            probe.target_rc = 7 if node not in r.running_on else None
            if r.managed:  # order_after_probes: a Stopped-role monitor there waits for the probe
                for mon in p.stopped_monitors.get(r.id, ()):
                    if mon.node == node.uname:
                        p.order(probe, mon, RUNNABLE_LEFT)
            flags = 0
            if not probe.runnable and not r.running_on:
                flags |= RUNNABLE_LEFT
            # a clone instance's probe is ordered before its clone's start (pcmk__probe_rsc_on_node),
            # which comes before the instance's: only the clone's start is its graph input
            own = GRAPH_HIDDEN if _top(r).is_clone else 0
            for start in p.rsc_actions(r.id, "start"):
                p.order(probe, start, flags | own)
            for mig in p.rsc_actions(r.id, "migrate_to"):
                p.order(probe, mig, flags)
            if r.clone is not None:
                for start in p.rsc_actions(r.clone.id, "start"):
                    p.order(probe, start, 0)
            if not _top(r).is_clone:
                # a reload waits for the probes too (pcmk__probe_rsc_on_node; for a clone instance
                # Pacemaker names the instance's reload on the clone, which matches nothing)
                for reload in p.rsc_actions(r.id, "reload-agent"):
                    p.order(probe, reload, 0)


def internal_constraints(p: Planner, r) -> None:
    for stop in p.rsc_actions(r.id, "stop"):
        for start in p.rsc_actions(r.id, "start"):
            p.order(stop, start, IMPLIES_THEN | RESTART)
