"""Failover benchmark: experiment 1's webserver group on a namespace cluster, a client polling the VIP.

For each run (the group on admin1, the client GETting http://VIP/ every 20 ms from its namespace):
- failover: admin1 is unplugged (its switch port goes down); time from the cut to the first successful
  request through the VIP (served by admin2);
- failback: admin1 is plugged back; with auto_failback on the group returns; the failback outage is
  the longest gap between successful requests from the restore until admin1 serves;
- migrate: `MigrateResource webserver admin2` over D-Bus; time from the call to the first request
  served by admin2 (then ClearResource brings it back, not timed);
- the observer samples both nodes every 20 ms and counts moments with the VIP (and with any webserver
  resource) active on two connected nodes. A cut node is plugged back once it has stopped its group
  (the pingd rule makes it), as an admin restoring "network stop" would.

Timings: "seed" = the admin's ha.cf (keepalive 2, deadtime 30), "fast" = keepalive 100ms, deadtime 500ms.
Prints per-run figures, medians, p99 (nearest rank), maxima; the last line is
RESULT failover_median_s=... failover_p99_s=... failback_gap_s=... migrate_median_s=... dual_active=...
(the unprefixed keys are the seed timings when they ran, else the fast ones; fast_* keys when both ran).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import Experiment1, Poller

TIMINGS = {"seed": dict(keepalive="2", deadtime="30", warntime="10"),
           "fast": dict(keepalive="100ms", deadtime="500ms", warntime=None)}
DEADPING = {"seed": "5", "fast": "3"}   # ping node checks (more than twice keepalive)


def p99(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def wait_served(poller: Poller, t: float, node: str, timeout: float) -> float:
    return wait_until(lambda: poller.first_ok_after(t, node), timeout, interval=0.05,
                      message=f"the client served by {node}")


def run_set(name: str, runs: int, keep: bool, log) -> dict:
    timing = TIMINGS[name]
    dead = float(timing["deadtime"].replace("ms", "")) / (1000 if "ms" in timing["deadtime"] else 1)
    bound = dead + 90
    out = {"failover": [], "failback_gap": [], "migrate": [], "dual_active": 0}
    with Cluster(["admin1", "admin2"], client=True, keep=keep) as c:
        e = Experiment1(c, groups=("webserver",))
        e.prepare_storage()
        crm = CrmCluster(c, e.cib(), auto_failback="on", initd=e.initd(), extra=e.hacf_extra(DEADPING[name]), **timing)
        try:
            with crm.observer(e.probes(), interval=0.02) as obs:
                crm.start_all(timeout=120)
                for r in ("vip", "store", "httpd"):
                    obs.wait(r, ["admin1"], 120)
                poller = Poller(c, "client", e.web_vip, interval=0.02, name=f"poller-{name}")
                wait_served(poller, time.monotonic(), "admin1", 30)
                for i in range(runs):
                    time.sleep(1)
                    t = time.monotonic()
                    crm.cut("admin1")
                    t_ok = wait_served(poller, t, "admin2", bound)
                    out["failover"].append(t_ok - t)
                    # plugged back once it has stopped its group (it cannot reach the ping node), as an
                    # admin would after "network stop"; earlier, its VIP would briefly be on the wire twice
                    obs.wait_released("admin1", list(obs.probes), bound)
                    time.sleep(1)
                    t = time.monotonic()
                    crm.restore("admin1")
                    t_back = wait_served(poller, t, "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    time.sleep(1)
                    out["failback_gap"].append(poller.longest_gap(t, max(t_back, time.monotonic())))
                    t = time.monotonic()
                    crm.call("admin1", "MigrateResource", "ss", "webserver", "admin2")
                    t_m = wait_served(poller, t, "admin2", bound)
                    out["migrate"].append(t_m - t)
                    crm.call("admin1", "ClearResource", "ss", "webserver", "")
                    wait_served(poller, time.monotonic(), "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    log(f"{name} run {i + 1}: failover {out['failover'][-1]:.3f} s, failback gap "
                        f"{out['failback_gap'][-1]:.3f} s, migrate {out['migrate'][-1]:.3f} s, "
                        f"overlaps so far {len(obs.dual_active())}")
                poller.stop()
            out["dual_active"] = len([d for d in obs.dual_active() if d[2] == "vip"])
            out["dual_any"] = len(obs.dual_active())
            out["dual_detail"] = obs.describe()
        except Exception:
            log(crm.logs(tail=4000))
            raise
        finally:
            crm.close()
    return out


def summary(name: str, r: dict, log) -> None:
    for key in ("failover", "failback_gap", "migrate"):
        v = r[key]
        log(f"{name:5} {key:13} n={len(v):2} median {statistics.median(v):7.3f} s  p99 {p99(v):7.3f} s  "
            f"max {max(v):7.3f} s  min {min(v):7.3f} s")
    log(f"{name:5} moments with the VIP on two connected nodes: {r['dual_active']}; with any webserver resource "
        f"on two: {r['dual_any']} ({r.get('dual_detail', '')})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/failover.py", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per timing set (default 10)")
    ap.add_argument("--timings", choices=["seed", "fast", "both"], default="both")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (daemon logs)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/failover.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    def log(text):
        print(text, flush=True)

    sets = ["seed", "fast"] if args.timings == "both" else [args.timings]
    results = {}
    for name in sets:
        t = TIMINGS[name]
        log(f"== {name} timings: keepalive {t['keepalive']}, deadtime {t['deadtime']}; {args.runs} runs")
        results[name] = run_set(name, args.runs, args.keep, log)
        summary(name, results[name], log)
    main_set = results.get("seed") or results["fast"]
    fields = [f"failover_median_s={statistics.median(main_set['failover']):.3f}",
              f"failover_p99_s={p99(main_set['failover']):.3f}",
              f"failback_gap_s={statistics.median(main_set['failback_gap']):.3f}",
              f"migrate_median_s={statistics.median(main_set['migrate']):.3f}",
              f"dual_active={sum(r['dual_active'] for r in results.values())}"]
    if "seed" in results and "fast" in results:
        f = results["fast"]
        fields += [f"fast_failover_median_s={statistics.median(f['failover']):.3f}",
                   f"fast_failover_p99_s={p99(f['failover']):.3f}",
                   f"fast_failback_gap_s={statistics.median(f['failback_gap']):.3f}",
                   f"fast_migrate_median_s={statistics.median(f['migrate']):.3f}"]
    fields.append(f"runs={args.runs} timings={args.timings}")
    print("RESULT " + " ".join(fields), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
