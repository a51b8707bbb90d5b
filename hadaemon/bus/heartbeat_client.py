"""A typed asyncio client of org.hadaemon.Heartbeat1 (properties, Send/Broadcast, signals as callbacks).

    hb = HeartbeatClient(on_membership=f, on_message=g)   # callbacks are plain functions
    await hb.connect()            # raises HeartbeatUnavailable (bus down, ha-heartbeat not running)
    hb.local_node, hb.members, hb.epoch, hb.nodes          # cached; refreshed on every signal
    await hb.send("node2", "crmd", b"...")                 # -> message id; raises HeartbeatError
    await hb.run(stop)            # stays connected: reconnects to the bus and follows ha-heartbeat
                                  # restarts (on_reconnect() is called after each, with fresh properties)

Callbacks: on_membership(epoch, members), on_node_state(node, state), on_message(src, channel, body),
on_undeliverable(dst, channel, msg_id), on_restarted(node, generation), on_reconnect(),
on_disconnect(). `snapshot()` is a one-shot read of every property (for hactl).
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "HeartbeatClient", "HeartbeatError",
           "HeartbeatUnavailable", "Snapshot", "snapshot"]

BUS_NAME = "org.hadaemon.Heartbeat1"
OBJECT_PATH = "/org/hadaemon/Heartbeat1"
INTERFACE = "org.hadaemon.Heartbeat1"
ERROR_PREFIX = "org.hadaemon.Heartbeat1.Error."

log = logging.getLogger("hadaemon.heartbeat-client")


class HeartbeatError(RuntimeError):
    """A refused call: kind is the D-Bus error's last part (UnknownNode, NodeDown, Busy, InvalidArgument...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class HeartbeatUnavailable(HeartbeatError):
    """No bus, or nobody owns org.hadaemon.Heartbeat1."""

    def __init__(self, message: str):
        super().__init__("Unavailable", message)


@dataclass(frozen=True)
class Snapshot:
    local_node: str
    generation: int
    epoch: int
    members: Tuple[str, ...]
    nodes: Dict[str, Tuple[str, Dict[str, str]]] = field(default_factory=dict)
    drop_counters: Dict[str, int] = field(default_factory=dict)


def _plain(v):
    if hasattr(v, "value") and hasattr(v, "signature"):  # Variant
        return _plain(v.value)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class HeartbeatClient:
    """One connection to the bus, talking to ha-heartbeat; see the module docstring."""

    def __init__(self, address: str | None = None, *,
                 on_membership: Callable[[int, Tuple[str, ...]], None] | None = None,
                 on_node_state: Callable[[str, str], None] | None = None,
                 on_message: Callable[[str, str, bytes], None] | None = None,
                 on_undeliverable: Callable[[str, str, int], None] | None = None,
                 on_restarted: Callable[[str, int], None] | None = None,
                 on_reconnect: Callable[[], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None):
        self.address = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        self.on_membership = on_membership
        self.on_node_state = on_node_state
        self.on_message = on_message
        self.on_undeliverable = on_undeliverable
        self.on_restarted = on_restarted
        self.on_reconnect = on_reconnect
        self.on_disconnect = on_disconnect
        self.bus = None
        self.owner = ""            # unique name of ha-heartbeat's connection
        self.local_node = ""
        self.generation = 0
        self.epoch = 0
        self.members: Tuple[str, ...] = ()
        self.nodes: Dict[str, Tuple[str, Dict[str, str]]] = {}
        self._owner_changed = asyncio.Event()

    # -- connection ---------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.bus is not None and self.bus.connected and bool(self.owner)

    async def connect(self) -> None:
        """Connect, subscribe to the signals and read every property (raises HeartbeatUnavailable)."""
        from hadaemon.bus.dbusnext import BusType, MessageBus

        self.close()
        try:
            if self.address:
                bus = await MessageBus(bus_address=self.address).connect()
            else:
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the bus
            raise HeartbeatUnavailable(f"cannot connect to the system bus: {exc}") from None
        self.bus = bus
        bus.add_message_handler(self._on_bus_message)
        try:
            for rule in (f"type='signal',sender='{BUS_NAME}',interface='{INTERFACE}',path='{OBJECT_PATH}'",
                         "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                         f"arg0='{BUS_NAME}'"):
                await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                 "AddMatch", "s", [rule])
            owner = await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "GetNameOwner", "s", [BUS_NAME])
            self.owner = owner[0]
            await self.refresh()
        except HeartbeatError as exc:
            self.close()
            raise HeartbeatUnavailable(f"ha-heartbeat is not on the bus ({exc.message})") from None

    def close(self) -> None:
        bus, self.bus, self.owner = self.bus, None, ""
        if bus is not None:
            try:
                bus.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass

    async def run(self, stop: asyncio.Event, max_delay: float = 2.0) -> None:
        """Stay connected until stop is set: reconnect after a lost bus or a restarted ha-heartbeat."""
        while not stop.is_set():
            if not self.connected:
                delay = 0.05
                while not stop.is_set():
                    try:
                        await self.connect()
                        break
                    except HeartbeatUnavailable as exc:
                        log.debug("heartbeat not available: %s", exc.message)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, max_delay)
                if stop.is_set():
                    return
                log.info("connected to ha-heartbeat: node %s, members %s", self.local_node,
                         " ".join(self.members), extra={"EVENT": "heartbeat-connected"})
                if self.on_reconnect:
                    self.on_reconnect()
            self._owner_changed.clear()
            bus = self.bus
            waiters = [asyncio.ensure_future(bus.wait_for_disconnect()),
                       asyncio.ensure_future(self._owner_changed.wait()),
                       asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
                for w in waiters:
                    try:
                        await w
                    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the disconnect error
                        pass
            if stop.is_set():
                return
            log.warning("lost ha-heartbeat (%s); reconnecting",
                        "owner changed" if self.bus is bus and bus.connected else "bus disconnected",
                        extra={"EVENT": "heartbeat-lost"})
            self.close()
            if self.on_disconnect:
                self.on_disconnect()

    # -- calls --------------------------------------------------------------------------------------
    async def _call(self, dest, path, iface, member, signature, body):
        from hadaemon.bus.dbusnext import Message, MessageType

        bus = self.bus
        if bus is None or not bus.connected:
            raise HeartbeatUnavailable("not connected to the bus")
        try:
            reply = await bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                           signature=signature, body=body))
        except Exception as exc:  # noqa: BLE001 - the connection broke during the call
            raise HeartbeatUnavailable(f"bus call {member} failed: {exc}") from None
        if reply.message_type == MessageType.ERROR:
            name = reply.error_name or ""
            text = reply.body[0] if reply.body else name
            if name.startswith(ERROR_PREFIX):
                raise HeartbeatError(name[len(ERROR_PREFIX):], text)
            if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
                        "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected"):
                raise HeartbeatUnavailable(text)
            raise HeartbeatError(name.rsplit(".", 1)[-1] or "Failed", text)
        return reply.body

    async def refresh(self) -> None:
        """Read every property again into the cached attributes."""
        body = await self._call(BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties", "GetAll", "s",
                                [INTERFACE])
        props = _plain(body[0])
        self.local_node = props.get("LocalNode", "")
        self.generation = int(props.get("Generation", 0))
        self.epoch = int(props.get("Epoch", 0))
        self.members = tuple(props.get("Members", ()))
        self.nodes = {n: (v[0], dict(v[1])) for n, v in props.get("Nodes", {}).items()}
        self._drops = {k: int(v) for k, v in props.get("DropCounters", {}).items()}

    def snapshot(self) -> Snapshot:
        return Snapshot(self.local_node, self.generation, self.epoch, self.members, dict(self.nodes),
                        dict(getattr(self, "_drops", {})))

    async def send(self, node: str, channel: str, body: bytes) -> int:
        """Reliable, ordered send to one peer; raises HeartbeatError (NodeDown, UnknownNode, Busy...)."""
        return int((await self._call(BUS_NAME, OBJECT_PATH, INTERFACE, "Send", "ssay",
                                     [node, channel, bytes(body)]))[0])

    async def broadcast(self, channel: str, body: bytes) -> int:
        """Send to every other member."""
        return int((await self._call(BUS_NAME, OBJECT_PATH, INTERFACE, "Broadcast", "say",
                                     [channel, bytes(body)]))[0])

    # -- signals ------------------------------------------------------------------------------------
    def _on_bus_message(self, msg):
        from hadaemon.bus.dbusnext import MessageType

        if msg.message_type != MessageType.SIGNAL:
            return None
        if msg.member == "NameOwnerChanged" and msg.interface == "org.freedesktop.DBus":
            name, _old, new = msg.body
            if name == BUS_NAME and new != self.owner:
                self.owner = new if new else self.owner
                self._owner_changed.set()
            return None
        if msg.interface != INTERFACE or (self.owner and msg.sender != self.owner):
            return None
        args = list(msg.body)
        try:
            self._dispatch(msg.member, args)
        except Exception:  # noqa: BLE001 - a callback's bug must not kill the connection
            log.exception("heartbeat signal %s: callback failed", msg.member)
        return None

    def _dispatch(self, member: str, args) -> None:
        if member == "MembershipChanged":
            self.epoch = int(args[0])
            self.members = tuple(args[1])
            if self.on_membership:
                self.on_membership(self.epoch, self.members)
        elif member == "NodeStateChanged":
            node, state = args
            links = self.nodes.get(node, ("", {}))[1]
            self.nodes[node] = (state, links)
            if self.on_node_state:
                self.on_node_state(node, state)
        elif member == "MessageReceived":
            if self.on_message:
                self.on_message(args[0], args[1], bytes(args[2]))
        elif member == "MessageUndeliverable":
            if self.on_undeliverable:
                self.on_undeliverable(args[0], args[1], int(args[2]))
        elif member == "NodeRestarted":
            if self.on_restarted:
                self.on_restarted(args[0], int(args[1]))
        elif member == "LinkStatusChanged":
            node, link, status = args
            state, links = self.nodes.get(node, ("", {}))
            links = dict(links)
            links[link] = status
            self.nodes[node] = (state, links)


async def snapshot(address: str | None = None, timeout: float = 5.0) -> Snapshot:
    """Connect, read every property once, disconnect (raises HeartbeatUnavailable)."""
    client = HeartbeatClient(address)
    try:
        await asyncio.wait_for(client.connect(), timeout)
        return client.snapshot()
    except asyncio.TimeoutError:
        raise HeartbeatUnavailable(f"no answer from {BUS_NAME} within {timeout:g} s") from None
    finally:
        client.close()
