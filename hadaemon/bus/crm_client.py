"""A small asyncio client of org.hadaemon.Crm1 (for hactl): properties, status, method calls, signals.

    crm = await CrmClient.connect(timeout=5)   # raises CrmUnavailable (no bus / ha-crmd not running)
    status = await crm.status()                # the Status property, decoded from JSON
    epoch = await crm.call("MigrateResource", "ss", "webserver", "admin2")   # raises CrmError(kind, msg)
    crm.close()
"""
from __future__ import annotations

import asyncio
import json
from typing import Callable, List

from hadaemon.bus.dbusnext import DBusError, Message, MessageType, Variant, connect_system_bus

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "CrmClient", "CrmError", "CrmUnavailable"]

BUS_NAME = "org.hadaemon.Crm1"
OBJECT_PATH = "/org/hadaemon/Crm1"
INTERFACE = "org.hadaemon.Crm1"
ERROR_PREFIX = "org.hadaemon.Crm1.Error."
_UNAVAILABLE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")


class CrmError(RuntimeError):
    """A refused call: kind is the D-Bus error's last part (UnknownResource, UnknownNode, ...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class CrmUnavailable(CrmError):
    """No bus, or nobody owns org.hadaemon.Crm1."""

    def __init__(self, message: str):
        super().__init__("Unavailable", message)


def _plain(v):
    if isinstance(v, Variant):
        return _plain(v.value)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class CrmClient:
    def __init__(self, bus, timeout: float = 30.0):
        self.bus = bus
        self.timeout = timeout

    @classmethod
    async def connect(cls, timeout: float = 5.0, call_timeout: float = 60.0) -> CrmClient:
        try:
            bus = await asyncio.wait_for(connect_system_bus(), timeout)
        except (OSError, asyncio.TimeoutError, DBusError, ValueError) as exc:
            raise CrmUnavailable(f"cannot connect to the system bus: {exc or type(exc).__name__}") from None
        return cls(bus, call_timeout)

    def close(self) -> None:
        try:
            self.bus.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass

    async def _send(self, msg: Message, timeout: float | None = None):
        try:
            reply = await asyncio.wait_for(self.bus.call(msg), timeout or self.timeout)
        except asyncio.TimeoutError:
            raise CrmError("Timeout", f"{BUS_NAME} did not answer within {timeout or self.timeout:g}s") from None
        if reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            if reply.error_name in _UNAVAILABLE:
                raise CrmUnavailable(f"ha-crmd is not running ({BUS_NAME} is not on the bus)")
            if reply.error_name == "org.freedesktop.DBus.Error.AccessDenied":
                raise CrmError("AccessDenied", f"permission denied (root or group haclient may change the "
                                               f"cluster): {detail}")
            kind = reply.error_name[len(ERROR_PREFIX):] if reply.error_name.startswith(ERROR_PREFIX) \
                else reply.error_name
            raise CrmError(kind, detail or reply.error_name)
        return reply.body

    async def properties(self, timeout: float | None = None) -> dict:
        body = await self._send(Message(destination=BUS_NAME, path=OBJECT_PATH,
                                        interface="org.freedesktop.DBus.Properties", member="GetAll",
                                        signature="s", body=[INTERFACE]), timeout)
        return _plain(body[0])

    async def status(self, timeout: float | None = None) -> dict:
        props = await self.properties(timeout)
        try:
            status = json.loads(props.get("Status") or "{}")
        except ValueError:
            raise CrmError("Failed", "the Status property is not JSON") from None
        return status

    async def call(self, member: str, signature: str = "", *args) -> List:
        """Call a Crm1 method; returns the reply's body (a list)."""
        return _plain(await self._send(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                               member=member, signature=signature, body=list(args))))

    async def subscribe(self, callback: Callable[[str, list], None], interfaces=(INTERFACE,)) -> None:
        """callback(member, body) for every signal of these interfaces (e.g. for hactl status --watch)."""
        for iface in interfaces:
            await self._send(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                     interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                     body=[f"type='signal',interface='{iface}'"]))

        def handler(msg):
            if msg.message_type == MessageType.SIGNAL and msg.interface in interfaces:
                callback(msg.member, _plain(list(msg.body)))
            return None

        self.bus.add_message_handler(handler)
