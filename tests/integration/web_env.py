"""Shared set-up for the ha-web tests: a private bus with the stand-in Crm1 backend (crm_fake), ha-web on
a loopback port with its self-signed certificate, two real PAM accounts (one in haclient, one not)
created with useradd/chpasswd and removed afterwards, and a small HTTPS client."""
from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from hadaemon.testing.dbus import PrivateBus, ensure_group
from hadaemon.testing.procs import Proc

REPO = Path(__file__).resolve().parents[2]
CIB = REPO / "tests" / "unit" / "data" / "crm_two_groups.xml"


CLONE_NEWNET = 0x40000000


class NetnsForward:
    """127.0.0.1:PORT on the host -> ADDR:TARGET inside a network namespace, for a browser on the host and
    ha-web inside a namespace node. The accepting thread enters the namespace (setns acts on the calling
    thread only), so the connections it opens are the namespace's; two threads per connection copy bytes."""

    def __init__(self, netns: str, target_port: int, target_addr: str = "127.0.0.1"):
        self.netns, self.target = netns, (target_addr, target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.error = ""
        self._stop = threading.Event()
        self._socks: list = []
        self._thread = threading.Thread(target=self._run, name=f"forward-{netns}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                self.error = f"setns {self.netns}: {os.strerror(ctypes.get_errno())}"
                return
        finally:
            os.close(fd)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                up = socket.create_connection(self.target, timeout=10)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            up.settimeout(None)
            self._socks += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a pipe thread blocked in recv
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def account(name: str, password: str, groups=()):
    subprocess.run(["userdel", name], capture_output=True)
    cp = subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", *(["-G", ",".join(groups)] if groups else []),
                         name], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


class Client:
    """HTTPS to ha-web with a cookie jar of one cookie; the certificate is checked against ha-web's own."""

    def __init__(self, port: int, cafile: str):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.check_hostname = False  # the certificate names this host, we connect to 127.0.0.1
        self.cookie = ""
        self.csrf = ""

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        hdrs = dict(headers or {})
        if self.cookie:
            hdrs.setdefault("Cookie", self.cookie)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def login(self, user, password, expect_ok=True, max_wait=120):
        deadline = time.monotonic() + max_wait
        while True:
            resp, data = self.request("POST", "/login", urlencode({"user": user, "password": password}),
                                      {"Content-Type": "application/x-www-form-urlencoded"})
            if resp.status == 429 and time.monotonic() < deadline:  # an earlier failure slows this one
                time.sleep(float(resp.getheader("Retry-After", "1")))
                continue
            break
        if not expect_ok:
            return resp, data
        assert resp.status == 303, (resp.status, data)
        cookie = resp.getheader("Set-Cookie")
        self.cookie = cookie.split(";", 1)[0]
        resp2, page = self.request("GET", "/")
        assert resp2.status == 200
        self.csrf = re.search(rb'name="csrf-token" content="([^"]+)"', page).group(1).decode()
        return resp, cookie

    def post(self, path, body, csrf=True, headers=None):
        hdrs = dict(headers or {})
        if csrf:
            hdrs["X-CSRF-Token"] = self.csrf
        resp, data = self.request("POST", path, body, hdrs)
        try:
            return resp.status, json.loads(data or b"null")
        except ValueError:
            return resp.status, data.decode(errors="replace")

    def get_json(self, path):
        resp, data = self.request("GET", path)
        return resp.status, json.loads(data) if resp.getheader("Content-Type", "").startswith("application/json") \
            else data.decode(errors="replace")

    def status(self) -> dict:
        code, s = self.get_json("/api/status")
        assert code == 200, s
        return s

    def where(self, rsc):
        return next(r for r in self.status()["crm"]["resources"] if r["id"] == rsc)["nodes"]


class WebEnv:
    def __init__(self, work: Path):
        self.work = work
        self.port = free_port()
        self.state = work / "state"
        self.admin = "hwa" + secrets.token_hex(3)
        self.viewer = "hwv" + secrets.token_hex(3)
        self.password = "Pw-" + secrets.token_urlsafe(12)

    def client(self) -> Client:
        return Client(self.port, str(self.state / "web" / "cert.pem"))

    def settled_epoch(self, c: Client, quiet=1.5, timeout=60) -> str:
        """The CIB epoch ha-web shows once it has not changed for `quiet` seconds: what earlier
        changes sent (their signals reach ha-web a little after the calls returned) is in it."""
        deadline = time.monotonic() + timeout
        epoch, since = c.status()["crm"]["cib_epoch"], time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = c.status()["crm"]["cib_epoch"]
            if now != epoch:
                epoch, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return epoch
        raise AssertionError(f"the CIB epoch never settled (last {epoch})")

    def wait_crm(self, c: Client, want, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = c.status()
            if want(s):
                return s
            time.sleep(0.2)
        raise AssertionError(f"status never matched: {s}")


@contextmanager
def web_env(work: Path, with_crm: bool = True, with_director: bool = False):
    ensure_group("haclient")
    env = WebEnv(work)
    with PrivateBus() as bus, account(env.admin, env.password, ["haclient"]), account(env.viewer, env.password):
        env.bus = bus
        penv = dict(os.environ, **bus.env)
        crm = None
        if with_crm:
            crm = Proc([sys.executable, "-m", "tests.integration.crm_fake", "--cib", str(CIB), "--node", "admin1",
                        "--members", "admin1,admin2"], work / "crm_fake.log", env=penv, name="crm_fake", cwd=str(REPO))
        director = None
        if with_director:
            director = Proc([sys.executable, "-m", "tests.integration.web_director_fake"], work / "director_fake.log",
                            env=penv, name="director_fake", cwd=str(REPO))
        web = Proc([sys.executable, "-m", "hadaemon.daemons.web", "--listen", f"127.0.0.1:{env.port}",
                    "--state-dir", str(env.state), "--debug"], work / "ha-web.log", env=penv, name="ha-web",
                   cwd=str(REPO))
        env.crm, env.web = crm, web
        try:
            for p in (crm, director):
                if p is not None:
                    p.wait_output("ready", timeout=60)
            web.wait_output("listening on", timeout=60)
            if crm is not None:  # ha-web has read Crm1 once (it listens before its first read)
                c = env.client()
                c.login(env.admin, env.password)
                env.wait_crm(c, lambda s: s["crm"] is not None)
            yield env
        finally:
            web.terminate(timeout=10)
            for p in (crm, director):
                if p is not None:
                    p.terminate(timeout=10)


@contextmanager
def web_in_node(crm, node: str, state_dir: Path, log: Path):
    """ha-web run inside a namespace node of a CrmCluster (its network, mounts and host name: the
    node's agents and bus), reached from the host at https://127.0.0.1:PORT/ through a NetnsForward.
    Yields (Proc, url)."""
    web = Proc(crm.in_node(node, [sys.executable, "-m", "hadaemon.daemons.web", "--listen", "127.0.0.1:7630",
                                  "--state-dir", str(state_dir)]),
               log, env=dict(os.environ, **crm.c.dbus_env(node)), name=f"{node}/ha-web", cwd=str(REPO))
    fwd = None
    try:
        web.wait_output("listening on", timeout=60)
        fwd = NetnsForward(crm.c.netns(node), 7630)
        yield web, f"https://127.0.0.1:{fwd.port}/"
    finally:
        if fwd is not None:
            fwd.close()
        web.terminate(timeout=10)
