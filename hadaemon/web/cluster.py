"""ha-web's view of the cluster: one D-Bus connection, Crm1 / Heartbeat1 / Director1 read on every
signal (coalesced) and now and then, the latest snapshot kept for the pages; method calls passed on.
ha-web holds no cluster state of its own: the snapshot is what the daemons said last."""
from __future__ import annotations

import asyncio
import json
import logging

from hadaemon.bus import crm_client
from hadaemon.bus.crm_client import CrmClient, CrmError, _plain
from hadaemon.bus.dbusnext import Message, MessageType, connect_system_bus

__all__ = ["Cluster", "HB", "DIRECTOR", "CallError"]

log = logging.getLogger("hadaemon.web")

HB = ("org.hadaemon.Heartbeat1", "/org/hadaemon/Heartbeat1", "org.hadaemon.Heartbeat1")
DIRECTOR = ("org.hadaemon.Director1", "/org/hadaemon/Director1", "org.hadaemon.Director1")
CRM = (crm_client.BUS_NAME, crm_client.OBJECT_PATH, crm_client.INTERFACE)
NAMES = {CRM[0]: "ha-crmd", HB[0]: "ha-heartbeat", DIRECTOR[0]: "ha-ldirectord"}
_GONE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")


class CallError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


class Cluster:
    def __init__(self, poll_interval: float = 10.0, coalesce: float = 0.2, call_timeout: float = 60.0):
        self.poll_interval = poll_interval
        self.coalesce = coalesce
        self.call_timeout = call_timeout
        self.bus = None
        self.snapshot: dict = {"crm": None, "heartbeat": None, "director": None,
                               "errors": ["not connected to the system bus yet"], "version": 0}
        self.changed = asyncio.Condition()
        self._kick = asyncio.Event()
        self._lost = asyncio.Event()

    # -- connection --------------------------------------------------------------------------------
    async def _connect(self) -> None:
        bus = await asyncio.wait_for(connect_system_bus(), 10)
        self._lost.clear()
        for rule in ([f"type='signal',interface='{x[2]}'" for x in (CRM, HB, DIRECTOR)] +
                     ["type='signal',interface='org.freedesktop.DBus.Properties'"] +
                     [f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{n}'"
                      for n in NAMES]):
            await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                   interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))

        def on_message(msg):
            if msg.message_type == MessageType.SIGNAL:
                self._kick.set()
            return None

        bus.add_message_handler(on_message)
        self.bus = bus

    def _close(self) -> None:
        if self.bus is not None:
            try:
                self.bus.disconnect()
            except Exception:  # noqa: BLE001
                pass
        self.bus = None

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected and keep the snapshot fresh until stop is set."""
        delay = 0.5
        while not stop.is_set():
            if self.bus is None:
                try:
                    await self._connect()
                    delay = 0.5
                    log.info("connected to the system bus", extra={"EVENT": "bus-connected"})
                except Exception as exc:  # noqa: BLE001 - no bus yet: say so and retry
                    await self._publish({"crm": None, "heartbeat": None, "director": None,
                                         "errors": [f"the system bus is not reachable: {exc or type(exc).__name__}"]})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
            self._kick.clear()  # a signal that comes while reading sets it again: read once more then
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001
                log.warning("refresh failed: %r", exc)
            waiter = asyncio.ensure_future(self._kick.wait())
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self.poll_interval)
            except asyncio.TimeoutError:
                pass
            finally:
                waiter.cancel()
            if self.bus is not None and not self.bus.connected:
                log.error("lost the system bus; reconnecting", extra={"EVENT": "bus-lost"})
                self._close()
            await asyncio.sleep(self.coalesce)  # gather a burst of signals into one refresh

    # -- reading -----------------------------------------------------------------------------------
    async def _get_all(self, target) -> dict | None:
        name, path, iface = target
        reply = await asyncio.wait_for(self.bus.call(Message(
            destination=name, path=path, interface="org.freedesktop.DBus.Properties", member="GetAll",
            signature="s", body=[iface])), 10)
        if reply.message_type == MessageType.ERROR:
            if reply.error_name in _GONE:
                raise CallError("Unavailable", f"{NAMES[name]} is not running ({name} is not on the bus)")
            raise CallError(reply.error_name, (reply.body or [reply.error_name])[0])
        return _plain(reply.body[0])

    async def refresh(self) -> None:
        if self.bus is None:
            return
        snap: dict = {"crm": None, "heartbeat": None, "director": None, "errors": []}
        for key, target in (("crm", CRM), ("heartbeat", HB), ("director", DIRECTOR)):
            try:
                props = await self._get_all(target)
            except CallError as exc:
                snap["errors"].append(exc.message)
                continue
            except asyncio.TimeoutError:
                snap["errors"].append(f"{NAMES[target[0]]} did not answer within 10 s")
                continue
            if key == "crm":
                try:
                    snap["crm"] = json.loads(props.get("Status") or "{}")
                except ValueError:
                    snap["errors"].append("ha-crmd's Status is not JSON")
            elif key == "heartbeat":
                snap["heartbeat"] = {
                    "local_node": props.get("LocalNode", ""), "epoch": props.get("Epoch", 0),
                    "members": props.get("Members", []),
                    "nodes": {n: {"state": v[0], "links": v[1]} for n, v in (props.get("Nodes") or {}).items()},
                    "drops": props.get("DropCounters", {})}
            else:
                snap["director"] = {
                    "backend": props.get("Backend", ""), "config": props.get("ConfigFile", ""),
                    "status": props.get("Status", ""),
                    "virtual_services": [dict(zip(("key", "protocol", "address", "port", "fwmark", "scheduler",
                                                   "persistent", "netmask", "checktype", "service"), v))
                                         for v in props.get("VirtualServices", [])],
                    "reals": [{"virtual": r[0], "real": r[1], "method": r[2], "health": r[3], "weight": r[4],
                               "configured": r[5], "last_ok": r[6], "detail": r[7],
                               "last_check": r[8], "overridden": r[9]}
                              for r in props.get("RealServers", [])]}
        await self._publish(snap)

    async def _publish(self, snap: dict) -> None:
        old = {k: v for k, v in self.snapshot.items() if k != "version"}
        if json.dumps(old, sort_keys=True) == json.dumps(snap, sort_keys=True):
            return
        snap["version"] = self.snapshot.get("version", 0) + 1
        self.snapshot = snap
        async with self.changed:
            self.changed.notify_all()

    async def wait_change(self, version: int, timeout: float) -> dict:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.snapshot["version"] != version), timeout)
            except asyncio.TimeoutError:
                pass
        return self.snapshot

    # -- calls -------------------------------------------------------------------------------------
    async def crm(self, member: str, signature: str = "", *args):
        if self.bus is None:
            raise CallError("Unavailable", "the system bus is not reachable")
        try:
            body = await CrmClient(self.bus, self.call_timeout).call(member, signature, *args)
        except CrmError as exc:
            raise CallError(exc.kind, exc.message) from None
        self._kick.set()
        return body

    async def director(self, member: str, signature: str = "", *args):
        if self.bus is None:
            raise CallError("Unavailable", "the system bus is not reachable")
        name, path, iface = DIRECTOR
        try:
            reply = await asyncio.wait_for(self.bus.call(Message(
                destination=name, path=path, interface=iface, member=member, signature=signature,
                body=list(args))), self.call_timeout)
        except asyncio.TimeoutError:
            raise CallError("Timeout", f"ha-ldirectord did not answer within {self.call_timeout:g}s") from None
        if reply.message_type == MessageType.ERROR:
            if reply.error_name in _GONE:
                raise CallError("Unavailable", "ha-ldirectord is not running (org.hadaemon.Director1 is not on "
                                               "the bus)")
            kind = reply.error_name.rsplit(".", 1)[-1]
            raise CallError(kind, (reply.body or [reply.error_name])[0])
        self._kick.set()
        return _plain(list(reply.body))
