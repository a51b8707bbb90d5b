"""http, https and http_proxy negotiate checks (ldirectord's check_http: LWP GET/HEAD, receive regex)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import re
import socket
import struct
import zlib
from functools import lru_cache
from typing import Tuple
from urllib.parse import urljoin, urlsplit

from hadaemon.io.checks.base import matches, tls_context

MAX_BODY = 1 << 20
MAX_REDIRECTS = 7          # LWP::UserAgent's max_redirect
USER_AGENT = "hadaemon-ldirectord"


class _Response:
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: dict, body: bytes):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


# What LWP (Net::HTTP, with LWP's `laxed` reading) accepts: lines end with LF (CR optional), at most
# 8192 bytes a line and 128 header lines; a status line that is not `HTTP/x.y [1-5]dd ...` makes the
# whole answer an HTTP/0.9 response "200 Assumed OK" whose body is everything received.
MAX_LINE = 8192
MAX_HEADER_LINES = 128
_STATUS_SPLIT = re.compile(rb"\s+")
_HEADER = re.compile(rb"(\S+?)\s*:\s*(.*)", re.S)
_CONTENT_LENGTH = re.compile(rb"\s*(\d{1,15})(?:\s|$)")
_CHUNK_SIZE = re.compile(rb"\s*([0-9a-fA-F]+)")


class ProtocolError(ValueError):
    """An answer LWP refuses (its message is LWP's)."""


class _Exchange:
    """Reads one HTTP response incrementally, as LWP reads it; `feed(data, eof)` returns the response
    once complete (None while more is needed) or raises. Every byte is looked at a bounded number of
    times whatever the read sizes (a body of 1-byte chunks costs what one chunk of the same size
    does), and at most MAX_BODY bytes are kept."""

    __slots__ = ("head", "buf", "pos", "phase", "status", "reason", "headers", "nlines", "body", "length",
                 "chunk_left", "hend")

    def __init__(self, head: bool):
        self.head, self.buf, self.pos = head, bytearray(), 0
        self.phase = "status"
        self.status, self.reason, self.headers, self.nlines = 0, "", {}, 0
        self.body = bytearray()
        self.length = None          # bytes still wanted for a Content-Length body
        self.chunk_left = -1        # chunked: bytes left in the current chunk (-1: a size line is next)
        self.hend = -1

    def _line(self, what: str, eof: bool):
        """The next line without its end (bytes), or None when it is not complete yet."""
        j = self.buf.find(b"\n", self.pos)
        if j < 0:
            if len(self.buf) - self.pos > MAX_LINE:
                raise ProtocolError(f"{what} line too long (limit is {MAX_LINE})")
            if eof and len(self.buf) > self.pos:
                line = bytes(self.buf[self.pos:])
                self.pos = len(self.buf)
                return line
            return None
        if j - self.pos > MAX_LINE:
            raise ProtocolError(f"{what} line too long ({j - self.pos}; limit is {MAX_LINE})")
        line = bytes(self.buf[self.pos:j])
        self.pos = j + 1
        return line[:-1] if line.endswith(b"\r") else line

    def feed(self, data: bytes, eof: bool) -> _Response | None:
        self.buf += data
        if len(self.buf) > MAX_BODY + MAX_LINE * MAX_HEADER_LINES:
            eof = True                 # enough: judge what we have
        if self.phase == "status":
            line = self._line("Status", eof)
            if line is None:
                if eof:
                    raise EOFError("server closed connection without sending any data back")
                return None
            parts = _STATUS_SPLIT.split(line, 2)
            if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and len(parts[0]) > 5 and \
                    len(parts[1]) == 3 and parts[1].isdigit() and b"1" <= parts[1][:1] <= b"5":
                self.status = int(parts[1])
                self.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
                self.phase = "headers"
            else:                      # LWP: assume HTTP/0.9, the whole answer is the body
                self.status, self.reason, self.phase = 200, "Assumed OK", "eof"
                self.pos = 0
        if self.phase == "headers":
            while True:
                line = self._line("Header", eof)
                if not line:           # the empty line (or the end of the data) ends the headers
                    if line is None and not eof:
                        return None
                    break
                m = _HEADER.match(line)
                if m:
                    name = m.group(1).decode("latin-1").lower()
                    value = m.group(2).decode("latin-1")
                    if name in self.headers and name in ("transfer-encoding",):
                        self.headers[name] += "," + value
                    elif name == "content-length":
                        if _CONTENT_LENGTH.match(m.group(2)):   # bogus values are ignored, the last good wins
                            self.headers[name] = value
                    else:
                        self.headers[name] = value
                # continuation and junk lines are ignored (LWP's laxed reading)
                self.nlines += 1
                if self.nlines >= MAX_HEADER_LINES:
                    raise ProtocolError(f"Too many header lines (limit is {MAX_HEADER_LINES})")
            self.hend = self.pos
            self._start_body()
        if self.phase == "eof":
            if eof:
                return self._done(bytes(self.buf[self.pos:self.pos + MAX_BODY]))
            return None
        if self.phase == "length":
            have = len(self.buf) - self.pos
            if have >= self.length or eof:
                # LWP keeps the status of a response whose body ends early (what came is the content)
                return self._done(bytes(self.buf[self.pos:self.pos + self.length]))
            return None
        if self.phase == "chunked":
            try:
                return self._chunks(eof)
            except (ProtocolError, EOFError):
                # an error in the body: LWP keeps the status line and the content collected so far
                # (nothing when the transfer coding cannot be undone)
                return self._done(b"" if "transfer-encoding" in self.headers and
                                  self.headers["transfer-encoding"].lower().replace(" ", "") != "chunked"
                                  else bytes(self.body))
        return self._done(b"")

    def _start_body(self) -> None:
        te = [t.strip() for t in self.headers.get("transfer-encoding", "").lower().split(",") if t.strip()]
        if self.head or self.status in (204, 304) or 100 <= self.status < 200:
            self.phase = "none"
        elif te:
            # a coding other than chunked last: LWP gives up on the body (content empty), status kept
            self.phase = "chunked" if te[-1] == "chunked" else "none"
        elif "content-length" in self.headers:
            self.length = int(_CONTENT_LENGTH.match(self.headers["content-length"].encode("latin-1")).group(1))
            self.phase = "length" if self.length <= MAX_BODY else "eof"
            if self.phase == "eof":
                raise EOFError("truncated body")     # more than we keep: never complete for us
        else:
            self.phase = "eof"

    def _chunks(self, eof: bool) -> _Response | None:
        while True:
            if self.chunk_left < 0:
                line = self._line("Chunk size", eof)
                if line is None:
                    if eof:
                        raise EOFError("truncated chunked body")
                    return None
                m = _CHUNK_SIZE.match(line)
                if not m:
                    raise ProtocolError(f"Bad chunk-size in HTTP response: {line[:40]!r}")
                size = int(m.group(1), 16)
                if size == 0:
                    return self._done(self._decode(bytes(self.body)))
                self.chunk_left = size
            take = min(self.chunk_left, len(self.buf) - self.pos)
            if take:
                room = MAX_BODY - len(self.body)
                if room > 0:
                    self.body += self.buf[self.pos:self.pos + min(take, room)]
                self.pos += take
                self.chunk_left -= take
            if self.chunk_left > 0:
                self._compact()
                if eof or len(self.body) >= MAX_BODY:
                    raise EOFError("truncated chunked body")
                return None
            line = self._line("Chunk", eof)      # the CRLF after the chunk's data
            if line is None:
                if eof:
                    raise EOFError("truncated chunked body")
                self.chunk_left = 0
                return None
            self.chunk_left = -1
            self._compact()

    def _decode(self, body: bytes) -> bytes:
        """Transfer codings before the final chunked, undone as Net::HTTP does (deflate, gzip, identity)."""
        te = [t.strip() for t in self.headers.get("transfer-encoding", "").lower().split(",") if t.strip()]
        while te and te[-1] == "chunked":
            te.pop()
        for coding in reversed(te):
            if coding == "identity":
                continue
            if coding not in ("gzip", "deflate"):
                raise ProtocolError(f"Can't handle transfer encoding '{self.headers['transfer-encoding']}'")
            try:
                body = zlib.decompress(body, 31 if coding == "gzip" else 15)
            except zlib.error as e:
                raise ProtocolError(f"Can't {'gunzip' if coding == 'gzip' else 'inflate'} content: {e}") from None
        return body

    def _compact(self) -> None:
        """Drop what has been consumed (the chunked decoder keeps the buffer small)."""
        if self.pos > 65536:
            del self.buf[:self.pos]
            self.pos = 0

    def _done(self, body: bytes) -> _Response:
        return _Response(self.status, self.reason, self.headers, body)


def _parse_response(buf: bytes, hend: int, head: bool, eof: bool) -> _Response | None:
    """The response in buf if complete (None if more is needed): the whole buffer through _Exchange."""
    return _Exchange(head).feed(bytes(buf), eof)


def _quiet(fut: asyncio.Future) -> None:
    """Mark a late exception as retrieved (the check may already have timed out)."""
    if not fut.cancelled():
        fut.exception()


class _HttpProtocol(asyncio.Protocol):
    """A one-shot HTTP/1.1 client over a transport (used for https)."""

    def __init__(self, request: bytes, head: bool, done: asyncio.Future):
        self.request, self.done, self.ex = request, done, _Exchange(head)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self._step(data, False)

    def eof_received(self):
        self._step(b"", True)
        return False

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or EOFError("connection closed before the response"))

    def _step(self, data: bytes, eof: bool) -> None:
        if self.done.done():
            return
        try:
            res = self.ex.feed(data, eof)
        except Exception as e:  # noqa: BLE001 - handed to the waiting check
            self.done.set_exception(e)
            res = None
        else:
            if res is None:
                return
            self.done.set_result(res)
        if self.transport is not None:
            self.transport.close()


async def _fetch_tls(host: str, port: int, request: bytes, head: bool) -> _Response:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    done.add_done_callback(_quiet)
    transport, _ = await loop.create_connection(
        lambda: _HttpProtocol(request, head, done), host, port, ssl=tls_context(), server_hostname="")
    try:
        return await done
    finally:
        transport.close()


_LINGER0 = struct.pack("ii", 1, 0)


def _fetch_plain(host: str, port: int, request: bytes, head: bool) -> asyncio.Future:
    """Plain HTTP straight on a non-blocking socket with reader/writer callbacks: no transport, no
    task, a handful of loop callbacks per check (this is the hot path at thousands of checks/s)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    # Close with RST once done, as HAProxy's checks do: no TIME_WAIT left per check, which at
    # thousands of checks/s fills the connection table and makes every connect() slower.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
    fd = sock.fileno()
    ex = _Exchange(head)
    out = [request]

    registered = [False, False]       # reader, writer

    def cleanup(_fut=None) -> None:
        if sock.fileno() >= 0:
            if registered[0]:
                loop.remove_reader(fd)
            if registered[1]:
                loop.remove_writer(fd)
            sock.close()

    def fail(e: BaseException) -> None:
        cleanup()
        if not done.done():
            done.set_exception(e)

    def readable() -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(e)
            return
        try:
            res = ex.feed(data, not data)
        except Exception as e:  # noqa: BLE001
            fail(e)
            return
        if res is not None:
            cleanup()
            if not done.done():
                done.set_result(res)

    def writable() -> None:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            fail(ConnectionRefusedError(err, os.strerror(err)) if err == errno.ECONNREFUSED
                 else OSError(err, os.strerror(err)))
            return
        try:
            n = sock.send(out[0])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(e)
            return
        out[0] = out[0][n:]
        if not out[0]:
            loop.remove_writer(fd)
            registered[1] = False
            loop.add_reader(fd, readable)
            registered[0] = True

    done.add_done_callback(cleanup)
    done.add_done_callback(_quiet)
    err = sock.connect_ex((host, port))
    if err not in (0, errno.EINPROGRESS):
        fail(OSError(err, os.strerror(err)))
        return done
    # On a near (e.g. loopback or LAN) server the handshake is often complete already: try
    # sending at once and only wait for writability when the connection is still in progress.
    try:
        n = sock.send(request)
    except (BlockingIOError, InterruptedError, OSError) as e:
        if isinstance(e, (BlockingIOError, InterruptedError)) or getattr(e, "errno", None) in (
                errno.ENOTCONN, errno.EAGAIN, errno.EINPROGRESS):
            loop.add_writer(fd, writable)
            registered[1] = True
        else:
            fail(e)
        return done
    out[0] = request[n:]
    if out[0]:
        loop.add_writer(fd, writable)
        registered[1] = True
    else:
        loop.add_reader(fd, readable)
        registered[0] = True
    return done


def _request(method: str, target: str, host_header: str | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host_header:
        lines.append(f"Host: {host_header}")
    lines += [f"User-Agent: {USER_AGENT}", "Connection: close", "Accept-Encoding: identity", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace")


@lru_cache(maxsize=65536)
def _plan(url: str, method: str, virtualhost: str | None, address: str):
    u = urlsplit(url)
    tls = u.scheme == "https"
    conn_host = u.hostname or address
    conn_port = u.port or (443 if tls else 80)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host_header = virtualhost or (f"[{conn_host}]" if ":" in conn_host else conn_host)
    return conn_host, conn_port, tls, _request(method, target, host_header)


@lru_cache(maxsize=65536)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def _resolve(host: str, port: int) -> str:
    """A host name (e.g. from a redirect) resolved without blocking the loop."""
    if _is_ip(host):
        return host
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    return infos[0][4][0]


async def check_http(spec) -> Tuple[bool, str]:
    """GET/HEAD spec.url (Host: virtualhost); up when 2xx and the body matches receive."""
    head = spec.httpmethod == "HEAD"
    url = spec.url
    for _ in range(MAX_REDIRECTS + 1):
        if spec.service == "http_proxy":
            # the real server is the proxy: absolute URI in the request line, Host from the URL
            u = urlsplit(url if "://" in url else "http://" + url)
            conn_host, conn_port, tls = spec.address, spec.port, False
            req = _request(spec.httpmethod, url if "://" in url else "http://" + url, u.netloc)
        else:
            conn_host, conn_port, tls, req = _plan(url, spec.httpmethod, spec.virtualhost, spec.address)
        if tls:
            res = await _fetch_tls(conn_host, conn_port, req, head)
        else:
            if not _is_ip(conn_host):
                conn_host = await _resolve(conn_host, conn_port)
            res = await _fetch_plain(conn_host, conn_port, req, head)
        if res.status in (301, 302, 303, 307, 308) and "location" in res.headers:
            url = urljoin(url, res.headers["location"])
            continue
        break
    status_line = f"{res.status} {res.reason}".strip()
    if not 200 <= res.status < 300:
        return False, status_line
    if not matches(spec.receive, res.body.decode("utf-8", "replace")):
        return False, f"{status_line}, receive {spec.receive!r} not found"
    return True, status_line
