"""The README demo: the reference scenario's two experiments on a cluster of network namespaces.

Experiment 1: admin1 and admin2 run ha-heartbeat + ha-crmd; group webserver (VIP .222, the shared
store bind-mounted by ocf:heartbeat:Filesystem, lighttpd as lsb:httpd) prefers admin1, group mysql
(VIP .220, its store, MariaDB as lsb:mysqld) prefers admin2; a client namespace requests the page
through the VIP. admin1's network is cut (webserver moves to admin2), restored (it fails back:
auto_failback on), admin2 is cut (admin1 takes mysql), and `busctl call ... MigrateResource ss
webserver admin2` moves a group. Experiment 2: a VIP + ldirectord group on two directors; the active
one is halted (powered off through the fence agent's power switch) and the group moves while the client
keeps being served by the real servers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.scenario import Experiment1, Experiment2, Poller

NODES = ["admin1", "admin2"]
KEEPALIVE, DEADTIME = "200ms", "3"


class Show:
    """Timestamped lines relative to the demo's start."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, text: str = "", indent: bool = False) -> None:
        if indent:
            for line in text.rstrip().splitlines():
                print(f"{'':12}{line}")
        else:
            print(f"[{time.monotonic() - self.t0:7.2f}s] {text}")
        sys.stdout.flush()


class DemoFailed(Exception):
    pass


def wait_groups(show, obs, crm, placement: dict, timeout: float = 90) -> float:
    """Wait until every member of each group is active on exactly the given node."""
    deadline = time.monotonic() + timeout
    for group, node in placement.items():
        for member in Experiment1.GROUPS.get(group, ()) or (group,):
            left = max(1.0, deadline - time.monotonic())
            try:
                obs.wait(member, [node], left)
            except TimeoutError as exc:
                show(f"{exc}")
                show(crm.logs(tail=3000), indent=True)
                raise DemoFailed(f"{group} did not run on {node}") from None
    return time.monotonic()


def hactl_status(show, crm, node: str) -> None:
    cp = crm.hactl(node, "status")
    show(f"hactl status (on {node}):")
    show(cp.stdout or cp.stderr or "(no output)", indent=True)


def client_web(show, e: Experiment1) -> None:
    ok, served, body = e.web()
    title = body.split("<h1>")[1].split("</h1>")[0] if "<h1>" in body else body.strip()[:60]
    show(f"client: GET http://{e.web_vip}/ -> {'200' if ok else 'FAILED'} \"{title}\" (X-Served-By: {served or '-'})")


def client_sql(show, e: Experiment1) -> None:
    cp = e.sql()
    if cp.returncode == 0:
        title, host = (cp.stdout.strip().split("\t") + ["?"])[:2]
        show(f"client: mariadb -h {e.db_vip} -> \"{title}\" (served by {host})")
    else:
        show(f"client: mariadb -h {e.db_vip} FAILED: {cp.stderr.strip()[-200:]}")


def experiment1(show: Show, keep: bool = False) -> None:
    show("experiment 1: mutual active/standby web + database (auto_failback on)")
    with Cluster(NODES, client=True, keep=keep) as c:
        e = Experiment1(c)
        show(f"namespaces admin1 {c.addr('admin1')}, admin2 {c.addr('admin2')}, client {c.addr('client')}; "
             f"VIPs webserver {e.web_vip}, mysql {e.db_vip}")
        show("shared storage: host directories exported by bind mount (MariaDB database created on it)")
        e.prepare_storage()
        if keep:
            show(f"work directory (kept): {c.workdir}")
        crm = CrmCluster(c, e.cib(), keepalive=KEEPALIVE, deadtime=DEADTIME, auto_failback="on",
                         initd=e.initd(), extra=e.hacf_extra())
        try:
            show(f"ha.cf: keepalive {KEEPALIVE}, deadtime {DEADTIME}s, auto_failback on, crm respawn; "
                 "each node has its own D-Bus, /run and mounts")
            show("starting ha-heartbeat and ha-crmd on admin1 and admin2")
            with crm.observer(e.probes()) as obs:
                crm.start_all(timeout=90)
                show(f"DC: {crm.dc('admin1')}")
                wait_groups(show, obs, crm, {"webserver": "admin1", "mysql": "admin2"})
                show("webserver runs on admin1, mysql on admin2")
                hactl_status(show, crm, "admin1")
                client_web(show, e)
                client_sql(show, e)
                poller = Poller(c, "client", e.web_vip, interval=0.02)
                time.sleep(1)

                show("cutting admin1's network (its switch port goes down: no carrier)")
                t = time.monotonic()
                crm.cut("admin1")
                wait_groups(show, obs, crm, {"webserver": "admin2", "mysql": "admin2"})
                first = poller.first_ok_after(t, "admin2") or time.monotonic()
                show(f"webserver started on admin2: the client is served by admin2 {first - t:.2f} s after the cut")
                client_web(show, e)
                hactl_status(show, crm, "admin2")

                obs.wait_released("admin1", list(obs.probes), 60)
                show("admin1, unable to reach its ping node, has stopped its groups; restoring its network")
                t = time.monotonic()
                crm.restore("admin1")
                wait_groups(show, obs, crm, {"webserver": "admin1", "mysql": "admin2"})
                time.sleep(0.5)
                show(f"webserver failed back to admin1 after {time.monotonic() - t:.2f} s; longest client gap "
                     f"{poller.longest_gap(t, time.monotonic()):.2f} s")
                client_web(show, e)

                show("cutting admin2's network")
                t = time.monotonic()
                crm.cut("admin2")
                wait_groups(show, obs, crm, {"mysql": "admin1", "webserver": "admin1"})
                show(f"admin1 took over mysql ({time.monotonic() - t:.2f} s after the cut)")
                client_sql(show, e)
                hactl_status(show, crm, "admin1")
                obs.wait_released("admin2", list(obs.probes), 60)
                show("admin2 has stopped its groups; restoring its network")
                crm.restore("admin2")
                wait_groups(show, obs, crm, {"mysql": "admin2", "webserver": "admin1"})
                show("mysql failed back to admin2")

                cmd = ["busctl", f"--address={c.dbus('admin1')}", "call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1",
                       "org.hadaemon.Crm1", "MigrateResource", "ss", "webserver", "admin2"]
                show("$ busctl call org.hadaemon.Crm1 /org/hadaemon/Crm1 org.hadaemon.Crm1 MigrateResource ss "
                     "webserver admin2   (on admin1's bus)")
                t = time.monotonic()
                cp = crm.busctl("admin1", *cmd[2:], check=False)
                show(cp.stdout.strip() or cp.stderr.strip() or "(ok)", indent=True)
                if cp.returncode != 0:
                    raise DemoFailed("MigrateResource failed")
                wait_groups(show, obs, crm, {"webserver": "admin2"})
                first = None
                deadline = time.monotonic() + 10      # the group is there; the client's next poll sees it
                while first is None and time.monotonic() < deadline:
                    first = poller.first_ok_after(t, "admin2")
                    time.sleep(0.05)
                show(f"webserver moved to admin2; the client is served by admin2 "
                     f"{(first - t) if first else float('nan'):.2f} s after the call")
                client_web(show, e)
                show("$ busctl call ... ClearResource ss webserver \"\"   (removes the move's constraint)")
                crm.call("admin1", "ClearResource", "ss", "webserver", "", check=False)
                wait_groups(show, obs, crm, {"webserver": "admin1"})
                show("webserver is back on admin1")
                hactl_status(show, crm, "admin1")
                poller.stop()
            dual = obs.dual_active()
            show(f"observer: {obs.samples} samples of both nodes; moments with a resource active on two "
                 f"connected nodes: {len(dual)} ({obs.describe()})")
        finally:
            show("cleaning up: stopping daemons, deleting namespaces")
            crm.close()


def experiment2(show: Show, keep: bool = False) -> None:
    show("experiment 2: LVS director pair (VIP + ldirectord group), real servers rs1 (weight 1), rs2 (weight 3)")
    with Cluster(NODES, client=True, keep=keep) as c:
        e = Experiment2(c)
        e.prepare()
        show(f"real servers {e.reals['rs1']} and {e.reals['rs2']} ran ha-realserver start {e.vip}; director VIP "
             f"{e.vip}; backend nftables (this kernel has no IPVS)")
        crm = CrmCluster(c, e.cib(), keepalive=KEEPALIVE, deadtime=DEADTIME)
        try:
            with crm.observer(e.probes()) as obs:
                crm.start_all(timeout=90)
                for n in NODES:
                    e.fallback_httpd(crm, n)
                try:
                    obs.wait("ldirectord", ["admin2"], 90)
                    obs.wait("lvs-vip", ["admin2"], 30)
                except TimeoutError as exc:
                    show(str(exc))
                    show(crm.logs(tail=3000), indent=True)
                    raise DemoFailed("the director group did not start on admin2") from None
                show("the director group started on admin2")
                time.sleep(3)  # first health checks
                hactl_status(show, crm, "admin1")
                bodies = [e.get()[1] for _ in range(8)]
                show(f"client: 8 requests through {e.vip}: {', '.join(b.replace('real server ', '') for b in bodies)}")
                poller = Poller(c, "client", e.vip, interval=0.02, name="poller2")
                time.sleep(1)
                show("halting admin2 (power off through fence_hadaemon's power switch: processes killed, links down)")
                t = time.monotonic()
                cp = crm.run("admin1", ["fence_hadaemon", "-o", "off", "-n", "admin2", "-a", str(crm.power_socket)])
                show(cp.stdout.strip() or cp.stderr.strip(), indent=True)
                try:
                    obs.wait("ldirectord", ["admin1"], 90)
                    obs.wait("lvs-vip", ["admin1"], 30)
                except TimeoutError as exc:
                    show(str(exc))
                    show(crm.logs(tail=3000), indent=True)
                    raise DemoFailed("the director group did not move to admin1") from None
                time.sleep(2)
                show(f"the group moved to admin1; longest time the client got no answer: "
                     f"{poller.longest_gap(t, time.monotonic()):.2f} s (deadtime {DEADTIME} s)")
                bodies = [e.get()[1] for _ in range(8)]
                show(f"client: 8 requests through {e.vip}: {', '.join(b.replace('real server ', '') for b in bodies)}")
                poller.stop()
                hactl_status(show, crm, "admin1")
            show(f"observer: moments with the VIP or ldirectord active on two nodes: {len(obs.dual_active())}")
        finally:
            show("cleaning up")
            crm.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hadaemon.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", choices=["1", "2", "all"], default="all")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (daemon logs) afterwards")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("hadaemon demo: needs root (it creates network namespaces); run: sudo ./scripts/demo",
              file=sys.stderr)
        return 2
    show = Show()
    print("hadaemon demo: the reference scenario on a cluster of network namespaces")
    try:
        if args.experiment in ("1", "all"):
            experiment1(show, args.keep)
        if args.experiment in ("2", "all"):
            experiment2(show, args.keep)
    except DemoFailed as exc:
        show(f"demo FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    show("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
