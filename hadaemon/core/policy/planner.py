"""The scheduler's action planner: ordering flags, the Planner (actions, orderings, settling of
required/runnable flags) and the helpers every action module uses (split from actions.py)."""
from __future__ import annotations

try:  # the C type collections itself exports: importing collections costs start-up time
    from _collections import defaultdict
except ImportError:  # a Python without CPython's accelerator modules
    from collections import defaultdict

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.resources import WNode
from hadaemon.core.policy.working import WorkingSet, leaves

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
        self.stopped_monitors: Dict[str, List[Action]] = {}  # rsc id -> its monitors for the Stopped role

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
