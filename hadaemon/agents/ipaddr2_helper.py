"""IPaddr2's side of the handoff helper process (hadaemon.io.handoff_helper): an armed start handed to it
(it waits for the old node's release frame, then adds the address and sends the first GARP, without
ha-crmd's interpreter lock) and a prepared stop it runs (the address removed, then the release frame).
The states of prepared and armed actions are kept in hadaemon.agents.ipaddr2_handoff.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from hadaemon.agents.ipaddr2_io import RTM_DELADDR, RTM_NEWADDR, NetlinkError, _close, _nl_addr_msg, _nl_request
from hadaemon.agents.ipaddr2_params import Placement
from hadaemon.agents.ocf import OCF_ERR_GENERIC, OcfError

if TYPE_CHECKING:
    from hadaemon.agents.ipaddr2_handoff import _Prepared

log = logging.getLogger("hadaemon.ipaddr2")   # the agent's log


def _armed_by_helper(entry: _Prepared, listen, timeout: float) -> bool | None:
    """armed_start's wait handed to the handoff helper: True once it went (entry.went: the helper's
    report), False when cancelled or no word in time, None when the helper cannot take it (the caller
    waits itself; the listening socket is still its own)."""
    import json
    import select
    import tempfile

    from hadaemon.io import handoff

    from hadaemon.agents.ipaddr2_handoff import _set_state

    agent, where = entry.agent, entry.where
    h = handoff.helper(start=False)
    index = agent.ifindex(where.nic)
    if h is None or agent.cfg.family != 4 or index is None or where.nic.startswith("lo"):
        return None
    ident = h.new_id()
    # the state file written ahead under another name: going renames it (one system call)
    directory = os.path.dirname(agent.state_path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".armed-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(agent.state_of(where), sort_keys=True).encode())
    os.chmod(tmp, 0o600)
    link = entry.announcement[0] if entry.announcement else None
    msg = {"op": "arm", "id": ident, "tails": [t.hex() for t in listen[2]],
           "armed_frame": listen[3](link.mac).hex() if link and len(listen) > 3 else "",
           "newaddr": _nl_addr_msg(RTM_NEWADDR, agent.addr_kw(where, index)).hex(),
           "garp": [frame.hex() for frame in entry.announcement[1]] if link else [],
           "state": [tmp, agent.state_path]}
    rfd, wfd = os.pipe()
    pipe_lock, pipe_open = threading.Lock(), [True]

    def on_event(m):   # the helper's reader thread: not entry.lock (a request may wait for it with entry.lock)
        entry.went = m
        with pipe_lock:
            if pipe_open[0]:
                os.write(wfd, b"x")

    try:
        with entry.lock:   # armed there before anyone can ask there (cancel, go)
            if entry.state == "cancelled":
                return False
            if entry.state == "going":   # triggered before it waited: the change is made here
                return True
            try:
                h.arm(msg, [listen[0].fileno()] + ([link.sock.fileno()] if link else []), on_event)
            except OSError as e:
                log.warning("handoff helper: %s", e)
                return None
            entry.wake = wfd
            entry.helper = (h, ident)
        threading.Thread(target=listen[0].close, name="handoff-close", daemon=True).start()   # the helper's now
        log.info("start of %s armed (handoff helper)", agent.cfg.ip)
        deadline = time.monotonic() + timeout
        while True:
            with entry.lock:
                if entry.state == "waiting" and entry.went:   # it went on the frame, or the helper is gone
                    entry.state = _helper_verdict(entry) if entry.went.get("ev") != "went" else "going"
                    entry.how = entry.went.get("how", "")
                if entry.state == "cancelled":
                    return False
                if entry.state == "going" and entry.went:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                if _set_state(entry, "cancelled") == "cancelled":
                    return False
                continue
            ready, _, _ = select.select([rfd], [], [], left)
            if ready:
                os.read(rfd, 64)
    finally:
        with entry.lock:
            entry.wake = None
        with pipe_lock:   # (a late event, e.g. the helper's death, must not write to a reused descriptor)
            pipe_open[0] = False
            os.close(rfd)
            os.close(wfd)
        try:
            os.unlink(tmp)   # not renamed: it did not go
        except FileNotFoundError:
            pass


def _clock(t) -> str:
    """A wall clock time as the logs show it (the helper's moments, logged later by this process)."""
    if not isinstance(t, (int, float)):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1e6) % 1000000:06d}"


def _helper_verdict(entry: _Prepared) -> str:
    """The helper died while it held an armed start (entry.lock held): it went if the address is here
    (the kernel applied its request; the first GARP is then sent from here), else it did not (and now
    cannot: the start does it all itself)."""
    try:
        here = entry.agent.find_addr(entry.where.nic, entry.where.prefix) is not None
    except Exception:  # noqa: BLE001
        here = False
    if here:
        entry.went = {"ev": "went", "err": 0, "garp_err": -1, "how": "handoff helper (gone)"}
        return "going"
    return "cancelled"


def finish_armed(agent, where: Placement, ready: _Prepared, went: dict) -> None:
    """An armed start the handoff helper made (went: its report): on success the first round is out
    (garp_err -1: unknown, sent from here); the later rounds, the log and the link as start() does
    them. The address already there (EEXIST): looked at again as an unprepared start does."""
    cfg, prepared, err = agent.cfg, ready.announcement, went.get("err", 0)
    if err:
        if prepared:
            _close(prepared[0], True)
        if went.get("stage") == "netlink":
            agent.drop_state()
            if err == errno.EEXIST:
                agent.start(where)
                return
        raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}/{where.prefix} to {where.nic}: "
                                        f"{os.strerror(err)}")
    garp_err = went.get("garp_err", 0)
    agent.announce(prepared, cfg.arp_count, sent_by="handoff helper" if garp_err >= 0 else "",
                   error=OSError(garp_err, os.strerror(garp_err)) if garp_err > 0 else None)
    log.info("Adding inet address %s/%d to device %s (prepared; %s, handoff helper, at %s)", cfg.ip,
             where.prefix, where.nic, ready.how or "trigger", _clock(went.get("at")))
    if not ready.link_up:
        index = agent.ifindex(where.nic)
        if index is not None and not agent.ipr.get_links(index)[0]["flags"] & 1:
            agent.ipr.link("set", index=index, state="up")


def _remove_and_release(agent, where: Placement, index: int, release, wait=None) -> None:
    """RTM_DELADDR, and once the address is gone the release frame (release: (link, frame)), by the
    handoff helper when it runs (nothing between the two needs this process's interpreter lock;
    wait: see prepare()), else from here (without waiting)."""
    from hadaemon.io import handoff

    msg = _nl_addr_msg(RTM_DELADDR, {"index": index, "address": agent.cfg.ip, "prefixlen": where.prefix})
    h = handoff.helper(start=False) if release is not None else None
    if h is not None:
        req = {"op": "del", "id": h.new_id(), "deladdr": msg.hex(), "frame": release[1].hex()}
        fds = [release[0].sock.fileno()]
        if wait is not None:
            req.update(wait=[[t.hex() for t in g] for g in wait[1]], wait_s=wait[2])
            fds.append(wait[0].fileno())
        try:
            reply = h.request(req, "deleted", fds=fds, timeout=5.0 + (wait[2] if wait else 0))
        except OSError as e:   # gone: removed or not, done here again (EADDRNOTAVAIL: gone already)
            log.warning("handoff helper: %s", e)
        else:
            if reply["err"] and reply["err"] != errno.EADDRNOTAVAIL:
                raise NetlinkError(reply["err"], os.strerror(reply["err"]))
            if reply.get("armed") is not None:
                log.info("the new node's start %s (waited %.1f ms)", "is armed" if reply["armed"] else
                         "did not say it is armed", 1000 * reply.get("waited", 0))
            if reply["sent"]:
                log.info("release frame sent on %s (handoff helper, at %s)", where.nic, _clock(reply.get("at")))
                return
    try:
        _nl_request(msg)
    except NetlinkError as e:
        if e.code != errno.EADDRNOTAVAIL:
            raise
    if release is not None:   # gone (or gone already): the release
        try:
            release[0].send([release[1]])
            log.info("release frame sent on %s", where.nic)
        except OSError as e:
            log.warning("release frame on %s not sent: %s", where.nic, e)
