"""The LRM's pure core: result mapping per class, agent environments, recurring-op bookkeeping."""
from __future__ import annotations

import pytest

from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.metadata import lsb_header, lsb_metadata, systemd_metadata
from hadaemon.core.lrm.ops import (
    OpRequest, OpResult, OpTable, ResourceSpec, agent_path, bounded, check_spec, exit_reason, host_map,
    interpret, lsb_action, ocf_environment, stonith_input, systemd_unit_name,
)


def test_one_vocabulary_is_shared():
    from hadaemon.agents import ocf
    from hadaemon.core.cib import history
    assert ocf.OCF_SUCCESS is R.OCF_SUCCESS and history.OCF_OK == R.OCF_SUCCESS
    assert history.OCF_NOT_RUNNING == ocf.OCF_NOT_RUNNING == 7
    assert history.EXEC_NOT_INSTALLED == R.exec_status_code("not_installed") == 7
    assert history.effective_rc is R.effective_rc


def test_no_module_defines_its_own_ocf_codes():
    """Only core/lrm/results.py gives OCF_* / LSB_* / PCMK_OCF_* names a number; everyone else imports them."""
    import ast
    from pathlib import Path

    import hadaemon
    pkg = Path(hadaemon.__file__).resolve().parent
    own = pkg / "core" / "lrm" / "results.py"
    found = []
    for path in sorted(pkg.rglob("*.py")):
        if path == own:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, int):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.startswith(("OCF_", "LSB_", "PCMK_OCF_")) \
                            and not target.id.startswith("OCF_RA_"):
                        found.append(f"{path.relative_to(pkg)}:{node.lineno}: {target.id}")
    assert not found, found


@pytest.mark.parametrize("code,expected", [
    (0, 0), (1, 1), (7, 7), (8, 8), (9, 9), (10, 1), (99, 1), (189, 1), (190, 190), (191, 191), (192, 1), (-1, 1)])
def test_ocf_exit_codes(code, expected):
    assert interpret("ocf", "start", code) == (expected, "done")


@pytest.mark.parametrize("action,code,expected", [
    # status has its own codes: 1, 2, 3 all mean "not running"; 4 unknown; 150/151 Pacemaker's
    ("monitor", 0, R.OCF_SUCCESS), ("monitor", 1, R.OCF_NOT_RUNNING), ("monitor", 2, R.OCF_NOT_RUNNING),
    ("monitor", 3, R.OCF_NOT_RUNNING), ("monitor", 4, R.OCF_ERR_GENERIC), ("status", 150, R.OCF_ERR_INSTALLED),
    ("status", 151, R.OCF_ERR_PERM), ("status", 5, R.OCF_ERR_GENERIC),
    # other actions share OCF's codes up to 7
    ("start", 0, 0), ("start", 1, 1), ("start", 5, 5), ("stop", 7, 7), ("start", 8, 1), ("stop", 150, 1),
])
def test_lsb_mapping(action, code, expected):
    assert R.lsb_to_ocf(lsb_action(action), code) == expected
    assert interpret("lsb", action, code) == (expected, "done")


@pytest.mark.parametrize("state,expected", [
    ("active", (0, "done")), ("reloading", (0, "done")), ("activating", (R.OCF_UNKNOWN, "pending")),
    ("deactivating", (R.OCF_UNKNOWN, "pending")), ("inactive", (7, "done")), ("failed", (7, "done")),
    ("maintenance", (7, "done"))])
def test_systemd_states(state, expected):
    assert R.systemd_state_to_ocf(state) == expected


def test_stonith_codes():
    assert interpret("stonith", "monitor", 0) == (0, "done")
    assert interpret("stonith", "monitor", 2) == (1, "done")
    assert interpret("stonith", "status", 2) == (7, "done")
    assert interpret("stonith", "off", 1) == (1, "done")


def test_timeout_and_signal():
    assert interpret("ocf", "start", None, timed_out=True) == (R.OCF_ERR_GENERIC, "timeout")
    assert interpret("ocf", "start", None, signal=9) == (R.OCF_ERR_GENERIC, "error")
    assert interpret("lsb", "monitor", 0, timed_out=True) == (R.OCF_ERR_GENERIC, "timeout")


def test_exec_status_names():
    assert R.exec_status_code("done") == 0 and R.exec_status_code("cancelled") == 1
    assert R.exec_status_code("timeout") == 2 and R.exec_status_code("pending") == -1
    with pytest.raises(ValueError, match="unknown executor status"):
        R.exec_status_code("finished")
    res = OpResult("r", "monitor", 1000, 7, "cancelled")
    assert res.describe() == "rsc_id:r action:monitor rc:not running op_status:Cancelled"
    assert res.op_status == 1


def test_ocf_environment():
    rsc = ResourceSpec("web-ip", "ocf", "heartbeat", "IPaddr2", {"ip": "10.0.0.5", "cidr_netmask": "24"})
    op = OpRequest("monitor", interval_ms=10000, timeout_ms=20000, meta={"on_node": "admin1", "timeout": "30000"})
    base = {"PATH": "/bin", "OCF_RESKEY_leftover": "x", "HOME": "/root"}
    env = ocf_environment(rsc, op, "/opt/ocf", base)
    assert env["OCF_ROOT"] == "/opt/ocf"
    assert env["OCF_RA_VERSION_MAJOR"] == "1" and env["OCF_RA_VERSION_MINOR"] == "1"
    assert env["OCF_RESOURCE_INSTANCE"] == "web-ip"
    assert env["OCF_RESOURCE_TYPE"] == "IPaddr2" and env["OCF_RESOURCE_PROVIDER"] == "heartbeat"
    assert env["OCF_RESKEY_ip"] == "10.0.0.5" and env["OCF_RESKEY_cidr_netmask"] == "24"
    assert env["OCF_RESKEY_CRM_meta_interval"] == "10000"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "30000"      # the caller's meta wins
    assert env["OCF_RESKEY_CRM_meta_on_node"] == "admin1"
    assert env["OCF_RESKEY_CRM_meta_name"] == "monitor"
    assert env["OCF_EXIT_REASON_PREFIX"] == "ocf-exit-reason:"
    assert "OCF_RESKEY_leftover" not in env and env["PATH"] == "/bin" and env["HOME"] == "/root"
    assert base == {"PATH": "/bin", "OCF_RESKEY_leftover": "x", "HOME": "/root"}  # not modified


def test_ocf_check_level_is_passed_as_is():
    rsc = ResourceSpec("d", "ocf", "hadaemon", "ldirectord", {"configfile": "/x", "OCF_CHECK_LEVEL": "10"})
    env = ocf_environment(rsc, OpRequest("monitor", 10000))
    assert env["OCF_CHECK_LEVEL"] == "10" and "OCF_RESKEY_OCF_CHECK_LEVEL" not in env
    env = ocf_environment(ResourceSpec("d", "ocf", "x", "y"), OpRequest("monitor", meta={"OCF_CHECK_LEVEL": "20"}))
    assert env["OCF_CHECK_LEVEL"] == "20" and "OCF_RESKEY_CRM_meta_OCF_CHECK_LEVEL" not in env


def test_check_spec_and_paths():
    assert check_spec(ResourceSpec("a", "ocf", "heartbeat", "Dummy")) is None
    assert check_spec(ResourceSpec("a", "ocf", None, "Dummy"))[1] == "error_fatal"
    assert check_spec(ResourceSpec("a", "ocf", "", "Dummy"))[1] == "error_fatal"
    assert check_spec(ResourceSpec("a", "nagios", None, "x"))[1] == "error_fatal"
    assert check_spec(ResourceSpec("a", "ocf", "..", "Dummy"))[1] == "not_installed"
    assert check_spec(ResourceSpec("a", "lsb", None, "../../bin/sh"))[1] == "not_installed"
    assert check_spec(ResourceSpec("a", "lsb", None, "apache2")) is None
    assert agent_path(ResourceSpec("a", "ocf", "heartbeat", "Dummy"), "/x") == "/x/resource.d/heartbeat/Dummy"
    assert agent_path(ResourceSpec("a", "lsb", None, "apache2"), lsb_dir="/e") == "/e/apache2"
    assert agent_path(ResourceSpec("a", "stonith", None, "fence_x"), stonith_dir="/s") == "/s/fence_x"
    assert systemd_unit_name("nginx") == "nginx.service"
    assert systemd_unit_name("x@3") == "x@3.service" and systemd_unit_name("data.mount") == "data.mount"


def test_stonith_input():
    rsc = ResourceSpec("f", "stonith", None, "fence_x", {"ip": "10.0.0.1", "pcmk_host_map": "admin1:1;admin2:2",
                                                         "password": "s3cret"})
    text = stonith_input(rsc, "off", "admin2")
    lines = text.splitlines()
    assert lines[0] == "action=off"
    assert "ip=10.0.0.1" in lines and "password=s3cret" in lines
    assert "plug=2" in lines and "nodename=admin2" in lines
    assert not any(line.startswith("pcmk_") for line in lines)
    assert stonith_input(rsc, "monitor").splitlines()[0] == "action=monitor"
    assert host_map("a:1 b=2,c:3") == {"a": "1", "b": "2", "c": "3"}


def test_exit_reason_and_bounded():
    assert exit_reason("x\nocf-exit-reason:first\nmore\nocf-exit-reason: last one\n") == "last one"
    assert exit_reason("nothing") == ""
    assert bounded(b"abc", 10) == "abc"
    cut = bounded(b"0123456789" * 10, 10)
    assert cut.endswith("0123456789") and cut.startswith("[...]")


def _res(rc, status="done", rsc="r", op="monitor", interval=1000):
    return OpResult(rsc, op, interval, rc, status)


def test_recurring_reports_only_changes():
    t = OpTable()
    rsc = ResourceSpec("r", "ocf", "heartbeat", "Dummy")
    entry, dup = t.schedule(rsc, OpRequest("monitor", 1000))
    assert not dup and t.keys() == [("r", "monitor", 1000)]
    k = entry.key
    assert t.record(k, _res(0)) is True          # first result
    assert t.record(k, _res(0)) is False         # same again: not reported
    assert t.record(k, _res(7)) is True          # failure: reported once
    assert t.record(k, _res(7)) is False
    assert t.record(k, _res(7)) is False
    assert t.record(k, _res(1, "timeout")) is True
    assert t.record(k, _res(0)) is True          # recovery
    assert entry.runs == 7


def test_duplicate_monitor_replaces_parameters():
    t = OpTable()
    rsc = ResourceSpec("r", "ocf", "heartbeat", "Dummy", {"a": "1"})
    e1, _ = t.schedule(rsc, OpRequest("monitor", 1000, user_data="t1"))
    rsc2 = ResourceSpec("r", "ocf", "heartbeat", "Dummy", {"a": "2"})
    e2, dup = t.schedule(rsc2, OpRequest("monitor", 1000, user_data="t2"))
    assert dup and e2 is e1 and len(t.keys()) == 1
    assert e1.rsc.params == {"a": "2"} and e1.op.user_data == "t2"
    _, dup3 = t.schedule(rsc, OpRequest("monitor", 2000))
    assert not dup3 and len(t.keys()) == 2


def test_cancel_rules():
    t = OpTable()
    rsc = ResourceSpec("r", "ocf", "heartbeat", "Dummy")
    entry, _ = t.schedule(rsc, OpRequest("monitor", 1000, user_data="key"))
    t.record(entry.key, _res(7))
    assert t.cancel(("r", "monitor", 2000)) is None      # wrong interval
    assert t.cancel(("r", "stop", 1000)) is None         # wrong action
    assert t.cancel(("x", "monitor", 1000)) is None      # unknown resource
    got = t.cancel(("r", "monitor", 1000))
    assert got is entry and t.keys() == []
    res = OpTable.cancelled_result(got)
    assert (res.rc, res.status, res.user_data) == (7, "cancelled", "key")   # last rc, as Pacemaker reports
    assert t.cancel(("r", "monitor", 1000)) is None      # only once
    assert t.record(entry.key, _res(0)) is False         # a run finishing after the cancel is not reported
    # a recurring op that never ran is cancelled with rc ok
    e2, _ = t.schedule(rsc, OpRequest("monitor", 5000))
    assert OpTable.cancelled_result(t.cancel(e2.key)).rc == 0


def test_stop_implies_cancel_of_that_resource_only():
    t = OpTable()
    for rid in ("a", "b"):
        rsc = ResourceSpec(rid, "ocf", "heartbeat", "Dummy")
        t.schedule(rsc, OpRequest("monitor", 1000))
        t.schedule(rsc, OpRequest("monitor", 5000))
    assert t.implied_cancels("a", "stop") == [("a", "monitor", 1000), ("a", "monitor", 5000)]
    assert t.implied_cancels("a", "start") == [] and t.implied_cancels("a", "monitor") == []
    assert t.implied_cancels("c", "stop") == []


def test_waiting_one_off_ops():
    t = OpTable()
    k = ("r", "start", 0)
    t.wait(k, 1)
    t.wait(k, 2)
    t.done_waiting(k, 1)
    assert t.cancel_waiting(k) == [2]
    assert t.cancel_waiting(k) == []
    ids = {t.next_call_id() for _ in range(5)}
    assert len(ids) == 5


LSB_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          webd
# Required-Start:    $network $remote_fs
# Required-Stop:     $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: A <web> server
# Description:       The web server
#                    of the test & more.
### END INIT INFO
echo hi
"""


def test_lsb_metadata():
    f = lsb_header(LSB_SCRIPT)
    assert f["Provides"] == "webd" and f["Default-Start"] == "2 3 4 5"
    assert f["Description"] == "The web server\nof the test & more."
    md = lsb_metadata("webd", LSB_SCRIPT)
    assert "resource-agent name='webd'" in md
    assert "<shortdesc lang='en'>A &lt;web&gt; server</shortdesc>" in md
    assert "<Required-Start>$network $remote_fs</Required-Start>" in md
    import xml.etree.ElementTree as ET
    root = ET.fromstring(md)
    assert {a.get("name") for a in root.iter("action")} >= {"start", "stop", "status", "monitor", "meta-data"}
    assert "resource-agent name='plain'" in lsb_metadata("plain", "#!/bin/sh\necho\n")
    smd = ET.fromstring(systemd_metadata("nginx.service", "A high performance web server"))
    assert smd.get("name") == "nginx" and "high performance" in smd.findtext("longdesc")
