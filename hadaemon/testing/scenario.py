"""The reference scenario's services for the namespace cluster (demo, tests, bench).

Experiment 1 (SCENARIO.md): two nodes, group ``webserver`` (VIP .222 + the shared store + lsb:httpd)
prefers admin1, group ``mysql`` (VIP .220 + its store + lsb:mysqld) prefers admin2.

- The "NFS server" is a host directory per export (``<workdir>/nfs/http``, ``<workdir>/nfs/mysqldata``);
  a node mounts it with the unmodified ocf:heartbeat:Filesystem agent as a bind mount
  (``fstype=none options=bind``) in its own mount namespace (see hadaemon.testing.crm).
- httpd is lighttpd (Debian's package) started by a small LSB script ``/etc/init.d/httpd`` (the scripts are in
  hadaemon.testing.initscripts); mysqld is
  MariaDB's mariadbd (mariadb-server-core) started by ``/etc/init.d/mysqld``. Debian's own init
  scripts assume one machine (/etc/mysql, /var/lib/mysql, systemd); these keep their pidfiles and
  sockets in the node's private /run and their data on the shared store only.
- The database on the store is created once on the host (mariadb-install-db, a ``blog`` database and
  a ``demo`` user), as the admin's NFS export already held it.

Experiment 2's real servers and director config live in ``Experiment2``.

``Poller`` is the client: a process in the client namespace GETting the VIP every 20 ms, one line per
request ``<monotonic time> ok|ERR <served-by>``; CLOCK_MONOTONIC is system-wide, so the harness
compares these times with its own.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from hadaemon.testing.crm import mounted, pidfile, vip
from hadaemon.testing.initscripts import BOOT_SQL, HTTPD_LSB, MYSQLD_LSB
from hadaemon.testing.procs import Proc

__all__ = ["Experiment1", "Experiment2", "HTTPD_LSB", "MYSQLD_LSB", "Poller", "http_get", "cib_xml", "primitive"]


def _nv(prefix: str, params: Dict[str, str]) -> str:
    return "".join(f'<nvpair id="{prefix}-{k}" name="{k}" value="{v}"/>' for k, v in params.items())


def primitive(rid: str, cls: str, type_: str, provider: str | None = None, params: Dict[str, str] | None = None,
              monitor: str = "5s", timeout: str = "30s", meta: Dict[str, str] | None = None) -> str:
    prov = f' provider="{provider}"' if provider else ""
    inst = f'<instance_attributes id="{rid}-params">{_nv(rid, params)}</instance_attributes>' if params else ""
    meta_x = f'<meta_attributes id="{rid}-meta">{_nv(rid + "-meta", meta)}</meta_attributes>' if meta else ""
    ops = (f'<operations><op id="{rid}-monitor" name="monitor" interval="{monitor}" timeout="{timeout}"/>'
           f'<op id="{rid}-start" name="start" interval="0" timeout="{timeout}"/>'
           f'<op id="{rid}-stop" name="stop" interval="0" timeout="{timeout}"/></operations>')
    return f'<primitive id="{rid}" class="{cls}"{prov} type="{type_}">{inst}{meta_x}{ops}</primitive>'


def cib_xml(nodes: Sequence[str], resources: str, constraints: str = "", options: Dict[str, str] | None = None,
            rsc_defaults: Dict[str, str] | None = None) -> str:
    opts = {"stonith-enabled": "false", **(options or {})}
    node_x = "".join(f'<node id="{n}" uname="{n}"/>' for n in nodes)
    defaults = ""
    if rsc_defaults:
        defaults = (f'<rsc_defaults><meta_attributes id="rsc-options">{_nv("rsc-options", rsc_defaults)}'
                    f"</meta_attributes></rsc_defaults>")
    return ('<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0" '
            'crm_feature_set="3.16.1">\n<configuration>\n'
            f'<crm_config><cluster_property_set id="cib-bootstrap-options">{_nv("opt", opts)}'
            "</cluster_property_set></crm_config>\n"
            f"<nodes>{node_x}</nodes>\n<resources>\n{resources}\n</resources>\n"
            f"<constraints>{constraints}</constraints>\n{defaults}</configuration>\n<status/>\n</cib>\n")


class Experiment1:
    """Storage, services, CIB, observer probes and client checks of experiment 1 on a Cluster.

    The cluster must have the two nodes and a client. VIPs are .222 (webserver) and .220 (mysql) of
    link 0's subnet; the shared exports are host directories under the cluster's workdir.

    quorum_nodes: further cluster members that only vote (a quorum node, as admins add a third machine
    so that a cut node loses quorum instead of both halves keeping it): they are in the CIB's <nodes>
    and get rsc_location -INFINITY for every group, so they never run a service.
    """

    def __init__(self, cluster, nodes: Tuple[str, str] = ("admin1", "admin2"), ping: str | None = "client",
                 monitor: str = "5s", ping_attribute: str = "pingd",
                 groups: Sequence[str] = ("webserver", "mysql"), quorum_nodes: Sequence[str] = ()):
        self.c = cluster
        self.nodes = list(nodes)
        self.quorum_nodes = list(quorum_nodes)
        net = ".".join(cluster.addr(nodes[0]).split(".")[:3])
        self.web_vip, self.db_vip = f"{net}.222", f"{net}.220"
        w = Path(cluster.workdir)
        self.http_export, self.db_export = w / "nfs" / "http", w / "nfs" / "mysqldata"
        self.www, self.mydata = w / "mnt" / "www", w / "mnt" / "mydata"   # /var/www/html and /mydata
        # ping node (ha.cf `ping`, the pingd attribute): a node that cannot reach the client's address
        # runs neither group, so an unplugged node stops its services instead of keeping them
        self.ping = cluster.addr(ping) if ping else None
        self.ping_attribute = ping_attribute
        self.monitor = monitor
        self.groups = list(groups)

    # -- the storage server ----------------------------------------------------------------------
    def prepare_storage(self) -> None:
        for d in (self.http_export, self.db_export, self.www, self.mydata):
            d.mkdir(parents=True, exist_ok=True)
        (self.http_export / "index.html").write_text(
            "<html><body><h1>tuchao's blog</h1><p>served from the shared store</p></body></html>\n")
        (self.http_export / ".test.html").write_text("OK\n")
        if not (self.db_export / "mysql").is_dir():
            # a tmpdir of its own: bootstraps sharing /tmp collide on their temporary tables (#sql-temptable-*:
            # "Unknown table 'mysql.tmp_user_sys'", 3 of 18 concurrent runs failed)
            tmp = self.db_export.parent / "bootstrap-tmp"
            tmp.mkdir(exist_ok=True)
            cp = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.db_export}", "--user=root",
                                 "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={tmp}"],
                                capture_output=True, text=True, timeout=120)
            if cp.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed: {cp.stdout[-1000:]}{cp.stderr[-1000:]}")
            cp = subprocess.run(["mariadbd", "--no-defaults", "--bootstrap", f"--datadir={self.db_export}",
                                 "--user=root", "--innodb-buffer-pool-size=16M", f"--tmpdir={tmp}",
                                 f"--log-error={self.db_export.parent / 'bootstrap.err'}"],
                                input=BOOT_SQL, capture_output=True, text=True, timeout=120)
            if cp.returncode != 0:
                raise RuntimeError(f"mariadbd --bootstrap failed: {cp.stderr[-1000:]}")

    def initd(self) -> Dict[str, str]:
        return {"httpd": HTTPD_LSB.replace("@DOCROOT@", str(self.www)),
                "mysqld": MYSQLD_LSB.replace("@DATADIR@", str(self.mydata))}

    # -- the CIB ---------------------------------------------------------------------------------
    def resources(self) -> str:
        m = self.monitor
        web = (primitive("vip", "ocf", "IPaddr2", "heartbeat", {"ip": self.web_vip, "cidr_netmask": "24",
                                                                 "nic": "eth0"}, monitor=m)
               + primitive("store", "ocf", "Filesystem", "heartbeat",
                           {"device": str(self.http_export), "directory": str(self.www), "fstype": "none",
                            "options": "bind"}, monitor=m)
               + primitive("httpd", "lsb", "httpd", monitor=m))
        db = (primitive("myip", "ocf", "IPaddr2", "heartbeat", {"ip": self.db_vip, "cidr_netmask": "24",
                                                                 "nic": "eth0"}, monitor=m)
              + primitive("mystore", "ocf", "Filesystem", "heartbeat",
                          {"device": str(self.db_export), "directory": str(self.mydata), "fstype": "none",
                           "options": "bind"}, monitor=m)
              + primitive("mysqld", "lsb", "mysqld", monitor=m, timeout="60s"))
        xml = {"webserver": f'<group id="webserver">{web}</group>', "mysql": f'<group id="mysql">{db}</group>'}
        return "\n".join(xml[g] for g in self.groups)

    def constraints(self) -> str:
        a1, a2 = self.nodes
        prefer = {"webserver": a1, "mysql": a2}
        out = "".join(f'<rsc_location id="{g}-prefers-{prefer[g]}" rsc="{g}" node="{prefer[g]}" score="100"/>'
                      for g in self.groups)
        if self.ping:
            # like pingd: a node that cannot reach the ping node runs neither group
            for g in self.groups:
                out += (f'<rsc_location id="{g}-connected" rsc="{g}"><rule id="{g}-connected-rule" '
                        f'score="-INFINITY" boolean-op="or">'
                        f'<expression id="{g}-connected-undef" attribute="{self.ping_attribute}" '
                        f'operation="not_defined"/>'
                        f'<expression id="{g}-connected-zero" attribute="{self.ping_attribute}" '
                        f'operation="lte" value="0"/></rule></rsc_location>')
        for q in self.quorum_nodes:
            out += "".join(f'<rsc_location id="{g}-never-{q}" rsc="{g}" node="{q}" score="-INFINITY"/>'
                           for g in self.groups)
        return out

    def cib(self, options: Dict[str, str] | None = None) -> str:
        return cib_xml(self.nodes + self.quorum_nodes, self.resources(), self.constraints(), options)

    def hacf_extra(self, deadping: str = "3") -> List[str]:
        """ha.cf lines for the ping node (deadping must exceed twice keepalive)."""
        return [f"ping {self.ping}", f"deadping {deadping}"] if self.ping else []

    def probes(self) -> dict:
        p = {"vip": vip(self.web_vip), "store": mounted(str(self.www)), "httpd": pidfile("httpd.pid"),
             "myip": vip(self.db_vip), "mystore": mounted(str(self.mydata)), "mysqld": pidfile("mysqld/mysqld.pid")}
        return {r: f for r, f in p.items() if any(r in self.GROUPS[g] for g in self.groups)}

    GROUPS = {"webserver": ("vip", "store", "httpd"), "mysql": ("myip", "mystore", "mysqld")}

    # -- the client ------------------------------------------------------------------------------
    def web(self, timeout: float = 2) -> Tuple[bool, str, str]:
        """GET http://VIP/ from the client namespace: (ok, served-by header, body)."""
        return http_get(self.c, "client", f"http://{self.web_vip}/", timeout)

    def sql(self, query: str = "SELECT title, @@report_host FROM blog.posts", timeout: float = 5):
        """A query through the database VIP from the client: CompletedProcess (stdout tab-separated)."""
        return self.c.run("client", ["mariadb", "--no-defaults", "-h", self.db_vip, "-u", "demo", "-pdemo", "-N",
                                     "--connect-timeout", str(int(max(1, timeout))), "-e", query],
                          timeout=timeout + 10)


def http_get(cluster, member: str, url: str, timeout: float = 2) -> Tuple[bool, str, str]:
    cp = cluster.run(member, ["curl", "-s", "-D", "-", "-m", str(timeout), url], timeout=timeout + 10)
    if cp.returncode != 0:
        return False, "", ""
    head, _, body = cp.stdout.replace("\r\n", "\n").partition("\n\n")
    served = ""
    for line in head.splitlines():
        if line.lower().startswith("x-served-by:"):
            served = line.split(":", 1)[1].strip()
    return head.startswith("HTTP/1") and " 200 " in head.splitlines()[0], served, body


POLLER = r"""
import os, socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
interval, stop = float(sys.argv[4]), sys.argv[5]
req = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
while not os.path.exists(stop):
    t = time.monotonic()
    served, ok = "", "ERR"
    try:
        with socket.create_connection((host, port), timeout=max(interval * 10, 0.2)) as s:
            s.settimeout(1.0)
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        if head.startswith("HTTP/1") and " 200 " in head.split("\r\n", 1)[0]:
            ok = "ok"
            for line in head.split("\r\n"):
                if line.lower().startswith("x-served-by:"):
                    served = line.split(":", 1)[1].strip()
    except OSError:
        pass
    print(f"{t:.4f} {ok} {served or '-'}", flush=True)
    time.sleep(max(0.0, interval - (time.monotonic() - t)))
"""


class Poller:
    """A client in its namespace GETting a URL every interval seconds; lines of (time, ok, served-by)."""

    def __init__(self, cluster, member: str, host: str, port: int = 80, path: str = "/", interval: float = 0.02,
                 name: str = "poller"):
        self.c = cluster
        self.stopfile = Path(cluster.workdir) / f"{name}.stop"
        self.stopfile.unlink(missing_ok=True)
        script = Path(cluster.workdir) / "poller.py"
        script.write_text(POLLER)
        self.proc = cluster.spawn(member, [sys.executable, str(script), host, str(port), path, str(interval),
                                           str(self.stopfile)], name=name)

    def samples(self) -> List[Tuple[float, bool, str]]:
        out = []
        for line in self.proc.output().splitlines():
            parts = line.split()
            if len(parts) == 3:
                try:
                    out.append((float(parts[0]), parts[1] == "ok", parts[2]))
                except ValueError:
                    continue
        return out

    def stop(self) -> None:
        self.stopfile.touch()
        if self.proc.wait(5) is None:
            self.proc.terminate(2)

    def first_ok_after(self, t: float, served_by: str | None = None) -> float | None:
        for ts, ok, who in self.samples():
            if ts >= t and ok and (served_by is None or who == served_by):
                return ts
        return None

    def longest_gap(self, t0: float, t1: float) -> float:
        """Longest time without a successful request between t0 and t1 (from the last ok before a failure
        to the next ok)."""
        oks = [ts for ts, ok, _ in self.samples() if ok and t0 <= ts <= t1]
        if not oks:
            return t1 - t0
        gaps = [b - a for a, b in zip(oks, oks[1:])]
        return max(gaps + [oks[0] - t0, t1 - oks[-1]])



LDIRECTORD_CF = """\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=yes
virtual={vip}:80
\treal={rs1}:80 gate
\treal={rs2}:80 gate 3
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest=".test.html"
\treceive="OK"
\tvirtualhost=www.tuchao.com
\tscheduler=wrr
\tprotocol=tcp
\tchecktype=negotiate
\tcheckport=80
"""


class Experiment2:
    """Experiment 2 on a Cluster with two director nodes, a client and two real servers (added here).

    The group ``director`` = VIP .200 (.100 in SCENARIO.md) (ocf:heartbeat:IPaddr2) + ocf:hadaemon:ldirectord (the nftables
    backend: the host kernel has no IPVS, so the director DNATs to the real servers and masquerades).
    Each real server runs ``ha-realserver start VIP`` (ARP sysctls, VIP on lo) and a web server with
    its own index page and ``/.test.html`` = OK; each director serves "Server is repairing" as fallback.
    """

    def __init__(self, cluster, nodes: Tuple[str, str] = ("admin1", "admin2"), monitor: str = "2s"):
        self.c = cluster
        self.nodes = list(nodes)
        net = ".".join(cluster.addr(nodes[0]).split(".")[:3])
        self.vip = f"{net}.200"   # .100 and up are the Cluster's extra hosts (the real servers)
        self.config = Path(cluster.workdir) / "ldirectord.cf"
        self.monitor = monitor
        self.reals: Dict[str, str] = {}

    def prepare(self) -> None:
        c = self.c
        for name in ("rs1", "rs2"):
            c.add_host(name)
            root = Path(c.workdir) / f"www-{name}"
            root.mkdir(exist_ok=True)
            (root / "index.html").write_text(f"real server {name}\n")
            (root / ".test.html").write_text("OK\n")
            self.reals[name] = c.addr(name)
            env = {"HADAEMON_RUNDIR": str(Path(c.workdir) / "run" / name)}
            cp = c.run(name, [sys.executable, "-m", "hadaemon.daemons.realserver", "start", self.vip], env=env)
            if cp.returncode != 0:
                raise RuntimeError(f"ha-realserver start {self.vip} on {name}: {cp.stdout}{cp.stderr}")
            c.spawn(name, [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "--directory", str(root), "80"],
                    name="http")
        for d in self.nodes:
            for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.send_redirects", "0"),
                               ("net.ipv4.conf.eth0.send_redirects", "0")):
                c.run(d, ["sysctl", "-q", "-w", f"{key}={value}"], check=True)
        self.config.write_text(LDIRECTORD_CF.format(vip=self.vip, rs1=self.reals["rs1"], rs2=self.reals["rs2"]))

    def fallback_httpd(self, crm, node: str) -> None:
        """The director's own web server ("Server is repairing"), in the node's namespaces."""
        root = Path(self.c.workdir) / f"www-{node}"
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text("Server is repairing\n")
        p = Proc(crm.in_node(node, [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "--directory",
                                    str(root), "80"]), Path(self.c.workdir) / "logs" / f"{node}-fallback.log",
                 name=f"{node}/fallback-http")
        self.c._procs.append(p)

    def resources(self) -> str:
        m = self.monitor
        return ('<group id="director">'
                + primitive("lvs-vip", "ocf", "IPaddr2", "heartbeat",
                            {"ip": self.vip, "cidr_netmask": "24", "nic": "eth0"}, monitor=m)
                + primitive("ldirectord", "ocf", "ldirectord", "hadaemon",
                            {"configfile": str(self.config), "backend": "nft"}, monitor=m, timeout="60s")
                + "</group>")

    def cib(self, prefer: str | None = None, options: Dict[str, str] | None = None) -> str:
        prefer = prefer or self.nodes[1]   # the admin saw the group start on admin2
        cons = f'<rsc_location id="director-prefers-{prefer}" rsc="director" node="{prefer}" score="100"/>'
        return cib_xml(self.nodes, self.resources(), cons, options)

    def probes(self) -> dict:
        return {"lvs-vip": vip(self.vip), "ldirectord": pidfile("hadaemon/ldirectord-ldirectord.pid")}

    def get(self, timeout: float = 2) -> Tuple[bool, str]:
        ok, _, body = http_get(self.c, "client", f"http://{self.vip}/", timeout)
        return ok, body.strip()
