"""Shared set-up for the director namespace tests (nftables backend): directors, real servers, client.

Topology (one bridge, 10.B.0.0/24): dir1, dir2 (directors), client, rs1 and rs2 (real servers). The VIP
(10.B.0.200) is added to a director's eth0. A client's connection to VIP:80 is DNATed by the director's
`ip hadaemon` table to a real server and masqueraded (gate reals), so replies come back through the
director. Real servers run python's http.server with different index pages and `/.test.html` = OK;
each director runs a fallback http server on port 80 that answers "Server is repairing".
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from hadaemon.core.director.lvs_table import Table
from hadaemon.io.lvs.nft import parse_listing
from hadaemon.testing.netns import Cluster

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
VIP_HOST = 200

CONFIG = """\
checktimeout=1
checkinterval=1
autoreload={autoreload}
quiescent={quiescent}
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

CLIENT_SCRIPT = r"""
import sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    try:
        print(urllib.request.urlopen(url, timeout=3).read().decode().strip(), flush=True)
    except Exception as e:
        print("ERR", type(e).__name__, flush=True)
"""


class DirectorEnv:
    """The namespaces and servers; `config(...)` writes ldirectord.cf; helpers read the nft table."""

    def __init__(self, cluster: Cluster):
        self.c = cluster
        self.vip = ".".join(cluster.addr("dir1").split(".")[:3] + [str(VIP_HOST)])
        self.rs = {}
        self.docroots = {}
        for name in ("rs1", "rs2"):
            cluster.add_host(name)
            root = cluster.workdir / f"www-{name}"
            root.mkdir()
            (root / "index.html").write_text(f"{name}\n")
            (root / ".test.html").write_text("OK\n")
            self.docroots[name] = root
            self.rs[name] = cluster.addr(name)
            cluster.spawn(name, [PYTHON, "-m", "http.server", "--bind", "0.0.0.0", "--directory", str(root),
                                 "80"], name="http")
        for d in ("dir1", "dir2"):
            for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.send_redirects", "0"),
                               ("net.ipv4.conf.eth0.send_redirects", "0")):
                cluster.run(d, ["sysctl", "-q", "-w", f"{key}={value}"], check=True)
            root = cluster.workdir / f"www-{d}"
            root.mkdir()
            (root / "index.html").write_text("Server is repairing\n")
            cluster.spawn(d, [PYTHON, "-m", "http.server", "--bind", "0.0.0.0", "--directory", str(root), "80"],
                          name="fallback-http")
        self.config_path = cluster.workdir / "ldirectord.cf"
        self.client_script = cluster.workdir / "client.py"
        self.client_script.write_text(CLIENT_SCRIPT)
        for name in ("rs1", "rs2", "dir1", "dir2"):
            self.wait_http(name)

    def wait_http(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cp = self.c.run(name, [PYTHON, "-c", "import urllib.request;urllib.request.urlopen("
                                   "'http://127.0.0.1/', timeout=1)"], timeout=10)
            if cp.returncode == 0:
                return
            time.sleep(0.3)
        raise TimeoutError(f"http server in {name} did not come up")

    def config(self, quiescent: str = "yes", autoreload: str = "no", extra: str = "") -> Path:
        text = CONFIG.format(vip=self.vip, rs1=self.rs["rs1"], rs2=self.rs["rs2"], quiescent=quiescent,
                             autoreload=autoreload) + extra
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)
        return self.config_path

    def add_vip(self, director: str) -> None:
        self.c.run(director, ["ip", "addr", "add", f"{self.vip}/24", "dev", "eth0"], check=True)

    def del_vip(self, director: str) -> None:
        self.c.run(director, ["ip", "addr", "del", f"{self.vip}/24", "dev", "eth0"])

    def set_health(self, name: str, ok: bool) -> None:
        (self.docroots[name] / ".test.html").write_text("OK\n" if ok else "broken\n")

    def table(self, director: str = "dir1") -> Table:
        cp = self.c.run(director, ["nft", "-j", "list", "table", "ip", "hadaemon"])
        if cp.returncode != 0:
            return {}
        return parse_listing(json.loads(cp.stdout))

    def weights(self, director: str = "dir1") -> dict:
        """{dest key: weight} of the VIP:80 service ({} when it is not programmed)."""
        entry = self.table(director).get(f"tcp:{self.vip}:80")
        return {k: d.weight for k, d in entry.dests.items()} if entry else {}

    def wait_weights(self, expected: dict, director: str = "dir1", timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.weights(director)
            if last == expected:
                return last
            time.sleep(0.2)
        raise AssertionError(f"weights {last}, expected {expected}")

    def requests(self, n: int, timeout: float = 120) -> list:
        cp = self.c.run("client", [PYTHON, str(self.client_script), f"http://{self.vip}/", str(n)], timeout=timeout)
        return cp.stdout.split("\n")[:-1]

    def key(self, name: str) -> str:
        return f"{self.rs[name]}:80"
