"""Failover benchmark: experiment 1's webserver group on a namespace cluster, a client polling the VIP.

For each run (the group on admin1, the client GETting http://VIP/ every 20 ms from its namespace):
- failover: admin1 is unplugged (its switch port goes down); time from the cut to the first successful
  request through the VIP (served by admin2);
- failback: admin1 is plugged back; with auto_failback on the group returns; the failback outage is
  the longest gap between successful requests from the restore until admin1 serves;
- migrate: `MigrateResource webserver admin2` over D-Bus; time from the call to the first request
  served by admin2 (then ClearResource brings it back, not timed);
- the observer samples both nodes every 20 ms and counts moments with the VIP (and with any webserver
  resource) active on two connected nodes (an overlap seen by one sample is read again: the nodes are
  read one after the other, and a handoff between two reads is not an overlap; see Observer._confirm).
  A cut node is plugged back once it has stopped its group (the pingd rule makes it), as an admin
  restoring "network stop" would;
- from the logs, every handoff's two moments (the old node's address removed, the new node's added, as
  the handoff helpers logged them): handoff_added_before_removed counts adds that came first.

Timings: "seed" = the admin's ha.cf (keepalive 2, deadtime 30), "fast" = keepalive 25ms, deadtime 100ms
(issue 10's 10-minute run under load: no false death, docs/crm.md "Failover timing"; "fast100" is the
same), "fast200" = keepalive 50ms, deadtime 200ms (the fast timings until 2026-12-05 07:10 UTC),
"fast500" = keepalive 100ms, deadtime 500ms (before that).
Prints per-run figures, medians, p99 (nearest rank), maxima, the stages of each failover, failback and
migrate (from the daemons' logs: see STAGES) and false deaths (a node declared dead by ha-heartbeat other
than the two declarations each cut causes); the last line is
RESULT failover_median_s=... failover_p99_s=... failback_gap_s=... migrate_median_s=... dual_active=...
false_deaths=... (the unprefixed keys are the seed timings when they ran, else the fast ones; fast_* keys
when both ran).

--keepalived 1,0.1 adds Debian's keepalived (VRRPv3, advert_int per value, lighttpd on both nodes) on a
fresh cluster, cut and restored the same way (no migrate), and the keys keepalived_median_s,
keepalived_p99_s, keepalived_failback_gap_s, keepalived_dual_active (the smallest advert_int) and
ratio_keepalived (hadaemon's fast failover median / keepalived's).

--pacemaker 1000 adds Debian's Pacemaker + Corosync (totem token per value, ms; two_node) on a fresh
cluster (hadaemon.testing.pacemaker: corosync and pacemakerd in each node's namespaces): the same group
(the same agents: IPaddr2, Filesystem and lsb:httpd run by pacemaker-execd), ocf:pacemaker:ping as a
clone (the agent's default dampen, 5 s) for the same connectivity rule, the same cut / restore, migrate with crm_resource --move; keys
pacemaker_median_s, pacemaker_p99_s, pacemaker_failback_gap_s, pacemaker_migrate_gap_s,
pacemaker_dual_active and ratio_pacemaker. When it cannot run, the reason is printed and the keys are
left out.
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
from hadaemon.testing.procs import run_cmd, wait_until
from hadaemon.testing.scenario import Experiment1, Poller

TIMINGS = {"seed": dict(keepalive="2", deadtime="30", warntime="10"),
           "fast": dict(keepalive="25ms", deadtime="100ms", warntime=None),
           "fast200": dict(keepalive="50ms", deadtime="200ms", warntime=None),
           "fast500": dict(keepalive="100ms", deadtime="500ms", warntime=None)}
TIMINGS["fast100"] = TIMINGS["fast"]   # its name before it became "fast"
DEADPING = {"seed": "5", "fast": "3", "fast200": "3", "fast500": "3", "fast100": "3"}   # ping node checks


def p99(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def lost_requests(poller: Poller, t0: float, t1: float, timeout: float = 0.19) -> int:
    """Requests sent between t0 and t1 that got no answer at all (the client gave up after its 0.2 s
    timeout: the next request went out that late), as opposed to refused ones (answered at once)."""
    s = [ts for ts, _ok, _who in poller.samples()]
    return sum(1 for a, b in zip(s, s[1:]) if t0 <= a <= t1 and b - a >= timeout)


def wait_served(poller: Poller, t: float, node: str, timeout: float) -> float:
    return wait_until(lambda: poller.first_ok_after(t, node), timeout, interval=0.05,
                      message=f"the client served by {node}")


def run_set(name: str, runs: int, keep: bool, log) -> dict:
    timing = TIMINGS[name]
    dead = float(timing["deadtime"].replace("ms", "")) / (1000 if "ms" in timing["deadtime"] else 1)
    bound = dead + 90
    out = {"failover": [], "failback_gap": [], "migrate": [], "dual_active": 0, "stages": [],
           "failback_stages": [], "migrate_stages": [], "failback_lost": [], "migrate_lost": []}
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
                    wall = time.time()
                    crm.cut("admin1")
                    t_ok = wait_served(poller, t, "admin2", bound)
                    out["failover"].append(t_ok - t)
                    out["stages"].append(dict(stages(c.workdir / "logs", STAGES, "admin2", "admin1", wall),
                                              served=t_ok - t))
                    # plugged back once it has stopped its group (it cannot reach the ping node), as an
                    # admin would after "network stop"; earlier, its VIP would briefly be on the wire twice
                    obs.wait_released("admin1", list(obs.probes), bound)
                    time.sleep(1)
                    t = time.monotonic()
                    wall = time.time()
                    crm.restore("admin1")
                    t_back = wait_served(poller, t, "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    time.sleep(1)
                    out["failback_gap"].append(poller.longest_gap(t, max(t_back, time.monotonic())))
                    out["failback_lost"].append(lost_requests(poller, t, max(t_back, time.monotonic())))
                    out["failback_stages"].append(dict(
                        stages(c.workdir / "logs", MOVE_STAGES, "admin1", "admin2", wall), served=t_back - t))
                    t = time.monotonic()
                    wall = time.time()
                    crm.call("admin1", "MigrateResource", "ss", "webserver", "admin2")
                    t_m = wait_served(poller, t, "admin2", bound)
                    out["migrate"].append(t_m - t)
                    out["migrate_gap"] = out.get("migrate_gap", []) + [poller.longest_gap(t, t_m)]
                    out["migrate_lost"].append(lost_requests(poller, t, t_m))
                    time.sleep(0.5)   # the logs are flushed
                    out["migrate_stages"].append(dict(
                        stages(c.workdir / "logs", MOVE_STAGES, "admin2", "admin1", wall), served=t_m - t))
                    crm.call("admin1", "ClearResource", "ss", "webserver", "")
                    wait_served(poller, time.monotonic(), "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    log(f"{name} run {i + 1}: failover {out['failover'][-1]:.3f} s, failback gap "
                        f"{out['failback_gap'][-1]:.3f} s ({out['failback_lost'][-1]} request(s) lost), migrate "
                        f"{out['migrate'][-1]:.3f} s, gap {out['migrate_gap'][-1]:.3f} s ({out['migrate_lost'][-1]} "
                        f"lost), overlaps so far {len(obs.dual_active())}, load {os.getloadavg()[0]:.1f}")
                poller.stop()
            out["false_deaths"] = false_deaths(c.workdir / "logs", ["admin1", "admin2"], runs)
            out["handoffs"] = handoff_order(c.workdir / "logs", ["admin1", "admin2"])
            out["dual_active"] = len([d for d in obs.dual_active() if d[2] == "vip"])
            out["dual_any"] = len(obs.dual_active())
            out["dual_detail"] = obs.describe()
        except Exception:
            log(crm.logs(tail=4000))
            raise
        finally:
            crm.close()
    return out


# -- keepalived (Debian's package), the same client and cut, for comparison -----------------------------
KEEPALIVED_CONF = """global_defs {{
    router_id {node}
    vrrp_version 3
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 5
}}
vrrp_instance web {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {prio}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""
LIGHTTPD_CONF = """server.document-root = "{root}"
server.port = 80
server.pid-file = "{pid}"
server.modules = ("mod_setenv")
setenv.add-response-header = ("X-Served-By" => "{node}")
index-file.names = ("index.html")
"""


def run_keepalived(advert: str, runs: int, keep: bool, log) -> dict:
    """keepalived VRRPv3 on admin1 (priority 150, preempting) and admin2 (100); lighttpd always runs on
    both, so the client is served wherever the VIP is. Cut / restore admin1 as for hadaemon; a moment
    with the VIP on both connected nodes is counted like the observer does."""
    import shutil
    import threading

    out = {"failover": [], "failback_gap": [], "migrate": [], "dual_active": 0, "dual_any": 0}
    if not shutil.which("keepalived") or not shutil.which("lighttpd"):
        log("keepalived or lighttpd not installed: keepalived comparison skipped")
        return out
    with Cluster(["admin1", "admin2"], client=True, keep=keep) as c:
        net = ".".join(c.addr("admin1").split(".")[:3])
        vip = f"{net}.222"
        w = c.workdir
        for node, prio in (("admin1", 150), ("admin2", 100)):
            d = w / f"ka-{node}"
            (d / "www").mkdir(parents=True, exist_ok=True)
            (d / "www" / "index.html").write_text("ok\n")
            (d / "lighttpd.conf").write_text(LIGHTTPD_CONF.format(root=d / "www", pid=d / "lighttpd.pid", node=node))
            (d / "keepalived.conf").write_text(KEEPALIVED_CONF.format(node=node, prio=prio, advert=advert, vip=vip))
            c.spawn(node, ["lighttpd", "-D", "-f", str(d / "lighttpd.conf")], name="lighttpd")
            c.spawn(node, ["keepalived", "-n", "-l", "-D", "-f", str(d / "keepalived.conf"), "-p", str(d / "ka.pid"),
                           "-r", str(d / "vrrp.pid"), "-c", str(d / "chk.pid")], name="keepalived")
        cut = set()

        def has_vip(node):
            return f" {vip}/" in c.run(node, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout

        stop = threading.Event()

        def observe():
            while not stop.is_set():
                if not cut and has_vip("admin1") and has_vip("admin2"):
                    out["dual_active"] += 1
                stop.wait(0.02)

        obs = threading.Thread(target=observe, daemon=True)
        obs.start()

        def port(node, up):
            run_cmd(["ip", "-n", c.switch, "link", "set", c.port(node, 0), "up" if up else "down"])

        try:
            poller = Poller(c, "client", vip, interval=0.02, name=f"poller-ka{advert}")
            wait_served(poller, time.monotonic(), "admin1", 60)
            for i in range(runs):
                time.sleep(1)
                t = time.monotonic()
                cut.add("admin1")
                port("admin1", False)
                out["failover"].append(wait_served(poller, t, "admin2", 60) - t)
                time.sleep(1)
                t = time.monotonic()
                port("admin1", True)
                cut.discard("admin1")
                t_back = wait_served(poller, t, "admin1", 60)
                time.sleep(1)
                out["failback_gap"].append(poller.longest_gap(t, max(t_back, time.monotonic())))
                log(f"keepalived advert_int {advert} run {i + 1}: failover {out['failover'][-1]:.3f} s, "
                    f"failback gap {out['failback_gap'][-1]:.3f} s, VIP on two so far {out['dual_active']}")
            poller.stop()
        finally:
            stop.set()
            obs.join(5)
    out["dual_any"] = out["dual_active"]
    return out


# -- Pacemaker + Corosync (Debian's packages), the same group, client and cut, for comparison --------------
PING_CLONE = ('<clone id="ping-clone"><primitive id="ping" class="ocf" provider="pacemaker" type="ping">'
              '<instance_attributes id="ping-params">'
              '<nvpair id="ping-host" name="host_list" value="{host}"/>'
              '<nvpair id="ping-name" name="name" value="{attr}"/>'
              '<nvpair id="ping-multiplier" name="multiplier" value="1"/>'
              '<nvpair id="ping-attempts" name="attempts" value="1"/>'
              '<nvpair id="ping-timeout" name="timeout" value="1"/></instance_attributes>'
              '<operations><op id="ping-monitor" name="monitor" interval="1s" timeout="10s"/></operations>'
              '</primitive></clone>')


def run_pacemaker(token: int, runs: int, keep: bool, log) -> dict:
    from hadaemon.testing.pacemaker import PacemakerCluster, pacemaker_missing

    out = {"failover": [], "failback_gap": [], "migrate": [], "migrate_gap": [], "dual_active": 0, "dual_any": 0}
    missing = pacemaker_missing()
    if missing:
        log(f"Pacemaker comparison skipped: {missing}")
        out["skipped"] = missing
        return out
    bound = 90
    with Cluster(["admin1", "admin2"], client=True, keep=keep) as c:
        e = Experiment1(c, groups=("webserver",))
        e.prepare_storage()
        pc = PacemakerCluster(c, initd=e.initd(), token=token)
        try:
            with pc.observer(e.probes(), interval=0.02) as obs:
                pc.start_all(timeout=120)
                pc.configure("admin1", e.resources() + PING_CLONE.format(host=e.ping, attr=e.ping_attribute),
                             e.constraints(), {"stonith-enabled": "false", "no-quorum-policy": "ignore"})
                for r in ("vip", "store", "httpd"):
                    obs.wait(r, ["admin1"], 120)
                before = len(obs.dual_active())   # overlaps while the configuration was loaded
                if before:
                    log(f"pacemaker: the VIP on two nodes while the configuration was loaded: {obs.describe()}")
                poller = Poller(c, "client", e.web_vip, interval=0.02, name=f"poller-pcmk{token}")
                wait_served(poller, time.monotonic(), "admin1", 30)
                for i in range(runs):
                    time.sleep(1)
                    t = time.monotonic()
                    pc.cut("admin1")
                    out["failover"].append(wait_served(poller, t, "admin2", bound) - t)
                    obs.wait_released("admin1", list(obs.probes), bound)
                    time.sleep(1)
                    t = time.monotonic()
                    pc.restore("admin1")
                    t_back = wait_served(poller, t, "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    time.sleep(1)
                    out["failback_gap"].append(poller.longest_gap(t, max(t_back, time.monotonic())))
                    t = time.monotonic()
                    pc.call("admin1", ["crm_resource", "--move", "--resource", "webserver", "--node", "admin2"])
                    t_m = wait_served(poller, t, "admin2", bound)
                    out["migrate"].append(t_m - t)
                    out["migrate_gap"].append(poller.longest_gap(t, t_m))
                    pc.call("admin1", ["crm_resource", "--clear", "--resource", "webserver"])
                    wait_served(poller, time.monotonic(), "admin1", bound)
                    for r in ("vip", "store", "httpd"):
                        obs.wait(r, ["admin1"], bound)
                    log(f"pacemaker token {token} run {i + 1}: failover {out['failover'][-1]:.3f} s, failback gap "
                        f"{out['failback_gap'][-1]:.3f} s, migrate gap {out['migrate_gap'][-1]:.3f} s, "
                        f"overlaps so far {len(obs.dual_active())}")
                poller.stop()
            during = obs.dual_active()[before:]   # the runs only (as for keepalived)
            out["dual_active"] = len([d for d in during if d[2] == "vip"])
            out["dual_any"] = len(during)
            out["dual_detail"] = obs.describe()
            out["dual_at_start"] = before
        except Exception as exc:  # noqa: BLE001 - a comparison that cannot run says why and the bench goes on
            log(f"Pacemaker comparison failed: {exc!r}\n{pc.logs(tail=2000)}")
            out["skipped"] = f"failed: {exc!r}"
        finally:
            pc.close()
    return out


# -- the stages of one failover, from the surviving node's daemon logs ------------------------------------
# (name, node, log, pattern): the first matching line after the event, on the node taking over ("new")
# or the one giving the group up ("old")
STAGES = [  # a failover: from the cut, on the surviving node
    ("dead", "new", "ha-heartbeat", "EVENT=dead]"),
    ("membership", "new", "ha-crmd", "EVENT=membership]"),
    ("dc_elected", "new", "ha-crmd", "EVENT=dc-elected]"),
    ("join_done", "new", "ha-crmd", "EVENT=join-complete]"),
    ("transition", "new", "ha-crmd", "EVENT=transition-start"),
    ("vip_dispatch", "new", "ha-crmd", "EVENT=op-start RESOURCE=vip"),
    ("first_garp", "new", "ha-crmd", "announced "),
    ("vip_done", "new", "ha-crmd", "vip_start_0: "),        # the LRM's line, when the agent returned
    ("store_done", "new", "ha-crmd", "store_start_0: "),
    ("httpd_done", "new", "ha-crmd", "httpd_start_0: "),
    ("recorded", "new", "ha-crmd", "start httpd: rc="),       # recorded and reported (a chain: once it ended)
]
MOVE_STAGES = [  # a failback (from the restore) or a MigrateResource (from the call): a stop then a start
    ("transition", "dc", "ha-crmd", "EVENT=transition-start"),
    ("httpd_stop_sent", "old", "ha-crmd", "stop httpd [EVENT=op-start"),
    ("httpd_stopped", "old", "ha-crmd", "httpd_stop_0: "),   # the LRM's line, when the agent returned
    ("store_stopped", "old", "ha-crmd", "store_stop_0: "),
    ("vip_stop_sent", "old", "ha-crmd", "stop vip [EVENT=op-start"),
    ("armed", "new", "ha-crmd", " armed (handoff helper)"),    # the new node's start waits in the helper
    ("release_sent", "old", "ha-crmd", "release frame sent"),  # the address removed, the frame out
    ("vip_added", "new", "ha-crmd", "Adding inet"),          # by the armed start (release frame)
    ("first_garp", "new", "ha-crmd", "announced "),
    ("vip_stopped", "old", "ha-crmd", "vip_stop_0: "),      # the old node's stop result (after)
    ("handoff", "new", "ha-crmd", "EVENT=handoff"),          # the new node's chain goes on
    ("vip_start_op", "new", "ha-crmd", "start vip [EVENT=op-start"),
    ("vip_started", "new", "ha-crmd", "vip_start_0: "),
    ("store_started", "new", "ha-crmd", "store_start_0: "),
    ("httpd_started", "new", "ha-crmd", "httpd_start_0: "),
    ("recorded", "new", "ha-crmd", "start httpd: rc="),       # recorded and reported (a chain: once it ended)
]


def stages(logdir, table, new: str, old: str, since: float, dc: str = "admin1") -> dict:
    """Seconds from the event (wall clock `since`) to each stage's first log line after it."""
    import datetime

    out = {}
    for name, role, daemon, pattern in table:
        node = {"new": new, "old": old, "dc": dc}[role]
        try:
            lines = (logdir / f"{node}-{daemon}.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if pattern not in line:
                continue
            try:
                ts = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if ts >= since - 0.005:
                out[name] = ts - since
                break
    return out


def handoff_order(logdir, nodes) -> list:
    """(old node's removal, new node's add) of every handoff, from the two helpers' own moments in the
    ha-crmd logs ("release frame sent ... at T" once RTM_DELADDR was acknowledged; "Adding inet address
    ... at T'"): the precise check that the address was never on both (the observer samples every
    20 ms). Each add is paired with the other node's release nearest to it."""
    import re

    pat = re.compile(r"(release frame sent on \S+|Adding inet address \S+ to device \S+) \(.*handoff helper, "
                     r"at (\d\d):(\d\d):(\d\d\.\d+)\)")
    events = []
    for n in nodes:
        try:
            text = (logdir / f"{n}-ha-crmd.log").read_text(errors="replace")
        except OSError:
            continue
        for m in pat.finditer(text):
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            events.append((n, "add" if m.group(1).startswith("Adding") else "rel", t))
    pairs = []
    for n, kind, t in events:
        if kind != "add":
            continue
        rels = [r for r in events if r[1] == "rel" and r[0] != n and abs(r[2] - t) < 1.0]
        if rels:
            pairs.append((min(rels, key=lambda r: abs(r[2] - t))[2], t))
    return pairs


def false_deaths(logdir, nodes, cuts: int) -> int:
    """Peers declared dead by ha-heartbeat beyond the two declarations each cut causes."""
    dead = 0
    for n in nodes:
        try:
            dead += (logdir / f"{n}-ha-heartbeat.log").read_text(errors="replace").count("EVENT=dead]")
        except OSError:
            pass
    return max(0, dead - 2 * cuts)


def stage_summary(name: str, runs, log, what: str = "failover", table=STAGES) -> None:
    if not runs:
        return
    log(f"{name:5} {what} stages (median s after the {'cut' if what == 'failover' else 'event'}):")
    for stage in [st[0] for st in table] + ["served"]:
        v = [r[stage] for r in runs if stage in r]
        if v:
            log(f"        {stage:13} {statistics.median(v):7.3f}  (n={len(v)}, max {max(v):.3f})")


def summary(name: str, r: dict, log) -> None:
    for key in ("failover", "failback_gap", "migrate", "migrate_gap"):
        v = r.get(key)
        if not v:
            continue
        log(f"{name:5} {key:13} n={len(v):2} median {statistics.median(v):7.3f} s  p99 {p99(v):7.3f} s  "
            f"max {max(v):7.3f} s  min {min(v):7.3f} s")
    log(f"{name:5} moments with the VIP on two connected nodes: {r['dual_active']}; with any webserver resource "
        f"on two: {r['dual_any']} ({r.get('dual_detail', '')})")
    if "false_deaths" in r:
        log(f"{name:5} false deaths (ha-heartbeat, beyond the cuts'): {r['false_deaths']}")
    if r.get("handoffs"):
        gaps = sorted((a - rel) * 1e6 for rel, a in r["handoffs"])
        log(f"{name:5} handoffs (helpers' moments): {len(gaps)}, the new node's address added {gaps[0]:.0f} to "
            f"{gaps[-1]:.0f} us (median {statistics.median(gaps):.0f}) after the old node's was removed; "
            f"added before: {sum(1 for g in gaps if g < 0)}")
    for key in ("failback_lost", "migrate_lost"):
        if r.get(key):
            log(f"{name:5} {key}: requests without any answer (given up after 0.2 s) per move: {r[key]} "
                f"({sum(1 for x in r[key] if x)} of {len(r[key])} moves lost one or more)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/failover.py", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per timing set (default 10)")
    ap.add_argument("--timings", choices=["seed", "fast", "fast200", "fast500", "fast100", "both"], default="both",
                    help="both = seed and fast")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (daemon logs)")
    ap.add_argument("--keepalived", default="", metavar="ADVERTS",
                    help="also run keepalived with these advert_int values, e.g. 1,0.1 (same client and cut)")
    ap.add_argument("--pacemaker", default="", metavar="TOKENS",
                    help="also run Pacemaker + Corosync with these totem tokens (ms), e.g. 1000")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/failover.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    def log(text):
        print(text, flush=True)

    load0 = os.getloadavg()[0]
    sets = ["seed", "fast"] if args.timings == "both" else [args.timings]
    results = {}
    for name in sets:
        t = TIMINGS[name]
        log(f"== {name} timings: keepalive {t['keepalive']}, deadtime {t['deadtime']}; {args.runs} runs")
        results[name] = run_set(name, args.runs, args.keep, log)
        summary(name, results[name], log)
        stage_summary(name, results[name].get("stages"), log)
        stage_summary(name, results[name].get("failback_stages"), log, "failback (from the restore)",
                      MOVE_STAGES)
        stage_summary(name, results[name].get("migrate_stages"), log, "migrate (from the call)", MOVE_STAGES)
    main_set = results.get("seed") or results[sets[-1]]
    fields = [f"failover_median_s={statistics.median(main_set['failover']):.3f}",
              f"failover_p99_s={p99(main_set['failover']):.3f}",
              f"failback_gap_s={statistics.median(main_set['failback_gap']):.3f}",
              f"migrate_median_s={statistics.median(main_set['migrate']):.3f}",
              f"migrate_gap_s={statistics.median(main_set['migrate_gap']):.3f}",
              f"dual_active={sum(r['dual_active'] for r in results.values())}",
              f"false_deaths={sum(r.get('false_deaths', 0) for r in results.values())}",
              f"handoff_added_before_removed={sum(1 for r in results.values() for rel, a in r.get('handoffs', ()) if a < rel)}"]
    if "seed" in results and "fast" in results:
        f = results["fast"]
        fields += [f"fast_failover_median_s={statistics.median(f['failover']):.3f}",
                   f"fast_failover_p99_s={p99(f['failover']):.3f}",
                   f"fast_failback_gap_s={statistics.median(f['failback_gap']):.3f}",
                   f"fast_migrate_median_s={statistics.median(f['migrate']):.3f}"]
    ka = {}
    for advert in [a for a in args.keepalived.split(",") if a]:
        log(f"== keepalived advert_int {advert}; {args.runs} runs")
        ka[advert] = run_keepalived(advert, args.runs, args.keep, log)
        summary(f"ka{advert}", ka[advert], log)
    if ka:
        best = ka[min(ka, key=float)]
        if best["failover"]:
            km = statistics.median(best["failover"])
            ours = statistics.median((results.get("fast") or main_set)["failover"])
            fields += [f"keepalived_median_s={km:.3f}", f"keepalived_p99_s={p99(best['failover']):.3f}",
                       f"keepalived_failback_gap_s={statistics.median(best['failback_gap']):.3f}",
                       f"keepalived_dual_active={sum(r['dual_active'] for r in ka.values())}",
                       f"ratio_keepalived={ours / km:.2f}"]
    for token in [int(x) for x in args.pacemaker.split(",") if x]:
        log(f"== Pacemaker + Corosync, token {token} ms; {args.runs} runs")
        pm = run_pacemaker(token, args.runs, args.keep, log)
        summary(f"pcmk{token}", pm, log)
        if pm["failover"] and not pm.get("skipped"):
            pmed = statistics.median(pm["failover"])
            ours = statistics.median((results.get("fast") or main_set)["failover"])
            fields += [f"pacemaker_median_s={pmed:.3f}", f"pacemaker_p99_s={p99(pm['failover']):.3f}",
                       f"pacemaker_failback_gap_s={statistics.median(pm['failback_gap']):.3f}",
                       f"pacemaker_migrate_gap_s={statistics.median(pm['migrate_gap']):.3f}",
                       f"pacemaker_dual_active={pm['dual_active']}", f"ratio_pacemaker={ours / pmed:.2f}"]
        else:
            fields.append("pacemaker=skipped")
    fields.append(f"runs={args.runs} timings={args.timings} load_avg={load0:.1f} load_avg_end={os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(fields), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
