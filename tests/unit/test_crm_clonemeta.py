"""What ha-crmd adds to a clone's, a notification's and a migration's operations (core/crm/clonemeta)
and how the executor treats post-notifications after an abort (core/crm/transition)."""
from hadaemon.core.cib import history as H
from hadaemon.core.cib import parse_cib
from hadaemon.core.crm import clonemeta as CM
from hadaemon.core.crm import transition as T
from hadaemon.core.policy import schedule

NODES = '<nodes><node id="node1" uname="node1"/><node id="node2" uname="node2"/></nodes>'
RESOURCES = """<resources>
 <clone id="st-clone"><meta_attributes id="st-m"><nvpair id="st-m1" name="promotable" value="true"/>
  <nvpair id="st-m2" name="notify" value="true"/></meta_attributes>
  <primitive id="st" class="ocf" provider="pacemaker" type="Stateful"><operations>
   <op id="st-mon1" name="monitor" interval="5s" role="Promoted"/><op id="st-mon2" name="monitor" interval="6s" role="Unpromoted"/>
  </operations></primitive></clone>
 <clone id="u-clone"><meta_attributes id="u-m"><nvpair id="u-m1" name="globally-unique" value="true"/>
  <nvpair id="u-m2" name="clone-max" value="2"/></meta_attributes>
  <primitive id="u" class="ocf" provider="pacemaker" type="Dummy"/></clone>
 <primitive id="mig" class="ocf" provider="pacemaker" type="Dummy"><meta_attributes id="mig-m">
  <nvpair id="mig-m1" name="allow-migrate" value="true"/></meta_attributes></primitive>
</resources>"""


def _op(rsc, op, rc, call, node, interval=0):
    key = f"{rsc}_{op}_{interval}" if interval else f"{rsc}_last_0"
    digest = H.digest({"CRM_meta_timeout": "20000"} if interval else {})
    return (f'<lrm_rsc_op id="{key}" operation_key="{rsc}_{op}_{interval}" operation="{op}" call-id="{call}" '
            f'rc-code="{rc}" op-status="0" interval="{interval}" transition-key="1:1:0:x" '
            f'transition-magic="0:{rc}:1:1:0:x" on_node="{node}" op-digest="{digest}"/>')


def _state(node, master, mig=False):
    mig_rsc = (f'<lrm_resource id="mig" class="ocf" provider="pacemaker" type="Dummy">'
               f'{_op("mig", "start", 0, 3, node)}</lrm_resource>') if mig else ""
    return (f'<node_state id="{node}" uname="{node}" in_ccm="true" crmd="online" join="member" expected="member">'
            f'<transient_attributes id="{node}"><instance_attributes id="st-{node}">'
            f'<nvpair id="{node}-m" name="master-st" value="{master}"/></instance_attributes></transient_attributes>'
            f'<lrm id="{node}"><lrm_resources><lrm_resource id="st" class="ocf" provider="pacemaker" type="Stateful">'
            f'{_op("st", "start", 0, 2, node)}{_op("st", "monitor", 0, 4, node, 6000)}</lrm_resource>{mig_rsc}'
            f'</lrm_resources></lrm></node_state>')


def _cib(constraints="", mig=False):
    return (f'<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0" have-quorum="1" '
            f'dc-uuid="node1"><configuration><crm_config><cluster_property_set id="o">'
            f'<nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>'
            f'{NODES}{RESOURCES}<constraints>{constraints}</constraints></configuration>'
            f'<status>{_state("node1", 10, mig)}{_state("node2", 5)}</status></cib>')


def _by_key(t):
    return {a.key: a for a in t.graph.actions}


def test_promote_with_notifications_gets_pacemakers_meta():
    model = parse_cib(_cib(), "x")
    t = schedule(model, 1000)
    ws = t._ws
    meta = CM.action_meta(t)
    acts = _by_key(t)
    promote = [a for a in t.graph.actions if a.task == "promote" and not a.pseudo]
    assert len(promote) == 1 and promote[0].node == "node1"
    assert CM.lrm_id(promote[0].rsc, ws) == "st" and CM.config_id(promote[0].rsc, ws) == "st"
    m = meta[promote[0].id]
    assert m["clone"] in ("0", "1") and m["clone_max"] == "2" and m["promoted_max"] == "1"
    assert m["master_max"] == "1" and m["globally_unique"] == "false" and m["notify"] == "true"
    assert m["notify_promote_uname"] == "node1" and m["notify_promote_resource"] == promote[0].rsc
    pre = [a for k, a in acts.items() if "_pre_notify_promote" in k and not a.pseudo]
    post = [a for k, a in acts.items() if "_post_notify_promote" in k and not a.pseudo]
    assert {a.node for a in pre} == {"node1", "node2"} and {a.node for a in post} == {"node1", "node2"}
    pm = meta[pre[0].id]
    assert (pm["notify_type"], pm["notify_operation"], pm["notify_key_operation"]) == ("pre", "promote", "promote")
    qm = meta[post[0].id]
    assert (qm["notify_type"], qm["notify_operation"], qm["notify_key_operation"]) == ("post", "promote", "promoted")
    assert pm["notify_active_uname"] == "node1 node2" and pm["notify_unpromoted_uname"] == "node1 node2"
    assert pm["notify_slave_resource"] == pm["notify_unpromoted_resource"]
    assert pm["notify_promoted_resource"] == " " and pm["notify_stop_resource"] == " "
    assert pm["notify_all_uname"] == "node1 node2" and pm["notify_available_uname"] == "node1 node2"
    # the promoted-role monitor expects OCF_RUNNING_PROMOTED
    mon = [a for a in t.graph.actions if a.task == "monitor" and a.interval_ms == 5000]
    assert mon and all(CM.target_rcs(t, model)[a.id] == 8 for a in mon)
    # a unique clone's instances keep their numbers as LRM ids
    starts = [a for a in t.graph.actions if a.task == "start" and a.rsc.startswith("u:")]
    assert starts and all(CM.lrm_id(a.rsc, ws) == a.rsc for a in starts)
    assert all(meta[a.id]["globally_unique"] == "true" for a in starts)


def test_live_migration_carries_source_and_target():
    model = parse_cib(_cib('<rsc_location id="l" rsc="mig" node="node2" score="INFINITY"/>', mig=True), "x")
    t = schedule(model, 1000)
    meta = CM.action_meta(t)
    tasks = {a.task: a for a in t.graph.actions if a.rsc == "mig"}
    assert "migrate_to" in tasks and "migrate_from" in tasks, [a.key for a in t.graph.actions]
    for task in ("migrate_to", "migrate_from"):
        assert meta[tasks[task].id]["migrate_source"] == "node1"
        assert meta[tasks[task].id]["migrate_target"] == "node2"


def test_notify_keys_of_both_spellings():
    assert CM.notify_key("st:0_post_notify_running_0") == ("st:0", "post", "start")
    assert CM.notify_key("st:0_post_notify_start_0") == ("st:0", "post", "start")
    assert CM.notify_key("st:1_pre_notify_demote_0") == ("st:1", "pre", "demote")
    assert CM.notify_key("st_start_0") is None


def test_post_notifications_still_run_after_an_abort():
    def spec(aid, key, task, pseudo=False):
        return T.ActionSpec(aid, key, task, None if pseudo else "st", None if pseudo else "n1", 0, pseudo,
                            "pseudo_event" if pseudo else "rsc_op", 0, 10.0, "reboot", T.action_priority(key))
    acts = [spec(0, "st:0_promote_0", "promote"), spec(1, "c_promoted_0", "promoted", True),
            spec(2, "c_post_notify_promoted_0", "notify", True), spec(3, "st:0_post_notify_promoted_0", "notify"),
            spec(4, "c_confirmed-post_notify_promoted_0", "notified", True), spec(5, "st:0_monitor_5000", "monitor")]
    run = T.new_run(1, acts, [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5)])
    run, eff = T.step(run, T.Started(), 0.0)
    assert [e.action.id for e in eff if isinstance(e, T.Execute)] == [0]
    run, eff = T.step(run, T.Abort("attribute master-st of n1"), 0.1)   # the agent set its score
    run, eff = T.step(run, T.ActionDone(0, True), 0.2)
    assert [e.action.id for e in eff if isinstance(e, T.Execute)] == [3]   # the notification, not the monitor
    run, eff = T.step(run, T.ActionDone(3, True), 0.3)
    assert eff == [T.Completed(1, "aborted", "attribute master-st of n1")]
    assert run.states[5] == T.SKIPPED and run.states[4] == T.DONE
