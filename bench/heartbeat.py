#!/usr/bin/env python3
"""Benchmark ha-heartbeat in namespaces: dead-detection latency after a link cut, daemon CPU% and RSS.

For each cluster size (default 3, 16 and 32 nodes; keepalive 100ms, deadtime 500ms) the bench starts a
daemon per node (with its D-Bus export, as in production), measures how long the membership took to form
after the last daemon started, counts false deaths (a node logged dead that no cut explains), measures each daemon's CPU% and RSS over a
quiet window from /proc/PID/stat and /proc/PID/status, then cuts one node's link repeatedly and takes,
for every other node, the time from the cut to that node's "is dead" event (its log timestamp). The cut is
a netlink request made from this process (a socket opened in the namespace beforehand) and timed when it
returns, i.e. when the kernel has set the link down; each "is dead" line's "silent for" (the silence the
daemon judged: deadtime plus its own lateness) is reported too.
Then (--flood SECONDS, default 8; 0 skips it) the attack of issue 13: 3 nodes at keepalive 200ms /
deadtime 1s and an attacker namespace on the link flooding node1 as fast as two processes send (C, sendmmsg
in batches of 256: hadaemon.testing.flood.NATIVE_FLOODER; --flood-python: the Python loop), first
with one captured genuine packet replayed, then with random datagrams (half of them with the protocol's
header, so each costs a digest). For each: the attacker's rate, what node1 dropped, the kernel's receive
buffer overflows in node1's namespace, the gaps between consecutive heartbeats accepted by every
receiver (from the daemons' debug logs; p99 and max) and the false deaths (any node declared dead).
A quiet window of the same length gives the baseline gaps.
With --load (issue 10's "no false deaths" run) each size runs at --keepalive/--deadtime (defaults then
50ms / 200ms) with a CPU hog (a busy shell loop) in every node's namespace and --msg-rate messages a
second (default 1,000) sent with Heartbeat1.Send over D-Bus around the ring of nodes (one sending and
receiving process per node, as the CRMs would), for --window seconds; it counts every membership change
after formation. Every size also reports, per daemon, how long its threads waited on the run queue
(/proc/PID/task/*/schedstat: mean per wake-up and the largest mean) and the heartbeats its sender thread
logged as late.
Needs root. Ends with `RESULT ...` for the largest cluster, plus the flood figures.
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hadaemon.core.heartbeat.hacf import parse_time  # noqa: E402
from hadaemon.testing.corosync import CorosyncCluster, corosync_missing  # noqa: E402
from hadaemon.testing.flood import capture_payloads, flood, heartbeat_gaps  # noqa: E402
from hadaemon.testing.flood import log_events as state_events  # noqa: E402
from hadaemon.testing.heartbeat import HeartbeatCluster  # noqa: E402
from hadaemon.testing.netns import Cluster  # noqa: E402
from hadaemon.testing.procs import wait_until  # noqa: E402

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: node (\S+) is (dead|up) ")
SILENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: node (\S+) is dead "
                    r"\(silent for ([\d.]+)s\)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log_events(text):
    """[(epoch seconds, node, 'dead'|'up')] from a daemon log."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((t, m.group(2), m.group(3)))
    return out


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


CLONE_NEWNET, RTM_NEWLINK, NLMSG_ERROR, NLM_F_REQUEST, NLM_F_ACK, IFF_UP = 0x40000000, 16, 2, 1, 4, 1


class Cutter:
    """Sets a member's links down and up from this process with one netlink request each (a NETLINK_ROUTE
    socket opened in the member's namespace beforehand): the cut's timestamp is taken when the kernel has
    confirmed the link down, not before an `ip link set` subprocess that a loaded host may take 100 ms to
    fork and run. (pyroute2 0.9.7's IPRoute(netns=...) gave a second instance in the same process a
    namespace with only lo: plain sockets here.)"""

    def __init__(self, cluster, names):
        import ctypes
        import socket

        self._socket = socket
        libc = ctypes.CDLL(None, use_errno=True)

        def setns(fd):
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))

        self.sock, self.index, self.seq = {}, {}, 0
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for x in names:
                target = os.open(f"/run/netns/{cluster.netns(x)}", os.O_RDONLY)
                try:
                    setns(target)   # this thread only; a socket stays in the namespace it was made in
                    try:
                        self.sock[x] = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                        self.sock[x].bind((0, 0))
                        self.index[x] = [socket.if_nametoindex(f"eth{k}") for k in range(cluster.links)]
                    finally:
                        setns(own)
                finally:
                    os.close(target)
        except BaseException:
            self.close()   # none left open while the error is handled (an open one keeps its namespace)
            raise
        finally:
            os.close(own)

    def set(self, name, state):
        """(time.time() before, after) the netlink request(s) setting every link of `name` `state`. The
        request runs SCHED_FIFO above the daemons' real-time priorities (then back): a bench process of
        normal priority on a loaded host can be preempted between the kernel's change and the timestamp
        (seen: 163 ms), which would make the detection look faster than it is."""
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        except OSError:
            pass   # not permitted: the request's duration (printed) bounds the error
        try:
            return self._set(name, state)
        finally:
            os.sched_setscheduler(0, policy, param)

    def _set(self, name, state):
        import struct

        t0 = time.time()
        for idx in self.index[name]:
            self.seq += 1
            body = struct.pack("=BxHiII", self._socket.AF_UNSPEC, 0, idx, IFF_UP if state == "up" else 0, IFF_UP)
            self.sock[name].send(struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK,
                                             self.seq, 0) + body)
            reply = self.sock[name].recv(65536)
            kind, err = struct.unpack_from("=H", reply, 4)[0], struct.unpack_from("=i", reply, 16)[0]
            if kind != NLMSG_ERROR or err:
                raise OSError(-err, f"setting {name}'s link {idx} {state}: {os.strerror(-err)}")
        return t0, time.time()

    def close(self):
        for sock in self.sock.values():
            sock.close()
        self.sock.clear()


def silences(hb, observers, marks, victim, since):
    """[seconds] each observer's "is dead (silent for S)" of `victim` says (S: from the last packet it
    accepted of the victim to the moment it judged it dead, i.e. deadtime + the daemon's own lateness)."""
    out = []
    for x in observers:
        for m in map(SILENT.match, hb.procs[x].output()[marks[x]:].splitlines()):
            if m and m.group(2) == victim and _ts(m.group(1)) >= since - 0.01:
                out.append(float(m.group(3)))
                break
    return out


def all_saw(hb, observers, marks, victim, state, since):
    """{observer: time it logged `victim` `state`} once every observer did (else None)."""
    seen = {}
    for x in observers:
        for t, node, st in log_events(hb.procs[x].output()[marks[x]:]):
            if node == victim and st == state and t >= since - 0.01:
                seen.setdefault(x, t)
    return seen if len(seen) == len(observers) else None


MEMBERSHIP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: membership epoch \d+: (.*?)(?: \[|$)")
STARTED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: node \S+ generation \d+ started")


def _ts(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def formation(hb, nodes):
    """(seconds from the last daemon's start to the last daemon seeing every node a member, from the
    daemons' logs, or None when some daemon never logged the full membership)."""
    last_start, full_at = 0.0, 0.0
    for x in nodes:
        out = hb.procs[x].output()
        starts = [_ts(m.group(1)) for m in map(STARTED.match, out.splitlines()) if m]
        if starts:
            last_start = max(last_start, starts[-1])
        fulls = [_ts(m.group(1)) for m in map(MEMBERSHIP.match, out.splitlines())
                 if m and len(m.group(2).split()) == len(nodes)]
        if not fulls:
            return None
        full_at = max(full_at, fulls[0])
    return full_at - last_start


def false_deaths(hb, nodes, since, cuts):
    """[(observer, node, time)] of every 'node X is dead' logged at or after `since` that no cut explains
    (cuts: [(victim, t_cut, t_back)]: a death of the victim logged between its cut and its return)."""
    out = []
    for o in nodes:
        for t, node, st in log_events(hb.procs[o].output()):
            if st != "dead" or t < since:
                continue
            if any(v == node and t_cut - 0.01 <= t <= t_back + 0.01 for v, t_cut, t_back in cuts):
                continue
            out.append((o, node, t))
    return out


def _corosync_pid(pid):
    """The corosync process started through ip netns exec / unshare / sh (each execs the next)."""
    for _ in range(4):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "corosync":
            return pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not kids:
            break
        pid = int(kids[0])
    raise RuntimeError(f"no corosync process under {pid}")


def schedstat(pid):
    """(ns on the CPU, ns waiting on a run queue, times run) summed over the process's threads."""
    tot = [0, 0, 0]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            vals = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue
        if len(vals) < 3:   # a thread exiting while it is read: an empty file
            continue
        for i in range(3):
            tot[i] += int(vals[i])
    return tot


def membership_changes(hb, nodes, since):
    """[(observer, time, members)] of every 'membership epoch' line logged at or after `since`."""
    out = []
    for o in nodes:
        for line in hb.procs[o].output().splitlines():
            m = MEMBERSHIP.match(line)
            if m and _ts(m.group(1)) >= since:
                out.append((o, _ts(m.group(1)), m.group(2)))
    return out


LATE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: heartbeat sent (\d+) ms late")


def late_beats(hb, nodes, since):
    """[(node, ms late)] of the heartbeats each sender thread logged as late at or after `since`."""
    out = []
    for o in nodes:
        for m in map(LATE.match, hb.procs[o].output().splitlines()):
            if m and _ts(m.group(1)) >= since:
                out.append((o, int(m.group(2))))
    return out


def send_load(address, dst, rate, seconds, start_at):
    """--send-load: Heartbeat1.Send to `dst` at `rate` a second for `seconds` on one node's bus, counting
    the MessageReceived signals of the node meanwhile; prints one JSON line. Sending starts at `start_at`
    (wall clock, the same for every node's process: each one listens before any message is sent)."""
    from hadaemon.testing.heartbeat import BusClient

    async def run():
        bus = await BusClient(address).connect()
        got = {"n": 0}
        bus.on_signal(lambda member, args: got.__setitem__("n", got["n"] + (member == "MessageReceived")))
        sent = errors = 0
        inflight = set()
        body = b"x" * 200
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < seconds:
            due = t0 + k / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            k += 1

            async def one():
                nonlocal sent, errors
                try:
                    await bus.send(dst, "load", body)
                    sent += 1
                except Exception:  # noqa: BLE001 - Busy / NodeDown are counted, the load goes on
                    errors += 1
            t = asyncio.ensure_future(one())
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            if len(inflight) > 200:   # the daemon is behind: do not pile up calls without bound
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        if inflight:
            await asyncio.wait(inflight, timeout=10)
        took = time.monotonic() - t0
        last, quiet_since = -1, time.monotonic()   # count until nothing more arrives for 2 s (at most 20 s)
        while time.monotonic() - t0 < seconds + 20 and time.monotonic() - quiet_since < 2.0:
            if got["n"] != last:
                last, quiet_since = got["n"], time.monotonic()
            await asyncio.sleep(0.1)
        bus.close()
        return {"sent": sent, "errors": errors, "received": got["n"], "seconds": took}

    print(json.dumps(asyncio.run(run())), flush=True)


def run_size(n, cuts, window, keepalive="100ms", deadtime="500ms", initdead="10", stack="heartbeat", token=1000,
             nice=-10, token_coefficient=None, warntime=None, realtime=True, load=False, msg_rate=1000):
    nodes = [f"n{i + 1}" for i in range(n)]
    with Cluster(nodes) as c:
        cs_pids = {}
        if stack == "corosync":
            cs = CorosyncCluster(c, token=token, token_coefficient=token_coefficient)
            cs.start_all()
            cs.wait_ring(timeout=180)
            cs_pids = {x: _corosync_pid(cs.procs[x].pid) for x in nodes}
            hb = HeartbeatCluster(c, extra=["stack corosync"] + ([] if realtime else ["realtime off"]))
        else:
            hb = HeartbeatCluster(c, keepalive=keepalive, deadtime=deadtime, initdead=initdead, warntime=warntime,
                                  extra=[] if realtime else ["realtime off"])
        hb.start_all()
        for x in nodes:   # the unit's Nice=-10 (units/ha-heartbeat.service): the machine is shared
            os.setpriority(os.PRIO_PROCESS, hb.procs[x].pid, nice)
        for o in (nodes[0], nodes[-1]):
            hb.wait_states(o, {x: "up" for x in nodes}, timeout=60)
        wait_until(lambda: all(hb.props(o)["Members"] == sorted(nodes) for o in nodes), 60, interval=0.2,
                   message="full membership everywhere")
        wait_until(lambda: formation(hb, nodes) is not None, 30, interval=0.2, message="membership logs")
        formed = formation(hb, nodes)
        since = time.time()
        # deaths logged while the daemons were starting (before every daemon saw the full membership)
        startup_deaths = sum(1 for o in nodes for t, x, st in log_events(hb.procs[o].output()) if st == "dead")
        pids = {x: hb.procs[x].pid for x in nodes}
        for x, pid in pids.items():
            assert "hadaemon.daemons.heartbeat" in Path(f"/proc/{pid}/cmdline").read_text(), x
        # steady state: CPU and RSS of every daemon (with --load: under the hogs and the messages)
        hogs, senders = [], {}
        if load:
            for x in nodes:
                hogs.append(c.spawn(x, ["sh", "-c", "while :; do :; done"], name="hog"))
            start_at = time.time() + 3.0
            for i, x in enumerate(nodes):
                argv = [sys.executable, str(Path(__file__).resolve()), "--send-load",
                        f"{c.dbus(x)},{nodes[(i + 1) % n]},{msg_rate / n:g},{window:g},{start_at:.3f}"]
                senders[x] = c.spawn(x, argv, name="load")
            time.sleep(max(0.0, start_at - time.time()))
        load0 = os.getloadavg()[0]
        if window >= 60:
            print(f"  steady window of {window:g} s (load average {load0:.2f} at its start)", flush=True)
        since = time.time()
        t0, ticks0 = time.monotonic(), {x: cpu_ticks(p) for x, p in pids.items()}
        sched0 = {x: schedstat(p) for x, p in pids.items()}
        cs_ticks0 = {x: cpu_ticks(p) for x, p in cs_pids.items()}
        time.sleep(window)
        load1 = os.getloadavg()[0]
        elapsed = time.monotonic() - t0
        sched1 = {x: schedstat(p) for x, p in pids.items()}
        changes = membership_changes(hb, nodes, since)
        late = late_beats(hb, nodes, since)
        cpu = {x: 100.0 * (cpu_ticks(p) - ticks0[x]) / CLK_TCK / elapsed for x, p in pids.items()}
        waits = {x: (sched1[x][1] - sched0[x][1]) / max(1, sched1[x][2] - sched0[x][2]) / 1e6 for x in nodes}
        load_stats = {}
        if load:
            for h in hogs:
                h.terminate()
            for x, p in senders.items():
                p.wait(60)
                lines = [ln for ln in p.output().splitlines() if ln.startswith("{")]
                load_stats[x] = json.loads(lines[-1]) if lines else {"sent": 0, "errors": 0, "received": 0,
                                                                     "seconds": window}
        cs_cpu = {x: 100.0 * (cpu_ticks(p) - cs_ticks0[x]) / CLK_TCK / elapsed for x, p in cs_pids.items()}
        rss = {x: rss_mb(p) for x, p in pids.items()}
        steady_false = false_deaths(hb, nodes, since, [])
        # repeated cuts
        latencies, cut_log, cut_cmd, silent, from_req = [], [], [], [], []
        coef = 650 if token_coefficient is None else token_coefficient
        bound = 30 if stack == "heartbeat" else 30 + 3 * (token + max(0, n - 2) * coef) / 1000
        victims = [nodes[1 + r % (n - 1)] for r in range(cuts)]
        cutter = Cutter(c, sorted(set(victims)))
        try:
            for victim in victims:
                observers = [x for x in nodes if x != victim]
                marks = {x: len(hb.procs[x].output()) for x in observers}
                t_req, t_cut = cutter.set(victim, "down")   # t_cut: the kernel has set the link down
                cut_cmd.append(1000.0 * (t_cut - t_req))

                dead = wait_until(lambda: all_saw(hb, observers, marks, victim, "dead", t_req), bound,  # noqa: B023
                                  interval=0.05, message=f"everyone to see {victim} dead")
                latencies += [1000.0 * (t - t_cut) for t in dead.values()]
                from_req += [1000.0 * (t - t_req) for t in dead.values()]
                silent += [1000.0 * s for s in silences(hb, observers, marks, victim, t_req)]
                marks = {x: len(hb.procs[x].output()) for x in observers}
                t_restore, _ = cutter.set(victim, "up")
                wait_until(lambda: all_saw(hb, observers, marks, victim, "up", t_restore), bound,  # noqa: B023
                           interval=0.05, message=f"{victim} back up")
                cut_log.append((victim, t_req, time.time()))
                time.sleep(0.3)
        finally:
            cutter.close()
        time.sleep(1.0)   # a death caused late shows within deadtime
        fd = false_deaths(hb, nodes, since, cut_log)
        # while cut, the victim itself sees every other node dead: that is the cut too
        fd = [(o, x, t) for o, x, t in fd if not any(o == v and t_cut - 0.01 <= t <= t_back + 1.0
                                                     for v, t_cut, t_back in cut_log)]
        return {"n": n, "latencies": latencies, "cpu": cpu, "rss": rss, "cuts": cuts, "formed": formed,
                "initdead": initdead, "false": fd, "steady_false": steady_false, "load": load0,
                "window": window, "cs_cpu": cs_cpu, "startup_deaths": startup_deaths, "load_end": load1,
                "changes": changes, "late": late, "waits": waits, "load_stats": load_stats, "cut_cmd": cut_cmd,
                "silent": silent, "from_req": from_req}


def _rcvbuf_errors(c, node):
    from hadaemon.testing.procs import run_cmd

    cp = run_cmd(["ip", "netns", "exec", c.netns(node), "nstat", "-az", "UdpRcvbufErrors"], check=False)
    for line in cp.stdout.splitlines():
        if line.startswith("UdpRcvbufErrors"):
            return int(line.split()[1])
    return 0


def run_flood(seconds, procs=2, native=True):
    """Quiet window, replay flood, random flood on a 3-node cluster; figures per phase."""
    nodes = ["node1", "node2", "node3"]
    phases = {}
    with Cluster(nodes, client=True) as c:
        hb = HeartbeatCluster(c, keepalive="200ms", deadtime="1", initdead="3")
        for n in nodes:
            hb.write_config(n, extra=[f"debugfile {hb.dir(n) / 'debug.log'}"])
        hb.start_all()
        for n in nodes:
            hb.wait_states(n, {x: "up" for x in nodes}, timeout=30)
        genuine = [p for p in capture_payloads(c, "node1", "node2", 0.8) if p[:2] == b"HD"][:1]
        time.sleep(1.0)
        for phase in ("quiet", "replay", "random"):
            before, buf0 = hb.props("node1")["DropCounters"], _rcvbuf_errors(c, "node1")
            t0 = time.time()
            if phase == "quiet":
                time.sleep(seconds)
                sent, took = 0, seconds
            else:
                sent, took = flood(c, "client", phase, c.addr("node1"), seconds, genuine, procs=procs,
                                   native=native)
            t1 = time.time()
            time.sleep(1.5)   # a death caused by the flood shows up within deadtime after it
            after = hb.props("node1")["DropCounters"]
            gaps = []
            for n in nodes:
                text = (hb.dir(n) / "debug.log").read_text(errors="replace")
                for g in heartbeat_gaps(text, t0, t1).values():
                    gaps += g
            dead = [(o, x) for o in nodes for t, x, st in state_events(hb.procs[o].output(), t0)
                    if st == "dead" and t <= t1 + 1.5]
            phases[phase] = {
                "sent": sent, "rate": sent / took if took else 0.0,
                "dropped": {k: after[k] - before[k] for k in after if after[k] != before[k]},
                "rcvbuf_errors": _rcvbuf_errors(c, "node1") - buf0,
                "gap_p99_ms": 1000 * percentile(gaps, 99), "gap_max_ms": 1000 * max(gaps, default=float("nan")),
                "gaps": len(gaps), "false_deaths": len(dead), "dead": dead}
    return phases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3,16,32", help="cluster sizes, comma separated (default 3,16,32)")
    ap.add_argument("--cuts", type=int, default=20, help="link cuts per size (default 20)")
    ap.add_argument("--window", type=float, default=10.0, help="seconds of steady state for CPU%% (default 10)")
    ap.add_argument("--stack", choices=("heartbeat", "corosync"), default="heartbeat",
                    help="membership stack (corosync: a Corosync 3 per node, ha-heartbeat with 'stack corosync')")
    ap.add_argument("--token", type=int, default=1000, help="corosync totem token in ms (default 1000)")
    ap.add_argument("--token-coefficient", type=int, default=None,
                    help="corosync token_coefficient in ms (default: corosync's, 650 per node above 2)")
    ap.add_argument("--nice", type=int, default=-10,
                    help="nice value of the daemons (default -10, as units/ha-heartbeat.service sets)")
    ap.add_argument("--initdead", default="10", help="ha.cf initdead (default 10 s: 32 daemons take seconds to start)")
    ap.add_argument("--flood", type=float, default=8.0, help="seconds of each flood (default 8; 0: no flood)")
    ap.add_argument("--flood-procs", type=int, default=2, help="attacker processes sending (default 2)")
    ap.add_argument("--flood-python", action="store_true",
                    help="flood with Python sendto loops instead of the C sendmmsg flooder (about half the rate)")
    ap.add_argument("--keepalive", default=None, help="ha.cf keepalive (default 100ms; 50ms with --load)")
    ap.add_argument("--deadtime", default=None, help="ha.cf deadtime (default 500ms; 200ms with --load)")
    ap.add_argument("--warntime", default=None, help="ha.cf warntime (default: deadtime / 2)")
    ap.add_argument("--realtime", choices=("on", "off"), default="on",
                    help="ha.cf realtime (default on, as ha.cf's default: SCHED_RR, memory locked)")
    ap.add_argument("--load", action="store_true",
                    help="issue 10's run: a CPU hog in every node's namespace and --msg-rate messages a second "
                         "between the nodes during the steady window; counts membership changes")
    ap.add_argument("--msg-rate", type=float, default=1000.0, help="messages a second in all with --load (default 1000)")
    ap.add_argument("--send-load", help=argparse.SUPPRESS)   # ADDRESS,DST,RATE,SECONDS: one node's load process
    args = ap.parse_args(argv)
    if args.send_load:
        address, dst, rate, seconds, start_at = args.send_load.rsplit(",", 4)
        send_load(address, dst, float(rate), float(seconds), float(start_at))
        return 0
    keepalive = args.keepalive or ("50ms" if args.load else "100ms")
    deadtime = args.deadtime or ("200ms" if args.load else "500ms")
    if os.geteuid() != 0:
        print("bench/heartbeat.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.stack == "corosync" and corosync_missing():
        print(f"bench/heartbeat.py: --stack corosync: {corosync_missing()}", file=sys.stderr)
        return 2
    results = []
    for n in [int(x) for x in args.sizes.split(",") if x.strip()]:
        if args.stack == "corosync":
            coef = 650 if args.token_coefficient is None else args.token_coefficient
            print(f"== {n} nodes on corosync, token {args.token} ms, token_coefficient {coef} ms (runtime token "
                  f"{args.token + max(0, n - 2) * coef} ms), {args.cuts} cuts", flush=True)
        else:
            print(f"== {n} nodes, keepalive {keepalive}, deadtime {deadtime}"
                  + (f", warntime {args.warntime}" if args.warntime else "")
                  + f", realtime {args.realtime}, {args.cuts} cuts"
                  + (f"; load: a CPU hog per node namespace and {args.msg_rate:g} messages/s" if args.load else ""),
                  flush=True)
        res = run_size(n, args.cuts, args.window, keepalive=keepalive, deadtime=deadtime, warntime=args.warntime,
                       initdead=args.initdead, stack=args.stack, token=args.token, nice=args.nice,
                       token_coefficient=args.token_coefficient, realtime=args.realtime == "on", load=args.load,
                       msg_rate=args.msg_rate)
        lat = res["latencies"]
        cpu, rss = list(res["cpu"].values()), list(res["rss"].values())
        nan = float("nan")
        res.update(median=statistics.median(lat) if lat else nan, p99=percentile(lat, 99),
                   mn=min(lat, default=nan), mx=max(lat, default=nan),
                   cpu_mean=statistics.mean(cpu), cpu_max=max(cpu), rss_mean=statistics.mean(rss), rss_max=max(rss))
        print(f"  membership formed {res['formed']:.2f} s after the last daemon started (initdead {res['initdead']} s); "
              f"load average {res['load']:.2f} / {res['load_end']:.2f} at the start / end of the steady window",
              flush=True)
        print(f"  false deaths: {len(res['false'])} ({len(res['steady_false'])} in the {res['window']:g} s steady "
              f"window) {res['false'][:10] or ''}; {res['startup_deaths']} death(s) logged while the daemons "
              f"started, before the membership formed", flush=True)
        print(f"  detection latency over {len(lat)} observations: median {res['median']:.0f} ms, "
              f"p99 {res['p99']:.0f} ms, min {res['mn']:.0f} ms, max {res['mx']:.0f} ms "
              + (f"(bound deadtime + 2 x keepalive = {1000 * (parse_time(deadtime) + 2 * parse_time(keepalive)):.0f} ms)"
                 if args.stack == "heartbeat" else
                 "(corosync: runtime token + consensus, 1.2 x runtime token)"))
        if res["cut_cmd"]:
            print(f"  (measured from the moment the netlink request setting the link down returned; the request "
                  f"took median {statistics.median(res['cut_cmd']):.1f} ms, max {max(res['cut_cmd']):.1f} ms; "
                  f"from the request's start: median {statistics.median(res['from_req']):.0f} ms, "
                  f"max {max(res['from_req']):.0f} ms)", flush=True)
        if res["silent"]:
            res["silent_median"] = statistics.median(res["silent"])
            print(f"  silence at the moment of judging dead (the daemon's 'silent for'): median "
                  f"{res['silent_median']:.0f} ms, max {max(res['silent']):.0f} ms (deadtime {deadtime}; the rest "
                  f"of the detection latency is the time between the victim's last heartbeat and the cut)",
                  flush=True)
        print(f"  daemon CPU over {args.window:g} s steady state: mean {res['cpu_mean']:.2f}% max {res['cpu_max']:.2f}% "
              f"of one core per daemon; RSS mean {res['rss_mean']:.1f} MB max {res['rss_max']:.1f} MB", flush=True)
        waits = list(res["waits"].values())
        res["wait_mean"], res["wait_max"] = statistics.mean(waits), max(waits)
        late = [ms for _, ms in res["late"]]
        print(f"  membership changes during the {res['window']:g} s window: {len(res['changes'])} "
              f"{res['changes'][:5] or ''}; late heartbeats logged by the senders: {len(late)}"
              + (f" (max {max(late)} ms late)" if late else ""), flush=True)
        print(f"  run-queue wait per wake-up (schedstat, all threads): mean over daemons {res['wait_mean']:.3f} ms, "
              f"largest daemon mean {res['wait_max']:.3f} ms", flush=True)
        if res["load_stats"]:
            ls = res["load_stats"].values()
            sent, errs, recv = (sum(x[k] for x in ls) for k in ("sent", "errors", "received"))
            secs = max(x["seconds"] for x in ls)
            res["msg_rate"] = sent / secs if secs else 0.0
            print(f"  load: {sent} messages sent ({res['msg_rate']:.0f}/s), {errs} refused, {recv} received",
                  flush=True)
        if res["cs_cpu"]:
            res["cs_cpu_mean"] = statistics.mean(res["cs_cpu"].values())
            print(f"  corosync CPU over the same window: mean {res['cs_cpu_mean']:.2f}% "
                  f"max {max(res['cs_cpu'].values()):.2f}% of one core per corosync", flush=True)
        results.append(res)
    fields = []
    if results:
        last = results[-1]
        fields += [f"nodes={last['n']}", f"detect_median_ms={last['median']:.0f}", f"detect_p99_ms={last['p99']:.0f}",
                   f"cpu_pct={last['cpu_mean']:.2f}", f"rss_mb={last['rss_max']:.1f}",
                   f"formed_s={last['formed']:.2f}", f"stack={args.stack}"]
        if "silent_median" in last:
            fields += [f"dead_silence_median_ms={last['silent_median']:.0f}"]
        if args.stack == "corosync":
            fields += [f"token_ms={args.token}", f"token_coefficient_ms={args.token_coefficient}",
                       f"corosync_cpu_pct={last.get('cs_cpu_mean', 0):.2f}"]
        fields += [
                   f"false_deaths={sum(len(r['false']) for r in results)}",
                   f"startup_deaths={last['startup_deaths']}",
                   f"membership_changes={len(last['changes'])}", f"late_heartbeats={len(last['late'])}",
                   f"runq_wait_ms={last['wait_mean']:.3f}", f"runq_wait_max_ms={last['wait_max']:.3f}",
                   f"realtime={args.realtime}", f"keepalive={keepalive}", f"deadtime={deadtime}",
                   f"load_avg={last['load']:.1f}", f"load_avg_end={last['load_end']:.1f}"]
        if args.load:
            fields += [f"msgs_per_s={last.get('msg_rate', 0):.0f}"]
    if args.flood > 0 and args.stack == "heartbeat":
        print(f"== flood: 3 nodes, keepalive 200ms, deadtime 1s, {args.flood:g} s per phase, attacker -> node1 "
              f"({args.flood_procs} sending processes, {'Python sendto' if args.flood_python else 'C sendmmsg'})",
              flush=True)
        ph = run_flood(args.flood, args.flood_procs, native=not args.flood_python)
        for name, f in ph.items():
            print(f"  {name:6s}: attacker {f['sent']} datagrams ({f['rate']:.0f}/s); node1 dropped {f['dropped']}; "
                  f"kernel UdpRcvbufErrors +{f['rcvbuf_errors']}; heartbeat gaps at the receivers over "
                  f"{f['gaps']} heartbeats: p99 {f['gap_p99_ms']:.0f} ms, max {f['gap_max_ms']:.0f} ms; "
                  f"false deaths {f['false_deaths']} {f['dead'] or ''}", flush=True)
        fields += [f"flood_replay_rate={ph['replay']['rate']:.0f}", f"flood_random_rate={ph['random']['rate']:.0f}",
                   f"quiet_gap_p99_ms={ph['quiet']['gap_p99_ms']:.0f}",
                   f"flood_replay_gap_p99_ms={ph['replay']['gap_p99_ms']:.0f}",
                   f"flood_random_gap_p99_ms={ph['random']['gap_p99_ms']:.0f}",
                   f"flood_gap_max_ms={max(ph['replay']['gap_max_ms'], ph['random']['gap_max_ms']):.0f}",
                   f"flood_false_deaths={ph['replay']['false_deaths'] + ph['random']['false_deaths']}"]
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
