"""The transition executor: runs a TransitionGraph as `step(run, event, now) -> (run, effects)`.

An action is ready when every action it depends on is done. Pseudo actions complete as soon as they
are ready; resource operations, fencing and do_shutdown (the node may leave: its resources are
stopped) become `Execute` effects with a deadline
(the operation's timeout plus a margin). A failed or timed-out action, or an `Abort` (node lost, CIB
changed, a failure reported outside the transition), stops new actions from starting; the transition
ends (`Completed`) once no action is in flight. The DC then reschedules from the status section, which
records every result: whatever prefix of a transition was applied, the next one starts from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Tuple, Union

__all__ = ["ActionSpec", "Run", "Started", "ActionDone", "Abort", "Tick", "Execute", "Completed",
           "TimedOut", "new_run", "step", "next_deadline", "from_graph", "WAITING", "RUNNING", "DONE",
           "FAILED", "SKIPPED"]

WAITING, RUNNING, DONE, FAILED, SKIPPED = "waiting", "running", "done", "failed", "skipped"
INFINITY = 1000000


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
    action_id: int
    ok: bool


@dataclass(frozen=True)
class Abort:
    reason: str


@dataclass(frozen=True)
class Tick:
    pass


Event = Union[Started, ActionDone, Abort, Tick]


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


Effect = Union[Execute, TimedOut, Completed]


def new_run(transition_id: int, actions: List[ActionSpec], edges: List[Tuple[int, int]],
            margin: float = 5.0) -> Run:
    ids = {a.id for a in actions}
    inputs: Dict[int, List[int]] = {a.id: [] for a in actions}
    for before, after in edges:
        if before in ids and after in ids and before not in inputs[after]:
            inputs[after].append(before)
    return Run(transition_id, {a.id: a for a in actions}, {k: tuple(sorted(v)) for k, v in inputs.items()},
               margin, {a.id: WAITING for a in actions})


def from_graph(transition_id: int, graph, timeouts: Mapping[int, float], margin: float = 5.0,
               target_rcs: Mapping[int, int] | None = None) -> Run:
    """A Run from a hadaemon.core.policy.graph.TransitionGraph; timeouts: action id -> seconds;
    target_rcs: expected results the graph leaves implicit (a promoted monitor's 8)."""
    specs = []
    for a in graph.actions:
        kind = "crm_event" if a.kind == "crm_event" else ("pseudo_event" if a.pseudo else "rsc_op")
        target = a.target_rc if a.target_rc is not None else (target_rcs or {}).get(a.id, 0)
        specs.append(ActionSpec(a.id, a.key, a.task, a.rsc, a.node, a.interval_ms, bool(a.pseudo), kind,
                                target, float(timeouts.get(a.id, 20.0)), a.fence_type, action_priority(a.key)))
    return new_run(transition_id, specs, list(graph.edges), margin)


def _ready(run: Run, aid: int) -> bool:
    return all(run.states.get(b) == DONE for b in run.inputs.get(aid, ()))


def _advance(run: Run, now: float) -> Tuple[Run, List[Effect]]:
    effects: List[Effect] = []
    states = dict(run.states)
    deadlines = dict(run.deadlines)
    stopping = bool(run.abort_reason or run.failed)
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
            else:
                states[aid] = RUNNING
                deadlines[aid] = now + a.timeout_s + run.margin
                effects.append(Execute(a, deadlines[aid]))
    run = replace(run, states=states, deadlines=deadlines)
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
        return _advance(replace(run, states=states, deadlines=deadlines, failed=failed), now)
    if isinstance(event, Abort):
        run = replace(run, abort_reason=run.abort_reason or event.reason)
        return _advance(run, now)
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
