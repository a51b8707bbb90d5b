"""The admin's whole path, from the RPMs, under real systemd: two nspawn nodes (systemd as PID 1, each in its cluster
namespace) get hadaemon only from the built packages (rpm -i; Debian shims in tests/system/pkgtools.py), ha.cf with
`crm respawn`, authkeys and a CIB; `systemctl start ha-heartbeat` on both forms the cluster and brings ha-crmd up,
which starts the web group (its VIP, ocf:hadaemon:IPaddr2, then the web server as a systemd-class resource) where
the CIB prefers; a client in its own namespace reads the page of the node holding the group (the web server runs
there only). The shipped introspection XML of Heartbeat1, Crm1 and Director1 (ha-ldirectord.service started from the
package on node2) is what the daemons export; the installed busconfig lets a haclient member call methods (not
Heartbeat1's Broadcast) and everyone else only read. Then: busctl MigrateResource moves the group and the client
follows; journalctl shows ha-crmd's structured fields; a reload with a broken ha.cf keeps ha-crmd running on the old
one; a non-root MigrateResource is refused by the policy; `systemctl stop ha-heartbeat` on the active node stops
ha-crmd first and the group moves away cleanly. In between, SIGSTOP on the active node's ha-crmd makes the watchdog
restart it without touching the group."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container, ensure_rootfs
from hadaemon.testing.procs import wait_until
from tests.system.pkgtools import PackageContainer, build_rpms, ensure_rpm_rootfs, ldirectord_cf

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

HB, CRMD, SITE = "ha-heartbeat.service", "ha-crmd.service", "hello-http.service"
DIRECTOR, WEB = "ha-ldirectord.service", "ha-web.service"
NODES = ["node1", "node2"]

CIB = """<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-stonith" name="stonith-enabled" value="false"/>
</cluster_property_set></crm_config>
<nodes/>
<resources>
<group id="web">
<primitive id="vip" class="ocf" provider="hadaemon" type="IPaddr2">
<instance_attributes id="vip-ia">
<nvpair id="vip-ip" name="ip" value="{vip}"/><nvpair id="vip-mask" name="cidr_netmask" value="24"/>
<nvpair id="vip-nic" name="nic" value="eth0"/>
</instance_attributes>
<operations><op id="vip-mon" name="monitor" interval="2s" timeout="20s"/></operations>
</primitive>
<primitive id="site" class="systemd" type="hello-http">
<operations><op id="site-mon" name="monitor" interval="5s" timeout="30s"/></operations>
</primitive>
</group>
</resources>
<constraints><rsc_location id="web-prefers-node1" rsc="web" node="node1" score="100"/></constraints>
</configuration><status/></cib>
"""

# the site: a page naming the node on port 8080 of every address, a systemd-class member of the group (started
# by the cluster only where the group runs; its stop during `systemctl stop ha-heartbeat` no longer waits for
# ha-crmd's own stop job: commit b77da84)
HELLO_UNIT = """[Unit]
Description=test web site (run by the cluster)
[Service]
ExecStartPre=/bin/sh -c 'mkdir -p /run/hello && uname -n > /run/hello/index.html'
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /run/hello
"""


def show(ct, unit, prop):
    return ct.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def fetch(client, vip: str) -> str:
    """What the client container reads at http://VIP:8080/ ('' when nothing answers)."""
    cp = client.run(["python3", "-c", "import sys, urllib.request; "
                     f"sys.stdout.write(urllib.request.urlopen('http://{vip}:8080/', timeout=2).read().decode())"],
                    timeout=10)
    return cp.stdout.strip() if cp.returncode == 0 else ""


def members(xml_text: str) -> set:
    """(kind, name, signature) of an interface's methods, properties and signals in introspection XML."""
    root = ET.fromstring(xml_text)
    out = set()
    for iface in root.iter("interface"):
        if not iface.get("name", "").startswith("org.hadaemon."):
            continue
        for el in iface:
            if el.tag == "property":
                out.add(("property", el.get("name"), el.get("type"), el.get("access")))
            elif el.tag in ("method", "signal"):
                sig = tuple((a.get("direction", "in" if el.tag == "method" else "out"), a.get("type"))
                            for a in el.iter("arg"))
                out.add((el.tag, el.get("name"), sig))
    return out


def crmd_log(ct) -> list:
    return [e for e in ct.journal(CRMD) if e.get("SYSLOG_IDENTIFIER") == "ha-crmd"]


def diag(cts) -> str:
    out = []
    for ct in cts:
        for unit in (HB, CRMD):
            out.append(f"--- {ct.name} {unit}: " + ct.systemctl("status", unit).stdout[-1500:])
        out.append(f"--- {ct.name} journal (ha-crmd):\n" + "\n".join(
            str(e.get("MESSAGE")) for e in ct.journal(CRMD)[-40:]))
    return "\n".join(out)


@pytest.fixture(scope="module")
def rpms(tmp_path_factory):
    return build_rpms(tmp_path_factory.mktemp("rpms"))


def test_cluster_from_the_package(rpms):
    rootfs = ensure_rpm_rootfs()
    with Cluster(NODES, client=True) as c:
        vip = f"10.{c.base}.0.200"
        hb = HeartbeatCluster(c, keepalive="200ms", deadtime="3", initdead="6", nodes=NODES,
                              extra=["crm respawn"])
        cts, client = [], None
        try:
            for n in NODES:
                ct = PackageContainer(netns=c.netns(n), name=n, rootfs=rootfs).start()
                cts.append(ct)
                ct.install_packages(rpms)
                ct.write_file("/etc/ha.d/ha.cf", hb.hacf_text(n))
                ct.write_file("/etc/ha.d/authkeys", f"auth {hb.key.split()[0]}\n{hb.key}\n", 0o600)
                ct.write_file("/etc/ha.d/cib.xml", CIB.format(vip=vip))
                ct.write_file("/etc/sysconfig/ha-crmd", 'HA_CRMD_OPTS="--cib /etc/ha.d/cib.xml"\n')
                ct.write_file("/etc/systemd/system/hello-http.service", HELLO_UNIT)
                ct.systemctl("daemon-reload", check=True)
            n1, n2 = cts
            client = Container(netns=c.netns("client"), name="client", rootfs=ensure_rootfs()).start()

            # systemctl start ha-heartbeat: membership, and ha-crmd comes up with it (crm respawn)
            for ct in cts:
                cp = ct.systemctl("start", HB, timeout=120)
                assert cp.returncode == 0, cp.stderr + diag(cts)
            for ct in cts:
                ct.wait_unit(CRMD, "active", timeout=90)
            wait_until(lambda: "2 member(s) node1 node2" in show(n1, HB, "StatusText"), 30,
                       message="both members in ha-heartbeat's STATUS=")
            try:
                wait_until(lambda: fetch(client, vip) == "node1", 120, 0.5, "the client reading node1's page via the VIP")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{diag(cts)}") from None
            assert f" {vip}/24 " in n1.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            assert vip not in n2.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            assert show(n1, SITE, "ActiveState") == "active" and show(n2, SITE, "ActiveState") == "inactive"

            # the introspection XML the package ships is what the running daemons export
            for name, path in [("org.hadaemon.Crm1", "/org/hadaemon/Crm1"),
                               ("org.hadaemon.Heartbeat1", "/org/hadaemon/Heartbeat1")]:
                live = n1.busctl("introspect", "--xml-interface", name, path, check=True).stdout
                shipped = n1.path(f"/usr/share/dbus-1/interfaces/{name}.xml").read_text()
                assert members(live) == members(shipped), (name, members(live) ^ members(shipped))

            # the shipped busconfig as installed: a haclient member may call the methods (GetCib), but not
            # Heartbeat1's Broadcast (root's alone); anyone else may only read properties
            gid = n1.run(["getent", "group", "haclient"], check=True).stdout.split(":")[2]
            member = ["setpriv", "--reuid=65534", f"--regid={gid}", f"--groups={gid}", "busctl"]
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "busctl"]
            get_cib = ["call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1", "org.hadaemon.Crm1", "GetCib"]
            cp = n1.run(member + get_cib, timeout=30)
            assert cp.returncode == 0 and "<cib" in cp.stdout, cp.stderr
            cp = n1.run(nobody + get_cib, timeout=30)
            assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stdout + cp.stderr
            cp = n1.run(member + ["call", "org.hadaemon.Heartbeat1", "/org/hadaemon/Heartbeat1",
                                  "org.hadaemon.Heartbeat1", "Broadcast", "say", "test", "1", "120"], timeout=30)
            assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stdout + cp.stderr
            # only root may own the three names (a haclient member and anyone else are refused by the bus)
            for bus_name in ("org.hadaemon.Heartbeat1", "org.hadaemon.Crm1", "org.hadaemon.Director1"):
                for who in (member, nobody):
                    cp = n1.run(who[:-1] + ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                                            "/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName",
                                            f"string:{bus_name}", "uint32:4"], timeout=30)
                    assert cp.returncode != 0 and "not allowed to own" in cp.stderr, (bus_name, who, cp.stderr)

            # ha-ldirectord.service from the package on node2: Type=notify start, org.hadaemon.Director1 as the
            # shipped XML says, Reload for a haclient member, read-only for anyone else; stopped again
            dvip = f"10.{c.base}.0.201"
            c.run("node2", ["ip", "addr", "add", f"{dvip}/24", "dev", "eth0"], check=True)
            # a director for a second address, balancing the two nodes' web servers (only its unit and D-Bus API
            # are looked at: the nft backend is picked, there is no IPVS in the test's kernel namespaces)
            n2.write_file("/etc/ha.d/ldirectord.cf", ldirectord_cf(dvip, [c.addr("node1"), c.addr("node2")]))
            cp = n2.systemctl("start", DIRECTOR, timeout=90)
            assert cp.returncode == 0, cp.stderr + "\n".join(str(e.get("MESSAGE")) for e in n2.journal(DIRECTOR)[-20:])
            live = n2.busctl("introspect", "--xml-interface", "org.hadaemon.Director1", "/org/hadaemon/Director1",
                             check=True).stdout
            shipped = n2.path("/usr/share/dbus-1/interfaces/org.hadaemon.Director1.xml").read_text()
            assert members(live) == members(shipped), members(live) ^ members(shipped)
            director = ["org.hadaemon.Director1", "/org/hadaemon/Director1", "org.hadaemon.Director1"]
            cp = n2.run(nobody + ["get-property", *director, "Backend"], timeout=30)
            assert cp.returncode == 0 and cp.stdout.startswith("s "), cp.stderr
            cp = n2.run(nobody + ["call", *director, "Reload"], timeout=30)
            assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stdout + cp.stderr
            cp = n2.run(member + ["call", *director, "Reload"], timeout=30)
            assert cp.returncode == 0, cp.stderr
            assert n2.systemctl("stop", DIRECTOR, timeout=60).returncode == 0
            c.run("node2", ["ip", "addr", "del", f"{dvip}/24", "dev", "eth0"])

            # ha-web.service from the package on node1 (aiohttp and openssl from the spec's Requires): its
            # --check-config passes, it makes its certificate and serves; a reload keeps the process
            cp = n1.systemctl("start", WEB, timeout=120)
            assert cp.returncode == 0, cp.stderr + "\n".join(str(e.get("MESSAGE")) for e in n1.journal(WEB)[-20:])
            assert "listening on" in show(n1, WEB, "StatusText")
            web_pid = show(n1, WEB, "MainPID")
            assert n1.systemctl("reload", WEB, timeout=60).returncode == 0
            wait_until(lambda: any(e.get("EVENT") == "reload" for e in n1.journal(WEB)), 30, 0.5, "ha-web reloaded")
            assert show(n1, WEB, "MainPID") == web_pid and show(n1, WEB, "ActiveState") == "active"
            assert n1.systemctl("stop", WEB, timeout=60).returncode == 0

            # busctl MigrateResource (as root): the group moves and the client follows
            cp = n2.busctl("call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1", "org.hadaemon.Crm1",
                           "MigrateResource", "ss", "web", "node2", timeout=60)
            assert cp.returncode == 0, cp.stderr
            try:
                wait_until(lambda: fetch(client, vip) == "node2", 120, 0.5, "the client following the group to node2")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{diag(cts)}") from None
            assert vip not in n1.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            wait_until(lambda: show(n1, SITE, "ActiveState") == "inactive", 30, 0.5, "the site stopped on node1")
            # the move was a handoff: its helper process got its priority inside the unit's sandbox (setpriority /
            # sched_setscheduler allowed, RestrictRealtime=no): SCHED_RR 1, or nice -10 where real-time is refused
            prio = [str(e.get("MESSAGE")) for e in crmd_log(n1) + crmd_log(n2)
                    if str(e.get("MESSAGE")).startswith("handoff helper ")]
            assert prio and not any(m.endswith(" normal") for m in prio), prio

            # journalctl -u ha-crmd -o json: structured fields
            entries = crmd_log(n2) + crmd_log(n1)
            fields = set().union(*(e.keys() for e in entries))
            assert {"NODE", "RESOURCE", "TRANSITION"} <= fields, sorted(fields)
            assert any(e.get("RESOURCE") == "vip" for e in entries)

            # a non-root caller may read Status but not migrate (the shipped busconfig)
            cp = n2.run(nobody + ["get-property", "org.hadaemon.Crm1", "/org/hadaemon/Crm1", "org.hadaemon.Crm1",
                                  "DC"])
            assert cp.returncode == 0 and cp.stdout.startswith("s "), cp.stderr
            cp = n2.run(nobody + ["call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1", "org.hadaemon.Crm1",
                                  "MigrateResource", "ss", "web", "node1"])
            assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stdout + cp.stderr

            # systemctl reload ha-crmd with a broken ha.cf: same process, old configuration, says why
            pid = show(n2, CRMD, "MainPID")
            good = n2.path("/etc/ha.d/ha.cf").read_text()
            n2.write_file("/etc/ha.d/ha.cf", good + "keepalive 0\n")
            assert n2.systemctl("reload", CRMD, timeout=60).returncode == 0
            wait_until(lambda: any(e.get("EVENT") == "reload-failed" for e in crmd_log(n2)), 30,
                       message="reload failure in ha-crmd's journal")
            time.sleep(1)
            assert show(n2, CRMD, "ActiveState") == "active" and show(n2, CRMD, "MainPID") == pid
            n2.write_file("/etc/ha.d/ha.cf", good)
            assert fetch(client, vip) == "node2"

            # SIGSTOP on node2's ha-crmd, the node holding the group: the watchdog (WatchdogSec=10s) restarts it
            # before node1 takes it for gone (after 20 s of silence), the new crmd probes the group running and
            # keeps it: the VIP never shows up on node1 and the client stays on node2
            def vip_not_on_node1():
                assert vip not in n1.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout, \
                    "the VIP started on node1 while node2's crmd was frozen or restarting\n" + diag(cts)
                return True

            pid = show(n2, CRMD, "MainPID")
            n2.run(["kill", "-STOP", pid], check=True)
            wait_until(lambda: vip_not_on_node1() and show(n2, CRMD, "MainPID") not in ("0", pid)
                       and show(n2, CRMD, "ActiveState") == "active", 120, 0.5, "ha-crmd restarted by the watchdog")
            assert int(show(n2, CRMD, "NRestarts")) >= 1
            wait_until(lambda: vip_not_on_node1() and "2 members" in show(n2, CRMD, "StatusText"), 60, 0.5,
                       "node2's crmd back in the cluster")
            assert any("watchdog" in str(e.get("MESSAGE", "")).lower() for e in n2.journal(None, "-u", CRMD))
            settle = time.monotonic() + 15
            while time.monotonic() < settle:
                vip_not_on_node1()
                time.sleep(0.5)
            try:
                wait_until(lambda: fetch(client, vip) == "node2", 60, 0.5, "the client on node2 after the restart")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{diag(cts)}") from None

            # systemctl stop ha-heartbeat on the active node: ha-crmd stops first, the group moves to node1
            cursor = n2.journal(None, "-n", "1")[-1]["__CURSOR"]
            cp = n2.systemctl("stop", HB, timeout=360)
            assert cp.returncode == 0, cp.stderr
            assert show(n2, CRMD, "ActiveState") == "inactive" and show(n2, CRMD, "Result") == "success", \
                diag(cts)
            assert vip not in n2.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            after = n2.journal(None, f"--after-cursor={cursor}")
            stopped = [e.get("UNIT") for e in after if str(e.get("MESSAGE", "")).startswith("Stopped ")]
            msgs = [str(e.get("MESSAGE", "")) for e in after]
            vip_stopped = [i for i, m in enumerate(msgs) if m.startswith("stop vip: rc=0")]
            site_stopped = [i for i, m in enumerate(msgs) if m.startswith("stop site: rc=0")]
            crmd_gone = [i for i, m in enumerate(msgs) if m.startswith("Stopped ha-crmd.service")]
            assert SITE in stopped and CRMD in stopped and HB in stopped, stopped
            assert stopped.index(SITE) < stopped.index(CRMD) < stopped.index(HB), stopped
            assert site_stopped and vip_stopped and site_stopped[0] < vip_stopped[0] < crmd_gone[0], "\n".join(
                f"{e.get('__REALTIME_TIMESTAMP')} {e.get('SYSLOG_IDENTIFIER')}: {e.get('MESSAGE')}" for e in after)
            try:
                wait_until(lambda: fetch(client, vip) == "node1", 120, 0.5, "the client back on node1")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{diag(cts)}") from None
        finally:
            for ct in cts + ([client] if client else []):
                ct.close()
