"""Anti-colocation of groups and colocation with a group's inner members (either side). Every expected
summary is what crm_simulate 2.1.5 printed for the same CIB (the crm_simulate-marked test checks them)."""
from __future__ import annotations

from tests.unit.crmsim import case_tests
from tests.unit.test_policy_scheduler import cib, group, node_state, primitive, running

G1 = group("g1", primitive("a1"), primitive("a2"))
G2 = group("g2", primitive("b1"), primitive("b2"))
RSC3 = primitive("rsc3")


def col(rsc, with_rsc, score="INFINITY"):
    return f'<rsc_colocation id="c-{rsc}-{with_rsc}" rsc="{rsc}" with-rsc="{with_rsc}" score="{score}"/>'


def loc(rsc, node, score):
    return f'<rsc_location id="l-{rsc}-{node}" rsc="{rsc}" node="{node}" score="{score}"/>'


def world(resources, constraints, n1=(), n2=(), n3=None):
    nodes = ("node1", "node2") if n3 is None else ("node1", "node2", "node3")
    status = [node_state("node1", *n1), node_state("node2", *n2)] + ([node_state("node3", *n3)] if n3 is not None
                                                                      else [])
    x = cib(nodes=nodes, resources=resources, constraints=constraints, status=status)
    return x.replace("<cib ", '<cib crm_feature_set="3.16.1" ', 1)


G1_ON_1 = [running("a1"), running("a2")]
ANTI = col("g2", "g1", "-INFINITY")
CASES = {
    "anti-fresh": (lambda: world([G1, G2], [ANTI]),
                   ["Start a1 (node1)", "Start a2 (node1)", "Start b1 (node2)", "Start b2 (node2)"]),
    "anti-one-running": (lambda: world([G1, G2], [ANTI], G1_ON_1), ["Start b1 (node2)", "Start b2 (node2)"]),
    "anti-dependent-prefers-primary-node": (lambda: world([G1, G2], [ANTI, loc("g2", "node1", "100")], G1_ON_1),
                                            ["Move a1 (node1 -> node2)", "Move a2 (node1 -> node2)",
                                             "Start b1 (node1)", "Start b2 (node1)"]),
    "anti-optional": (lambda: world([G1, G2], [col("g2", "g1", "-100"), loc("g2", "node1", "200")], G1_ON_1),
                      ["Move a1 (node1 -> node2)", "Move a2 (node1 -> node2)", "Start b1 (node1)",
                       "Start b2 (node1)"]),
    "anti-both-prefer-node1": (lambda: world([G1, G2], [ANTI, loc("g1", "node1", "100"), loc("g2", "node1", "200")],
                                             [running("b1"), running("b2")], G1_ON_1, []), []),
    "anti-primary-follows-third": (lambda: world([G1, G2, RSC3], [ANTI, col("g1", "rsc3")], [running("rsc3")],
                                                 G1_ON_1, [running("b1"), running("b2")]),
                                   ["Move a1 (node2 -> node1)", "Move a2 (node2 -> node1)"]),
    "with-inner-member": (lambda: world([G1, RSC3], [col("rsc3", "a2")], G1_ON_1, [running("rsc3")]),
                          ["Move rsc3 (node2 -> node1)"]),
    "anti-inner-member": (lambda: world([G1, RSC3], [col("rsc3", "a2", "-INFINITY")], G1_ON_1 + [running("rsc3")]),
                          ["Move rsc3 (node1 -> node2)"]),
    "inner-member-with": (lambda: world([G1, RSC3], [col("a2", "rsc3")], G1_ON_1, [running("rsc3")]),
                          ["Move rsc3 (node2 -> node1)"]),
    "inner-member-anti": (lambda: world([G1, RSC3], [col("a2", "rsc3", "-INFINITY")], G1_ON_1 + [running("rsc3")]),
                          ["Move rsc3 (node1 -> node2)"]),
    "first-member-with": (lambda: world([G1, RSC3], [col("a1", "rsc3")], G1_ON_1, [running("rsc3")]),
                          ["Move a1 (node1 -> node2)", "Move a2 (node1 -> node2)"]),
    "member-with-other-groups-member": (lambda: world([G1, G2], [col("b1", "a2")], G1_ON_1,
                                                      [running("b1"), running("b2")]),
                                        ["Move b1 (node2 -> node1)", "Move b2 (node2 -> node1)"]),
    "member-anti-other-groups-member": (lambda: world([G1, G2], [col("b2", "a1", "-INFINITY")],
                                                      G1_ON_1 + [running("b1"), running("b2")]),
                                        ["Move b1 (node1 -> node2)", "Move b2 (node1 -> node2)"]),
    "with-inner-member-pinned": (lambda: world([G1, RSC3], [col("rsc3", "a2"), loc("rsc3", "node2", "INFINITY")],
                                               G1_ON_1, [running("rsc3")]),
                                 ["Move a1 (node1 -> node2)", "Move a2 (node1 -> node2)"]),
    "inner-member-with-group-preference": (lambda: world([G1, RSC3], [col("a2", "rsc3"), loc("g1", "node1", "500")],
                                                         G1_ON_1, [running("rsc3")]),
                                           ["Move rsc3 (node2 -> node1)"]),
}


test_group_colocation, test_against_crm_simulate = case_tests(CASES)
