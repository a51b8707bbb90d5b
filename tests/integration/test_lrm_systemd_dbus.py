# ruff: noqa: F821  (D-Bus signatures in annotations)
"""The LRM's systemd class speaking org.freedesktop.systemd1 on a private dbus-daemon, against a
fake systemd manager (a real ServiceInterface with units whose jobs and states the test controls).
The real systemd is exercised by tests/system/test_lrm_nspawn.py."""
# no `from __future__ import annotations`: dbus-next reads the D-Bus signatures from the annotations
import asyncio
import os
from pathlib import Path

import pytest

from hadaemon.bus.dbusnext import DBusError, MessageBus, PropertyAccess, ServiceInterface, dbus_property, method, signal
from hadaemon.bus.systemd1 import Systemd1
from hadaemon.core.lrm import results as R
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
from hadaemon.testing.dbus import PrivateBus

pytestmark = [pytest.mark.root]   # PrivateBus may create the haclient group

POLICY = """
  <policy context="default">
    <allow own="org.freedesktop.systemd1"/>
    <allow send_destination="org.freedesktop.systemd1"/>
  </policy>
"""


class FakeUnit(ServiceInterface):
    def __init__(self, name, load_state="loaded", description=""):
        super().__init__("org.freedesktop.systemd1.Unit")
        self.unit_name = name
        self.load = load_state
        self.active = "inactive"
        self.sub = "dead"
        self.desc = description or f"Fake {name}"

    @dbus_property(access=PropertyAccess.READ)
    def LoadState(self) -> "s":
        return self.load

    @dbus_property(access=PropertyAccess.READ)
    def ActiveState(self) -> "s":
        return self.active

    @dbus_property(access=PropertyAccess.READ)
    def SubState(self) -> "s":
        return self.sub

    @dbus_property(access=PropertyAccess.READ)
    def Description(self) -> "s":
        return self.desc


def _path(name):
    return "/org/freedesktop/systemd1/unit/" + "".join(c if c.isalnum() else f"_{ord(c):02x}" for c in name)


class FakeManager(ServiceInterface):
    """Units: name -> FakeUnit. behaviour[name] = {"start": "done"|"failed", "settle": "active"|"failed",
    "delay": seconds in activating/deactivating}."""

    def __init__(self, bus):
        super().__init__("org.freedesktop.systemd1.Manager")
        self.bus = bus
        self.units = {}
        self.behaviour = {}
        self.calls = []
        self.jobs = 0
        self.reloads = 0
        self.tasks = set()

    def add(self, name, **kw):
        u = FakeUnit(name, **kw)
        self.units[name] = u
        self.bus.export(_path(name), u)
        return u

    def _unit(self, name):
        if name not in self.units:
            self.add(name, load_state="not-found")
        return self.units[name]

    @method()
    def LoadUnit(self, name: "s") -> "o":
        self.calls.append(("LoadUnit", name))
        self._unit(name)
        return _path(name)

    @method()
    def Subscribe(self):
        self.calls.append(("Subscribe",))

    @method()
    def Reload(self):
        self.calls.append(("Reload",))
        self.reloads += 1

    def _job(self, name, start):
        u = self.units.get(name)
        if u is None or u.load == "not-found":
            raise DBusError("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not found.")
        self.jobs += 1
        jid = self.jobs
        job = f"/org/freedesktop/systemd1/job/{jid}"
        b = self.behaviour.get(name, {})
        delay = b.get("delay", 0.1)
        u.active = "activating" if start else "deactivating"
        result = b.get("start", "done") if start else "done"

        async def finish():
            await asyncio.sleep(0.05)
            self.JobRemoved(jid, job, name, result)
            await asyncio.sleep(delay)
            if start:
                u.active = b.get("settle", "active") if result == "done" else "failed"
            else:
                u.active = "inactive"
        task = asyncio.ensure_future(finish())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    @method()
    def StartUnit(self, name: "s", mode: "s") -> "o":
        self.calls.append(("StartUnit", name, mode))
        return self._job(name, True)

    @method()
    def StopUnit(self, name: "s", mode: "s") -> "o":
        self.calls.append(("StopUnit", name, mode))
        return self._job(name, False)

    @method()
    def KillUnit(self, name: "s", who: "s", sig: "i"):
        self.calls.append(("KillUnit", name, who, sig))

    @method()
    def ListUnitFiles(self) -> "a(ss)":
        return [[f"/lib/systemd/system/{n}", "enabled"] for n, u in self.units.items() if u.load == "loaded"]

    @method()
    def ListUnits(self) -> "a(ssssssouso)":
        return [[n, u.desc, u.load, u.active, u.sub, "", _path(n), 0, "", "/"] for n, u in self.units.items()
                if u.load == "loaded"]

    @signal()
    def JobRemoved(self, jid, job, unit, result) -> "uoss":
        return [jid, job, unit, result]


@pytest.fixture
async def fake(tmp_path):
    bus = PrivateBus(policy_dirs=[], extra_policy=POLICY, workdir=tmp_path / "bus")
    bus.start()
    try:
        server = await MessageBus(bus_address=bus.address).connect()
        mgr = FakeManager(server)
        server.export("/org/freedesktop/systemd1", mgr)
        await server.request_name("org.freedesktop.systemd1")
        client_bus = await MessageBus(bus_address=bus.address).connect()
        client = await Systemd1.connect(client_bus)
        results = []
        lrm = LocalResourceManager(results.append, use_systemd=False, systemd_client=client,
                                   lsb_dir=str(tmp_path / "initd"), systemd_dropin_dir=str(tmp_path / "run"))
        lrm.results = results
        yield mgr, lrm, tmp_path
        await lrm.close()
        for t in list(mgr.tasks):
            t.cancel()
        for b in (client_bus, server):
            b.disconnect()
            try:
                await asyncio.wait_for(b.wait_for_disconnect(), 5)
            except Exception:  # noqa: BLE001 - disconnected with an error is disconnected too
                pass
    finally:
        bus.close()


def _rc(res):
    return (res.rc, res.status)


async def test_start_monitor_stop_with_dropin(fake):
    mgr, lrm, tmp = fake
    mgr.add("webd.service", description="A web server")
    rsc = ResourceSpec("web", "systemd", None, "webd", {})
    assert _rc(await lrm.execute(rsc, OpRequest("monitor"))) == (R.OCF_NOT_RUNNING, "done")   # probe
    res = await lrm.execute(rsc, OpRequest("start", timeout_ms=20000))
    assert _rc(res) == (0, "done"), res.exit_reason
    # the runtime drop-in: the cluster, not systemd, restarts the unit; written before the start + reload
    dropin = tmp / "run" / "webd.service.d" / "50-hadaemon.conf"
    assert "Restart=no" in dropin.read_text()
    names = [c[0] for c in mgr.calls]
    assert names.index("Reload") < names.index("StartUnit")
    assert ("StartUnit", "webd.service", "replace") in mgr.calls
    assert mgr.units["webd.service"].active == "active"          # start waited for activating to end
    assert _rc(await lrm.execute(rsc, OpRequest("monitor"))) == (0, "done")
    # a second start: the drop-in is unchanged, no second reload
    await lrm.execute(rsc, OpRequest("start"))
    assert mgr.reloads == 1
    assert _rc(await lrm.execute(rsc, OpRequest("stop"))) == (0, "done")
    assert mgr.units["webd.service"].active == "inactive"
    assert _rc(await lrm.execute(rsc, OpRequest("monitor"))) == (R.OCF_NOT_RUNNING, "done")


async def test_failing_unit_and_recurring_monitor(fake):
    mgr, lrm, _ = fake
    u = mgr.add("db.service")
    rsc = ResourceSpec("db", "systemd", None, "db.service", {})
    assert _rc(await lrm.execute(rsc, OpRequest("start"))) == (0, "done")
    assert _rc(await lrm.execute(rsc, OpRequest("monitor", interval_ms=200))) == (0, "done")
    await asyncio.sleep(0.6)
    assert lrm.results == []
    u.active = "failed"                     # the service died
    for _ in range(100):
        if lrm.results:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)
    assert [(r.op, r.rc, r.status) for r in lrm.results] == [("monitor", R.OCF_NOT_RUNNING, "done")]
    assert _rc(await lrm.execute(rsc, OpRequest("stop"))) == (0, "done")      # stop implies cancel
    assert lrm.results[-1].status == "cancelled" and lrm.recurring() == []


async def test_start_job_failure_and_settling_failure(fake):
    mgr, lrm, _ = fake
    mgr.add("bad.service")
    mgr.behaviour["bad.service"] = {"start": "failed"}
    res = await lrm.execute(ResourceSpec("b", "systemd", None, "bad", {}), OpRequest("start"))
    assert _rc(res) == (R.OCF_ERR_GENERIC, "done") and "failed" in res.exit_reason
    mgr.add("flaky.service")
    mgr.behaviour["flaky.service"] = {"settle": "failed", "delay": 0.3}
    res = await lrm.execute(ResourceSpec("f", "systemd", None, "flaky", {}), OpRequest("start"))
    assert _rc(res) == (R.OCF_ERR_GENERIC, "done") and "failed" in res.exit_reason


async def test_pending_then_timeout(fake):
    mgr, lrm, _ = fake
    mgr.add("slow.service")
    mgr.behaviour["slow.service"] = {"delay": 30}
    res = await lrm.execute(ResourceSpec("s", "systemd", None, "slow", {}), OpRequest("start", timeout_ms=1500))
    assert _rc(res) == (R.OCF_ERR_GENERIC, "timeout")
    # while activating, a monitor has no answer yet: it waits, and times out in turn
    res = await lrm.execute(ResourceSpec("s", "systemd", None, "slow", {}), OpRequest("monitor", timeout_ms=800))
    assert _rc(res) == (R.OCF_ERR_GENERIC, "timeout")


async def test_uninstalled_unit(fake):
    mgr, lrm, _ = fake
    rsc = ResourceSpec("x", "systemd", None, "this_is_fake1234", {})
    assert _rc(await lrm.execute(rsc, OpRequest("start"))) == (R.OCF_ERR_INSTALLED, "not_installed")
    assert _rc(await lrm.execute(rsc, OpRequest("monitor"))) == (R.OCF_ERR_INSTALLED, "not_installed")
    assert _rc(await lrm.execute(rsc, OpRequest("stop"))) == (0, "done")      # not there = stopped
    assert not any(c[0] == "StartUnit" for c in mgr.calls)
    assert _rc(await lrm.execute(rsc, OpRequest("reload"))) == (R.OCF_ERR_INSTALLED, "not_installed")
    mgr.add("y.service")
    res = await lrm.execute(ResourceSpec("y", "systemd", None, "y", {}), OpRequest("promote"))
    assert _rc(res) == (R.OCF_ERR_UNIMPLEMENTED, "not_supported")


async def test_lists_metadata_and_service_class(fake):
    mgr, lrm, tmp = fake
    mgr.add("webd.service", description="A web server")
    mgr.add("db.service")
    mgr.add("getty@.service")
    assert await lrm.list_agents("systemd") == ["db", "webd"]
    assert "systemd" in lrm.classes()
    md = await lrm.meta_data("systemd", None, "webd")
    assert "resource-agent name='webd'" in md and "A web server" in md
    # service: an init script wins, else the systemd unit
    (tmp / "initd").mkdir()
    script = tmp / "initd" / "webd"
    script.write_text("#!/bin/sh\n[ \"$1\" = status ] && exit 3\nexit 0\n")
    os.chmod(script, 0o755)
    assert await lrm.list_agents("service") == ["db", "webd"]
    res = await lrm.execute(ResourceSpec("w", "service", None, "webd", {}), OpRequest("monitor"))
    assert _rc(res) == (R.OCF_NOT_RUNNING, "done") and not any(c[0] == "StartUnit" for c in mgr.calls)
    res = await lrm.execute(ResourceSpec("d", "service", None, "db", {}), OpRequest("start"))
    assert _rc(res) == (0, "done") and ("StartUnit", "db.service", "replace") in mgr.calls


async def test_systemd_stress(fake):
    """cts-exec systemd_stress: many units started, monitored and stopped over one connection."""
    mgr, lrm, _ = fake
    n = 25
    for i in range(n):
        mgr.add(f"d{i}.service")
    rscs = [ResourceSpec(f"rsc_{i}", "systemd", None, f"d{i}", {}) for i in range(n)]
    starts = await asyncio.gather(*(lrm.execute(r, OpRequest("start")) for r in rscs))
    assert all(_rc(s) == (0, "done") for s in starts)
    mons = await asyncio.gather(*(lrm.execute(r, OpRequest("monitor", interval_ms=1000)) for r in rscs))
    assert all(_rc(m) == (0, "done") for m in mons)
    stops = await asyncio.gather(*(lrm.execute(r, OpRequest("stop")) for r in rscs))
    assert all(_rc(s) == (0, "done") for s in stops)
    assert lrm.recurring() == [] and all(u.active == "inactive" for u in mgr.units.values())


async def test_no_systemd_means_not_installed(tmp_path):
    lrm = LocalResourceManager(lambda r: None, use_systemd=False)
    res = await lrm.execute(ResourceSpec("x", "systemd", None, "webd", {}), OpRequest("start"))
    assert _rc(res) == (R.OCF_ERR_INSTALLED, "not_installed")
    assert "systemd" not in lrm.classes() and await lrm.list_agents("systemd") == []
    await lrm.close()


def test_dropin_written_atomically(tmp_path):
    from hadaemon.io.lrm.systemd import write_dropin
    assert write_dropin("a.service", str(tmp_path)) is True
    assert write_dropin("a.service", str(tmp_path)) is False
    p = Path(tmp_path / "a.service.d" / "50-hadaemon.conf")
    assert p.read_text().endswith("[Service]\nRestart=no\n")
    assert [x.name for x in p.parent.iterdir()] == ["50-hadaemon.conf"]


async def test_generic_monitor_cancel_duplicate_and_stop_implies_cancel(fake):
    mgr, lrm, _ = fake
    mgr.add("pacemaker-cts-dummyd@3.service")
    rsc = ResourceSpec("systemd_test_rsc", "systemd", None, "pacemaker-cts-dummyd@3", {})
    assert _rc(await lrm.execute(rsc, OpRequest("start"))) == (0, "done")
    assert _rc(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300))) == (0, "done")
    await asyncio.sleep(0.7)
    assert lrm.results == []
    assert lrm.cancel(rsc.id, "monitor", 300) is True
    assert [r.describe() for r in lrm.results] == ["rsc_id:systemd_test_rsc action:monitor rc:ok op_status:Cancelled"]
    for _ in range(3):
        assert _rc(await lrm.execute(rsc, OpRequest("monitor", interval_ms=300))) == (0, "done")
    assert lrm.recurring() == [(rsc.id, "monitor", 300)]
    assert _rc(await lrm.execute(rsc, OpRequest("stop"))) == (0, "done")
    assert lrm.recurring() == [] and lrm.results[-1].status == "cancelled"
    n = len(lrm.results)
    await asyncio.sleep(0.7)
    assert len(lrm.results) == n
