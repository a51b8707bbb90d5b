"""Asyncio health checkers for real servers, one module per protocol family, behind one `run_check`."""

from __future__ import annotations

import asyncio
import importlib
import struct
import time
from dataclasses import dataclass

from hadaemon.core.director.checks import UNSUPPORTED_SERVICES, CheckSpec, check_spec

# service -> (module, function); each function is `async def f(spec) -> (ok, detail)`.
NEGOTIATORS = {
    "http": ("http", "check_http"), "https": ("http", "check_http"), "http_proxy": ("http", "check_http"),
    "smtp": ("mail", "check_smtp"), "submission": ("mail", "check_smtp"),
    "pop": ("mail", "check_pop"), "pops": ("mail", "check_pop"),
    "imap": ("mail", "check_imap"), "imaps": ("mail", "check_imap"),
    "ftp": ("ftp", "check_ftp"), "ldap": ("ldap", "check_ldap"), "ldaps": ("ldap", "check_ldap"),
    "nntp": ("nntp", "check_nntp"), "dns": ("dns", "check_dns"),
    "mysql": ("sql", "check_mysql"), "pgsql": ("sql", "check_pgsql"),
    "sip": ("sip", "check_sip"), "radius": ("radius", "check_radius"),
    "simpletcp": ("simpletcp", "check_simpletcp"),
}
KINDS = {"connect": ("connect", "check_connect"), "ping": ("ping", "check_ping"),
         "external": ("external", "check_external"), "external-perl": ("external", "check_external_perl")}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check: ok, a short human detail, and how long it took (seconds)."""

    ok: bool
    detail: str
    duration: float


class UnsupportedService(Exception):
    """A service whose client library is not available (e.g. oracle)."""


_CHECKERS: dict = {}


def checker_for(spec: CheckSpec):
    """The coroutine function that runs `spec`, or raise UnsupportedService."""
    key = (spec.kind, spec.service)
    fn = _CHECKERS.get(key)
    if fn is not None:
        return fn
    if spec.kind == "negotiate":
        if spec.service in UNSUPPORTED_SERVICES:
            raise UnsupportedService(
                f"service={spec.service} needs {UNSUPPORTED_SERVICES[spec.service]}, which hadaemon does "
                "not ship; use checktype=connect or external for this virtual service")
        if spec.service == "none" or spec.service not in NEGOTIATORS:
            fn = _always_up
        else:
            mod, name = NEGOTIATORS[spec.service]
            fn = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    elif spec.kind in KINDS:
        mod, name = KINDS[spec.kind]
        fn = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    else:
        fn = _always_up
    _CHECKERS[key] = fn
    return fn


async def _always_up(spec: CheckSpec):
    return True, "no check (service none)"


async def run_check(spec: CheckSpec) -> CheckResult:
    """Run one check, bounded by spec.timeout (× attempts for ping); never raises for network errors."""
    start = time.monotonic()
    try:
        fn = checker_for(spec)
    except UnsupportedService as e:
        return CheckResult(False, str(e), 0.0)
    bound = spec.timeout * max(1, spec.attempts) + (0.5 if spec.kind == "ping" else 0)
    # A timer that cancels this task, rather than asyncio.wait_for (which costs a task per check).
    task = asyncio.current_task()
    expired = []

    def expire():
        expired.append(True)
        task.cancel()
    timer = asyncio.get_running_loop().call_later(bound, expire)
    try:
        ok, detail = await fn(spec)
    except asyncio.CancelledError:
        if not expired:
            raise
        if hasattr(task, "uncancel"):
            task.uncancel()
        ok, detail = False, f"timeout after {bound:g}s"
    except (OSError, EOFError, ValueError, IndexError, UnicodeError, struct.error) as e:
        ok, detail = False, f"{type(e).__name__}: {e}"
    finally:
        timer.cancel()
    return CheckResult(ok, detail, time.monotonic() - start)


async def check(virtual, real, timeout: float | None = None, kind: str | None = None) -> CheckResult:
    """Check `real` of `virtual` once (kind defaults from the virtual's checktype)."""
    if kind is None:
        kind = {"connect": "ping" if virtual.protocol == "udp" else "connect",
                "combined": "negotiate", "on": "none", "off": "none"}.get(virtual.checktype, virtual.checktype)
    spec = check_spec(virtual, real, kind)
    if timeout is not None:
        from dataclasses import replace
        spec = replace(spec, timeout=timeout)
    return await run_check(spec)
