"""The one module that imports dbus-next; everything else takes D-Bus names from here."""
import os

from dbus_next import BusType, DBusError, Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

__all__ = [
    "BusType", "DBusError", "Message", "MessageType", "Variant", "MessageBus",
    "PropertyAccess", "ServiceInterface", "dbus_property", "method", "signal",
    "connect_system_bus",
]


async def connect_system_bus() -> MessageBus:
    """Connect to the system bus, or to the bus named by DBUS_SYSTEM_BUS_ADDRESS."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if address:
        return await MessageBus(bus_address=address).connect()
    return await MessageBus(bus_type=BusType.SYSTEM).connect()
