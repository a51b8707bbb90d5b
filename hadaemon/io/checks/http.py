"""http, https and http_proxy negotiate checks (ldirectord's check_http: LWP GET/HEAD, receive regex)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import struct
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


def _parse_head(head: bytes) -> Tuple[int, str, dict]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _dechunk(data: bytes) -> bytes | None:
    """Decode a chunked body; None while incomplete."""
    out, i = bytearray(), 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return None
        size = int(data[i:j].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        if len(data) < j + 2 + size + 2:
            return None
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def _parse_response(buf: bytearray, hend: int, head: bool, eof: bool) -> _Response | None:
    """The response in buf if complete (hend: index of the header end), None if more is needed."""
    status, reason, headers = _parse_head(bytes(buf[:hend]))
    body = bytes(buf[hend + 4:])
    if head or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _dechunk(body)
        if decoded is None:
            if not eof:
                return None
            raise EOFError("truncated chunked body")
        body = decoded
    elif "content-length" in headers and headers["content-length"].isdigit():
        n = int(headers["content-length"])
        if len(body) < n:
            if not eof:
                return None
            raise EOFError("truncated body")
        body = body[:n]
    elif not eof:
        return None
    return _Response(status, reason, headers, body)


class _Exchange:
    """Collects one response; `feed` returns the response once complete."""

    __slots__ = ("head", "buf", "hend")

    def __init__(self, head: bool):
        self.head, self.buf, self.hend = head, bytearray(), -1

    def feed(self, data: bytes, eof: bool) -> _Response | None:
        self.buf += data
        if len(self.buf) > MAX_BODY:
            eof = True
        if self.hend < 0:
            self.hend = self.buf.find(b"\r\n\r\n")
            if self.hend < 0:
                if eof:
                    raise EOFError("connection closed before the response headers")
                return None
        return _parse_response(self.buf, self.hend, self.head, eof)


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
