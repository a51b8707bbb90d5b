"""Check planning: which check each real server gets, with what parameters and timeout (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Tuple

from hadaemon.core.director.model import DirectorConfig, Real, Virtual, check_port

Pair = Tuple[str, str]          # (virtual key, real key)

# Negotiate checks whose overall bound ldirectord sets with checktimeout (an alarm), not negotiatetimeout.
_CHECKTIMEOUT_NEGOTIATE = ("ldap", "ldaps", "radius")
# Services ldirectord checks with a client library we do not have.
UNSUPPORTED_SERVICES = {"oracle": "Oracle (DBD::Oracle / Oracle client library)"}


def unsupported_checks(config: DirectorConfig) -> List[Tuple[int, str]]:
    """(line, message) for each virtual whose negotiate check needs a client library we lack: its
    reals can never be up (they stay down with that message as the check detail)."""
    out = []
    for v in config.virtuals:
        if v.service in UNSUPPORTED_SERVICES and v.checktype in ("negotiate", "combined"):
            out.append((v.line, f"virtual service {v.key}: service={v.service} needs "
                                f"{UNSUPPORTED_SERVICES[v.service]}, which hadaemon does not ship; its "
                                "real servers will never be up (use checktype=connect or external)"))
    return out


@dataclass(frozen=True)
class CheckSpec:
    """Everything an I/O checker needs to check one real server once."""

    kind: str               # negotiate | connect | ping | external | external-perl | none
    service: str            # ldirectord service (http, https, ftp, ...), "none" = always up
    protocol: str           # tcp | udp (fwm services are checked over tcp)
    address: str            # the real server's address (bare)
    family: int
    port: int               # the port to check (ld_checkport)
    timeout: float          # overall bound for this check
    attempts: int = 1       # ping: checkcount attempts of `timeout` each
    request: str = "/"
    receive: str = ""
    httpmethod: str = "GET"
    virtualhost: str | None = None
    login: str = ""
    passwd: str = ""
    database: str = ""
    secret: str = ""
    url: str = ""           # http(s)/http_proxy: the URL ldirectord builds
    command: str = ""       # external: the checkcommand
    args: Tuple[str, ...] = ()   # external: VIP VPORT RIP RPORT

    @property
    def target(self) -> str:
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Target:
    """One (virtual, real) pair to keep checked."""

    virtual: Virtual
    real: Real

    @cached_property
    def pair(self) -> Pair:
        """(virtual key, real key), made once (it is asked for on every check result)."""
        return (self.virtual.key, self.real.key)


def check_identity(v: Virtual, r: Real) -> str:
    """ldirectord's get_real_id_str: equal ids are checked once and share the result."""
    request = r.request if r.request is not None else v.request
    receive = r.receive if r.receive is not None else v.receive
    if v.checktype in ("negotiate", "combined"):
        check = f"{v.checktype}:{v.service}"
    elif v.checktype in ("external", "external-perl"):
        check = f"{v.checktype}:{v.checkcommand}"
    else:
        check = v.checktype
    return ":".join(str(x) for x in (
        check, v.protocol, r.key, v.virtualhost or "", v.checkport or "", r.weight, r.method,
        request, receive))


def check_spec(v: Virtual, r: Real, kind: str) -> CheckSpec:
    """The CheckSpec for running a check of `kind` on real `r` of virtual `v`."""
    port = check_port(v, r) or 0
    request = r.request if (r.request is not None and r.receive is not None) else v.request
    receive = r.receive if (r.request is not None and r.receive is not None) else v.receive
    service = v.service
    if kind == "negotiate":
        timeout = v.checktimeout if service in _CHECKTIMEOUT_NEGOTIATE else v.negotiatetimeout
    else:
        timeout = v.checktimeout
    url = ""
    if service in ("http", "https", "http_proxy"):
        scheme = "http" if service == "http_proxy" else service
        uri = request.lstrip("/")
        host = f"[{r.address}]" if r.family == 6 else r.address
        if r.request is not None and r.receive is not None and f"{scheme}://" in r.request:
            url = uri
        elif r.request is None and service == "http_proxy":
            url = uri
        else:
            url = f"{scheme}://{host}:{port}/{uri}"
    vip = v.server if v.protocol != "fwm" else str(v.fwmark)
    vport = str(v.port) if v.port is not None else "0"
    rhost = f"[{r.address}]" if r.family == 6 else r.address
    return CheckSpec(
        kind=kind, service=service, protocol="udp" if v.protocol == "udp" else "tcp",
        address=r.address, family=r.family, port=port, timeout=float(timeout),
        attempts=v.checkcount if kind == "ping" else 1, request=request, receive=receive,
        httpmethod=v.httpmethod, virtualhost=v.virtualhost, login=v.login, passwd=v.passwd,
        database=v.database, secret=v.secret, url=url, command=v.checkcommand,
        args=(vip, vport, rhost, str(r.port or 0)))


class Plan:
    """A config indexed for checking: targets in order, and pairs grouped by ldirectord's real id."""

    def __init__(self, config: DirectorConfig, build: bool = True):
        self.config = config
        self.virtuals: Dict[str, Virtual] = {v.key: v for v in config.virtuals}
        self.targets: Dict[Pair, Target] = {}
        self.groups: Dict[str, List[Pair]] = {}
        self.identity: Dict[Pair, str] = {}
        self.memo: Dict[tuple, object] = {}      # derived immutable values (e.g. table entries)
        if build:
            for v in config.virtuals:
                self._add(v, v.reals)

    def _add(self, v: Virtual, reals) -> None:
        for r in reals:
            t = Target(v, r)
            if t.pair in self.targets:
                continue          # the same real listed twice in one virtual
            self.targets[t.pair] = t
            ident = check_identity(v, r)
            self.identity[t.pair] = ident
            self.groups.setdefault(ident, []).append(t.pair)

    def target(self, pair: Pair) -> Target:
        return self.targets[pair]


def make_plan(config: DirectorConfig) -> Plan:
    return Plan(config)


def plan_steps(config: DirectorConfig, chunk: int = 500):
    """make_plan(config) a chunk of reals at a time: a generator that yields between chunks and returns the
    plan (equal to make_plan's). A caller with an event loop lets other work in between."""
    plan = Plan(config, build=False)
    for v in config.virtuals:
        for i in range(0, len(v.reals), chunk):
            plan._add(v, v.reals[i:i + chunk])
            yield
    return plan


def maintenance_names(r: Real, hostname: str | None = None) -> Tuple[str, ...]:
    """File names in maintenancedir that put real `r` in maintenance, in ldirectord's order."""
    host = f"[{r.address}]" if r.family == 6 else r.address
    port = r.port or 0
    names = [f"{host}:{port}", host]
    if hostname:
        names += [f"{hostname}:{port}", hostname]
        short = hostname.split(".")[0] if "." in hostname else None
        if short and short[:1].isalpha():
            names += [f"{short}:{port}", short]
    return tuple(names)
