"""Unfencing (a fence device with provides=unfencing, or a resource with requires=unfencing) and fence
devices or other resources active on several nodes, one of them lost. Every expected summary is what
crm_simulate 2.1.5 printed for the same CIB (the crm_simulate-marked test checks them again)."""
from __future__ import annotations

from tests.unit.crmsim import case_tests
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op, primitive, running


def fence(rid, meta=None):
    m = ""
    if meta:
        m = (f'<meta_attributes id="{rid}-m">'
             + "".join(f'<nvpair id="{rid}-m-{k}" name="{k}" value="{v}"/>' for k, v in meta.items())
             + "</meta_attributes>")
    return f'<primitive id="{rid}" class="stonith" type="fence_dummy">{m}</primitive>'


def fence_running(rid):
    return lrm(rid, op(rid, "start"), agent=("stonith", "", "fence_dummy")).replace(' provider=""', "")


def fence_probed(rid):
    return lrm(rid, op(rid, "monitor", rc=7), agent=("stonith", "", "fence_dummy")).replace(' provider=""', "")


UNFENCED = {"#node-unfenced": "1700000000"}
PROVIDES = {"provides": "unfencing"}


def world(resources, n1=(), n2=(), n3=None, attrs1=None, attrs2=None):
    """node1 and node2 online (node3 offline with history, when given), fencing enabled."""
    nodes = ("node1", "node2") if n3 is None else ("node1", "node2", "node3")
    status = [node_state("node1", *n1, attrs=attrs1), node_state("node2", *n2, attrs=attrs2)]
    if n3 is not None:
        status.append(node_state("node3", *n3, online=False))
    x = cib(nodes=nodes, resources=resources, status=status, options={"stonith-enabled": "true"})
    return x.replace("<cib ", '<cib crm_feature_set="3.16.1" ', 1)


LOST = "Fence (reboot) node3 'peer is no longer part of the cluster'"
CASES = {
    # nothing probed yet: both nodes are unfenced before the first probe that needs it
    "provides-unfencing": (lambda: world([fence("st", PROVIDES), primitive("rsc1")]),
                           ["Fence (on) node1 'required by st monitor'", "Fence (on) node2 'required by st monitor'",
                            "Start rsc1 (node2)", "Start st (node1)"]),
    "provides-after-resources": (lambda: world([primitive("rsc1"), fence("st", PROVIDES)]),
                                 ["Fence (on) node1 'required by rsc1 monitor'",
                                  "Fence (on) node2 'required by rsc1 monitor'", "Start rsc1 (node1)",
                                  "Start st (node2)"]),
    "requires-unfencing": (lambda: world([fence("st"), primitive("rsc1", meta={"requires": "unfencing"})]),
                           ["Fence (on) node1 'required by st monitor'", "Fence (on) node2 'required by st monitor'",
                            "Start rsc1 (node2)", "Start st (node1)"]),
    "requires-unfencing-first": (lambda: world([primitive("rsc0", meta={"requires": "unfencing"}), fence("st"),
                                                primitive("rsc1")]),
                                 ["Fence (on) node1 'required by rsc0 monitor'",
                                  "Fence (on) node2 'required by rsc0 monitor'", "Start rsc0 (node1)",
                                  "Start rsc1 (node1)", "Start st (node2)"]),
    "requires-quorum-still-probes-device": (lambda: world([fence("st", PROVIDES),
                                                           primitive("rsc1", meta={"requires": "quorum"})]),
                                            ["Fence (on) node1 'required by st monitor'",
                                             "Fence (on) node2 'required by st monitor'", "Start rsc1 (node2)",
                                             "Start st (node1)"]),
    # node1 unfenced already; node2 not (attribute missing or 0)
    "one-node-unfenced": (lambda: world([fence("st", PROVIDES), primitive("rsc1")], n1=[fence_running("st")],
                                        attrs1=UNFENCED),
                          ["Fence (on) node2 'required by st monitor'", "Start rsc1 (node2)"]),
    "both-unfenced": (lambda: world([fence("st", PROVIDES), primitive("rsc1")],
                                    n1=[fence_running("st"), running("rsc1")], n2=[fence_probed("st")],
                                    attrs1=UNFENCED, attrs2=UNFENCED),
                      ["Move rsc1 (node1 -> node2)"]),
    "resource-probe-needs-it": (lambda: world([fence("st", PROVIDES), primitive("rsc1")],
                                              n1=[fence_running("st"), running("rsc1")], n2=[fence_probed("st")],
                                              attrs1=UNFENCED),
                                ["Fence (on) node2 'required by rsc1 monitor'", "Move rsc1 (node1 -> node2)"]),
    "unfenced-zero": (lambda: world([fence("st", PROVIDES), primitive("rsc1")],
                                    n1=[fence_running("st"), running("rsc1")], n2=[fence_probed("st")],
                                    attrs1=UNFENCED, attrs2={"#node-unfenced": "0"}),
                      ["Fence (on) node2 'required by rsc1 monitor'", "Move rsc1 (node1 -> node2)"]),
    # a resource needing unfencing active on the node being unfenced stops before and starts after
    "active-resource-restarts": (lambda: world([fence("st", PROVIDES), primitive("rsc1"), primitive("rsc2")],
                                               n1=[fence_running("st"), running("rsc1")],
                                               n2=[fence_probed("st"), running("rsc2")], attrs1=UNFENCED),
                                 ["Fence (on) node2 'required by rsc1 monitor'", "Move rsc1 (node1 -> node2)",
                                  "Restart rsc2 (node2) due to required stonith"]),
    "explicit-requires-need-no-unfencing": (lambda: world([fence("st", PROVIDES),
                                                           primitive("rsc1", meta={"requires": "fencing"}),
                                                           primitive("rsc2", meta={"requires": "quorum"})],
                                                          n1=[fence_running("st"), running("rsc1")],
                                                          n2=[fence_probed("st"), running("rsc2")], attrs1=UNFENCED),
                                            ["Move rsc1 (node1 -> node2)"]),
    "offline-node-not-unfenced": (lambda: world([fence("st", PROVIDES), primitive("rsc1")], n1=[fence_running("st")],
                                                n2=[fence_probed("st")], n3=[], attrs1=UNFENCED,
                                                attrs2={"#node-unfenced": "1"}),
                                  [LOST, "Start rsc1 (node2)"]),
    # a fence device (requires quorum) active on two nodes restarts ...
    "device-multiply-active": (lambda: world([fence("st"), primitive("rsc1")], n1=[fence_running("st")],
                                             n2=[fence_running("st")]),
                               ["Restart st (node1)", "Start rsc1 (node2)"]),
    "device-multiply-active-block": (lambda: world([fence("st", {"multiple-active": "block"}), primitive("rsc1")],
                                                   n1=[fence_running("st")], n2=[fence_running("st")]),
                                     ["Start rsc1 (node2)"]),
    # ... but not when the other copy is on a node being fenced: fencing stops that one
    "device-on-lost-node": (lambda: world([fence("st"), primitive("rsc1")], n1=[fence_running("st")], n2=[],
                                          n3=[fence_running("st")]),
                            [LOST, "Start rsc1 (node2)"]),
    "device-and-resource-on-lost-node": (lambda: world([fence("st"), primitive("rsc1")],
                                                       n1=[fence_running("st"), running("rsc1")],
                                                       n2=[running("rsc1")], n3=[fence_running("st")]),
                                         [LOST, "Move rsc1 (node1 -> node2)"]),
    "quorum-resource-on-lost-node": (lambda: world([fence("st"), primitive("rsc1", meta={"requires": "quorum"})],
                                                   n1=[running("rsc1")], n2=[fence_running("st")],
                                                   n3=[running("rsc1")]),
                                     [LOST]),
    "fencing-resource-on-lost-node": (lambda: world([fence("st"), primitive("rsc1")], n1=[running("rsc1")],
                                                    n2=[fence_running("st")], n3=[running("rsc1")]),
                                      [LOST, "Restart rsc1 (node1)"]),
}


test_unfencing, test_against_crm_simulate = case_tests(CASES)
