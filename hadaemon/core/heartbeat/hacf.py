"""Parse Heartbeat's ha.cf into a validated, immutable HaConfig (pure: text in, config or ConfigError out)."""
from __future__ import annotations

import ipaddress
import re
from typing import Callable, Dict, List, Tuple

from hadaemon.core.errors import ConfigError
from hadaemon.core.heartbeat.hacf_model import (  # noqa: F401 - re-exported: callers import them from here
    DEFAULT_UDPPORT, IFNAMSIZ_MAX, MAX_TIME, NODE_NAME_MAX, SYSLOG_FACILITIES, UNSUPPORTED, HaConfig, Medium,
    format_time, parse_time,
)

_TRUE = ("on", "yes", "true", "y", "1")
_FALSE = ("off", "no", "false", "n", "0")


def _is_uint(text: str) -> bool:
    """ASCII digits only (str.isdigit() also accepts '²' and other digits int() refuses)."""
    return bool(re.fullmatch(r"[0-9]{1,12}", text))


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(re.match(r"^[A-Za-z0-9_]([A-Za-z0-9._-]{0,252})$", text)) and not _is_uint(text.replace(".", ""))


class _Parser:
    def __init__(self, path: str):
        self.path = path
        self.values: Dict[str, object] = {}
        self.lines: Dict[str, int] = {}
        self.media: List[Tuple[Medium, int]] = []
        self.nodes: List[Tuple[str, int]] = []
        self.ping: List[str] = []
        self.ping_groups: Dict[str, Tuple[str, ...]] = {}
        self.env: Dict[str, str] = {}
        self.warnings: List[str] = []

    # -- helpers ----------------------------------------------------------------------------------------
    def err(self, line: int, message: str) -> ConfigError:
        return ConfigError(self.path, line, message)

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.path}:{line}: warning: {message}")

    def one(self, d: str, args: List[str], line: int) -> str:
        if not args:
            raise self.err(line, f"'{d}' needs a value")
        if len(args) > 1:
            raise self.err(line, f"'{d}' takes one value, got {len(args)}: {' '.join(args)}")
        return args[0]

    def set(self, d: str, value: object, line: int) -> None:
        if d in self.lines:
            self.warn(line, f"'{d}' given again (first on line {self.lines[d]}); the last one wins")
        self.values[d] = value
        self.lines[d] = line

    def iface(self, d: str, name: str, line: int) -> str:
        if len(name.encode()) > IFNAMSIZ_MAX or "/" in name or name in (".", ".."):
            raise self.err(line, f"{d}: invalid interface name '{name}' (at most {IFNAMSIZ_MAX} characters, no '/')")
        return name

    def add_medium(self, m: Medium, line: int) -> None:
        for other, other_line in self.media:
            if other == m:
                raise self.err(line, f"{m.kind} medium on {m.iface} declared twice (first on line {other_line})")
        self.media.append((m, line))

    # -- value kinds -------------------------------------------------------------------------------------
    def time(self, d: str, args: List[str], line: int, zero_ok: bool = False) -> None:
        v = self.one(d, args, line)
        t = parse_time(v)
        if t is None or (t <= 0 and not zero_ok):
            raise self.err(line, f"{d}: invalid time '{v}' (use seconds such as 2 or 0.5, or 500ms / 500000us)")
        if t > MAX_TIME:
            raise self.err(line, f"{d}: {v} is too long (at most {MAX_TIME} seconds)")
        self.set(d, t, line)

    def boolean(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line).lower()
        if v not in _TRUE + _FALSE:
            raise self.err(line, f"{d}: invalid value '{args[0]}' (use on or off)")
        self.set(d, v in _TRUE, line)

    def integer(self, d: str, args: List[str], line: int, lo: int, hi: int) -> None:
        v = self.one(d, args, line)
        if not _is_uint(v) or not lo <= int(v) <= hi:
            raise self.err(line, f"{d}: invalid value '{v}' (use an integer from {lo} to {hi})")
        self.set(d, int(v), line)

    def choice(self, d: str, args: List[str], line: int, choices: Tuple[str, ...]) -> None:
        v = self.one(d, args, line)
        if v.lower() not in choices:
            raise self.err(line, f"{d}: invalid value '{v}' (use one of: {', '.join(choices)})")
        self.set(d, v.lower(), line)

    # -- directives with structure -----------------------------------------------------------------------
    def d_node(self, d: str, args: List[str], line: int) -> None:
        if not args:
            raise self.err(line, "'node' needs at least one node name")
        for name in args:
            if len(name.encode()) > NODE_NAME_MAX or not _is_host(name):
                raise self.err(line, f"node: invalid node name '{name}' (a host name as `uname -n` prints it, "
                                     f"at most {NODE_NAME_MAX} characters)")
            for other, other_line in self.nodes:
                if other.lower() == name.lower():
                    raise self.err(line, f"node '{name}' declared twice (first on line {other_line})")
            self.nodes.append((name, line))

    def d_cluster(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line)
        if len(v.encode()) > NODE_NAME_MAX or not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise self.err(line, f"cluster: invalid cluster name '{v}' (letters, digits, '.', '_', '-'; "
                                 f"at most {NODE_NAME_MAX})")
        self.set(d, v, line)

    def d_bcast(self, d: str, args: List[str], line: int) -> None:
        if d == "udp":
            self.warn(line, "directive 'udp' is the old name of 'bcast'; write 'bcast'")
        if not args:
            raise self.err(line, f"'{d}' needs at least one interface, e.g. {d} eth0 eth1")
        for name in args:
            self.add_medium(Medium("bcast", self.iface(d, name, line)), line)

    def d_mcast(self, d: str, args: List[str], line: int) -> None:
        usage = "mcast needs 5 values: mcast INTERFACE GROUP PORT TTL LOOP (e.g. mcast eth0 239.0.0.1 694 1 0)"
        if len(args) != 5:
            raise self.err(line, usage)
        iface, group, port, ttl, loop = args
        try:
            ok = ipaddress.IPv4Address(group).is_multicast
        except ValueError:
            ok = False
        if not ok:
            raise self.err(line, f"mcast: '{group}' is not an IPv4 multicast group (224.0.0.0 to 239.255.255.255)")
        if not _is_uint(port) or not 1 <= int(port) <= 65535:
            raise self.err(line, f"mcast: invalid port '{port}' (use 1 to 65535)")
        if not _is_uint(ttl) or not 1 <= int(ttl) <= 255:
            raise self.err(line, f"mcast: invalid ttl '{ttl}' (use 1 to 255)")
        if loop not in ("0", "1"):
            raise self.err(line, f"mcast: invalid loop '{loop}' (use 0 or 1)")
        self.add_medium(Medium("mcast", self.iface(d, iface, line), group, int(port), int(ttl), loop == "1"), line)

    def d_ucast(self, d: str, args: List[str], line: int) -> None:
        if len(args) < 2:
            raise self.err(line, "ucast needs an interface and a peer address: ucast INTERFACE PEER [PEER...]")
        iface = self.iface(d, args[0], line)
        for peer in args[1:]:
            if not _is_host(peer):
                raise self.err(line, f"ucast: invalid peer address '{peer}'")
            self.add_medium(Medium("ucast", iface, peer), line)

    def d_ping(self, d: str, args: List[str], line: int) -> None:
        if not args:
            raise self.err(line, "'ping' needs at least one address")
        for a in args:
            if not _is_host(a):
                raise self.err(line, f"ping: invalid address '{a}'")
            self.ping.append(a)

    def d_ping_group(self, d: str, args: List[str], line: int) -> None:
        if len(args) < 2:
            raise self.err(line, "ping_group needs a name and at least one address: ping_group NAME ADDR [ADDR...]")
        name = args[0]
        if name in self.ping_groups:
            raise self.err(line, f"ping_group '{name}' declared twice")
        for a in args[1:]:
            if not _is_host(a):
                raise self.err(line, f"ping_group: invalid address '{a}'")
        self.ping_groups[name] = tuple(args[1:])

    def d_crm(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line).lower()
        if v == "respawn":
            self.set("crm", "respawn", line)
        elif v in _TRUE + _FALSE:
            self.set("crm", "on" if v in _TRUE else "off", line)
        else:
            raise self.err(line, f"{d}: invalid value '{args[0]}' (use on, off or respawn)")

    def d_auto_failback(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line).lower()
        if v == "legacy":
            self.set(d, "legacy", line)
        elif v in _TRUE + _FALSE:
            self.set(d, "on" if v in _TRUE else "off", line)
        else:
            raise self.err(line, f"{d}: invalid value '{args[0]}' (use on, off or legacy)")

    def d_logfacility(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line).lower()
        if v != "none" and v not in SYSLOG_FACILITIES:
            raise self.err(line, f"logfacility: unknown syslog facility '{args[0]}' (e.g. daemon, local0 ... local7, none)")
        self.set(d, None if v == "none" else v, line)

    def d_path(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line)
        if not v.startswith("/"):
            raise self.err(line, f"{d}: '{v}' is not an absolute path")
        self.set(d, v, line)

    def d_env(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line)
        name, sep, value = v.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise self.err(line, f"env: expected NAME=value, got '{v}'")
        self.env[name] = value

    def d_max_rexmit_delay(self, d: str, args: List[str], line: int) -> None:
        v = self.one(d, args, line)   # Heartbeat: milliseconds, a bare integer
        if not _is_uint(v) or int(v) <= 0:
            raise self.err(line, f"max_rexmit_delay: invalid value '{v}' (milliseconds, a positive integer)")
        self.set(d, int(v) / 1000.0, line)

    def d_memreserve(self, d: str, args: List[str], line: int) -> None:
        self.integer(d, args, line, 0, 1 << 30)
        self.warn(line, "memreserve is ignored: the daemon does not pre-lock memory")


_B = _Parser
DIRECTIVES: Dict[str, Callable[[_Parser, str, List[str], int], None]] = {
    "node": _B.d_node,
    "cluster": _B.d_cluster,
    "keepalive": lambda p, d, a, n: p.time(d, a, n),
    "deadtime": lambda p, d, a, n: p.time(d, a, n),
    "warntime": lambda p, d, a, n: p.time(d, a, n),
    "initdead": lambda p, d, a, n: p.time(d, a, n),
    "deadping": lambda p, d, a, n: p.time(d, a, n),
    "udpport": lambda p, d, a, n: p.integer(d, a, n, 1, 65535),
    "bcast": _B.d_bcast,
    "udp": _B.d_bcast,
    "mcast": _B.d_mcast,
    "ucast": _B.d_ucast,
    "ping": _B.d_ping,
    "ping_group": _B.d_ping_group,
    "auto_failback": _B.d_auto_failback,
    "crm": _B.d_crm,
    "pacemaker": _B.d_crm,
    "compression": lambda p, d, a, n: p.choice(d, a, n, ("zlib", "bz2")),
    "compression_threshold": lambda p, d, a, n: p.integer(d, a, n, 1, 1 << 20),
    "traditional_compression": lambda p, d, a, n: p.boolean(d, a, n),
    "logfacility": _B.d_logfacility,
    "logfile": _B.d_path,
    "debugfile": _B.d_path,
    "use_logd": lambda p, d, a, n: p.boolean(d, a, n),
    "conn_logd_time": lambda p, d, a, n: p.time(d, a, n),
    "hopfudge": lambda p, d, a, n: p.integer(d, a, n, 0, 255),
    "realtime": lambda p, d, a, n: p.boolean(d, a, n),
    "rtprio": lambda p, d, a, n: p.integer(d, a, n, 1, 99),
    "debug": lambda p, d, a, n: p.integer(d, a, n, 0, 255),
    "hbgenmethod": lambda p, d, a, n: p.choice(d, a, n, ("file", "time")),
    "autojoin": lambda p, d, a, n: p.choice(d, a, n, ("none", "other", "any")),
    "stack": lambda p, d, a, n: p.choice(d, a, n, ("heartbeat", "corosync")),
    "uuidfrom": lambda p, d, a, n: p.choice(d, a, n, ("file", "nodename")),
    "max_rexmit_delay": _B.d_max_rexmit_delay,
    "coredumps": lambda p, d, a, n: p.boolean(d, a, n),
    "log_badpack": lambda p, d, a, n: p.boolean(d, a, n),
    "msgfmt": lambda p, d, a, n: p.choice(d, a, n, ("classic", "netstring")),
    "record_config_changes": lambda p, d, a, n: p.boolean(d, a, n),
    "record_pengine_inputs": lambda p, d, a, n: p.boolean(d, a, n),
    "enable_config_writes": lambda p, d, a, n: p.boolean(d, a, n),
    "env": _B.d_env,
    "memreserve": _B.d_memreserve,
}

_SCALARS = (
    "stack", "cluster", "keepalive", "deadtime", "warntime", "initdead", "deadping", "udpport", "auto_failback", "crm",
    "compression", "compression_threshold", "traditional_compression", "logfacility", "logfile", "debugfile",
    "use_logd", "conn_logd_time", "hopfudge", "realtime", "rtprio", "debug", "hbgenmethod", "autojoin",
    "uuidfrom", "max_rexmit_delay", "coredumps", "log_badpack", "msgfmt", "record_config_changes",
    "record_pengine_inputs", "enable_config_writes",
)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _split(rest: str) -> List[str]:
    # Heartbeat separates option values by blanks and commas.
    return [t for t in re.split(r"[\s,]+", rest) if t]


def parse_hacf(text: str, path: str = "ha.cf") -> HaConfig:
    """Parse ha.cf text; raise ConfigError(path, line, message) on the first problem."""
    p = _Parser(path)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if _CONTROL.search(line):
            raise p.err(lineno, "control character in line (ha.cf is plain text)")
        parts = line.split(None, 1)
        d = parts[0]
        args = _split(parts[1]) if len(parts) > 1 else []
        if d in UNSUPPORTED:
            raise p.err(lineno, f"directive '{d}' is not supported by hadaemon ({UNSUPPORTED[d]})")
        handler = DIRECTIVES.get(d)
        if handler is None:
            hint = f" (directives are lower case: '{d.lower()}')" if d.lower() in DIRECTIVES else ""
            raise p.err(lineno, f"unknown directive '{d}'{hint}")
        handler(p, d, args, lineno)
    return _finish(p)


def _finish(p: _Parser) -> HaConfig:
    v, ln = p.values, p.lines
    keepalive = v.get("keepalive", 1.0)
    deadtime = v.get("deadtime", 30.0)
    if deadtime <= 2 * keepalive:
        raise p.err(ln.get("deadtime", ln.get("keepalive", 0)),
                    f"deadtime {format_time(deadtime)} must be more than twice keepalive {format_time(keepalive)}")
    warntime = v.get("warntime", deadtime / 2)
    if warntime >= deadtime:
        raise p.err(ln.get("warntime", 0),
                    f"warntime {format_time(warntime)} must be smaller than deadtime {format_time(deadtime)}")
    if warntime <= keepalive:
        p.warn(ln.get("warntime", 0), f"warntime {format_time(warntime)} is not longer than keepalive "
                                      f"{format_time(keepalive)}: every late heartbeat will warn")
    if "initdead" in v:
        initdead = v["initdead"]
        if initdead < deadtime:
            raise p.err(ln["initdead"], f"initdead {format_time(initdead)} must not be smaller than deadtime "
                                        f"{format_time(deadtime)}")
        if initdead < 10:
            p.warn(ln["initdead"], f"initdead {format_time(initdead)} may be too small: it covers slow network "
                                   "start-up and should be >= 10s")
    else:  # Heartbeat's rule (config.c)
        initdead = deadtime if deadtime > 10 else (12.0 if deadtime < 6 else 2 * deadtime)
    deadping = v.get("deadping", deadtime)
    if "deadping" in v and deadping <= 2 * keepalive:
        raise p.err(ln["deadping"], f"deadping {format_time(deadping)} must be more than twice keepalive "
                                    f"{format_time(keepalive)}")
    autojoin = v.get("autojoin", "none")
    corosync = v.get("stack") == "corosync"   # nodes and links are corosync.conf's
    if corosync and (p.nodes or p.media):
        p.warn(ln["stack"], "stack corosync: node and media lines are ignored (corosync.conf's nodelist and "
                            "links are used)")
    if not p.nodes and autojoin != "any" and not corosync:
        raise p.err(0, "no nodes defined (add one 'node NAME' line per cluster node, named as `uname -n` prints)")
    if not p.media and not corosync:
        raise p.err(0, "no heartbeat media defined (add bcast, mcast or ucast)")
    if "traditional_compression" in v and not v["traditional_compression"]:
        p.warn(ln["traditional_compression"], "traditional_compression off has no effect: hadaemon compresses "
                                               "whole messages above compression_threshold")
    kw = {k: v[k] for k in _SCALARS if k in v}
    kw.update(keepalive=keepalive, deadtime=deadtime, warntime=warntime, initdead=initdead, deadping=deadping)
    return HaConfig(
        path=p.path, media=tuple(m for m, _ in p.media), nodes=tuple(n for n, _ in p.nodes),
        ping=tuple(p.ping), ping_groups=dict(p.ping_groups), env=dict(p.env), warnings=tuple(p.warnings), **kw)


def load_hacf(path: str) -> HaConfig:
    """Read and parse an ha.cf file; unreadable or non-UTF-8 files are ConfigErrors too."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, 0, f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, data[:e.start].count(b"\n") + 1, "not valid UTF-8 text") from None
    return parse_hacf(text, path)


def hacf_summary(cfg: HaConfig) -> str:
    """One line for logs and `--check-config`."""
    links = ", ".join(f"{link} ({'/'.join(sorted({m.kind for m in cfg.media_on(link)}))})" for link in cfg.links)
    return (f"{len(cfg.nodes)} nodes ({', '.join(cfg.nodes)}); links {links}; "
            f"keepalive {format_time(cfg.keepalive)}, warntime {format_time(cfg.warntime)}, "
            f"deadtime {format_time(cfg.deadtime)}, initdead {format_time(cfg.initdead)}; udpport {cfg.udpport}; "
            f"crm {cfg.crm}; auto_failback {cfg.auto_failback}")
