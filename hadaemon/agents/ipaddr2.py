"""OCF agent hadaemon:IPaddr2: a virtual IP address on an interface, announced by gratuitous ARP / NA.

Parameter-compatible with ClusterLabs IPaddr2.  Usable as a library (``run(action, params, env)``
returns the OCF code, ``execute`` also the exit reason) and through the agents/IPaddr2 executable.
Addresses are managed with pyroute2; announcements are sent by hadaemon.io.garp; the parameter
rules are in hadaemon.agents.ipaddr2_params.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import List, Mapping

from hadaemon.agents import ocf
from hadaemon.agents.ipaddr2_params import (  # noqa: F401 - re-exported for callers of this module
    DEFAULTS,
    PARAMETERS,
    Config,
    Placement,
    Route,
    broadcast_for,
    choose_route,
    dotted_quad_to_prefix,
    meta_data,
    parse_params,
    placement_for,
)
from hadaemon.agents.ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_PERM,
    OCF_ERR_UNIMPLEMENTED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    OcfError,
    Result,
)

log = logging.getLogger("hadaemon.ipaddr2")

ADDR_PROTO = 0x68
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFA_F_NOPREFIXROUTE = 0x200
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
DAD_WAIT_MAX = 10.0  # seconds, as IPaddr2's run_send_ua
PROBE_COUNT = 2
PROBE_INTERVAL = 0.1  # seconds

# ---------------------------------------------------------------------------------------------
# Shell: netlink, state files and announcements.

# In-process announcers (the agent run in a thread of the LRM): state-file path -> stop event.
_SENDERS: dict = {}
_SENDERS_LOCK = threading.Lock()


def _send_in_thread(key: str, ifname: str, frames, rounds: int, interval: float, after: float,
                    link=None) -> None:
    """The rounds after the first, `interval` apart from `after`, from a daemon thread with its own
    socket (link: the one the first round went out on, handed over); kill_sender (stop, a new
    start) ends it."""
    from hadaemon.io import garp

    stop = threading.Event()
    if link is None:
        link = garp.LinkSocket(ifname)

    def run():
        try:
            for i in range(rounds):
                if stop.wait(max(0.0, after + (i + 1) * interval - time.monotonic())):
                    return
                link.send(frames)
        except OSError as e:
            log.warning("gratuitous ARP/NA on %s stopped: %s", ifname, e)
        finally:
            link.close()
            with _SENDERS_LOCK:
                if _SENDERS.get(key) is stop:
                    del _SENDERS[key]

    with _SENDERS_LOCK:
        _SENDERS[key] = stop
    threading.Thread(target=run, name=f"garp-{ifname}", daemon=True).start()

def _close(link, in_process: bool) -> None:
    """Close a link socket; in-process from a daemon thread: closing an AF_PACKET socket waits for an
    RCU grace period (packet_release -> synchronize_net, 10-40 ms), which the start must not wait for."""
    if in_process:
        threading.Thread(target=link.close, name="garp-close", daemon=True).start()
    else:
        link.close()


# Starts and stops prepared ahead (prepare()): (state-file path, action) -> _Prepared. In a handoff the
# new node prepares its start while the old node is still stopping, and the old node its stop while
# the rest of its chain stops, so that the old node only removes the address (and says so at once)
# and the new one only adds it and sends the first announcement.
_PREPARED: dict = {}
PREPARED_TTL = 120.0   # seconds a prepared action stays usable


class _Prepared:
    def __init__(self, key, agent: Agent, where: Placement, announcement=None, removed=None):
        self.key, self.agent, self.where, self.announcement = key, agent, where, announcement
        self.removed = removed
        self.link_up = False   # a start's interface was up when prepared
        self.lock = threading.Lock()
        self.state = "waiting"              # armed: -> "going" (its thread adds the address) or "cancelled"
        self.wake: int | None = None        # the armed thread's wake-up pipe
        self.done = threading.Event()       # the armed start finished: its result
        self.how = ""                       # what made an armed start go (for the log)
        self.result: Result | None = None
        self.made = time.monotonic()
        self.release = None                 # a stop's (link socket, release frame), sent once removed
        self.wait = None                    # a stop's (socket, [[tails]], seconds): armed frames it waits for
        self.helper = None                  # an armed start handed to the handoff helper: (helper, id)
        self.went: dict = {}                # the helper's "went" (or "gone") message

    def close(self) -> None:
        if self.announcement:
            _close(self.announcement[0], True)
        if self.release:
            _close(self.release[0], True)
        if self.wait:
            threading.Thread(target=self.wait[0].close, name="handoff-close", daemon=True).start()
        self.agent.close()


def _prepared_key(params: Mapping[str, str], env: Mapping[str, str]):
    return (tuple(sorted(params.items())), env.get("HADAEMON_IPADDR2_STOP_ANY", ""),
            tuple(sorted((k, v) for k, v in env.items() if k.startswith("OCF_RESKEY_CRM_meta_"))))


def prepare(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None,
            removed=None, release=None, wait=None) -> bool:
    """Do ahead what a start or stop with these parameters does before it changes anything, so that
    the action, run in-process with the same parameters and environment within PREPARED_TTL, only
    changes the address. start: parse, find the interface and prefix, see that the address is not
    here yet, open the announcement's socket and build its frames (then: add, announce). stop: find
    the address and that this agent may remove it (then: remove; `removed(nic)` is called from the
    agent's thread as soon as the address is gone, before the stop's bookkeeping: a handoff's release;
    release(mac) -> bytes: a frame sent on the address's interface the moment the address is gone, by
    the handoff helper process when it runs (hadaemon.io.handoff), else by the stop's thread); wait=(socket,
    [[tails]], seconds): the helper removes the address only once, for each list, a frame beginning
    (from offset 12) with one of its tails came on that socket (the new nodes' armed frames), or after
    `seconds` (this module closes the socket). False when nothing was prepared (another action, IPv6, lvs_support, an ARP probe first, nothing to
    stop, any error): the action does all of its work itself."""
    env = os.environ if env is None else env
    if action not in ("start", "stop") or os.geteuid() != 0:
        return False
    agent = None
    try:
        cfg = parse_params(params, action, ocf.meta_from_env(env), late=False)
        if cfg.late_error or cfg.family != 4 or cfg.lvs_support or (action == "start" and cfg.run_arping):
            return False
        agent = Agent(cfg, env, action, False)
        where = agent.resolve()
        entry = agent.find_addr(where.nic, where.prefix)
        announcement = None
        if action == "start":
            if where.nic.startswith("lo") or entry is not None:
                agent.close()
                return False
            announcement = agent.prepare_announcement(where.nic) if cfg.arp_count else None
            index = agent.ifindex(where.nic)
            link_up = bool(index is not None and agent.ipr.get_links(index)[0]["flags"] & 1)
        elif entry is None or not (agent.owned(entry, where) or env.get("HADAEMON_IPADDR2_STOP_ANY") == "1"):
            agent.close()
            return False
        elif release is not None and not where.nic.startswith("lo"):
            from hadaemon.io import garp

            link = garp.LinkSocket(where.nic)
            try:
                stop_release = (link, release(link.mac))
            except Exception:
                link.close()
                raise
    except Exception as e:  # noqa: BLE001 - the action will do it all and report what is wrong
        log.debug("%s of %s not prepared: %s", action, params.get("ip"), e)
        if agent is not None:
            agent.close()
        return False
    prepared = _Prepared(_prepared_key(params, env), agent, where, announcement, removed)
    prepared.link_up = action == "start" and link_up
    if action == "stop" and release is not None and not where.nic.startswith("lo"):
        prepared.release = stop_release
    prepared.wait = wait   # (taken: closed by the stop or when dropped)
    with _SENDERS_LOCK:
        old = _PREPARED.pop((agent.state_path, action), None)
        _PREPARED[(agent.state_path, action)] = prepared
    if old is not None:
        old.close()
    return True


def discard(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """Drop what prepare() left for an action that will not run."""
    env = os.environ if env is None else env
    with _SENDERS_LOCK:
        entry = _PREPARED.pop((os.path.join(_state_dir(env), f"{params.get('ip', '')}.json"), action), None)
    if entry is not None:
        if _set_state(entry, "cancelled") == "going":   # it went: the start will take it
            with _SENDERS_LOCK:
                _PREPARED.setdefault((entry.agent.state_path, action), entry)
            return
        entry.close()


def _take_prepared(cfg: Config, action: str, params: Mapping[str, str],
                   env: Mapping[str, str]) -> _Prepared | None:
    path = os.path.join(_state_dir(env), f"{cfg.ip}.json")
    with _SENDERS_LOCK:
        entry = _PREPARED.pop((path, action), None)
    if entry is None:
        return None
    if entry.state == "going":
        return entry   # its armed thread is adding the address
    if entry.key != _prepared_key(params, env) or time.monotonic() - entry.made > PREPARED_TTL:
        _set_state(entry, "cancelled")
        entry.close()
        return None
    return entry


def _lookup(action: str, params: Mapping[str, str], env: Mapping[str, str]) -> _Prepared | None:
    path = os.path.join(_state_dir(env), f"{params.get('ip', '')}.json")
    with _SENDERS_LOCK:
        entry = _PREPARED.get((path, action))
    return entry if entry is not None and entry.key == _prepared_key(params, env) else None


def armed_start(action: str, params: Mapping[str, str], env: Mapping[str, str], timeout: float,
                listen=None, on_go=None) -> bool:
    """Wait (in a thread of its own, up to timeout) for the word to go for a prepared start, then make
    its change at once from this thread: add the address and send the first announcement. The start
    run afterwards (execute) completes with that result. A handoff's new node arms its start so that
    the release it receives only sets an event (pyroute2 cannot run on the daemon's event loop). The
    word: trigger(), or with listen=(ethertype or an AF_PACKET socket, check) a frame of that
    ethertype on the address's interface (or from that socket, which this thread then closes) for
    which check(frame) is true (hadaemon.io.handoff: the old node's release, straight from its agent).
    With listen=(socket, check, tails[, armed]) and the handoff helper process running (hadaemon.io.handoff
    helper(); IPv4), the helper waits for the frame instead (tails: the bytes from offset 12 of the
    frames check accepts, hadaemon.core.crm.handoff_frame.release_tails; armed(mac): a frame it sends
    once armed, which the old node's stop waits for) and makes the change itself,
    without this process's interpreter lock; this thread then finishes the start (log, later rounds).
    on_go() is called once the address is added and announced. False: nothing prepared, no word in
    time, or cancelled (then the start does it all itself)."""
    import select

    entry = _lookup(action, params, env) if action == "start" else None
    if entry is None:
        if listen is not None and not isinstance(listen[0], int):
            threading.Thread(target=listen[0].close, name="handoff-close", daemon=True).start()
        return False
    _boost()   # a thread of its own, gone when done: woken by the release, it must run at once
    if listen is not None and len(listen) > 2 and not isinstance(listen[0], int):
        went = _armed_by_helper(entry, listen, timeout)
        if went is not None:
            return went and _finish_armed(entry, on_go)
    rfd, wfd = os.pipe()
    link = None
    try:
        with entry.lock:
            if entry.state == "cancelled":
                return False
            entry.wake = wfd   # (already going: triggered before it waited; the loop below sees it)
        from hadaemon.io import garp

        if listen is not None and isinstance(listen[0], int):
            try:
                link = garp.LinkSocket(entry.where.nic, listen[0]).sock
            except OSError as e:
                log.warning("cannot listen for the release on %s: %s", entry.where.nic, e)
        elif listen is not None:
            link = listen[0]   # opened by the caller (frames that came already are queued in it)
        deadline = time.monotonic() + timeout
        while True:
            with entry.lock:
                if entry.state == "cancelled":
                    return False
                if entry.state == "going":
                    break
            left = deadline - time.monotonic()
            if left <= 0:   # no word in time: not armed any more (a trigger from now on finds it cancelled)
                if _set_state(entry, "cancelled") == "cancelled":
                    return False
                continue
            ready, _, _ = select.select([rfd] + ([link] if link else []), [], [], left)
            if link is not None and link in ready:
                frame, addr = link.recvfrom(2048)
                if addr[2] != garp.PACKET_OUTGOING and listen[1](frame):
                    with entry.lock:
                        if entry.state == "waiting":
                            entry.state = "going"
                            entry.how = "release frame"
            if rfd in ready:
                os.read(rfd, 64)
    finally:
        with entry.lock:
            entry.wake = None
        os.close(rfd)
        os.close(wfd)
        if link is not None:
            threading.Thread(target=link.close, name="handoff-close", daemon=True).start()
    return _finish_armed(entry, on_go)


def _finish_armed(entry: _Prepared, on_go) -> bool:
    """An armed start went: make (or, after the helper, finish) its change, record its result."""
    try:
        if entry.went:
            entry.agent.finish_armed(entry.where, entry, entry.went)
        else:
            entry.agent.start(entry.where, entry)
        entry.result = Result(OCF_SUCCESS)
    except OcfError as e:
        log.error("%s", e.message)
        entry.result = Result(e.rc, e.message)
    except Exception as e:  # noqa: BLE001 - netlink or file errors: reported by the start
        log.exception("start failed")
        entry.result = Result(OCF_ERR_GENERIC, f"start failed: {e}")
    finally:
        entry.done.set()
    if on_go is not None:
        try:
            on_go()
        except Exception:  # noqa: BLE001
            log.exception("armed start notification failed")
    return True


def _armed_by_helper(entry: _Prepared, listen, timeout: float) -> bool | None:
    """armed_start's wait handed to the handoff helper: True once it went (entry.went: the helper's
    report), False when cancelled or no word in time, None when the helper cannot take it (the caller
    waits itself; the listening socket is still its own)."""
    import json
    import select
    import tempfile

    from hadaemon.io import handoff

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

    def on_event(m):   # the helper's reader thread: no lock (a request may be waiting with entry.lock)
        entry.went = m
        try:
            os.write(wfd, b"x")
        except OSError:
            pass

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


HANDOFF_NICE = -10   # the armed thread, and the old node's prepared stop, while a handoff runs


def _boost() -> int | None:
    """Raise the calling thread's priority to HANDOFF_NICE (Linux: per thread); the nice value it had,
    or None when not allowed (without CAP_SYS_NICE: it runs at its priority, only later when busy)."""
    try:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        if before > HANDOFF_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, HANDOFF_NICE)
        return before
    except (OSError, AttributeError):
        return None


def _unboost(before: int | None) -> None:
    if before is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), before)
        except OSError:
            pass


def _set_state(entry: _Prepared, want: str) -> str:
    """Move a waiting entry to want ("going" or "cancelled") and wake its armed thread; the state after.
    An armed start the handoff helper holds is asked there (it decides, one request at a time: a start
    that went there is "going" whatever was wanted)."""
    with entry.lock:
        if entry.state == "waiting":
            if entry.helper is not None:
                h, ident = entry.helper
                try:
                    entry.state = h.request({"op": "go" if want == "going" else "cancel", "id": ident},
                                            "state")["state"]
                except OSError:
                    entry.state = _helper_verdict(entry)
                if entry.state == "going" and not entry.went:   # (its "went" comes before the answer)
                    entry.went = {"ev": "went", "err": 0, "garp_err": -1, "how": "trigger"}
                entry.how = entry.went.get("how", "") if entry.state == "going" else entry.how
            else:
                entry.state = want
            if entry.wake is not None:
                os.write(entry.wake, b"x")
        return entry.state


def trigger(action: str, params: Mapping[str, str], env: Mapping[str, str]) -> bool:
    """Let armed_start() go (cheap: from an event loop). True when the armed start goes (now or it
    already went: the start's change is under way), False when nothing is prepared or it was cancelled."""
    entry = _lookup(action, params, env)
    return entry is not None and _set_state(entry, "going") == "going"


def cancel_armed(action: str, params: Mapping[str, str], env: Mapping[str, str]) -> bool:
    """Cancel an armed start that has not gone: True (or nothing armed); False when it went already
    (its change is made: the start must run and report it)."""
    entry = _lookup(action, params, env)
    return entry is None or _set_state(entry, "cancelled") == "cancelled"


class NetlinkError(OSError):
    """A netlink request's error (code: the errno, as pyroute2's NetlinkError has it)."""

    @property
    def code(self) -> int:
        return self.errno


RTM_NEWADDR, RTM_DELADDR = 20, 21


def _nl_add_ipv4(kw: Mapping) -> None:
    """RTM_NEWADDR for an IPv4 address on one netlink socket, built here: what `self.ipr.addr("add",
    **kw)` sends (IFA_LOCAL = IFA_ADDRESS, broadcast, label, flags, IFA_PROTO, scope), without
    pyroute2's request machinery (1-2 ms of CPU, 5-10 ms on a loaded node, between a handoff's
    release and the new node's first GARP)."""
    _nl_request(_nl_addr_msg(RTM_NEWADDR, kw))


def _nl_addr_msg(kind: int, kw: Mapping) -> bytes:
    """An RTM_NEWADDR (as `ip addr add`: create, exclusive) or RTM_DELADDR request for an IPv4 address
    (the handoff helper sends these bytes, with its own sequence number)."""
    import struct

    def rta(kind: int, data: bytes) -> bytes:
        size = 4 + len(data)
        return struct.pack("=HH", size, kind) + data + b"\0" * ((4 - size % 4) % 4)

    addr = socket.inet_aton(kw["address"])
    attrs = rta(2, addr) + rta(1, addr)                       # IFA_LOCAL, IFA_ADDRESS
    if kw.get("broadcast"):
        attrs += rta(4, socket.inet_aton(kw["broadcast"]))    # IFA_BROADCAST
    if kw.get("label"):
        attrs += rta(3, kw["label"].encode() + b"\0")         # IFA_LABEL
    flags = int(kw.get("flags", 0))
    if flags:
        attrs += rta(8, struct.pack("=I", flags))             # IFA_FLAGS
    if kw.get("proto") is not None:
        attrs += rta(11, struct.pack("=B", kw["proto"]))      # IFA_PROTO
    ifa = struct.pack("=BBBBI", socket.AF_INET, kw["prefixlen"], flags & 0xFF, kw.get("scope", 0), kw["index"])
    # NLM_F_REQUEST | NLM_F_ACK (| NLM_F_EXCL | NLM_F_CREATE for a new one, as `ip addr add`)
    nl_flags = 0x1 | 0x4 | (0x200 | 0x400 if kind == RTM_NEWADDR else 0)
    return struct.pack("=IHHII", 16 + len(ifa) + len(attrs), kind, nl_flags, 1, 0) + ifa + attrs


def _nl_request(msg: bytes) -> None:
    """Send one netlink request on a socket of its own and raise NetlinkError when its ack says so."""
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:
        nl.send(msg)
        reply = nl.recv(65536)
    if len(reply) < 20 or struct.unpack_from("=H", reply, 4)[0] != 2:   # NLMSG_ERROR (the ack)
        raise NetlinkError(errno.EPROTO, "unexpected netlink reply")
    err = -struct.unpack_from("=i", reply, 16)[0]
    if err:
        raise NetlinkError(err, os.strerror(err))


def _state_dir(env: Mapping[str, str]) -> str:
    return os.path.join(env.get("HADAEMON_RUNDIR") or "/run/hadaemon", "ipaddr2")


class Agent:
    """One invocation: parameters, environment and a netlink socket."""

    def __init__(self, cfg: Config, env: Mapping[str, str], action: str, probe: bool):
        from pyroute2 import IPRoute

        self.cfg, self.env, self.action, self.is_probe = cfg, env, action, probe
        self.ipr = IPRoute()
        self.state_path = os.path.join(_state_dir(env), f"{cfg.ip}.json")
        self.pid_path = os.path.join(_state_dir(env), f"{cfg.ip}.send_arp.pid")

    def close(self):
        self.ipr.close()

    # -- netlink queries
    def ifindex(self, nic: str) -> int | None:
        # one ioctl (a netlink dump of every link, parsed in Python, cost ~2 ms of CPU per call)
        try:
            return socket.if_nametoindex(nic)
        except (OSError, ValueError):
            return None

    def routes(self, table: int, scope: int | None) -> List[Route]:
        af = socket.AF_INET if self.cfg.family == 4 else socket.AF_INET6
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in self.ipr.get_links()}
        out = []
        for r in self.ipr.get_routes(family=af, table=table):
            if (r.get_attr("RTA_TABLE") or r["table"]) != table or (scope is not None and r["scope"] != scope):
                continue
            dst = r.get_attr("RTA_DST") or ("0.0.0.0" if af == socket.AF_INET else "::")
            out.append(Route(dst, r["dst_len"], names.get(r.get_attr("RTA_OIF"), "")))
        return out

    def resolve(self) -> Placement:
        """findif: nic and prefix from the parameters and the routing table.

        OCF_ERR_CONFIGURED for a bad syntax (start, validate-all) or label; OCF_ERR_GENERIC when the
        route lookup finds nothing (the caller turns that into 7 for a probe and 0 for stop)."""
        cfg = self.cfg
        if cfg.nic and self.action in ("start", "validate-all") and self.ifindex(cfg.nic) is None:
            raise OcfError(OCF_ERR_CONFIGURED, f"Invalid interface name [{cfg.nic}]")
        if cfg.findif_error:
            raise OcfError(OCF_ERR_CONFIGURED, cfg.findif_error)
        nic, prefix = cfg.nic, cfg.prefix
        if not nic or not cfg.netmask:
            route = None
            if not cfg.netmask or prefix is not None:  # an unparsable netmask matches no route
                scope = RT_SCOPE_LINK if cfg.family == 4 else None
                route = choose_route(cfg.ip, prefix, nic, self.routes(RT_TABLE_MAIN, scope))
            if route is None and cfg.family == 4 and cfg.ip.startswith("127."):
                # findif's getnetworkinfo: the loopback network from the local table, whatever
                # nic and netmask say
                route = choose_route(cfg.ip, None, "", [
                    r for r in self.routes(RT_TABLE_LOCAL, RT_SCOPE_HOST) if r.dst_len < 32])
            if route is None:
                raise OcfError(OCF_ERR_GENERIC, f"Unable to find nic or netmask for {cfg.ip or '(no ip)'}")
            nic = nic or route.nic
            if not cfg.netmask:
                prefix = route.dst_len
        return placement_for(cfg, nic, -1 if prefix is None else prefix)

    def find_addr(self, nic: str, prefix: int | None):
        """The address entry for ip (with that prefix, when given) on nic, or None."""
        index = self.ifindex(nic)
        try:
            want = ipaddress.ip_address(self.cfg.ip)
        except ValueError:  # a malformed ip is never "served" (its syntax is checked on start)
            return None
        if index is None:
            return None
        af = socket.AF_INET if self.cfg.family == 4 else socket.AF_INET6
        for a in self.ipr.get_addr(family=af, index=index):
            addr = a.get_attr("IFA_ADDRESS") if af == socket.AF_INET6 else (
                a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"))
            if addr and ipaddress.ip_address(addr) == want and (prefix is None or a["prefixlen"] == prefix):
                return a
        return None

    # -- state
    def load_state(self) -> dict | None:
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save_state(self, state: dict) -> None:
        from hadaemon.io.files import write_atomic

        # /run state (gone at reboot): atomic, without fsync (60-400 ms on a busy disk before the address
        # could be added, where /run is not a tmpfs)
        write_atomic(self.state_path, json.dumps(state, sort_keys=True).encode(), 0o600, durable=False)

    def drop_state(self) -> None:
        try:
            os.unlink(self.state_path)
        except FileNotFoundError:
            pass

    def owned(self, entry, where: Placement) -> bool:
        """Did this agent add the address? IFA_PROTO marker, else the state file."""
        if entry.get_attr("IFA_PROTO") == ADDR_PROTO:
            return True
        state = self.load_state()
        return bool(state and state.get("nic") == where.nic and state.get("prefix") == where.prefix)

    # -- announcements
    def prepare_announcement(self, nic: str):
        """(link socket, frames of one round) for nic, or None on loopback."""
        from hadaemon.io import garp

        if nic.startswith("lo"):
            return None
        link = garp.LinkSocket(nic)
        return link, garp.announcement_frames(link.mac, self.cfg.ip)

    def announce(self, prepared, rounds: int, sent_by: str = "", error: OSError | None = None) -> None:
        """Send the first round now, the rest (arp_interval apart) in the background or here. sent_by:
        the first round went out already (the handoff helper; error: how it failed)."""
        from hadaemon.io import garp

        if prepared is None:
            return
        link, frames = prepared
        in_process = self.env.get("HADAEMON_IN_PROCESS") == "1"
        if rounds <= 0:
            _close(link, in_process)
            return
        handed = False
        try:
            sent = time.monotonic()
            try:
                if error is not None:
                    raise error
                if not sent_by:
                    link.send(frames)
            except OSError as e:  # as IPaddr2: the address is up, only the announcement failed
                log.error("Could not send gratuitous ARP/NA for %s on %s: %s", self.cfg.ip, link.ifname, e)
                return
            log.info("announced %s on %s (round 1/%d%s)", self.cfg.ip, link.ifname, rounds,
                     f", {sent_by}" if sent_by else "")
            if rounds == 1:
                return
            if self.cfg.arp_bg and in_process:
                # run in a daemon's thread (the LRM's built-in path): a thread, not a forked copy of
                # the daemon (forking it costs 50-100 ms before the start can report success); it
                # takes over this socket
                self.kill_sender()
                _send_in_thread(self.pid_path, link.ifname, frames, rounds - 1, self.cfg.arp_interval, sent,
                                link=link)
                handed = True
            elif self.cfg.arp_bg:
                self.kill_sender()
                os.makedirs(_state_dir(self.env), exist_ok=True)
                garp.send_in_background(link, frames, rounds - 1, self.cfg.arp_interval, self.pid_path,
                                        after=sent)
            else:
                garp.send_rounds(link, frames, rounds - 1, self.cfg.arp_interval,
                                 first_delay=max(0.0, sent + self.cfg.arp_interval - time.monotonic()))
        finally:
            if not handed:
                _close(link, in_process)

    def kill_sender(self) -> None:
        """Stop a background announcer still running for this address (stop, or a new start)."""
        from hadaemon.io import garp

        with _SENDERS_LOCK:
            stop = _SENDERS.pop(self.pid_path, None)
        if stop is not None:
            stop.set()
            log.info("stopped the announcer thread for %s", self.cfg.ip)
        pid = garp.stop_background(self.pid_path)
        if pid:
            log.info("killed previously running announcer %d for %s", pid, self.cfg.ip)

    def addr_kw(self, where: Placement, index: int) -> dict:
        """The address's netlink attributes (pyroute2's addr("add", **kw); _nl_addr_msg for IPv4)."""
        cfg = self.cfg
        kw = {"index": index, "address": cfg.ip, "prefixlen": where.prefix, "proto": ADDR_PROTO}
        if cfg.family == 4 and cfg.ip.startswith("127."):
            kw["scope"] = RT_SCOPE_HOST  # as `ip addr add` does for loopback addresses
        flags = (IFA_F_NODAD if cfg.family == 6 and cfg.nodad else 0) | (
            IFA_F_NOPREFIXROUTE if cfg.noprefixroute else 0)
        if flags:
            kw["flags"] = flags
        if where.label:
            kw["label"] = where.label
        if where.broadcast:
            kw["broadcast"] = where.broadcast
        if cfg.family == 6 and cfg.preferred_lft is not None:
            # pyroute2 >= 0.9 reads preferred_lft, 0.7 (Debian 12, EPEL 9) only the cacheinfo dict.
            kw["preferred_lft"] = cfg.preferred_lft
            kw["cacheinfo"] = {"preferred": cfg.preferred_lft, "valid": 0xFFFFFFFF}
        return kw

    def state_of(self, where: Placement, lo_saved=None) -> dict:
        return {"ip": self.cfg.ip, "nic": where.nic, "prefix": where.prefix, "label": where.label,
                "lo": lo_saved, "added": time.time()}

    # -- actions
    def start(self, where: Placement, ready: _Prepared | None = None) -> None:
        """ready: prepared ahead (prepare()): the address was not here then, the announcement is built;
        if it appeared meanwhile, adding it fails and the start looks again as an unprepared one does."""
        cfg = self.cfg
        if ready is None:
            entry = self.find_addr(where.nic, where.prefix)
            if entry is not None:
                if not self.owned(entry, where):
                    log.warning("%s/%d is already on %s and was not added by this agent; leaving it as is",
                                cfg.ip, where.prefix, where.nic)
                return
        index = self.ifindex(where.nic)
        if index is None:
            raise OcfError(OCF_ERR_CONFIGURED, f"Invalid interface name [{where.nic}]")
        if cfg.family == 6 and cfg.broadcast:  # what `ip addr add ... brd` says, which IPaddr2 reports
            raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}: a broadcast address "
                                            f"[{cfg.broadcast}] can be set only for IPv4 addresses")
        lo_saved = self.take_from_lo() if cfg.lvs_support else None
        prober = None
        if cfg.family == 4 and cfg.run_arping and not where.nic.startswith("lo"):
            from hadaemon.io import garp

            prober = garp.Probe(where.nic, cfg.ip, PROBE_COUNT, PROBE_INTERVAL)
        # Build the announcement (importing scapy) while the probe is on the wire.
        if ready is not None:
            prepared = ready.announcement
        else:
            prepared = self.prepare_announcement(where.nic) if cfg.arp_count else None
        other = prober.result() if prober else None
        if other:
            self.restore_lo(lo_saved)
            if prepared:
                prepared[0].close()
            raise OcfError(OCF_ERR_GENERIC, f"IPv4 address collision {cfg.ip} [DAD]: "
                                            f"already in use by {other} on {where.nic}")
        self.save_state(self.state_of(where, lo_saved))
        kw = self.addr_kw(where, index)
        if ready is None:
            log.info("Adding inet%s address %s/%d to device %s", "6" if cfg.family == 6 else "",
                     cfg.ip, where.prefix, where.nic)
        added = False
        try:
            if ready is not None and cfg.family == 4:
                _nl_add_ipv4(kw)
            else:
                self.ipr.addr("add", **kw)
            added = True
            if ready is not None and prepared:
                # the address is up: the first announcement goes before anything else (the link's
                # state is checked right after; a link that is down does not send it anyway)
                self.announce(prepared, cfg.arp_count)
                prepared = None
            if ready is not None:   # logged once done: every write lets the event loop take the GIL
                log.info("Adding inet%s address %s/%d to device %s (prepared%s)", "6" if cfg.family == 6 else "",
                         cfg.ip, where.prefix, where.nic, f"; {ready.how}" if ready.how else "")
            if ready is None or not ready.link_up:   # (up when prepared: not asked again)
                link = self.ipr.get_links(index)[0]
                if not link["flags"] & 1:
                    self.ipr.link("set", index=index, state="up")
        except Exception as e:  # pyroute2 raises NetlinkError or ValueError
            if prepared:
                prepared[0].close()
            if ready is not None and not added and getattr(e, "code", None) == errno.EEXIST:
                # it appeared after the start was prepared: look again, as an unprepared start does
                self.drop_state()
                self.start(where)
                return
            self.drop_state()
            self.restore_lo(lo_saved)
            raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}/{where.prefix} to {where.nic}: {e}") from e
        if cfg.family == 6 and not cfg.nodad:
            try:
                self.wait_dad(where)
            except OcfError:
                if prepared:
                    prepared[0].close()
                raise
        self.announce(prepared, cfg.arp_count)

    def finish_armed(self, where: Placement, ready: _Prepared, went: dict) -> None:
        """An armed start the handoff helper made (went: its report): on success the first round is out
        (garp_err -1: unknown, sent from here); the later rounds, the log and the link as start() does
        them. The address already there (EEXIST): looked at again as an unprepared start does."""
        cfg, prepared, err = self.cfg, ready.announcement, went.get("err", 0)
        if err:
            if prepared:
                _close(prepared[0], True)
            if went.get("stage") == "netlink":
                self.drop_state()
                if err == errno.EEXIST:
                    self.start(where)
                    return
            raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}/{where.prefix} to {where.nic}: "
                                            f"{os.strerror(err)}")
        garp_err = went.get("garp_err", 0)
        self.announce(prepared, cfg.arp_count, sent_by="handoff helper" if garp_err >= 0 else "",
                      error=OSError(garp_err, os.strerror(garp_err)) if garp_err > 0 else None)
        log.info("Adding inet address %s/%d to device %s (prepared; %s, handoff helper, at %s)", cfg.ip,
                 where.prefix, where.nic, ready.how or "trigger", _clock(went.get("at")))
        if not ready.link_up:
            index = self.ifindex(where.nic)
            if index is not None and not self.ipr.get_links(index)[0]["flags"] & 1:
                self.ipr.link("set", index=index, state="up")

    def wait_dad(self, where: Placement) -> None:
        """IPv6: wait until the kernel's duplicate address detection finishes; fail on a collision."""
        deadline = time.monotonic() + DAD_WAIT_MAX
        while True:
            entry = self.find_addr(where.nic, where.prefix)
            flags = (entry.get_attr("IFA_FLAGS") or entry["flags"]) if entry else 0
            if entry is None or flags & IFA_F_DADFAILED:
                self.remove(where)
                raise OcfError(OCF_ERR_GENERIC, f"IPv6 address collision {self.cfg.ip} [DAD]")
            if not flags & IFA_F_TENTATIVE:
                return
            if time.monotonic() >= deadline:
                log.warning("IPv6 address %s: DAD is still tentative", self.cfg.ip)
                return
            time.sleep(0.05)

    def remove(self, where: Placement) -> None:
        index = self.ifindex(where.nic)
        if index is not None:
            self.ipr.addr("del", index=index, address=self.cfg.ip, prefixlen=where.prefix)
        self.drop_state()

    def take_from_lo(self) -> dict | None:
        """lvs_support: a real server's copy of the VIP on lo (/32) conflicts; move it aside."""
        entry = self.find_addr("lo", 32)
        if entry is None:
            return None
        saved = {"prefix": 32, "label": entry.get_attr("IFA_LABEL") or "lo"}
        log.info("Removing conflicting loopback address %s/32", self.cfg.ip)
        self.ipr.addr("del", index=self.ifindex("lo"), address=self.cfg.ip, prefixlen=32)
        return saved

    def restore_lo(self, saved: dict | None) -> None:
        if not saved:
            return
        log.info("Restoring loopback address %s/32", self.cfg.ip)
        try:
            self.ipr.addr("add", index=self.ifindex("lo"), address=self.cfg.ip, prefixlen=32,
                          label=saved.get("label") or "lo")
        except Exception as e:
            log.error("could not restore %s/32 on lo: %s", self.cfg.ip, e)

    def stop(self, where: Placement | None) -> None:
        """where None: nic/netmask not found (IPaddr2 then stops nothing); the state file may know."""
        self.kill_sender()
        state = self.load_state()
        if where is None:
            if not state:
                log.warning("cannot find nic/netmask for %s; nothing to stop", self.cfg.ip or "(no ip)")
                return
            where = placement_for(self.cfg, state["nic"], state["prefix"])
        entry = self.find_addr(where.nic, where.prefix)
        if entry is None:
            self.drop_state()
            self.restore_lo((state or {}).get("lo"))
            return
        if not self.owned(entry, where) and self.env.get("HADAEMON_IPADDR2_STOP_ANY") != "1":
            log.warning("%s/%d on %s was not added by this agent; leaving it", self.cfg.ip, where.prefix,
                        where.nic)
            return
        try:
            self.remove(where)
        except Exception as e:
            raise OcfError(OCF_ERR_GENERIC, f"Unable to remove IP [{self.cfg.ip}] from interface "
                                            f"[{where.nic}]: {e}") from e
        self.restore_lo((state or {}).get("lo"))

    def stop_prepared(self, where: Placement, ready: _Prepared) -> None:
        """A stop prepared ahead: the address was here and this agent's to remove; remove it (already
        gone: stopped all the same), tell ready.removed, then the state and lo as stop() does."""
        before = _boost() if ready.removed is not None else None   # (a thread of the LRM's pool)
        try:
            self._stop_prepared(where, ready)
        finally:
            _unboost(before)

    def _stop_prepared(self, where: Placement, ready: _Prepared) -> None:
        self.kill_sender()
        state = self.load_state()
        index = self.ifindex(where.nic)
        release, ready.release = ready.release, None
        wait, ready.wait = ready.wait, None
        try:
            if index is not None:
                self._remove_and_release(where, index, release, wait)
        except Exception as e:
            if getattr(e, "code", None) != errno.EADDRNOTAVAIL:
                raise OcfError(OCF_ERR_GENERIC, f"Unable to remove IP [{self.cfg.ip}] from interface "
                                                f"[{where.nic}]: {e}") from e
        finally:
            if release is not None:
                _close(release[0], True)
            if wait is not None:
                threading.Thread(target=wait[0].close, name="handoff-close", daemon=True).start()
        if ready.removed is not None:
            try:
                ready.removed(where.nic)
            except Exception:  # noqa: BLE001 - the caller's notification must not fail the stop
                log.exception("address removal notification failed")
        self.drop_state()
        self.restore_lo((state or {}).get("lo"))

    def _remove_and_release(self, where: Placement, index: int, release, wait=None) -> None:
        """RTM_DELADDR, and once the address is gone the release frame (release: (link, frame)), by the
        handoff helper when it runs (nothing between the two needs this process's interpreter lock;
        wait: see prepare()), else from here (without waiting)."""
        from hadaemon.io import handoff

        msg = _nl_addr_msg(RTM_DELADDR, {"index": index, "address": self.cfg.ip, "prefixlen": where.prefix})
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

    def monitor(self, where: Placement | None, refresh: bool) -> int:
        if where is None or self.find_addr(where.nic, where.prefix) is None:
            return OCF_NOT_RUNNING
        if refresh and self.cfg.arp_count_refresh:
            self.announce(self.prepare_announcement(where.nic), self.cfg.arp_count_refresh)
        return OCF_SUCCESS


USAGE = "usage: IPaddr2 {start|stop|status|monitor|validate-all|meta-data}\n"


def execute(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None,
            out=None) -> Result:
    """Run one OCF action; returns the OCF code and the exit reason (empty on success)."""
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    if action == "meta-data":
        out.write(meta_data())
        return Result(OCF_SUCCESS)
    if action in ("usage", "help"):
        out.write(USAGE)
        return Result(OCF_SUCCESS)
    meta = ocf.meta_from_env(env)
    agent = None
    try:
        # The order of IPaddr2's ip_validate decides which code a doubly bad call gets.
        cfg = parse_params(params, action, meta, late=False)
        if action in ("start", "stop") and os.geteuid() != 0:
            raise OcfError(OCF_ERR_PERM, f"You must be root for {action} operation.")
        probe = ocf.is_probe(action, meta)
        ready = _take_prepared(cfg, action, params, env) if action in ("start", "stop") and not cfg.late_error \
            else None
        if ready is not None:   # prepared ahead (prepare()): placement found (start: announcement built)
            agent, where = ready.agent, ready.where
            if _set_state(ready, "cancelled") == "going":   # armed, and it went: its thread adds it
                if ready.done.wait(max(1.0, float(meta.get("timeout", "20000") or 20000) / 1000.0)):
                    return ready.result or Result(OCF_ERR_GENERIC, "start failed")
                return Result(OCF_ERR_GENERIC, "the armed start did not finish")
            if action == "start":
                agent.start(where, ready)
            else:
                agent.stop_prepared(where, ready)
            return Result(OCF_SUCCESS)
        agent = Agent(cfg, env, action, probe)
        try:
            where = agent.resolve()
        except OcfError as e:
            if e.rc != OCF_ERR_GENERIC or not (probe or action == "stop"):
                raise
            log.info("%s", e.message)  # findif failed: IPaddr2 exits at once, before its later checks
            if probe:
                return Result(OCF_NOT_RUNNING)
            agent.stop(None)  # nothing to do, unless the state file says otherwise
            return Result(OCF_SUCCESS)
        if cfg.late_error:
            raise OcfError(OCF_ERR_CONFIGURED, cfg.late_error)
        if action == "start":
            agent.start(where)
        elif action == "stop":
            agent.stop(where)
        elif action == "monitor":
            return Result(agent.monitor(where, refresh=True))
        elif action == "status":
            rc = agent.monitor(where, refresh=False)
            out.write("running\n" if rc == OCF_SUCCESS else "stopped\n")
            return Result(rc)
        elif action != "validate-all":
            out.write(USAGE)
            return Result(OCF_ERR_UNIMPLEMENTED, f"unknown action {action!r}")
        return Result(OCF_SUCCESS)
    except OcfError as e:
        log.error("%s", e.message)
        return Result(e.rc, e.message)
    except Exception as e:  # netlink or file errors: a reason for the admin, not a traceback
        log.exception("%s failed", action)
        return Result(OCF_ERR_GENERIC, f"{action} failed: {e}")
    finally:
        if agent is not None:
            if env.get("HADAEMON_IN_PROCESS") == "1":
                # closing the netlink socket (and pyroute2's loop) takes 1-20 ms: not before the
                # result (the group's next member, a handoff's release wait for it)
                threading.Thread(target=agent.close, name="ipaddr2-close", daemon=True).start()
            else:
                agent.close()


def run(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None, out=None) -> int:
    """Run one OCF action and return its OCF code (for in-process use by the LRM)."""
    return execute(action, params, env, out).rc


def main(argv=None) -> int:
    return ocf.main(execute, argv)
