"""Stage 4: resource actions, probes, group pseudo-actions, user orderings and fencing."""
from __future__ import annotations

try:  # the C type collections itself exports: importing collections costs start-up time
    from _collections import defaultdict
except ImportError:  # a Python without CPython's accelerator modules
    from collections import defaultdict

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.unpack import WorkingSet
from hadaemon.core.policy.working import leaves, PROMOTED, STARTED, STOPPED, UNKNOWN, UNPROMOTED, WNode

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple

# ordering flags
IMPLIES_THEN, IMPLIES_FIRST, RUNNABLE_LEFT, RESTART = 1, 2, 4, 8
THEN_PRINTED, FIRST_PRINTED = 16, 32
ASYMMETRIC = 64
COLLECTIVE = 128  # an instance's action -> its clone's running/stopped: runnable when any instance's is
# graph-only orderings (no effect on flags): in the graph only when both actions are on the same node
ANTI_COLOCATION = 256  # pe_order_anti_colocation: stop/demote of one side before start/promote of the other
LOAD = 512  # pe_order_load: a probe before a node's load_stopped pseudo-action
NODE_SCOPED = ANTI_COLOCATION | LOAD
# settle-only orderings: Pacemaker passes an ordering with a group or clone on to the members' or instances'
# flags (pcmk__group_update_ordered_actions, update_noninterleaved_actions) without a graph input
GRAPH_HIDDEN = 1024
# an ordering whose first action stands for another (a group's or clone's running for its start, ...): the
# graph names the completed action, Pacemaker's own ordering is from the original one (Planner.first_links)
CONVERTED = 2048
# load_stopped_<node> -> migrate_to towards that node: dropped from the graph where it would close a loop
# (pcmk__disable_invalid_orderings: two resources migrating to each other's node)
LOAD_MIGRATE = 4096

_INVERSE = {"start": "stop", "stop": "start", "promote": "demote", "demote": "promote"}
_COMPLETED = {"start": "running", "stop": "stopped", "promote": "promoted", "demote": "demoted"}
_ORIGINAL = {"running": "start", "stopped": "stop", "promoted": "promote", "demoted": "demote"}


class Planner:
    """Creates actions and orderings, then settles which are required and runnable."""

    def __init__(self, ws: WorkingSet):
        self.ws = ws
        self.actions: List[Action] = []
        self.by_key: Dict[Tuple, Action] = {}
        self.by_task: Dict[Tuple[str, str], List[Action]] = defaultdict(list)
        self.edges: List[Tuple[Action, Action, int]] = []
        self.frozen: set = set()
        self.rsc_of: Dict[int, object] = {}
        self.dangling: set = set()  # stops that finish a completed migration: they imply nothing
        self.collective: Dict[int, List[Action]] = {}  # clone running/stopped -> instances' actions
        self.collective_min: Dict[int, int] = {}  # how many of them must be runnable (default 1)
        self.role_cancels: List[Tuple[Action, str]] = []  # a monitor of the role left: (cancel, before)
        # resource-level orderings whose first task is a stop, as Pacemaker keeps its ordering constraints
        # (first rsc, then rsc or None, then task or None, then action or None, flags): probes.py orders
        # the first resource's probes before their 'then' actions
        self.stop_orders: List[tuple] = []
        self.first_links: List[Tuple[Action, Action, int]] = []  # the original orderings of CONVERTED ones

    # --- creation ---
    def action(self, rsc, task: str, node: WNode | None, interval_ms: int = 0,
               optional: bool = True, pseudo: bool = False) -> Action:
        uname = node.uname if node is not None else None
        k = (rsc.id if rsc is not None else None, task, interval_ms, uname)
        a = self.by_key.get(k)
        if a is None:
            key = f"{rsc.id}_{task}_{interval_ms}" if rsc is not None else task
            a = Action(len(self.actions), key, task, rsc.id if rsc is not None else None, uname,
                       interval_ms, pseudo=pseudo, optional=True)
            self.actions.append(a)
            self.by_key[k] = a
            if rsc is not None:
                self.by_task[(rsc.id, task)].append(a)
                self.rsc_of[a.id] = rsc
            self._set_runnable(a, rsc, node)
            if rsc is not None and not rsc.is_group and not rsc.is_clone and not rsc.managed \
                    and interval_ms == 0:
                self.frozen.add(a.id)
        if not optional and a.id not in self.frozen:
            a.optional = False
        return a

    def _set_runnable(self, a: Action, rsc, node: WNode | None) -> None:
        if a.pseudo:
            a.runnable = True
            return
        if node is None:
            a.runnable = False
            return
        if not node.online:
            a.runnable = False
            return
        if node.pending:
            a.runnable = False
            return
        if rsc is None or a.task not in ("start", "promote"):
            return
        if rsc.requires == "nothing":
            return
        ws = self.ws
        if ws.have_quorum or ws.no_quorum_policy == "ignore":
            return
        if ws.no_quorum_policy == "freeze":
            if not rsc.running_on or rsc.next_role > rsc.role:
                a.runnable = False
                a.reason = "quorum freeze"
            return
        a.runnable = False
        a.reason = "no quorum"

    def order(self, first: Action, then: Action, flags: int) -> None:
        if first is then:
            return
        self.edges.append((first, then, flags))

    def rsc_actions(self, rsc_id: str, task: str) -> List[Action]:
        return self.by_task.get((rsc_id, task), [])

    def constraint(self, first, ftask: str, then, ttask: str | None, flags: int,
                   then_action: Action | None = None) -> None:
        """Record a resource-level ordering "first ftask then (then ttask | then_action)" (Pacemaker's
        pcmk__new_ordering with resources); only those whose first task is a stop are kept."""
        if ftask == "stop" and first is not then:
            self.stop_orders.append((first, then, ttask, then_action, flags))

    @staticmethod
    def in_graph(first: Action, then: Action, flags: int) -> bool:
        """Whether an ordering between two actions in the graph is one of its inputs: a node-scoped
        ordering (anti-colocation, load) only between actions on the same node (should_add_input_to_graph)."""
        if flags & GRAPH_HIDDEN:
            return False
        if flags & NODE_SCOPED and first.node and then.node and first.node != then.node:
            return False
        return True

    # --- settling ---
    def settle(self) -> None:
        out = defaultdict(list)
        inn = defaultdict(list)
        for e in self.edges:
            out[e[0].id].append(e)
            inn[e[1].id].append(e)
        work = list(range(len(self.actions)))
        queued = set(work)
        while work:
            aid = work.pop()
            queued.discard(aid)
            changed = []
            for first, then, flags in out[aid]:
                if self._forward(first, then, flags):
                    changed.append(then.id)
            for first, then, flags in inn[aid]:
                # rules for 'then' may depend on its own state too (asymmetric orders)
                if self._forward(first, then, flags):
                    changed.append(then.id)
                if self._backward(first, then, flags):
                    changed.append(first.id)
            for c in changed:
                if c not in queued:
                    queued.add(c)
                    work.append(c)
            if changed and aid not in queued:
                queued.add(aid)
                work.append(aid)

    def _require(self, a: Action, because: Action, reason: bool = True) -> bool:
        if not a.optional or a.id in self.frozen:
            return False
        a.optional = False
        if reason and a.reason is None and because.rsc is not None and because.rsc != a.rsc:
            a.reason = f"required {because.rsc} {because.task}"
        elif reason and a.reason is None and because.rsc is None and because.task == "stonith":
            a.reason = "required stonith"
        return True

    def _runnable(self, a: Action) -> bool:
        """Whether an action counts as runnable for what is ordered after it. A group's start and
        stop pseudo-actions always do (Pacemaker derives their flags from the members')."""
        if a.pseudo and a.task in ("start", "stop") and (a.rsc in self.ws.groups
                                                         or a.rsc in self.ws.clones):
            return True
        return a.runnable

    def _clone_optional(self, a: Action, node: str | None) -> bool:
        """Whether a clone's pseudo-action counts as optional for an ordering with an action on
        'node' (action_flags_for_ordering): only its instances' actions on that node count."""
        c = self.ws.clones.get(a.rsc) if a.pseudo and node is not None else None
        if c is None:
            return a.optional
        task = _ORIGINAL.get(a.task, a.task)
        for r in leaves(c):
            for x in self.rsc_actions(r.id, task):
                if x.node == node and not x.optional:
                    return False
        return True

    def _migration_step(self, a: Action, other: Action) -> bool:
        """A live-migrating resource's start on the target (a pseudo-action carried by migrate_to /
        migrate_from) or stop on the source: neither makes an action of another resource ordered with it
        required (as crm_simulate, a resource ordered after or before it is not restarted for the move)."""
        if a.task not in ("start", "stop") or a.rsc is None or a.rsc == other.rsc:
            return False
        r = self.rsc_of.get(a.id)
        moving = getattr(r, "migrating", None) if r is not None else None
        if moving is None:
            return False
        return a.pseudo if a.task == "start" else a.node == moving[0].uname

    def _forward(self, first: Action, then: Action, flags: int) -> bool:
        changed = False
        if flags & IMPLIES_THEN and not self._clone_optional(first, self._node_of(then, first)) \
                and first.id not in self.dangling and not self._migration_step(first, then):
            changed |= self._require(then, first)
        if flags & RUNNABLE_LEFT and not self._runnable(first) and then.runnable:
            then.runnable = False
            if first.rsc is None and first.pseudo and then.reason is None:
                then.reason = f"unrunnable {first.key}"
            elif first.rsc is not None and first.rsc != then.rsc and then.reason is None:
                # a cause further up the chain is passed on as it is
                inherited = first.reason if (first.reason or "").startswith("unrunnable ") else None
                then.reason = inherited or f"unrunnable {first.rsc} {first.task}"
            changed = True
        if flags & COLLECTIVE:
            need = self.collective_min.get(then.id, 1)
            runnable = sum(1 for a in self.collective.get(then.id, ()) if a.runnable) >= need
            if runnable != then.runnable:
                then.runnable = runnable
                changed = True
        if flags & ASYMMETRIC and not self._runnable(first) and then.rsc is not None \
                and then.rsc not in self.ws.groups and then.rsc not in self.ws.clones \
                and (then.runnable or then.optional):
            if not (then.optional and self._already_there(then)):
                changed |= self._require(then, first)
                if then.runnable:
                    then.runnable = False
                    if first.rsc is not None and first.rsc != then.rsc and then.reason is None:
                        then.reason = f"unrunnable {first.rsc} {first.task}"
                    changed = True
        elif flags & ASYMMETRIC and not self._runnable(first) and then.pseudo and then.task == "start" \
                and then.rsc in self.ws.groups and then.runnable:
            then.runnable = False  # the group's start cannot happen either (no graph action; members follow)
            changed = True
        if flags & THEN_PRINTED and not first.optional and first.runnable and not then.printed:
            then.printed = True
            changed = True
        return changed

    def _node_of(self, a: Action, other: Action) -> str | None:
        """The node an ordering's other side is scoped to: the action's node (a group's start: the
        group's assigned node), none for actions of the same clone."""
        if a.rsc is None or other.rsc not in self.ws.clones:
            return None
        rsc = self.rsc_of.get(a.id)
        if rsc is None or rsc is self.ws.clones[other.rsc] or getattr(rsc, "clone", None) is not None:
            return None
        if rsc.is_group and a.task == "start":
            return rsc.assigned.uname if rsc.assigned is not None else None
        return a.node

    def _already_there(self, then: Action) -> bool:
        """An optional stop of something stopped, or start of something running only there."""
        rsc = self.rsc_of.get(then.id)
        if rsc is None or rsc.is_group or rsc.is_clone:
            return False
        if then.task == "stop" and not rsc.running_on:
            return True
        return (then.task == "start" and len(rsc.running_on) == 1
                and rsc.running_on[0].uname == then.node)

    def _backward(self, first: Action, then: Action, flags: int) -> bool:
        changed = False
        if flags & IMPLIES_FIRST and not then.optional and not self._migration_step(then, first):
            changed |= self._require(first, then, reason=False)
        if flags & RESTART and first.optional:
            restart = not then.optional
            rsc = self.rsc_of.get(then.id)
            if not then.runnable and rsc is not None and rsc.managed and first.rsc == then.rsc:
                restart = True
            if restart and (first.runnable or not then.optional):
                changed |= self._require(first, then)
        if flags & RESTART and not first.optional and not first.runnable and then.runnable \
                and not then.optional:
            then.runnable = False
            changed = True
        if flags & FIRST_PRINTED and not then.optional and not first.printed:
            first.printed = True
            changed = True
        return changed


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
                for mon in p.rsc_actions(r.id, "monitor"):
                    if mon.interval_ms > 0 and mon.node == node.uname and mon.target_rc == 7:
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


def _instance_number(r) -> int:
    try:
        return int(r.id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _acts(p: Planner, rsc, task: str, first: bool) -> List[Action]:
    """Actions an ordering refers to; a missing 'first' action is created (unrunnable) so that
    what is ordered after it cannot happen, except a stop of something already stopped."""
    acts = p.rsc_actions(rsc.id, task)
    if acts or not first:
        return acts
    if task == "stop" and not rsc.running_on:
        return []
    return [p.action(rsc, task, None, pseudo=rsc.is_group or rsc.is_clone)]


def _order_tasks(p: Planner, first, ftask: str, then, ttask: str, flags: int) -> None:
    p.constraint(first, ftask, then, ttask, flags)
    for f in _acts(p, first, ftask, True):
        for t in _acts(p, then, ttask, False):
            p.order(f, t, flags)


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
    if original == "start" and ttask == "start" and not (then.is_group or then.is_clone) and then.allow_migrate:
        # pcmk__order_migration_equivalents: "A start then B start" also orders A's start (not one that is
        # part of A's own migration) before B's migrate_to
        if not (first.is_group or first.is_clone) and getattr(first, "migrating", None) is not None:
            firsts = []
        for f in firsts:
            for t in p.rsc_actions(then.id, "migrate_to"):
                p.order(f, t, converted)


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


# --- fencing ------------------------------------------------------------------------------

def schedule_fencing(p: Planner) -> List[Action]:
    ws = p.ws
    fenced: List[Action] = []
    any_managed = any(r.managed for r in ws.prims.values())
    for node in ws.nodes:
        if node.unclean and not node.fence_seq:
            ws.fence_seq += 1  # unseen nodes come after those found in the status section
            node.fence_seq = ws.fence_seq
    nondc_fencing: List[Action] = []
    shutdowns: List[Action] = []
    dc_down = None
    for node in ws.nodes:
        if node.unclean and any_managed and ws.can_fence(node):
            a = Action(len(p.actions), f"stonith-{node.uname}-{ws.fence_action}", "stonith", None,
                       node.uname, kind="crm_event", optional=False)
            a.fence_type = ws.fence_action
            a.reason = node.fence_reason or "node is unclean"
            p.actions.append(a)
            node.fence_action = a
            fenced.append(a)
            if node.is_dc:
                dc_down = a
            else:
                if not ws.concurrent_fencing and nondc_fencing:
                    p.order(nondc_fencing[-1], a, 0)  # without concurrent fencing, one after another
                nondc_fencing.append(a)
        elif node.online and node.shutdown:
            a = Action(len(p.actions), f"do_shutdown-{node.uname}", "do_shutdown", None, node.uname,
                       kind="crm_event", optional=False)
            p.actions.append(a)
            if node.is_dc:
                dc_down = a
            else:
                shutdowns.append(a)
            for r in ws.prims.values():
                for stop in p.rsc_actions(r.id, "stop"):
                    if stop.node == node.uname:
                        p.order(stop, a, 0)
                        p.constraint(r, "stop", None, None, 0, a)
    if dc_down is not None:
        # schedule_fencing_and_shutdowns: the DC goes last (no repeated elections): after the other nodes'
        # shutdowns (when it shuts down itself) and after every other fencing (the last of a serial chain)
        if dc_down.task == "do_shutdown":
            for a in shutdowns:
                p.order(a, dc_down, 0)
        for a in (nondc_fencing if ws.concurrent_fencing else nondc_fencing[-1:]):
            p.order(a, dc_down, 0)
    for a in fenced:
        node = ws.node_by_uname[a.node]
        for r in ws.prims.values():
            # order_stop_vs_fencing: the stops there are implied by the fencing (pseudo-actions); those
            # of a resource requiring fencing, and its top resource's stop, come after it
            implicit = r.requires == "fencing" and r.managed
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    stop.pseudo = True
                    stop.runnable = True
                    if implicit:
                        p.order(a, stop, IMPLIES_THEN)
                        top = _top(r)
                        for parent_stop in p.rsc_actions(top.id, "stop")[:1]:
                            p.order(a, parent_stop, 0)
                    if r.requires != "fencing" and any(n is not node and not n.unclean for n in r.running_on):
                        p.dangling.add(stop.id)  # active elsewhere too (requires quorum): no restart there
            # and so are its demotes there (after the fencing when it requires fencing)
            for demote in p.rsc_actions(r.id, "demote"):
                if demote.node == node.uname:
                    demote.pseudo = True
                    demote.runnable = True
                    if implicit:
                        p.order(a, demote, 0)
            if r.managed:
                _order_start_vs_fencing(p, r, a, node)
    return fenced


def _order_start_vs_fencing(p: Planner, r, fencing: Action, target: WNode) -> None:
    """order_start_vs_fencing: a resource requiring fencing starts and promotes after every fencing; one
    requiring quorum starts after the fencing of a node it may run on where its state is unknown (it may
    be active there, like waiting for a probe)."""
    if r.requires == "fencing":
        for task in ("start", "promote", "migrate_to"):  # migrate_to takes the start's needs
            for a in p.rsc_actions(r.id, task):
                p.order(fencing, a, 0)
    elif r.requires == "quorum" and target.uname in r.allowed:
        c = r.clone
        known = target.uname in r.known_on or (
            c is not None and not c.unique and r.group is None and target.uname in c.known_on)
        if not known:
            for a in p.rsc_actions(r.id, "start"):
                p.order(fencing, a, RUNNABLE_LEFT)


def _load_stopped(p: Planner) -> None:
    """With a placement strategy, a resource with utilization stops before its node's load_stopped_<node>
    pseudo-action, which comes before its starts (and migrate_to towards) that node, so capacity is freed
    before it is used (pcmk__create_utilization_constraints)."""
    ws = p.ws
    if ws.placement_strategy == "default":
        return
    pseudo: Dict[str, Action] = {}

    def load_stopped(uname: str) -> Action:
        a = pseudo.get(uname)
        if a is None:
            a = Action(len(p.actions), f"load_stopped_{uname}", "load_stopped", None, uname, pseudo=True,
                       optional=False)
            p.actions.append(a)
            pseudo[uname] = a
        return a

    users = [r for r in ws.prims.values() if r.utilization]
    needed = {n.uname for r in users for n in r.running_on} | {u for r in users for u in r.allowed}
    for node in reversed(ws.nodes):  # independent ones are listed as crm_simulate lists them
        if node.uname in needed:
            load_stopped(node.uname)
    for r in users:
        for node in r.running_on:
            ls = load_stopped(node.uname)
            p.constraint(r, "stop", None, None, LOAD, ls)
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    p.order(stop, ls, 0)
        for uname in r.allowed:
            ls = load_stopped(uname)
            for start in p.rsc_actions(r.id, "start"):
                if start.node == uname:
                    p.order(ls, start, 0)
            for mig in p.rsc_actions(r.id, "migrate_to"):
                if mig.migrate_target == uname:
                    p.order(ls, mig, LOAD_MIGRATE)


def schedule_unfencing(p: Planner) -> None:
    """Unfencing (pcmk__order_vs_unfence, pcmk__order_restart_vs_unfence, trigger_unfencing): when a fence
    device provides=unfencing or a resource requires=unfencing, a probe of a fence device or of a resource
    that needs unfencing on an online node that was never unfenced (#node-unfenced unset or 0) requires
    unfencing that node first ("Fence (on)", reason "required by RSC monitor"): the probes wait for it,
    and a resource needing unfencing active there stops before it and starts again after it."""
    ws = p.ws
    if not getattr(ws, "enable_unfencing", False):
        return
    probes: Dict[str, List[Action]] = defaultdict(list)
    for a in p.actions:
        if a.probe and a.node is not None:
            probes[a.node].append(a)
    for node in ws.nodes:
        if not node.online or node.unclean or node.shutdown or node.pending:
            continue
        if node.attrs.get("#node-unfenced") not in (None, "0"):
            continue  # unfenced already: the (optional) unfencing is never executed
        unfence = None
        for probe in probes.get(node.uname, ()):
            r = p.rsc_of.get(probe.id)
            if r is None or not (r.is_stonith or getattr(r, "needs_unfencing", False)):
                continue
            if unfence is None:
                unfence = Action(len(p.actions), f"stonith-{node.uname}-on", "stonith", None, node.uname,
                                 kind="crm_event", optional=False)
                unfence.fence_type = "on"
                unfence.reason = f"required by {r.id} {probe.task}"
                p.actions.append(unfence)
                ws.fence_seq += 1
                node.fence_seq = ws.fence_seq
            p.order(unfence, probe, 0)
        if unfence is None:
            continue
        for r in ws.prims.values():
            if r.is_stonith or not getattr(r, "needs_unfencing", False):
                continue
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    p.order(stop, unfence, 0)
            for start in p.rsc_actions(r.id, "start"):
                if start.node == node.uname:
                    p.order(unfence, start, IMPLIES_THEN)


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


def _top(r):
    """The outermost resource an action's resource belongs to (uber_parent)."""
    if getattr(r, "clone", None) is not None:
        return r.clone
    g = getattr(r, "group", None)
    if g is not None:
        return g.clone if g.clone is not None else g
    return r


def _children(r) -> list:
    if r.is_clone:
        return list(r.instances)
    if r.is_group:
        return list(r.members)
    return []


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
    from hadaemon.core.policy.probes import order_probes
    order_probes(p)
    for c in ws.clones.values():
        if c.notify:
            _notifications(p, c)
    _disable_loop_orderings(p)
    return p


def _disable_loop_orderings(p: Planner) -> None:
    """pcmk__disable_invalid_orderings: a load_stopped -> migrate_to ordering that would close a loop in the
    graph (resources migrating to each other's node) is dropped; the migrate_to actions are checked in
    Pacemaker's list order, the newest first (new actions are prepended to the working set's list)."""
    candidates = [i for i, (f, t, flags) in enumerate(p.edges) if flags & LOAD_MIGRATE and f.executed and t.executed]
    if not candidates:
        return
    out: Dict[int, List[int]] = defaultdict(list)
    for f, t, flags in p.edges:
        if f.executed and t.executed and p.in_graph(f, t, flags):
            out[f.id].append(t.id)
    for i in sorted(candidates, key=lambda i: (-p.edges[i][1].id, p.edges[i][0].id)):
        first, then, flags = p.edges[i]
        seen, todo, loop = {then.id}, [then.id], False
        while todo and not loop:
            for nxt in out.get(todo.pop(), ()):
                if nxt == first.id:
                    loop = True
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if loop:
            p.edges[i] = (first, then, flags | GRAPH_HIDDEN)
            out[first.id].remove(then.id)
