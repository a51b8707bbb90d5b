"""Load ldirectord.cf from disk: the file read and the system's name, service and file lookups for the pure parser."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from hadaemon.core.director.config import DirectorConfig, Resolver, numeric_host, parse_config
from hadaemon.core.errors import ConfigError

__all__ = ["load_config", "system_resolver", "bounded_resolver", "LOOKUP_THREADS"]
log = logging.getLogger("ha-ldirectord")

# Host name lookups of config loads run here, never on the checks' or the backend's threads. A lookup
# that does not answer is abandoned by its caller, but its thread stays busy until libc gives up; at
# most LOOKUP_THREADS such lookups are outstanding, after that loads fail at once instead of piling up.
LOOKUP_THREADS = 4
_outstanding = [0]
_outstanding_lock = threading.Lock()


def _getaddrinfo(name: str, af: int, fut: Future) -> None:
    """In a daemon thread (a hanging lookup must not hold up the daemon's exit)."""
    try:
        infos = socket.getaddrinfo(name, 0, af)
        fut.set_result(infos[0][4][0] if infos else None)
    except (OSError, UnicodeError):
        fut.set_result(None)
    finally:
        with _outstanding_lock:
            _outstanding[0] -= 1


def bounded_resolver(timeout: float = 3.0, budget: float = 10.0) -> Resolver:
    """system_resolver() whose host name lookups are bounded: each waits at most `timeout` seconds,
    the whole load at most `budget` seconds (later lookups fail at once), a name is looked up once
    per load, and lookups run on a small pool of their own (see LOOKUP_THREADS). A name that is not
    resolved in time makes the file's line an error (`could not resolve host`), so a reload with an
    unreachable DNS server is refused quickly and the running configuration stays."""
    deadline = time.monotonic() + budget
    cache = {}

    def host(name: str, family: int) -> str | None:
        num = numeric_host(name, family)
        if num is not None:
            return num
        if (name, family) in cache:
            return cache[(name, family)]
        left = min(timeout, deadline - time.monotonic())
        with _outstanding_lock:
            busy = _outstanding[0] >= LOOKUP_THREADS
            if not busy and left > 0:
                _outstanding[0] += 1
        if busy or left <= 0:
            log.warning("not looking up %s: %s", name, "earlier lookups are still hanging (DNS not answering?)"
                        if busy else f"the configuration's {budget:g}s for name lookups are spent")
            cache[(name, family)] = None
            return None
        fut: Future = Future()
        threading.Thread(target=_getaddrinfo, args=(name, socket.AF_INET6 if family == 6 else socket.AF_INET, fut),
                         name="director-dns", daemon=True).start()
        try:
            addr = fut.result(left)
        except FutureTimeout:
            log.warning("looking up %s timed out after %.3gs", name, left)
            addr = None
        cache[(name, family)] = addr
        return addr

    return dataclasses.replace(system_resolver(), host=host)


def system_resolver() -> Resolver:
    """A Resolver doing real lookups (blocking: call it at load time, not in the event loop)."""

    def host(name: str, family: int) -> str | None:
        num = numeric_host(name, family)
        if num is not None:
            return num
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        try:
            infos = socket.getaddrinfo(name, 0, af)
        except (OSError, UnicodeError):
            return None
        return infos[0][4][0] if infos else None

    def service(name: str, protocol: str) -> int | None:
        try:
            return socket.getservbyname(name, protocol) if protocol else socket.getservbyname(name)
        except OSError:
            return None

    def append_error(path: str) -> str | None:
        try:
            with open(path, "a"):
                return None
        except OSError as e:
            return e.strerror or str(e)

    return Resolver(host, service, socket.gethostname(), append_error, os.path.isdir)


def load_config(path: str, resolver: Resolver | None = None) -> DirectorConfig:
    """Read and parse an ldirectord.cf; raise ConfigError(path, line, message) when bad."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, 0, f"can not open file {path}: {e.strerror}") from None
    text = data.decode("utf-8", errors="surrogateescape")
    return parse_config(text, path, resolver if resolver is not None else system_resolver())


def file_stamp(path: str):
    """(mtime, sha256 of the content) of a config file; (0.0, '') when unreadable."""
    import hashlib

    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            return st.st_mtime, hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return 0.0, ""


def load_checked(path: str, lookup_timeout: float):
    """Read, parse and check a config file for the table (what a reload does before it derives the plan),
    host names looked up with bounded waits. Returns ("ok", config, stamp) or ("error", path, line, message):
    made to run in a loader process (a ConfigError does not pickle, a tuple does)."""
    from hadaemon.core.director.table import check_table

    try:
        stamp = file_stamp(path)
        config = load_config(path, bounded_resolver(lookup_timeout))
        check_table(config)
        return "ok", config, stamp
    except ConfigError as e:
        return "error", e.path, e.line, e.message
