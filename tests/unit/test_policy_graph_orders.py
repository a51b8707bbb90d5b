"""Orderings that change no action but are inputs of Pacemaker's transition graph: probes before what
waits for another resource's stop or restart (pcmk__order_probes), anti-colocation orderings
(anti_colocation_order, same node only), starts after fencing (order_start_vs_fencing), fencing one at a
time without concurrent-fencing and the DC's last (schedule_fencing_and_shutdowns), and clone or group
pseudo-actions that no instance or member can carry out (pcmk__collective_action_flags,
pcmk__group_action_flags) or notifications of a stop on an unclean node (collect_resource_data).
Each case checks the edges that matter here and, with crm_simulate installed, that the whole graph's
inputs are crm_simulate -S -G's."""
from __future__ import annotations

import pytest

from hadaemon.core.cib import history as H
from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
from tests.unit.crmsim import crm_simulate_graph, graph_inputs, needs_crm_simulate
from tests.unit.test_policy_clones import clone
from tests.unit.test_policy_scheduler import cib, group, lrm, node_state, op, primitive, running, stopped

NOW = 1800000000


def ours(xml: str):
    return graph_inputs(schedule(parse_cib(xml, "test.xml"), NOW).graph_xml())


def order(first: str, then: str, kind: str = "Mandatory") -> str:
    return f'<rsc_order id="o-{first}-{then}" first="{first}" then="{then}" kind="{kind}"/>'


def colocation(rsc: str, with_rsc: str, score: str) -> str:
    return f'<rsc_colocation id="c-{rsc}-{with_rsc}" rsc="{rsc}" with-rsc="{with_rsc}" score="{score}"/>'


def location(rsc: str, node: str, score: str) -> str:
    return f'<rsc_location id="l-{rsc}-{node}" rsc="{rsc}" node="{node}" score="{score}"/>'


# rsc1 (node1) must leave node1, where rsc2 (anti-colocated with it) then starts
ANTI_COLOCATION = cib(
    resources=[primitive("rsc1"), primitive("rsc2")],
    constraints=[colocation("rsc1", "rsc2", "-INFINITY"), location("rsc1", "node1", "-INFINITY"),
                 location("rsc2", "node1", "100")],
    status=[node_state("node1", running("rsc1"), stopped("rsc2")), node_state("node2", stopped("rsc1"),
                                                                              stopped("rsc2"))])
# group g (a, d) moves from node1 to node2, where nothing was probed yet; rsc3 is ordered after g
GROUP_MOVE = cib(
    resources=[group("g", primitive("a"), primitive("d")), primitive("rsc3")],
    constraints=[location("g", "node2", "100"), order("g", "rsc3"), colocation("rsc3", "g", "INFINITY")],
    status=[node_state("node1", running("a"), running("d"), running("rsc3")), node_state("node2")])
# rsc1 starts (unknown on node2); rsc2, ordered after it and running on node1, restarts for it
RESTART = cib(
    resources=[primitive("rsc1"), primitive("rsc2")],
    constraints=[order("rsc1", "rsc2"), location("rsc1", "node1", "100")],
    status=[node_state("node1", stopped("rsc1"), running("rsc2")), node_state("node2", stopped("rsc2"))])
# node2 (the DC), node3 and node4 are lost; without concurrent fencing they are fenced one at a time,
# the DC last; the fence device, never probed on the lost nodes, starts after each fencing
FENCING = cib(
    nodes=("node2", "node1", "node3", "node4"),
    resources=[primitive("fence", cls="stonith"), primitive("rsc1", meta={"requires": "quorum"})],
    options={"stonith-enabled": "true", "concurrent-fencing": "false"},
    status=[node_state("node2", running("rsc1"), online=False), node_state("node1", stopped("rsc1")),
            node_state("node3", stopped("rsc1"), online=False), node_state("node4", online=False)])
# a clone whose instances cannot start (what they are ordered after cannot run): no clone start in the graph
BLOCKED_CLONE = cib(
    resources=[clone("first", primitive("f"), {"target-role": "Stopped"}), clone("c", primitive("d")),
               primitive("rsc1")],
    constraints=[order("first", "c")],
    status=[node_state("node1"), node_state("node2")])
# group g runs on node2, lost and not fenceable (no quorum): its stops are implied but cannot complete
UNFENCEABLE_GROUP = cib(
    nodes=("node1", "node2", "node3"),
    resources=[primitive("fence", cls="stonith"), group("g", primitive("a"), primitive("b"))],
    options={"stonith-enabled": "true"}, quorum=False,
    status=[node_state("node1", running("fence"), stopped("a"), stopped("b")),
            node_state("node2", running("a"), running("b"), online=False), node_state("node3", online=False)])
# notify clone with an instance on a lost node that cannot be fenced: the others are told of its stop
UNCLEAN_STOP_NOTIFY = cib(
    nodes=("node1", "node2", "node3"),
    resources=[primitive("fence", cls="stonith"), clone("c", primitive("d"), {"notify": "true"})],
    options={"stonith-enabled": "true"}, quorum=False,
    status=[node_state("node1", running("d"), running("fence")), node_state("node2", running("d"), online=False),
            node_state("node3", stopped("d"))])



def vm(rid: str) -> str:
    """A live-migratable resource using one cpu."""
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="{rid}-m">'
            f'<nvpair id="{rid}-am" name="allow-migrate" value="true"/></meta_attributes>'
            f'<utilization id="{rid}-u"><nvpair id="{rid}-cpu" name="cpu" value="1"/></utilization></primitive>')


def one_cpu(xml: str, *nodes: str) -> str:
    for n in nodes:
        xml = xml.replace(f'<node id="{n}" uname="{n}">', f'<node id="{n}" uname="{n}"><utilization id="{n}-u">'
                          f'<nvpair id="{n}-cpu" name="cpu" value="1"/></utilization>')
    return xml


# vm1 and vm2 migrate to each other's node, each waiting for the other's load_stopped: one of those
# orderings would close a loop and is dropped
LOAD_LOOP = one_cpu(cib(
    resources=[vm("vm1"), vm("vm2")], constraints=[location("vm1", "node2", "100"), location("vm2", "node1", "100")],
    options={"placement-strategy": "utilization"},
    status=[node_state("node1", running("vm1"), stopped("vm2")), node_state("node2", running("vm2"), stopped("vm1"))]),
    "node1", "node2")
# interleaved clones A then B start: B's instances follow A's on their node, B's start follows A's running
INTERLEAVE = cib(
    resources=[clone("A", primitive("a")), clone("B", primitive("b"), {"interleave": "true"})],
    constraints=[order("A", "B")])
# notify clone N then rsc1: rsc1 waits for N's confirmed post-start notifications, N's monitors too
NOTIFY_ORDER = cib(
    resources=[clone("N", primitive("n", monitor=True), {"notify": "true"}), primitive("rsc1")],
    constraints=[order("N", "rsc1")])



# cloned group g (a, b), clone-max 2, notify: instances run on node1 and node2 (in standby: its instance
# moves to node3); node3 has probes of both members under the :0 names: both map to one removed
# instance (g:2), not one each
CLONED_GROUP_HISTORY = cib(
    nodes=("node1", "node2", "node3"), node_attrs={"node2": {"standby": "on"}},
    resources=[clone("c", group("g", primitive("a"), primitive("b")), {"clone-max": "2", "notify": "true"})],
    status=[node_state("node1", running("a:0"), running("b:0")), node_state("node2", running("a:1"), running("b:1")),
            node_state("node3", stopped("b:0"), stopped("a:0"))])

# rsc1's history has a 5 s monitor no longer configured (cancelled); node2 shuts down (rsc2 stops there)
KEYS = cib(
    resources=[primitive("rsc1"), primitive("rsc2")],
    status=[node_state("node1", lrm("rsc1", op("rsc1", "start", call=1), op("rsc1", "monitor", call=2, interval=5000)),
                       stopped("rsc2")),
            node_state("node2", running("rsc2"), stopped("rsc1"), attrs={"shutdown": "1700000000"})])

# a promotable clone whose promoted and unpromoted monitors share an interval: duplicates, which Pacemaker
# ignores, both (is_op_dup: a configuration error), so no instance gets a monitor
DUP_MONITORS = cib(
    resources=[clone("ms", '<primitive id="st" class="ocf" provider="pacemaker" type="Stateful"><operations>'
                     '<op id="st-mon-p" name="monitor" interval="5" role="Master"/>'
                     '<op id="st-mon-u" name="monitor" interval="5" role="Slave"/></operations></primitive>',
                     {"promotable": "true"})],
    status=[node_state("node1", attrs={"master-st": "10"}), node_state("node2", attrs={"master-st": "5"})])

MON = H.digest({"CRM_meta_timeout": "20000"})  # a monitor's digest (no parameters, the default timeout)
# st:0 is promoted on node1 with its promoted-role monitor running; node2 now has the higher promotion score:
# st:0 is demoted, its promoted monitor cancelled before the demote, the unpromoted one started after it
ROLE_SWAP = cib(
    resources=[clone("ms", '<primitive id="st" class="ocf" provider="pacemaker" type="Stateful"><operations>'
                     '<op id="st-mon-p" name="monitor" interval="10" role="Master"/>'
                     '<op id="st-mon-u" name="monitor" interval="11" role="Slave"/></operations></primitive>',
                     {"promotable": "true"})],
    status=[node_state("node1", lrm("st", op("st", "start", call=1), op("st", "promote", call=2),
                                    op("st", "monitor", rc=8, call=3, interval=10000, target=8, digest=MON),
                                    agent=("ocf", "pacemaker", "Stateful")), attrs={"master-st": "5"}),
            node_state("node2", lrm("st", op("st", "start", call=1),
                                    op("st", "monitor", call=2, interval=11000, digest=MON),
                                    agent=("ocf", "pacemaker", "Stateful")), attrs={"master-st": "10"})])

# clone A (clone-min 2) is ordered before clone B; A's instance on node3 must stop: the ordering from each
# instance's start creates that instance's (unrunnable) start, which its stop makes required, and with it
# A's start and running (rsc_order_first, pcmk__collective_action_flags: cloned_stop_one)
CLONE_MIN_STOP = cib(
    nodes=("node1", "node2", "node3"),
    resources=[clone("A", primitive("a"), {"clone-min": "2"}), clone("B", primitive("b"))],
    constraints=[order("A", "B"), location("A", "node3", "-INFINITY")],
    status=[node_state(n, running("a"), running("b")) for n in ("node1", "node2", "node3")])

# st is promoted on node2, which is lost and fenced: its demote there is implied by the fencing
FENCED_PROMOTED = cib(
    resources=[primitive("fence", cls="stonith"),
               clone("ms", '<primitive id="st" class="ocf" provider="pacemaker" type="Stateful"/>',
                     {"promotable": "true"})],
    options={"stonith-enabled": "true"},
    status=[node_state("node1", lrm("st", op("st", "start", call=1), agent=("ocf", "pacemaker", "Stateful")),
                       '<lrm_resource id="fence" class="stonith" type="fence_dummy">'
                       + op("fence", "start", call=2) + "</lrm_resource>",
                       attrs={"master-st": "5"}),
            node_state("node2", lrm("st", op("st", "start", call=1), op("st", "promote", call=2),
                                    agent=("ocf", "pacemaker", "Stateful")), online=False)])

# rand-1037/1099-like: group g is anti-colocated with rsc1 and must make room for it; rsc3 was removed
# from the configuration and runs on node2, in standby (its history is not deleted there); g is ordered
# (asymmetrically) after rsc2, which cannot start
GROUP_ROOM = cib(
    nodes=("node1", "node2", "node3"), node_attrs={"node2": {"standby": "on"}},
    resources=[primitive("rsc1"), primitive("rsc2", meta={"target-role": "Stopped"}),
               group("g", primitive("a"), primitive("b"))],
    constraints=[colocation("g", "rsc1", "-INFINITY"), location("rsc1", "node3", "INFINITY"),
                 '<rsc_order id="o-rsc2-g" first="rsc2" then="g" kind="Mandatory" symmetrical="false"/>'],
    status=[node_state("node1", stopped("rsc1"), stopped("rsc2")),
            node_state("node2", stopped("rsc1"), running("rsc3")),
            node_state("node3", running("a"), running("b"), stopped("rsc1"), stopped("rsc2"))])

# cloned group g (a, b) banned from node2, where an instance runs: the clone's stop is required because
# its instance's (members') stops are (pcmk__collective_action_flags; cloned-group-stop)
CLONED_GROUP_STOP = cib(
    resources=[clone("c", group("g", primitive("a"), primitive("b")))],
    constraints=[location("c", "node2", "-INFINITY")],
    status=[node_state(n, running("a"), running("b")) for n in ("node1", "node2")])

# rsc2 takes rsc1's operations by reference (<operations id-ref>): it gets rsc1's monitor
OPS_REF = cib(
    resources=['<primitive id="rsc1" class="ocf" provider="heartbeat" type="Dummy"><operations id="ops1">'
               '<op id="ops1-mon" name="monitor" interval="10s"/></operations></primitive>',
               '<primitive id="rsc2" class="ocf" provider="heartbeat" type="Dummy">'
               '<operations id-ref="ops1"/></primitive>'])

# rsc1 has a monitor for the Stopped role: it runs on node2, where rsc1 will not, expecting "not running"
STOPPED_MONITOR = cib(
    resources=['<primitive id="rsc1" class="ocf" provider="heartbeat" type="Dummy"><operations>'
               '<op id="rsc1-mon-s" name="monitor" interval="300s" role="Stopped"/>'
               '<op id="rsc1-mon" name="monitor" interval="30s"/></operations></primitive>'],
    constraints=[location("rsc1", "node1", "100")])

# a promotable clone whose monitor names the Started role: instances are unpromoted or promoted, never
# plain Started, so no instance gets it (recurring_op_for_active; bug-1572-2)
STARTED_ROLE_MONITOR = cib(
    resources=[clone("ms", '<primitive id="st" class="ocf" provider="pacemaker" type="Stateful"><operations>'
                     '<op id="st-mon" name="monitor" interval="300s" role="Started"/></operations></primitive>',
                     {"promotable": "true"})],
    status=[node_state("node1", attrs={"master-st": "10"}), node_state("node2")])

# vm (allow-migrate, requires fencing) moves from node1 to node2 after rsc1 (ordered before it) starts;
# node3 is lost and fenced first
MIGRATE_AFTER = cib(
    nodes=("node1", "node2", "node3"),
    resources=[primitive("fence", cls="stonith"), primitive("rsc1"),
               primitive("vm", meta={"allow-migrate": "true"})],
    constraints=[order("rsc1", "vm"), location("vm", "node2", "100")],
    options={"stonith-enabled": "true"},
    status=[node_state("node1", running("vm"), stopped("rsc1"),
                       '<lrm_resource id="fence" class="stonith" type="fence_dummy">'
                       + op("fence", "start", call=2) + "</lrm_resource>"),
            node_state("node2", stopped("vm"), stopped("rsc1"), stopped("fence")),
            node_state("node3", online=False)])

# clone A (clone-min 2) before clone B, both starting: B's start waits for A's clone-one-or-more pseudo-action,
# B's instances only through B's start
CLONE_MIN_START = cib(
    nodes=("node1", "node2", "node3"),
    resources=[clone("A", primitive("a"), {"clone-min": "2"}), clone("B", primitive("b"))],
    constraints=[order("A", "B")])

# group g (a, b, c) on node1: b is to stop (target-role Stopped), so c cannot stay; c's parameters changed
# too, which Pacemaker handles before assignment with a required start (pcmk__check_action_config) that
# cannot run, and which makes g's start required (group11)
CHANGED_UNPLACED = cib(
    nodes=("node1",),
    resources=[group("g", primitive("a"), primitive("b", meta={"target-role": "Stopped"}),
                     '<primitive id="c" class="ocf" provider="heartbeat" type="Dummy"><instance_attributes id="c-ia">'
                     '<nvpair id="c-ia-fake" name="fake" value="2"/></instance_attributes></primitive>')],
    status=[node_state("node1", running("a"), running("b"), running("c"))])

# B (allow-migrate) is ordered before A; both move from node1 to node2: A's stop ("A stop then B stop", the
# inverse) comes before B's migrate_to (pcmk__order_migration_equivalents)
MIGRATE_AFTER_STOP = cib(
    resources=[primitive("A"), primitive("B", meta={"allow-migrate": "true"})],
    constraints=[order("B", "A"), location("A", "node2", "100"), location("B", "node2", "100")],
    status=[node_state("node1", running("A"), running("B")), node_state("node2", stopped("A"), stopped("B"))])
# A then B, both migrating from node1 to node2: A's migrate_from comes before B's migrate_to
MIGRATE_BOTH = cib(
    resources=[primitive("A", meta={"allow-migrate": "true"}), primitive("B", meta={"allow-migrate": "true"})],
    constraints=[order("A", "B"), location("A", "node2", "100"), location("B", "node2", "100")],
    status=[node_state("node1", running("A"), running("B")), node_state("node2", stopped("A"), stopped("B"))])

CASES = {"migrate_after_stop": MIGRATE_AFTER_STOP, "migrate_both": MIGRATE_BOTH, "load_loop": LOAD_LOOP, "changed_unplaced": CHANGED_UNPLACED, "clone_min_start": CLONE_MIN_START, "migrate_after": MIGRATE_AFTER, "started_role_monitor": STARTED_ROLE_MONITOR, "stopped_monitor": STOPPED_MONITOR, "ops_ref": OPS_REF, "cloned_group_stop": CLONED_GROUP_STOP, "group_room": GROUP_ROOM, "fenced_promoted": FENCED_PROMOTED, "clone_min_stop": CLONE_MIN_STOP, "role_swap": ROLE_SWAP, "dup_monitors": DUP_MONITORS, "cloned_group_history": CLONED_GROUP_HISTORY, "keys": KEYS, "interleave": INTERLEAVE, "notify_order": NOTIFY_ORDER,
         "anti_colocation": ANTI_COLOCATION, "group_move": GROUP_MOVE, "restart": RESTART, "fencing": FENCING,
         "blocked_clone": BLOCKED_CLONE, "unfenceable_group": UNFENCEABLE_GROUP,
         "unclean_stop_notify": UNCLEAN_STOP_NOTIFY}


def test_anti_colocation_orders_the_stop_before_the_start_on_the_same_node():
    g = ours(ANTI_COLOCATION)
    assert ("rsc1_stop_0", "node1") in g[("rsc2_start_0", "node1")]
    # same node only: rsc1's start on node2 does not wait for anything of rsc2 on node1
    assert g[("rsc1_start_0", "node2")] == {("rsc1_stop_0", "node1")}


def test_probes_before_what_waits_for_a_stop():
    g = ours(GROUP_MOVE)
    # the members' stops wait for the other members' probes (d stops before a: "d stop then a stop")
    assert {("d_monitor_0", "node2")} <= g[("a_stop_0", "node1")]
    # the group's stopped waits for every member's probes ("member stop then g stopped")
    assert {("a_monitor_0", "node2"), ("d_monitor_0", "node2")} <= g[("g_stopped_0", "")]
    # rsc3 stops before g (the inverse of "g then rsc3"): g's stop waits for rsc3's probe
    assert ("rsc3_monitor_0", "node2") in g[("g_stop_0", "")]


def test_probe_before_the_stop_of_a_resource_restarting_after_it():
    g = ours(RESTART)
    assert ("rsc1_monitor_0", "node2") in g[("rsc2_stop_0", "node1")]


def test_fencing_one_at_a_time_the_dc_last_and_starts_after_it():
    g = ours(FENCING)
    assert ("stonith-node3-reboot", "node3") in g[("stonith-node4-reboot", "node4")]
    assert ("stonith-node4-reboot", "node4") in g[("stonith-node2-reboot", "node2")]
    # the fence device (requires quorum) was never probed on the lost nodes: it starts after their fencing
    assert {("stonith-node2-reboot", "node2"), ("stonith-node3-reboot", "node3"),
            ("stonith-node4-reboot", "node4")} <= g[("fence_start_0", "node1")]
    # rsc1 (requires quorum) is known on node2 and node3 (probed): only node4's fencing is waited for
    inputs = {k for k in g[("rsc1_start_0", "node1")] if k[0].startswith("stonith")}
    assert inputs == {("stonith-node4-reboot", "node4")}


def test_a_clone_start_no_instance_can_carry_out_is_not_in_the_graph():
    g = ours(BLOCKED_CLONE)
    assert ("c_start_0", "") not in g and ("c_running_0", "") not in g


def test_a_group_stopped_its_members_cannot_reach_is_not_in_the_graph():
    g = ours(UNFENCEABLE_GROUP)
    assert ("g_stopped_0", "") not in g


def test_a_stop_on_an_unclean_node_is_notified():
    g = ours(UNCLEAN_STOP_NOTIFY)
    assert ("c_pre_notify_stop_0", "") in g and ("c_post_notify_stopped_0", "") in g


def test_a_load_ordering_closing_a_loop_is_dropped():
    g = ours(LOAD_LOOP)
    # the newest migrate_to's load ordering is checked first and kept; the older one would close the loop
    assert ("load_stopped_node1", "") in g[("vm2_migrate_to_0", "node2")]
    assert ("load_stopped_node2", "") not in g[("vm1_migrate_to_0", "node1")]


def test_interleaved_clones_keep_their_own_ordering():
    g = ours(INTERLEAVE)
    assert ("A_running_0", "") in g[("B_start_0", "")]
    assert ("a:0_start_0", "node1") in g[("b:0_start_0", "node1")]


def test_after_a_notify_clone_means_after_its_confirmed_post_notifications():
    g = ours(NOTIFY_ORDER)
    assert g[("rsc1_start_0", "node1")] >= {("N_confirmed-post_notify_running_0", "")}
    assert ("N_running_0", "") not in g[("rsc1_start_0", "node1")]
    assert ("N_confirmed-post_notify_running_0", "") in g[("n:0_monitor_10000", "node1")]


def test_cancel_and_shutdown_keys_are_pacemakers():
    """A cancel is keyed by the cancelled operation (rsc_monitor_5000, operation "cancel"), a shutdown by
    its node (do_shutdown-node2)."""
    g = ours(KEYS)
    assert ("rsc1_monitor_5000", "node1") in g and ("do_shutdown-node2", "node2") in g
    assert ("rsc2_stop_0", "node2") in g[("do_shutdown-node2", "node2")]


def test_operations_sharing_a_name_and_interval_are_ignored():
    g = ours(DUP_MONITORS)
    assert ("st:0_promote_0", "node1") in g  # st:0 is promoted ...
    assert not [k for k in g if k[0].endswith("_monitor_5000")]  # ... and neither role's monitor runs


def test_the_promoted_monitor_is_cancelled_before_the_demote():
    g = ours(ROLE_SWAP)
    demote = [k for k in g if k[0].endswith("_demote_0") and k[1] == "node1"]
    assert len(demote) == 1
    inst = demote[0][0].rsplit("_demote_0", 1)[0]
    assert (f"{inst}_monitor_10000", "node1") in g[demote[0]]  # the cancel, keyed by the monitor it cancels
    assert demote[0] in g[(f"{inst}_monitor_11000", "node1")]


def test_a_cancel_comes_after_the_resources_stops():
    """pcmk__schedule_cancel: an operation no longer configured is cancelled after the resource's stops."""
    xml = cib(resources=[primitive("rsc1")], constraints=[location("rsc1", "node1", "-INFINITY")],
              status=[node_state("node1", lrm("rsc1", op("rsc1", "start", call=1),
                                               op("rsc1", "monitor", call=2, interval=5000))), node_state("node2")])
    g = ours(xml)
    assert ("rsc1_stop_0", "node1") in g[("rsc1_monitor_5000", "node1")]


def test_a_clone_whose_stopping_instance_gets_a_required_start_starts():
    g = ours(CLONE_MIN_STOP)
    assert ("A_start_0", "") in g and ("A_running_0", "") in g
    assert not [k for k in g if k[0].startswith("clone-one-or-more")]  # its unrunnable start prints nothing


def test_a_demote_on_a_fenced_node_is_implied_by_the_fencing():
    t = schedule(parse_cib(FENCED_PROMOTED, "test.xml"), NOW)
    demotes = [a for a in t.graph.actions if a.task == "demote"]
    assert demotes and all(a.pseudo for a in demotes)
    g = graph_inputs(t.graph_xml())
    assert ("stonith-node2-reboot", "node2") in g[(demotes[0].key, "")]


def test_a_group_making_room_and_a_removed_resource_on_a_standby_node():
    g = ours(GROUP_ROOM)
    assert ("g_stopped_0", "") in g[("rsc1_start_0", "node3")]  # anti-colocation: after the group stopped
    assert ("g_start_0", "") not in g  # g cannot start: rsc2 cannot (asymmetric mandatory order)
    assert ("rsc3_stop_0", "node2") in g and ("rsc3_delete_0", "node2") not in g


def test_a_cloned_groups_stop_makes_the_clones_stop_required():
    g = ours(CLONED_GROUP_STOP)
    assert ("c_stop_0", "") in g and ("c_stop_0", "") in g[("c_stopped_0", "")]


def test_operations_by_reference():
    g = ours(OPS_REF)
    mons = {k for k in g if k[0] in ("rsc1_monitor_10000", "rsc2_monitor_10000")}
    assert len(mons) == 2


def test_a_stopped_role_monitor_runs_where_the_resource_does_not():
    t = schedule(parse_cib(STOPPED_MONITOR, "test.xml"), NOW)
    mons = {(a.node, a.interval_ms, a.target_rc) for a in t.graph.actions if a.task == "monitor" and a.interval_ms}
    assert mons == {("node1", 30000, None), ("node2", 300000, 7)}
    g = graph_inputs(t.graph_xml())
    assert ("rsc1_monitor_0", "node2") in g[("rsc1_monitor_300000", "node2")]


def test_a_started_role_monitor_does_not_run_on_promotable_instances():
    g = ours(STARTED_ROLE_MONITOR)
    assert [k for k in g if k[0].endswith("_start_0") and k[1]]  # instances start ...
    assert not [k for k in g if k[0].endswith("_monitor_300000")]  # ... without that monitor


def test_a_migration_waits_for_what_its_start_waits_for():
    """pcmk__order_migration_equivalents: "rsc1 start then vm start" also orders rsc1's start before vm's
    migrate_to; and migrate_to takes the start's needs: after the fencing (order_start_vs_fencing)."""
    g = ours(MIGRATE_AFTER)
    assert {("rsc1_start_0", "node1"), ("stonith-node3-reboot", "node3")} <= g[("vm_migrate_to_0", "node1")] \
        or {("rsc1_start_0", "node2"), ("stonith-node3-reboot", "node3")} <= g[("vm_migrate_to_0", "node1")]


def test_a_migration_waits_for_the_stop_and_the_migration_ordered_before_it():
    """pcmk__order_migration_equivalents beyond starts: "A stop then B stop" orders A's stop before B's
    migrate_to; "A start then B start" with both migrating orders A's migrate_from before B's migrate_to."""
    g = ours(MIGRATE_AFTER_STOP)
    assert ("A_stop_0", "node1") in g[("B_migrate_to_0", "node1")]
    g = ours(MIGRATE_BOTH)
    assert ("A_migrate_from_0", "node2") in g[("B_migrate_to_0", "node1")]
    assert ("A_start_0", "node2") not in g[("B_migrate_to_0", "node1")]  # A's start is part of its migration


def test_a_clone_min_ordering_reaches_the_instances_through_their_clone():
    g = ours(CLONE_MIN_START)
    pseudo = [k for k in g if k[0].startswith("clone-one-or-more")]
    assert len(pseudo) == 1 and pseudo[0] in g[("B_start_0", "")]
    assert not [k for k, inputs in g.items() if k[0].startswith("b:") and pseudo[0] in inputs]


def test_a_changed_member_that_cannot_stay_makes_its_groups_start_required():
    g = ours(CHANGED_UNPLACED)
    assert ("c_stop_0", "node1") in g and ("g_start_0", "") in g


def notify_meta(graph_xml: str):
    """{(operation key, node): {CRM_meta_notify_* / clone attributes}} of a graph's non-pseudo actions."""
    import xml.etree.ElementTree as ET

    out = {}
    for syn in ET.fromstring(graph_xml).iter("synapse"):
        a = list(syn.find("action_set"))[0]
        attrs = a.find("attributes")
        if a.tag == "pseudo_event" or attrs is None:
            continue
        key = (a.get("internal_operation_key") or a.get("operation_key"), a.get("on_node") or "")
        meta = {k: " ".join(v.split()) for k, v in attrs.attrib.items()
                if k.startswith("CRM_meta_notify") or k == "CRM_meta_clone"}
        if meta:
            out[key] = meta
    return out


def test_a_removed_cloned_group_instance_takes_every_member_history_of_a_node():
    """find_anonymous_clone: a removed instance created for one member's history on a node is the
    inactive instance the other member's history there maps to (no second removed instance)."""
    t = schedule(parse_cib(CLONED_GROUP_HISTORY, "test.xml"), NOW)
    assert sorted(t.placement) == ["a:0", "a:1", "a:2", "b:0", "b:1", "b:2"]
    metas = [m for m in notify_meta(t.graph_xml()).values() if "CRM_meta_notify_inactive_resource" in m]
    assert metas and all(m["CRM_meta_notify_inactive_resource"] == "a:2 b:2" for m in metas)


def test_a_stop_on_an_unclean_node_is_in_the_notification_variables():
    t = schedule(parse_cib(UNCLEAN_STOP_NOTIFY, "test.xml"), NOW)
    meta = notify_meta(t.graph_xml())[("d:0_pre_notify_stop_0", "node1")]
    # d:0 stops on node1 (no quorum), d:1 "stops" on node2, lost and not fenceable
    assert meta["CRM_meta_notify_stop_resource"] == "d:0 d:1"
    assert meta["CRM_meta_notify_stop_uname"] == "node1 node2"


@needs_crm_simulate
@pytest.mark.parametrize("name", ["cloned_group_history", "unclean_stop_notify"])
def test_notification_variables_are_crm_simulates(name, tmp_path):
    assert notify_meta(schedule(parse_cib(CASES[name], "test.xml"), NOW).graph_xml()) \
        == notify_meta(crm_simulate_graph(CASES[name], str(tmp_path), NOW))


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(CASES))
def test_graph_inputs_are_crm_simulates(name, tmp_path):
    assert ours(CASES[name]) == graph_inputs(crm_simulate_graph(CASES[name], str(tmp_path), NOW))
