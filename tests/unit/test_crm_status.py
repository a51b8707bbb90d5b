"""Status-section updates as Pacemaker writes them, read back by the policy engine; CIB versions,
the Heartbeat 2.1 schema check, ha.cf defaults; the CIB store on disk."""
import os
import xml.etree.ElementTree as ET

import pytest

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.core.crm.ops import plan_op
from hadaemon.core.policy import schedule
from hadaemon.io.cibstore import CibStore
from tests.unit.crm_world import NOW, cib_with, dummy


def _rec(op, interval=0, rc=0, status=0, call=1, target=0, digest="", rsc="d"):
    return S.OpRecord(rsc, op, interval, rc, status, call, S.transition_key(3, 7, target, "uuid"), target,
                      exec_ms=12, queue_ms=1, last_run=NOW, digest=digest, rsc_class="ocf",
                      rsc_provider="heartbeat", rsc_type="Dummy")


def _ops(cib, node="node1"):
    return {o.get("id"): dict(o.attrib) for o in cib.iter("lrm_rsc_op") if o.get("on_node") == node}


def test_entries_are_written_as_pacemaker_names_them():
    cib = cib_with(dummy("d"))
    model = parse_cib(cibdoc.to_text(cib))
    start = plan_op(model, "d", "start", 0, "node1")
    mon = plan_op(model, "d", "monitor", 10000, "node1")
    assert not S.record_op(cib, "node1", _rec("monitor", 0, rc=7, call=1, target=7), NOW)
    assert not S.record_op(cib, "node1", _rec("start", call=2, digest=start.digest), NOW)
    assert not S.record_op(cib, "node1", _rec("monitor", 10000, call=3, digest=mon.digest), NOW)
    ops = _ops(cib)
    assert set(ops) == {"d_last_0", "d_monitor_10000"}
    last = ops["d_last_0"]
    assert last["operation"] == "start" and last["call-id"] == "2" and last["rc-code"] == "0"
    assert last["op-status"] == "0" and last["interval"] == "0" and last["operation_key"] == "d_start_0"
    assert last["transition-key"] == "3:7:0:uuid" and last["transition-magic"] == "0:0:3:7:0:uuid"
    assert last["exec-time"] == "12" and last["queue-time"] == "1" and last["last-rc-change"] == str(NOW)
    assert last["op-digest"] == start.digest
    res = next(cib.iter("lrm_resource"))
    assert (res.get("class"), res.get("provider"), res.get("type")) == ("ocf", "heartbeat", "Dummy")
    # the scheduler reads it back: running, monitored, nothing to do
    tr = schedule(parse_cib(cibdoc.to_text(cib)), NOW)
    assert tr.current["d"] == ("node1",)
    assert [a.key for a in tr.graph.actions if a.node == "node1"] == []


def test_a_successful_stop_drops_the_recurring_entries_and_a_cancel_removes_one():
    cib = cib_with(dummy("d"))
    S.record_op(cib, "node1", _rec("start", call=1), NOW)
    S.record_op(cib, "node1", _rec("monitor", 10000, call=2), NOW)
    S.record_op(cib, "node1", _rec("monitor", 20000, call=3), NOW)
    S.record_op(cib, "node1", _rec("monitor", 20000, status=S.EXEC_STATUS["cancelled"], call=4), NOW)
    assert set(_ops(cib)) == {"d_last_0", "d_monitor_10000"}
    S.record_op(cib, "node1", _rec("stop", call=5), NOW)
    assert set(_ops(cib)) == {"d_last_0"}


def test_failures_count_per_operation_and_a_failed_start_is_infinity():
    cib = cib_with(dummy("d"))
    assert S.record_op(cib, "node1", _rec("monitor", 10000, rc=7, call=2), NOW)
    assert S.record_op(cib, "node1", _rec("monitor", 10000, rc=7, call=3), NOW + 5)
    assert S.get_attribute(cib, "node1", "fail-count-d#monitor_10000") == "2"
    assert S.get_attribute(cib, "node1", "last-failure-d#monitor_10000") == str(NOW + 5)
    assert _ops(cib)["d_last_failure_0"]["rc-code"] == "7"
    assert S.record_op(cib, "node1", _rec("start", rc=1, call=4), NOW)
    assert S.get_attribute(cib, "node1", "fail-count-d#start_0") == "INFINITY"
    cib2 = cib_with(dummy("d"))
    S.record_op(cib2, "node1", _rec("start", rc=1, call=4), NOW, start_failure_is_fatal=False)
    assert S.get_attribute(cib2, "node1", "fail-count-d#start_0") == "1"
    # the policy engine reads the fail-count
    from hadaemon.core.policy.unpack import failcount, unpack
    ws = unpack(parse_cib(cibdoc.to_text(cib)), NOW)
    assert failcount(ws, ws.prims["d"], ws.node_by_uname["node1"]) >= 1_000_000
    S.clear_failcounts(cib, "node1", "d")
    assert S.get_attribute(cib, "node1", "fail-count-d#start_0") is None


def test_probes_finding_a_resource_are_answers_not_failures():
    for rc in (0, 7):
        assert not S.is_failure(_rec("monitor", 0, rc=rc, target=7))
    assert S.is_failure(_rec("monitor", 0, rc=5, target=7))
    assert not S.is_failure(_rec("stop", rc=7))
    assert S.is_failure(_rec("start", status=S.EXEC_STATUS["timeout"], rc=1))
    assert not S.is_failure(_rec("monitor", 10000, status=S.EXEC_STATUS["cancelled"]))


def test_a_probes_unexpected_answer_is_news_not_a_failure():
    """Pacemaker's controller aborts and recomputes on a probe's unexpected rc 0/7/8 and counts no
    failure; an error code is a failure; an expected answer, or any other op, is neither."""
    for rc, target in ((0, 7), (8, 7), (7, 0), (8, 0), (7, 8)):
        assert S.unexpected_probe(_rec("monitor", 0, rc=rc, target=target)), (rc, target)
    for rc, target in ((7, 7), (0, 0), (8, 8), (5, 7), (1, 0)):
        assert not S.unexpected_probe(_rec("monitor", 0, rc=rc, target=target)), (rc, target)
    assert not S.unexpected_probe(_rec("monitor", 10000, rc=7, target=0))
    assert not S.unexpected_probe(_rec("stop", rc=7))
    assert not S.unexpected_probe(_rec("monitor", 0, status=S.EXEC_STATUS["timeout"], rc=0, target=7))


def test_node_state_and_transient_attributes():
    cib = cib_with(dummy("d"))
    assert S.set_node_state(cib, "node2", in_ccm="false", crmd="offline", join="down")
    assert not S.set_node_state(cib, "node2", in_ccm="false")
    ns = S.node_state(cib, "node2")
    assert (ns.get("id"), ns.get("uname"), ns.get("expected")) == ("node2", "node2", "member")
    assert S.set_attribute(cib, "node1", "pingd", "2")
    assert not S.set_attribute(cib, "node1", "pingd", "2")
    model = parse_cib(cibdoc.to_text(cib))
    st = [s for s in model.node_states if s.uname == "node1"][0]
    assert dict(st.transient_sets[0].pairs)["pingd"] == "2"
    assert S.set_attribute(cib, "node1", "pingd", None)


def test_versions_and_bumps():
    cib = cibdoc.parse('<cib admin_epoch="1" epoch="4" num_updates="7"><configuration/></cib>')
    assert cibdoc.version_of(cib) == (1, 4, 7)
    assert cibdoc.bump(cib, configuration=False) == (1, 4, 8)
    assert cibdoc.bump(cib, configuration=True) == (1, 5, 0)
    assert cibdoc.version_text(cibdoc.version_of(cib)) == "1:5:0"
    assert cib.find("configuration/resources") is not None and cib.find("status") is not None


def test_heartbeat_2_1_cibs_are_recognised_and_name_the_upgrade_command():
    old = cibdoc.parse("""<cib><configuration><crm_config><cluster_property_set id="o"><attributes>
      <nvpair id="n" name="stonith_enabled" value="false"/></attributes></cluster_property_set></crm_config>
      <nodes><node id="u1" uname="a" type="normal"/></nodes></configuration></cib>""")
    msg = cibdoc.old_schema_problem(old)
    assert msg and "hactl cib upgrade" in msg and "<attributes>" in msg
    assert cibdoc.old_schema_problem(cib_with(dummy("d"))) is None
    # Pacemaker 1.1 still writes <node type="normal">: not a 2.x sign (the same verdict as hactl cib upgrade)
    p11 = cibdoc.parse("""<cib validate-with="pacemaker-1.2" admin_epoch="0" epoch="1" num_updates="0">
      <configuration><crm_config/><nodes><node id="u1" uname="a" type="normal"/></nodes><resources/>
      <constraints/></configuration><status/></cib>""")
    assert cibdoc.old_schema_problem(p11) is None


def test_auto_failback_becomes_resource_stickiness_unless_the_cib_sets_one():
    for value, want in (("on", "0"), ("off", "INFINITY")):
        cib = cib_with(dummy("d"))
        cibdoc.with_hacf_defaults(cib, value)
        nv = [e for e in cib.iter("nvpair") if e.get("name") == "resource-stickiness"]
        assert [e.get("value") for e in nv] == [want]
    cib = cib_with(dummy("d"), rsc_defaults='<rsc_defaults><meta_attributes id="rd">'
                   '<nvpair id="rd-s" name="resource-stickiness" value="50"/></meta_attributes></rsc_defaults>')
    cibdoc.with_hacf_defaults(cib, "on")
    assert [e.get("value") for e in cib.iter("nvpair") if e.get("name") == "resource-stickiness"] == ["50"]
    cib = cib_with(dummy("d"))
    cibdoc.with_hacf_defaults(cib, "legacy")
    assert not [e for e in cib.iter("nvpair") if e.get("name") == "resource-stickiness"]


def test_store_saves_atomically_keeps_the_previous_copy_and_bounds_the_archive(tmp_path):
    store = CibStore(str(tmp_path / "state"), keep=5)
    store.check()
    assert store.load() is None
    assert store.save("<cib epoch='1'/>")
    assert not store.save("<cib epoch='1'/>")
    assert store.save("<cib epoch='2'/>")
    assert (tmp_path / "state" / "cib.last").read_text() == "<cib epoch='1'/>"
    assert CibStore(str(tmp_path / "state")).load() == "<cib epoch='2'/>"
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"
    assert not [p for p in os.listdir(store.dir) if p.startswith(".tmp-")]
    for i in range(12):
        store.archive_input(f"<cib n='{i}'/>")
        assert store.archive_input(f"<cib n='{i}'/>").endswith(f"pe-input-{i}.xml")   # same input: once
    names = sorted(os.listdir(store.pe_dir), key=lambda n: int(n.split("-")[2].split(".")[0]))
    assert names == [f"pe-input-{i}.xml" for i in range(7, 12)]
    # numbering continues after a restart
    again = CibStore(str(tmp_path / "state"), keep=5)
    assert again.archive_input("<cib/>").endswith("pe-input-12.xml")
    ET.fromstring(open(again.inputs()[-1]).read())


def _pacemaker_summary(tmp_path, cib) -> str:
    import subprocess

    cib.set("validate-with", "pacemaker-3.0")
    path = tmp_path / "cib.xml"
    path.write_text(cibdoc.to_text(cib))
    out = subprocess.run(["crm_simulate", "-x", str(path), "-S"], capture_output=True, text=True,
                         timeout=120).stdout
    return out.split("Transition Summary:")[1].split("Executing Cluster Transition:")[0]


@pytest.mark.crm_simulate
def test_pacemaker_reads_the_history_we_write_as_we_do(tmp_path):
    from tests.unit.crm_world import World

    w = World(cib_with(dummy("solo") + '<group id="g">' + dummy("a") + dummy("b") + "</group>",
                       '<rsc_location id="l-solo" rsc="solo" node="node1" score="100"/>'
                       '<rsc_location id="l-g" rsc="g" node="node2" score="100"/>'))
    w.converge()
    assert _pacemaker_summary(tmp_path, w.cib).strip() == ""       # converged: nothing to do
    S.record_op(w.cib, "node1", S.OpRecord("solo", "monitor", 10000, 7, 0, next(w.calls), "", 0,
                                           last_run=NOW), NOW)
    summary = _pacemaker_summary(tmp_path, w.cib)
    assert "Recover" in summary and "solo" in summary and "node1" in summary


def test_the_next_failure_timeout_expiry_is_found():
    from hadaemon.core.crm.ops import next_failure_expiry

    prim = ('<primitive id="d" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="d-m">'
            '<nvpair id="d-ft" name="failure-timeout" value="60s"/></meta_attributes></primitive>')
    cib = cib_with(prim + dummy("e"))
    assert next_failure_expiry(parse_cib(cibdoc.to_text(cib)), NOW) is None
    S.record_op(cib, "node1", _rec("monitor", 10000, rc=7, call=2), NOW)
    S.record_op(cib, "node2", _rec("monitor", 10000, rc=7, call=2, rsc="e"), NOW)   # no failure-timeout
    model = parse_cib(cibdoc.to_text(cib))
    assert next_failure_expiry(model, NOW) == NOW + 60
    assert next_failure_expiry(model, NOW + 60) is None


PCMK_DUMMY_MD = """<resource-agent name="Dummy" version="2.0"><version>1.1</version><parameters>
<parameter name="state" unique-group="state"><content type="string"/></parameter>
<parameter name="fake" reloadable="1"><content type="string"/></parameter>
</parameters><actions><action name="start"/><action name="reload-agent"/><action name="reload"/>
</actions></resource-agent>"""
HB_DUMMY_MD = """<resource-agent name="Dummy"><version>1.0</version><parameters>
<parameter name="state" unique="1"/><parameter name="fake" unique="0"/></parameters>
<actions><action name="start"/><action name="reload"/></actions></resource-agent>"""


def test_reload_parameters_from_meta_data_as_pacemakers_controller_reads_them():
    from hadaemon.core.lrm.metadata import reload_parameters

    assert reload_parameters(PCMK_DUMMY_MD) == ("reload-agent", ("state",))
    assert reload_parameters(HB_DUMMY_MD) == ("reload", ("state",))
    # reload-agent of an agent older than OCF 1.1 is not used; no reload action: no reloads
    assert reload_parameters(HB_DUMMY_MD.replace('"reload"', '"reload-agent"')) is None
    assert reload_parameters(PCMK_DUMMY_MD.replace('<action name="reload-agent"/>', "")) is None
    assert reload_parameters("<not xml") is None


def _with_param(cib, value: str):
    prim = next(p for p in cib.iter("primitive") if p.get("id") == "d")
    for ia in prim.findall("instance_attributes"):
        prim.remove(ia)
    ia = ET.SubElement(prim, "instance_attributes", id="d-ia")
    ET.SubElement(ia, "nvpair", id="d-state", name="state", value=value.split(",")[0])
    ET.SubElement(ia, "nvpair", id="d-fake", name="fake", value=value.split(",")[1])


def _dummy_started_with_restart_fields():
    """A CIB with Dummy d started on node1 (its start entry carrying op-force-restart / op-restart-digest
    for the parameter `state`, as ha-crmd writes it) and its 10 s monitor: (cib, listed, restart digest)."""
    from hadaemon.core.crm.ops import restart_fields

    cib = cib_with(dummy("d"))
    _with_param(cib, "/run/d.state,1")
    model = parse_cib(cibdoc.to_text(cib))
    start = plan_op(model, "d", "start", 0, "node1")
    listed, rdigest = restart_fields(("state",), start.params)
    S.record_op(cib, "node1", S.OpRecord("d", "start", 0, 0, 0, 2, S.transition_key(3, 7, 0, "uuid"), 0,
                                         last_run=NOW, digest=start.digest, rsc_class="ocf",
                                         rsc_provider="heartbeat", rsc_type="Dummy", restart_list=listed,
                                         restart_digest=rdigest), NOW)
    mon = plan_op(model, "d", "monitor", 10000, "node1")
    S.record_op(cib, "node1", _rec("monitor", 10000, call=3, digest=mon.digest), NOW)
    return cib, listed, rdigest


@pytest.mark.parametrize("change,expected", [("/run/d.state,2", "reload-agent"), ("/run/other.state,1", "start")])
def test_restart_fields_let_the_scheduler_reload_a_reloadable_change_and_restart_otherwise(change, expected):
    """The start entry carries op-force-restart / op-restart-digest (restart_fields): a change of a
    parameter not listed gives a reload-agent, of a listed one a restart; the reload, recorded as a
    start (pcmk__create_history_xml), leaves nothing more to do."""
    from hadaemon.core.crm.ops import restart_fields

    cib, listed, rdigest = _dummy_started_with_restart_fields()
    assert listed == "  state  "
    last = _ops(cib)["d_last_0"]
    assert last["op-force-restart"] == "  state  " and last["op-restart-digest"] == rdigest
    assert "op-force-restart" not in _ops(cib)["d_monitor_10000"]
    _with_param(cib, change)
    tr = schedule(parse_cib(cibdoc.to_text(cib)), NOW)
    tasks = sorted(a.task for a in tr.graph.actions if a.rsc == "d" and a.node == "node1")
    if expected == "reload-agent":
        assert "reload-agent" in tasks and "stop" not in tasks and "start" not in tasks, tasks
        model = parse_cib(cibdoc.to_text(cib))
        reload = plan_op(model, "d", "reload-agent", 0, "node1")
        listed, rdigest = restart_fields(("state",), reload.params)
        S.record_op(cib, "node1", S.OpRecord("d", "reload-agent", 0, 0, 0, 4, S.transition_key(4, 8, 0, "uuid"),
                                             0, last_run=NOW, digest=reload.digest, rsc_class="ocf",
                                             rsc_provider="heartbeat", rsc_type="Dummy", restart_list=listed,
                                             restart_digest=rdigest), NOW)
        assert _ops(cib)["d_last_0"]["operation"] == "start"      # recorded as a start
        mon = plan_op(model, "d", "monitor", 10000, "node1")
        S.record_op(cib, "node1", _rec("monitor", 10000, call=5, digest=mon.digest), NOW)
        tr = schedule(parse_cib(cibdoc.to_text(cib)), NOW)
        assert [a.key for a in tr.graph.actions if a.node == "node1"] == []
    else:
        assert "stop" in tasks and "start" in tasks and "reload-agent" not in tasks, tasks


@pytest.mark.crm_simulate
@pytest.mark.parametrize("change,word", [("/run/d.state,2", "Reload"), ("/run/other.state,1", "Restart")])
def test_pacemaker_reads_our_restart_digest_as_we_do(tmp_path, change, word):
    """crm_simulate, given the start entry ha-crmd writes (op-force-restart / op-restart-digest), decides
    as our scheduler: a reload for a reloadable change, a restart for a listed one (so the digest of the
    listed parameters is computed as Pacemaker computes it)."""
    cib, _listed, _rdigest = _dummy_started_with_restart_fields()
    assert _pacemaker_summary(tmp_path, cib).strip() == ""      # unchanged: nothing to do
    _with_param(cib, change)
    summary = _pacemaker_summary(tmp_path, cib)
    assert f"* {word}" in summary and "d " in summary, summary
