"""The LRM against real agents: the scenarios of Pacemaker's executor regression suite (cts-exec)
with Debian's unmodified ClusterLabs Dummy agents, LSB init scripts written here, fence_dummy, and
an OCF agent of our own that logs when each action begins and ends (to see serialisation)."""
from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from hadaemon.core.errors import BadRequest
from hadaemon.core.lrm import results as R
from hadaemon.io.lrm import LocalResourceManager, OpRequest, OpResult, ResourceSpec

SYS_OCF = Path("/usr/lib/ocf")
pytestmark = pytest.mark.skipif(not (SYS_OCF / "resource.d/heartbeat/Dummy").exists(),
                                reason="Debian's resource-agents are not installed (scripts/setup)")

# An OCF agent that records the start and end of every action (to check that actions on one
# resource never overlap) and sleeps OCF_RESKEY_op_sleep seconds in each.
PROBE_AGENT = r"""#!/bin/sh
: ${OCF_FUNCTIONS_DIR=${OCF_ROOT}/lib/heartbeat}
. ${OCF_FUNCTIONS_DIR}/ocf-shellfuncs
log="$OCF_RESKEY_log"
echo "B $1 $OCF_RESKEY_CRM_meta_interval $$" >> "$log"
sleep "${OCF_RESKEY_op_sleep:-0}"
rc=$OCF_SUCCESS
case "$1" in
  start) touch "$OCF_RESKEY_state" ;;
  stop) rm -f "$OCF_RESKEY_state" ;;
  monitor) [ -e "$OCF_RESKEY_state" ] || rc=$OCF_NOT_RUNNING ;;
  meta-data) echo '<resource-agent name="Probe"/>' ;;
  *) rc=$OCF_ERR_UNIMPLEMENTED ;;
esac
echo "E $1 $OCF_RESKEY_CRM_meta_interval $$" >> "$log"
exit $rc
"""

LSB_SCRIPT = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          lsbtest
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: LSB test service
# Description:       A sleep that pretends to be a service.
### END INIT INFO
PIDFILE=@DIR@/lsbtest.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start) running && exit 0
         setsid sleep 300 </dev/null >/dev/null 2>&1 &
         echo $! > $PIDFILE; exit 0 ;;
  stop)  if running; then kill "$(cat $PIDFILE)"; fi; rm -f $PIDFILE; exit 0 ;;
  status) running && exit 0
          [ -f $PIDFILE ] && exit 1
          exit 3 ;;
  *) echo "Usage: $0 {start|stop|status}"; exit 3 ;;
esac
"""

BROKEN_LSB = "#!/bin/sh\n[ \"$1\" = status ] && exit 4\nexit 42\n"


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def env(tmp_path):
    """A private OCF root (the system's agents and ocf-shellfuncs plus our Probe), an init.d dir."""
    root = tmp_path / "ocf"
    (root / "resource.d").mkdir(parents=True)
    for p in ("heartbeat", "pacemaker"):
        (root / "resource.d" / p).symlink_to(SYS_OCF / "resource.d" / p)
    (root / "lib").symlink_to(SYS_OCF / "lib")
    (root / "resource.d" / "hatest").mkdir()
    _write(root / "resource.d" / "hatest" / "Probe", PROBE_AGENT)
    initd = tmp_path / "init.d"
    initd.mkdir()
    _write(initd / "lsbtest", LSB_SCRIPT.replace("@DIR@", str(tmp_path)))
    _write(initd / "broken", BROKEN_LSB)
    state = tmp_path / "state"
    state.mkdir()
    return {"ocf_root": str(root), "lsb_dir": str(initd), "state": state, "tmp": tmp_path}


class Recorder:
    def __init__(self):
        self.results = []

    def __call__(self, res: OpResult):
        self.results.append(res)

    def of(self, rsc_id=None, op=None, status=None):
        return [r for r in self.results if (rsc_id is None or r.rsc_id == rsc_id) and (op is None or r.op == op)
                and (status is None or r.status == status)]

    async def wait_for(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [r for r in self.results if pred(r)]
            if hits:
                return hits[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no result matched within {timeout}s; got {[r.describe() for r in self.results]}")


@pytest.fixture
async def lrm(env):
    rec = Recorder()
    m = LocalResourceManager(rec, ocf_root=env["ocf_root"], lsb_dir=env["lsb_dir"], use_systemd=False)
    m.rec = rec
    yield m
    await m.close()


def dummy(env, rid="test_rsc", provider="heartbeat", **params):
    p = {"state": str(env["state"] / f"{rid}.state")}
    p.update({k: str(v) for k, v in params.items()})
    return ResourceSpec(rid, "ocf", provider, "Dummy", p)


def probe_rsc(env, rid="probe", **params):
    p = {"state": str(env["state"] / f"{rid}.state"), "log": str(env["tmp"] / f"{rid}.log")}
    p.update({k: str(v) for k, v in params.items()})
    return ResourceSpec(rid, "ocf", "hatest", "Probe", p)


def _ok(res: OpResult, rc=R.OCF_SUCCESS, status="done"):
    assert (res.rc, res.status) == (rc, status), res.describe() + " " + res.output
    return res


def _procs_with_env(marker: str):
    """PIDs of processes whose environment holds marker (agent children left behind)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


# ---- cts-exec: start/stop, probes -----------------------------------------------------------
async def test_start_stop_and_probes(lrm, env):
    for provider in ("heartbeat", "pacemaker"):
        rsc = dummy(env, f"d_{provider}", provider)
        _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)     # probe
        res = _ok(await lrm.execute(rsc, OpRequest("start", user_data="1:2:0:abc")))
        assert res.user_data == "1:2:0:abc" and res.call_id > 0 and res.started > 0
        _ok(await lrm.execute(rsc, OpRequest("start")))                          # start is idempotent
        _ok(await lrm.execute(rsc, OpRequest("monitor")))
        _ok(await lrm.execute(rsc, OpRequest("stop")))
        _ok(await lrm.execute(rsc, OpRequest("stop")))
        _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)
    assert lrm.rec.results == []          # one-shot results are returned, not reported


async def test_agent_sees_ocf_environment(lrm, env):
    rsc = probe_rsc(env, "envrsc")
    envdump = env["tmp"] / "env.txt"
    script = Path(env["ocf_root"]) / "resource.d" / "hatest" / "EnvDump"
    _write(script, f"#!/bin/sh\nenv > {envdump}\nexit 0\n")
    rsc = ResourceSpec("envrsc", "ocf", "hatest", "EnvDump", {"ip": "10.1.2.3"})
    _ok(await lrm.execute(rsc, OpRequest("start", timeout_ms=12345, meta={"on_node": "admin1"})))
    seen = dict(line.split("=", 1) for line in envdump.read_text().splitlines() if "=" in line)
    assert seen["OCF_ROOT"] == env["ocf_root"]
    assert seen["OCF_RESOURCE_INSTANCE"] == "envrsc" and seen["OCF_RESOURCE_TYPE"] == "EnvDump"
    assert seen["OCF_RESOURCE_PROVIDER"] == "hatest"
    assert seen["OCF_RA_VERSION_MAJOR"] == "1" and seen["OCF_RA_VERSION_MINOR"] == "1"
    assert seen["OCF_RESKEY_ip"] == "10.1.2.3"
    assert seen["OCF_RESKEY_CRM_meta_timeout"] == "12345" and seen["OCF_RESKEY_CRM_meta_interval"] == "0"
    assert seen["OCF_RESKEY_CRM_meta_on_node"] == "admin1"


# ---- monitor cancel, duplicate monitor, cancel of non-existent ops ----------------------------
async def test_monitor_cancel(lrm, env):
    rsc = dummy(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300, user_data="mon-key")))
    assert lrm.recurring() == [("test_rsc", "monitor", 300)]
    # wrong interval / wrong action / unknown resource: refused, the monitor stays
    assert lrm.cancel("test_rsc", "monitor", 2000) is False
    assert lrm.cancel("test_rsc", "stop", 300) is False
    assert lrm.cancel("nosuch", "monitor", 300) is False
    assert lrm.recurring() == [("test_rsc", "monitor", 300)]
    assert lrm.cancel("test_rsc", "monitor", 300) is True
    cancelled = lrm.rec.of("test_rsc", "monitor", "cancelled")
    assert len(cancelled) == 1 and cancelled[0].rc == R.OCF_SUCCESS and cancelled[0].user_data == "mon-key"
    assert lrm.recurring() == []
    assert lrm.cancel("test_rsc", "monitor", 300) is False
    n = len(lrm.rec.results)
    os.unlink(rsc.params["state"])           # would be a change if the monitor still ran
    await asyncio.sleep(1.5)
    assert len(lrm.rec.results) == n


async def test_duplicate_monitor(lrm, env):
    rsc = probe_rsc(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=400, user_data="first")))
    res = _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=400, user_data="second")))
    assert res.user_data == "second"
    assert lrm.recurring() == [("probe", "monitor", 400)]
    await asyncio.sleep(1.5)
    log = Path(rsc.params["log"]).read_text().split("\n")
    runs = [line for line in log if line.startswith("B monitor")]
    # one monitor every ~400 ms plus the duplicate's own run: far fewer than two monitors would make
    assert 2 <= len(runs) <= 7, log
    assert lrm.cancel("probe", "monitor", 400) is True
    assert lrm.rec.of("probe", "monitor", "cancelled")[0].user_data == "second"
    assert lrm.cancel("probe", "monitor", 400) is False


# ---- stop implies cancel ---------------------------------------------------------------------
async def test_stop_implies_cancel(lrm, env):
    rsc = dummy(env)
    other = dummy(env, "other")
    for r in (rsc, other):
        _ok(await lrm.execute(r, OpRequest("start")))
        _ok(await lrm.execute(r, OpRequest("monitor", interval_ms=300)))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=700)))
    _ok(await lrm.execute(rsc, OpRequest("stop")))
    cancelled = lrm.rec.of("test_rsc", "monitor", "cancelled")
    assert sorted(r.interval_ms for r in cancelled) == [300, 700]
    assert lrm.recurring() == [("other", "monitor", 300)]
    n = len(lrm.rec.of("test_rsc"))
    await asyncio.sleep(1.2)
    assert len(lrm.rec.of("test_rsc")) == n   # nothing reported after the stop (no "not running")


# ---- timeouts --------------------------------------------------------------------------------
async def test_start_timeout_kills_the_whole_group(lrm, env):
    rid = f"timeout_rsc_{os.getpid()}"          # unique: the leftover check searches every process
    rsc = dummy(env, rid, provider="pacemaker", op_sleep=30)
    t0 = time.monotonic()
    res = _ok(await lrm.execute(rsc, OpRequest("start", timeout_ms=1000)), R.OCF_ERR_GENERIC, "timeout")
    assert "timed out" in res.exit_reason
    assert time.monotonic() - t0 < 25        # did not wait for the 30 s sleep
    # the agent's sleep child (same process group) is gone, not left running
    for _ in range(50):
        if not _procs_with_env(f"OCF_RESOURCE_INSTANCE={rid}\0"):
            break
        await asyncio.sleep(0.1)
    assert _procs_with_env(f"OCF_RESOURCE_INSTANCE={rid}\0") == []
    stop = ResourceSpec(rsc.id, rsc.cls, rsc.provider, rsc.type, {"state": rsc.params["state"]})
    _ok(await lrm.execute(stop, OpRequest("stop")))


async def test_daemon_holding_the_output_pipe_does_not_hold_up_the_result(lrm, env, tmp_path):
    pidfile = tmp_path / "held.pid"
    _write(Path(env["lsb_dir"]) / "holder", f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\necho started\nexit 0\n")
    try:
        res = _ok(await lrm.execute(ResourceSpec("h", "lsb", None, "holder"), OpRequest("start", timeout_ms=20000)))
        assert "started" in res.output
        os.kill(int(pidfile.read_text()), 0)      # the daemon is still there: not killed for a good start
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), 9)
            except ProcessLookupError:
                pass


async def test_lsb_timeout(lrm, env, tmp_path):
    _write(Path(env["lsb_dir"]) / "hang", "#!/bin/sh\nsleep 60\n")
    res = _ok(await lrm.execute(ResourceSpec("h", "lsb", None, "hang"), OpRequest("start", timeout_ms=800)),
              R.OCF_ERR_GENERIC, "timeout")
    assert res.exec_ms >= 700


# ---- failing monitor reported once, only changes reported ------------------------------------
async def test_failing_monitor_reported_once(lrm, env):
    rsc = dummy(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=200)))
    await asyncio.sleep(0.8)
    assert lrm.rec.results == []               # ok, ok, ok: nothing new to report
    os.unlink(rsc.params["state"])
    await lrm.rec.wait_for(lambda r: r.rc == R.OCF_NOT_RUNNING)
    await asyncio.sleep(1.2)                   # several more failing runs
    failing = [r for r in lrm.rec.results if r.op == "monitor" and r.status == "done"]
    assert [r.rc for r in failing] == [R.OCF_NOT_RUNNING], [r.describe() for r in lrm.rec.results]
    Path(rsc.params["state"]).touch()          # recovers: that is a change again
    await lrm.rec.wait_for(lambda r: r.rc == R.OCF_SUCCESS and r.status == "done")
    assert lrm.cancel(rsc.id, "monitor", 200)
    assert lrm.rec.results[-1].status == "cancelled" and lrm.rec.results[-1].rc == R.OCF_SUCCESS


async def test_cancel_after_failure_reports_last_rc(lrm, env):
    rsc = dummy(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=200)))
    os.unlink(rsc.params["state"])
    await lrm.rec.wait_for(lambda r: r.rc == R.OCF_NOT_RUNNING)
    assert lrm.cancel(rsc.id, "monitor", 200)
    last = lrm.rec.results[-1]
    assert last.describe() == "rsc_id:test_rsc action:monitor rc:not running op_status:Cancelled"


# ---- unknown resource, uninstalled agent, bad/missing provider --------------------------------
async def test_uninstalled_and_bad_provider(lrm, env):
    fake = ResourceSpec("test_rsc", "ocf", "pacemaker", "this_is_fake1234", {})
    assert _ok(await lrm.execute(fake, OpRequest("start")), R.OCF_ERR_INSTALLED, "not_installed").describe() == \
        "rsc_id:test_rsc action:start rc:not installed op_status:Not installed"
    _ok(await lrm.execute(fake, OpRequest("monitor")), R.OCF_ERR_INSTALLED, "not_installed")  # probe
    _ok(await lrm.execute(ResourceSpec("r", "ocf", "pancakes", "Dummy", {}), OpRequest("start")),
        R.OCF_ERR_INSTALLED, "not_installed")
    _ok(await lrm.execute(ResourceSpec("r", "ocf", None, "Dummy", {}), OpRequest("start")),
        R.OCF_ERR_CONFIGURED, "error_fatal")
    _ok(await lrm.execute(ResourceSpec("r", "lsb", None, "no_such_script", {}), OpRequest("start")),
        R.OCF_ERR_INSTALLED, "not_installed")
    _ok(await lrm.execute(ResourceSpec("r", "stonith", None, "fence_nonexistent", {}), OpRequest("start")),
        R.OCF_ERR_INSTALLED, "not_installed")
    _ok(await lrm.execute(ResourceSpec("r", "upstart", None, "x", {}), OpRequest("start")),
        R.OCF_ERR_CONFIGURED, "error_fatal")
    noexec = Path(env["ocf_root"]) / "resource.d" / "hatest" / "NoExec"
    noexec.write_text("#!/bin/sh\nexit 0\n")
    noexec.chmod(0o644)
    _ok(await lrm.execute(ResourceSpec("r", "ocf", "hatest", "NoExec", {}), OpRequest("start")),
        R.OCF_ERR_PERM, "error")
    # a recurring op of an uninstalled agent answers once and keeps quiet
    res = await lrm.execute(fake, OpRequest("monitor", interval_ms=300))
    _ok(res, R.OCF_ERR_INSTALLED, "not_installed")
    await asyncio.sleep(1.0)
    assert lrm.rec.results == []
    assert lrm.cancel("test_rsc", "monitor", 300)


async def test_unknown_resource(lrm, env):
    assert lrm.cancel("never_seen", "monitor", 1000) is False
    assert lrm.cancel("never_seen", "start", 0) is False
    await lrm.stop_all_recurring("never_seen")
    assert lrm.recurring() == []
    # a stop of a resource never started here is an ordinary stop (Dummy: ok)
    _ok(await lrm.execute(dummy(env, "never_seen"), OpRequest("stop")))


# ---- in-flight collisions: recurring and one-off ops of one resource never overlap ------------
def _assert_serialised(log_path: str) -> list:
    lines = [line.split() for line in Path(log_path).read_text().splitlines() if line.strip()]
    open_pid = None
    for ev in lines:
        if ev[0] == "B":
            assert open_pid is None, f"{ev} began while {open_pid} was running: {lines}"
            open_pid = ev[-1]
        else:
            assert open_pid == ev[-1], f"{ev} ended but {open_pid} was running: {lines}"
            open_pid = None
    return lines


async def test_inflight_collision(lrm, env):
    rsc = probe_rsc(env, op_sleep="0.3")
    _ok(await lrm.execute(rsc, OpRequest("start")))
    for i in range(6):
        _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=200 + i)))
    assert len(lrm.recurring()) == 6
    # one-off actions while six monitors keep the resource busy
    _ok(await lrm.execute(rsc, OpRequest("monitor")))
    _ok(await lrm.execute(rsc, OpRequest("reload")), R.OCF_ERR_UNIMPLEMENTED)
    _ok(await lrm.execute(rsc, OpRequest("stop", timeout_ms=30000)))
    assert lrm.recurring() == []
    assert sorted(r.interval_ms for r in lrm.rec.of("probe", "monitor", "cancelled")) == [200 + i for i in range(6)]
    lines = _assert_serialised(rsc.params["log"])
    assert [ev[1] for ev in lines if ev[0] == "B"][-1] == "stop"
    # nothing runs after the stop
    n = len(lines)
    await asyncio.sleep(1.0)
    assert len(_assert_serialised(rsc.params["log"])) == n


async def test_stop_all_recurring_of_a_sleeping_monitor(lrm, env):
    """A monitor sleeping between two runs, cancelled: it never runs or reports again, the stop
    behind it runs, and its task ends."""
    rsc = probe_rsc(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=400)))   # its first run; now sleeping
    await lrm.stop_all_recurring("probe")
    assert lrm.recurring() == []
    _ok(await lrm.execute(rsc, OpRequest("stop")))
    assert len(lrm.rec.of("probe", "monitor", "cancelled")) == 1
    lines = _assert_serialised(rsc.params["log"])
    assert [ev[1] for ev in lines if ev[0] == "B"] == ["start", "monitor", "stop"]
    await asyncio.sleep(1.0)   # 2.5 intervals
    assert len(_assert_serialised(rsc.params["log"])) == len(lines)
    assert not [t for t in asyncio.all_tasks() if "_recurring_loop" in repr(t.get_coro())]
    assert len(lrm.rec.of("probe", "monitor", "cancelled")) == 1


async def test_inflight_collision_cts(lrm, env):
    """cts-exec rsc_inflight_collision with pacemaker:Dummy, whose monitor fails ("alternate universe
    collision") when another of its ops with op_sleep runs at the same time."""
    rsc = dummy(env, provider="pacemaker", op_sleep=1)
    _ok(await lrm.execute(rsc, OpRequest("start", timeout_ms=30000)))
    for i in range(4):
        _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=1000 + i, timeout_ms=30000)))
    await asyncio.sleep(3)
    _ok(await lrm.execute(rsc, OpRequest("stop", timeout_ms=30000)))
    assert [r.describe() for r in lrm.rec.results if r.status != "cancelled"] == []
    assert len(lrm.rec.of("test_rsc", "monitor", "cancelled")) == 4


async def test_actions_of_different_resources_run_in_parallel(lrm, env):
    a, b = probe_rsc(env, "a", op_sleep="1"), probe_rsc(env, "b", op_sleep="1")
    ra, rb = await asyncio.gather(lrm.execute(a, OpRequest("start")), lrm.execute(b, OpRequest("start")))
    _ok(ra), _ok(rb)
    # each began before the other ended: the two starts overlapped
    assert ra.started < rb.started + rb.exec_ms / 1000 and rb.started < ra.started + ra.exec_ms / 1000


async def test_cancel_of_a_queued_one_off_op(lrm, env):
    rsc = probe_rsc(env, op_sleep="1")
    first = asyncio.ensure_future(lrm.execute(rsc, OpRequest("start")))
    await asyncio.sleep(0.2)
    queued = asyncio.ensure_future(lrm.execute(rsc, OpRequest("monitor")))
    await asyncio.sleep(0.2)
    assert lrm.cancel("probe", "monitor", 0) is True
    res = await queued
    assert res.status == "cancelled"
    _ok(await first)
    lines = _assert_serialised(rsc.params["log"])
    assert [ev[1] for ev in lines if ev[0] == "B"] == ["start"]


# ---- start delay -----------------------------------------------------------------------------
async def test_start_delay(lrm, env):
    rsc = dummy(env)
    t0 = time.time()
    res = _ok(await lrm.execute(rsc, OpRequest("start", start_delay_ms=1500)))
    assert res.started - t0 >= 1.4           # the agent ran only after the delay
    _ok(await lrm.execute(rsc, OpRequest("stop")))


async def test_start_delay_cancel(lrm, env):
    rsc = dummy(env)
    task = asyncio.ensure_future(lrm.execute(rsc, OpRequest("start", start_delay_ms=3000)))
    await asyncio.sleep(0.3)
    assert lrm.cancel("test_rsc", "start", 0) is True
    res = await task
    assert res.status == "cancelled" and res.op == "start"
    await asyncio.sleep(0.5)
    assert not os.path.exists(rsc.params["state"])
    _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)


async def test_recurring_start_delay(lrm, env):
    rsc = dummy(env)
    _ok(await lrm.execute(rsc, OpRequest("start")))
    t0 = time.time()
    res = _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=1000, start_delay_ms=1000)))
    assert res.started - t0 >= 0.9
    await lrm.stop_all_recurring("test_rsc")
    assert lrm.recurring() == []


# ---- LSB -------------------------------------------------------------------------------------
async def test_lsb_lifecycle_and_status_mapping(lrm, env):
    rsc = ResourceSpec("lsbtest", "lsb", None, "lsbtest", {})
    _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)        # status 3
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300)))
    # kill the service behind the script's back: status 1 (pid file left) -> not running, once
    pid = int((env["tmp"] / "lsbtest.pid").read_text())
    os.kill(pid, 9)
    got = await lrm.rec.wait_for(lambda r: r.rc == R.OCF_NOT_RUNNING)
    assert got.status == "done" and got.op == "monitor" and got.interval_ms == 300
    _ok(await lrm.execute(rsc, OpRequest("stop")))
    assert lrm.recurring() == []
    _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)
    broken = ResourceSpec("broken", "lsb", None, "broken", {})
    _ok(await lrm.execute(broken, OpRequest("monitor")), R.OCF_ERR_GENERIC)      # status 4: unknown
    _ok(await lrm.execute(broken, OpRequest("start")), R.OCF_ERR_GENERIC)        # 42: not an OCF code
    # the service class picks the init script when there is one
    svc = ResourceSpec("svc", "service", None, "lsbtest", {})
    _ok(await lrm.execute(svc, OpRequest("start")))
    _ok(await lrm.execute(svc, OpRequest("monitor")))
    _ok(await lrm.execute(svc, OpRequest("stop")))


# ---- stonith ---------------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/usr/sbin/fence_dummy"), reason="fence-agents not installed")
async def test_stonith_fence_dummy(lrm, env, tmp_path):
    rsc = ResourceSpec("fencer", "stonith", None, "fence_dummy", {"type": "file",
                       "status_file": str(tmp_path / "power"), "pcmk_host_list": "node1"})
    (tmp_path / "power").write_text("on")
    _ok(await lrm.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)         # probe: not started here
    _ok(await lrm.execute(rsc, OpRequest("start")))
    _ok(await lrm.execute(rsc, OpRequest("monitor")))
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=500)))
    res = await lrm.fence(rsc, "off", "node1", timeout_ms=30000)
    _ok(res)
    assert (tmp_path / "power").read_text().strip() == "off"
    _ok(await lrm.fence(rsc, "status", "node1"), R.OCF_NOT_RUNNING)              # status 2: off
    _ok(await lrm.fence(rsc, "on", "node1"))
    _ok(await lrm.fence(rsc, "status", "node1"))
    with pytest.raises(BadRequest):
        await lrm.fence(rsc, "explode", "node1")
    _ok(await lrm.execute(rsc, OpRequest("stop")))
    assert lrm.recurring() == []


async def test_stonith_start_timeout(env, tmp_path):
    """cts-exec stonith_start_timeout, with a fence agent of our own that reads its options and hangs."""
    sdir = tmp_path / "sbin"
    sdir.mkdir()
    _write(sdir / "fence_hang", f"#!/bin/sh\ncat > {tmp_path}/stdin.txt\nexec sleep 60\n")
    m = LocalResourceManager(lambda r: None, ocf_root=env["ocf_root"], lsb_dir=env["lsb_dir"], use_systemd=False,
                             stonith_dir=str(sdir))
    try:
        assert await m.list_agents("stonith") == ["fence_hang"]
        rsc = ResourceSpec("fencer", "stonith", None, "fence_hang", {"ip": "192.0.2.1", "pcmk_delay_max": "5"})
        _ok(await m.execute(rsc, OpRequest("start", timeout_ms=1000)), R.OCF_ERR_GENERIC, "timeout")
        assert (tmp_path / "stdin.txt").read_text() == "action=monitor\nip=192.0.2.1\n"
        _ok(await m.execute(rsc, OpRequest("monitor")), R.OCF_NOT_RUNNING)    # never started here
        _ok(await m.execute(rsc, OpRequest("stop")))
    finally:
        await m.close()


async def test_stonith_device_failing_under_a_recurring_monitor_is_reported_once(env, tmp_path):
    """cts-exec stonith_component_fail: the fencing side goes away while a recurring monitor of the
    device runs (there: pacemaker-fenced killed; here the LRM runs the agent itself, so the device
    stops answering): the failure is reported once, and a cancel reports the last rc."""
    sdir = tmp_path / "sbin"
    sdir.mkdir()
    device = tmp_path / "device"
    device.write_text("up")
    _write(sdir / "fence_flaky", f"#!/bin/sh\ncat > /dev/null\n[ -e {device} ] && exit 0\n"
                                 "echo 'device unreachable' >&2\nexit 1\n")
    rec = Recorder()
    m = LocalResourceManager(rec, ocf_root=env["ocf_root"], lsb_dir=env["lsb_dir"], use_systemd=False,
                             stonith_dir=str(sdir))
    try:
        rsc = ResourceSpec("stonith_test_rsc", "stonith", None, "fence_flaky", {})
        _ok(await m.execute(rsc, OpRequest("start")))
        _ok(await m.execute(rsc, OpRequest("monitor", interval_ms=300)))
        await asyncio.sleep(0.7)
        assert rec.results == []
        device.unlink()
        got = await rec.wait_for(lambda r: r.op == "monitor" and r.status == "done")
        assert got.describe() == "rsc_id:stonith_test_rsc action:monitor rc:error op_status:complete"
        await asyncio.sleep(1.0)                  # more failing runs: nothing new
        assert [r.describe() for r in rec.results] == [got.describe()]
        assert m.cancel(rsc.id, "monitor", 300)
        assert rec.results[-1].describe() == "rsc_id:stonith_test_rsc action:monitor rc:error op_status:Cancelled"
        _ok(await m.execute(rsc, OpRequest("stop")))
    finally:
        await m.close()


async def test_rsc_tmp_dir_is_created_and_used_by_ocf_agents(env, tmp_path):
    """cts-exec rsc_tmp_dir: the LRM creates the agents' temporary directory (HA_RSCTMP) like
    pacemaker-execd, and heartbeat:Dummy keeps its default state file there."""
    rsctmp = tmp_path / "run" / "resource-agents"
    m = LocalResourceManager(lambda r: None, ocf_root=env["ocf_root"], lsb_dir=env["lsb_dir"], use_systemd=False,
                             rsc_tmp_dir=str(rsctmp))
    try:
        assert rsctmp.is_dir() and (rsctmp.stat().st_mode & 0o777) == 0o755
        rsc = ResourceSpec("test_rsc", "ocf", "heartbeat", "Dummy", {})     # no state parameter
        _ok(await m.execute(rsc, OpRequest("start", timeout_ms=4000)))
        assert (rsctmp / "Dummy-test_rsc.state").exists()
        _ok(await m.execute(rsc, OpRequest("stop", timeout_ms=4000)))
        assert not (rsctmp / "Dummy-test_rsc.state").exists()
    finally:
        await m.close()


async def test_providers_of_an_agent_and_agent_lists_of_every_class(lrm, env):
    """cts-exec list_ocf_providers (`-T ping`) and verify_agent_lists: each agent only in its own
    class's list, every class's agents in the list without a class."""
    assert "pacemaker" in await lrm.list_providers()
    assert await lrm.list_providers("ping") == ["pacemaker"]
    assert {"heartbeat", "pacemaker"} <= set(await lrm.list_providers("Dummy"))
    assert await lrm.list_providers("Probe") == ["hatest"]
    assert await lrm.list_providers("no_such_agent") == []
    every = await lrm.list_agents()
    ocf, lsb, service = [await lrm.list_agents(c) for c in ("ocf", "lsb", "service")]
    stonith = await lrm.list_agents("stonith")
    assert {"Stateful", "Dummy", "lsbtest"} <= set(every)
    assert "Stateful" in ocf and "Stateful" not in lsb and "Stateful" not in service
    assert "lsbtest" in lsb and "lsbtest" in service and "lsbtest" not in ocf
    assert "Stateful" not in stonith and "lsbtest" not in stonith
    if os.path.exists("/usr/sbin/fence_dummy"):
        assert "fence_dummy" in stonith and "fence_dummy" in every
        assert all("fence_dummy" not in lst for lst in (ocf, lsb, service))


# ---- meta-data and agent lists for every class -----------------------------------------------
async def test_meta_data_and_lists(lrm, env):
    md = await lrm.meta_data("ocf", "pacemaker", "Dummy")
    assert 'resource-agent name="Dummy"' in md
    md = await lrm.meta_data("ocf", "heartbeat", "IPaddr2")
    assert 'name="IPaddr2"' in md and "<parameter name=\"ip\"" in md
    assert "resource-agent name='lsbtest'" in await lrm.meta_data("lsb", None, "lsbtest")
    assert "resource-agent name='lsbtest'" in await lrm.meta_data("service", None, "lsbtest")
    if os.path.exists("/usr/sbin/fence_dummy"):
        assert 'resource-agent name="fence_dummy"' in await lrm.meta_data("stonith", None, "fence_dummy")
    for bad in (("ocf", "pacemaker", "fake_agent"), ("ocf", None, "Dummy"), ("lsb", None, "nosuch"),
                ("stonith", None, "fence_nosuch"), ("bogus", None, "x"), ("systemd", None, "x")):
        with pytest.raises(BadRequest):
            await lrm.meta_data(*bad)
    assert {"heartbeat", "pacemaker", "hatest"} <= set(await lrm.list_providers())
    hb = await lrm.list_agents("ocf", "heartbeat")
    assert {"Dummy", "IPaddr2", "Filesystem"} <= set(hb)
    assert await lrm.list_agents("ocf", "hatest") == ["Probe"]
    assert "Probe" in await lrm.list_agents("ocf") and "Dummy" in await lrm.list_agents("ocf")
    assert await lrm.list_agents("ocf", "nosuch") == []
    assert await lrm.list_agents("lsb") == ["broken", "lsbtest"]
    assert await lrm.list_agents("service") == ["broken", "lsbtest"]
    fences = await lrm.list_agents("stonith")
    assert all(n.startswith("fence_") for n in fences)
    if os.path.exists("/usr/sbin/fence_dummy"):
        assert "fence_dummy" in fences
    assert await lrm.list_agents("systemd") == []       # no systemd here (use_systemd=False)
    assert lrm.classes() == ["ocf", "lsb", "service", "stonith"]
    with pytest.raises(BadRequest):
        await lrm.list_agents("upstart")


async def test_scope_unavailable_falls_back_to_a_process_group(env):
    from hadaemon.io.lrm import systemd_available
    import shutil
    if systemd_available() or not shutil.which("systemd-run"):
        pytest.skip("needs systemd-run on a machine where systemd is not running")
    m = LocalResourceManager(lambda r: None, ocf_root=env["ocf_root"], lsb_dir=env["lsb_dir"], use_systemd=True)
    try:
        rsc = dummy(env)
        _ok(await m.execute(rsc, OpRequest("start")))
        assert os.path.exists(rsc.params["state"])
        _ok(await m.execute(rsc, OpRequest("monitor")))
        _ok(await m.execute(rsc, OpRequest("stop")))
    finally:
        await m.close()


# ---- cts-exec generic tests, for every class this node runs without systemd --------------------
def _class_rsc(env, cls, rid):
    if cls == "ocf":
        return dummy(env, rid)
    if cls in ("lsb", "service"):
        return ResourceSpec(rid, cls, None, "lsbtest", {})
    return ResourceSpec(rid, "stonith", None, "fence_dummy", {"type": "file",
                        "status_file": str(env["tmp"] / f"{rid}.power")})


GENERIC_CLASSES = ["ocf", "lsb", "service"] + (["stonith"] if os.path.exists("/usr/sbin/fence_dummy") else [])


@pytest.mark.parametrize("cls", GENERIC_CLASSES)
async def test_generic_monitor_cancel_duplicate_and_stop_implies_cancel(lrm, env, cls):
    rsc = _class_rsc(env, cls, f"{cls}_test_rsc")
    if cls == "stonith":
        (env["tmp"] / f"{rsc.id}.power").write_text("on")
    _ok(await lrm.execute(rsc, OpRequest("start")))
    # monitor, cancel; it is rescheduled until then and silent afterwards
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300)))
    await asyncio.sleep(0.7)
    assert lrm.rec.results == []
    assert lrm.cancel(rsc.id, "monitor", 300) is True
    assert [r.describe() for r in lrm.rec.results] == [
        f"rsc_id:{rsc.id} action:monitor rc:ok op_status:Cancelled"]
    # duplicates merge into one op: one cancel removes them all
    for _ in range(4):
        _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300)))
    assert lrm.recurring() == [(rsc.id, "monitor", 300)]
    assert lrm.cancel(rsc.id, "monitor", 300) is True and lrm.cancel(rsc.id, "monitor", 300) is False
    # stop implies cancel
    _ok(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300)))
    _ok(await lrm.execute(rsc, OpRequest("stop")))
    assert lrm.recurring() == []
    n = len(lrm.rec.results)
    assert lrm.rec.results[-1].status == "cancelled"
    await asyncio.sleep(0.8)
    assert len(lrm.rec.results) == n


async def test_multi_class_start_stop_all(lrm, env):
    """cts-exec multi_rsc_start_stop_all: one resource of every class, all at once."""
    rscs = [_class_rsc(env, cls, f"multi_{cls}") for cls in ("ocf", "lsb") + (
        ("stonith",) if "stonith" in GENERIC_CLASSES else ())]
    for r in rscs:
        if r.cls == "stonith":
            (env["tmp"] / f"{r.id}.power").write_text("on")
    for name in ("start", "monitor"):
        got = await asyncio.gather(*(lrm.execute(r, OpRequest(name, interval_ms=300 if name == "monitor" else 0))
                                     for r in rscs))
        assert [(g.rc, g.status) for g in got] == [(0, "done")] * len(rscs), [g.describe() for g in got]
    await asyncio.sleep(0.7)
    assert all(lrm.cancel(r.id, "monitor", 300) for r in rscs)
    got = await asyncio.gather(*(lrm.execute(r, OpRequest("stop")) for r in rscs))
    assert [(g.rc, g.status) for g in got] == [(0, "done")] * len(rscs)
    assert sorted(r.status for r in lrm.rec.results) == ["cancelled"] * len(rscs)


# ---- output capture --------------------------------------------------------------------------
async def test_output_is_captured_and_bounded(lrm, env):
    script = Path(env["ocf_root"]) / "resource.d" / "hatest" / "Chatty"
    _write(script, "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' x\necho\n"
                   "echo 'ocf-exit-reason:disk on fire' >&2\nexit 1\n")
    res = await lrm.execute(ResourceSpec("c", "ocf", "hatest", "Chatty", {}), OpRequest("start"))
    _ok(res, R.OCF_ERR_GENERIC)
    assert res.exit_reason == "disk on fire"
    assert len(res.output) < 600 * 1024 and "[...]" in res.output


# ---- under load --------------------------------------------------------------------------------
@pytest.mark.slow
async def test_hundreds_of_dummies(lrm, env):
    n = 200
    rscs = [dummy(env, f"rsc_{i}") for i in range(n)]
    starts = await asyncio.gather(*(lrm.execute(r, OpRequest("start", timeout_ms=120000)) for r in rscs))
    assert all((s.rc, s.status) == (0, "done") for s in starts), [s.describe() for s in starts if s.rc]
    mons = await asyncio.gather(*(lrm.execute(r, OpRequest("monitor", interval_ms=5000, timeout_ms=120000))
                                  for r in rscs))
    assert all((m.rc, m.status) == (0, "done") for m in mons)
    assert len(lrm.recurring()) == n
    await asyncio.sleep(3)
    assert [r for r in lrm.rec.results if r.status != "cancelled"] == []    # steady state: nothing reported
    # fail ten of them: each reported exactly once
    for r in rscs[:10]:
        os.unlink(r.params["state"])
    for r in rscs[:10]:
        await lrm.rec.wait_for(lambda x, rid=r.id: x.rsc_id == rid and x.rc == R.OCF_NOT_RUNNING, timeout=60)
    await asyncio.sleep(3)
    failing = [x for x in lrm.rec.results if x.rc == R.OCF_NOT_RUNNING]
    assert sorted(x.rsc_id for x in failing) == sorted(r.id for r in rscs[:10])
    stops = await asyncio.gather(*(lrm.execute(r, OpRequest("stop", timeout_ms=120000)) for r in rscs))
    assert all((s.rc, s.status) == (0, "done") for s in stops)
    assert lrm.recurring() == []
    assert len(lrm.rec.of(op="monitor", status="cancelled")) == n


# ---- run_sequence: a chain's ops back to back from one thread ------------------------------------
async def _collect(lrm, steps, go_on=lambda i, r: r.status == "done" and r.rc == 0, may_start=lambda i: True):
    return [(i, r) async for i, r in lrm.run_sequence(steps, go_on, may_start)]


async def test_sequence_runs_in_order_and_gives_the_same_results(lrm, env):
    a, b = probe_rsc(env, "seq_a"), probe_rsc(env, "seq_b")
    lsb = ResourceSpec("svc", "lsb", None, "lsbtest")
    steps = [(a, OpRequest("start", timeout_ms=20000, user_data="k1")), (b, OpRequest("start", timeout_ms=20000)),
             (lsb, OpRequest("start", timeout_ms=20000)), (lsb, OpRequest("stop", timeout_ms=20000))]
    assert all(lrm.runs_blocking(r, o) for r, o in steps)
    got = await _collect(lrm, steps)
    assert [i for i, _ in got] == [0, 1, 2, 3]
    for (_i, res), (rsc, op) in zip(got, steps):
        _ok(res)
        assert (res.rsc_id, res.op) == (rsc.id, op.name)
    assert got[0][1].user_data == "k1"
    ids = [r.call_id for _, r in got]
    assert ids == sorted(ids) and len(set(ids)) == 4
    # the same as execute(): the resources are running, the LSB service stopped
    _ok(await lrm.execute(a, OpRequest("monitor")))
    _ok(await lrm.execute(lsb, OpRequest("status")), R.OCF_NOT_RUNNING)
    assert (env["tmp"] / "seq_a.log").read_text().split()[0:2] == ["B", "start"]


async def test_sequence_stops_at_the_first_unexpected_result(lrm, env):
    ok, bad, never = probe_rsc(env, "s1"), ResourceSpec("b", "lsb", None, "broken"), probe_rsc(env, "s3")
    steps = [(ok, OpRequest("start")), (bad, OpRequest("start")), (never, OpRequest("start"))]
    got = await _collect(lrm, steps)
    assert [i for i, _ in got] == [0, 1]
    assert got[1][1].rc == R.OCF_ERR_GENERIC
    assert not (env["tmp"] / "s3.log").exists()          # the third never ran
    # every turn was given back: the resources take ops again at once
    _ok(await asyncio.wait_for(lrm.execute(never, OpRequest("start")), 10))


async def test_sequence_may_start_stops_it(lrm, env):
    a, b = probe_rsc(env, "m1"), probe_rsc(env, "m2")
    got = await _collect(lrm, [(a, OpRequest("start")), (b, OpRequest("start"))], may_start=lambda i: i == 0)
    assert [i for i, _ in got] == [0]
    assert not (env["tmp"] / "m2.log").exists()


async def test_sequence_yields_nothing_when_a_resource_is_busy(lrm, env):
    a, b = probe_rsc(env, "busy_a", op_sleep=1), probe_rsc(env, "busy_b")
    running = asyncio.ensure_future(lrm.execute(a, OpRequest("start", timeout_ms=20000)))
    await asyncio.sleep(0.3)
    assert await _collect(lrm, [(b, OpRequest("start")), (a, OpRequest("stop"))]) == []
    assert not (env["tmp"] / "busy_b.log").exists()
    _ok(await running)
    # nothing left taken: both resources run ops
    _ok(await asyncio.wait_for(lrm.execute(b, OpRequest("start")), 10))
    _ok(await asyncio.wait_for(lrm.execute(a, OpRequest("stop")), 10))


async def test_a_monitor_waits_for_the_sequence_to_end_with_its_resource(lrm, env):
    a, b = probe_rsc(env, "q_a"), probe_rsc(env, "q_b", op_sleep=0.5)
    seq = asyncio.ensure_future(_collect(lrm, [(a, OpRequest("start")), (b, OpRequest("start"))]))
    await asyncio.sleep(0.2)     # b's start runs now
    mon = await asyncio.wait_for(lrm.execute(b, OpRequest("monitor", timeout_ms=20000)), 10)
    _ok(mon)                     # after b's start (it sees the state file), not beside it
    assert len(await seq) == 2
    lines = (env["tmp"] / "q_b.log").read_text().split("\n")
    assert [ln.split()[:2] for ln in lines if ln][:4] == [["B", "start"], ["E", "start"], ["B", "monitor"],
                                                            ["E", "monitor"]]


async def test_closing_the_sequence_kills_the_running_step(lrm, env):
    slow = probe_rsc(env, "slow", op_sleep=30)
    gen = lrm.run_sequence([(slow, OpRequest("start", timeout_ms=60000))], lambda i, r: True)
    task = asyncio.ensure_future(gen.__anext__())
    deadline = time.monotonic() + 10
    while not (env["tmp"] / "slow.log").exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gen.aclose()
    t0 = time.monotonic()
    while "E start" not in (env["tmp"] / "slow.log").read_text() and not _gone(env, "slow"):
        assert time.monotonic() - t0 < 10
        await asyncio.sleep(0.1)


def _gone(env, rid) -> bool:
    """No process of this Probe resource is left (its log path is in their environment)."""
    return not _procs_with_env(str(env["tmp"] / f"{rid}.log"))


async def test_monitor_cancelled_before_its_first_step_still_answers(lrm, env):
    """A recurring op whose loop task is cancelled before it ever ran (a stop handled in the same turn
    of the loop) answers its execute() with "cancelled" instead of never."""
    rsc = probe_rsc(env, "early")
    _ok(await lrm.execute(rsc, OpRequest("start")))
    mon = asyncio.ensure_future(lrm.execute(rsc, OpRequest("monitor", interval_ms=1000, timeout_ms=20000)))
    await asyncio.sleep(0)       # execute() has created the monitor's task; that task has not run yet
    await lrm.stop_all_recurring(rsc.id)
    res = await asyncio.wait_for(mon, 5)
    assert res.status == "cancelled"


async def test_a_sequence_cancelled_while_its_step_waits_to_start_runs_nothing(lrm, env, monkeypatch):
    """The consumer cancelled while may_start still waits (a prepare, an armed frame): the step is not
    spawned at all (it is answered "cancelled"), the resource's turn is given back."""
    from hadaemon.io.lrm import process_thread

    spawned = []
    real_spawn = process_thread._spawn

    def counting_spawn(argv, **kw):   # the real spawn, counted
        spawned.append(list(argv))
        return real_spawn(argv, **kw)

    monkeypatch.setattr(process_thread, "_spawn", counting_spawn)
    rsc = probe_rsc(env, "late")
    waiting = threading.Event()

    def may_start(i):
        waiting.set()
        time.sleep(0.5)
        return True

    task = asyncio.ensure_future(_collect(lrm, [(rsc, OpRequest("start"))], may_start=may_start))
    while not waiting.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.0)
    assert spawned == [] and not (env["tmp"] / "late.log").exists()
    _ok(await asyncio.wait_for(lrm.execute(rsc, OpRequest("start")), 10))
    assert len(spawned) == 1
