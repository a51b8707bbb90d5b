"""The wanted LVS table from config + health (quiescent, readdquiescent, fallback) and fallbackcommand runs (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

from hadaemon.core.errors import ConfigError
from hadaemon.core.director.checks import Plan, make_plan
from hadaemon.core.director.debounce import HealthState
from hadaemon.core.director.model import DirectorConfig, Real, Virtual, table_port
from hadaemon.core.director.lvs_table import (
    MAX_TOTAL_WEIGHT, SERVICE_FLAGS, Destination, Op, Service, Table, TableError, VirtualService, diff, dest_ops,
    hostport,
)

Overrides = Mapping[Tuple[str, str], int]     # (service key, dest key) -> weight set by an admin


def virtual_service(v: Virtual) -> VirtualService:
    """The IPVS virtual service for a virtual block (ld_setup's ipvsadm flags)."""
    flags = [f for f in (v.schedflags or "").split(",") if f in SERVICE_FLAGS]
    if v.protocol == "udp" and v.ops:
        flags.append("ops")
    family = "inet6" if v.family == 6 else "inet"
    if v.protocol == "fwm":
        return VirtualService("fwm", fwmark=v.fwmark or 0, family=family, scheduler=v.scheduler,
                              persistent=v.persistent or None,
                              netmask=v.netmask if v.persistent else None, flags=tuple(flags))
    return VirtualService(v.protocol, v.address or "", v.port or 0, scheduler=v.scheduler,
                          persistent=v.persistent or None,
                          netmask=v.netmask if v.persistent else None, flags=tuple(flags))


def dest_key(v: Virtual, r: Real) -> str:
    """The key of real `r`'s destination in the table (its port defaults to the virtual's)."""
    return hostport(r.address, table_port(v, r))


def _dest(v: Virtual, r: Real, weight: int) -> Destination:
    return Destination(r.address, table_port(v, r), r.method, weight, r.lower, r.upper)


def check_table(config: DirectorConfig) -> None:
    """Raise ConfigError(path, line, message) for a configuration the table cannot take: a value
    ldirectord's parser lets through but no table can hold (a weight above 65535 — ipvsadm's limit,
    the one weight limit everywhere —, a fwmark or persistent timeout out of range, a sum of weights
    the nft backend cannot spread), which ldirectord only finds when ipvsadm fails; and a file with no
    virtual service at all, which ldirectord accepts and which would remove every virtual service
    (an empty or truncated file is far more often a mistake than a wish: stopping the director
    removes them). Used by --check-config, at start and on every reload (the running configuration
    stays when it raises)."""
    if not config.virtuals:
        what = "the file is empty" if not config.lines else "no virtual service (virtual=/virtual6=) in the file"
        raise ConfigError(config.path, max(1, config.lines),
                          f"{what}: refusing a configuration that would remove every virtual service "
                          "(ldirectord would; stop ha-ldirectord to remove them)")
    for v in config.virtuals:
        try:
            virtual_service(v)
        except TableError as e:
            raise ConfigError(config.path, v.line, f"virtual service {v.key}: {e}") from None
        fb = config.fallback_for(v)
        total = 0
        for r in v.reals + ((fb,) if fb is not None else ()):
            try:
                _dest(v, r, r.weight)
            except TableError as e:
                raise ConfigError(config.path, r.line or v.line, f"real server {r.key}: {e}") from None
            total += r.weight
            if total > MAX_TOTAL_WEIGHT:
                raise ConfigError(config.path, r.line or v.line,
                                  f"real server {r.key}: the weights of virtual service {v.key} add up to "
                                  f"more than {MAX_TOTAL_WEIGHT} (what the nft backend can spread)")


class _Rows:
    """A virtual service's table rows, derived once per config (memoized in the plan): for each
    destination (the first real wins when two share one) its pair and its up / quiescent entries."""

    __slots__ = ("svc", "rows", "by_pair", "by_dest", "fallback")

    def __init__(self, config: DirectorConfig, v: Virtual, build: bool = True):
        self.svc = virtual_service(v)
        self.rows: List[tuple] = []
        self.by_pair: Dict[tuple, tuple] = {}
        self.by_dest: Dict[str, tuple] = {}
        if build:
            self._add(v, v.reals)
        fb = config.fallback_for(v)
        self.fallback = _dest(v, fb, 1) if fb is not None else None

    def _add(self, v: Virtual, reals) -> None:
        for r in reals:
            key = dest_key(v, r)
            row = self.by_dest.get(key)
            if row is None:              # the same destination listed twice: first wins
                row = self.by_dest[key] = ((v.key, r.key), key, _dest(v, r, r.weight), _dest(v, r, 0))
                self.rows.append(row)
            self.by_pair.setdefault((v.key, r.key), row)


def _rows(plan: Plan, v: Virtual) -> _Rows:
    got = plan.memo.get(("rows", v.key))
    if got is None:
        got = plan.memo[("rows", v.key)] = _Rows(plan.config, v)
    return got


def prepare_plan(plan: Plan) -> None:
    """Derive the per-config table entries now (not at the first table computation)."""
    for _ in prepare_steps(plan):
        pass


def prepare_steps(plan: Plan, chunk: int = 500):
    """prepare_plan a chunk of reals at a time: a generator that yields between chunks (a reload runs it on
    the event loop, a few ms per turn, instead of tens of ms at once or on a thread competing for the GIL)."""
    for v in plan.config.virtuals:
        if ("rows", v.key) in plan.memo:
            continue
        rows = _Rows(plan.config, v, build=False)
        for i in range(0, len(v.reals), chunk):
            rows._add(v, v.reals[i:i + chunk])
            yield
        plan.memo[("rows", v.key)] = rows          # complete: only now visible to _rows()


def _wanted_dest(v: Virtual, row: tuple, h, cur_dests, readd: bool, startup: bool, skey: str,
                 overrides: Overrides | None) -> Destination | None:
    """The destination one real should have in the table (None: absent); see wanted_table."""
    pair, key, d_up, d_zero = row
    if h is not None and h.up:
        if overrides:
            w = overrides.get((skey, key))
            if w is not None and w != d_up.weight:
                return Destination(d_up.address, d_up.port, d_up.method, w, d_up.lower, d_up.upper)
        return d_up
    if v.quiescent and (readd or startup or h is None or h.last_time is None or key in cur_dests):
        return d_zero
    return None


def wanted_table(config: DirectorConfig, health: HealthState, current: Table | None = None,
                 plan: Plan | None = None, overrides: Overrides | None = None) -> Table:
    """The table the kernel should hold.

    A real that is up is present with its weight (or the weight an admin set in `overrides`,
    keyed by (service key, dest key)). A real that is down is present with weight 0 when
    quiescent=yes, else absent; with readdquiescent=no a quiescent real that has been checked
    and is absent from `current` (removed by hand) stays absent. `current=None` means startup, and
    a real not checked yet (new at start or reload) is added with weight 0, as ldirectord's
    ld_start does. The fallback server (weight 1) is present only while no real of the virtual is
    up. checktype=off reals keep the state they started with (see initial_state).
    """
    if plan is None or plan.config is not config:
        plan = make_plan(config)          # the memo below belongs to one config
    table: Table = {}
    for v in config.virtuals:
        svc, dests = _wanted_service(config, plan, health, current, v, overrides)
        table[svc.key] = Service(svc, dests)
    return table


def _wanted_service(config, plan, health, current, v, overrides):
    rows = _rows(plan, v)
    svc = rows.svc
    readd = config.globals.readdquiescent
    reals = health.reals
    cur = current.get(svc.key) if current is not None else None
    cur_dests = cur.dests if cur is not None else ()
    dests: Dict[str, Destination] = {}
    for row in rows.rows:
        d = _wanted_dest(v, row, reals.get(row[0]), cur_dests, readd, current is None, svc.key, overrides)
        if d is not None:
            dests[row[1]] = d
    if rows.fallback is not None and not health.any_up(plan, v.key):
        dests[rows.fallback.key] = rows.fallback
    return svc, dests


def table_changes(config: DirectorConfig, health: HealthState, current: Table, pairs,
                  plan: Plan | None = None, overrides: Overrides | None = None) -> List[Op]:
    """The ops that bring the destinations of `pairs` (reals whose health or override changed), and
    the fallbacks of their virtual services, to what wanted_table says; the rest of the table is
    not looked at. Equal to diff(current, wanted_table(...)) restricted to those destinations, in
    O(len(pairs)) for a virtual service that is in `current` (else that service is diffed whole)."""
    if plan is None or plan.config is not config:
        plan = make_plan(config)
    by_virtual: Dict[str, List[tuple]] = {}
    for pair in pairs:
        by_virtual.setdefault(pair[0], []).append(pair)
    readd = config.globals.readdquiescent
    ops: List[Op] = []
    for vkey in sorted(by_virtual):
        v = plan.virtuals.get(vkey)
        if v is None:
            continue
        rows = _rows(plan, v)
        svc = rows.svc
        cur = current.get(svc.key)
        fb = rows.fallback
        if cur is None or cur.service != svc or (fb is not None and any(r[1] == fb.key for r in rows.rows)):
            want_svc, want_dests = _wanted_service(config, plan, health, current, v, overrides)
            ops += diff({svc.key: cur} if cur is not None else {}, {svc.key: Service(want_svc, want_dests)})
            continue
        wanted: Dict[str, Destination | None] = {}
        for pair in by_virtual[vkey]:
            row = rows.by_pair.get(pair)
            if row is not None:
                wanted[row[1]] = _wanted_dest(v, row, health.reals.get(row[0]), cur.dests, readd, False, svc.key,
                                              overrides)
        if fb is not None:
            wanted[fb.key] = None if health.any_up(plan, vkey) else fb
        ops += dest_ops(svc, cur.dests, wanted)
    return ops


@dataclass(frozen=True)
class RunCommand:
    """Run `command` through the shell (ldirectord's system_wrapper)."""

    command: str
    virtual: str


def fallback_commands(config: DirectorConfig, health: HealthState,
                      plan: Plan | None = None) -> Tuple[HealthState, List[RunCommand]]:
    """fallbackcommand: `CMD start VIP:VPORT PROTO` when a virtual's last real goes down (or none is
    up at start), `CMD stop ...` when one comes back; each only on a change, as ldirectord does."""
    plan = plan or make_plan(config)
    status: Dict[str, str] = dict(health.fallback_command)
    effects: List[RunCommand] = []
    for v in config.virtuals:
        want = "stop" if health.any_up(plan, v.key) else "start"
        if status.get(v.key) == want:
            continue
        status[v.key] = want
        if v.fallbackcommand:
            where = f"{v.server}:{v.port}" if v.protocol != "fwm" else f":{0}"
            effects.append(RunCommand(f"{v.fallbackcommand} {want} {where} {v.protocol}", v.key))
    return HealthState(health.reals, status, health.up_counts), effects


def health_by_dest(config: DirectorConfig, health: HealthState) -> Mapping[Tuple[str, str], str]:
    """(service key, dest key) -> "up" / "down" / "maintenance" / "fallback", for status listings."""
    out: Dict[Tuple[str, str], str] = {}
    for v in config.virtuals:
        skey = virtual_service(v).key
        fb = config.fallback_for(v)
        if fb is not None:
            out[(skey, dest_key(v, fb))] = "fallback"
        for r in v.reals:
            h = health.get((v.key, r.key))
            out[(skey, dest_key(v, r))] = "maintenance" if h.maintenance else ("up" if h.up else "down")
    return out
