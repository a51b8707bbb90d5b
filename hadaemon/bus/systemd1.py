"""A small client of systemd's manager API (org.freedesktop.systemd1) for the LRM's systemd class:
load / start / stop / kill units, read their state, list service units, reload after a drop-in.

Plain method calls (no introspection), so it works the same against systemd and against a test's
fake service on a private bus.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Dict, List

from hadaemon.bus.dbusnext import DBusError, Message, MessageBus, MessageType, connect_system_bus

log = logging.getLogger("hadaemon.lrm.systemd")

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
PROPERTIES = "org.freedesktop.DBus.Properties"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"


class SystemdError(Exception):
    """A systemd call failed; .name is the D-Bus error name (e.g. org.freedesktop.systemd1.NoSuchUnit)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class Systemd1:
    """Client of org.freedesktop.systemd1 on one bus connection."""

    def __init__(self, bus: MessageBus, *, owned: bool = False):
        self.bus = bus
        self.owned = owned
        self._jobs: Dict[str, asyncio.Future] = {}    # job path -> future of its JobRemoved result
        self._early: Dict[str, str] = {}               # JobRemoved seen before StartUnit's reply
        self._subscribed = False
        bus.add_message_handler(self._on_message)

    @classmethod
    async def connect(cls, bus: MessageBus | None = None) -> Systemd1:
        """On the given bus, else on the bus systemd is on: $HADAEMON_SYSTEMD_BUS_ADDRESS, else the
        real system bus socket. DBUS_SYSTEM_BUS_ADDRESS is not used: in tests it names a private bus
        for hadaemon's own services, where no systemd answers."""
        if bus is not None:
            return cls(bus)
        address = os.environ.get("HADAEMON_SYSTEMD_BUS_ADDRESS")
        if not address and os.path.exists(SYSTEM_BUS_SOCKET):
            address = f"unix:path={SYSTEM_BUS_SOCKET}"
        if address:
            return cls(await MessageBus(bus_address=address).connect(), owned=True)
        return cls(await connect_system_bus(), owned=True)

    async def close(self) -> None:
        try:
            self.bus.remove_message_handler(self._on_message)
        except Exception:  # noqa: BLE001
            pass
        if self.owned:
            self.bus.disconnect()

    # ---- low level -----------------------------------------------------------------------
    async def _call(self, path: str, interface: str, member: str, signature: str = "", body: List[Any] | None = None,
                    destination: str = SYSTEMD):
        reply = await self.bus.call(Message(destination=destination, path=path, interface=interface,
                                            member=member, signature=signature, body=body or []))
        if reply is None:
            raise SystemdError("org.freedesktop.DBus.Error.NoReply", f"no reply to {member}")
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            raise SystemdError(reply.error_name or "", str(text))
        return reply.body

    async def _manager(self, member: str, signature: str = "", *args):
        return await self._call(MANAGER_PATH, MANAGER, member, signature, list(args))

    async def subscribe(self) -> None:
        """Receive JobRemoved signals (the match rule, and Manager.Subscribe as systemctl does)."""
        if self._subscribed:
            return
        rule = (f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',"
                "member='JobRemoved'")
        await self._call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", [rule],
                         destination="org.freedesktop.DBus")
        try:
            await self._manager("Subscribe")
        except SystemdError as e:
            # already subscribed by this connection is fine
            log.debug("Subscribe: %s", e)
        self._subscribed = True

    def _on_message(self, msg) -> None:
        if (msg.message_type == MessageType.SIGNAL and msg.member == "JobRemoved"
                and msg.interface == MANAGER and len(msg.body) >= 4):
            _id, job, _unit, result = msg.body[:4]
            fut = self._jobs.pop(job, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(result)
            else:
                self._early[job] = result
                if len(self._early) > 1000:   # results of jobs nobody waits for
                    self._early.pop(next(iter(self._early)))

    # ---- units -----------------------------------------------------------------------------
    async def load_unit(self, name: str) -> str:
        """The unit's object path (LoadUnit loads it if needed; LoadState tells whether it exists)."""
        (path,) = await self._manager("LoadUnit", "s", name)
        return path

    async def get_property(self, path: str, name: str, interface: str = UNIT):
        (variant,) = await self._call(path, PROPERTIES, "Get", "ss", [interface, name])
        return variant.value

    async def unit_state(self, name: str) -> Dict[str, str]:
        """LoadState, ActiveState, SubState and Description of a unit."""
        path = await self.load_unit(name)
        out = {}
        for prop in ("LoadState", "ActiveState", "SubState", "Description"):
            try:
                out[prop] = str(await self.get_property(path, prop))
            except SystemdError:
                out[prop] = ""
        return out

    async def unit_info(self, name: str) -> Dict[str, str] | None:
        """unit_state(), or None when the unit does not exist."""
        st = await self.unit_state(name)
        if st.get("LoadState") in ("not-found", ""):
            return None
        return st

    async def _job(self, member: str, name: str, timeout_s: float, mode: str = "replace") -> str:
        """Queue a start / stop job and wait for its JobRemoved result ("done", "failed", ...)."""
        await self.subscribe()
        loop = asyncio.get_running_loop()
        (job,) = await self._manager(member, "ss", name, mode)
        if job in self._early:
            return self._early.pop(job)
        fut = loop.create_future()
        self._jobs[job] = fut
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._jobs.pop(job, None)

    async def start_unit(self, name: str, timeout_s: float) -> str:
        return await self._job("StartUnit", name, timeout_s)

    async def stop_unit(self, name: str, timeout_s: float, mode: str = "replace") -> str:
        return await self._job("StopUnit", name, timeout_s, mode)

    async def kill_unit(self, name: str, signal: int, who: str = "all") -> None:
        await self._manager("KillUnit", "ssi", name, who, int(signal))

    async def reload(self) -> None:
        """daemon-reload (after writing a drop-in)."""
        await self._manager("Reload")

    async def list_services(self) -> List[str]:
        """Service units systemd knows (unit files and loaded units), without '.service', sorted;
        template units (name@.service) are left out."""
        names = set()
        try:
            (files,) = await self._manager("ListUnitFiles")
            for path, _state in files:
                base = os.path.basename(path)
                if base.endswith(".service") and not base.endswith("@.service"):
                    names.add(base[:-len(".service")])
        except SystemdError as e:
            log.debug("ListUnitFiles: %s", e)
        (units,) = await self._manager("ListUnits")
        for u in units:
            if u[0].endswith(".service") and not u[0].endswith("@.service"):
                names.add(u[0][:-len(".service")])
        return sorted(names)


__all__ = ["Systemd1", "SystemdError", "DBusError"]
