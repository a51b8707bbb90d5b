"""A node's chains of actions (consecutive actions of one transition, run in order) and handoffs (a
follower chain starts once the leading node's action succeeded: prepared and armed ahead, released
through ha-heartbeat or a signed frame on the address's segment). Recurring ops arriving while a chain runs
are held until none runs (HeldOps, at most HOLD_MAX_S).

A mixin of crmd_lrm.LocalExecutor (it uses its node, lrm, the chain / gate / release / trigger state made
in its __init__, and _run_op())."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Dict

from hadaemon.core.crm import status as S

__all__ = ["Chains", "HeldOps", "QUICK_SWITCH_S", "ARMED_WAIT_S", "HOLD_MAX_S"]

log = logging.getLogger("ha-crmd")
QUICK_SWITCH_S = 0.0001   # the GIL switch interval while a handoff's start is armed
ARMED_WAIT_S = 0.1        # the longest a handoff's stop waits for the new node's "armed" frame (a lost SYN costs a
                          # real client its 1 s initial RTO: waiting is cheaper)
HOLD_MAX_S = 1.0          # the longest recurring ops arriving while a chain runs are held (from the first one held)


class HeldOps:
    """Recurring operations held while a chain runs on the node, in arrival order (pure: the caller
    gives the time). An item is whatever the caller needs to run the op later."""

    def __init__(self, max_s: float = HOLD_MAX_S):
        self.max_s = max_s
        self._items: list = []    # (resource id, item)
        self.since: float | None = None   # when the first of those held now was held

    def __len__(self) -> int:
        return len(self._items)

    def add(self, rsc: str, item, now: float) -> bool:
        """Hold item; True when it is the first one held (the caller arms its timer then)."""
        self._items.append((rsc, item))
        if self.since is None:
            self.since = now
            return True
        return False

    def holds(self, rsc: str) -> bool:
        return any(r == rsc for r, _ in self._items)

    def release_for(self, rsc: str) -> list:
        """The items of one resource, in arrival order; the others stay held."""
        out = [it for r, it in self._items if r == rsc]
        self._items = [(r, it) for r, it in self._items if r != rsc]
        if not self._items:
            self.since = None
        return out

    def release_all(self) -> list:
        out = [it for _, it in self._items]
        self._items = []
        self.since = None
        return out

    def due(self, now: float) -> bool:
        """The first one held has waited max_s: all are released."""
        return self.since is not None and now - self.since >= self.max_s

    def left(self, now: float) -> float:
        """Seconds until due (0 when due or nothing held)."""
        return 0.0 if self.since is None else max(0.0, self.since + self.max_s - now)


class Chains:
    """Chains and handoffs, for LocalExecutor."""

    def stop_chains(self) -> None:
        """The DC changed: no chained action of its transitions starts any more (held recurring ops run
        now: the new DC waits for their results as the old one did)."""
        self._stopped.update(self._chained)
        self._wake_gates()
        self._run_held(self._held.release_all(), "DC changed")

    # -- recurring ops held while a chain runs ------------------------------------------------------
    # The first monitors of a chain's members that started (in-process agents: netlink dumps under the
    # GIL) would share the event loop and the GIL with the chain's next actions: they wait until no
    # chain runs on the node (at most HOLD_MAX_S); any other operation of their resource (a stop, a
    # cancel, a probe...) first runs them, as if they had not been held.
    def _hold(self, src: str, msg: dict) -> bool:
        """Hold a recurring op that arrives while a chain runs (True: held)."""
        o = msg["op"]
        if not self._chain_runs or not self._recurring(o):
            return False
        rid = msg["rsc"]["id"]
        loop = asyncio.get_running_loop()
        if self._held.add(rid, (src, msg), loop.time()):
            self._hold_timer = loop.call_later(self._held.max_s, self._hold_due)
        log.debug("%s %s every %s ms held while a chain runs", o["name"], rid, o.get("interval_ms"),
                  extra={"RESOURCE": rid, "EVENT": "op-held"})
        return True

    @staticmethod
    def _recurring(o: dict) -> bool:
        """A recurring op (a cancel or delete names the interval of the op it is about: not one)."""
        return int(o.get("interval_ms", 0)) > 0 and o["name"] not in ("cancel", "delete")

    def _hold_due(self) -> None:
        loop = asyncio.get_running_loop()
        self._hold_timer = None
        if self._held.due(loop.time()):
            self._run_held(self._held.release_all(), f"held {self._held.max_s:g} s")
        elif len(self._held):   # (the timer fired a hair early)
            self._hold_timer = loop.call_later(self._held.left(loop.time()), self._hold_due)

    def _run_held(self, items, why: str) -> None:
        """Run released ops (as handle() runs an op: a task each, in arrival order)."""
        if not len(self._held) and self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        for src, msg in items:
            log.debug("%s %s every %s ms released (%s)", msg["op"]["name"], msg["rsc"]["id"],
                      msg["op"].get("interval_ms"), why, extra={"RESOURCE": msg["rsc"]["id"], "EVENT": "op-released"})
            self._spawn(self._run_op(src, msg))

    async def _release_held_for(self, rsc_id: str, name: str) -> None:
        """Before another operation of the resource: its held ops run first. Each one's task registers
        its recurring op with the LRM in its first step (the synchronous start of lrm.execute), which
        creates the op's loop task; ready callbacks run in the order they were scheduled, so after two
        turns of the loop both have begun, and the operation that follows (a stop's
        stop_all_recurring, a cancel) finds and cancels them as when they had arrived unheld."""
        self._run_held(self._held.release_for(rsc_id), f"before {name}")
        for _ in range(2):
            await asyncio.sleep(0)

    async def _run_chain(self, src: str, msg: dict) -> None:
        """_chain, counted: recurring ops arriving meanwhile are held until no chain runs."""
        self._chain_runs += 1
        try:
            await self._chain(src, msg)
        finally:
            self._chain_runs -= 1
            if not self._chain_runs:
                self._run_held(self._held.release_all(), "chain ended")

    def _wake_gates(self) -> None:
        """Followers waiting for a handoff look again whether they were asked to stop."""
        for _node, fut in self._gates.values():
            if not fut.done():
                fut.set_result(False)

    def _release(self, src: str, tkey: str) -> None:
        """The leading node's action succeeded: the follower chain waiting for it starts."""
        node, fut = self._gates.get(tkey, ("", None))
        if fut is not None and node == src and not fut.done():
            armed = self._triggers.pop(tkey, None)
            if armed is not None:
                try:
                    if armed[0]():   # its thread adds the address now: the action has begun
                        self._chained.discard(armed[2])
                except Exception:  # noqa: BLE001 - the start then does it all itself
                    log.exception("triggering the armed start failed")
            fut.set_result(True)
            return
        now = time.monotonic()
        self._released = {k: t for k, t in self._released.items() if now - t < 300}
        self._released[(src, tkey)] = now   # before its follower chain arrived (from the DC, another path)

    async def _handed_off(self, msg: dict, first_key: str) -> bool:
        """A follower chain: wait until the leading node tells that its action succeeded (True), or
        until the chain is stopped or the wait's bound passes (False)."""
        after, node = str(msg["after"]), str(msg.get("after_node") or "")
        deadline = time.monotonic() + float(msg.get("after_timeout_s") or 60.0)
        while self._released.pop((node, after), None) is None:
            if first_key in self._stopped:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("no handoff from %s for %s: chain not run", msg.get("after_node") or "?", after,
                            extra={"EVENT": "chain-skipped"})
                return False
            fut = asyncio.get_running_loop().create_future()
            self._gates[after] = (node, fut)
            try:
                if await asyncio.wait_for(fut, left):
                    return True
            except asyncio.TimeoutError:
                pass
            finally:
                if self._gates.get(after, ("", None))[1] is fut:
                    del self._gates[after]
        return True

    async def _chain(self, src: str, msg: dict) -> None:
        """Consecutive actions of one transition on this node: each starts once the previous one
        returned its expected result; at the first other result, or once the DC asked to stop, the
        rest is reported not run (chain_skipped) so the DC knows exactly which ran. A follower chain
        (msg["after"]) starts only once the leading node told it that action succeeded."""
        ops = list(msg.get("ops") or ())
        keys = [str(o["tkey"]) for o in ops]
        self._chained.update(keys)
        # prepared ahead (in-process IPaddr2): a follower's first start (placement, announcement)
        # while the other node stops; the stop a follower waits for while the rest of this chain
        # runs: it then tells the follower as soon as the address is gone
        prep: Dict[int, asyncio.Future] = {}
        ran = set()
        if getattr(self.lrm, "in_process_agents", False) and (
                msg.get("after") or any(o.get("release_to") for o in ops)):
            from hadaemon.io import handoff

            handoff.helper()   # (started again if it died)
        for i, o in enumerate(ops):
            if (i == 0 and msg.get("after")) or (o.get("release_to") and o["op"].get("name") == "stop"):
                prep[i] = asyncio.ensure_future(self._prepare(o))
        after = str(msg.get("after") or "")
        if ops and after:
            # armed: a thread waits to add the address; the release only sets its event, or the old
            # node's release frame (received from now on: queued until the armed thread reads it)
            timeout = float(msg.get("after_timeout_s") or 60.0)
            if self._authkeys() is not None:
                from hadaemon.io import handoff

                try:
                    self._listening[after] = handoff.listen_socket()
                except OSError as exc:
                    log.warning("cannot listen for release frames: %s", exc, extra={"EVENT": "handoff"})
            prep[0].add_done_callback(lambda f: f.cancelled() or not f.result() or self._arm(
                after, ops[0], timeout, keys[0], str(msg.get("after_node") or "")))
        early = None
        try:
            if ops and after and self._sequence_ok(ops) and not any(
                    self._busy(o["rsc"]["id"]) for o in ops):
                # the whole follower chain in a thread that waits for the handoff itself: the armed
                # start's thread wakes it the moment the address is added (_went_direct), no turn of
                # the loop in between; else the verdict below (in _stopped) does. (Only when no member
                # has recurring ops here: the wait holds the members' turns and cancels their monitors.)
                gate = self._follow_gates[after] = (threading.Event(), {})
                wait_s = float(msg.get("after_timeout_s") or 60.0) + 5.0
                ready = {j: self._when_done(fut) for j, fut in prep.items()}
                early = asyncio.ensure_future(self._run_sequence(ops, keys, ready, gate=(gate[0], gate[1], wait_s)))
                self._tasks.add(early)   # (close() cancels it)
                early.add_done_callback(self._tasks.discard)
            if ops and msg.get("after"):
                if not await self._handed_off(msg, keys[0]):
                    armed = self._triggers.get(after)
                    if armed is None or armed[1]():   # cancelled before it went: the chain does not start
                        self._stopped.add(keys[0])
                    else:   # the old node's frame made it go: the start runs and reports
                        self._stopped.discard(keys[0])
                if early is not None:
                    self._follow_gates[after][0].set()
                prepared = await prep[0]
                log.info("handoff from %s%s", msg.get("after_node") or "?", " (start prepared)" if prepared else "",
                         extra={"RESOURCE": ops[0]["rsc"]["id"], "EVENT": "handoff"})
            i = 0
            if early is not None:
                n = await early
                if n is not None:   # (None: the LRM could not take them, nothing ran: one by one below)
                    ran.update(range(n))
                    i = n
                    if i < len(ops) and keys[i] not in self._stopped:
                        self._stopped.update(keys[i:])   # (the LRM closed under it)
            while i < len(ops):
                o = ops[i]
                if keys[i] in self._stopped:
                    rest = keys[i:]
                    log.info("chain stopped: %d action(s) not run", len(rest),
                             extra={"EVENT": "chain-skipped", "RESOURCE": o["rsc"]["id"]})
                    if self.node.dc:
                        self.node.send(self.node.dc, "chain_skipped", tkeys=rest)
                    return
                if self._sequence_ok(ops[i:]):
                    # the rest back to back from one thread (crmd_sequence); a prepared op waits
                    # there for its prepare
                    ready = {j - i: self._when_done(fut) for j, fut in prep.items() if j >= i}
                    before = self._armed_wait(ops) if i == 0 and not after else None
                    try:
                        n = await self._run_sequence(ops[i:], keys[i:], ready, before=before)
                    finally:
                        if before is not None:
                            before.close()
                    if n is not None:
                        ran.update(range(i, i + n))
                        i += n
                        if i < len(ops) and keys[i] not in self._stopped:
                            self._stopped.update(keys[i:])   # (the LRM closed under it)
                        continue
                self._chained.discard(keys[i])
                if i in prep:
                    await prep[i]
                ran.add(i)
                rec = await self._run_op(src, o)
                if i == 0:
                    self._quick_switch(after, False)
                if rec is None or rec.op_status != S.EXEC_STATUS["done"] or rec.rc != rec.target_rc:
                    self._stopped.update(keys[i + 1:])
                i += 1
        finally:
            if early is not None and not early.done():   # (cancelled, an exception): its thread starts nothing
                gate = self._follow_gates[after]
                gate[1]["abort"] = True
                gate[0].set()
                early.cancel()
            self._follow_gates.pop(after, None)
            self._quick_switch(after, False)
            self._triggers.pop(after, None)
            sock = self._listening.pop(after, None)
            if sock is not None:   # not handed to an armed thread (closing waits for an RCU grace period)
                threading.Thread(target=sock.close, name="handoff-close", daemon=True).start()
            self._chained.difference_update(keys)
            self._stopped.difference_update(keys)
            for i, fut in prep.items():
                if i not in ran:
                    fut.add_done_callback(lambda f, o=ops[i]: f.cancelled() or not f.result() or self._discard(o))

    def _busy(self, rsc_id: str) -> bool:
        """The resource has recurring ops here (registered in the LRM, or held)."""
        recurring = getattr(self.lrm, "recurring", None)
        return bool(self._held.holds(rsc_id) or (recurring is not None and any(k[0] == rsc_id for k in recurring())))

    @staticmethod
    def _when_done(fut: asyncio.Future) -> threading.Event:
        """An event set once fut is done (a thread waits for a prepare through it)."""
        ev = threading.Event()
        fut.add_done_callback(lambda _f: ev.set())
        return ev

    @staticmethod
    def _request(o: dict):
        """(ResourceSpec, OpRequest) of an op message, as _run_op makes them."""
        from hadaemon.io.lrm import OpRequest, ResourceSpec

        r, op = o["rsc"], o["op"]
        return (ResourceSpec(r["id"], r["cls"], r.get("provider"), r["type"], dict(r.get("params", {}))),
                OpRequest(op["name"], int(op.get("interval_ms", 0)), int(op.get("timeout_ms", 20000)),
                          int(op.get("start_delay_ms", 0)), dict(op.get("meta", {})), o["tkey"]))

    async def _prepare(self, o: dict) -> bool:
        from hadaemon.io.lrm.prepare import prepare

        rsc, op = self._request(o)
        if op.name not in ("start", "stop") or op.interval_ms or op.start_delay_ms:
            return False
        removed = release = wait = None
        if o.get("release_to") and op.name == "stop":
            from hadaemon.io import handoff

            loop = asyncio.get_running_loop()
            tkey, peers = str(o["tkey"]), [str(p) for p in o["release_to"]]
            keys, local = self._authkeys(), self.node.local_node

            def removed(nic):   # the agent's thread, the moment the address is gone (the frame is out)
                loop.call_soon_threadsafe(self._send_release, tkey, peers)

            if keys is not None:   # the short way: one signed frame on the address's own segment
                def release(mac):
                    return handoff.release_frame(mac, keys, local, tkey)

                # and the address leaves once the new node says its start is armed (its frame, queued
                # in this socket from now on), or after ARMED_WAIT_S: a request sent between the
                # removal here and the new node's GARP gets no answer at all
                try:
                    wait = (handoff.listen_socket(),
                            [handoff.release_tails(keys, p, tkey, magic=handoff.ARMED) for p in peers], ARMED_WAIT_S)
                except OSError as exc:
                    log.warning("cannot listen for armed frames: %s", exc, extra={"EVENT": "handoff"})
        ok = False
        try:
            ok = await prepare(self.lrm, rsc, op, removed=removed, release=release, wait=wait)
            return ok
        except Exception:  # noqa: BLE001 - an optimisation: the operation does all of its work itself
            log.exception("preparing %s %s failed", rsc.id, op.name)
            return False
        finally:
            if wait is not None and not ok:   # not taken by the agent (closing waits for an RCU grace period)
                threading.Thread(target=wait[0].close, name="handoff-close", daemon=True).start()

    def _authkeys(self):
        """The cluster's authkeys (next to ha.cf, as ha-heartbeat reads them) for the release frames;
        None when unreadable (releases then go through ha-heartbeat only)."""
        if self._keys is None:
            self._keys = False
            try:
                from hadaemon.core.heartbeat.authkeys import load_authkeys

                path = os.path.join(os.path.dirname(self.node.cfg.path), "authkeys")
                self._keys = load_authkeys(path)
            except Exception as exc:  # noqa: BLE001 - an optimisation: the ha-heartbeat path remains
                log.info("handoff release frames off (authkeys: %s)", exc, extra={"EVENT": "handoff"})
        return self._keys or None

    def _arm(self, after: str, o: dict, timeout: float, first_key: str, after_node: str) -> None:
        from hadaemon.io import handoff
        from hadaemon.io.lrm.prepare import arm

        sock = self._listening.pop(after, None)

        def close_sock():   # not handed to an armed thread (closing waits for an RCU grace period)
            if sock is not None:
                threading.Thread(target=sock.close, name="handoff-close", daemon=True).start()

        keys = self._authkeys()
        if first_key in self._stopped or first_key not in self._chained or keys is None or not after_node:
            close_sock()
            if first_key in self._stopped or first_key not in self._chained:
                return
            sock = None
        listen = None
        if sock is not None:
            want = (after_node, after)
            local = self.node.local_node
            listen = (sock, lambda frame: handoff.parse_release(frame, keys) == want,
                      handoff.release_tails(keys, after_node, after),
                      lambda mac: handoff.release_frame(mac, keys, local, after, magic=handoff.ARMED))
        loop = asyncio.get_running_loop()
        try:
            armed = arm(self.lrm, *self._request(o), timeout, listen=listen,
                        on_go=lambda: (self._went_direct(after),
                                       loop.call_soon_threadsafe(self._armed_went, after, first_key)))
        except Exception:  # noqa: BLE001 - an optimisation: the start does all of its work itself
            log.exception("arming %s failed", o["rsc"].get("id"))
            armed = None
        if armed is None:
            close_sock()
            return
        self._triggers[after] = (armed[0], armed[1], first_key)
        self._quick_switch(after, True)

    def _quick_switch(self, after: str, on: bool) -> None:
        """While a start is armed, the interpreter hands the GIL over every 0.5 ms (not 5 ms): the
        armed thread waits for it at every system call (the frame, the state file, netlink), and the
        event loop (a DC's above all: the old node's results, the CIB) would keep it 5 ms each time."""
        from hadaemon.daemons.crmd_sequence import quick_switch

        if on and after not in self._quick:
            quick_switch(True, QUICK_SWITCH_S)   # counted: sequences set it too
            self._quick.add(after)
        elif not on and after in self._quick:
            self._quick.discard(after)
            quick_switch(False)

    def _went_direct(self, after: str) -> None:
        """The armed start's thread, the moment it went: the follower chain's thread (if it waits for
        the handoff itself, crmd_sequence) goes on at once; its start runs and reports."""
        gate = self._follow_gates.get(after)
        if gate is not None:
            gate[1]["went"] = True
            gate[0].set()

    def _armed_went(self, after: str, first_key: str) -> None:
        """The armed start went on the old node's release frame: the chain goes on at once (the
        release through ha-heartbeat, later, finds nothing to do)."""
        self._chained.discard(first_key)
        _node, fut = self._gates.get(after, ("", None))
        if fut is not None and not fut.done():
            self._triggers.pop(after, None)
            fut.set_result(True)

    def _discard(self, o: dict) -> None:
        from hadaemon.io.lrm.prepare import discard

        try:
            discard(self.lrm, *self._request(o))
        except Exception:  # noqa: BLE001
            log.exception("discarding the prepared %s failed", o["rsc"].get("id"))

    def _send_release(self, tkey: str, peers) -> None:
        """Tell the followers waiting for this action that it succeeded (once)."""
        if tkey in self._release_sent:
            return
        self._release_sent[tkey] = time.monotonic()
        for peer in peers:
            self.node.send(peer, "release", tkey=tkey)

