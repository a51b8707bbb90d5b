"""Parse one ldirectord virtual service block (and fallback / real lines) like read_config."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from hadaemon.core.inet import inet_pton6
from hadaemon.core.director.model import (
    PORT_SERVICES, SERVICES, Globals, Real, Virtual,
)

_A = re.ASCII
_PORT_SUFFIX = re.compile(r"(:(\d+|[A-Za-z0-9_-]+))?$", _A)
_REAL = re.compile(
    r"(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-fa-f:]+\])"
    r"(->(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-fa-f:]+\]))?"
    r"(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)", _A)
_SERVICE_ERROR = ("service must be dns, ftp, http, https, http_proxy, imap, imaps, "
                  "ldap, ldaps, mysql, nntp, none, oracle, pop, pops, radius, pgsql, "
                  "simpletcp, sip, smtp or submission")
_CHECKTYPE_ERROR = ('checktype must be "connect", "negotiate", "on", "off", "ping", '
                    '"external", "external-perl" or a positive number')


def _positive(value: str) -> int | None:
    m = re.search(r"\d+", value, _A)
    return int(m.group(0)) if m and int(m.group(0)) else None


def _strip_brackets(s: str) -> str:
    m = re.search(r"\[(.*)\]", s)
    return m.group(1) if m else s


class VirtualBlockParser:
    """Mixin for the config parser: virtual blocks, fallbacks and reals (needs error/warn/res/lines)."""

    lines: List[str]

    # ---- resolution helpers (ld_gethostbyname / ld_getservbyname) ----------

    def _host(self, name: str, family: int) -> str | None:
        return self.res.host(_strip_brackets(name), family)

    def _serv(self, name: str, protocol: str) -> int | None:
        if re.fullmatch(r"[0-9]+", name, _A):
            n = int(name)
            return n if n < 65536 else None
        return self.res.service(name, protocol)

    # ---- fallback ----------------------------------------------------------

    def _parse_fallback(self, line: int, text: str, vport: str | None, family: int) -> Dict:
        parse_line, fwd = text, None
        m = re.search(r"(\S+)(\s+(\S+))?\s*$", parse_line, _A)
        if m:
            fwd, parse_line = m.group(3), m.group(1)
        m = _PORT_SUFFIX.search(parse_line)
        port = m.group(2)
        server = parse_line[:m.start()]
        if port is None and vport is not None:
            port = vport
        if fwd:
            if fwd not in ("gate", "masq", "ipip"):
                self.error(line, "forward method must be gate, masq or ipip")
        else:
            fwd = "gate"
        return {"server": server, "port": port, "forward": fwd, "line": line}

    def _resolve_fallback(self, line: int, protocol: str, fb: Dict, family: int) -> Real:
        addr = self._host(fb["server"], family)
        if addr is None:
            ipv = "IPv6" if family == 6 else "IPv4"
            self.error(line, f"invalid {ipv} address or could not resolve for fallback server: "
                       f"{fb['server']}")
        port: int | None = None
        if fb["port"] and fb["port"] != "0":
            port = self._serv(fb["port"], protocol)
            if not port:
                self.error(line, "invalid port for fallback server")
        elif fb["port"] == "0":
            port = 0
        return Real(addr, port, fb["forward"], 1, line=line, family=family)

    # ---- the block ---------------------------------------------------------

    def _virtual_block(self, vline: int, m: re.Match, i: int) -> Tuple[int, Tuple[int, str] | None]:
        family = 6 if m.group(1) else 4
        vattr = m.group(2)
        ip_port: str | None = None
        fwm: int | None = None
        vport: str | None = None
        if family == 4 and (mm := re.match(r"(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)", vattr, _A)):
            ip_port, vport = f"{mm.group(1)}:{mm.group(2)}", mm.group(2)
        elif (mm := re.match(r"([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)", vattr, _A)):
            ip_port, vport = f"{mm.group(1)}:{mm.group(2)}", mm.group(2)
        elif (mm := re.match(r"(\d+)", vattr, _A)):
            fwm = int(mm.group(1))
            if vattr.strip() != mm.group(1):
                self.warn(vline, f'virtual service "{vattr}" is read as fwmark {fwm} '
                          "(ldirectord reads it the same way; an address needs :port)")
        elif (mm := re.match(r"\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)", vattr, _A)):
            if family == 4:
                self.error(vline, 'cannot specify an IPv6 address here. please use "virtual6" instead.')
            if not _is_v6_literal(mm.group(1)):
                self.error(vline, "invalid ipv6 address for virtual server")
            ip_port, vport = f"[{mm.group(1)}]:{mm.group(2)}", mm.group(2)
        else:
            self.error(vline, "invalid address for virtual server")

        vs: Dict[str, Any] = {"line": vline, "family": family}
        if ip_port:
            vs["protocol"] = "udp" if re.search(r":(53|domain)$", ip_port) else "tcp"
        else:
            vs.update(protocol="fwm", service="none", fwmark=fwm)
        fallback: Dict | None = None
        reals_todo: List[Tuple[str, int]] = []

        n = len(self.lines)
        lineno = vline
        pending: Tuple[int, str] | None = None
        while i < n:
            lineno, raw = i + 1, self.lines[i]
            i += 1
            if re.match(r"\s*#", raw):
                pending = (lineno, raw)   # harmless: a comment is skipped at top level
                continue
            s = re.sub(r"#.*", "", raw).replace("\t", "    ")
            mm = re.match(r" {4,}(.+)", s)
            if not mm:
                pending = (lineno, raw)
                break
            pending = None
            rcmd = mm.group(1)
            if (r := re.match(r"(real(6)?)\s*=\s*(.*)", rcmd, _A)):
                if (family == 4) == bool(r.group(2)):
                    want = "real" if family == 4 else "real6"
                    self.error(lineno, f'cannot specify "{r.group(1)}" here.  please use "{want}" instead')
                reals_todo.append((r.group(3), lineno))
            elif (f := re.match(r"(fallback(6)?)\s*=\s*(.*)", rcmd, _A)):
                if (family == 4) == bool(f.group(2)):
                    want = "fallback" if family == 4 else "fallback6"
                    self.error(lineno, f'cannot specify "{f.group(1)}" here.  please use "{want}" instead')
                fallback = self._parse_fallback(lineno, f.group(3), vport if ip_port else "0", family)
            else:
                self._directive(lineno, rcmd, raw, vs)

        if fallback is not None:
            vs["fallback"] = self._resolve_fallback(fallback["line"], vs["protocol"], fallback, family)
        if ip_port:
            self._resolve_virtual(vline, vs, ip_port, family)
        reals: List[Real] = []
        for text, rline in reals_todo:
            reals.extend(self._reals(rline, text, family))
        seen_reals = set()
        for r in reals:
            if r.key in seen_reals:
                self.warn(r.line, f"duplicate real server {r.key} in virtual service")
            seen_reals.add(r.key)
        vs["reals"] = tuple(reals)
        key = _virtual_key(vs)
        if key in self.seen:
            self.error(lineno, "duplicate virtual server")
        self.seen.add(key)
        vs["key"] = key
        self.virtuals.append(vs)
        return i, pending

    def _resolve_virtual(self, line: int, vs: Dict, ip_port: str, family: int):
        mm = _PORT_SUFFIX.search(ip_port)
        host, port = ip_port[:mm.start()], mm.group(2)
        addr = self._host(host, family)
        pnum = self._serv(port, vs["protocol"]) if addr is not None and port is not None else None
        if addr is None or pnum is None:
            self.error(line, "invalid address for virtual service")
        vs["address"], vs["port"] = addr, pnum
        if "service" not in vs:
            vs["service"] = PORT_SERVICES.get(pnum, "none")

    def _reals(self, line: int, text: str, family: int) -> List[Real]:
        m = _REAL.search(text)
        if not m:
            self.error(line, "invalid address for real server (wrong format)")
        ip1, ip2, port, flags = m.group(1), m.group(3), m.group(5) or "0", m.group(6)
        if m.start() != 0:
            self.warn(line, f'real server "{text}" is read as "{text[m.start():]}" '
                      "(ldirectord reads it the same way; check the address)")
        a1 = self._host(ip1, family)
        if a1 is None:
            self.error(line, f"invalid address ({ip1}) for real server (could not resolve host)")
        pnum = self._serv(port, "")
        if pnum is None:
            self.error(line, f"invalid port ({port}) for real server (could not resolve port)")
        if ip2 is None:
            return [self._real(line, a1, pnum, flags, family)]
        a2 = self._host(ip2, family)
        if a2 is None:
            self.error(line, f"invalid address ({ip2}) for real server (could not resolve end host)")
        if family == 6:
            self.error(line, "Address range for IPv6 is not supported yet")
        first, last = _ip_to_int(a1), _ip_to_int(a2)
        if first > last:
            self.error(line, f"Invalid Range: {a1}-{a2}: First value must be "
                       "greater than or equal to the second value")
        if last - first >= 65536:
            self.error(line, f"Invalid Range: {a1}-{a2}: more than 65536 addresses")
        out, k = [], first
        # ldirectord compares the integers as strings (`le`); keep its result.
        while _perl_le(k, last):
            out.append(self._real(line, _int_to_ip(k), pnum, flags, family))
            k += 1
        return out

    def _real(self, line: int, addr: str, port: int, flags: str, family: int) -> Real:
        m = re.search(r"(\w+)(.*)", flags, _A)
        if not m or m.group(1) not in ("gate", "masq", "ipip"):
            self.error(line, "forward method must be gate, masq or ipip")
        method, flags = m.group(1), m.group(2)
        weight, request, receive, lower, upper = 1, None, None, 0, 0
        if (w := re.search(r"\s+(\d+)(.*)", flags, _A)):
            weight, flags = int(w.group(1)), w.group(2)
        if (q := re.search(r'\s+"(.*)"[, ]\s*"(.*)"(.*)', flags, _A)):
            request, receive, flags = q.group(1), q.group(2), q.group(3)
            if not request.startswith("/"):
                request = "/" + request
        if (t := re.search(r"\s+l:(\d+)(.*)", flags, _A)):
            lower, flags = int(t.group(1)), t.group(2)
        if (t := re.search(r"\s+u:(\d+)(.*)", flags, _A)):
            upper, flags = int(t.group(1)), t.group(2)
        if re.search(r"\S", flags):
            self.error(line, f'Invalid real server line, around "{flags}"')
        return Real(addr, port, method, weight, request, receive, lower, upper, line, family)

    def _finish(self, vs: Dict, g: Globals) -> Virtual:
        """ld_setup's defaulting: effective timeouts, counts and inherited settings."""
        ct, nt = vs.pop("checktimeout", None), vs.pop("negotiatetimeout", None)
        checktimeout = ct or nt or g.checktimeout or g.negotiatetimeout or 5
        negotiatetimeout = nt or ct or g.negotiatetimeout or g.checktimeout or 30
        vs["checkinterval_set"] = "checkinterval" in vs
        vs.setdefault("checkinterval", g.checkinterval)
        vs.setdefault("checkcount", g.checkcount)
        vs.setdefault("failurecount", g.failurecount)
        vs.setdefault("quiescent", g.quiescent)
        vs.setdefault("cleanstop", g.cleanstop)
        vs.setdefault("fallbackcommand", g.fallbackcommand)
        vs.setdefault("emailalert", g.emailalert or None)
        vs.setdefault("emailalertfreq", g.emailalertfreq)
        vs.setdefault("emailalertstatus", g.emailalertstatus)
        vs.setdefault("smtp", g.smtp)
        return Virtual(checktimeout=checktimeout, negotiatetimeout=negotiatetimeout,
                       address=vs.pop("address", None), port=vs.pop("port", None),
                       fwmark=vs.pop("fwmark", None), **vs)

    # ---- per-virtual directives ---------------------------------------------

    def _directive(self, line: int, rcmd: str, raw: str, vs: Dict):  # noqa: C901
        def val(name: str, quoted: bool = False) -> str | None:
            pat = name + (r'\s*=\s*"(.*)"' if quoted else r"\s*=\s*(.*)")
            m = re.match(pat, rcmd, _A)
            return m.group(1) if m else None

        def yesno(v: str, name: str) -> bool:
            if v not in ("yes", "no"):
                self.error(line, f"{name} must be 'yes' or 'no'")
            return v == "yes"

        if (v := val("request", True)) is not None:
            if not v:
                self.error(line, "no request string specified")
            vs["request"] = v if v.startswith("/") else "/" + v
        elif (v := val("receive", True)) is not None:
            vs["receive"] = v or self.error(line, "invalid receive string")
        elif (v := val("checktype")) is not None:
            if (d := re.search(r"\d+", v, _A)):
                vs["num_connects"], vs["checktype"] = int(d.group(0)), "combined"
            elif (w := re.search(r"[\w-]+", v, _A)) and w.group(0) in (
                    "connect", "negotiate", "ping", "off", "on", "external", "external-perl"):
                vs["checktype"] = w.group(0)
            else:
                self.error(line, _CHECKTYPE_ERROR)
        elif (v := val("checkcommand", True)) is not None or (v := val("checkcommand")) is not None:
            vs["checkcommand"] = v or self.error(line, "invalid check command")
        elif (v := val("checktimeout")) is not None:
            vs["checktimeout"] = _positive(v) or self.error(line, "invalid check timeout")
        elif val("connecttimeout") is not None:
            self.error(line, "connecttimeout directive deprecated in favour of negotiatetimeout")
        elif (v := val("negotiatetimeout")) is not None:
            vs["negotiatetimeout"] = _positive(v) or self.error(line, "invalid negotiate timeout")
        elif (v := val("checkcount")) is not None:
            vs["checkcount"] = _positive(v) or self.error(line, "invalid check count")
            self.warn(line, "checkcount option is deprecated and slated for removal.  "
                      "please see 'failurecount'")
        elif (v := val("failurecount")) is not None:
            vs["failurecount"] = _positive(v) or self.error(line, "invalid failure count")
        elif (v := val("checkinterval")) is not None:
            vs["checkinterval"] = _positive(v) or self.error(line, "invalid checkinterval")
        elif (v := val("checkport")) is not None:
            d = re.search(r"\d+", v, _A)
            if not d:
                self.error(line, "invalid port")
            if not 0 < int(d.group(0)) < 65536:
                self.error(line, "checkport must be in range 1..65536")
            vs["checkport"] = int(d.group(0))
        elif (v := val("login", True)) is not None:
            vs["login"] = v or self.error(line, "invalid login string")
        elif (v := val("passwd", True)) is not None:
            vs["passwd"] = v or self.error(line, "invalid password")
        elif (v := val("database", True)) is not None:
            vs["database"] = v or self.error(line, "invalid database")
        elif (v := val("secret", True)) is not None:
            vs["secret"] = v or self.error(line, "invalid secret")
        elif (v := val("load", True)) is not None:
            w = re.search(r"\w+", v, _A)
            vs["load"] = w.group(0) if w else self.error(line, "invalid string for load testing")
        elif (v := val("scheduler")) is not None:
            w = re.search(r"[a-z]+", v, _A)
            vs["scheduler"] = w.group(0) if w else self.error(
                line, "invalid scheduler, should be only lowercase letters (a-z)")
        elif (v := val("persistent")) is not None:
            d = re.search(r"\d+", v, _A)
            vs["persistent"] = int(d.group(0)) if d else self.error(line, "invalid persistent timeout")
        elif (v := val("schedflags")) is not None:
            w = re.search(r"\S+", v)
            vs["schedflags"] = w.group(0) if w else self.error(line, "invalid sched-flags")
        elif (v := val("netmask")) is not None:
            if vs["family"] == 6:
                if not re.fullmatch(r"\d+", v, _A) or not 1 <= int(v) <= 128:
                    self.error(line, "invalid netmask: a prefix length between 1 and 128 is required")
            elif not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", v, _A):
                self.error(line, "invalid netmask: dotted quad notation is required")
            vs["netmask"] = v
        elif (v := val("protocol")) is not None:
            w = re.search(r"\w+", v, _A)
            if not w:
                self.error(line, "invalid protocol")
            if vs["protocol"] == "fwm":
                if w.group(0) != "fwm":
                    self.error(line, "protocol must be fwm if the virtual service is a fwmark (a number)")
            elif w.group(0) in ("tcp", "udp"):
                vs["protocol"] = w.group(0)
            else:
                self.error(line, "protocol must be tcp or udp if the virtual service is an address and port")
        elif (v := val("ops")) is not None:
            vs["ops"] = yesno(v, "ops")
        elif (v := val("service")) is not None:
            w = re.search(r"\w+", v, _A)
            if not w or w.group(0) not in SERVICES:
                self.error(line, _SERVICE_ERROR)
            vs["service"] = w.group(0)
            if vs["service"] == "ftp" and not vs.get("login"):
                vs["login"] = "anonymous"
            elif vs["service"] == "sip" and not vs.get("login"):
                vs["login"] = f"ldirectord@{self.res.hostname}"
            if vs["service"] == "ftp" and not vs.get("passwd"):
                vs["passwd"] = f"ldirectord@{self.res.hostname}"
        elif (v := val("httpmethod")) is not None:
            w = re.search(r"\w+", v, _A)
            if not w or w.group(0).upper() not in ("GET", "HEAD"):
                self.error(line, "httpmethod must be GET or HEAD")
            vs["httpmethod"] = w.group(0).upper()
        elif (v := val("virtualhost")) is not None:
            vs["virtualhost"] = re.search(r'"?([^"]*)"?', v).group(1)
        elif (v := val("fallbackcommand", True)) is not None or (v := val("fallbackcommand")) is not None:
            vs["fallbackcommand"] = v or self.error(line, "invalid fallback command")
        elif (v := val("quiescent")) is not None:
            vs["quiescent"] = yesno(v, "quiescent")
        elif (v := val("emailalert")) is not None:
            vs["emailalert"] = self._emailalert(line, v)
        elif (m := re.match(r"emailalertfreq\s*=\s*(\d*)", rcmd, _A)):
            vs["emailalertfreq"] = int(m.group(1)) if m.group(1) else self.error(
                line, "invalid email alert frequency")
        elif (v := val("emailalertstatus")) is not None:
            vs["emailalertstatus"] = self._emailalertstatus(line, v)
        elif (v := val("monitorfile", True)) is not None or (v := val("monitorfile")) is not None:
            err = self.res.append_error(v)
            if err:
                self.error(line, f"unable to open monitorfile {v}: {err}")
            vs["monitorfile"] = v
        elif (v := val("cleanstop")) is not None:
            vs["cleanstop"] = yesno(v, "cleanstop")
        elif (v := val("smtp")) is not None:
            w = re.match(r"[0-9A-Za-z._+-]+", v, _A)
            vs["smtp"] = w.group(0) if w else self.error(line, "invalid SMTP server address")
        elif (v := val("servicename")) is not None:
            vs["servicename"] = v
        elif (v := val("comment")) is not None:
            vs["comment"] = v
        else:
            self.error(line, f'Unknown command "{raw.strip()}"')


def _is_v6_literal(s: str) -> bool:
    return inet_pton6(s) is not None


def _virtual_key(vs: Dict) -> str:
    if vs["protocol"] == "fwm":
        return f"fwm{'6' if vs['family'] == 6 else ''}:{vs['fwmark']}"
    host = f"[{vs['address']}]" if vs["family"] == 6 else vs["address"]
    return f"{vs['protocol']}:{host}:{vs['port']}"


def _ip_to_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (((a << 8) + b << 8) + c << 8) + d


def _int_to_ip(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _perl_le(a: int, b: int) -> bool:
    """Perl's string `le` on two integers (ldirectord's range loop uses it)."""
    return str(a) <= str(b)
