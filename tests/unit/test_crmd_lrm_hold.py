"""Recurring operations held while a chain runs on the node (crmd_chains.HeldOps, LocalExecutor).

HeldOps is tested as it is; LocalExecutor runs on the real LocalResourceManager (its queues, its
recurring table, its cancellations), whose agents are replaced by gates the test opens (GateLrm
overrides _run_agent, and run_blocking, a chain's thread path, through it), and reports to a node object that keeps what it was given."""
from __future__ import annotations

import asyncio

from hadaemon.core.crm import status as S
from hadaemon.core.lrm.ops import OpResult
from hadaemon.daemons import crmd_chains
from hadaemon.daemons.crmd_chains import HeldOps
from hadaemon.daemons.crmd_lrm import LocalExecutor
from hadaemon.io.lrm import LocalResourceManager

WAIT_S = 10.0   # bound of every wait for something that happens at once (a loaded machine)


# -- HeldOps --------------------------------------------------------------------------------------------
def test_heldops_keeps_arrival_order_and_releases_one_resource():
    h = HeldOps(1.0)
    assert h.add("vip", "m1", 10.0) is True      # the first one: its holder arms the timer
    assert h.add("store", "m2", 10.2) is False
    assert h.add("vip", "m3", 10.4) is False
    assert len(h) == 3 and h.holds("vip") and h.holds("store") and not h.holds("httpd")
    assert h.release_for("vip") == ["m1", "m3"]
    assert not h.holds("vip") and len(h) == 1
    assert h.since == 10.0                       # store's op is still held since the first hold
    assert h.release_for("httpd") == []
    assert h.release_for("store") == ["m2"]
    assert len(h) == 0 and h.since is None
    assert h.add("store", "m4", 20.0) is True    # a new first one
    assert h.since == 20.0


def test_heldops_due_after_max_from_the_first_held():
    h = HeldOps(1.0)
    assert not h.due(5.0) and h.left(5.0) == 0.0
    h.add("vip", "m1", 5.0)
    h.add("store", "m2", 5.9)
    assert not h.due(5.99)
    assert abs(h.left(5.5) - 0.5) < 1e-9
    assert h.due(6.0) and h.left(6.5) == 0.0
    assert h.release_all() == ["m1", "m2"]
    assert not h.due(100.0) and h.since is None and h.release_all() == []


# -- LocalExecutor ---------------------------------------------------------------------------------------
class GateLrm(LocalResourceManager):
    """The real LRM; each agent run is logged in `events` and, when the test put a gate for its
    (resource, action, interval), waits until the test opens it."""

    def __init__(self, on_result, tmp):
        super().__init__(on_result, use_systemd=False, rsc_tmp_dir=str(tmp))
        self.events: list = []
        self.gates: dict = {}

    def gate(self, rsc: str, action: str, interval: int = 0) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.gates[(rsc, action, interval)] = fut
        return fut

    def _event(self, *ev) -> None:
        self.events.append(ev)

    async def _run_agent(self, rsc, op):
        key = (rsc.id, op.name, op.interval_ms)
        self._event("begin", *key)
        try:
            gate = self.gates.pop(key, None)
            if gate is not None:
                await gate
        except asyncio.CancelledError:
            self._event("killed", *key)
            raise
        self._event("end", *key)
        return OpResult(rsc.id, op.name, op.interval_ms, 0, "done")

    def run_blocking(self, rsc, op, loop, cancel=None):
        """The chain's thread path (run_sequence): the same gated run, on the loop, waited for here."""
        return asyncio.run_coroutine_threadsafe(self._run_agent(rsc, op), loop).result()


class Node:
    local_node = "node1"
    dc = "node1"

    def __init__(self):
        self.reports: list = []
        self.sent: list = []

    def report_result(self, rec) -> None:
        self.reports.append(rec)

    def send(self, peer, kind, **fields) -> None:
        self.sent.append((peer, kind, fields))


def _rsc(rid: str) -> dict:
    return {"id": rid, "cls": "lsb", "type": rid}


_seq = [0]


def _op(rid: str, name: str, interval: int = 0) -> dict:
    _seq[0] += 1
    return {"rsc": _rsc(rid), "op": {"name": name, "interval_ms": interval, "timeout_ms": 20000},
            "tkey": S.transition_key(_seq[0], 1, 0, "dc-uuid")}


async def _executor(tmp_path):
    node = Node()
    ex = LocalExecutor(node, lambda on_result: GateLrm(on_result, tmp_path))
    await ex.start()
    return ex, node, ex.lrm


async def _until(lrm: GateLrm, pred, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S} s; events {lrm.events}")
        await asyncio.sleep(0.005)


async def _settle(ex) -> None:
    """Until no task of the executor's is left runnable (bounded)."""
    for _ in range(200):
        await asyncio.sleep(0)


def _results(node: Node, rid: str) -> list:
    return [(r.operation, r.interval_ms, r.op_status) for r in node.reports if r.rsc_id == rid]


async def test_monitor_during_a_chain_runs_after_its_last_op(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        gstore = lrm.gate("store", "start")
        ghttpd = lrm.gate("httpd", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("vip", "start"), _op("store", "start"), _op("httpd", "start")]})
        await _until(lrm, lambda: ("begin", "store", "start", 0) in lrm.events, "store start")
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))    # vip started: its first monitor
        gstore.set_result(None)
        await _until(lrm, lambda: ("begin", "httpd", "start", 0) in lrm.events, "httpd start")
        ex.handle("node1", dict(_op("store", "monitor", 60000), t="op"))
        await _settle(ex)
        assert not [e for e in lrm.events if e[2] == "monitor"], "a monitor ran while the chain ran"
        assert ex._held.holds("vip") and ex._held.holds("store")
        ghttpd.set_result(None)
        await _until(lrm, lambda: ("end", "store", "monitor", 60000) in lrm.events, "held monitors")
        assert lrm.events == [
            ("begin", "vip", "start", 0), ("end", "vip", "start", 0),
            ("begin", "store", "start", 0), ("end", "store", "start", 0),
            ("begin", "httpd", "start", 0), ("end", "httpd", "start", 0),
            ("begin", "vip", "monitor", 60000), ("end", "vip", "monitor", 60000),
            ("begin", "store", "monitor", 60000), ("end", "store", "monitor", 60000),
        ]
        await _until(lrm, lambda: len(node.reports) == 5, "five results")
        done = S.EXEC_STATUS["done"]
        assert [(r.rsc_id, r.operation, r.interval_ms, r.op_status, r.rc) for r in node.reports] == [
            ("vip", "start", 0, done, 0), ("store", "start", 0, done, 0), ("httpd", "start", 0, done, 0),
            ("vip", "monitor", 60000, done, 0), ("store", "monitor", 60000, done, 0)]
        assert sorted(lrm.recurring()) == [("store", "monitor", 60000), ("vip", "monitor", 60000)]
        assert len(ex._held) == 0 and ex._hold_timer is None and ex._chain_runs == 0
    finally:
        await ex.close()


async def test_monitor_without_a_chain_runs_at_once(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        await _until(lrm, lambda: len(node.reports) == 1, "the monitor's result")
        assert lrm.events == [("begin", "vip", "monitor", 60000), ("end", "vip", "monitor", 60000)]
        assert len(ex._held) == 0 and ex._hold_timer is None
    finally:
        await ex.close()


async def test_a_stop_runs_a_held_monitor_first_which_it_then_cancels(tmp_path):
    """As when the monitor had not been held: registered and begun, then cancelled by the stop's
    stop_all_recurring; the DC gets the monitor's result (cancelled), the cancellation, the stop's."""
    ex, node, lrm = await _executor(tmp_path)
    try:
        gchain = lrm.gate("other", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("other", "start")]})
        await _until(lrm, lambda: ("begin", "other", "start", 0) in lrm.events, "the chain")
        lrm.gate("vip", "monitor", 60000)        # the first monitor would take long: the stop cancels it
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        await _settle(ex)
        assert ex._held.holds("vip") and not [e for e in lrm.events if e[1] == "vip"]
        ex.handle("node1", dict(_op("vip", "stop"), t="op"))
        await _until(lrm, lambda: ("end", "vip", "stop", 0) in lrm.events, "the stop")
        await _until(lrm, lambda: len(_results(node, "vip")) == 3, "vip's three results")
        assert [e for e in lrm.events if e[1] == "vip"] == [
            ("begin", "vip", "monitor", 60000), ("killed", "vip", "monitor", 60000),
            ("begin", "vip", "stop", 0), ("end", "vip", "stop", 0)]
        cancelled, done = S.EXEC_STATUS["cancelled"], S.EXEC_STATUS["done"]
        # the cancellation (the LRM's report) and the monitor op's own answer (cancelled), then the stop
        assert sorted(_results(node, "vip")) == [("monitor", 60000, cancelled), ("monitor", 60000, cancelled),
                                                 ("stop", 0, done)]
        assert lrm.recurring() == [] and not ex._held.holds("vip")
        assert ("vip", "monitor", 60000) not in ex._ops
        assert not [r for r in node.reports if r.rsc_id == "other"]   # the chain still runs
        gchain.set_result(None)
        await _until(lrm, lambda: any(r.rsc_id == "other" for r in node.reports), "the chain's end")
    finally:
        await ex.close()


async def test_a_cancel_of_a_held_monitor_runs_it_first(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        gchain = lrm.gate("other", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("other", "start")]})
        await _until(lrm, lambda: ("begin", "other", "start", 0) in lrm.events, "the chain")
        lrm.gate("vip", "monitor", 60000)
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        await _settle(ex)
        assert ex._held.holds("vip") and not [e for e in lrm.events if e[1] == "vip"]
        cancel = _op("vip", "cancel", 60000)
        cancel["op"]["cancel_op"] = "monitor"
        ex.handle("node1", dict(cancel, t="op"))   # a cancel names the interval: not held itself
        await _until(lrm, lambda: len(_results(node, "vip")) == 3, "vip's results")
        await _settle(ex)
        assert lrm.recurring() == [] and len(ex._held) == 0
        assert [e[0] for e in lrm.events if e[1] == "vip"] == ["begin", "killed"]
        gchain.set_result(None)
    finally:
        await ex.close()


async def test_held_ops_run_after_hold_max_although_the_chain_goes_on(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    assert ex._held.max_s == crmd_chains.HOLD_MAX_S == 1.0
    ex._held.max_s = 0.2        # shorter here
    try:
        gchain = lrm.gate("db", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("db", "start")]})
        await _until(lrm, lambda: ("begin", "db", "start", 0) in lrm.events, "the chain")
        loop = asyncio.get_running_loop()
        before = loop.time()
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        ex.handle("node1", dict(_op("store", "monitor", 60000), t="op"))
        await _settle(ex)
        assert len(ex._held) == 2 and ex._hold_timer is not None
        await _until(lrm, lambda: ("begin", "vip", "monitor", 60000) in lrm.events, "released monitors")
        assert loop.time() - before >= 0.2 - 1e-3   # not before the bound (the timer's clock is the loop's)
        await _until(lrm, lambda: ("end", "store", "monitor", 60000) in lrm.events, "released monitors")
        assert [e[1:] for e in lrm.events if e[0] == "begin"] == [
            ("db", "start", 0), ("vip", "monitor", 60000), ("store", "monitor", 60000)]
        assert len(ex._held) == 0 and ex._hold_timer is None and ex._chain_runs == 1
        # the chain still runs: a later monitor is held again
        ex.handle("node1", dict(_op("httpd", "monitor", 60000), t="op"))
        assert ex._held.holds("httpd")
        gchain.set_result(None)
        await _until(lrm, lambda: ("end", "httpd", "monitor", 60000) in lrm.events, "after the chain")
        assert ex._chain_runs == 0
    finally:
        await ex.close()


async def test_two_chains_release_once_both_ended_even_by_an_exception(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        ga, gb = lrm.gate("a", "start"), lrm.gate("b", "start")
        broken = _op("c", "start")
        del broken["op"]["name"]   # _run_op raises (KeyError) out of the second chain
        ex.handle("node1", {"t": "ops", "ops": [_op("a", "start")]})
        ex.handle("node1", {"t": "ops", "ops": [_op("b", "start"), broken]})
        await _until(lrm, lambda: ("begin", "b", "start", 0) in lrm.events, "both chains")
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        ga.set_result(None)
        await _until(lrm, lambda: any(r.rsc_id == "a" for r in node.reports), "chain a's end")
        await _settle(ex)
        assert ex._chain_runs == 1 and ex._held.holds("vip")
        gb.set_result(None)
        await _until(lrm, lambda: ("end", "vip", "monitor", 60000) in lrm.events, "the monitor")
        assert ex._chain_runs == 0
    finally:
        await ex.close()


async def test_dc_change_runs_held_ops_and_close_drops_them(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        lrm.gate("a", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("a", "start"), _op("b", "start")]})
        await _until(lrm, lambda: ("begin", "a", "start", 0) in lrm.events, "the chain")
        ex.handle("node1", dict(_op("vip", "monitor", 60000), t="op"))
        assert ex._held.holds("vip")
        ex.stop_chains()
        await _until(lrm, lambda: ("end", "vip", "monitor", 60000) in lrm.events, "the monitor")
        assert len(ex._held) == 0 and ex._hold_timer is None
        ex.handle("node1", dict(_op("store", "monitor", 60000), t="op"))    # the chain still runs its start
        assert ex._held.holds("store") and ex._hold_timer is not None
    finally:
        await ex.close()
    assert len(ex._held) == 0 and ex._hold_timer is None
    await _settle(ex)
    assert ("begin", "store", "monitor", 60000) not in lrm.events


# -- a chain's thread and the executor's end (review of session 6) ------------------------------------
async def test_a_follower_waiting_for_its_handoff_starts_nothing_when_the_executor_closes(tmp_path):
    """A follower chain whose thread waits for the handoff: close() while it waits starts nothing and
    reports nothing (the old node has not released: starting would put the resource on two nodes)."""
    ex, node, lrm = await _executor(tmp_path)
    ex.handle("node1", {"t": "ops", "ops": [_op("vip", "start"), _op("httpd", "start")], "after": "leader-tkey",
                        "after_node": "node2", "after_timeout_s": 30})
    await _until(lrm, lambda: "leader-tkey" in ex._follow_gates, "the follower waits")
    await asyncio.sleep(0.2)
    await ex.close()
    await asyncio.sleep(0.5)
    assert lrm.events == [] and node.reports == []


async def test_a_follower_released_runs_its_chain_from_its_thread(tmp_path):
    ex, node, lrm = await _executor(tmp_path)
    try:
        ex.handle("node1", {"t": "ops", "ops": [_op("vip", "start"), _op("httpd", "start")], "after": "leader-tkey",
                            "after_node": "node2", "after_timeout_s": 30})
        await _until(lrm, lambda: "leader-tkey" in ex._follow_gates, "the follower waits")
        assert lrm.events == []
        ex.handle("node2", {"t": "release", "tkey": "leader-tkey"})
        await _until(lrm, lambda: len(node.reports) == 2, "both starts reported")
        assert [(r.rsc_id, r.operation) for r in node.reports] == [("vip", "start"), ("httpd", "start")]
    finally:
        await ex.close()


async def test_a_failing_record_stops_the_rest_and_reports_what_started(tmp_path):
    """The loop's bookkeeping of a result raising (a handoff's leading chain, recorded as each result
    comes): the chain's later ops are not started, every op that started is still recorded (the
    thread may already run the next one)."""
    ex, node, lrm = await _executor(tmp_path)
    real = ex._op_finished
    calls = []

    async def flaky(ctx, res):
        calls.append(ctx.rsc.id)
        if ctx.rsc.id == "a":
            raise RuntimeError("bookkeeping broke")
        return await real(ctx, res)

    ex._op_finished = flaky
    try:
        gate_b = lrm.gate("b", "start")
        last = dict(_op("c", "stop"), release_to=["node2"])
        ex.handle("node1", {"t": "ops", "ops": [_op("a", "start"), _op("b", "start"), last]})
        await _until(lrm, lambda: ("begin", "b", "start", 0) in lrm.events, "b started beside a's bookkeeping")
        gate_b.set_result(None)
        await _until(lrm, lambda: "b" in calls, "b recorded")
        await _settle(ex)
        assert ("begin", "c", "stop", 0) not in lrm.events
        assert any(k == "chain_skipped" for _p, k, _f in node.sent)
    finally:
        await ex.close()


async def test_a_chain_records_its_results_once_it_ended_or_after_the_delay(tmp_path, monkeypatch):
    """A chain that does not lead a handoff: its results are recorded (and reported) once its last
    op ended, in order, not while the chain's thread still runs; a long op does not hold the earlier
    results more than RECORD_DELAY_S."""
    from hadaemon.daemons import crmd_sequence

    ex, node, lrm = await _executor(tmp_path)
    try:
        monkeypatch.setattr(crmd_sequence, "RECORD_DELAY_S", 30.0)
        gate_c = lrm.gate("c", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("a", "start"), _op("b", "start"), _op("c", "start")]})
        await _until(lrm, lambda: ("begin", "c", "start", 0) in lrm.events, "c runs")
        await asyncio.sleep(0.3)
        assert node.reports == []                        # a and b ended: not recorded while c runs
        gate_c.set_result(None)
        await _until(lrm, lambda: len(node.reports) == 3, "all recorded once c ended")
        assert [r.rsc_id for r in node.reports] == ["a", "b", "c"]

        monkeypatch.setattr(crmd_sequence, "RECORD_DELAY_S", 0.05)
        node.reports.clear()
        gate_f = lrm.gate("f", "start")
        ex.handle("node1", {"t": "ops", "ops": [_op("d", "start"), _op("e", "start"), _op("f", "start")]})
        await _until(lrm, lambda: [r.rsc_id for r in node.reports] == ["d", "e"], "d, e recorded while f runs")
        assert ("end", "f", "start", 0) not in lrm.events
        gate_f.set_result(None)
        await _until(lrm, lambda: len(node.reports) == 3, "f recorded")
    finally:
        await ex.close()
