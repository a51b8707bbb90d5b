"""http, https and http_proxy negotiate checks (ldirectord's check_http: LWP GET/HEAD, receive regex)."""

from __future__ import annotations

import asyncio
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


class _HttpProtocol(asyncio.Protocol):
    """A one-shot HTTP/1.1 client: write the request, collect the response, close."""

    def __init__(self, request: bytes, head: bool, done: asyncio.Future):
        self.request, self.head, self.done = request, head, done
        self.buf = bytearray()
        self.hend = -1
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self.buf += data
        if len(self.buf) > MAX_BODY:
            self._finish(eof=True)
            return
        self._finish(eof=False)

    def eof_received(self):
        self._finish(eof=True)
        return False

    def connection_lost(self, exc):
        if not self.done.done():
            self._finish(eof=True, exc=exc)

    def _finish(self, eof: bool, exc=None):
        if self.done.done():
            return
        try:
            if self.hend < 0:
                self.hend = self.buf.find(b"\r\n\r\n")
                if self.hend < 0:
                    if eof:
                        raise exc or EOFError("connection closed before the response headers")
                    return
            status, reason, headers = _parse_head(bytes(self.buf[:self.hend]))
            body = bytes(self.buf[self.hend + 4:])
            if self.head or status in (204, 304) or 100 <= status < 200:
                body = b""
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                decoded = _dechunk(body)
                if decoded is None:
                    if not eof:
                        return
                    raise EOFError("truncated chunked body")
                body = decoded
            elif "content-length" in headers and headers["content-length"].isdigit():
                n = int(headers["content-length"])
                if len(body) < n:
                    if not eof:
                        return
                    raise EOFError("truncated body")
                body = body[:n]
            elif not eof:
                return
            self.done.set_result(_Response(status, reason, headers, body))
        except Exception as e:  # noqa: BLE001 - handed to the waiting check
            self.done.set_exception(e)
        if self.transport is not None:
            self.transport.close()


async def _fetch(host: str, port: int, tls: bool, request: bytes, head: bool) -> _Response:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: _HttpProtocol(request, head, done), host, port,
        ssl=tls_context() if tls else None, server_hostname="" if tls else None)
    try:
        return await done
    finally:
        transport.close()


def _request(method: str, target: str, host_header: str | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host_header:
        lines.append(f"Host: {host_header}")
    lines += [f"User-Agent: {USER_AGENT}", "Connection: close", "Accept-Encoding: identity", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace")


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
            u = urlsplit(url)
            tls = u.scheme == "https"
            conn_host = u.hostname or spec.address
            conn_port = u.port or (443 if tls else 80)
            target = (u.path or "/") + (f"?{u.query}" if u.query else "")
            req = _request(spec.httpmethod, target, spec.virtualhost or conn_host)
        res = await _fetch(conn_host, conn_port, tls, req, head)
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
