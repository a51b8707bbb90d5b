"""A small HTTP/1.1 server on asyncio streams (TLS through ssl.SSLContext): requests with bounded
headers and bodies, keep-alive, plain responses and Server-Sent Event streams. Enough for ha-web; no
third-party web framework."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Awaitable, Callable, Dict, List, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Request", "Response", "HttpError", "serve", "parse_cookies"]

log = logging.getLogger("hadaemon.web.http")

MAX_HEADER = 32 * 1024
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 75.0


class HttpError(Exception):
    def __init__(self, status: int, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes
    peer: str
    writer: asyncio.StreamWriter | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]

    @property
    def cookies(self) -> Dict[str, str]:
        return parse_cookies(self.header("cookie"))

    def json(self) -> dict:
        if not self.header("content-type").startswith("application/json"):
            raise HttpError(415, "send JSON (Content-Type: application/json)")
        try:
            value = json.loads(self.body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise HttpError(400, "the body must be a JSON object")
        return value

    def form(self) -> Dict[str, str]:
        try:
            fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HttpError(400, "the form is not UTF-8") from None
        return {k: v[0] for k, v in fields.items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)
    # a stream: called with the writer after the headers are sent (Server-Sent Events); it returns
    # when the stream ends
    stream: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None

    @classmethod
    def json(cls, value, status: int = 200) -> Response:
        return cls(status, json.dumps(value).encode(), "application/json")

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str, status: int = 303, headers=()) -> Response:
        return cls(status, b"", headers=[("Location", location), *headers])


def parse_cookies(text: str) -> Dict[str, str]:
    out = {}
    for part in text.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out.setdefault(k.strip(), v.strip())
    return out


SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),  # no-referrer would make a form POST's Origin "null"
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    ("Cache-Control", "no-store"),
]


async def _read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "incomplete request") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request headers too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    method, target, _version = parts
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise HttpError(400, "bad header line")
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if "transfer-encoding" in headers:
        raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
    body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT) if length else b""
    url = urlsplit(target)
    return Request(method.upper(), target, unquote(url.path), parse_qs(url.query, keep_blank_values=True),
                   headers, body, peer)


def _head(status: int, headers: List[Tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    out = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


async def _write(writer: asyncio.StreamWriter, resp: Response, keep_alive: bool, head_only: bool = False) -> None:
    headers = list(SECURITY_HEADERS) + list(resp.headers)
    headers.append(("Strict-Transport-Security", "max-age=31536000"))
    if resp.stream is not None:
        headers += [("Content-Type", resp.content_type), ("Connection", "close"), ("X-Accel-Buffering", "no")]
        writer.write(_head(resp.status, headers))
        await writer.drain()
        await resp.stream(writer)
        return
    headers += [("Content-Type", resp.content_type), ("Content-Length", str(len(resp.body))),
                ("Connection", "keep-alive" if keep_alive else "close")]
    writer.write(_head(resp.status, headers) + (b"" if head_only else resp.body))
    await writer.drain()


Handler = Callable[[Request], Awaitable[Response]]


async def handle_connection(handler: Handler, reader, writer) -> None:
    peername = writer.get_extra_info("peername")
    peer = peername[0] if isinstance(peername, tuple) else str(peername or "")
    try:
        while True:
            try:
                req = await _read_request(reader, peer)
            except HttpError as exc:
                await _write(writer, Response(exc.status, (exc.message + "\n").encode()), False)
                return
            except (asyncio.TimeoutError, ConnectionError, OSError):
                return
            if req is None:
                return
            req.writer = writer
            keep_alive = req.header("connection").lower() != "close"
            try:
                resp = await handler(req)
            except HttpError as exc:
                resp = Response.json({"error": exc.message, "field": exc.field}, exc.status) \
                    if req.path.startswith("/api/") else Response(exc.status, (exc.message + "\n").encode())
            except Exception:  # noqa: BLE001 - one request's bug must not end the server
                log.exception("request %s %s failed", req.method, req.path)
                resp = Response(500, b"internal error (logged)\n")
            await _write(writer, resp, keep_alive and resp.stream is None, req.method == "HEAD")
            if not keep_alive or resp.stream is not None:
                return
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


MAX_CONNECTIONS = 512


async def serve(handler: Handler, host: str, port: int, ssl_context=None,
                max_connections: int = MAX_CONNECTIONS) -> asyncio.AbstractServer:
    """Connections beyond max_connections at once are closed at once (a bound on what clients hold)."""
    open_ = [0]

    async def on_conn(reader, writer):
        if open_[0] >= max_connections:
            log.warning("too many connections (%d): one refused", open_[0], extra={"EVENT": "connections"})
            writer.close()
            return
        open_[0] += 1
        try:
            await handle_connection(handler, reader, writer)
        finally:
            open_[0] -= 1

    return await asyncio.start_server(on_conn, host or None, port, ssl=ssl_context, limit=MAX_HEADER,
                                      ssl_handshake_timeout=30 if ssl_context else None)
