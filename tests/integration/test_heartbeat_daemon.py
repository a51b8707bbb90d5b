"""ha-heartbeat as a process: --check-config, refusals with file:line messages, sd_notify (READY,
STATUS, WATCHDOG, RELOADING, STOPPING), SIGHUP reload keeping the old config on error, SIGTERM."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

GOOD = "keepalive 100ms\ndeadtime 500ms\nbcast eth0\nnode a\nnode b\n"
KEY = "auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n"


def hb(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hadaemon.daemons.heartbeat", *args], capture_output=True,
                          text=True, timeout=30, env=env)


def files(tmp_path, hacf=GOOD, authkeys=KEY, mode=0o600):
    (tmp_path / "ha.cf").write_text(hacf)
    (tmp_path / "authkeys").write_text(authkeys)
    os.chmod(tmp_path / "authkeys", mode)
    return ["--config", str(tmp_path / "ha.cf"), "--authkeys", str(tmp_path / "authkeys")]


def test_check_config_accepts_good_files(tmp_path):
    cp = hb(*files(tmp_path), "--node", "a", "--check-config")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"{tmp_path}/ha.cf: OK (2 nodes, links eth0); {tmp_path}/authkeys: OK"


@pytest.mark.parametrize("hacf, message, detail", [
    ("keepalive 2\ndeadtime 3\nbcast eth0\nnode a\n", "ha.cf:2: ", "deadtime"),
    ("keepalive 1\nbogus on\nbcast eth0\nnode a\n", "ha.cf:2: ", "bogus"),
    ("keepalive 1\nnode a\n", "ha.cf: ", "bcast"),
    ("keepalive 1\nbcast eth0\nnode b\nnode c\n", "ha.cf: the local node 'a' is not listed in a 'node' directive",
     "--node"),
])
def test_bad_ha_cf_is_refused_with_file_and_line_and_no_traceback(tmp_path, hacf, message, detail):
    for extra in (["--check-config"], ["--no-dbus", "--state-dir", str(tmp_path / "state")]):
        cp = hb(*files(tmp_path, hacf=hacf), "--node", "a", *extra)
        assert cp.returncode == 1
        assert cp.stderr.startswith(f"{tmp_path}/{message}") and detail in cp.stderr, cp.stderr
        assert "Traceback" not in cp.stderr


def test_authkeys_readable_by_others_is_refused(tmp_path):
    for extra in (["--check-config"], ["--no-dbus", "--state-dir", str(tmp_path / "state")]):
        cp = hb(*files(tmp_path, mode=0o644), "--node", "a", *extra)
        assert cp.returncode == 1
        assert cp.stderr.strip() == (f"{tmp_path}/authkeys: mode 0644 lets group or others access the keys; "
                                     f"run: chmod 600 {tmp_path}/authkeys"), cp.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was started


def test_check_config_with_crc_passes_with_a_loud_warning(tmp_path):
    cp = hb(*files(tmp_path, authkeys="auth 1\n1 crc\n"), "--node", "a", "--check-config")
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr.startswith(f"{tmp_path}/authkeys:2: warning: key 1 uses crc, which authenticates NOTHING")
    assert cp.stdout.strip().endswith(f"{tmp_path}/authkeys: OK")


def test_bad_authkeys_line_is_refused_with_file_and_line(tmp_path):
    cp = hb(*files(tmp_path, authkeys="auth 1\n1 sha512 0123456789abcdef\n"), "--node", "a", "--check-config")
    assert cp.returncode == 1
    assert cp.stderr.strip() == f"{tmp_path}/authkeys:2: key 1: unknown method 'sha512' (use sha256, sha1, md5, crc)"


def test_missing_files_are_reported(tmp_path):
    cp = hb("--config", str(tmp_path / "nope.cf"), "--authkeys", str(tmp_path / "nokeys"), "--check-config")
    assert cp.returncode == 1 and "nope.cf" in cp.stderr and "Traceback" not in cp.stderr


class NotifySocket:
    """The systemd side of sd_notify: a datagram socket drained by a thread into (time, {field: value})."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def has(self, key, value=None, after=0):
        return [f for t, f in list(self.messages) if t >= after and key in f and (value is None or f[key] == value)]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.mark.root
@pytest.mark.slow
def test_notify_watchdog_reload_and_stop_as_systemd_sees_them():
    with Cluster(["a", "b"]) as c:
        h = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        ns = NotifySocket(c.workdir / "notify")
        try:
            h.write_config("a")
            p = c.spawn("a", h.argv("a"), env={**c.dbus_env("a"), "NOTIFY_SOCKET": ns.path,
                                              "WATCHDOG_USEC": "400000"}, name="ha-heartbeat")
            h.procs["a"] = p
            wait_until(lambda: ns.has("READY", "1"), 20, message="READY=1")
            ready = ns.has("READY", "1")[0]
            assert ready["STATUS"].startswith("epoch 0: 1 member(s) a")
            assert h.has_name("a")  # READY comes after the socket bind and the bus name
            h.start("b")
            wait_until(lambda: any("2 member(s) a b" in f["STATUS"] for f in ns.has("STATUS")), 10,
                       message="STATUS with both members")
            t0 = time.monotonic()
            time.sleep(1.0)
            pings = ns.has("WATCHDOG", "1", after=t0)
            assert 3 <= len(pings) <= 8, len(pings)  # every 0.2 s

            # reload with a broken ha.cf: keeps running with the old config and says why
            cfg = h.dir("a") / "ha.cf"
            good = cfg.read_text()
            cfg.write_text(good + "deadtime 1ms\n")
            t1 = time.monotonic()
            p.signal(signal.SIGHUP)
            wait_until(lambda: "reload failed" in p.output(), 10, message="reload failure logged")
            line = [ln for ln in p.output().splitlines() if "reload failed" in ln][0]
            assert f"keeping the running configuration: {cfg}:" in line and "EVENT=reload-failed" in line
            wait_until(lambda: ns.has("READY", "1", after=t1), 5, message="READY after RELOADING")
            assert ns.has("RELOADING", "1", after=t1)
            assert p.alive()
            time.sleep(0.6)
            assert h.props("a")["Members"] == ["a", "b"]

            # a good reload applies (deadtime 2 s: b killed is dead only after 2 s)
            cfg.write_text(good.replace("deadtime 500ms", "deadtime 2").replace("initdead 1", "initdead 2"))
            p.signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in p.output(), 10, message="reload logged")
            h.procs["b"].kill9()
            t2 = time.monotonic()
            h.wait_states("a", {"b": "dead"}, timeout=10)
            assert time.monotonic() - t2 >= 1.5

            # SIGTERM: STOPPING=1, exit 0, the bus name released
            t3 = time.monotonic()
            p.signal(signal.SIGTERM)
            assert p.wait(10) == 0, p.output()[-2000:]
            assert ns.has("STOPPING", "1", after=t3)
            assert not h.has_name("a")
            assert "Traceback" not in p.output()
        finally:
            ns.close()


@pytest.mark.root
def test_generation_is_persisted_atomically_and_incremented_and_logfile_written():
    with Cluster(["a"]) as c:
        logfile = c.workdir / "ha-log"
        h = HeartbeatCluster(c, dbus=False, extra=[f"logfile {logfile}"])
        h.write_config("a")
        gens = []
        for _ in range(3):
            p = h.start("a")
            h.wait_started("a")
            p.terminate()
            gens.append(int((h.dir("a") / "state" / "generation").read_text()))
        assert gens == [gens[0], gens[0] + 1, gens[0] + 2]
        assert sorted(x.name for x in (h.dir("a") / "state").iterdir()) == ["generation"]  # no temp files left
        # ha.cf logfile: the same events in a plain file, one start line per run
        assert logfile.read_text().count(" started: links eth0") == 3


@pytest.mark.root
def test_reload_adding_a_link_opens_its_socket_and_reports_it():
    with Cluster(["a", "b"], links=2) as c:
        h = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1", links=1)
        h.start_all()
        h.wait_states("a", {"b": "up"})
        assert h.links_of("a", "b") == {"eth0": "up"}
        for n in ("a", "b"):
            h.write_config(n, nlinks=2)
            h.procs[n].signal(signal.SIGHUP)
        wait_until(lambda: h.links_of("a", "b") == {"eth0": "up", "eth1": "up"}, 10,
                   message="the new link eth1 heard")
        assert h.props("a")["Nodes"]["a"] == ["up", {"eth0": "up", "eth1": "up"}]
        c.cut("b", link=0)
        wait_until(lambda: h.links_of("a", "b") == {"eth0": "dead", "eth1": "up"}, 10)
        assert h.states("a")["b"] == "up"
