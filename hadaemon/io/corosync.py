"""ctypes bindings of Corosync 3's client libraries: libcpg (process groups), libquorum, libcmap.

ctypes rather than cffi: nothing to compile and no new dependency; the few structures used here are
fixed in Corosync's public headers (corosync/cpg.h, quorum.h, cmap.h, corotypes.h) and have been the same
since Corosync 2 (Debian: libcpg4, libquorum5, libcmap4; RHEL: corosynclib). Every call goes through the
library's IPC to the local corosync (libqb: abstract unix sockets, so a network namespace sees its own
corosync).

Each class wraps one handle; `fd()` is pollable and `dispatch()` runs the callbacks of whatever is
queued (CS_DISPATCH_ALL, non-blocking), so an asyncio loop drives them with `add_reader`. Errors raise
CorosyncError with the cs_error_t name.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable, Dict, List, Tuple

__all__ = ["CorosyncError", "Cpg", "Quorum", "Cmap", "available", "CS_ERR_TRY_AGAIN", "MAX_GROUP_NAME"]

CS_OK = 1
CS_ERR_TRY_AGAIN = 6
CS_ERR_NOT_EXIST = 12
_CS_ERRORS = {
    1: "CS_OK", 2: "CS_ERR_LIBRARY", 3: "CS_ERR_VERSION", 4: "CS_ERR_INIT", 5: "CS_ERR_TIMEOUT",
    6: "CS_ERR_TRY_AGAIN", 7: "CS_ERR_INVALID_PARAM", 8: "CS_ERR_NO_MEMORY", 9: "CS_ERR_BAD_HANDLE",
    10: "CS_ERR_BUSY", 11: "CS_ERR_ACCESS", 12: "CS_ERR_NOT_EXIST", 13: "CS_ERR_NAME_TOO_LONG",
    14: "CS_ERR_EXIST", 15: "CS_ERR_NO_SPACE", 16: "CS_ERR_INTERRUPT", 17: "CS_ERR_NAME_NOT_FOUND",
    18: "CS_ERR_NO_RESOURCES", 19: "CS_ERR_NOT_SUPPORTED", 20: "CS_ERR_BAD_OPERATION",
    21: "CS_ERR_FAILED_OPERATION", 22: "CS_ERR_MESSAGE_ERROR", 23: "CS_ERR_QUEUE_FULL",
    24: "CS_ERR_QUEUE_NOT_AVAILABLE", 25: "CS_ERR_BAD_FLAGS", 26: "CS_ERR_TOO_BIG", 27: "CS_ERR_NO_SECTIONS",
    28: "CS_ERR_CONTEXT_NOT_FOUND", 30: "CS_ERR_TOO_MANY_GROUPS", 100: "CS_ERR_SECURITY",
}
CS_DISPATCH_ALL = 2
CS_TRACK_CURRENT, CS_TRACK_CHANGES = 0x01, 0x02
CPG_TYPE_AGREED = 2
CMAP_MAP_DEFAULT, CMAP_MAP_STATS = 0, 1
MAX_GROUP_NAME = 128       # CPG_MAX_NAME_LENGTH


class CorosyncError(Exception):
    """A libcpg/libquorum/libcmap call failed; `code` is the cs_error_t value."""

    def __init__(self, call: str, code: int):
        super().__init__(f"{call}: {_CS_ERRORS.get(code, code)}")
        self.call = call
        self.code = code


def _load(name: str, soname: str):
    path = ctypes.util.find_library(name) or soname
    try:
        return ctypes.CDLL(path, use_errno=True)
    except OSError:
        return None


_cpg = _load("cpg", "libcpg.so.4")
_quorum = _load("quorum", "libquorum.so.5")
_cmap = _load("cmap", "libcmap.so.4")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def available() -> str | None:
    """None when the three libraries load, else which one is missing (e.g. install libcpg4)."""
    for lib, pkg in ((_cpg, "libcpg4"), (_quorum, "libquorum5"), (_cmap, "libcmap4")):
        if lib is None:
            return f"{pkg} is not installed (Corosync's client library)"
    return None


def _check(call: str, rc: int) -> None:
    if rc != CS_OK:
        raise CorosyncError(call, rc)


# -- libcpg ---------------------------------------------------------------------------------------------
class CpgName(ctypes.Structure):
    _fields_ = [("length", ctypes.c_uint32), ("value", ctypes.c_char * MAX_GROUP_NAME)]


class CpgAddress(ctypes.Structure):
    _fields_ = [("nodeid", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("reason", ctypes.c_uint32)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_DELIVER = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName), ctypes.c_uint32, ctypes.c_uint32,
                            ctypes.c_void_p, ctypes.c_size_t)
_CONFCHG = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName),
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t)


class _CpgCallbacks(ctypes.Structure):
    _fields_ = [("deliver", _DELIVER), ("confchg", _CONFCHG)]


Member = Tuple[int, int]            # (nodeid, pid)
Confchg = Tuple[List[Member], List[Tuple[int, int, int]], List[Tuple[int, int, int]]]   # members, left, joined


def _addresses(ptr, n: int) -> List[Tuple[int, int, int]]:
    return [(ptr[i].nodeid, ptr[i].pid, ptr[i].reason) for i in range(n)]


class Cpg:
    """One CPG handle joined to one group.

    on_message(nodeid, pid, bytes) for every message delivered to the group (in agreed order, our own
    included); on_confchg(members [(nodeid, pid)], left [(nodeid, pid, reason)], joined [...]).
    """

    def __init__(self, group: str, on_message: Callable[[int, int, bytes], None],
                 on_confchg: Callable[[List[Member], list, list], None]):
        if _cpg is None:
            raise CorosyncError("cpg_initialize (libcpg4 not installed)", 2)
        raw = group.encode()
        if not raw or len(raw) > MAX_GROUP_NAME:
            raise ValueError(f"CPG group name must be 1..{MAX_GROUP_NAME} bytes")
        self.group = CpgName(len(raw), raw)
        self._on_message, self._on_confchg = on_message, on_confchg
        # the callbacks must stay referenced as long as the handle lives
        self._callbacks = _CpgCallbacks(_DELIVER(self._deliver), _CONFCHG(self._confchg))
        self.handle = ctypes.c_uint64(0)
        self.error: BaseException | None = None    # an exception raised by a callback (re-raised by dispatch)
        _check("cpg_initialize", _cpg.cpg_initialize(ctypes.byref(self.handle), ctypes.byref(self._callbacks)))

    def _deliver(self, handle, group, nodeid, pid, msg, length) -> None:
        try:
            self._on_message(nodeid, pid, ctypes.string_at(msg, length))
        except BaseException as exc:  # noqa: BLE001 - never unwind through C; re-raised after dispatch
            self.error = self.error or exc

    def _confchg(self, handle, group, members, nmembers, left, nleft, joined, njoined) -> None:
        try:
            self._on_confchg([(m[0], m[1]) for m in _addresses(members, nmembers)],
                             _addresses(left, nleft), _addresses(joined, njoined))
        except BaseException as exc:  # noqa: BLE001
            self.error = self.error or exc

    def join(self) -> None:
        _check("cpg_join", _cpg.cpg_join(self.handle, ctypes.byref(self.group)))

    def fd(self) -> int:
        fd = ctypes.c_int(-1)
        _check("cpg_fd_get", _cpg.cpg_fd_get(self.handle, ctypes.byref(fd)))
        return fd.value

    def dispatch(self) -> None:
        rc = _cpg.cpg_dispatch(self.handle, CS_DISPATCH_ALL)
        err, self.error = self.error, None
        if err is not None:
            raise err
        if rc not in (CS_OK, CS_ERR_TRY_AGAIN):
            raise CorosyncError("cpg_dispatch", rc)

    def local_nodeid(self) -> int:
        nodeid = ctypes.c_uint(0)
        _check("cpg_local_get", _cpg.cpg_local_get(self.handle, ctypes.byref(nodeid)))
        return nodeid.value

    def mcast(self, data: bytes) -> int:
        """Send `data` to the group in agreed order: CS_OK, or CS_ERR_TRY_AGAIN (flow control: retry later);
        other errors raise."""
        buf = ctypes.create_string_buffer(data, len(data))
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
        rc = _cpg.cpg_mcast_joined(self.handle, CPG_TYPE_AGREED, ctypes.byref(iov), 1)
        if rc not in (CS_OK, CS_ERR_TRY_AGAIN):
            raise CorosyncError("cpg_mcast_joined", rc)
        return rc

    def finalize(self) -> None:
        if self.handle.value:
            _cpg.cpg_finalize(self.handle)
            self.handle = ctypes.c_uint64(0)


_cpg_types = (
    ("cpg_initialize", [ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(_CpgCallbacks)]),
    ("cpg_join", [ctypes.c_uint64, ctypes.POINTER(CpgName)]),
    ("cpg_fd_get", [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int)]),
    ("cpg_dispatch", [ctypes.c_uint64, ctypes.c_int]),
    ("cpg_local_get", [ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint)]),
    ("cpg_mcast_joined", [ctypes.c_uint64, ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_uint]),
    ("cpg_finalize", [ctypes.c_uint64]),
)


# -- libquorum --------------------------------------------------------------------------------------------
_QUORUM_NOTIFY = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32,
                                  ctypes.POINTER(ctypes.c_uint32))


class _QuorumCallbacks(ctypes.Structure):
    _fields_ = [("notify", _QUORUM_NOTIFY)]


class Quorum:
    """votequorum through libquorum: on_change(quorate, ring_seq, [nodeid ...]) at start and every change."""

    def __init__(self, on_change: Callable[[bool, int, List[int]], None]):
        if _quorum is None:
            raise CorosyncError("quorum_initialize (libquorum5 not installed)", 2)
        self._on_change = on_change
        self._callbacks = _QuorumCallbacks(_QUORUM_NOTIFY(self._notify))
        self.handle = ctypes.c_uint64(0)
        self.error: BaseException | None = None
        qtype = ctypes.c_uint32(0)
        _check("quorum_initialize", _quorum.quorum_initialize(ctypes.byref(self.handle),
                                                              ctypes.byref(self._callbacks), ctypes.byref(qtype)))
        self.quorum_type = qtype.value   # 1: a quorum provider (votequorum) is configured

    def _notify(self, handle, quorate, ring_seq, n, view) -> None:
        try:
            self._on_change(bool(quorate), int(ring_seq), [view[i] for i in range(n)])
        except BaseException as exc:  # noqa: BLE001
            self.error = self.error or exc

    def track(self) -> None:
        _check("quorum_trackstart", _quorum.quorum_trackstart(self.handle, CS_TRACK_CURRENT | CS_TRACK_CHANGES))

    def quorate(self) -> bool:
        q = ctypes.c_int(0)
        _check("quorum_getquorate", _quorum.quorum_getquorate(self.handle, ctypes.byref(q)))
        return bool(q.value)

    def fd(self) -> int:
        fd = ctypes.c_int(-1)
        _check("quorum_fd_get", _quorum.quorum_fd_get(self.handle, ctypes.byref(fd)))
        return fd.value

    def dispatch(self) -> None:
        rc = _quorum.quorum_dispatch(self.handle, CS_DISPATCH_ALL)
        err, self.error = self.error, None
        if err is not None:
            raise err
        if rc not in (CS_OK, CS_ERR_TRY_AGAIN):
            raise CorosyncError("quorum_dispatch", rc)

    def finalize(self) -> None:
        if self.handle.value:
            _quorum.quorum_finalize(self.handle)
            self.handle = ctypes.c_uint64(0)


_quorum_types = (
    ("quorum_initialize", [ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(_QuorumCallbacks),
                           ctypes.POINTER(ctypes.c_uint32)]),
    ("quorum_trackstart", [ctypes.c_uint64, ctypes.c_uint]),
    ("quorum_getquorate", [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int)]),
    ("quorum_fd_get", [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int)]),
    ("quorum_dispatch", [ctypes.c_uint64, ctypes.c_int]),
    ("quorum_finalize", [ctypes.c_uint64]),
)


# -- libcmap ---------------------------------------------------------------------------------------------
class Cmap:
    """Reads of corosync's configuration map (stats=True: the statistics map, knet links)."""

    def __init__(self, stats: bool = False):
        if _cmap is None:
            raise CorosyncError("cmap_initialize (libcmap4 not installed)", 2)
        self.handle = ctypes.c_uint64(0)
        if stats:
            _check("cmap_initialize_map", _cmap.cmap_initialize_map(ctypes.byref(self.handle), CMAP_MAP_STATS))
        else:
            _check("cmap_initialize", _cmap.cmap_initialize(ctypes.byref(self.handle)))

    def get_string(self, key: str) -> str | None:
        out = ctypes.c_char_p(None)
        rc = _cmap.cmap_get_string(self.handle, key.encode(), ctypes.byref(out))
        if rc == CS_ERR_NOT_EXIST:
            return None
        _check(f"cmap_get_string {key}", rc)
        try:
            return (out.value or b"").decode("utf-8", "replace")
        finally:
            _libc.free(out)

    def get_uint32(self, key: str) -> int | None:
        v = ctypes.c_uint32(0)
        rc = _cmap.cmap_get_uint32(self.handle, key.encode(), ctypes.byref(v))
        if rc == CS_ERR_NOT_EXIST:
            return None
        _check(f"cmap_get_uint32 {key}", rc)
        return v.value

    def get_uint8(self, key: str) -> int | None:
        v = ctypes.c_uint8(0)
        rc = _cmap.cmap_get_uint8(self.handle, key.encode(), ctypes.byref(v))
        if rc == CS_ERR_NOT_EXIST:
            return None
        _check(f"cmap_get_uint8 {key}", rc)
        return v.value

    def nodelist(self) -> Dict[int, str]:
        """nodeid -> name from corosync.conf's nodelist (name, else ring0_addr); at most 1024 entries."""
        nodes: Dict[int, str] = {}
        for i in range(1024):
            nodeid = self.get_uint32(f"nodelist.node.{i}.nodeid")
            name = self.get_string(f"nodelist.node.{i}.name") or self.get_string(f"nodelist.node.{i}.ring0_addr")
            if nodeid is None and name is None:
                break
            if nodeid is not None and name:
                nodes[nodeid] = name
        return nodes

    def finalize(self) -> None:
        if self.handle.value:
            _cmap.cmap_finalize(self.handle)
            self.handle = ctypes.c_uint64(0)


_cmap_types = (
    ("cmap_initialize", [ctypes.POINTER(ctypes.c_uint64)]),
    ("cmap_initialize_map", [ctypes.POINTER(ctypes.c_uint64), ctypes.c_int]),
    ("cmap_get_string", [ctypes.c_uint64, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]),
    ("cmap_get_uint32", [ctypes.c_uint64, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32)]),
    ("cmap_get_uint8", [ctypes.c_uint64, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint8)]),
    ("cmap_finalize", [ctypes.c_uint64]),
)

for _lib, _types in ((_cpg, _cpg_types), (_quorum, _quorum_types), (_cmap, _cmap_types)):
    if _lib is not None:
        for _fn, _args in _types:
            f = getattr(_lib, _fn, None)
            if f is not None:
                f.argtypes = _args
                f.restype = ctypes.c_int
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None
