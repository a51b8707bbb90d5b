"""ha.cf's model: the validated configuration (HaConfig, Medium), its limits, the directives hadaemon refuses,
and Heartbeat's time syntax. Parsing the file is hadaemon.core.heartbeat.hacf's job (which re-exports these)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

__all__ = ["DEFAULT_UDPPORT", "IFNAMSIZ_MAX", "NODE_NAME_MAX", "MAX_TIME", "SYSLOG_FACILITIES", "Medium", "HaConfig",
           "UNSUPPORTED", "format_time", "parse_time"]

DEFAULT_UDPPORT = 694
IFNAMSIZ_MAX = 15          # Linux interface names are at most 15 bytes
NODE_NAME_MAX = 64         # HOST_NAME_MAX; also what fits the wire header
MAX_TIME = 86400           # seconds: no timer longer than a day
SYSLOG_FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)


@dataclass(frozen=True)
class Medium:
    """One heartbeat medium: `bcast IF`, `mcast IF GROUP PORT TTL LOOP` or `ucast IF PEER`."""

    kind: str                      # "bcast" | "mcast" | "ucast"
    iface: str
    address: str | None = None  # mcast group or ucast peer
    port: int | None = None     # mcast only; bcast/ucast use HaConfig.udpport
    ttl: int | None = None
    loop: bool | None = None


@dataclass(frozen=True)
class HaConfig:
    """A validated ha.cf. Times are in seconds (floats)."""

    path: str = "ha.cf"
    stack: str = "heartbeat"    # "corosync": membership and messages from the local Corosync 3 (CPG)
    cluster: str = "linux-ha"
    keepalive: float = 1.0
    deadtime: float = 30.0
    warntime: float = 15.0
    initdead: float = 30.0
    deadping: float = 30.0
    udpport: int = DEFAULT_UDPPORT
    media: Tuple[Medium, ...] = ()
    nodes: Tuple[str, ...] = ()
    auto_failback: str = "legacy"
    crm: str = "off"
    compression: str | None = "zlib"
    compression_threshold: int = 2          # KB, as in Heartbeat
    traditional_compression: bool = True
    logfacility: str | None = None
    logfile: str | None = None
    debugfile: str | None = None
    use_logd: bool | None = None
    ping: Tuple[str, ...] = ()
    ping_groups: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    hopfudge: int = 1
    realtime: bool = True
    rtprio: int | None = None
    debug: int = 0
    hbgenmethod: str = "file"
    autojoin: str = "none"
    uuidfrom: str = "file"
    max_rexmit_delay: float = 0.25
    coredumps: bool = True
    log_badpack: bool = True
    msgfmt: str = "classic"
    conn_logd_time: float = 60.0
    record_config_changes: bool = True
    record_pengine_inputs: bool = True
    enable_config_writes: bool = True
    env: Dict[str, str] = field(default_factory=dict)
    warnings: Tuple[str, ...] = ()

    @property
    def links(self) -> Tuple[str, ...]:
        """Link names: the interfaces of the media, in first-seen order."""
        seen: List[str] = []
        for m in self.media:
            if m.iface not in seen:
                seen.append(m.iface)
        return tuple(seen)

    def media_on(self, link: str) -> Tuple[Medium, ...]:
        return tuple(m for m in self.media if m.iface == link)

    @property
    def compression_threshold_bytes(self) -> int:
        return self.compression_threshold * 1024


# Directives Heartbeat knows that hadaemon refuses, with what to use instead.
UNSUPPORTED = {
    "serial": "serial links are not supported; use bcast, mcast or ucast over Ethernet",
    "baud": "serial links are not supported; use bcast, mcast or ucast over Ethernet",
    "mcast6": "IPv6 multicast media are not supported yet; use mcast or ucast",
    "hbaping": "HBA ping nodes are not supported; use ping or ping_group",
    "openais": "the openais medium is not supported; use bcast, mcast or ucast",
    "tipc": "the tipc medium is not supported; use bcast, mcast or ucast",
    "stonith": "fencing is configured in the CIB as stonith resources (fence-agents)",
    "stonith_host": "fencing is configured in the CIB as stonith resources (fence-agents)",
    "respawn": "extra daemons run as systemd units (ha-crmd.service and friends), not as respawned children",
    "apiauth": "access to the D-Bus API is granted by the busconfig policy (root and group haclient)",
    "watchdog": "use systemd's watchdog: WatchdogSec= in ha-heartbeat.service, "
                "RuntimeWatchdogSec= in /etc/systemd/system.conf for a hardware watchdog",
    "nice_failback": "obsolete since Heartbeat 1.1; use auto_failback on|off|legacy",
    "use_apphbd": "apphbd is not supported; systemd's watchdog supervises the daemon",
    "normalpoll": "an internal Heartbeat event-loop switch with no meaning here; remove it",
    "coreroot": "core dumps are collected by systemd-coredump (coredumpctl)",
    "quorum_server": "quorum servers are not supported; quorum comes from the membership",
}


def format_time(seconds: float) -> str:
    """2 -> '2s', 0.5 -> '500ms', 1.5 -> '1.5s'."""
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}us"
    return f"{seconds:g}s"


_TIME_RE = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(s|sec|ms|msec|us|usec)?$", re.IGNORECASE)


def parse_time(text: str) -> float | None:
    """Heartbeat time syntax: plain seconds (2, 0.5) or with ms/msec/us/usec (s also accepted)."""
    m = _TIME_RE.match(text)
    if not m:
        return None
    value = float(m.group(1))
    unit = (m.group(2) or "s").lower()
    if unit in ("ms", "msec"):
        value /= 1000.0
    elif unit in ("us", "usec"):
        value /= 1e6
    return value
