"""ha-crmd runs clones, promotable clones with notifications and live migrations for real, with
the unmodified agents of Debian's pacemaker-resource-agents (/usr/lib/ocf/resource.d/pacemaker):

- a promotable clone of ocf:pacemaker:Stateful (notify=true): both nodes start an instance, the
  agent's own `crm_attribute --promotion` sets the promotion scores (master-st), one instance is
  promoted; every action got the CRM_meta_* environment Pacemaker's scheduler gives (clone,
  clone_max, promoted_max, notify_type / notify_operation / notify_*_resource / _uname ...), which the
  agent's `envfile` dumps; the status section records promote and the scores;
- an anonymous clone of ocf:pacemaker:Dummy on both nodes, and one of ocf:pacemaker:ping whose own
  `attrd_updater` sets its node attribute;
- ocf:pacemaker:Dummy with allow-migrate=true moved with MigrateResource: migrate_to on the source
  (with CRM_meta_migrate_target), migrate_from on the target, then the stop on the source, never a
  start on the target; the status section keeps migrate_source / migrate_target;
- ha-crmd killed -9 on the promoted node: the re-probe finds it promoted (rc 8), nothing restarts;
- the promoted node stopped cleanly: demote and stop there, promote on the survivor, with the pre/post demote,
  stop and promote notifications (their notify_*_uname lists) on the survivor.
"""
import json
import re
import time
import xml.etree.ElementTree as ET

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = cib("""<clone id="st-clone">
 <meta_attributes id="st-clone-meta">
  <nvpair id="st-clone-promotable" name="promotable" value="true"/>
  <nvpair id="st-clone-notify" name="notify" value="true"/>
 </meta_attributes>
 <primitive id="st" class="ocf" provider="pacemaker" type="Stateful">
  <instance_attributes id="st-params"><nvpair id="st-envfile" name="envfile" value="/run/st.env"/></instance_attributes>
  <operations>
   <op id="st-mon-p" name="monitor" interval="3s" role="Promoted" timeout="20s"/>
   <op id="st-mon-u" name="monitor" interval="4s" role="Unpromoted" timeout="20s"/>
  </operations>
 </primitive>
</clone>
<clone id="d-clone">
 <primitive id="d" class="ocf" provider="pacemaker" type="Dummy">
  <operations><op id="d-mon" name="monitor" interval="3s" timeout="20s"/></operations>
 </primitive>
</clone>
<clone id="ping-clone">
 <primitive id="ping" class="ocf" provider="pacemaker" type="ping">
  <instance_attributes id="ping-params">
   <nvpair id="ping-hosts" name="host_list" value="127.0.0.1"/>
   <nvpair id="ping-name" name="name" value="pingd-clone"/>
   <nvpair id="ping-mult" name="multiplier" value="100"/>
   <nvpair id="ping-dampen" name="dampen" value="1s"/>
  </instance_attributes>
  <operations><op id="ping-mon" name="monitor" interval="10s" timeout="60s"/></operations>
 </primitive>
</clone>
<primitive id="mig" class="ocf" provider="pacemaker" type="Dummy">
 <instance_attributes id="mig-params"><nvpair id="mig-envfile" name="envfile" value="/run/mig.env"/></instance_attributes>
 <meta_attributes id="mig-meta"><nvpair id="mig-allow" name="allow-migrate" value="true"/></meta_attributes>
 <operations><op id="mig-mon" name="monitor" interval="3s" timeout="20s"/></operations>
</primitive>""",
          '<rsc_location id="mig-prefers-node1" rsc="mig" node="node1" score="100"/>')


def _read(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _roles(crm):
    return {n: _read(crm.rundir(n) / "Stateful-st.state").strip() for n in crm.nodes}


def _envs(text: str):
    """The environments the agent dumped, one dict per action."""
    out = []
    for block in text.split("### ")[1:]:
        env = {}
        for line in block.splitlines()[1:]:
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        out.append(env)
    return out


def _ops(cib_text: str, node: str, rsc: str):
    root = ET.fromstring(cib_text)
    for ns in root.iter("node_state"):
        if ns.get("uname") != node:
            continue
        for lr in ns.iter("lrm_resource"):
            if lr.get("id") == rsc:
                return {o.get("id"): dict(o.attrib) for o in lr.findall("lrm_rsc_op")}
    return {}


def _attr(cib_text: str, node: str, name: str):
    root = ET.fromstring(cib_text)
    for ns in root.iter("node_state"):
        if ns.get("uname") == node:
            for nv in ns.iter("nvpair"):
                if nv.get("name") == name:
                    return nv.get("value")
    return None


def _wait(crm, cond, message, timeout=90):
    try:
        wait_until(cond, timeout, interval=0.2, message=message)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{crm.logs()}") from None


def test_promotable_clone_notifications_clone_and_live_migration():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        crm.wait_dc()
        _wait(crm, lambda: sorted(_roles(crm).values()) == ["Promoted", "Unpromoted"],
              "one Stateful instance promoted, the other unpromoted")
        _wait(crm, lambda: all((crm.rundir(n) / "Dummy-d.state").exists() for n in crm.nodes),
              "the Dummy clone on both nodes")
        _wait(crm, lambda: (crm.rundir("node1") / "Dummy-mig.state").exists(), "mig on node1")
        dc = crm.wait_dc()
        crm.wait_idle(dc)
        roles = _roles(crm)
        promoted = [n for n, r in roles.items() if r == "Promoted"][0]
        unpromoted = [n for n, r in roles.items() if r == "Unpromoted"][0]

        # the environments Stateful saw: clone meta on every action, notifications around start and promote
        for n in crm.nodes:
            envs = _envs(_read(crm.rundir(n) / "st.env"))
            assert envs, f"no environment dumped on {n}"
            start = [e for e in envs if e.get("OCF_RESKEY_CRM_meta_notify_type") is None
                     and e.get("OCF_RESKEY_CRM_meta_name") == "start"]
            assert start, envs
            e = start[0]
            assert e["OCF_RESOURCE_INSTANCE"] == "st"
            assert e["OCF_RESKEY_CRM_meta_clone"] in ("0", "1")
            assert e["OCF_RESKEY_CRM_meta_clone_max"] == "2"
            assert e["OCF_RESKEY_CRM_meta_promoted_max"] == "1"
            assert e["OCF_RESKEY_CRM_meta_master_max"] == "1"
            assert e["OCF_RESKEY_CRM_meta_globally_unique"] == "false"
            assert e["OCF_RESKEY_CRM_meta_notify"] == "true"
            assert e["HA_SBIN_DIR"].endswith("/sbin")
            notes = [(x["OCF_RESKEY_CRM_meta_notify_type"], x["OCF_RESKEY_CRM_meta_notify_operation"], x)
                     for x in envs if x.get("OCF_RESKEY_CRM_meta_notify_type")]
            kinds = {(t, o) for t, o, _ in notes}
            assert ("post", "start") in kinds, kinds
            assert ("pre", "promote") in kinds and ("post", "promote") in kinds, kinds
            post_start = [x for t, o, x in notes if (t, o) == ("post", "start")][-1]
            assert post_start["OCF_RESKEY_CRM_meta_notify_key_operation"] == "running"
            assert set(post_start["OCF_RESKEY_CRM_meta_notify_all_uname"].split()) == {"node1", "node2"}
            assert post_start["OCF_RESKEY_CRM_meta_notify_start_uname"].split() != []
            pre_promote = [x for t, o, x in notes if (t, o) == ("pre", "promote")][-1]
            assert pre_promote["OCF_RESKEY_CRM_meta_notify_promote_uname"].strip() == promoted
            assert set(pre_promote["OCF_RESKEY_CRM_meta_notify_active_uname"].split()) == {"node1", "node2"}
            assert set(pre_promote["OCF_RESKEY_CRM_meta_notify_unpromoted_uname"].split()) == {"node1", "node2"}
            assert pre_promote["OCF_RESKEY_CRM_meta_notify_promoted_resource"].strip() == ""
            assert re.fullmatch(r"st:[01]", pre_promote["OCF_RESKEY_CRM_meta_notify_promote_resource"].strip())

        # the status section: promote recorded, the agent's promotion scores as transient attributes
        cib = crm.cib_file(dc)
        assert _ops(cib, promoted, "st")["st_last_0"]["operation"] == "promote", _ops(cib, promoted, "st")
        assert _ops(cib, unpromoted, "st")["st_last_0"]["operation"] == "start"
        assert _attr(cib, promoted, "master-st") == "10" and _attr(cib, unpromoted, "master-st") == "5"
        assert "notify" not in json.dumps(_ops(cib, promoted, "st"))   # notifications are not history
        _wait(crm, lambda: all(_attr(crm.cib_file(dc), n, "pingd-clone") == "100" for n in crm.nodes),
              "ping's attrd_updater set pingd-clone=100 on both nodes", timeout=60)
        st = crm.status(dc)
        assert st["quorum"] is True
        failures = {n: {k: v for k, v in st["nodes"][n]["attributes"].items() if k.startswith("fail-count")}
                    for n in crm.nodes}
        assert failures == {n: {} for n in crm.nodes}, failures    # the promoted monitor follows the promote

        # ha-crmd killed -9 and restarted on the promoted node: its probe finds the instance promoted (rc 8)
        # and nothing is demoted, stopped or started
        offset = len(crm.crmd[promoted].output())
        crm.kill_crmd(promoted)
        crm.restart_crmd(promoted)
        crm.wait_crm_name(promoted)
        _wait(crm, lambda: "monitor st: rc=8" in crm.crmd[promoted].output()[offset:], f"{promoted} re-probed st")
        crm.wait_idle(crm.wait_dc())
        assert _roles(crm) == roles
        log = crm.crmd[promoted].output()[offset:]
        for action in ("demote st", "stop st", "start st", "promote st"):
            assert action not in log, log

        # live migration of mig to node2: migrate_to, migrate_from, stop; never a start on node2
        off2 = len(crm.crmd["node2"].output())
        off1 = len(crm.crmd["node1"].output())
        crm.call("node1", "MigrateResource", "ss", "mig", "node2")
        _wait(crm, lambda: (crm.rundir("node2") / "Dummy-mig.state").exists()
              and not (crm.rundir("node1") / "Dummy-mig.state").exists(), "mig migrated to node2")
        crm.wait_idle(crm.wait_dc())
        log1 = crm.crmd["node1"].output()[off1:]
        log2 = crm.crmd["node2"].output()[off2:]
        assert "migrate_to mig" in log1 and "stop mig" in log1, log1
        assert "migrate_from mig" in log2 and "start mig" not in log2, log2
        envs = _envs(_read(crm.rundir("node1") / "mig.env"))
        to = [e for e in envs if e.get("OCF_RESKEY_CRM_meta_name") == "migrate_to"]
        assert to and to[-1]["OCF_RESKEY_CRM_meta_migrate_target"] == "node2"
        assert to[-1]["OCF_RESKEY_CRM_meta_migrate_source"] == "node1"
        frm = [e for e in _envs(_read(crm.rundir("node2") / "mig.env"))
               if e.get("OCF_RESKEY_CRM_meta_name") == "migrate_from"]
        assert frm and frm[-1]["OCF_RESKEY_CRM_meta_migrate_source"] == "node1"
        cib = crm.cib_file(crm.wait_dc())
        last = _ops(cib, "node2", "mig")["mig_last_0"]
        assert last["operation"] == "migrate_from", last
        assert (last["migrate_source"], last["migrate_target"]) == ("node1", "node2")
        assert _ops(cib, "node1", "mig")["mig_last_0"]["operation"] == "stop"
        # and the clones were left alone
        assert _roles(crm) == roles
        time.sleep(1)
        assert all((crm.rundir(n) / "Dummy-d.state").exists() for n in crm.nodes)

        # the promoted node stops cleanly: its instance is demoted and stopped, the other one promoted,
        # with the demote / stop / promote notifications around it on the survivor
        before = len(_envs(_read(crm.rundir(unpromoted) / "st.env")))
        crm.stop_node(promoted)
        _wait(crm, lambda: _roles(crm)[unpromoted] == "Promoted", f"{unpromoted} promoted")
        assert _roles(crm)[promoted] == ""                    # stopped: Stateful removed its state file
        crm.wait_idle(crm.wait_dc([unpromoted]))
        later = _envs(_read(crm.rundir(unpromoted) / "st.env"))[before:]
        seen = [(e.get("OCF_RESKEY_CRM_meta_notify_type"), e.get("OCF_RESKEY_CRM_meta_notify_operation"))
                for e in later if e.get("OCF_RESKEY_CRM_meta_notify_type")]
        for kind in (("pre", "demote"), ("post", "demote"), ("pre", "stop"), ("post", "stop"), ("pre", "promote"),
                     ("post", "promote")):
            assert kind in seen, (kind, seen)
        pre_demote = [e for e in later if e.get("OCF_RESKEY_CRM_meta_notify_type") == "pre"
                      and e.get("OCF_RESKEY_CRM_meta_notify_operation") == "demote"][0]
        assert pre_demote["OCF_RESKEY_CRM_meta_notify_demote_uname"].strip() == promoted
        assert pre_demote["OCF_RESKEY_CRM_meta_notify_promoted_uname"].strip() == promoted
        assert pre_demote["OCF_RESKEY_CRM_meta_notify_stop_uname"].strip() == promoted
        assert pre_demote["OCF_RESKEY_CRM_meta_notify_promote_uname"].strip() == unpromoted
        cib = crm.cib_file(unpromoted)
        assert _ops(cib, unpromoted, "st")["st_last_0"]["operation"] == "promote"
        assert _attr(cib, unpromoted, "master-st") == "10"
