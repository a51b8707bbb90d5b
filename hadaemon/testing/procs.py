"""Process helpers for the test harnesses: spawned processes with logs, bounded waits, checked commands."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

__all__ = ["CommandError", "HarnessError", "Proc", "run_cmd", "wait_until", "base_env"]


REPO_ROOT = str(Path(__file__).resolve().parents[2])


class HarnessError(RuntimeError):
    """A harness could not set something up (missing tool, no privileges, failed command)."""


class CommandError(subprocess.CalledProcessError):
    """A checked command failed; str() includes its stderr/stdout so test failures explain themselves."""

    def __str__(self) -> str:
        text = super().__str__()
        out = (self.stderr or "").strip() or (self.stdout or "").strip()
        if out:
            text += "\n" + out[-2000:]
        return text


def run_cmd(argv: Sequence[str], check: bool = True, timeout: float = 30, input: str | None = None,
            env: Dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run argv, capture text output; with check=True raise CommandError (with stderr) on failure."""
    try:
        cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    except FileNotFoundError as exc:
        raise HarnessError(f"{argv[0]}: command not found ({exc})") from None
    if check and cp.returncode != 0:
        raise CommandError(cp.returncode, list(argv), cp.stdout, cp.stderr)
    return cp


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll predicate until it returns a truthy value (returned) or raise TimeoutError after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


def base_env(extra: Dict[str, str] | None = None) -> Dict[str, str]:
    """os.environ with the venv's bin first on PATH, unbuffered Python output, plus extra."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if bindir not in path.split(os.pathsep):
        path = bindir + os.pathsep + path
    for d in ("/usr/sbin", "/sbin"):
        if d not in path.split(os.pathsep):
            path += os.pathsep + d
    env["PATH"] = path
    env["PYTHONUNBUFFERED"] = "1"
    # spawned Python processes import this checkout's hadaemon, installed in the venv or not
    pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if REPO_ROOT not in pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + pythonpath)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


TOKEN_VAR = "HADAEMON_PROC_TOKEN"
_tokens = itertools.count()


def kill_marked(token: str, sig: int = signal.SIGKILL) -> List[int]:
    """Signal every process whose environment carries TOKEN_VAR=token (a Proc's descendants)."""
    needle = f"{TOKEN_VAR}={token}".encode() + b"\0"
    hit = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read() + b"\0":
                    continue
            os.kill(int(entry), sig)
            hit.append(int(entry))
        except (OSError, ValueError):
            continue
    return hit


def kill_orphans(sig: int = signal.SIGKILL) -> List[int]:
    """Signal processes spawned by a Proc of a test process that no longer runs (crashed runs)."""
    needle = f"{TOKEN_VAR}=".encode()
    hit = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            tokens = [v[len(needle):].decode() for v in env if v.startswith(needle)]
            if tokens and not pid_alive(int(tokens[0].split(".")[0])):
                os.kill(int(entry), sig)
                hit.append(int(entry))
        except (OSError, ValueError):
            continue
    return hit


class Proc:
    """A process started in its own session (process group = pid), output appended to a log file.

    kill9()/stop()/cont() signal the process itself (like `kill -9 PID`); terminate() and cleanup
    also kill what it left behind: its process group while the leader is not yet reaped (so the id
    cannot have been reused), then every process carrying its token in the environment.
    """

    def __init__(self, argv: Sequence[str], log_path: Path, env: Dict[str, str] | None = None,
                 netns: str | None = None, name: str = "", cwd: str | None = None):
        self.argv: List[str] = [str(a) for a in argv]
        self.env = env
        self.netns = netns
        self.name = name or os.path.basename(self.argv[0])
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.starts = 0
        self.token = f"{os.getpid()}.{next(_tokens)}"
        self._start()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _full_argv(self) -> List[str]:
        if self.netns:
            return ["ip", "netns", "exec", self.netns] + self.argv
        return list(self.argv)

    def _start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            if self.starts > 1:
                log.write(f"\n----- restart #{self.starts - 1} -----\n".encode())
                log.flush()
            try:
                self.popen = subprocess.Popen(
                    self._full_argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=dict(self.env if self.env is not None else base_env(), **{TOKEN_VAR: self.token}),
                    cwd=self.cwd,
                    start_new_session=True, close_fds=True)
            except FileNotFoundError as exc:
                raise HarnessError(f"cannot start {self.argv[0]}: {exc}") from None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self) -> None:
        """SIGKILL the process (not its children), then reap it."""
        self.signal(signal.SIGKILL)
        self.wait(5)

    def stop(self) -> None:
        """SIGSTOP: the process freezes but stays alive (a hung daemon)."""
        self.signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float = 10) -> int | None:
        """Wait up to timeout s for exit; returns the exit code or None if still running."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float = 5) -> int | None:
        """SIGTERM (and SIGCONT in case it is stopped); after timeout s SIGKILL the group; then kill
        any descendant still carrying this Proc's token."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)
            if self.wait(timeout) is None:
                self._killpg(signal.SIGKILL)  # leader not reaped yet: the group id is still ours
                self.wait(5)
        kill_marked(self.token)
        return self.returncode

    def restart(self, timeout: float = 5) -> None:
        """Stop it if running, then start the same argv/env again (new pid, same log file)."""
        self.terminate(timeout)
        self._start()

    # -- output ------------------------------------------------------------------------------------
    def output(self) -> str:
        """Everything it wrote to stdout/stderr so far (all runs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_output(self, text: str, timeout: float = 10) -> str:
        """Wait until text appears in the output (raises TimeoutError with the log tail)."""
        try:
            wait_until(lambda: text in self.output(), timeout, message=f"{text!r} in {self.name} output")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; exit={self.returncode}; log tail:\n{self.output()[-2000:]}") from None
        return self.output()

    def __repr__(self) -> str:
        state = "alive" if self.alive() else f"exit={self.returncode}"
        where = f" in {self.netns}" if self.netns else ""
        return f"<Proc {self.name} pid={self.popen.pid if self.popen else None}{where} {state}>"
