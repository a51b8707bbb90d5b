"""ha-web's HTTPS server: the console's aiohttp application (hadaemon.web.app) behind TLS.

aiohttp does the HTTP: HTTP/1.1 parsing with bounded request lines, header fields and header counts
(400 with the reason beyond them), bodies up to app.MAX_BODY (413), chunked bodies, keep-alive with an
idle timeout, HEAD. What this module adds is a bound on the connections held open at once: one more is
closed at once (aiohttp has no such bound of its own).
"""
from __future__ import annotations

import asyncio
import logging
import ssl

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


class BoundedSite(web.BaseSite):
    """web.TCPSite with at most max_connections connections open at once."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 max_connections: int = MAX_CONNECTIONS):
        super().__init__(runner, ssl_context=ssl_context)
        self.host, self.port, self.max_connections = host, port, max_connections
        self.refused = 0

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host or '*'}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server

        def protocol():
            if len(server.connections) >= self.max_connections:
                self.refused += 1
                log.warning("too many connections (%d): one refused", self.max_connections,
                            extra={"EVENT": "connections"})
                return _Refused()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self.host or None, self.port, ssl=self._ssl_context, reuse_address=True,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self._ssl_context else None)


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
