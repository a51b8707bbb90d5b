"""ocf:heartbeat:Filesystem's bind mounts, run in a thread of the LRM instead of the script.

The script (resource-agents' Filesystem, ~1,000 lines of shell sourcing ocf-shellfuncs) forks bash,
readlink, grep, cut, mount... for every action: 50-400 ms on a loaded node, twice per move of a group
(stop on one node, start on the other). For the common, simple case it reproduces here, a bind mount
(``fstype=none`` or empty, ``options=bind``, the device an existing directory, OCF_CHECK_LEVEL 0), the
same steps are a mount(2) / umount2(2) and a read of /proc/self/mounts.

Only the script's ordinary path runs here; whenever the script would do more than that, the LRM runs
the script itself (``DELEGATE``):

- ``handles()`` is false (another file system type or options, a device that is not a directory,
  deeper monitors, meta-data / validate-all / usage, a mount point with characters that
  /proc/self/mounts escapes): the script runs the whole action;
- start: a mount under the mount point (the script refuses), or mount(2) failing (the script reports it
  with its own words);
- stop: an unmount that fails or leaves the mount point mounted (busy: the script signals the
  processes using it, as its force_unmount says, and retries).

What the script does on the ordinary path and this does too: a mount point given with trailing
slashes or through a symbolic link is compared canonicalised; start on a mounted point succeeds, a
missing mount point is created (mkdir -p); stop unmounts the mounts below the mount point first
(deepest first), then the point; a stop of an unmounted point succeeds; monitor / status say
OCF_SUCCESS when the point is in the mount table, else OCF_NOT_RUNNING.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import List, Mapping

from hadaemon.agents.ocf import OCF_ERR_CONFIGURED, OCF_NOT_RUNNING, OCF_SUCCESS, Result

__all__ = ["DELEGATE", "handles", "execute", "mount_points"]

log = logging.getLogger("Filesystem")

# execute() returns this when the script must run the action instead (see the module doc).
DELEGATE = Result(-1, "delegated to the script")

MS_BIND = 4096
_ACTIONS = ("start", "stop", "monitor", "status")


def _libc():
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib


_LIBC = None


def libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = _libc()
    return _LIBC


def _plain(path: str) -> bool:
    """No character that /proc/self/mounts escapes (space, tab, newline, backslash)."""
    return not any(c in path for c in " \t\n\\")


def handles(action: str, params: Mapping[str, str], env: Mapping[str, str]) -> bool:
    """True when this module runs the action as the script would (else the LRM runs the script)."""
    if action not in _ACTIONS:
        return False
    device = params.get("device") or ""
    directory = params.get("directory") or ""
    if (params.get("fstype") or "") not in ("", "none") or (params.get("options") or "").strip() != "bind":
        return False
    if not device or not directory or not os.path.isdir(device) or not _plain(device) or not _plain(directory):
        return False
    if (env.get("OCF_CHECK_LEVEL") or "0") != "0":
        return False
    return True


def mount_points(mounts_file: str = "/proc/self/mounts") -> List[str]:
    """The mount points in the table, in its order (stacked mounts appear once each)."""
    with open(mounts_file) as f:
        return [line.split(" ")[1] for line in f if line.count(" ") >= 2]


def _mount_point(directory: str) -> str:
    """The script's MOUNTPOINT: trailing slashes dropped, canonicalised when it exists."""
    point = directory.rstrip("/") or "/"
    return os.path.realpath(point) if os.path.exists(point) else point


def _start(device: str, point: str) -> Result:
    table = mount_points()
    if any(p.startswith(point.rstrip("/") + "/") for p in table):
        return DELEGATE                     # the script refuses: mounts below the mount point
    if point in table:
        log.info("Filesystem %s is already mounted.", point)
        return Result(OCF_SUCCESS)
    if not os.path.isdir(point):
        try:
            os.makedirs(point, exist_ok=True)
        except OSError:
            return DELEGATE
    if libc().mount(device.encode(), point.encode(), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        log.info("mount --bind %s %s: %s: the script takes over", device, point, os.strerror(err))
        return DELEGATE
    return Result(OCF_SUCCESS)


def _stop(point: str) -> Result:
    table = mount_points()
    if point not in table:
        return Result(OCF_SUCCESS)
    below = sorted({p for p in table if p.startswith(point.rstrip("/") + "/")}, reverse=True)
    for sub in below + [point]:
        log.info("Trying to unmount %s", sub)
        if libc().umount2(sub.encode(), 0) != 0:
            err = ctypes.get_errno()
            log.info("umount %s: %s: the script takes over", sub, os.strerror(err))
            return DELEGATE
        if sub in mount_points():
            return DELEGATE                 # stacked: the script retries
        log.info("unmounted %s successfully", sub)
    return Result(OCF_SUCCESS)


def execute(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None, out=None) -> Result:
    """Run one action of a bind mount handles() accepted; DELEGATE when the script must run it."""
    env = os.environ if env is None else env
    if not handles(action, params, env):
        return DELEGATE
    device = params["device"]
    point = _mount_point(params["directory"])
    try:
        if action == "start":
            log.info("Running start for %s on %s", device, point)
            return _start(device, point)
        if action == "stop":
            log.info("Running stop for %s on %s", device, point)
            return _stop(point)
        return Result(OCF_SUCCESS if point in mount_points() else OCF_NOT_RUNNING)
    except OSError as e:                    # /proc unreadable...: the script decides
        log.info("%s %s: %s: the script takes over", action, point, e)
        return DELEGATE
    except ValueError as e:                 # a NUL in a parameter
        return Result(OCF_ERR_CONFIGURED, str(e))


def run(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None, out=None) -> int:
    return execute(action, params, env, out).rc
