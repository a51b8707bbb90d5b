"""A power switch for the namespace cluster: 'powering off' a node kills its processes and downs its links.

The harness runs one PowerSwitch per cluster (a thread in the test process, or `python -m
hadaemon.testing.power` standalone); the fence agent agents/fence_hadaemon talks to it, so fencing
in tests is a real, observable power-off rather than a stub.

Protocol (one request per connection, one line each way, ASCII):

    PING                -> "OK pong"
    LIST                -> "OK node1 node2 ..."
    STATUS NODE         -> "OK on" | "OK off"
    OFF NODE            -> "OK off"      (kills the node's processes, downs its links; idempotent)
    ON NODE             -> "OK on"       (brings the links up; runs the on-hook, e.g. restart daemons)
    anything else       -> "ERR message"

It listens on a unix stream socket (a path: reachable from every namespace that sees the file
system) and optionally on TCP (host, port) inside a namespace of the caller's choosing.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence

__all__ = ["PowerSwitch", "Outlet"]


def _ns_pids(netns: str) -> List[int]:
    cp = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=10)
    return [int(x) for x in cp.stdout.split() if x.isdigit()]


def _links(netns: str) -> List[str]:
    cp = subprocess.run(["ip", "-n", netns, "-o", "link", "show"], capture_output=True, text=True, timeout=10)
    out = []
    for line in cp.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name != "lo":
                out.append(name)
    return out


class Outlet:
    """One node on the switch: its network namespace, extra PIDs it was told about, hooks."""

    def __init__(self, name: str, netns: str, pids: Callable[[], Iterable[int]] | None = None,
                 on_hook: Callable[[str], None] | None = None):
        self.name = name
        self.netns = netns
        self.pids = pids or (lambda: ())
        self.on_hook = on_hook
        self.powered = True
        self.extra_pids: set = set()
        self.history: List[tuple] = []  # (wall time, action, monotonic time)


class PowerSwitch:
    """A unix-socket power switch. Use as a context manager or start()/close()."""

    def __init__(self, socket_path: str | Path, log: Callable[[str], None] | None = None):
        self.socket_path = str(socket_path)
        self.outlets: Dict[str, Outlet] = {}
        self.lock = threading.Lock()
        self.log = log or (lambda text: None)
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    # -- outlets ---------------------------------------------------------------------------------
    def add(self, name: str, netns: str, pids: Callable[[], Iterable[int]] | None = None,
            on_hook: Callable[[str], None] | None = None) -> Outlet:
        o = Outlet(name, netns, pids, on_hook)
        self.outlets[name] = o
        return o

    def tell_pid(self, name: str, pid: int) -> None:
        """Register a process of the node that may live outside its namespace."""
        self.outlets[name].extra_pids.add(int(pid))

    def off(self, name: str) -> None:
        o = self._outlet(name)
        with self.lock:
            o.history.append((time.time(), "off", time.monotonic()))
            # links first: from this moment the node cannot send anything, as with a cut power cord
            for link in _links(o.netns):
                subprocess.run(["ip", "-n", o.netns, "link", "set", link, "down"], capture_output=True, timeout=10)
            me = os.getpid()
            for _round in range(3):  # processes may fork while we kill: a few rounds
                pids = set(o.extra_pids) | set(o.pids()) | set(_ns_pids(o.netns))
                pids.discard(me)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.05)
            o.extra_pids.clear()
            o.powered = False
        self.log(f"power switch: {name} off")

    def on(self, name: str) -> None:
        o = self._outlet(name)
        with self.lock:
            was_on = o.powered
            o.history.append((time.time(), "on", time.monotonic()))
            for link in _links(o.netns):
                subprocess.run(["ip", "-n", o.netns, "link", "set", link, "up"], capture_output=True, timeout=10)
            o.powered = True
        self.log(f"power switch: {name} on" + (" (already on)" if was_on else ""))
        if o.on_hook is not None and not was_on:    # an outlet already on does not power-cycle its node
            o.on_hook(name)

    def status(self, name: str) -> str:
        return "on" if self._outlet(name).powered else "off"

    def _outlet(self, name: str) -> Outlet:
        o = self.outlets.get(name)
        if o is None:
            raise KeyError(f"no outlet named {name!r} (outlets: {' '.join(sorted(self.outlets)) or 'none'})")
        return o

    def offs(self, name: str) -> int:
        """How many times the node was powered off."""
        return sum(1 for h in self.outlets[name].history if h[1] == "off")

    # -- protocol --------------------------------------------------------------------------------
    def handle(self, line: str) -> str:
        words = line.strip().split()
        if not words:
            return "ERR empty request"
        cmd, args = words[0].upper(), words[1:]
        try:
            if cmd == "PING" and not args:
                return "OK pong"
            if cmd == "LIST" and not args:
                return "OK " + " ".join(sorted(self.outlets))
            if cmd in ("STATUS", "OFF", "ON") and len(args) == 1:
                if cmd == "OFF":
                    self.off(args[0])
                elif cmd == "ON":
                    self.on(args[0])
                return "OK " + self.status(args[0])
        except KeyError as exc:
            return f"ERR {exc.args[0]}"
        except Exception as exc:  # noqa: BLE001 - the switch answers, it never dies on a request
            return f"ERR {type(exc).__name__}: {exc}"
        return f"ERR unknown request {line.strip()[:80]!r} (PING, LIST, STATUS NODE, OFF NODE, ON NODE)"

    # -- server ----------------------------------------------------------------------------------
    def start(self) -> PowerSwitch:
        switch = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self):
                try:
                    line = self.rfile.readline(256).decode("ascii", "replace")
                except (OSError, socket.timeout):
                    return
                reply = switch.handle(line)
                try:
                    self.wfile.write((reply + "\n").encode())
                except OSError:
                    pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._server = Server(self.socket_path, Handler)
        os.chmod(self.socket_path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="power-switch", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> PowerSwitch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hadaemon.testing.power", description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True, help="unix socket path to listen on")
    ap.add_argument("outlets", nargs="+", metavar="NODE=NETNS", help="a node and its network namespace")
    args = ap.parse_args(argv)
    switch = PowerSwitch(args.socket, log=lambda t: print(t, flush=True))
    for spec in args.outlets:
        name, sep, ns = spec.partition("=")
        if not sep or not name or not ns:
            ap.error(f"{spec!r}: expected NODE=NETNS")
        switch.add(name, ns)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with switch:
        print(f"power switch listening on {args.socket}: {' '.join(switch.outlets)}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
