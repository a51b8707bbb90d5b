"""LRM throughput and overhead with Debian's ClusterLabs Dummy agent: N resources started, probed
and stopped at once (wall time per phase, exec/queue latency), a recurring monitor on each for a
while (runs/s, failures detected), and the LRM's own overhead on one resource run serially
(LRM exec_ms against the agent run directly).

    .venv/bin/python bench/lrm.py                 # 200 resources, monitors every 5 s for 10 s
    .venv/bin/python bench/lrm.py --resources 500 --interval-ms 2000 --seconds 20
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec  # noqa: E402

DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0


async def phase(lrm, rscs, op):
    t0 = time.monotonic()
    res = await asyncio.gather(*(lrm.execute(r, op) for r in rscs))
    wall = time.monotonic() - t0
    bad = [r for r in res if (r.rc, r.status) not in ((0, "done"), (7, "done"))]
    ex = [r.exec_ms for r in res]
    print(f"{op.name:>8} x{len(rscs)}: {wall:6.2f} s wall, exec median {statistics.median(ex):.0f} ms "
          f"p99 {pct(ex, 0.99)} ms, queue p99 {pct([r.queue_ms for r in res], 0.99)} ms, failed {len(bad)}")
    return wall, bad


async def main(a) -> None:
    state = Path(tempfile.mkdtemp(prefix="lrm-bench-"))
    reports = []
    lrm = LocalResourceManager(reports.append, use_systemd=False)
    rscs = [ResourceSpec(f"rsc_{i}", "ocf", "heartbeat", "Dummy", {"state": str(state / f"{i}.state")})
            for i in range(a.resources)]
    t_probe, _ = await phase(lrm, rscs, OpRequest("monitor", timeout_ms=120000))
    t_start, bad_start = await phase(lrm, rscs, OpRequest("start", timeout_ms=120000))
    t_mon, _ = await phase(lrm, rscs, OpRequest("monitor", interval_ms=a.interval_ms, timeout_ms=120000))
    # fail a tenth of them while the monitors run; each must be reported once
    await asyncio.sleep(a.seconds / 2)
    failed = rscs[: max(1, a.resources // 10)]
    t_fail = time.monotonic()
    for r in failed:
        os.unlink(r.params["state"])
    deadline = time.monotonic() + a.seconds / 2 + a.interval_ms / 1000 * 3
    while time.monotonic() < deadline and len({x.rsc_id for x in reports if x.rc == 7}) < len(failed):
        await asyncio.sleep(0.05)
    detect = time.monotonic() - t_fail
    await asyncio.sleep(max(0.0, a.seconds / 2 - detect))
    fail_reports = [x for x in reports if x.rc == 7]
    t_stop, bad_stop = await phase(lrm, rscs, OpRequest("stop", timeout_ms=120000))
    await lrm.close()
    print(f"failures: {len(failed)} made, {len(fail_reports)} reported ({len({x.rsc_id for x in fail_reports})} "
          f"resources), all seen after {detect:.2f} s (interval {a.interval_ms} ms)")

    # overhead on one resource, serially: the LRM against running the agent directly
    lrm = LocalResourceManager(lambda r: None, use_systemd=False)
    one = ResourceSpec("one", "ocf", "heartbeat", "Dummy", {"state": str(state / "one.state")})
    lrm_ms, raw_ms = [], []
    env = dict(os.environ, OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE="one",
               OCF_RESKEY_state=str(state / "one.state"))
    for _ in range(a.serial):
        t0 = time.monotonic()
        await lrm.execute(one, OpRequest("monitor"))
        lrm_ms.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        subprocess.run([DUMMY, "monitor"], env=env, capture_output=True)
        raw_ms.append((time.monotonic() - t0) * 1000)
    await lrm.close()
    overhead = statistics.median(lrm_ms) - statistics.median(raw_ms)
    print(f"serial monitor x{a.serial}: LRM median {statistics.median(lrm_ms):.1f} ms, agent alone "
          f"{statistics.median(raw_ms):.1f} ms, overhead {overhead:.1f} ms")
    subprocess.run(["rm", "-rf", str(state)], check=False)
    print(f"RESULT resources={a.resources} probe_s={t_probe:.2f} start_s={t_start:.2f} monitor_s={t_mon:.2f} "
          f"stop_s={t_stop:.2f} failed_ops={len(bad_start) + len(bad_stop)} failures_reported={len(fail_reports)} "
          f"failures_made={len(failed)} detect_s={detect:.2f} overhead_ms={overhead:.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resources", type=int, default=200)
    p.add_argument("--interval-ms", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=10.0, help="how long the monitors run")
    p.add_argument("--serial", type=int, default=20)
    asyncio.run(main(p.parse_args()))
