"""The one module that imports dbus-next; everything else takes D-Bus names from here."""
import array
import logging
import os
import socket

from dbus_next import BusType, DBusError, Message, MessageType, Variant
from dbus_next._private.constants import LITTLE_ENDIAN, PROTOCOL_VERSION, HeaderField
from dbus_next._private.marshaller import Marshaller
from dbus_next.aio import MessageBus
from dbus_next.aio import message_bus as _aio_message_bus
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

__all__ = [
    "BusType", "DBusError", "Message", "MessageType", "Variant", "MessageBus",
    "PropertyAccess", "ServiceInterface", "dbus_property", "method", "signal",
    "connect_system_bus", "RefusedRequestsFilter", "marshal_body", "reply_with_body", "SignalEncoder", "send_raw",
    "export_owned", "quiet_refusals", "send_now", "set_send_buffer",
]


class RefusedRequestsFilter(logging.Filter):
    """dbus-next 0.2.3 sends the D-Bus error reply for a DBusError raised by a method or a property
    (an unknown node, a read-only property), then also logs it at ERROR with a traceback ("got
    unexpected error processing a message"). Those are answers to bad requests, not daemon errors:
    drop that duplicate log line, keep every other error."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("got unexpected error processing a message")
                    and "dbus_next.errors.DBusError" in msg)


# dbus-next logs through the root logger; every program that talks D-Bus imports this module.
if not any(type(f).__name__ == "RefusedRequestsFilter" for f in logging.getLogger().filters):
    logging.getLogger().addFilter(RefusedRequestsFilter())


async def connect_system_bus() -> MessageBus:
    """Connect to the system bus, or to the bus named by DBUS_SYSTEM_BUS_ADDRESS."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if address:
        return await MessageBus(bus_address=address).connect()
    return await MessageBus(bus_type=BusType.SYSTEM).connect()


def marshal_body(signature: str, body: list) -> bytes:
    """The little-endian wire form of a message body (what dbus-next would send for it)."""
    m = Marshaller(signature, body)
    m.marshall()
    return bytes(m.buffer)


class _RawBodyMessage(Message):
    """A message whose body is already marshalled (little-endian, starting 8-aligned): a large property
    value marshalled once and sent to every reader instead of once per read."""

    def __init__(self, raw_body: bytes, **kwargs):
        super().__init__(**kwargs)
        self._raw_body = raw_body

    def _marshall(self, negotiate_unix_fd=False):
        fields = []
        if self.reply_serial:
            fields.append([HeaderField.REPLY_SERIAL.value, Variant("u", self.reply_serial)])
        if self.destination:
            fields.append([HeaderField.DESTINATION.value, Variant("s", self.destination)])
        if self.signature:
            fields.append([HeaderField.SIGNATURE.value, Variant("g", self.signature)])
        header = Marshaller("yyyyuua(yv)", [LITTLE_ENDIAN, self.message_type.value, self.flags.value,
                                            PROTOCOL_VERSION, len(self._raw_body), self.serial, fields])
        header.marshall()
        header.align(8)
        return header.buffer + self._raw_body


class SignalEncoder:
    """Wire bytes of one signal (path, interface, member and signature fixed) for a body marshalled
    beforehand: the header is marshalled once, each message only gets its serial and body length.
    For signals sent by thousands a second, where dbus-next's per-message path costs ~50 us."""

    def __init__(self, path: str, interface: str, member: str, signature: str):
        fields = [[HeaderField.PATH.value, Variant("o", path)], [HeaderField.INTERFACE.value, Variant("s", interface)],
                  [HeaderField.MEMBER.value, Variant("s", member)],
                  [HeaderField.SIGNATURE.value, Variant("g", signature)]]
        header = Marshaller("yyyyuua(yv)", [LITTLE_ENDIAN, MessageType.SIGNAL.value, 0, PROTOCOL_VERSION, 0, 0,
                                            fields])
        header.marshall()
        header.align(8)
        self.header = bytes(header.buffer)

    def encode(self, serial: int, body: bytes) -> bytes:
        h = bytearray(self.header)
        h[4:12] = len(body).to_bytes(4, "little") + serial.to_bytes(4, "little")
        return bytes(h) + body


class _RawMessages:
    """Complete messages (serials in them) queued on a bus as one write."""

    __slots__ = ("serial", "unix_fds", "_data")

    def __init__(self, data: bytes):
        self.serial, self.unix_fds, self._data = -1, [], data

    def _marshall(self, negotiate_unix_fd=False):
        return self._data


def send_raw(bus: MessageBus, data: bytes):
    """Queue bytes made of complete messages (e.g. SignalEncoder.encode with bus.next_serial())."""
    return bus.send(_RawMessages(data))


def send_now(bus: MessageBus, msg) -> None:
    """Send `msg` and write what the socket takes at once, instead of on the next turn of the event loop
    (dbus-next writes only when the loop reports the socket writable: a reply then waits for everything
    else that loop turn runs). The rest, if any, is written when the socket is writable, in order."""
    bus.send(msg)
    writer = bus._writer
    if writer.buf is None and bus.unique_name:
        writer.write_callback()


def set_send_buffer(bus: MessageBus, size: int) -> int:
    """Let the bus socket's send buffer hold `size` bytes (SO_SNDBUFFORCE as root, else SO_SNDBUF up to
    net.core.wmem_max), so a large reply is handed to the kernel in one write instead of one write per
    turn of the event loop. Returns the buffer size the kernel granted."""
    sock = bus._sock
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def reply_with_body(call: Message, signature: str, raw_body: bytes) -> Message:
    """A METHOD_RETURN to `call` carrying a body marshalled beforehand (see marshal_body)."""
    return _RawBodyMessage(raw_body, message_type=MessageType.METHOD_RETURN, reply_serial=call.serial,
                           destination=call.sender, signature=signature)


def _write_callback(self):
    """dbus-next 0.2.3's _MessageWriter.write_callback, except that a full socket buffer
    (BlockingIOError from send on the non-blocking socket) waits for the socket to become writable
    again instead of tearing the whole connection down. Upstream treats EAGAIN as fatal, so a daemon
    emitting signals faster than the bus reads them loses its connection (seen with ha-heartbeat)."""
    try:
        while True:
            if self.buf is None:
                if self.messages.qsize() == 0:
                    self.loop.remove_writer(self.fd)
                    return
                buf, unix_fds, fut = self.messages.get_nowait()
                self.unix_fds = unix_fds
                self.buf = memoryview(buf)
                self.offset = 0
                self.fut = fut
            try:
                if self.unix_fds and self.negotiate_unix_fd:
                    ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", self.unix_fds))]
                    self.offset += self.sock.sendmsg([self.buf[self.offset:]], ancdata)
                    self.unix_fds = None
                else:
                    self.offset += self.sock.send(self.buf[self.offset:])
            except (BlockingIOError, InterruptedError):
                return  # the writer stays registered: called again when the socket is writable
            if self.offset >= len(self.buf):
                self.buf = None
                if self.fut is not None and not self.fut.done():
                    self.fut.set_result(None)
            else:
                return
    except Exception as e:  # noqa: BLE001 - same as upstream: a real error closes the connection
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(e)
        self.bus._finalize(e)


_aio_message_bus._MessageWriter.write_callback = _write_callback


async def export_owned(path: str, iface, name: str, bus=None):
    """Connect (unless given a bus), export iface at path and own name; RuntimeError when another
    process owns it. Returns the bus."""
    bus = bus or await connect_system_bus()
    bus.export(path, iface)
    reply = await bus.request_name(name)
    if getattr(reply, "name", str(reply)) not in ("PRIMARY_OWNER", "ALREADY_OWNER"):
        bus.disconnect()
        raise RuntimeError(f"{name} is already owned by another process ({getattr(reply, 'name', reply)})")
    return bus


def quiet_refusals(logger) -> None:
    """dbus-next 0.2.3 sends the error reply of an async method that raised DBusError, then lets the
    exception escape into the future's done callback, so the loop would log a traceback for every
    refused request. The caller got its error: log one line on logger instead (other exceptions as
    before). Installed once per loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if getattr(previous, "quiet_refusals", False):
        return

    def handler(loop_, context):
        exc = context.get("exception")
        if isinstance(exc, DBusError):
            logger.info("D-Bus request refused: %s: %s", exc.type, exc.text)
            return
        if previous is not None:
            previous(loop_, context)
        else:
            loop_.default_exception_handler(context)

    handler.quiet_refusals = True
    loop.set_exception_handler(handler)
