"""ha-web's HTTPS server: the console's aiohttp application (hadaemon.web.app) behind TLS.

aiohttp does the HTTP: HTTP/1.1 parsing with bounded request lines, header fields and header counts
(400 with the reason beyond them), bodies up to app.MAX_BODY (413), chunked bodies, keep-alive with an
idle timeout, HEAD. What this module adds is a bound on the connections held open at once: one more is
closed at once (aiohttp has no such bound of its own). A TLS connection counts from the moment it is
accepted: the handshake is done here (loop.start_tls) and the connection handed to aiohttp after it, so
connections that never finish a handshake cannot hold more than the bound open (asyncio's own TLS server
hands a connection to its protocol only after the handshake, and a bound counted there held any number).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import weakref

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hadaemon.web.app import App

__all__ = ["start", "MAX_CONNECTIONS", "KEEPALIVE_TIMEOUT"]

log = logging.getLogger("hadaemon.web")

MAX_CONNECTIONS = 512
KEEPALIVE_TIMEOUT = 75.0   # an idle keep-alive connection is closed after this (aiohttp 3.8's default)
HANDSHAKE_TIMEOUT = 30.0   # a TLS handshake not done by then: the connection is dropped


class _ClientMistakes(logging.Filter):
    """aiohttp logs a request it could not parse (the client's fault: a header line too long, a bad
    request line) as an error with a traceback; it is answered 400 with the reason, and logged here as
    one warning line (EVENT=bad-request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            text = record.getMessage()
            record.msg, record.args = "%s: %s (answered %d)", (text, (exc.message or "").strip()[:200], exc.code)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
            record.EVENT = "bad-request"
        return True


_CLIENT_MISTAKES = _ClientMistakes()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        transport.close()


class _Early(asyncio.Protocol):
    """What arrives between the end of the handshake and the hand-over to aiohttp's handler (asyncio
    reads on right after waking start_tls: a TLS 1.3 client's first request may already be here)."""

    def __init__(self) -> None:
        self.data: list = []
        self.eof = self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self):
        self.eof = True
        return True

    def connection_lost(self, exc) -> None:
        self.lost = True


class _Handshake(asyncio.Protocol):
    """An accepted TLS connection until its handshake is done (it counts against the bound meanwhile),
    then aiohttp's handler's."""

    def __init__(self, site: BoundedSite, server) -> None:
        self.site, self.server = site, server

    def connection_made(self, transport) -> None:
        # start_tls pauses reading before the first read can reach this protocol (pausing here would not
        # stop Python 3.9's first add_reader, and start_tls's own pause would then do nothing)
        task = asyncio.ensure_future(self._handshake(transport))
        self.site.tasks.add(task)
        task.add_done_callback(self.site.tasks.discard)

    async def _handshake(self, transport) -> None:
        if transport.is_closing():
            return
        early = _Early()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, early, self.site._ssl_context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failed handshake: start_tls has closed the connection
            log.debug("TLS handshake failed: %s", exc)
            return
        if early.lost:
            return
        handler = self.server()
        tls.set_protocol(handler)
        handler.connection_made(tls)
        for data in early.data:
            handler.data_received(data)
        if early.eof:
            handler.eof_received()


class BoundedSite(web.BaseSite):
    """web.TCPSite with at most max_connections connections open at once."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 max_connections: int = MAX_CONNECTIONS):
        super().__init__(runner, ssl_context=ssl_context)
        self.host, self.port, self.max_connections = host, port, max_connections
        self.refused = 0
        # the TLS connections accepted and not yet handed to aiohttp, counted from the protocol factory (a
        # burst of accepts calls it several times before any connection_made); weak: one whose transport
        # was never made, or whose handshake ended, is no longer counted
        self.handshakes: weakref.WeakSet = weakref.WeakSet()
        self.tasks: set = set()   # the handshakes' tasks (cancelled by stop())

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host or '*'}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server

        def protocol():
            if len(server.connections) + len(self.handshakes) >= self.max_connections:
                self.refused += 1
                log.warning("too many connections (%d): one refused", self.max_connections,
                            extra={"EVENT": "connections"})
                return _Refused()
            if self._ssl_context is None:
                return server()
            pending = _Handshake(self, server)
            self.handshakes.add(pending)
            return pending

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self.host or None, self.port, reuse_address=True)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await super().stop()


async def start(app: App, host: str, port: int, ssl_context: ssl.SSLContext | None,
                max_connections: int = MAX_CONNECTIONS) -> web.AppRunner:
    """The console listening on host:port (every address for ''); stop it with `await runner.cleanup()`
    after app.end_streams(). OSError when it cannot listen."""
    logging.getLogger("aiohttp.server").addFilter(_CLIENT_MISTAKES)   # (added once)
    runner = web.AppRunner(app.application(), access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT)
    await runner.setup()
    try:
        await BoundedSite(runner, host, port, ssl_context, max_connections).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
