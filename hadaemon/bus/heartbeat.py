"""org.hadaemon.Heartbeat1 on D-Bus: membership properties, Send/Broadcast methods and signals (thin)."""
# No `from __future__ import annotations` here: dbus-next reads the signature strings from annotations.
from typing import Dict, List, Tuple

from hadaemon.bus.dbusnext import DBusError, PropertyAccess, ServiceInterface, dbus_property, method, signal
from hadaemon.core.errors import BadRequest  # the backend raises it for refused requests (re-exported)

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "HeartbeatInterface", "BadRequest", "ERROR_PREFIX", "Export"]

BUS_NAME = "org.hadaemon.Heartbeat1"
OBJECT_PATH = "/org/hadaemon/Heartbeat1"
INTERFACE = "org.hadaemon.Heartbeat1"
ERROR_PREFIX = "org.hadaemon.Heartbeat1.Error."

MAX_CHANNEL = 64
MAX_BODY = 1 << 20
NODES_COALESCE = 0.05   # seconds: PropertiesChanged(Nodes) gathers the node/link changes of this window


def _check_channel(channel: str) -> None:
    if not channel or len(channel) > MAX_CHANNEL or not channel.isprintable() or " " in channel:
        raise DBusError(ERROR_PREFIX + "InvalidArgument",
                        f"channel must be 1..{MAX_CHANNEL} printable characters without spaces, got {channel!r}")


def _check_body(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise DBusError(ERROR_PREFIX + "InvalidArgument",
                        f"body is {len(body)} bytes; at most {MAX_BODY} bytes per message")


class HeartbeatInterface(ServiceInterface):
    """Exports a backend (the daemon) with: local_node, generation, epoch, members(), nodes_view()
    -> {node: (state, {link: status})}, drop_counters() -> {reason: count}, send(node, channel, body)
    -> id, broadcast(channel, body) -> id (raising BadRequest for refused requests)."""

    def __init__(self, backend):
        super().__init__(INTERFACE)
        self.backend = backend

    # -- properties ---------------------------------------------------------------------------------
    @dbus_property(access=PropertyAccess.READ)
    def LocalNode(self) -> "s":  # noqa: F821
        return self.backend.local_node

    @dbus_property(access=PropertyAccess.READ)
    def Generation(self) -> "t":  # noqa: F821
        return int(self.backend.generation)

    @dbus_property(access=PropertyAccess.READ)
    def Epoch(self) -> "t":  # noqa: F821
        return int(self.backend.epoch)

    @dbus_property(access=PropertyAccess.READ)
    def Members(self) -> "as":  # noqa: F722
        return list(self.backend.members())

    @dbus_property(access=PropertyAccess.READ)
    def Nodes(self) -> "a{s(sa{ss})}":  # noqa: F722
        return {n: [state, dict(links)] for n, (state, links) in self.backend.nodes_view().items()}

    @dbus_property(access=PropertyAccess.READ)
    def DropCounters(self) -> "a{st}":  # noqa: F722
        return {k: int(v) for k, v in self.backend.drop_counters().items()}

    # -- methods ------------------------------------------------------------------------------------
    @method()
    def Send(self, node: "s", channel: "s", body: "ay") -> "t":  # noqa: F821
        _check_channel(channel)
        _check_body(body)
        try:
            return int(self.backend.send(node, channel, bytes(body)))
        except BadRequest as exc:
            raise DBusError(ERROR_PREFIX + exc.kind, str(exc)) from None

    @method()
    def Broadcast(self, channel: "s", body: "ay") -> "t":  # noqa: F821
        _check_channel(channel)
        _check_body(body)
        try:
            return int(self.backend.broadcast(channel, bytes(body)))
        except BadRequest as exc:
            raise DBusError(ERROR_PREFIX + exc.kind, str(exc)) from None

    # -- signals (call the method to emit) ------------------------------------------------------------
    @signal()
    def NodeStateChanged(self, node: str, state: str) -> "ss":  # noqa: F821
        return [node, state]

    @signal()
    def LinkStatusChanged(self, node: str, link: str, status: str) -> "sss":  # noqa: F821
        return [node, link, status]

    @signal()
    def NodeRestarted(self, node: str, generation: int) -> "st":  # noqa: F821
        return [node, generation]

    @signal()
    def MembershipChanged(self, epoch: int, members: List[str]) -> "tas":  # noqa: F821
        return [epoch, list(members)]

    @signal()
    def MessageReceived(self, src: str, channel: str, body: bytes) -> "ssay":  # noqa: F821
        return [src, channel, body]

    @signal()
    def MessageUndeliverable(self, dst: str, channel: str, msg_id: int) -> "sst":  # noqa: F821
        return [dst, channel, msg_id]

    # -- helpers for the daemon ----------------------------------------------------------------------
    def properties_changed(self, names: Tuple[str, ...]) -> None:
        """Emit org.freedesktop.DBus.Properties.PropertiesChanged with the current values of names."""
        getters = {"Epoch": lambda: self.Epoch, "Members": lambda: self.Members, "Nodes": lambda: self.Nodes,
                   "DropCounters": lambda: self.DropCounters, "Generation": lambda: self.Generation}
        changed: Dict[str, object] = {}
        for name in names:
            if name in getters:
                changed[name] = getters[name]()
        if changed:
            self.emit_properties_changed(changed)


class Export:
    """The node's presence on the bus: connect, export the object, own BUS_NAME, forward node events
    as signals and PropertiesChanged. connect() again after a lost connection."""

    def __init__(self, node):
        self.node = node
        self.bus = None
        self.iface = None
        self._listener = None
        self._nodes_handle = None

    async def connect(self) -> None:
        from hadaemon.bus.dbusnext import export_owned

        iface = HeartbeatInterface(self.node)
        bus = await export_owned(OBJECT_PATH, iface, BUS_NAME)
        self.bus, self.iface = bus, iface
        self._listener = self._on_event
        self.node.listeners.append(self._listener)

    async def wait_for_disconnect(self):
        """Returns (or raises the connection's error) when the bus connection is gone."""
        return await self.bus.wait_for_disconnect()

    def _nodes_changed(self) -> None:
        """PropertiesChanged(Nodes) at most every NODES_COALESCE seconds: the whole table is marshalled each
        time (32 nodes: the costliest thing the daemon does), and a burst of state changes must not stall
        the loop that decides them. The signals themselves go out at once."""
        if self._nodes_handle is None:
            import asyncio

            self._nodes_handle = asyncio.get_event_loop().call_later(NODES_COALESCE, self._emit_nodes)

    def _emit_nodes(self) -> None:
        self._nodes_handle = None
        if self.iface is not None and self.bus and self.bus.connected:
            self.iface.properties_changed(("Nodes",))

    def close(self) -> None:
        if self._nodes_handle is not None:
            self._nodes_handle.cancel()
            self._nodes_handle = None
        if self._listener in self.node.listeners:
            self.node.listeners.remove(self._listener)
        self._listener = None
        if self.bus is not None:
            try:
                self.bus.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.bus = self.iface = None

    def _on_event(self, kind: str, *args) -> None:
        iface = self.iface
        if iface is None or not self.bus or not self.bus.connected:
            return
        if kind == "node":
            iface.NodeStateChanged(*args)
            self._nodes_changed()
        elif kind == "link":
            iface.LinkStatusChanged(*args)
            self._nodes_changed()
        elif kind == "restarted":
            iface.NodeRestarted(*args)
        elif kind == "membership":
            iface.MembershipChanged(*args)
            iface.properties_changed(("Epoch", "Members"))
        elif kind == "message":
            iface.MessageReceived(*args)
        elif kind == "undeliverable":
            iface.MessageUndeliverable(*args)
