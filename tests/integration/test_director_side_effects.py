"""ha-ldirectord's side effects end to end (nft backend in namespaces): failurecount debouncing, the
maintenancedir, fallbackcommand start/stop, email alerts through the configured smtp= server (a sink on
the director's 127.0.0.1:25), and autoreload running callback= with the file name, and monitorfile= logging every check."""
import os
import re
import signal
import time
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster
from tests.integration.director_env import PYTHON, DirectorEnv

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVERS = Path(__file__).with_name("servers.py")   # its smtp-sink mode


def wait_for(pred, timeout=30.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def read(path):
    return path.read_text() if path.exists() else ""


@pytest.fixture
def env():
    with Cluster(["dir1", "dir2"], client=True) as c:
        yield DirectorEnv(c)


def test_failurecount_maintenance_fallbackcommand_email_callback(env):
    w = env.c.workdir
    mdir, mail, fb_log, cb_log = w / "maint", w / "mail.txt", w / "fallback.log", w / "callback.log"
    mdir.mkdir()
    (w / "fb.sh").write_text(f'#!/bin/sh\necho "$@" >> {fb_log}\n')
    (w / "cb.sh").write_text(f'#!/bin/sh\necho "$1" >> {cb_log}\n')
    for s in ("fb.sh", "cb.sh"):
        (w / s).chmod(0o755)
    sink = env.c.spawn("dir1", [PYTHON, str(SERVERS), "smtp-sink", str(mail), "25"], name="smtp-sink")
    wait_for(lambda: "listening" in sink.output(), 30, "the SMTP sink")

    extra = (f"failurecount=2\nmaintenancedir={mdir}\nfallbackcommand={w / 'fb.sh'}\ncallback=\"{w / 'cb.sh'}\"\n"
             "emailalert=ops@example.com\nemailalertfrom=director@example.com\nsmtp=127.0.0.1\n")
    env.config(quiescent="yes", autoreload="yes", extra=extra)
    monitor = w / "monitor.log"
    env.config_path.write_text(env.config_path.read_text().replace("\tcheckport=80\n",
                                                                   f"\tcheckport=80\n\tmonitorfile=\"{monitor}\"\n"))
    env.add_vip("dir1")
    d = env.c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--no-dbus",
                             str(env.config_path)], name="ldirectord")
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    vip = f"{env.vip}:80"
    # at start no real was up yet: fallbackcommand start, then stop once one came up (ldirectord's order)
    wait_for(lambda: read(fb_log).splitlines() == [f"start {vip} tcp", f"stop {vip} tcp"], 20,
             f"fallbackcommand start/stop, got {read(fb_log)!r}")

    # failurecount=2: one failed check is only a soft failure; the second takes rs1 out (weight 0)
    env.set_health("rs1", False)
    env.wait_weights({rs1: 0, rs2: 3}, timeout=30)
    # events are logged just after the table is programmed: wait for the line, not only the table
    wait_for(lambda: f"real server {rs1} of tcp:{vip} is down" in d.output(), 10, "the down event")
    out = d.output()
    soft = out.find(f"real server {rs1} of tcp:{vip} failed check 1/2")
    down = out.find(f"real server {rs1} of tcp:{vip} is down")
    assert 0 <= soft < down, out[-3000:]
    # ... and a mail through smtp=127.0.0.1 (port 25 in the director's namespace)
    wait_for(lambda: f"Quiescent real server: {rs1} ({vip}) (Weight set to 0)" in read(mail), 30,
             f"the quiescent alert, mails: {read(mail)!r}")
    assert "To: ops@example.com" in read(mail) and "From: director@example.com" in read(mail)
    # monitorfile: every check of the virtual logged as ldirectord's service_set does
    lines = read(monitor).splitlines()
    rs1_id = f"negotiate http tcp {env.rs['rs1']} 80 www.tuchao.com 80 1 gate /.test.html OK"
    assert any(re.fullmatch(rf"\[.+\] \[{d.pid}\] {re.escape(rs1_id)} \[up\] .+", ln) for ln in lines), lines[:5]
    assert any(re.fullmatch(rf"\[.+\] \[{d.pid}\] {re.escape(rs1_id)} \[down\] .+", ln) for ln in lines), lines[-5:]
    env.set_health("rs1", True)
    env.wait_weights({rs1: 1, rs2: 3}, timeout=30)
    wait_for(lambda: f"Restored real server: {rs1} ({vip}) (Weight set to 1)" in read(mail), 30, "the restore alert")

    # maintenancedir: a file named after the real takes it out at once (no debouncing); removing it restores
    (mdir / env.rs["rs2"]).write_text("")
    env.wait_weights({rs1: 1, rs2: 0}, timeout=15)
    wait_for(lambda: f"real server {rs2} of tcp:{vip} is maintenance" in d.output(), 10, "the maintenance event")
    assert f"real server {rs2} of tcp:{vip} failed check" not in d.output()
    (mdir / env.rs["rs2"]).unlink()
    env.wait_weights({rs1: 1, rs2: 3}, timeout=15)

    # every real down: the fallback is added and fallbackcommand runs once with start; recovery stops it
    env.set_health("rs1", False)
    env.set_health("rs2", False)
    env.wait_weights({rs1: 0, rs2: 0, "127.0.0.1:80": 1}, timeout=30)
    wait_for(lambda: read(fb_log).splitlines()[2:] == [f"start {vip} tcp"], 10, f"fallbackcommand start: {read(fb_log)!r}")
    env.set_health("rs1", True)
    env.set_health("rs2", True)
    env.wait_weights({rs1: 1, rs2: 3}, timeout=30)
    wait_for(lambda: read(fb_log).splitlines()[2:] == [f"start {vip} tcp", f"stop {vip} tcp"], 10,
             f"fallbackcommand stop: {read(fb_log)!r}")

    # autoreload: a content change reloads and runs callback with the file name
    assert read(cb_log) == ""
    text = env.config_path.read_text()
    env.config_path.write_text(re.sub(r"(real=\S+:80 gate) 3", r"\1 2", text))
    env.wait_weights({rs1: 1, rs2: 2}, timeout=30)
    wait_for(lambda: read(cb_log).splitlines() == [str(env.config_path)], 10, f"callback, got {read(cb_log)!r}")
    d.terminate(timeout=10)
    assert env.table() == {}


def test_execute_starts_reloads_and_stops_other_instances(env):
    """execute=CONFIG: the other instance is started with this one, stopped when a reload drops the line,
    started when it comes back, and stopped with this one (ldirectord's ld_cmd_children)."""
    w = env.c.workdir
    child = w / f"child-{os.getpid()}.cf"          # its pid file is /run/hadaemon/ldirectord.<name>.pid
    # an IPv6 virtual service only: the child writes nft's ip6 table, this one the ip table (a file without
    # any virtual service is refused)
    child.write_text("checkinterval=1\nvirtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]:80 gate\n\tchecktype=off\n")
    env.config(quiescent="yes", extra=f'execute="{child}"\n')
    env.add_vip("dir1")
    d = env.c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--no-dbus",
                             str(env.config_path)], name="ldirectord")

    def child_status():
        return env.c.run("dir1", [PYTHON, "-m", "hadaemon.daemons.director", str(child), "status"]).returncode

    try:
        env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
        wait_for(lambda: child_status() == 0, 60, "the execute= instance to run")
        env.config(quiescent="yes")                  # the execute= line goes: the instance is stopped
        d.signal(signal.SIGHUP)
        wait_for(lambda: child_status() == 3, 60, "the instance to stop on reload")
        env.config(quiescent="yes", extra=f'execute="{child}"\n')
        d.signal(signal.SIGHUP)
        wait_for(lambda: child_status() == 0, 60, "the instance to start on reload")
        d.terminate(timeout=70)
        assert child_status() == 3, d.output()[-2000:]
        assert env.table() == {}
    finally:
        env.c.run("dir1", [PYTHON, "-m", "hadaemon.daemons.director", str(child), "stop"], timeout=90)
