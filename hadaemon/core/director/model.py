"""The ldirectord configuration model: frozen dataclasses for globals, virtual services and real servers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

# ldirectord's service <-> port table (ld_service_to_port / ld_port_to_service).
SERVICE_PORTS = {
    "ftp": 21, "smtp": 25, "dns": 53, "http": 80, "pop": 110, "nntp": 119,
    "imap": 143, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
    "imaps": 993, "pops": 995, "oracle": 1521, "radius": 1812,
    "http_proxy": 3128, "mysql": 3306, "sip": 5060, "pgsql": 5432,
}
PORT_SERVICES = {port: name for name, port in SERVICE_PORTS.items()}

SERVICES = (
    "dns", "ftp", "http", "https", "http_proxy", "imap", "imaps", "ldap",
    "ldaps", "nntp", "mysql", "none", "oracle", "pop", "pops", "radius",
    "pgsql", "sip", "smtp", "submission", "simpletcp",
)
CHECKTYPES = ("connect", "negotiate", "ping", "off", "on", "external",
              "external-perl", "combined")
METHODS = ("gate", "masq", "ipip")

# emailalertstatus bits, as ldirectord's $DAEMON_STATUS_* values.
STATUS_STARTING, STATUS_RUNNING, STATUS_STOPPING, STATUS_RELOADING = 1, 2, 4, 8
STATUS_ALL = 15


@dataclass(frozen=True)
class Real:
    """A real server (or a fallback server) of a virtual service.

    address is numeric and bare (no brackets for IPv6); port is 0 when the
    configuration gave none (ldirectord then uses the virtual's port in the
    table and the service's port for checks); for a global fallback without
    a port, port is None until bound to a virtual (see DirectorConfig.fallback_for).
    """

    address: str
    port: int | None
    method: str = "gate"
    weight: int = 1
    request: str | None = None
    receive: str | None = None
    lower: int = 0          # l: threshold (ipvsadm -y)
    upper: int = 0          # u: threshold (ipvsadm -x)
    line: int = 0
    family: int = 4

    @property
    def key(self) -> str:
        """`address:port` as ldirectord writes it (`[v6]:port`)."""
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{host}:{self.port if self.port is not None else 0}"


@dataclass(frozen=True)
class Virtual:
    """A virtual service block (`virtual=` / `virtual6=`) with effective settings.

    Timeouts, counts, quiescent, cleanstop and checkinterval are the values in
    force for this virtual after ldirectord's defaulting rules (ld_setup).
    """

    key: str                       # get_virtual_id_str: "tcp:1.2.3.4:80", "fwm:1", "fwm6:1"
    protocol: str                  # tcp | udp | fwm
    address: str | None         # None for fwmark
    port: int | None            # None for fwmark
    fwmark: int | None
    family: int                    # 4 | 6
    reals: Tuple[Real, ...] = ()
    fallback: Real | None = None          # this virtual's own fallback= line
    service: str = "none"
    request: str = "/"
    receive: str = ""
    httpmethod: str = "GET"
    virtualhost: str | None = None
    login: str = ""
    passwd: str = ""
    database: str = ""
    secret: str = ""
    load: str | None = None
    checktype: str = "negotiate"   # one of CHECKTYPES
    num_connects: int = 0          # N for checktype=N ("combined")
    checkcommand: str = "/bin/true"
    checkport: int | None = None
    checktimeout: float = 5
    negotiatetimeout: float = 30
    checkinterval: float = 10
    checkinterval_set: bool = False          # checkinterval= given in this block
    checkcount: int = 1
    failurecount: int = 1
    quiescent: bool = False
    cleanstop: bool = True
    scheduler: str = "wrr"
    persistent: int | None = None
    netmask: str | None = None
    schedflags: str | None = None
    ops: bool = False
    fallbackcommand: str | None = None
    emailalert: str | None = None
    emailalertfreq: int | None = None
    emailalertstatus: int | None = None
    smtp: str | None = None
    monitorfile: str | None = None
    servicename: str | None = None
    comment: str | None = None
    line: int = 0

    @property
    def server(self) -> str:
        """The virtual's address as ldirectord prints it (`[v6]` bracketed), or the fwmark."""
        if self.protocol == "fwm":
            return str(self.fwmark)
        return f"[{self.address}]" if self.family == 6 else str(self.address)

    @property
    def display(self) -> str:
        """ldirectord's get_virtual(): `address:port` or the fwmark."""
        if self.protocol == "fwm":
            return str(self.fwmark)
        return f"{self.server}:{self.port}"


@dataclass(frozen=True)
class Globals:
    """Global directives, with ldirectord's defaults (set_defaults)."""

    checktimeout: float | None = None      # None = unset (-1 in ldirectord)
    negotiatetimeout: float | None = None
    checkinterval: float = 10
    checkcount: int = 1
    failurecount: int = 1
    autoreload: bool = False
    callback: str | None = None
    fallback: Real | None = None           # global fallback= (port may be None)
    fallback6: Real | None = None
    fallbackcommand: str | None = None
    quiescent: bool = False                   # the code's default, not the manual's
    readdquiescent: bool = False
    cleanstop: bool = True
    emailalert: str = ""
    emailalertfreq: int = 0
    emailalertstatus: int = STATUS_ALL
    emailalertfrom: str | None = None
    smtp: str | None = None
    logfile: str = "/var/log/ldirectord.log"
    maintenancedir: str | None = None
    fork: bool = False
    supervised: bool = False
    execute: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigWarning:
    """A non-fatal remark ldirectord would print as `Warning ...`."""

    line: int
    message: str


@dataclass(frozen=True)
class DirectorConfig:
    """A whole ldirectord.cf."""

    path: str
    globals: Globals = field(default_factory=Globals)
    virtuals: Tuple[Virtual, ...] = ()
    warnings: Tuple[ConfigWarning, ...] = ()
    lines: int = 0                 # number of lines in the file (where "end of file" errors point)

    def virtual(self, key: str) -> Virtual | None:
        for v in self.virtuals:
            if v.key == key:
                return v
        return None

    def fallback_for(self, v: Virtual) -> Real | None:
        """ldirectord's fallback_find: the virtual's own, else the global one for its family/port."""
        if v.fallback is not None:
            return v.fallback
        g = self.globals.fallback6 if v.family == 6 else self.globals.fallback
        if g is None:
            return None
        if g.port is not None:
            return g
        return Real(g.address, v.port if v.port is not None else 0, g.method,
                    1, line=g.line, family=g.family)


def printable(text: str, limit: int = 1000) -> str:
    """`text` safe for a log line, a journal field or a D-Bus string: control characters, NUL and
    bytes that were not UTF-8 (surrogate-escaped) become `\\xNN` escapes (`\\uNNNN` above 0xff);
    longer texts are cut at `limit` characters with `...`."""
    if text.isprintable() and len(text) <= limit:
        return text
    out = []
    for ch in text[:limit]:
        if ch.isprintable():
            out.append(ch)
            continue
        n = ord(ch)
        if 0xDC80 <= n <= 0xDCFF:              # a byte that was not UTF-8 (surrogateescape)
            n -= 0xDC00
        out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")
    return "".join(out) + ("..." if len(text) > limit else "")


def check_port(v: Virtual, r: Real) -> int | None:
    """ldirectord's ld_checkport: checkport, else the real's port, else the service's port."""
    if v.checkport is not None:
        return v.checkport
    if r.port:
        return r.port
    return SERVICE_PORTS.get(v.service)


def table_port(v: Virtual, r: Real) -> int:
    """The port of a destination in the kernel table (ipvsadm uses the virtual's when 0)."""
    if r.port:
        return r.port
    if v.protocol != "fwm" and v.port:
        return v.port
    return 0
