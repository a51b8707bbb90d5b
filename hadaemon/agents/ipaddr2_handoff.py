"""IPaddr2's starts and stops prepared ahead, and the armed start of a handoff (docs/crm.md "Handoffs").

In a handoff the new node prepares its start while the old node is still stopping, and the old node
its stop while the rest of its chain stops (prepare()), so that the old node only removes the address
and says so at once (a release frame, by the handoff helper process when it runs: hadaemon.io.handoff)
and the new node's armed start (armed_start(): a thread of ha-crmd, or the helper) only adds it and
sends the first announcement. hadaemon.agents.ipaddr2 re-exports what its callers use (prepare,
discard, armed_start, trigger, cancel_armed) and runs the prepared actions (execute).
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Mapping

from hadaemon.agents import ocf
from hadaemon.agents.ipaddr2_helper import _armed_by_helper, _helper_verdict, _remove_and_release, finish_armed
from hadaemon.agents.ipaddr2_io import _close, _state_dir
from hadaemon.agents.ipaddr2_params import Config, Placement, parse_params
from hadaemon.agents.ocf import OCF_ERR_GENERIC, OCF_SUCCESS, OcfError, Result

if TYPE_CHECKING:
    from hadaemon.agents.ipaddr2 import Agent

log = logging.getLogger("hadaemon.ipaddr2")   # the agent's log


# Starts and stops prepared ahead (prepare()): (state-file path, action) -> _Prepared. In a handoff the
# new node prepares its start while the old node is still stopping, and the old node its stop while
# the rest of its chain stops, so that the old node only removes the address (and says so at once)
# and the new one only adds it and sends the first announcement.
_PREPARED: dict = {}
_PREPARED_LOCK = threading.Lock()
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
    from hadaemon.agents.ipaddr2 import Agent

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
    with _PREPARED_LOCK:
        old = _PREPARED.pop((agent.state_path, action), None)
        _PREPARED[(agent.state_path, action)] = prepared
    if old is not None:
        old.close()
    return True


def discard(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """Drop what prepare() left for an action that will not run."""
    env = os.environ if env is None else env
    with _PREPARED_LOCK:
        entry = _PREPARED.pop((os.path.join(_state_dir(env), f"{params.get('ip', '')}.json"), action), None)
    if entry is not None:
        if _set_state(entry, "cancelled") == "going":   # it went: the start will take it
            with _PREPARED_LOCK:
                _PREPARED.setdefault((entry.agent.state_path, action), entry)
            return
        entry.close()


def _take_prepared(cfg: Config, action: str, params: Mapping[str, str],
                   env: Mapping[str, str]) -> _Prepared | None:
    path = os.path.join(_state_dir(env), f"{cfg.ip}.json")
    with _PREPARED_LOCK:
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
    with _PREPARED_LOCK:
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
            finish_armed(entry.agent, entry.where, entry, entry.went)
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


# -- the parts of a stop that run prepared (functions of an ipaddr2.Agent)
def stop_prepared(agent, where: Placement, ready: _Prepared) -> None:
    """A stop prepared ahead: the address was here and this agent's to remove; remove it (already
    gone: stopped all the same), tell ready.removed, then the state and lo as stop() does."""
    before = _boost() if ready.removed is not None else None   # (a thread of the LRM's pool)
    try:
        _stop_prepared(agent, where, ready)
    finally:
        _unboost(before)


def _stop_prepared(agent, where: Placement, ready: _Prepared) -> None:
    agent.kill_sender()
    state = agent.load_state()
    index = agent.ifindex(where.nic)
    release, ready.release = ready.release, None
    wait, ready.wait = ready.wait, None
    try:
        if index is not None:
            _remove_and_release(agent, where, index, release, wait)
    except Exception as e:
        if getattr(e, "code", None) != errno.EADDRNOTAVAIL:
            raise OcfError(OCF_ERR_GENERIC, f"Unable to remove IP [{agent.cfg.ip}] from interface "
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
    agent.drop_state()
    agent.restore_lo((state or {}).get("lo"))
