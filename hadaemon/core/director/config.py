"""Parse ldirectord.cf exactly as ldirectord's read_config does, into a DirectorConfig.

parse_config() is pure: host names and service names go through an injected
Resolver (the default knows numeric addresses, `localhost` and a static
service table; it never touches the network or the disk). The thin shell,
hadaemon.io.director_config.load_config(), reads the file and passes the
system resolver and file checks (monitorfile, logfile, maintenancedir) as
ldirectord does.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, List, Tuple

from hadaemon.core.errors import ConfigError
from hadaemon.core.inet import canonical_ipv6, inet_aton, ipv4_text
from hadaemon.core.director.model import (  # noqa: F401  (re-exported API)
    CHECKTYPES, METHODS, PORT_SERVICES, SERVICE_PORTS, SERVICES, STATUS_ALL,
    STATUS_RELOADING, STATUS_RUNNING, STATUS_STARTING, STATUS_STOPPING,
    ConfigWarning, DirectorConfig, Globals, Real, Virtual, check_port, printable, table_port,
)
from hadaemon.core.director.virtual import VirtualBlockParser

# A static getservbyname() table (a subset of /etc/services), used when no
# system resolver is injected.
STATIC_SERVICES = {
    "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80,
    "www": 80, "pop3": 110, "nntp": 119, "imap": 143, "imap2": 143,
    "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
    "imaps": 993, "pop3s": 995, "radius": 1812, "mysql": 3306, "sip": 5060,
    "postgresql": 5432, "http-alt": 8080, "webcache": 8080, "squid": 3128,
    "ms-sql-s": 1433, "ncube-lm": 1521, "sip-tls": 5061, "radius-acct": 1813,
}

_RANGE_LIMIT = 65536
_A = re.ASCII


def numeric_host(name: str, family: int) -> str | None:
    """Numeric addresses only (inet_aton semantics for IPv4, like getaddrinfo), plus localhost."""
    if name == "localhost":
        return "::1" if family == 6 else "127.0.0.1"
    if family == 6:
        return canonical_ipv6(name)
    if not name or not re.fullmatch(r"[0-9A-Fa-fxX.]+", name):
        return None
    n = inet_aton(name)
    return None if n is None else ipv4_text(n)


def _static_service(name: str, protocol: str) -> int | None:
    return STATIC_SERVICES.get(name)


@dataclasses.dataclass(frozen=True)
class Resolver:
    """What parsing needs from the outside world; the default is pure."""

    host: Callable[[str, int], str | None] = numeric_host
    service: Callable[[str, str], int | None] = _static_service
    hostname: str = "localhost"
    # Returns an error text when `path` cannot be opened for appending, else None.
    append_error: Callable[[str], str | None] = lambda path: None
    dir_exists: Callable[[str], bool] = lambda path: True


def parse_config(text: str, path: str = "ldirectord.cf",
                 resolver: Resolver | None = None) -> DirectorConfig:
    """Parse ldirectord.cf text; raise ConfigError(path, line, message) when bad."""
    return _Parser(text, path, resolver or Resolver()).parse()


def _digits(value: str) -> int | None:
    m = re.search(r"\d+", value, _A)
    return int(m.group(0)) if m else None


def _positive(value: str) -> int | None:
    n = _digits(value)
    return n if n else None


class _Parser(VirtualBlockParser):
    """One pass over the lines, following read_config's structure and messages."""

    def __init__(self, text: str, path: str, resolver: Resolver):
        self.path, self.res = path, resolver
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.g = {}                       # global overrides
        self.execute: List[str] = []
        self.warnings: List[ConfigWarning] = []
        self.virtuals: List[Virtual] = []
        self.seen = set()

    def error(self, line: int, message: str):
        raise ConfigError(self.path, line, printable(message))

    def warn(self, line: int, message: str):
        self.warnings.append(ConfigWarning(line, printable(message)))

    # ---- top level -------------------------------------------------------

    def parse(self) -> DirectorConfig:
        i, n = 0, len(self.lines)
        pending: Tuple[int, str] | None = None
        while True:
            if pending is not None:
                lineno, data = pending
                pending = None
            elif i < n:
                lineno, data = i + 1, self.lines[i]
                i += 1
            else:
                break
            m = re.match(r"virtual(6)?\s*=\s*(.*)", data, _A)
            if m:
                i, pending = self._virtual_block(lineno, m, i)
                continue
            if re.fullmatch(r"\s*", data) or re.match(r"\s*#", data):
                continue
            self._global(lineno, data)
        gl = self._globals()
        virtuals = tuple(self._finish(v, gl) for v in self.virtuals)
        if not gl.fork:
            for v in virtuals:
                if v.checkinterval_set:
                    self.warn(-1, f"checkinterval in virtual service {v.key} ignored when fork=no"
                              " (hadaemon honours it: checks run concurrently)")
        return DirectorConfig(self.path, gl, virtuals, tuple(self.warnings), len(self.lines))

    def _yesno(self, line: int, value: str, name: str) -> bool:
        if value not in ("yes", "no"):
            self.error(line, f"{name} must be 'yes' or 'no'")
        return value == "yes"

    def _global(self, line: int, data: str):  # noqa: C901 - one branch per directive
        def val(name: str) -> str | None:
            m = re.match(name + r"\s*=\s*(.*)", data, _A)
            return m.group(1) if m else None

        g = self.g
        if (v := val("checktimeout")) is not None:
            g["checktimeout"] = _positive(v) or self.error(line, "invalid check timeout value")
        elif val("connecttimeout") is not None:
            self.error(line, "connecttimeout directive deprecated in favour of negotiatetimeout")
        elif (v := val("negotiatetimeout")) is not None:
            g["negotiatetimeout"] = _positive(v) or self.error(line, "invalid negotiate timeout value")
        elif (v := val("checkinterval")) is not None:
            g["checkinterval"] = _positive(v) or self.error(line, "invalid check interval value")
        elif (v := val("checkcount")) is not None:
            g["checkcount"] = _positive(v) or self.error(line, "invalid check count value")
            self.warn(line, "checkcount option is deprecated and slated for removal.  "
                      "please see 'failurecount'")
        elif (v := val("failurecount")) is not None:
            g["failurecount"] = _positive(v) or self.error(line, "invalid failure count value")
        elif (m := re.match(r"fallback(6)?\s*=\s*(.*)", data, _A)):
            family = 6 if m.group(1) else 4
            fb = self._parse_fallback(line, m.group(2), None, family)
            fb = self._resolve_fallback(line, "tcp", fb, family)
            g["fallback6" if family == 6 else "fallback"] = fb
        elif (v := val("fallbackcommand")) is not None:
            g["fallbackcommand"] = v or self.error(line, "invalid fallback command")
        elif (v := val("autoreload")) is not None:
            g["autoreload"] = self._yesno(line, v, "autoreload")
        elif (m := re.match(r'callback\s*=\s*"(.*)"', data, _A)):
            g["callback"] = m.group(1)
        elif (m := re.match(r'logfile\s*=\s*"(.*)"', data, _A)):
            if m.group(1).startswith("/") and self.res.append_error(m.group(1)):
                self.error(line, f"unable to open logfile: {m.group(1)}")
            g["logfile"] = m.group(1)
        elif (v := val("execute")) is not None:
            self.execute.append(v)
        elif (v := val("fork")) is not None:
            g["fork"] = self._yesno(line, v, "fork")
        elif data.startswith("supervised"):
            v = val("supervised")
            if v in ("yes", "no"):
                g["supervised"] = v == "yes"
            elif re.fullmatch(r"supervised\s*", data):
                g["supervised"] = True
                self.warn(line, "please update your config not to use a bare supervised directive")
            else:
                self.error(line, "supervised must be 'yes' or 'no'")
        elif (v := val("quiescent")) is not None:
            g["quiescent"] = self._yesno(line, v, "quiescent")
        elif (v := val("readdquiescent")) is not None:
            g["readdquiescent"] = self._yesno(line, v, "readdquiescent")
        elif (v := val("emailalert")) is not None:
            g["emailalert"] = self._emailalert(line, v)
        elif (m := re.match(r"emailalertfreq\s*=\s*(\d*)", data, _A)):
            g["emailalertfreq"] = int(m.group(1)) if m.group(1) else self.error(
                line, "invalid email alert frequency")
        elif (v := val("emailalertstatus")) is not None:
            g["emailalertstatus"] = self._emailalertstatus(line, v)
        elif (v := val("emailalertfrom")) is not None:
            g["emailalertfrom"] = v or self.error(line, "no email from address specified")
        elif (v := val("cleanstop")) is not None:
            g["cleanstop"] = self._yesno(line, v, "cleanstop")
        elif (v := val("smtp")) is not None:
            m = re.match(r"[0-9A-Za-z._+-]+", v, _A)
            g["smtp"] = m.group(0) if m else self.error(line, "invalid SMTP server address")
        elif (v := val("maintenancedir")) is not None:
            if not v:
                self.error(line, "maintenance directory not specified")
            g["maintenancedir"] = v
            if not self.res.dir_exists(v):
                self.warn(line, "maintenance directory does not exist")
        else:
            if val("timeout") is not None:
                self.error(line, "timeout directive deprecated in favour of "
                           "checktimeout and negotiatetimeout")
            self.error(line, f"Unknown command {data.strip()}")

    def _globals(self) -> Globals:
        g = dict(self.g)
        g["execute"] = tuple(self.execute)
        return Globals(**g)

    def _emailalert(self, line: int, addr: str) -> str:
        m = re.fullmatch(r'"([^"]*)"', addr)
        if m:
            addr = m.group(1)
        if not addr:
            self.error(line, "no email address specified")
        return addr

    def _emailalertstatus(self, line: int, arg: str) -> int:
        items = re.split(r"\s*,\s*", arg)
        none = "none" in items
        bits = {"starting": STATUS_STARTING, "stopping": STATUS_STOPPING,
                "running": STATUS_RUNNING, "reloading": STATUS_RELOADING}
        status = 0
        for i in items:
            if i == "none":
                continue
            if i == "all":
                status = STATUS_ALL
            elif i in bits:
                status |= bits[i]
            else:
                self.error(line, f'invalid email alert status at: "{i}"')
            if none:
                self.error(line, f'invalid email alert status: "{i}" specified with "none"')
        return status

