"""systemd integration for daemons: sd_notify (READY/STATUS/WATCHDOG/RELOADING) and journald logging."""
import logging
import os
import socket
import sys

_JOURNAL_FIELDS = ("NODE", "LINK", "EVENT", "RESOURCE", "TRANSITION", "VIRTUAL", "REAL")


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET; a no-op when not run by systemd."""

    def __init__(self, address=None):
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock = None
        if self.address:
            if self.address.startswith("@"):
                self.address = "\0" + self.address[1:]
            # non-blocking: a daemon must never hang on a full notify socket (the message is dropped)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields) -> None:
        if not self._sock:
            return
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(payload, self.address)
        except OSError:
            pass

    def ready(self, status: str = "") -> None:
        if status:
            self.notify(ready=1, status=status)
        else:
            self.notify(ready=1)

    def status(self, text: str) -> None:
        self.notify(status=text)

    def reloading(self) -> None:
        self.notify(reloading=1)

    def watchdog(self) -> None:
        self.notify(watchdog=1)

    def stopping(self) -> None:
        self.notify(stopping=1)


def watchdog_interval() -> float:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or 0 when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return 0.0
    try:
        return int(usec) / 2e6
    except ValueError:
        return 0.0


class _StructuredStderr(logging.Formatter):
    def format(self, record):
        base = super().format(record)
        extra = " ".join(f"{f}={getattr(record, f)}" for f in _JOURNAL_FIELDS if hasattr(record, f))
        return f"{base} [{extra}]" if extra else base


def setup_logging(ident: str, debug: bool = False) -> logging.Logger:
    """Log to journald (with structured fields passed as `extra={'NODE': ...}`) when
    run by systemd, else plain lines on stderr."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = None
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER=ident)
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_StructuredStderr(f"%(asctime)s {ident}[%(process)d] %(levelname)s: %(message)s"))
    root.addHandler(handler)
    return logging.getLogger(ident)
