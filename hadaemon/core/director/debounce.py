"""Health state of real servers: failurecount debouncing, flap damping, maintenance, checktype on/off/N,
reload carry-over (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Mapping, Tuple

from hadaemon.core.director.checks import Pair, Plan, Target, make_plan
from hadaemon.core.director.model import DirectorConfig

NEGOTIATE_NEXT = 999999   # ldirectord's num_connects value meaning "negotiate at the next check"


@dataclass(frozen=True)
class RealHealth:
    """What the director knows about one real server of one virtual service."""

    up: bool = False
    failcount: int = 0               # consecutive failures while up (soft failures)
    num_connects: int = NEGOTIATE_NEXT   # checktype=N: connect checks since the last negotiate
    maintenance: bool = False
    last_ok: bool | None = None
    last_detail: str = ""
    last_time: float | None = None
    since: float | None = None    # when `up` last changed
    flaps: Tuple[float, ...] = ()     # flap damping: times of the last up/down changes (within the window)
    held: float | None = None         # flap damping: held down; the time stability is counted from


@dataclass(frozen=True)
class Damping:
    """Flap damping (off unless given): a real whose state changes more than `count` times within
    `window` seconds is held down until its checks have succeeded for `window` seconds in a row."""

    count: int
    window: float


@dataclass(frozen=True)
class HealthState:
    """All real servers' health, plus the last fallbackcommand run per virtual (start/stop) and the
    number of up reals per virtual (kept by every step, so "is any real up" is O(1))."""

    reals: Mapping[Pair, RealHealth]
    fallback_command: Mapping[str, str] = None  # type: ignore[assignment]
    up_counts: Mapping[str, int] = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.fallback_command is None:
            object.__setattr__(self, "fallback_command", {})
        if self.up_counts is None:
            counts: Dict[str, int] = {}
            for (vkey, _), h in self.reals.items():
                if h.up:
                    counts[vkey] = counts.get(vkey, 0) + 1
            object.__setattr__(self, "up_counts", counts)

    def get(self, pair: Pair) -> RealHealth:
        h = self.reals.get(pair)
        return _NO_HISTORY if h is None else h       # (no RealHealth made per call: this is on the check path)

    def any_up(self, plan: Plan, vkey: str) -> bool:
        return self.up_counts.get(vkey, 0) > 0

    def up_total(self) -> int:
        return sum(self.up_counts.values())

    def updated(self, changes: Mapping[Pair, RealHealth]) -> HealthState:
        """A new state with `changes` applied; the up counts are adjusted for the changed pairs only."""
        if not changes:
            return self
        counts = dict(self.up_counts)
        old = self.reals
        for pair, h in changes.items():
            was = old.get(pair)
            delta = int(h.up) - int(was is not None and was.up)
            if delta:
                counts[pair[0]] = counts.get(pair[0], 0) + delta
        reals = dict(old)
        reals.update(changes)
        return HealthState(reals, self.fallback_command, counts)


_NO_HISTORY = RealHealth()       # frozen: one shared instance for "nothing known yet"


@dataclass(frozen=True)
class RealUp:
    pair: Pair
    detail: str = ""


@dataclass(frozen=True)
class RealDown:
    pair: Pair
    detail: str = ""
    maintenance: bool = False


@dataclass(frozen=True)
class RealHeld:
    """Flap damping held a real down (it stays down, or a recovery is not taken yet)."""

    pair: Pair
    changes: int
    window: float
    detail: str = ""


@dataclass(frozen=True)
class SoftFailure:
    pair: Pair
    failcount: int
    failurecount: int
    detail: str = ""


Event = object   # RealUp | RealDown | SoftFailure


@dataclass(frozen=True)
class Result:
    """One finished check: `kind` is what ran (negotiate/connect/...), ok its verdict."""

    pair: Pair
    kind: str
    ok: bool
    detail: str = ""
    duration: float = 0.0


def _initial(t: Target, adopted: bool | None) -> RealHealth:
    if adopted is not None:
        return RealHealth(up=adopted)
    return RealHealth(up=t.virtual.checktype == "on")


def initial_state(config: DirectorConfig, adopted: Mapping[Pair, bool] | None = None,
                  plan: Plan | None = None) -> HealthState:
    """Health at start: reals found in the kernel table with weight > 0 (`adopted`) start up,
    as ldirectord's ld_start does; others start down (checktype=on: up)."""
    plan = plan or make_plan(config)
    adopted = adopted or {}
    return HealthState({p: _initial(t, adopted.get(p)) for p, t in plan.targets.items()})


def check_kind(t: Target, h: RealHealth) -> str | None:
    """The check to run next for a target, or None (checktype on/off: no check)."""
    ct = t.virtual.checktype
    if ct == "negotiate":
        return "negotiate"
    if ct == "connect":
        return "ping" if t.virtual.protocol == "udp" else "connect"
    if ct in ("ping", "external", "external-perl"):
        return ct
    if ct == "combined":
        return "negotiate" if h.num_connects >= t.virtual.num_connects else "connect"
    return None


def _apply_one(t: Target, h: RealHealth, res: Result, now: float, events: List,
               damping: Damping | None = None) -> RealHealth:
    up, failcount, num, since = h.up, h.failcount, h.num_connects, h.since
    if t.virtual.checktype == "combined":
        if res.kind == "negotiate" and res.ok:
            num = 0
        elif res.kind == "connect":
            num = num + 1 if res.ok else NEGOTIATE_NEXT
    if h.held is not None:
        # held down by flap damping: a failure restarts the stability clock; checks that succeed
        # for a whole window in a row release it
        window = damping.window if damping is not None else 0.0
        if not res.ok:
            return RealHealth(False, 0, num, h.maintenance, False, res.detail, now, since, h.flaps, now)
        if now - h.held < window:
            return RealHealth(False, 0, num, h.maintenance, True, res.detail, now, since, h.flaps, h.held)
        events.append(RealUp(t.pair, f"{res.detail} (stable for {window:g}s after flapping)"))
        return RealHealth(True, 0, num, h.maintenance, True, res.detail, now, now, (), None)
    flaps, held = h.flaps, None
    if res.ok:
        if not up:
            up, since = True, now
            if damping is not None:
                flaps = _flaps(flaps, now, damping)
                if len(flaps) > damping.count:
                    events.append(RealHeld(t.pair, len(flaps), damping.window, res.detail))
                    return RealHealth(False, 0, num, h.maintenance, True, res.detail, now, h.since, flaps, now)
            events.append(RealUp(t.pair, res.detail))
        failcount = 0
    elif up:
        failcount += 1
        if failcount < t.virtual.failurecount:
            events.append(SoftFailure(t.pair, failcount, t.virtual.failurecount, res.detail))
        else:
            up, since = False, now
            detail = res.detail
            if damping is not None:
                flaps = _flaps(flaps, now, damping)
                if len(flaps) > damping.count:
                    held = now
                    detail = (f"{res.detail}; flapping: {len(flaps)} changes in {damping.window:g}s, held down "
                              f"until stable for {damping.window:g}s")
            events.append(RealDown(t.pair, detail))
    return RealHealth(up, failcount, num, h.maintenance, res.ok, res.detail, now, since, flaps, held)


def _flaps(flaps: Tuple[float, ...], now: float, damping: Damping) -> Tuple[float, ...]:
    """The change times within the window, plus this one (at most count + 1 kept)."""
    recent = tuple(x for x in flaps if now - x < damping.window) + (now,)
    return recent[-(damping.count + 1):]


def apply_results(plan: Plan, state: HealthState, results: Iterable[Result],
                  now: float, damping: Damping | None = None) -> Tuple[HealthState, List[Event]]:
    """Fold a batch of check results into the state; a result counts for every pair that shares
    the checked real's ldirectord id (as service_set does). Up after one success; down after
    failurecount consecutive failures while up; with `damping`, a real that changes more than
    damping.count times within damping.window is held down until stable. Work is proportional to
    the batch, not to the number of reals (the new state shares nothing mutable with the old)."""
    changes: Dict[Pair, RealHealth] = {}
    reals = state.reals
    events: List[Event] = []
    groups, identity, targets = plan.groups, plan.identity, plan.targets
    for res in results:
        if res.pair not in targets:
            continue      # a result from before a reload for a real that is gone
        for pair in groups[identity[res.pair]]:
            h = changes.get(pair) or reals.get(pair) or RealHealth()
            if h.maintenance:
                continue
            changes[pair] = _apply_one(targets[pair], h, res, now, events, damping)
    return state.updated(changes), events


def apply_on_checks(plan: Plan, state: HealthState, now: float) -> Tuple[HealthState, List[Event]]:
    """checktype=on: reals are brought up without any check (each round)."""
    on = plan.memo.get("on_pairs")
    if on is None:
        on = plan.memo["on_pairs"] = tuple(p for p, t in plan.targets.items() if t.virtual.checktype == "on")
    results = [Result(p, "on", True, "checktype=on") for p in on if not state.get(p).up]
    if not results:
        return state, []
    return apply_results(plan, state, results, now)


def apply_maintenance(plan: Plan, state: HealthState, in_maintenance: Mapping[Pair, bool],
                      now: float) -> Tuple[HealthState, List[Event]]:
    """maintenancedir: a real whose file is present is forced down at once (no failurecount) and
    not checked; when the file goes, it is down until its next successful check. `in_maintenance`
    may hold only the pairs whose flag changed (pairs absent from it are left as they are)."""
    changes: Dict[Pair, RealHealth] = {}
    events: List[Event] = []
    for pair, flag in in_maintenance.items():
        h = state.reals.get(pair)
        if h is None or h.maintenance == flag:
            continue
        if flag:
            if h.up:
                events.append(RealDown(pair, "Server in maintenance", maintenance=True))
            changes[pair] = replace(h, maintenance=True, up=False, failcount=0,
                                    last_detail="Server in maintenance", last_time=now,
                                    since=now if h.up else h.since)
        else:
            changes[pair] = replace(h, maintenance=False, num_connects=NEGOTIATE_NEXT)
    return state.updated(changes), events


def carry_over(old_state: HealthState, old_config: DirectorConfig,
               new_config: DirectorConfig, old_plan: Plan | None = None,
               new_plan: Plan | None = None) -> HealthState:
    """Health after a reload: a real kept by the new config (same virtual key, same address:port)
    keeps up/down and its last result, so a reload never flaps it; if its check changed, its soft
    failure count restarts. New reals start as at startup; removed ones are dropped."""
    if old_plan is None or old_plan.config is not old_config:
        old_plan = make_plan(old_config)
    if new_plan is None or new_plan.config is not new_config:
        new_plan = make_plan(new_config)
    reals: Dict[Pair, RealHealth] = {}
    for pair, t in new_plan.targets.items():
        h = old_state.reals.get(pair)
        if h is None:
            reals[pair] = _initial(t, None)
            continue
        if old_plan.identity.get(pair, new_plan.identity[pair]) != new_plan.identity[pair]:
            h = replace(h, failcount=0, num_connects=NEGOTIATE_NEXT)
        if t.virtual.checktype == "on" and not h.maintenance:
            h = replace(h, up=True)
        reals[pair] = h
    fb = {k: s for k, s in old_state.fallback_command.items() if k in new_plan.virtuals}
    return HealthState(reals, fb)
