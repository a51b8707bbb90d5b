"""Health state of real servers: failurecount debouncing, maintenance, checktype on/off/N, reload carry-over (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Mapping, Tuple

from hadaemon.core.director.checks import Pair, Plan, Target, check_identity, make_plan
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


@dataclass(frozen=True)
class HealthState:
    """All real servers' health, plus the last fallbackcommand run per virtual (start/stop)."""

    reals: Mapping[Pair, RealHealth]
    fallback_command: Mapping[str, str] = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.fallback_command is None:
            object.__setattr__(self, "fallback_command", {})

    def get(self, pair: Pair) -> RealHealth:
        return self.reals.get(pair, RealHealth())

    def any_up(self, plan: Plan, vkey: str) -> bool:
        v = plan.virtuals[vkey]
        return any(self.get((vkey, r.key)).up for r in v.reals)


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


def _apply_one(t: Target, h: RealHealth, res: Result, now: float, events: List) -> RealHealth:
    up, failcount, num, since = h.up, h.failcount, h.num_connects, h.since
    if t.virtual.checktype == "combined":
        if res.kind == "negotiate" and res.ok:
            num = 0
        elif res.kind == "connect":
            num = num + 1 if res.ok else NEGOTIATE_NEXT
    if res.ok:
        if not up:
            events.append(RealUp(t.pair, res.detail))
            up, since = True, now
        failcount = 0
    elif up:
        failcount += 1
        if failcount < t.virtual.failurecount:
            events.append(SoftFailure(t.pair, failcount, t.virtual.failurecount, res.detail))
        else:
            events.append(RealDown(t.pair, res.detail))
            up, since = False, now
    return RealHealth(up, failcount, num, h.maintenance, res.ok, res.detail, now, since)


def apply_results(plan: Plan, state: HealthState, results: Iterable[Result],
                  now: float) -> Tuple[HealthState, List[Event]]:
    """Fold a batch of check results into the state; a result counts for every pair that shares
    the checked real's ldirectord id (as service_set does). Up after one success; down after
    failurecount consecutive failures while up."""
    reals: Dict[Pair, RealHealth] = dict(state.reals)
    events: List[Event] = []
    for res in results:
        t = plan.targets.get(res.pair)
        if t is None:
            continue      # a result from before a reload for a real that is gone
        for pair in plan.groups[plan.identity[res.pair]]:
            h = reals.get(pair, RealHealth())
            if h.maintenance:
                continue
            reals[pair] = _apply_one(plan.targets[pair], h, res, now, events)
    return HealthState(reals, state.fallback_command), events


def apply_on_checks(plan: Plan, state: HealthState, now: float) -> Tuple[HealthState, List[Event]]:
    """checktype=on: reals are brought up without any check (each round)."""
    results = [Result(p, "on", True, "checktype=on") for p, t in plan.targets.items()
               if t.virtual.checktype == "on" and not state.get(p).up]
    return apply_results(plan, state, results, now)


def apply_maintenance(plan: Plan, state: HealthState, in_maintenance: Mapping[Pair, bool],
                      now: float) -> Tuple[HealthState, List[Event]]:
    """maintenancedir: a real whose file is present is forced down at once (no failurecount) and
    not checked; when the file goes, it is down until its next successful check."""
    reals = dict(state.reals)
    events: List[Event] = []
    for pair, flag in in_maintenance.items():
        h = reals.get(pair)
        if h is None or h.maintenance == flag:
            continue
        if flag:
            if h.up:
                events.append(RealDown(pair, "Server in maintenance", maintenance=True))
            reals[pair] = replace(h, maintenance=True, up=False, failcount=0,
                                  last_detail="Server in maintenance", last_time=now,
                                  since=now if h.up else h.since)
        else:
            reals[pair] = replace(h, maintenance=False, num_connects=NEGOTIATE_NEXT)
    return HealthState(reals, state.fallback_command), events


def carry_over(old_state: HealthState, old_config: DirectorConfig,
               new_config: DirectorConfig) -> HealthState:
    """Health after a reload: a real kept by the new config (same virtual key, same address:port)
    keeps up/down and its last result, so a reload never flaps it; if its check changed, its soft
    failure count restarts. New reals start as at startup; removed ones are dropped."""
    old_plan, new_plan = make_plan(old_config), make_plan(new_config)
    reals: Dict[Pair, RealHealth] = {}
    for pair, t in new_plan.targets.items():
        h = old_state.reals.get(pair)
        if h is None:
            reals[pair] = _initial(t, None)
            continue
        old_t = old_plan.targets.get(pair)
        if old_t is not None and check_identity(old_t.virtual, old_t.real) != check_identity(t.virtual, t.real):
            h = replace(h, failcount=0, num_connects=NEGOTIATE_NEXT)
        if t.virtual.checktype == "on" and not h.maintenance:
            h = replace(h, up=True)
        reals[pair] = h
    fb = {k: s for k, s in old_state.fallback_command.items() if k in new_plan.virtuals}
    return HealthState(reals, fb)
