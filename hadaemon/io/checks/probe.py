"""Plain-HTTP negotiate checks driven by callbacks on one private epoll: no task, future or timer per check.

This is the hot path when thousands of reals are checked each second. `Prober.start(probe, token)`
opens a non-blocking socket, sends the pre-encoded request and registers the socket with the
prober's own epoll, whose descriptor sits in the asyncio loop as one reader; a readiness event
costs a dict look-up and a method call instead of asyncio's handle/selector-key churn, and closing
the socket removes it from the epoll (no unregister call). Timeouts live in one FIFO per timeout
value (deadlines of checks started later are never earlier) swept by one loop timer, instead of a
timer per check. Semantics are `check_http`'s first hop; a redirect answers `None` so that the
caller runs the full `check_http`, which follows it.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import socket
import struct
import time
from collections import deque
from typing import Callable, Deque, Dict, Tuple

from hadaemon.io.checks.base import perl_regex
from hadaemon.io.checks.http import MAX_HEADER_LINES, MAX_LINE, _Exchange, _is_ip, _plan

_LINGER0 = struct.pack("ii", 1, 0)
_REDIRECTS = (301, 302, 303, 307, 308)
_NONBLOCK_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
POLL_BATCH = 64        # sockets handled per turn of the event loop (see Prober._poll)
_monotonic = time.monotonic
DoneCallback = Callable[[object, "bool | None", str, float], None]


class HttpProbe:
    """One check's invariant parts, computed once per (real, check): address, request bytes, regex."""

    __slots__ = ("family", "addr", "request", "head", "receive", "regex", "timeout")

    def __init__(self, family, addr, request, head, receive, timeout):
        self.family, self.addr, self.request, self.head = family, addr, request, head
        self.receive, self.timeout = receive, timeout
        self.regex = perl_regex(receive) if receive else None


def probe_for(spec) -> HttpProbe | None:
    """The callback-path plan for `spec`, or None when it needs the general path (https, http_proxy,
    a host name to resolve, other services)."""
    if spec.kind != "negotiate" or spec.service != "http" or _NONBLOCK_STREAM == socket.SOCK_STREAM:
        return None
    host, port, tls, request = _plan(spec.url, spec.httpmethod, spec.virtualhost, spec.address)
    if tls or not _is_ip(host):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return HttpProbe(family, (host, port), request, spec.httpmethod == "HEAD", spec.receive, spec.timeout)


def verdict(probe: HttpProbe, res) -> Tuple[bool | None, str]:
    """check_http's verdict on a response (None: a redirect to follow)."""
    if res.status in _REDIRECTS and "location" in getattr(res, "headers", ()):
        return None, "redirect"
    status_line = f"{res.status} {res.reason}".strip()
    if not 200 <= res.status < 300:
        return False, status_line
    if probe.regex is not None and probe.regex.search(res.body.decode("utf-8", "replace")) is None:
        return False, f"{status_line}, receive {probe.receive!r} not found"
    return True, status_line


class _Quick:
    """The common response (a final status, not a redirect, Content-Length, no chunking), parsed
    without building a header dict; anything else goes to http's general parser."""

    __slots__ = ("status", "reason", "body")

    def __init__(self, status, reason, body):
        self.status, self.reason, self.body = status, reason, body


def _quick(buf: bytes, head: bool):
    """The common response in one read (a final 2xx-5xx status, not a redirect, one Content-Length,
    no chunking, CRLF lines well within LWP's limits), parsed without a header dict; None when it
    is anything else or not complete (then the general reader, http._Exchange, takes it)."""
    hend = buf.find(b"\r\n\r\n")
    if hend < 0 or hend > MAX_LINE:
        return None
    lower = buf[:hend + 2].lower()
    i = lower.find(b"\r\ncontent-length:")
    eol = buf.find(b"\r\n")
    first = buf[:eol].split(b" ", 2)
    if (i < 0 or b"\r\ntransfer-encoding:" in lower or lower.count(b"\r\ncontent-length:") > 1
            or lower.count(b"\n") >= MAX_HEADER_LINES or len(first) < 2 or not first[0].startswith(b"HTTP/")
            or len(first[0]) < 6 or len(first[1]) != 3 or not first[1].isdigit() or not b"2" <= first[1][:1] <= b"5"):
        return None
    status = int(first[1])
    length = lower[i + 17:lower.find(b"\r\n", i + 17)].strip()
    if status in (204, 304) or status in _REDIRECTS or not length.isdigit() or len(length) > 15:
        return None
    n = 0 if head else int(length)
    if len(buf) < hend + 4 + n:
        return None
    return _Quick(status, first[2].decode("latin-1") if len(first) > 2 else "", buf[hend + 4:hend + 4 + n])


class _Flight:
    __slots__ = ("sock", "fd", "probe", "token", "buf", "start", "deadline", "writing", "done", "ex")


class Prober:
    """Runs HttpProbes in `loop`; `on_done(token, ok, detail, duration)` is called once per start,
    from the loop (ok None: a redirect, run the full check)."""

    def __init__(self, loop, on_done: DoneCallback, granularity: float = 0.01):
        self._loop, self._on_done, self._granularity = loop, on_done, granularity
        self._ep = select.epoll()
        self._flights: Dict[int, _Flight] = {}
        self._queues: Dict[float, Deque[_Flight]] = {}
        self._timer = None
        loop.add_reader(self._ep.fileno(), self._poll)

    def __len__(self) -> int:
        return len(self._flights)

    def close(self) -> None:
        """Abort everything in flight (no callbacks) and release the epoll."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for f in self._flights.values():
            f.done = True
            f.sock.close()
        self._flights.clear()
        self._queues.clear()
        if self._ep.fileno() >= 0:
            self._loop.remove_reader(self._ep.fileno())
            self._ep.close()

    # ---- starting --------------------------------------------------------------------------

    def start(self, probe: HttpProbe, token) -> None:
        f = _Flight()
        f.probe, f.token, f.buf, f.done, f.writing, f.ex = probe, token, b"", False, False, None
        f.start = now = _monotonic()
        f.deadline = now + probe.timeout
        try:
            sock = _socket.socket(probe.family, _NONBLOCK_STREAM)   # no Python-level wrapper
        except OSError as e:                       # EMFILE and friends: a failed check, later
            self._loop.call_soon(self._on_done, token, False, f"{type(e).__name__}: {e}", 0.0)
            return
        f.sock, f.fd = sock, sock.fileno()
        try:
            # RST on close, as HAProxy's checks: no TIME_WAIT per check at thousands of checks/s
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            err = sock.connect_ex(probe.addr)
            if err and err != errno.EINPROGRESS:
                raise OSError(err, os.strerror(err))
            # near servers (loopback, LAN) have often completed the handshake already: send at once
            try:
                n = sock.send(probe.request)
            except (BlockingIOError, InterruptedError):
                n = -1
            except OSError as e:
                if e.errno not in (errno.ENOTCONN, errno.EAGAIN):
                    raise
                n = -1
            if n == len(probe.request):
                self._ep.register(f.fd, _EPOLLIN)
            else:
                f.writing = True
                if n > 0:
                    f.buf = probe.request[n:]      # the rest to send (buf is reset before reading)
                self._ep.register(f.fd, _EPOLLOUT)
        except OSError as e:
            f.done = True
            sock.close()
            self._loop.call_soon(self._on_done, token, False, f"{type(e).__name__}: {e}",
                                 _monotonic() - now)
            return
        self._flights[f.fd] = f
        q = self._queues.get(probe.timeout)
        if q is None:
            q = self._queues[probe.timeout] = deque()
        q.append(f)
        timer = self._timer
        if timer is None or f.deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(f.deadline, self._sweep)

    # ---- progress --------------------------------------------------------------------------

    def _poll(self) -> None:
        # at most POLL_BATCH sockets per turn of the event loop: the epoll descriptor stays readable while
        # more are ready, so the rest come next turn, after whatever else waits (a D-Bus call)
        flights = self._flights
        for fd, _ev in self._ep.poll(0, POLL_BATCH):
            f = flights.get(fd)
            if f is None:
                continue
            if f.writing:
                self._writable(f)
            else:
                self._readable(f)

    def _writable(self, f: _Flight) -> None:
        sock = f.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(f, OSError(err, os.strerror(err)))
            return
        data = f.buf or f.probe.request
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fail(f, e)
            return
        if n < len(data):
            f.buf = data[n:]
            return
        f.buf, f.writing = b"", False
        self._ep.modify(f.fd, _EPOLLIN)

    def _readable(self, f: _Flight) -> None:
        try:
            data = f.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fail(f, e)
            return
        try:
            if f.ex is None:
                res = _quick(data, f.probe.head) if data else None
                if res is None:            # not the one-read common case: the general reader from here on
                    f.ex = _Exchange(f.probe.head)
                    res = f.ex.feed(data, not data)
            else:
                res = f.ex.feed(data, not data)
            if res is None:
                return
            ok, detail = verdict(f.probe, res)
        except (EOFError, ValueError, IndexError, UnicodeError) as e:
            self._fail(f, e)
            return
        self._finish(f, ok, detail)

    def _fail(self, f: _Flight, e: BaseException) -> None:
        self._finish(f, False, f"{type(e).__name__}: {e}")

    def _finish(self, f: _Flight, ok, detail: str) -> None:
        f.done = True
        del self._flights[f.fd]
        f.sock.close()                             # also leaves the epoll
        token, f.buf, f.sock, f.token, f.ex = f.token, None, None, None, None
        self._on_done(token, ok, detail, _monotonic() - f.start)

    # ---- timeouts --------------------------------------------------------------------------

    def _sweep(self) -> None:
        self._timer = None
        now = _monotonic()
        nxt = None
        for timeout, q in list(self._queues.items()):
            while q and (q[0].done or q[0].deadline <= now):
                f = q.popleft()
                if not f.done:
                    self._finish(f, False, f"timeout after {timeout:g}s")
            if q:
                nxt = q[0].deadline if nxt is None else min(nxt, q[0].deadline)
            else:
                del self._queues[timeout]
        if nxt is not None:
            self._timer = self._loop.call_at(max(nxt, now + self._granularity), self._sweep)
