"""The wanted LVS table from config + health (quiescent, readdquiescent, fallback) and fallbackcommand runs (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

from hadaemon.core.errors import ConfigError
from hadaemon.core.director.checks import Plan, make_plan
from hadaemon.core.director.debounce import HealthState
from hadaemon.core.director.model import DirectorConfig, Real, Virtual, table_port
from hadaemon.core.director.lvs_table import (
    MAX_TOTAL_WEIGHT, SERVICE_FLAGS, Destination, Service, Table, TableError, VirtualService, hostport,
)


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


def wanted_table(config: DirectorConfig, health: HealthState, current: Table | None = None,
                 plan: Plan | None = None) -> Table:
    """The table the kernel should hold.

    A real that is up is present with its weight. A real that is down is present with weight 0
    when quiescent=yes, else absent; with readdquiescent=no a quiescent real that has been checked
    and is absent from `current` (removed by hand) stays absent. `current=None` means startup, and
    a real not checked yet (new at start or reload) is added with weight 0, as ldirectord's
    ld_start does. The fallback server (weight 1) is
    present only while no real of the virtual is up. checktype=off reals keep the state they
    started with (see initial_state).
    """
    if plan is None or plan.config is not config:
        plan = make_plan(config)          # the memo below belongs to one config
    table: Table = {}
    readd = config.globals.readdquiescent
    memo = plan.memo
    reals = health.reals
    for v in config.virtuals:
        rows = memo.get(("rows", v.key))
        if rows is None:
            rows, seen = [], set()
            for r in v.reals:
                key = dest_key(v, r)
                if key not in seen:          # the same destination listed twice: first wins
                    seen.add(key)
                    rows.append(((v.key, r.key), key, _dest(v, r, r.weight), _dest(v, r, 0)))
            memo[("rows", v.key)] = rows
            memo[("svc", v.key)] = virtual_service(v)
        svc = memo[("svc", v.key)]
        cur = current.get(svc.key) if current is not None else None
        cur_dests = cur.dests if cur is not None else ()
        dests: Dict[str, Destination] = {}
        any_up = False
        for pair, key, d_up, d_zero in rows:
            h = reals.get(pair)
            if h is not None and h.up:
                dests[key] = d_up
                any_up = True
            elif v.quiescent and (readd or current is None or h is None or h.last_time is None
                                  or key in cur_dests):
                dests[key] = d_zero
        fb = config.fallback_for(v)
        if fb is not None and not any_up:
            dests[dest_key(v, fb)] = _dest(v, fb, 1)
        table[svc.key] = Service(svc, dests)
    return table


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
    return HealthState(health.reals, status), effects


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
