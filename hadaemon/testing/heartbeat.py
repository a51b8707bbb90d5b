"""ha-heartbeat on a namespace Cluster: per-node ha.cf/authkeys, daemons, D-Bus views (tests, bench, demo)."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence

from hadaemon.testing.procs import Proc, run_cmd, wait_until

__all__ = ["HeartbeatCluster", "BusClient", "BUS_NAME", "OBJECT_PATH", "INTERFACE"]

BUS_NAME = "org.hadaemon.Heartbeat1"
OBJECT_PATH = "/org/hadaemon/Heartbeat1"
INTERFACE = "org.hadaemon.Heartbeat1"
DEFAULT_KEY = "1 sha256 hadaemon-test-secret-0123456789"


def _unvariant(v):
    """busctl --json=short values: variants are {"type": ..., "data": ...}."""
    if isinstance(v, dict) and set(v) == {"type", "data"}:
        return _unvariant(v["data"])
    if isinstance(v, dict):
        return {k: _unvariant(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unvariant(x) for x in v]
    return v


class HeartbeatCluster:
    """Writes configs for and runs ha-heartbeat on every node of a hadaemon.testing.netns.Cluster.

    media: "bcast" (bcast eth0 [eth1 ...]), "mcast" or "ucast"; links: number of links used (default
    all of the cluster's). Times are ha.cf strings ("100ms", "2"). dbus=False runs --no-dbus.
    """

    def __init__(self, cluster, keepalive: str = "100ms", deadtime: str = "500ms",
                 warntime: str | None = None, initdead: str | None = None, media: str = "bcast",
                 links: int | None = None, key: str = DEFAULT_KEY, udpport: int = 694,
                 extra: Sequence[str] = (), dbus: bool = True, nodes: Sequence[str] | None = None):
        self.c = cluster
        self.nodes = list(nodes or cluster.nodes)
        self.keepalive, self.deadtime, self.warntime, self.initdead = keepalive, deadtime, warntime, initdead
        self.media = media
        self.nlinks = links or cluster.links
        self.key = key
        self.udpport = udpport
        self.extra = list(extra)
        self.dbus = dbus
        self.procs: Dict[str, Proc] = {}
        self._starts: Dict[str, int] = {}

    # -- files --------------------------------------------------------------------------------------
    def dir(self, node: str) -> Path:
        d = self.c.workdir / "hb" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def hacf_text(self, node: str, **over) -> str:
        get = lambda k: over.get(k, getattr(self, k))  # noqa: E731
        lines = [f"keepalive {get('keepalive')}", f"deadtime {get('deadtime')}"]
        if get("warntime"):
            lines.append(f"warntime {get('warntime')}")
        if get("initdead"):
            lines.append(f"initdead {get('initdead')}")
        lines.append(f"udpport {get('udpport')}")
        ifaces = [f"eth{k}" for k in range(get("nlinks"))]
        media = get("media")
        if media == "bcast":
            lines.append("bcast " + " ".join(ifaces))
        elif media == "mcast":
            lines += [f"mcast {i} 239.0.0.{k + 1} {get('udpport')} 1 0" for k, i in enumerate(ifaces)]
        elif media == "ucast":
            for k, i in enumerate(ifaces):
                lines += [f"ucast {i} {self.c.addr(n, k)}" for n in self.nodes if n != node]
        lines += [f"node {n}" for n in self.nodes]
        lines += list(over.get("extra", self.extra))
        return "\n".join(lines) + "\n"

    def write_config(self, node: str, key: str | None = None, **over) -> Path:
        d = self.dir(node)
        (d / "ha.cf").write_text(self.hacf_text(node, **over))
        ak = d / "authkeys"
        ak.write_text(f"auth {(key or self.key).split()[0]}\n{key or self.key}\n")
        os.chmod(ak, 0o600)
        return d

    # -- daemons ------------------------------------------------------------------------------------
    def argv(self, node: str) -> List[str]:
        d = self.dir(node)
        argv = [sys.executable, "-m", "hadaemon.daemons.heartbeat", "--config", str(d / "ha.cf"),
                "--authkeys", str(d / "authkeys"), "--node", node, "--state-dir", str(d / "state")]
        if not self.dbus:
            argv.append("--no-dbus")
        return argv

    def start(self, node: str, key: str | None = None, **over) -> Proc:
        if not (self.dir(node) / "ha.cf").exists() or key or over:
            self.write_config(node, key=key, **over)
        env = self.c.dbus_env(node) if self.dbus else {}
        old = self.procs.get(node)
        self._starts[node] = old.output().count(" started: links ") if old else 0
        p = self.c.spawn(node, self.argv(node), env=env, name="ha-heartbeat")
        self.procs[node] = p
        return p

    def restart(self, node: str, kill9: bool = False) -> Proc:
        """Stop (SIGTERM, or SIGKILL with kill9) and start the node's daemon again with the same argv."""
        p = self.procs[node]
        self._starts[node] = p.output().count(" started: links ")
        if kill9:
            p.kill9()
        p.restart()
        return p

    def start_all(self, wait: bool = True) -> None:
        for n in self.nodes:
            self.start(n)
        if wait:
            for n in self.nodes:
                self.wait_started(n)

    def wait_started(self, node: str, timeout: float = 20) -> None:
        p = self.procs[node]
        starts = self._starts.get(node, 0)
        if self.dbus:
            wait_until(lambda: self.has_name(node) or not p.alive(), timeout,
                       message=f"{BUS_NAME} on {node}'s bus")
        else:
            wait_until(lambda: p.output().count(" started: links ") > starts or not p.alive(),
                       timeout, message=f"ha-heartbeat on {node} to start")
        if not p.alive():
            raise RuntimeError(f"ha-heartbeat on {node} exited:\n{p.output()[-3000:]}")

    # -- D-Bus views (busctl) -----------------------------------------------------------------------
    def busctl(self, node: str, *args: str, check: bool = True, timeout: float = 15):
        return run_cmd(["busctl", f"--address={self.c.dbus(node)}", *args], check=check, timeout=timeout)

    def has_name(self, node: str) -> bool:
        cp = self.busctl(node, "--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                         "org.freedesktop.DBus", "NameHasOwner", "s", BUS_NAME, check=False)
        return cp.returncode == 0 and json.loads(cp.stdout)["data"][0] is True

    def props(self, node: str) -> dict:
        cp = self.busctl(node, "--json=short", "call", BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties",
                         "GetAll", "s", INTERFACE)
        return _unvariant(json.loads(cp.stdout)["data"][0])

    def states(self, observer: str) -> Dict[str, str]:
        return {n: v[0] for n, v in self.props(observer)["Nodes"].items()}

    def links_of(self, observer: str, node: str) -> Dict[str, str]:
        return self.props(observer)["Nodes"][node][1]

    def wait_states(self, observer: str, want: Dict[str, str], timeout: float = 15) -> Dict[str, str]:
        last: Dict[str, Dict[str, str]] = {}

        def ok():
            last["s"] = self.states(observer)
            return all(last["s"].get(n) == s for n, s in want.items())
        try:
            wait_until(ok, timeout, interval=0.1, message=f"{observer} to see {want}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen {last.get('s')}") from None
        return last["s"]

    def wait_members(self, observers: Iterable[str], members: Sequence[str], timeout: float = 15) -> None:
        for o in observers:
            wait_until(lambda o=o: sorted(self.props(o)["Members"]) == sorted(members), timeout, interval=0.1,
                       message=f"{o} to see members {sorted(members)}")


class BusClient:
    """An asyncio org.hadaemon.Heartbeat1 client on one node's bus: calls and a signal queue."""

    def __init__(self, address: str):
        self.address = address
        self.bus = None
        self.handlers: List[Callable] = []

    async def connect(self) -> BusClient:
        from hadaemon.bus.dbusnext import MessageBus

        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.add_message_handler(self._on_message)
        await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                         [f"type='signal',sender='{BUS_NAME}',interface='{INTERFACE}'"])
        return self

    def _on_message(self, msg):
        from hadaemon.bus.dbusnext import MessageType

        if msg.message_type == MessageType.SIGNAL and msg.interface == INTERFACE:
            for h in list(self.handlers):
                h(msg.member, list(msg.body))
        return None

    def on_signal(self, fn: Callable) -> None:
        """fn(member, args) for each Heartbeat1 signal."""
        self.handlers.append(fn)

    async def _call(self, dest, path, iface, member, signature, body):
        from hadaemon.bus.dbusnext import Message, MessageType

        reply = await self.bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                            signature=signature, body=body))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
        return reply.body

    async def send(self, node: str, channel: str, body: bytes) -> int:
        return (await self._call(BUS_NAME, OBJECT_PATH, INTERFACE, "Send", "ssay", [node, channel, body]))[0]

    async def broadcast(self, channel: str, body: bytes) -> int:
        return (await self._call(BUS_NAME, OBJECT_PATH, INTERFACE, "Broadcast", "say", [channel, body]))[0]

    async def get(self, prop: str):
        body = await self._call(BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                                [INTERFACE, prop])
        return body[0].value

    def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


async def gather_bounded(coros, timeout: float):
    return await asyncio.wait_for(asyncio.gather(*coros), timeout)
