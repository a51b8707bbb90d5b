"""The node's side of transitions: runs the DC's operations and fencing requests through the LRM,
keeps this node's own operation history (what it reports at every join) and reports results."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET
from typing import Dict, Tuple

from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.core.crm.ops import restart_fields

__all__ = ["LocalExecutor", "record_of"]

log = logging.getLogger("ha-crmd")
_FETCHING = "fetching"      # a _reload_info value: the agent's meta-data is being read
META_WAIT_S = 10.0          # the longest a start's record waits for its agent's meta-data (first time only)
QUICK_SWITCH_S = 0.0005   # the GIL switch interval while a handoff's start is armed
ARMED_WAIT_S = 0.1        # the longest a handoff's stop waits for the new node's "armed" frame (a lost SYN costs a
                          # real client its 1 s initial RTO: waiting is cheaper)


def record_of(res, digest: str, rsc: dict, meta: dict | None = None) -> S.OpRecord:
    """An OpRecord from an LRM OpResult (meta: the op's meta attributes, for a migration's nodes)."""
    key = S.parse_transition_key(res.user_data or "")
    target = key[2] if key else (7 if res.op == "monitor" and res.interval_ms == 0 else 0)
    meta = meta or {}
    migrating = res.op in ("migrate_to", "migrate_from")
    return S.OpRecord(res.rsc_id, res.op, res.interval_ms, res.rc, S.exec_status_code(res.status),
                      res.call_id, res.user_data or "", target, res.exec_ms, res.queue_ms,
                      int(res.started or time.time()), digest, rsc.get("cls", ""), rsc.get("provider") or "",
                      rsc.get("type", ""), (getattr(res, "exit_reason", "") or "")[:200],
                      meta.get("migrate_source", "") if migrating else "",
                      meta.get("migrate_target", "") if migrating else "")


class LocalExecutor:
    """Runs operations for the DC through hadaemon.io.lrm.LocalResourceManager."""

    def __init__(self, node, lrm_factory=None):
        self.node = node
        self.lrm_factory = lrm_factory
        self.lrm = None
        self.history = cibdoc.empty_cib()    # only this node's node_state: its own operation history
        self._ops: Dict[Tuple[str, str, int], Tuple[str, dict]] = {}   # recurring key -> (digest, rsc)
        self._tasks: set = set()
        # (cls, provider, type) -> reload_parameters() of its meta-data (None: cannot reload); missing
        # while not fetched yet, _FETCHING while it is
        self._reload_info: Dict[Tuple[str, str, str], object] = {}
        self._reload_fetch: Dict[Tuple[str, str, str], asyncio.Future] = {}
        self._stopped: set = set()           # transition keys of chained actions not to start
        self._chained: set = set()           # transition keys of chained actions not started yet
        self._gates: Dict[str, Tuple[str, asyncio.Future]] = {}   # leader's tkey -> (its node, a follower's wait)
        self._released: Dict[Tuple[str, str], float] = {}     # (node, tkey) told before the follower arrived
        self._release_sent: Dict[str, float] = {}             # tkeys whose followers were told
        self._triggers: Dict[str, Tuple] = {}   # leader's tkey -> (armed start's trigger, cancel, its key)
        self._keys = None                       # authkeys for release frames (False: unavailable)
        self._listening: Dict[str, object] = {}   # leader's tkey -> socket receiving its release frame
        self._quick: set = set()                  # armed handoffs (a short GIL switch interval meanwhile)
        self._switch = sys.getswitchinterval()

    async def start(self) -> None:
        if self.lrm_factory is not None:
            self.lrm = self.lrm_factory(self._on_result)
        else:
            from hadaemon.io.lrm import LocalResourceManager

            self.lrm = LocalResourceManager(self._on_result)
        if getattr(self.lrm, "in_process_agents", False):
            from hadaemon.io import handoff

            handoff.helper()   # the handoff helper process, ready before the first handoff (root only)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self.lrm is not None:
            await self.lrm.close()

    def history_xml(self) -> str:
        lr = S.lrm_resources(self.history, self.node.local_node)
        return ET.tostring(lr, encoding="unicode")

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- requests from the DC -----------------------------------------------------------------------
    def handle(self, src: str, msg: dict) -> None:
        t = msg["t"]
        if t == "op":
            self._spawn(self._run_op(src, msg))
        elif t == "ops":
            self._spawn(self._run_chain(src, msg))
        elif t == "chain_stop":
            self._stopped.update(str(k) for k in msg.get("tkeys") or () if k in self._chained)
            self._wake_gates()
        elif t == "release":
            self._release(src, str(msg.get("tkey", "")))
        elif t == "fence":
            self._spawn(self._fence(src, msg))
        elif t == "forget":
            S.clear_lrm(self.history, self.node.local_node, msg.get("rsc") or None)

    def _record(self, rec: S.OpRecord, report: bool = True) -> None:
        if rec.operation != "notify":   # notifications are not part of the history (Pacemaker's neither)
            S.record_op(self.history, self.node.local_node, rec, int(time.time()))
        if report:
            self.node.report_result(rec)

    def stop_chains(self) -> None:
        """The DC changed: no chained action of its transitions starts any more."""
        self._stopped.update(self._chained)
        self._wake_gates()

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

    async def _run_chain(self, src: str, msg: dict) -> None:
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
        try:
            if ops and msg.get("after"):
                if not await self._handed_off(msg, keys[0]):
                    armed = self._triggers.get(after)
                    if armed is None or armed[1]():   # cancelled before it went: the chain does not start
                        self._stopped.add(keys[0])
                    else:   # the old node's frame made it go: the start runs and reports
                        self._stopped.discard(keys[0])
                prepared = await prep[0]
                log.info("handoff from %s%s", msg.get("after_node") or "?", " (start prepared)" if prepared else "",
                         extra={"RESOURCE": ops[0]["rsc"]["id"], "EVENT": "handoff"})
            for i, o in enumerate(ops):
                if keys[i] in self._stopped:
                    rest = keys[i:]
                    log.info("chain stopped: %d action(s) not run", len(rest),
                             extra={"EVENT": "chain-skipped", "RESOURCE": o["rsc"]["id"]})
                    if self.node.dc:
                        self.node.send(self.node.dc, "chain_skipped", tkeys=rest)
                    return
                self._chained.discard(keys[i])
                if i in prep:
                    await prep[i]
                ran.add(i)
                rec = await self._run_op(src, o)
                if i == 0:
                    self._quick_switch(after, False)
                if rec is None or rec.op_status != S.EXEC_STATUS["done"] or rec.rc != rec.target_rc:
                    self._stopped.update(keys[i + 1:])
        finally:
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
                        on_go=lambda: loop.call_soon_threadsafe(self._armed_went, after, first_key))
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
        if on and after not in self._quick:
            if not self._quick:
                self._switch = sys.getswitchinterval()
                sys.setswitchinterval(min(self._switch, QUICK_SWITCH_S))
            self._quick.add(after)
        elif not on and after in self._quick:
            self._quick.discard(after)
            if not self._quick:
                sys.setswitchinterval(self._switch)

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

    async def _run_op(self, src: str, msg: dict) -> S.OpRecord | None:
        from hadaemon.io.lrm import OpRequest, ResourceSpec

        r, o = msg["rsc"], msg["op"]
        rsc = ResourceSpec(r["id"], r["cls"], r.get("provider"), r["type"], dict(r.get("params", {})))
        name, interval = o["name"], int(o.get("interval_ms", 0))
        tkey = msg["tkey"]
        key = S.parse_transition_key(tkey)
        target = key[2] if key else 0
        now = int(time.time())
        base = dict(rsc_class=rsc.cls, rsc_provider=rsc.provider or "", rsc_type=rsc.type)
        if name == "cancel":
            self.lrm.cancel(rsc.id, o.get("cancel_op", "monitor"), interval)
            self._ops.pop((rsc.id, o.get("cancel_op", "monitor"), interval), None)
            self._record(S.OpRecord(rsc.id, o.get("cancel_op", "monitor"), interval, 0, S.EXEC_STATUS["cancelled"],
                                    0, tkey, target, last_run=now, **base))
            return
        if name == "delete":
            await self.lrm.stop_all_recurring(rsc.id)
            S.clear_lrm(self.history, self.node.local_node, rsc.id)
            self.node.report_result(S.OpRecord(rsc.id, "delete", 0, 0, 0, 0, tkey, target, last_run=now, **base))
            return
        log.info("%s %s%s", name, rsc.id, f" every {interval} ms" if interval else "",
                 extra={"RESOURCE": rsc.id, "TRANSITION": key[1] if key else "", "EVENT": "op-start"})
        if interval == 0 and name != "notify":
            self._record(S.OpRecord(rsc.id, name, 0, 193, S.EXEC_STATUS["pending"], -1, tkey, target,
                                    last_run=now, digest=msg.get("digest", ""), **base), report=False)
        if interval == 0 and name not in ("monitor", "notify", "meta-data", "validate-all"):
            # the controller's should_cancel_recurring: recurring ops stop before anything changes the
            # resource's state (stop, start, promote, demote, migrate_to / migrate_from, reload), so a
            # monitor cannot report the source of a migration "not running" before its stop
            await self.lrm.stop_all_recurring(rsc.id)
            for k in [k for k in self._ops if k[0] == rsc.id]:
                del self._ops[k]
        reload_info = self._reload_of(rsc)
        if name == "reload-agent" and isinstance(reload_info, tuple) and reload_info[0] == "reload":
            name = "reload"    # an agent older than OCF 1.1 reloads with "reload" (do_lrm_rsc_op)
        op = OpRequest(name, interval, int(o.get("timeout_ms", 20000)), int(o.get("start_delay_ms", 0)),
                       dict(o.get("meta", {})), tkey)
        if interval > 0:
            self._ops[(rsc.id, name, interval)] = (msg.get("digest", ""), r)
        try:
            res = await self.lrm.execute(rsc, op)
        except Exception as exc:  # noqa: BLE001 - an LRM refusal becomes a failed operation
            log.error("%s %s: %s", name, rsc.id, exc, extra={"RESOURCE": rsc.id})
            rec = S.OpRecord(rsc.id, name, interval, 1, S.EXEC_STATUS["error"], 0, tkey, target,
                             last_run=now, digest=msg.get("digest", ""), exit_reason=str(exc)[:200], **base)
            self._record(rec)
            return rec
        rec = record_of(res, msg.get("digest", ""), r, o.get("meta"))
        if interval == 0 and reload_info == _FETCHING and name in ("start", "reload", "reload-agent",
                                                                   "promote", "migrate_from"):
            reload_info = await self._reload_fetched(rsc)
        if interval == 0 and isinstance(reload_info, tuple):
            listed, digest = restart_fields(reload_info[1], rsc.params)
            rec = dataclasses.replace(rec, restart_list=listed, restart_digest=digest)
        if msg.get("release_to") and rec.op_status == S.EXEC_STATUS["done"] and rec.rc == rec.target_rc:
            # the follower waiting for this one starts (handoff), unless the agent told it already
            self._send_release(str(tkey), [str(p) for p in msg["release_to"]])
        self._release_sent.pop(str(tkey), None)
        level = logging.INFO if not S.is_failure(rec) else logging.WARNING
        log.log(level, "%s %s: rc=%d (%s)%s", name, rsc.id, res.rc, res.status,
                f" {rec.exit_reason}" if rec.exit_reason else "",
                extra={"RESOURCE": rsc.id, "TRANSITION": key[1] if key else "", "EVENT": "op-done"})
        self._record(rec)
        return rec

    def _reload_of(self, rsc):
        """What the agent's meta-data says about reloads (hadaemon.core.lrm.metadata.reload_parameters),
        for the start entry's op-force-restart / op-restart-digest (the controller's append_restart_list)
        and reload-agent's name. Fetched once per agent in the background, from its first operation on
        (a probe, as a rule): that probe is recorded without them; a start recorded while the fetch is
        still under way waits for it. Without them a parameter change restarts instead of reloading."""
        if rsc.cls != "ocf":
            return None
        agent = (rsc.cls, rsc.provider or "", rsc.type)
        if agent not in self._reload_info:
            self._reload_info[agent] = _FETCHING
            self._reload_fetch[agent] = asyncio.ensure_future(self._fetch_reload_info(agent))
            self._tasks.add(self._reload_fetch[agent])
            self._reload_fetch[agent].add_done_callback(self._tasks.discard)
        return self._reload_info.get(agent)

    async def _reload_fetched(self, rsc):
        """_reload_of once the fetch under way has ended (a start recorded while the agent's meta-data
        is still being read, the first time only, waits for it: at most META_WAIT_S)."""
        task = self._reload_fetch.get((rsc.cls, rsc.provider or "", rsc.type))
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), META_WAIT_S)
            except Exception:  # noqa: BLE001 - timed out or failed: recorded without the restart list
                pass
        return self._reload_of(rsc)

    async def _fetch_reload_info(self, agent) -> None:
        from hadaemon.core.lrm.metadata import reload_parameters

        try:
            xml = await self.lrm.meta_data(agent[0], agent[1] or None, agent[2])
        except Exception as exc:  # noqa: BLE001 - no meta-data: this agent's parameter changes restart it
            log.debug("meta-data of %s: %s", ":".join(agent), exc)
            self._reload_info[agent] = None
            return
        self._reload_info[agent] = reload_parameters(xml)

    def _on_result(self, res) -> None:
        """A recurring operation's changed result (or its cancellation), reported by the LRM."""
        digest, r = self._ops.get((res.rsc_id, res.op, res.interval_ms), ("", {}))
        if res.status == "cancelled":
            self._ops.pop((res.rsc_id, res.op, res.interval_ms), None)
        rec = record_of(res, digest, r)
        if S.is_failure(rec):
            log.warning("%s %s every %d ms: rc=%d (%s)", res.op, res.rsc_id, res.interval_ms, res.rc, res.status,
                        extra={"RESOURCE": res.rsc_id, "EVENT": "op-failed"})
        self._record(rec)

    async def _fence(self, src: str, msg: dict) -> None:
        from hadaemon.io.lrm import ResourceSpec

        d = msg["device"]
        dev = ResourceSpec(d["id"], "stonith", None, d["type"], dict(d.get("params", {})))
        target, action = msg["target"], msg.get("action", "reboot")
        log.warning("fencing %s (%s) with %s", target, action, dev.id,
                    extra={"NODE": target, "RESOURCE": dev.id, "EVENT": "fence-start"})
        try:
            res = await self.lrm.fence(dev, action, target, int(msg.get("timeout_ms", 60000)))
            ok = res.status == "done" and res.rc == 0
            text = f"rc={res.rc} ({res.status}) {getattr(res, 'exit_reason', '') or ''}".strip()
        except Exception as exc:  # noqa: BLE001
            ok, text = False, str(exc)
        log.log(logging.WARNING if ok else logging.ERROR, "fencing %s with %s: %s", target, dev.id,
                "done" if ok else f"failed: {text}", extra={"NODE": target, "EVENT": "fence-done"})
        self.node.send(src, "fence_result", id=msg["id"], ok=ok, text=text, target=target)
