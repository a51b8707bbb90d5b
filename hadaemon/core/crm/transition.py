"""The transition executor: runs a TransitionGraph as `step(run, event, now) -> (run, effects)`.

An action is ready when every action it depends on is done. Pseudo actions complete as soon as they
are ready; resource operations, fencing and do_shutdown (the node may leave: its resources are
stopped) become `Execute` effects with a deadline
(the operation's timeout plus a margin). A failed or timed-out action, an `Abort` (node lost, CIB
changed, a failure reported outside the transition) or a result that is news (`ActionDone.abort`: a
probe finding a resource running), stops new actions from starting; the transition
ends (`Completed`) once no action is in flight. The DC then reschedules from the status section, which
records every result: whatever prefix of a transition was applied, the next one starts from there.

Chains (`Run.chain`): when an action starts, the consecutive one-shot actions on the same node whose
only unmet inputs are earlier actions of that run (a group's stops on the old node, its starts on the
new one) start with it as one `ExecuteChain`: the node runs them in order itself and reports each
result (no round trip to the DC between them). Each keeps its own timeout; its deadline is the sum of
the chain's timeouts up to it plus the margin. The node stops a chain at its first unexpected result
and reports the actions it did not run (`ChainCancelled`: they wait again, and are skipped when the
transition ends); once the transition is stopping (abort, failure, timeout), `StopChain` asks the
node not to start the rest of its chains.

Handoffs (with chains): when a chain starts and, once it is done, a chainable action on another node
would be ready (through pseudo-actions too: a group's stops on the old node, then its starts on the
new one), that node's chain is sent at the same time as a follower (`ExecuteChain.after`: the
leader's last action) and the leader's chain names it (`ExecuteChain.handoff`, `Run.handoffs`: also
when that action is sent again in another chain): the leading node tells the follower directly once
that action succeeded, and only then does the follower start
(no round trip through the DC between the old node releasing an address and the new one adding it;
the order is the same). A follower's actions count as running from the start, their deadlines add
the leader's timeouts; a stopping transition asks a follower to stop all of its actions not done.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Tuple, Union

__all__ = ["ActionSpec", "Run", "Started", "ActionDone", "Abort", "Tick", "Execute", "Completed",
           "TimedOut", "new_run", "step", "next_deadline", "from_graph", "WAITING", "RUNNING", "DONE",
           "FAILED", "SKIPPED", "ExecuteChain", "StopChain", "ChainCancelled", "chain_from", "CHAIN_TASKS",
           "followers"]

WAITING, RUNNING, DONE, FAILED, SKIPPED = "waiting", "running", "done", "failed", "skipped"
INFINITY = 1000000
# one-shot operations a node may run in a chain (not probes, notifications, cancels, fencing)
CHAIN_TASKS = frozenset({"start", "stop", "promote", "demote", "migrate_to", "migrate_from"})


def action_priority(key: str) -> int:
    """Pacemaker gives a clone's post-notifications (the pseudo-actions and each instance's notify)
    priority INFINITY: an aborted transition still delivers them once what they follow is done, so
    the instances learn about a start or promote that happened (pcmk_sched_notif.c)."""
    return INFINITY if ("_post_notify_" in key or "_confirmed-post_notify_" in key) else 0


@dataclass(frozen=True)
class ActionSpec:
    """What the executor needs to know about one graph action."""

    id: int
    key: str
    task: str
    rsc: str | None
    node: str | None
    interval_ms: int = 0
    pseudo: bool = False
    kind: str = "rsc_op"       # rsc_op | pseudo_event | crm_event
    target_rc: int = 0
    timeout_s: float = 20.0    # the operation's timeout (the margin is added by the executor)
    fence_type: str = "reboot"
    priority: int = 0          # INFINITY: still runs once ready after an abort (post-notifications)

    @property
    def immediate(self) -> bool:
        """Completes by itself once ready (pseudo actions and the shutdown marker)."""
        return self.pseudo or self.kind == "pseudo_event" or (
            self.kind == "crm_event" and self.task not in ("stonith", "do_shutdown"))


@dataclass(frozen=True)
class Run:
    id: int
    actions: Mapping[int, ActionSpec]
    inputs: Mapping[int, Tuple[int, ...]]
    margin: float = 5.0
    states: Mapping[int, str] = field(default_factory=dict)
    deadlines: Mapping[int, float] = field(default_factory=dict)
    abort_reason: str = ""
    failed: Tuple[int, ...] = ()
    completed: bool = False
    chain: bool = False                              # send nodes chains of consecutive actions
    chains: Mapping[int, Tuple[int, ...]] = field(default_factory=dict)   # head -> members (2 or more; any with a handoff)
    chains_stopped: Tuple[int, ...] = ()             # heads of the chains a StopChain was sent for
    followers: Tuple[int, ...] = ()                  # heads of the chains that wait for a handoff
    handoffs: Mapping[int, Tuple[str, ...]] = field(default_factory=dict)   # leader's last action -> nodes to tell

    @property
    def in_flight(self) -> Tuple[int, ...]:
        return tuple(sorted(a for a, s in self.states.items() if s == RUNNING))

    @property
    def result(self) -> str:
        """complete (every action done), aborted, or failed (an action failed)."""
        if self.failed:
            return "failed"
        if self.abort_reason:
            return "aborted"
        return "complete"


# events
@dataclass(frozen=True)
class Started:
    pass


@dataclass(frozen=True)
class ActionDone:
    """An action's result. abort: the action is done but its result is news the graph did not expect (a
    probe finding the resource running): the transition is aborted with that reason and recomputed, not
    failed (Pacemaker's process_graph_event confirms the action and aborts)."""
    action_id: int
    ok: bool
    abort: str = ""


@dataclass(frozen=True)
class Abort:
    reason: str


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class ChainCancelled:
    """The node did not run these actions of a chain (an earlier one failed, or StopChain)."""
    action_ids: Tuple[int, ...]


Event = Union[Started, ActionDone, Abort, Tick, ChainCancelled]


# effects
@dataclass(frozen=True)
class Execute:
    action: ActionSpec
    deadline: float


@dataclass(frozen=True)
class TimedOut:
    action: ActionSpec


@dataclass(frozen=True)
class Completed:
    transition_id: int
    result: str
    reason: str


@dataclass(frozen=True)
class ExecuteChain:
    """Run these actions in order on one node, each after the previous one succeeded.

    handoff: nodes to tell directly once the last step succeeded (their follower chains wait for it);
    after: for a follower, the action (the last of another node's chain) whose success that node
    tells, before which the first step does not start."""
    node: str
    steps: Tuple[Execute, ...]
    handoff: Tuple[str, ...] = ()
    after: int | None = None


@dataclass(frozen=True)
class StopChain:
    """Do not start the actions of this chain that have not started yet (the transition is stopping)."""
    node: str
    action_ids: Tuple[int, ...]


Effect = Union[Execute, ExecuteChain, StopChain, TimedOut, Completed]


def new_run(transition_id: int, actions: List[ActionSpec], edges: List[Tuple[int, int]],
            margin: float = 5.0, chain: bool = False) -> Run:
    ids = {a.id for a in actions}
    inputs: Dict[int, List[int]] = {a.id: [] for a in actions}
    for before, after in edges:
        if before in ids and after in ids and before not in inputs[after]:
            inputs[after].append(before)
    return Run(transition_id, {a.id: a for a in actions}, {k: tuple(sorted(v)) for k, v in inputs.items()},
               margin, {a.id: WAITING for a in actions}, chain=chain)


def from_graph(transition_id: int, graph, timeouts: Mapping[int, float], margin: float = 5.0,
               target_rcs: Mapping[int, int] | None = None, chain: bool = False) -> Run:
    """A Run from a hadaemon.core.policy.graph.TransitionGraph; timeouts: action id -> seconds;
    target_rcs: expected results the graph leaves implicit (a promoted monitor's 8)."""
    specs = []
    for a in graph.actions:
        kind = "crm_event" if a.kind == "crm_event" else ("pseudo_event" if a.pseudo else "rsc_op")
        target = a.target_rc if a.target_rc is not None else (target_rcs or {}).get(a.id, 0)
        specs.append(ActionSpec(a.id, a.key, a.task, a.rsc, a.node, a.interval_ms, bool(a.pseudo), kind,
                                target, float(timeouts.get(a.id, 20.0)), a.fence_type, action_priority(a.key)))
    return new_run(transition_id, specs, list(graph.edges), margin, chain)


def _ready(run: Run, aid: int) -> bool:
    return all(run.states.get(b) == DONE for b in run.inputs.get(aid, ()))


def _chainable(a: ActionSpec) -> bool:
    return (a.kind == "rsc_op" and not a.pseudo and bool(a.node) and a.interval_ms == 0
            and a.task in CHAIN_TASKS and a.priority < INFINITY)


def chain_from(run: Run, states: Mapping[int, str], head: int) -> Tuple[int, ...]:
    """The chain starting at `head` (about to start): head, then repeatedly the lowest-id waiting
    chainable action on the same node that depends on the chain's last action and whose every other
    input is done or in the chain. An action that depends only on earlier members is left out (it
    would wait behind the last one for nothing): the DC starts it when its inputs are done."""
    a = run.actions[head]
    if not _chainable(a):
        return (head,)
    chain = [head]
    members = {head}
    while True:
        last = chain[-1]
        nxt = None
        for bid in sorted(run.actions):
            b = run.actions[bid]
            if states.get(bid) != WAITING or bid in members or b.node != a.node or not _chainable(b):
                continue
            ins = run.inputs.get(bid, ())
            if last in ins and all(i in members or states.get(i) == DONE for i in ins):
                nxt = bid
                break
        if nxt is None:
            return tuple(chain)
        chain.append(nxt)
        members.add(nxt)


def _done_with(run: Run, states: Mapping[int, str], members) -> Dict[int, str]:
    """states with members done and the pseudo-actions that then complete."""
    sim = dict(states)
    for m in members:
        sim[m] = DONE
    progressed = True
    while progressed:
        progressed = False
        for aid in sorted(run.actions):
            a = run.actions[aid]
            if sim[aid] == WAITING and a.immediate and a.kind != "crm_event" and all(
                    sim.get(b) == DONE for b in run.inputs.get(aid, ())):
                sim[aid] = DONE
                progressed = True
    return sim


def followers(run: Run, states: Mapping[int, str], members: Tuple[int, ...]) -> List[Tuple[int, ...]]:
    """The chains on other nodes that `members` (a chain about to start) alone holds back: with the
    members done and the pseudo-actions that then complete, a waiting chainable action on another node
    is ready; its chain (chain_from, with those done). At most one per node, lowest ids first."""
    leader = run.actions[members[0]]
    sim = _done_with(run, states, members)
    before = _done_with(run, states, members[:-1])   # what needs only earlier members is not held back
    out: List[Tuple[int, ...]] = []
    taken = {leader.node}
    for aid in sorted(run.actions):
        b = run.actions[aid]
        if states.get(aid) != WAITING or b.node in taken or not _chainable(b):
            continue
        ins = run.inputs.get(aid, ())
        if not all(sim.get(i) == DONE for i in ins) or all(before.get(i) == DONE for i in ins):
            continue
        out.append(chain_from(run, sim, aid))
        taken.add(b.node)
    return out


def _advance(run: Run, now: float) -> Tuple[Run, List[Effect]]:
    effects: List[Effect] = []
    states = dict(run.states)
    deadlines = dict(run.deadlines)
    chains = dict(run.chains)
    stopping = bool(run.abort_reason or run.failed)
    stopped = run.chains_stopped
    follow = run.followers
    handoffs = dict(run.handoffs)
    if stopping:
        for head, members in sorted(chains.items()):
            if head in follow:   # may not have started at all; a timed-out one may still start
                left = tuple(m for m in members if states.get(m) in (RUNNING, FAILED))
            else:
                left = tuple(m for m in members[1:] if states.get(m) == RUNNING)
            if head not in stopped and left:
                stopped = stopped + (head,)
                effects.append(StopChain(run.actions[head].node, left))
    progressed = True
    while progressed:
        progressed = False
        for aid in sorted(run.actions):
            if states[aid] != WAITING or not all(states.get(b) == DONE for b in run.inputs.get(aid, ())):
                continue
            a = run.actions[aid]
            if stopping and not (a.pseudo or a.kind == "pseudo_event" or a.priority >= INFINITY):
                continue   # after an abort only pseudo-actions and priority ones (post-notifications) go on
            if a.immediate:
                states[aid] = DONE
                progressed = True
            elif run.chain and not stopping:
                members = chain_from(run, states, aid)
                after = followers(run, states, members) if _chainable(a) else []
                steps = []
                total = 0.0
                for m in members:
                    total += run.actions[m].timeout_s
                    states[m] = RUNNING
                    deadlines[m] = now + total + run.margin
                    steps.append(Execute(run.actions[m], deadlines[m]))
                if len(steps) == 1 and not after and members[-1] not in handoffs:
                    effects.append(steps[0])
                    continue
                chains[aid] = members
                if after:
                    handoffs[members[-1]] = tuple(run.actions[f[0]].node for f in after)
                effects.append(ExecuteChain(a.node, tuple(steps), handoff=handoffs.get(members[-1], ())))
                for fmembers in after:
                    fsteps = []
                    ftotal = total
                    for m in fmembers:
                        ftotal += run.actions[m].timeout_s
                        states[m] = RUNNING
                        deadlines[m] = now + ftotal + run.margin
                        fsteps.append(Execute(run.actions[m], deadlines[m]))
                    chains[fmembers[0]] = fmembers
                    follow = follow + (fmembers[0],)
                    effects.append(ExecuteChain(run.actions[fmembers[0]].node, tuple(fsteps),
                                                after=members[-1]))
            else:
                states[aid] = RUNNING
                deadlines[aid] = now + a.timeout_s + run.margin
                effects.append(Execute(a, deadlines[aid]))
    run = replace(run, states=states, deadlines=deadlines, chains=chains, chains_stopped=stopped,
                  followers=follow, handoffs=handoffs)
    if not run.completed and not run.in_flight:
        if stopping or all(s == DONE for s in states.values()) or not _any_startable(run):
            states = {k: (SKIPPED if s == WAITING else s) for k, s in states.items()}
            run = replace(run, states=states, completed=True)
            reason = run.abort_reason or ("action failed" if run.failed else "")
            if not reason and any(s == SKIPPED for s in states.values()):
                reason = "actions left unrunnable"
                run = replace(run, abort_reason=reason)
            effects.append(Completed(run.id, run.result, reason))
    return run, effects


def _any_startable(run: Run) -> bool:
    return any(s == WAITING and _ready(run, a) for a, s in run.states.items())


def step(run: Run, event: Event, now: float) -> Tuple[Run, List[Effect]]:
    if run.completed:
        return run, []
    if isinstance(event, Started):
        return _advance(run, now)
    if isinstance(event, ActionDone):
        if run.states.get(event.action_id) != RUNNING:
            return run, []  # late or duplicate result (e.g. after a timeout): already accounted
        states = dict(run.states)
        states[event.action_id] = DONE if event.ok else FAILED
        deadlines = {k: v for k, v in run.deadlines.items() if k != event.action_id}
        failed = run.failed if event.ok else run.failed + (event.action_id,)
        reason = run.abort_reason or (event.abort if event.ok else "")
        return _advance(replace(run, states=states, deadlines=deadlines, failed=failed, abort_reason=reason), now)
    if isinstance(event, Abort):
        run = replace(run, abort_reason=run.abort_reason or event.reason)
        return _advance(run, now)
    if isinstance(event, ChainCancelled):
        # never started on the node: they wait again (started again once ready, skipped at the end)
        ids = [i for i in event.action_ids if run.states.get(i) == RUNNING]
        if not ids:
            return run, []
        states = dict(run.states)
        for i in ids:
            states[i] = WAITING
        deadlines = {k: v for k, v in run.deadlines.items() if k not in ids}
        return _advance(replace(run, states=states, deadlines=deadlines), now)
    if isinstance(event, Tick):
        effects: List[Effect] = []
        states = dict(run.states)
        deadlines = dict(run.deadlines)
        failed = run.failed
        for aid, due in sorted(run.deadlines.items()):
            if now >= due and states.get(aid) == RUNNING:
                states[aid] = FAILED
                del deadlines[aid]
                failed = failed + (aid,)
                effects.append(TimedOut(run.actions[aid]))
        if not effects:
            return run, []
        run, more = _advance(replace(run, states=states, deadlines=deadlines, failed=failed), now)
        return run, effects + more
    raise TypeError(f"unknown transition event {event!r}")


def next_deadline(run: Run) -> float | None:
    if run.completed or not run.deadlines:
        return None
    return min(run.deadlines.values())
