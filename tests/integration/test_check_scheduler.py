"""The check scheduler and worker processes: concurrency, intervals, maintenance, results into the health core."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hadaemon.core.director.checks import make_plan  # noqa: E402
from hadaemon.core.director.config import parse_config  # noqa: E402
from hadaemon.core.director.debounce import apply_results, initial_state  # noqa: E402
from hadaemon.core.director.table import wanted_table  # noqa: E402
from hadaemon.io.checks.scheduler import CheckScheduler, check_all_once  # noqa: E402

import servers  # noqa: E402

running = servers.running          # fixture shared with the other check tests


# ---- scheduler: concurrency, intervals, results into the health core ----------------------

async def test_scheduler_checks_concurrently_and_feeds_health(running):
    fast = await running(servers.serve(servers.http_handler([])))
    fast2 = await running(servers.serve(servers.http_handler([]), host="127.0.0.2"))
    hung = await running(servers.serve(servers.silent))
    text = ("checktimeout=1\ncheckinterval=1\nquiescent=yes\nvirtual=10.9.0.1:80\n"
            f"\treal=127.0.0.1:{fast} gate\n\treal=127.0.0.2:{fast2} gate 3\n\treal=127.0.0.1:{hung} gate\n"
            "\trequest=\".test.html\"\n\treceive=\"OK\"\n\tservice=http\n")
    c = parse_config(text, "x.cf")
    plan = make_plan(c)
    state = {"s": initial_state(c, plan=plan)}
    batches = []

    def on_results(results, maintenance, now):
        batches.append(results)
        state["s"], _ = apply_results(plan, state["s"], results, now)

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    t0 = time.monotonic()
    await asyncio.sleep(3.2)
    sched.stop()
    await asyncio.wait_for(task, 5)
    per_real = {}
    for b in batches:
        for r in b:
            per_real.setdefault(r.pair[1], []).append(r)
    # the two answering reals are checked about once a second; the hung one times out (1 s) each time
    assert 2 <= len(per_real[f"127.0.0.1:{fast}"]) <= 5
    assert 2 <= len(per_real[f"127.0.0.2:{fast2}"]) <= 5
    assert all(not r.ok for r in per_real[f"127.0.0.1:{hung}"]) and per_real[f"127.0.0.1:{hung}"]
    weights = {k: d.weight for k, d in next(iter(wanted_table(c, state["s"]).values())).dests.items()}
    assert weights == {f"127.0.0.1:{fast}": 1, f"127.0.0.2:{fast2}": 3, f"127.0.0.1:{hung}": 0}
    assert time.monotonic() - t0 < 10


async def test_check_all_once_runs_in_parallel(running):
    hung = await running(servers.serve(servers.silent))
    reals = "".join(f"\treal=127.0.0.{i}:{hung} gate\n" for i in range(1, 21))
    c = parse_config(f"checktimeout=1\nvirtual=10.9.0.1:80\n{reals}\tservice=http\n", "x.cf")
    t0 = time.monotonic()
    results = await check_all_once(make_plan(c))
    elapsed = time.monotonic() - t0
    assert len(results) == 20 and not any(r.ok for r in results)
    assert elapsed < 5, f"20 one-second timeouts took {elapsed:.1f}s: not concurrent"


async def test_maintenance_dir_forces_down(running, tmp_path):
    fast = await running(servers.serve(servers.http_handler([])))
    mdir = tmp_path / "maint"
    mdir.mkdir()
    (mdir / f"127.0.0.1:{fast}").touch()
    c = parse_config(f"checkinterval=1\nmaintenancedir={mdir}\nvirtual=10.9.0.1:80\n"
                     f"\treal=127.0.0.1:{fast} gate\n\treal=127.0.0.2:{fast} gate\n"
                     "\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    seen = {"maint": {}, "checked": set()}

    def on_results(results, maintenance, now):
        seen["maint"].update(maintenance)        # only the flags that changed are handed over
        seen["checked"].update(r.pair[1] for r in results)

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(2.2)
    sched.stop()
    await asyncio.wait_for(task, 5)
    assert {p: f for p, f in seen["maint"].items() if f} == {(v, r): True for v, r in plan.targets
                                                             if r == f"127.0.0.1:{fast}"}
    assert seen["checked"] == {f"127.0.0.2:{fast}"}


async def test_check_workers_share_the_checks(running):
    """Two checker processes, sharded by real id: every real is checked, results reach the parent."""
    from hadaemon.io.checks.worker import CheckWorkers
    fast = await running(servers.serve(servers.http_handler([])))
    hung = await running(servers.serve(servers.silent))
    # 12 reals on 127.0.0.x: only 127.0.0.1 has listeners (fast, or hung for x = 3, 6, ...),
    # the others refuse; what matters is that both shards check their share and report back
    reals = "".join(f"\treal=127.0.0.{i}:{hung if i % 3 == 0 else fast} gate\n" for i in range(1, 13))
    c = parse_config(f"checktimeout=1\ncheckinterval=1\nvirtual=10.9.0.1:80\n{reals}"
                     "\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    state = {"s": initial_state(c, plan=plan)}
    seen = set()

    def on_results(results, maintenance, now):
        seen.update(r.pair for r in results)
        state["s"], _ = apply_results(plan, state["s"], results, now)

    from hadaemon.io.checks.scheduler import shard_of
    assert {shard_of(ident, 2) for ident in plan.groups} == {0, 1}
    workers = CheckWorkers(2, on_results)
    await workers.start(c)
    try:
        for _ in range(100):
            if len(seen) == len(plan.targets):
                break
            await asyncio.sleep(0.1)
        assert seen == set(plan.targets)
        # a worker that dies is started again and its share keeps being checked
        victim = workers.procs[0].pid
        os.kill(victim, 9)
        seen.clear()
        for _ in range(100):
            if len(seen) == len(plan.targets):
                break
            await asyncio.sleep(0.1)
        assert workers.restarts == 1 and workers.procs[0].pid != victim
    finally:
        await workers.stop()
    assert seen == set(plan.targets)
    assert state["s"].get(("tcp:10.9.0.1:80", f"127.0.0.1:{fast}")).up
    assert not state["s"].get(("tcp:10.9.0.1:80", f"127.0.0.3:{hung}")).up
    assert all(p.returncode is not None for p in workers.procs)


@pytest.mark.slow
async def test_scheduler_honours_each_virtuals_checkinterval(running):
    fast = await running(servers.serve(servers.http_handler([])))
    c = parse_config(f"fork=yes\nvirtual=10.9.0.1:80\n\treal=127.0.0.1:{fast} gate\n\tcheckinterval=1\n"
                     f"\trequest=\".test.html\"\n\treceive=\"OK\"\n"
                     f"virtual=10.9.0.2:80\n\treal=127.0.0.1:{fast} masq\n\tcheckinterval=3\n"
                     f"\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    assert len(plan.groups) == 2           # different forwarding method: two ldirectord real ids
    counts = {}

    def on_results(results, maintenance, now):
        for r in results:
            counts[r.pair[0]] = counts.get(r.pair[0], 0) + 1

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(6.5)
    sched.stop()
    await asyncio.wait_for(task, 5)
    assert 5 <= counts["tcp:10.9.0.1:80"] <= 8
    assert 2 <= counts["tcp:10.9.0.2:80"] <= 3


async def test_scenario_real_fails_goes_quiescent_fallback_then_recovers():
    """Experiment 2's ldirectord.cf on loopback: weights 1 and 3; one real stops answering OK ->
    weight 0 (quiescent=yes); both -> the fallback is in; the first comes back -> restored."""
    state_ok = {"a": True, "b": True}

    def handler(name):
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            body = b"OK\n" if state_ok[name] else b"Server is repairing\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            writer.close()
        return handle

    sa, pa = await servers.serve(handler("a"), host="127.0.0.2")
    sb, pb = await servers.serve(handler("b"), host="127.0.0.3")
    c = parse_config(f"""\
checktimeout=1
checkinterval=1
autoreload=yes
quiescent=yes
virtual=192.168.18.100:80
        real=127.0.0.2:{pa} gate
        real=127.0.0.3:{pb} gate 3
        fallback=127.0.0.1:80 gate
        service=http
        request=".test.html"
        receive="OK"
        virtualhost=www.tuchao.com
        scheduler=wrr
        protocol=tcp
        checktype=negotiate
""", "ldirectord.cf")
    plan = make_plan(c)
    st = {"s": initial_state(c, plan=plan)}

    def on_results(results, maintenance, now):
        st["s"], _ = apply_results(plan, st["s"], results, now)

    def weights():
        (svc,) = wanted_table(c, st["s"], plan=plan).values()
        return {k: d.weight for k, d in svc.dests.items()}

    async def until(want, seconds=6.0):
        for _ in range(int(seconds / 0.1)):
            if weights() == want:
                return True
            await asyncio.sleep(0.1)
        return weights()

    A, B, FB = f"127.0.0.2:{pa}", f"127.0.0.3:{pb}", "127.0.0.1:80"
    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    try:
        assert await until({A: 1, B: 3}) is True
        state_ok["b"] = False
        assert await until({A: 1, B: 0}) is True
        state_ok["a"] = False
        assert await until({A: 0, B: 0, FB: 1}) is True
        state_ok["a"] = True
        assert await until({A: 1, B: 0}) is True
    finally:
        sched.stop()
        await asyncio.wait_for(task, 5)
        sa.close()
        sb.close()


def test_reload_keeps_the_cadence_of_checks_that_stay():
    """A reload does not reset when kept reals are checked next (it used to spread every check over the
    interval again: a real checked just before a reload waited up to two intervals); new reals are spread."""
    reals = "".join(f"\treal=127.0.0.{i}:80 gate\n" for i in range(1, 30))
    c = parse_config(f"checkinterval=1\nvirtual=10.9.0.1:80\n{reals}\tservice=http\n", "x.cf")
    sched = CheckScheduler(make_plan(c), lambda *a: None)
    before = {ident: due for due, _, ident, _ in sched._heap}
    c2 = parse_config(f"checkinterval=1\nvirtual=10.9.0.1:80\n{reals}\treal=127.0.0.99:80 gate\n\tservice=http\n",
                      "x.cf")
    sched.reload(make_plan(c2))
    after = {ident: due for due, _, ident, _ in sched._heap}
    assert {i: after[i] for i in before} == before
    assert len(after) == len(before) + 1
