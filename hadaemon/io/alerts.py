"""Side effects ldirectord runs on health changes: email alerts (smtplib in a thread), fallbackcommand, callback,
monitorfile lines."""

from __future__ import annotations

import asyncio
import getpass
import logging
import smtplib
import socket
import subprocess
from concurrent.futures import Executor, ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Callable, Dict, List, Tuple

from hadaemon.core.director.debounce import RealDown, RealUp
from hadaemon.core.director.model import (
    STATUS_RELOADING, STATUS_RUNNING, STATUS_STARTING, STATUS_STOPPING, DirectorConfig, Virtual,
)

log = logging.getLogger("hadaemon.alerts")

STATUS_NAMES = {STATUS_STARTING: "starting", STATUS_RUNNING: "running",
                STATUS_STOPPING: "stopping", STATUS_RELOADING: "reloading"}
SMTP_TIMEOUT = 30.0
SENDMAIL = "/usr/sbin/sendmail"


def alert_subject(event, v: Virtual, weight: int) -> str:
    """The log line ldirectord mails for a real server change (its _remove/_restore_service texts)."""
    rkey = event.pair[1]
    if isinstance(event, RealDown):
        if v.quiescent:
            return f"Quiescent real server: {rkey} ({v.display}) (Weight set to 0)"
        return f"Deleted real server: {rkey} ({v.display})"
    verb = "Restored" if v.quiescent else "Added"
    return f"{verb} real server: {rkey} ({v.display}) (Weight set to {weight})"


def build_message(from_addr: str, to_addr: str, subject: str, hostname: str, status: str,
                  v: Virtual) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY.clone(max_line_length=998))
    msg["From"], msg["To"] = from_addr, to_addr
    msg["Subject"] = f"[{v.servicename}] {subject}" if v.servicename else subject
    body = f"ldirectord host: {hostname}\nLog-Message: {subject}\nDaemon-Status: {status}\n"
    extra = "".join(x for x in (f"Service name: {v.servicename}\n" if v.servicename else "",
                                f"Comment: {v.comment}\n" if v.comment else ""))
    if extra:
        body += f"\n{extra}\n"
    msg.set_content(body, cte="8bit")
    return msg


def send_message(msg: EmailMessage, smtp_server: str | None, timeout: float = SMTP_TIMEOUT) -> None:
    """Blocking: through the configured SMTP server, else the local sendmail (as Mail::Send)."""
    if smtp_server:
        host, _, port = smtp_server.partition(":")
        with smtplib.SMTP(host, int(port) if port.isdigit() else 25, timeout=timeout) as s:
            s.send_message(msg)
    else:
        subprocess.run([SENDMAIL, "-t", "-oi"], input=msg.as_bytes(), check=True, timeout=timeout)


class EmailAlerts:
    """ldirectord's emailalert: a mail per real server change, filtered by emailalertstatus, and while a
    real stays down a reminder ("Inaccessible real server") every emailalertfreq seconds. Mails go out
    from a worker thread; the event loop never waits for SMTP."""

    def __init__(self, config: DirectorConfig, hostname: str | None = None,
                 sender: Callable[[EmailMessage, str | None], None] = send_message,
                 executor: Executor | None = None):
        self.config = config
        self.hostname = hostname or socket.gethostname()
        self.sender = sender
        self.executor = executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="emailalert")
        self.pending: Dict[Tuple[str, str], float] = {}   # (virtual key, real key) -> last alert time
        self.failures = 0

    def update_config(self, config: DirectorConfig) -> None:
        self.config = config
        keys = {v.key for v in config.virtuals}
        self.pending = {k: t for k, t in self.pending.items() if k[0] in keys}

    def _from(self) -> str:
        if self.config.globals.emailalertfrom:
            return self.config.globals.emailalertfrom
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "root"
        return f"{user}@{self.hostname}"

    def send(self, v: Virtual, subject: str, daemon_status: int) -> asyncio.Future | None:
        """Queue one alert for virtual `v` if its emailalert / emailalertstatus say so."""
        to_addr = v.emailalert or self.config.globals.emailalert
        statusfilter = v.emailalertstatus if v.emailalertstatus is not None else self.config.globals.emailalertstatus
        if not to_addr or not daemon_status & statusfilter:
            return None
        msg = build_message(self._from(), to_addr, subject, self.hostname,
                            STATUS_NAMES.get(daemon_status, "UNKNOWN"), v)
        smtp = v.smtp or self.config.globals.smtp
        log.info("emailalert: %s", subject, extra={"VIRTUAL": v.key})
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.executor, self.sender, msg, smtp)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.failures += 1
            log.warning("failed to send email alert: %s", exc)

    def notify(self, event, now: float, daemon_status: int = STATUS_RUNNING) -> asyncio.Future | None:
        """Alert for a RealUp/RealDown event; a down real is remembered for reminders."""
        v = self._virtual(event.pair[0])
        if v is None or not isinstance(event, (RealUp, RealDown)):
            return None
        if not (v.emailalert or self.config.globals.emailalert):
            self.pending.pop(event.pair, None)
            return None          # no alerts for this virtual: nothing to look up (events come by thousands)
        real = next((r for r in v.reals if r.key == event.pair[1]), None)
        freq = v.emailalertfreq if v.emailalertfreq is not None else self.config.globals.emailalertfreq
        if isinstance(event, RealDown) and freq:
            self.pending[event.pair] = now
        else:
            self.pending.pop(event.pair, None)
        return self.send(v, alert_subject(event, v, real.weight if real else 1), daemon_status)

    def resend_due(self, now: float, daemon_status: int = STATUS_RUNNING) -> List[asyncio.Future]:
        """ldirectord's ld_emailalert_resend: reminders for reals still down after emailalertfreq."""
        out = []
        for pair, t in list(self.pending.items()):
            v = self._virtual(pair[0])
            if v is None:
                del self.pending[pair]
                continue
            freq = v.emailalertfreq if v.emailalertfreq is not None else self.config.globals.emailalertfreq
            if not freq or now - t < freq:
                continue
            self.pending[pair] = now
            fut = self.send(v, f"Inaccessible real server: {pair[1]} ({v.display})", daemon_status)
            if fut is not None:
                out.append(fut)
        return out

    def _virtual(self, key: str) -> Virtual | None:
        return self.config.virtual(key)


def append_lines(files: Dict[str, List[str]]) -> None:
    """Append lines to files (monitorfile=); a file that cannot be written is logged, not fatal."""
    for path, lines in files.items():
        try:
            with open(path, "a", encoding="utf-8", errors="replace") as f:
                f.writelines(lines)
        except OSError as e:
            log.error("cannot write to monitorfile %s: %s", path, e.strerror or e)


async def run_shell(command: str, timeout: float = 60.0) -> int:
    """Run a command line through /bin/sh like ldirectord's system(); returns its exit status
    (-1 when it had to be killed at the timeout)."""
    proc = await asyncio.create_subprocess_shell(
        command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        import os
        import signal
        try:
            os.killpg(proc.pid, signal.SIGKILL)    # the shell and whatever it started
        except ProcessLookupError:
            pass
        await proc.wait()
        log.warning("command timed out after %gs: %s", timeout, command)
        return -1
    if proc.returncode:
        log.warning("command failed (exit %s): %s: %s", proc.returncode, command,
                    err.decode(errors="replace").strip()[:200])
    return proc.returncode


async def run_fallback_command(effect, timeout: float = 60.0) -> int:
    """Run a table.RunCommand (fallbackcommand start|stop VIP:PORT PROTO)."""
    return await run_shell(effect.command, timeout)


async def run_callback(config: DirectorConfig, config_path: str, timeout: float = 60.0) -> int | None:
    """callback="...": run as `CALLBACK CONFIGFILE` after the file changed on disk (if executable)."""
    import os
    cb = config.globals.callback
    if not cb or not os.access(cb, os.X_OK):
        return None
    return await run_shell(f"{cb} {config_path}", timeout)
