"""IPVS backend: the kernel's IP Virtual Server table through generic netlink (pyroute2), not ipvsadm."""
from __future__ import annotations

import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List

from hadaemon.core.director.lvs_table import (
    DEFAULT_NETMASK, AddDest, AddService, DelDest, DelService, Destination, EditDest, EditService, Op,
    Service, Table, TableError, VirtualService, flag_bits, flag_names,
)
from hadaemon.io.lvs.base import Backend, BackendError

_PROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_PROTO_NAME = {v: k for k, v in _PROTO.items()}
_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_AF_NAME = {v: k for k, v in _AF.items()}
# IP_VS_CONN_F_* forwarding methods
_FWD = {"masq": 0, "ipip": 2, "gate": 3}
_FWD_NAME = {0: "masq", 1: "masq", 2: "ipip", 3: "gate"}   # 1 = LOCALNODE, shown as Local by ipvsadm
_F_PERSISTENT = 0x1
_FLAGS_MASK = 0xFFFFFFFF
DEFAULT_TIMEOUT = 300


class _Attrs:
    """What pyroute2's IPVS.service()/dest() expect: an object with dump_nla() and dump_key()."""

    def __init__(self, attrs, key_attrs=None):
        self.attrs, self.key_attrs = attrs, key_attrs if key_attrs is not None else attrs

    def dump_nla(self):
        return {"attrs": list(self.attrs)}

    def dump_key(self):
        return {"attrs": list(self.key_attrs)}


def _netmask_attr(svc: VirtualService) -> str:
    mask = svc.netmask or DEFAULT_NETMASK[svc.family]
    if svc.family == "inet6":  # the kernel keeps the IPv6 prefix length, host byte order, in that field
        return socket.inet_ntoa(int(mask).to_bytes(4, sys.byteorder))
    return mask


def service_attrs(svc: VirtualService) -> _Attrs:
    af = _AF[svc.family]
    if svc.protocol == "fwm":
        key = [("IPVS_SVC_ATTR_AF", af), ("IPVS_SVC_ATTR_FWMARK", svc.fwmark)]
    else:
        key = [("IPVS_SVC_ATTR_AF", af), ("IPVS_SVC_ATTR_PROTOCOL", _PROTO[svc.protocol]),
               ("IPVS_SVC_ATTR_ADDR", svc.address), ("IPVS_SVC_ATTR_PORT", svc.port)]
    flags = flag_bits(svc.flags) | (_F_PERSISTENT if svc.persistent is not None else 0)
    full = key + [
        ("IPVS_SVC_ATTR_SCHED_NAME", svc.scheduler),
        ("IPVS_SVC_ATTR_FLAGS", {"flags": flags, "mask": _FLAGS_MASK}),
        ("IPVS_SVC_ATTR_TIMEOUT", svc.persistent or 0),
        ("IPVS_SVC_ATTR_NETMASK", _netmask_attr(svc)),
    ]
    return _Attrs(full, key)


def dest_attrs(d: Destination) -> _Attrs:
    af = socket.AF_INET6 if ":" in d.address else socket.AF_INET
    return _Attrs([
        ("IPVS_DEST_ATTR_ADDR_FAMILY", af),
        ("IPVS_DEST_ATTR_ADDR", d.address),
        ("IPVS_DEST_ATTR_PORT", d.port),
        ("IPVS_DEST_ATTR_FWD_METHOD", _FWD[d.method]),
        ("IPVS_DEST_ATTR_WEIGHT", d.weight),
        ("IPVS_DEST_ATTR_U_THRESH", d.upper),
        ("IPVS_DEST_ATTR_L_THRESH", d.lower),
    ])


def _service_from_nla(nla) -> VirtualService:
    family = _AF_NAME[nla.get("IPVS_SVC_ATTR_AF")]
    sched = nla.get("IPVS_SVC_ATTR_SCHED_NAME")
    flags = nla.get("IPVS_SVC_ATTR_FLAGS")
    bits = flags["flags"] if flags is not None else 0
    persistent = nla.get("IPVS_SVC_ATTR_TIMEOUT") if bits & _F_PERSISTENT else None
    netmask = nla.get("IPVS_SVC_ATTR_NETMASK")
    if family == "inet6" and netmask is not None:
        netmask = str(int.from_bytes(socket.inet_aton(netmask), sys.byteorder))
    common = dict(scheduler=sched, persistent=persistent or (DEFAULT_TIMEOUT if persistent == 0 else None),
                  netmask=netmask, flags=flag_names(bits, sched))
    fwmark = nla.get("IPVS_SVC_ATTR_FWMARK")
    if fwmark:
        return VirtualService("fwm", fwmark=fwmark, family=family, **common)
    return VirtualService(_PROTO_NAME.get(nla.get("IPVS_SVC_ATTR_PROTOCOL"), "tcp"),
                          nla.get("IPVS_SVC_ATTR_ADDR"), nla.get("IPVS_SVC_ATTR_PORT"), **common)


def _dest_from_nla(nla) -> Destination:
    return Destination(nla.get("IPVS_DEST_ATTR_ADDR"), nla.get("IPVS_DEST_ATTR_PORT"),
                       _FWD_NAME.get(nla.get("IPVS_DEST_ATTR_FWD_METHOD") & 0x7, "masq"),
                       nla.get("IPVS_DEST_ATTR_WEIGHT"),
                       lower=nla.get("IPVS_DEST_ATTR_L_THRESH") or 0,
                       upper=nla.get("IPVS_DEST_ATTR_U_THRESH") or 0)


class IPVSBackend(Backend):
    """The kernel IPVS table over generic netlink. Sees (and can adopt) every service in the kernel."""

    name = "ipvs"

    def __init__(self):
        # pyroute2 0.9's synchronous objects run on an asyncio core tied to the thread that made them;
        # callers use whatever thread asyncio.to_thread picks, so every netlink call goes through one
        # thread of our own (calls from other threads were seen to hang or lose operations).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ipvs-netlink")
        try:
            self._ipvs, self._ident = self._thread.submit(self._open).result()
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    @staticmethod
    def _open():
        from pyroute2 import IPVS

        try:
            return IPVS(), threading.get_ident()
        except Exception as e:  # the IPVS genl family is missing: no ip_vs module
            raise BackendError(f"IPVS is not available in this kernel ({e}); try --backend nft") from e

    def _call(self, fn, *args):
        if threading.get_ident() == self._ident:
            return fn(*args)
        return self._thread.submit(fn, *args).result()

    @classmethod
    def unavailable(cls) -> str:
        try:
            from pyroute2 import IPVS

            IPVS().close()
            return ""
        except Exception as e:
            return f"IPVS is not available in this kernel ({e})"

    def read(self) -> Table:
        return self._call(self._read)

    def _read(self) -> Table:
        table: Table = {}
        for msg in self._ipvs.service("dump"):
            svc = _service_from_nla(msg.get("IPVS_CMD_ATTR_SERVICE"))
            dests: Dict[str, Destination] = {}
            for dmsg in self._ipvs.dest("dump", service=service_attrs(svc)):
                d = _dest_from_nla(dmsg.get("IPVS_CMD_ATTR_DEST"))
                dests[d.key] = d
            table[svc.key] = Service(svc, dests)
        return table

    def apply(self, ops: Iterable[Op]) -> None:
        self._call(self._apply, list(ops))

    def _apply(self, ops: List[Op]) -> None:
        for op in ops:
            try:
                self._apply_one(op)
            except (OSError, TableError) as e:
                raise BackendError(f"{type(op).__name__} {op.service.key}"
                                   + (f" {op.dest.key}" if hasattr(op, "dest") else "")
                                   + f": {e}", op) from e
            except Exception as e:  # pyroute2 raises NetlinkError (an OSError) mostly; be safe
                raise BackendError(f"{type(op).__name__} {op.service.key}: {e}", op) from e

    def _apply_one(self, op: Op) -> None:
        svc = service_attrs(op.service)
        if isinstance(op, AddService):
            self._ipvs.service("add", service=svc)
        elif isinstance(op, EditService):
            self._ipvs.service("set", service=svc)
        elif isinstance(op, DelService):
            self._ipvs.service("del", service=svc)
        elif isinstance(op, AddDest):
            self._ipvs.dest("add", service=svc, dest=dest_attrs(op.dest))
        elif isinstance(op, EditDest):
            self._ipvs.dest("set", service=svc, dest=dest_attrs(op.dest))
        elif isinstance(op, DelDest):
            self._ipvs.dest("del", service=svc, dest=dest_attrs(op.dest))
        else:  # pragma: no cover
            raise BackendError(f"unknown operation {op!r}", op)

    def close(self) -> None:
        try:
            self._call(self._ipvs.close)
        finally:
            self._thread.shutdown(wait=False)


def ops_summary(ops: List[Op]) -> str:
    """`3 ops: AddService tcp:10.0.0.1:80, ...` for logs."""
    return f"{len(ops)} ops: " + ", ".join(
        f"{type(o).__name__} {o.service.key}" + (f" {o.dest.key}" if hasattr(o, "dest") else "") for o in ops)
