"""ha-web's server in-process on a loopback port (plain HTTP here; TLS is tested in
tests/integration/test_web.py): the bound on open connections, the cookie flags, a live event stream
that a shutdown ends, and refusals in words. Logins go through a stand-in for PAM (no root needed)."""
from __future__ import annotations

import asyncio
import json
import socket

from hadaemon.web import server
from hadaemon.web.app import App
from hadaemon.web.cluster import Cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _exchange(reader, writer, request: bytes):
    """One request on an open connection: (status line + headers as text, body)."""
    writer.write(request)
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode("latin-1")
    length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    body = await asyncio.wait_for(reader.readexactly(length), 30) if length else b""
    return head, body


def _app(**kw) -> App:
    return App(Cluster(), authenticate=lambda user, password, service: (password == "right", "wrong password"),
               host_label="test", **kw)


def test_connections_beyond_the_bound_are_closed_at_once():
    async def main():
        port = _free_port()
        app = _app()
        runner = await server.start(app, "127.0.0.1", port, None, max_connections=2)
        try:
            held = []
            for _ in range(2):  # two keep-alive connections, each answered
                r, w = await asyncio.open_connection("127.0.0.1", port)
                head, body = await _exchange(r, w, b"GET /login HTTP/1.1\r\nHost: t\r\n\r\n")
                assert head.startswith("HTTP/1.1 200") and b'name="password"' in body
                held.append((r, w))
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /login HTTP/1.1\r\nHost: t\r\n\r\n")
            assert await asyncio.wait_for(r.read(), 30) == b""   # closed without an answer
            w.close()
            # one of the two goes away: a new connection is served again
            held[0][1].close()
            for _ in range(300):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET /login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                answer = await asyncio.wait_for(r.read(), 30)
                w.close()
                if answer:
                    break
                await asyncio.sleep(0.1)
            assert answer.startswith(b"HTTP/1.1 200")
            held[1][1].close()
        finally:
            await app.end_streams()
            await runner.cleanup()

    asyncio.run(main())


def test_login_cookie_event_stream_and_shutdown():
    async def main():
        port = _free_port()
        app = _app()
        runner = await server.start(app, "127.0.0.1", port, None)
        stream_w = None
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            form = b"user=alice&password=wrong"
            head, body = await _exchange(r, w, b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                         b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                                         % (len(form), form))
            assert head.startswith("HTTP/1.1 401") and b"Login failed" in body and "Set-Cookie" not in head
            assert app.throttle.wait(["user:alice"], app.wall()) > 0
            app.throttle.succeeded(["user:alice", "addr:127.0.0.1"])
            form = b"user=alice&password=right"
            head, _ = await _exchange(r, w, b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                      b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                                      % (len(form), form))
            assert head.startswith("HTTP/1.1 303") and "Location: /login" not in head
            cookie_line = next(line for line in head.split("\r\n") if line.startswith("Set-Cookie:"))
            flags = [f.strip() for f in cookie_line.split(":", 1)[1].split(";")]
            assert flags[0].startswith("hasession=") and {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags)
            cookie = flags[0].encode()
            for name in ("X-Frame-Options: DENY", "Content-Security-Policy:", "Strict-Transport-Security:",
                         "Cache-Control: no-store"):
                assert name in head, name
            # refusals in words: JSON under /api/
            head, body = await _exchange(r, w, b"GET /api/nothing HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n\r\n" % cookie)
            assert head.startswith("HTTP/1.1 404") and json.loads(body)["error"] == "nothing at /api/nothing"
            head, body = await _exchange(r, w, b"POST /api/crm/move HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n"
                                         b"Content-Length: 2\r\n\r\n{}" % cookie)
            assert head.startswith("HTTP/1.1 403") and "CSRF" in json.loads(body)["error"]
            w.close()
            # the live stream: the status at once, then held open until the server stops
            stream_r, stream_w = await asyncio.open_connection("127.0.0.1", port)
            stream_w.write(b"GET /api/events HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n\r\n" % cookie)
            head = (await asyncio.wait_for(stream_r.readuntil(b"\r\n\r\n"), 30)).decode("latin-1")
            assert head.startswith("HTTP/1.1 200") and "Content-Type: text/event-stream" in head
            seen = b""
            while b"\n\n" not in seen.split(b"data: ", 1)[-1]:
                seen += await asyncio.wait_for(stream_r.read(4096), 30)
            data = json.loads(seen.split(b"data: ", 1)[1].split(b"\n", 1)[0])
            assert data["user"] == "alice" and data["can_change"] is False and "not connected" in data["errors"][0]
            assert len(app.streams) == 1
        finally:
            await app.end_streams()
            await asyncio.wait_for(runner.cleanup(), 30)   # the open stream does not hold the shutdown up
        assert not app.streams
        rest = await asyncio.wait_for(stream_r.read(), 30)   # returns: the connection was closed
        assert b"data:" not in rest, rest
        stream_w.close()

    asyncio.run(main())


def test_aiohttp_is_imported_only_in_hadaemon_web():
    """aiohttp stays in the console's package (as dbus-next stays in hadaemon/bus/dbusnext.py): the
    daemons, the cores and the CLI do not need it."""
    import ast
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[2] / "hadaemon"
    users = set()
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if any(n == "aiohttp" or n.startswith("aiohttp.") for n in names):
                users.add(path.relative_to(pkg).as_posix())
    assert users == {"web/app.py", "web/responses.py", "web/server.py"}, users


def test_tls_connections_count_against_the_bound_before_their_handshake(tmp_path, monkeypatch):
    """TLS (as ha-web always serves): a connection that never sends its ClientHello counts from the
    moment it is accepted; beyond the bound one more is closed at once, not after the handshake timeout."""
    import ssl

    from hadaemon.daemons.web import ensure_certificate, tls_context

    cert, key = ensure_certificate(str(tmp_path))
    monkeypatch.setattr(server, "HANDSHAKE_TIMEOUT", 300.0)   # the silent ones stay however slow the host
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE

    async def get(port):
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client), 30)
        try:
            return await _exchange(r, w, b"GET /login HTTP/1.1\r\nHost: t\r\n\r\n")
        finally:
            w.close()

    async def main():
        port = _free_port()
        app = _app()
        runner = await server.start(app, "127.0.0.1", port, tls_context(cert, key), max_connections=2)
        try:
            head, body = await get(port)   # served over TLS, handed to aiohttp after the handshake
            assert head.startswith("HTTP/1.1 200") and b'name="password"' in body
            for _ in range(300):   # the served connection closed on the server's side too
                if not runner.server.connections:
                    break
                await asyncio.sleep(0.1)
            # a burst of connections that send nothing (no ClientHello): two are held, the rest closed
            burst = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(8)))
            await asyncio.sleep(1.0)
            silent, extra = [], []
            for r, w in burst:
                try:
                    closed = await asyncio.wait_for(r.read(), 0.5) == b""
                except asyncio.TimeoutError:
                    closed = False
                (extra if closed else silent).append((r, w))
            assert len(silent) == 2, len(silent)
            extra += [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            for r, w in extra:   # beyond the bound: closed at once (long before the handshake timeout)
                assert await asyncio.wait_for(r.read(), 20) == b""
                w.close()
            try:   # a real client too finds no room while the two silent ones hold it
                await get(port)
                raise AssertionError("a third connection was served")
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            for _r, w in silent:
                w.close()
            for _ in range(300):   # the silent ones gone: served again
                try:
                    head, _ = await get(port)
                    break
                except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
                    await asyncio.sleep(0.1)
            assert head.startswith("HTTP/1.1 200")
        finally:
            await app.end_streams()
            await runner.cleanup()

    asyncio.run(main())
