"""org.hadaemon.Director1 on D-Bus: virtual services, real servers with health, weight methods, reload (thin)."""
# No `from __future__ import annotations` here: dbus-next reads the signature strings from annotations.
from hadaemon.bus.dbusnext import DBusError, PropertyAccess, ServiceInterface, dbus_property, method, signal
from hadaemon.core.errors import BadRequest

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "ERROR_PREFIX", "DirectorInterface", "export"]

BUS_NAME = "org.hadaemon.Director1"
OBJECT_PATH = "/org/hadaemon/Director1"
INTERFACE = "org.hadaemon.Director1"
ERROR_PREFIX = "org.hadaemon.Director1.Error."
MAX_ARG = 256


def _check_arg(name: str, value: str) -> None:
    if not value or len(value) > MAX_ARG or not value.isprintable():
        raise DBusError(ERROR_PREFIX + "InvalidArgument",
                        f"{name} must be 1..{MAX_ARG} printable characters, got {value[:MAX_ARG]!r}")


class DirectorInterface(ServiceInterface):
    """Exports a hadaemon.daemons.director_runtime.Director."""

    def __init__(self, director):
        super().__init__(INTERFACE)
        self.director = director

    # -- properties ---------------------------------------------------------------------------------
    @dbus_property(access=PropertyAccess.READ)
    def Backend(self) -> "s":  # noqa: F821
        return self.director.backend.name

    @dbus_property(access=PropertyAccess.READ)
    def ConfigFile(self) -> "s":  # noqa: F821
        return self.director.config_path

    @dbus_property(access=PropertyAccess.READ)
    def Reloads(self) -> "u":  # noqa: F821
        return int(self.director.reloads)

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":  # noqa: F821
        return self.director.status_line()

    @dbus_property(access=PropertyAccess.READ)
    def VirtualServices(self) -> "a(sssqususss)":  # noqa: F722, F821
        return [list(r) for r in self.director.virtual_rows()]

    @dbus_property(access=PropertyAccess.READ)
    def RealServers(self) -> "a(ssssiibsdb)":  # noqa: F722, F821
        """(virtual, real, method, health, weight in the table (-1: absent), configured weight,
        last check ok, last check detail, last check time (unix seconds, 0: never), admin override)."""
        return [_real_row(r) for r in self.director.real_rows()]

    # -- methods ------------------------------------------------------------------------------------
    @method()
    async def SetWeight(self, virtual: "s", real: "s", weight: "u"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.set_weight(virtual, real, int(weight)))

    @method()
    async def Drain(self, virtual: "s", real: "s"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.set_weight(virtual, real, 0))

    @method()
    async def Restore(self, virtual: "s", real: "s"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.restore(virtual, real))

    @method()
    async def Reload(self):
        await self._call(self.director.reload())

    @method()
    def Listing(self) -> "s":  # noqa: F821
        return self.director.listing()

    async def _call(self, coro):
        try:
            await coro
        except BadRequest as exc:
            raise DBusError(ERROR_PREFIX + exc.kind, str(exc)) from None

    # -- signals ------------------------------------------------------------------------------------
    @signal()
    def RealServerChanged(self, virtual: str, real: str, state: str, weight: int) -> "sssi":  # noqa: F821
        return [virtual, real, state, weight]

    @signal()
    def Reloaded(self, config: str) -> "s":  # noqa: F821
        return config


def _real_row(r):
    skey, dkey, method_, health, weight, configured, last_ok, detail, last_time, overridden = r
    return [skey, dkey, method_, health, int(weight), int(configured), bool(last_ok), str(detail)[:512],
            float(last_time), bool(overridden)]


async def export(director, bus=None):
    """Connect to the system bus (or DBUS_SYSTEM_BUS_ADDRESS), export the director, own BUS_NAME."""
    from hadaemon.bus.dbusnext import connect_system_bus

    bus = bus or await connect_system_bus()
    iface = DirectorInterface(director)
    bus.export(OBJECT_PATH, iface)
    reply = await bus.request_name(BUS_NAME)
    if getattr(reply, "name", str(reply)) not in ("PRIMARY_OWNER", "ALREADY_OWNER"):
        bus.disconnect()
        raise RuntimeError(f"{BUS_NAME} is already owned by another process ({getattr(reply, 'name', reply)})")

    def on_event(kind, *args):
        if kind == "real":
            iface.RealServerChanged(*args)
            iface.emit_properties_changed({"RealServers": iface.RealServers, "Status": iface.Status})
        elif kind == "table":
            iface.emit_properties_changed({"RealServers": iface.RealServers})
        elif kind == "reload":
            iface.Reloaded(args[0])
            iface.emit_properties_changed({"VirtualServices": iface.VirtualServices,
                                           "RealServers": iface.RealServers, "Reloads": iface.Reloads})

    director.listeners.append(on_event)
    _quiet_refusals()
    return bus


def _quiet_refusals():
    """dbus-next 0.2.3 sends the error reply of an async method that raised DBusError, then lets the
    exception escape its done-callback, so the loop logs a traceback for every refused request
    (an unknown real, a bad weight). The caller got its error; log one line instead."""
    import asyncio
    import logging

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop_, context):
        exc = context.get("exception")
        if isinstance(exc, DBusError):
            logging.getLogger("ha-ldirectord").info("D-Bus request refused: %s: %s", exc.type, exc.text)
            return
        if previous is not None:
            previous(loop_, context)
        else:
            loop_.default_exception_handler(context)

    loop.set_exception_handler(handler)
