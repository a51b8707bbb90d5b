"""Live migration with other resources around it: dependents that move with a migrating resource or
migrate too, resources ordered before or after it (not restarted for the move), groups of migratable
members, partial and completed migrations on several nodes. Every expected summary is what crm_simulate
2.1.5 printed for the same CIB (the crm_simulate-marked test checks them again)."""
from __future__ import annotations

from tests.unit.crmsim import case_tests
from tests.unit.test_policy_scheduler import cib, group, lrm, node_state, op, primitive, running

M = {"allow-migrate": "true"}


def mig(rid):
    return primitive(rid, meta=M)


def col(cid, rsc, with_rsc, score="INFINITY"):
    return f'<rsc_colocation id="{cid}" rsc="{rsc}" with-rsc="{with_rsc}" score="{score}"/>'


def loc(lid, rsc, node, score="100"):
    return f'<rsc_location id="{lid}" rsc="{rsc}" node="{node}" score="{score}"/>'


def order(oid, first, then, extra=""):
    return f'<rsc_order id="{oid}" first="{first}" then="{then}"{extra}/>'


def migrate_op(rid, task, source, target, call):
    return (f'<lrm_rsc_op id="{rid}_{task}_0" operation_key="{rid}_{task}_0" operation="{task}" interval="0" '
            f'call-id="{call}" rc-code="0" op-status="0" '
            f'transition-key="{call}:1:0:00000000-0000-0000-0000-000000000000" '
            f'op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8" migrate_source="{source}" migrate_target="{target}"/>')


def world(resources, constraints=(), n1=(), n2=(), n3=()):
    x = cib(nodes=("node1", "node2", "node3"), resources=resources, constraints=constraints,
            status=[node_state("node1", *n1), node_state("node2", *n2), node_state("node3", *n3)])
    return x.replace("<cib ", '<cib crm_feature_set="3.16.1" ', 1)


BOTH_ON_1 = [running("rsc1"), running("rsc2")]
MIGRATE = "Migrate rsc1 (node1 -> node2)"
STARTED_MIGRATING = [lrm("rsc1", op("rsc1", "start", call=1), migrate_op("rsc1", "migrate_to", "node1", "node2", 2))]
FAILED_FROM = migrate_op("rsc1", "migrate_from", "node1", "node2", 3).replace('rc-code="0"', 'rc-code="1"')
STOPPED_AFTER = op("rsc1", "stop", call=4)
CASES = {
    "dependent-moves": (lambda: world([mig("rsc1"), primitive("rsc2")], [loc("l", "rsc1", "node2"),
                                                                         col("c", "rsc2", "rsc1")], BOTH_ON_1),
                        [MIGRATE, "Move rsc2 (node1 -> node2)"]),
    "dependent-migrates-too": (lambda: world([mig("rsc1"), mig("rsc2")], [loc("l", "rsc1", "node2"),
                                                                          col("c", "rsc2", "rsc1"),
                                                                          order("o", "rsc1", "rsc2")], BOTH_ON_1),
                               [MIGRATE, "Migrate rsc2 (node1 -> node2)"]),
    "dependent-cannot-migrate": (lambda: world([mig("rsc1"), primitive("rsc2")],
                                               [loc("l", "rsc1", "node2"), col("c", "rsc2", "rsc1"),
                                                order("o", "rsc1", "rsc2")], BOTH_ON_1),
                                 [MIGRATE, "Move rsc2 (node1 -> node2)"]),
    "primary-follows-migrating": (lambda: world([mig("rsc1"), mig("rsc2")],
                                                [loc("l", "rsc2", "node2"), col("c", "rsc1", "rsc2"),
                                                 order("o", "rsc2", "rsc1")], BOTH_ON_1),
                                  [MIGRATE, "Migrate rsc2 (node1 -> node2)"]),
    "primary-plain-dependent-migrates": (lambda: world([mig("rsc1"), primitive("rsc2")],
                                                       [loc("l", "rsc1", "node2"), col("c", "rsc1", "rsc2")],
                                                       BOTH_ON_1),
                                         [MIGRATE, "Move rsc2 (node1 -> node2)"]),
    # ordered after a migrating resource: not restarted (migratable or not, same node or not)
    "then-migratable-stays": (lambda: world([mig("rsc1"), mig("rsc2")], [loc("l", "rsc1", "node2"),
                                                                         order("o", "rsc1", "rsc2")], BOTH_ON_1),
                              [MIGRATE]),
    "then-plain-stays": (lambda: world([mig("rsc1"), primitive("rsc2")], [loc("l", "rsc1", "node2"),
                                                                          order("o", "rsc1", "rsc2")], BOTH_ON_1),
                         [MIGRATE]),
    "then-elsewhere-stays": (lambda: world([mig("rsc1"), mig("rsc2")], [loc("l", "rsc1", "node2"),
                                                                        order("o", "rsc1", "rsc2")],
                                           [running("rsc1")], (), [running("rsc2")]),
                             [MIGRATE]),
    "then-optional": (lambda: world([mig("rsc1"), mig("rsc2")], [loc("l", "rsc1", "node2"),
                                                                 order("o", "rsc1", "rsc2", ' kind="Optional"')],
                                    BOTH_ON_1),
                      [MIGRATE]),
    "first-stays": (lambda: world([mig("rsc1"), primitive("rsc2")], [loc("l", "rsc1", "node2"),
                                                                     order("o", "rsc2", "rsc1")], BOTH_ON_1),
                    [MIGRATE]),
    # ... but one that cannot migrate and is moved itself keeps it from migrating: it moves
    "first-moves": (lambda: world([mig("rsc1"), primitive("rsc2")], [loc("l", "rsc1", "node2"),
                                                                     loc("l2", "rsc2", "node3"),
                                                                     order("o", "rsc2", "rsc1")], BOTH_ON_1),
                    ["Move rsc1 (node1 -> node2) due to unrunnable rsc2 stop", "Move rsc2 (node1 -> node3)"]),
    "first-starts": (lambda: world([mig("rsc0"), mig("rsc1")], [loc("l", "rsc1", "node2"),
                                                                order("o", "rsc0", "rsc1")], [running("rsc1")]),
                     [MIGRATE, "Start rsc0 (node1)"]),
    "both-migrate-in-order": (lambda: world([mig("rsc1"), mig("rsc2")],
                                            [loc("l", "rsc1", "node2"), loc("l2", "rsc2", "node2"),
                                             order("o", "rsc1", "rsc2")], BOTH_ON_1),
                              [MIGRATE, "Migrate rsc2 (node1 -> node2)"]),
    "group-of-migratable": (lambda: world([group("g", mig("rsc1"), mig("rsc2"))], [loc("l", "g", "node2")],
                                          BOTH_ON_1),
                            [MIGRATE, "Migrate rsc2 (node1 -> node2)"]),
    # partial migration (migrate_to done, migrate_from not yet)
    "partial-same-target": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node2")], STARTED_MIGRATING),
                            [MIGRATE]),
    "partial-other-target": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node3")], STARTED_MIGRATING),
                             ["Migrate rsc1 (node1 -> node3)"]),
    "partial-back-to-source": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node1")], STARTED_MIGRATING), []),
    # completed on node2 but node1 not stopped yet (dangling): no further migration, a move
    "completed-then-elsewhere": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node3")], STARTED_MIGRATING,
                                               [lrm("rsc1", migrate_op("rsc1", "migrate_from", "node1", "node2", 3))]),
                                 ["Move rsc1 (node2 -> node3)"]),
    "completed-then-partial-again": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node3")], STARTED_MIGRATING,
                                                   [lrm("rsc1", migrate_op("rsc1", "migrate_from", "node1", "node2", 3),
                                                        migrate_op("rsc1", "migrate_to", "node2", "node3", 4))]),
                                     ["Move rsc1 (node2 -> node3)"]),
    # migrate_from failed on node2: with a later stop there the resource is not active on node2, it failed on
    # node1 and cannot migrate (unpack_migrate_to_success: newer state on the target); without one it is
    # active on both
    "failed-migrate-from-then-stopped": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node1", "-INFINITY")],
                                                       STARTED_MIGRATING, [lrm("rsc1", FAILED_FROM, STOPPED_AFTER)]),
                                         ["Recover rsc1 (node1 -> node2)"]),
    "failed-migrate-from-then-stopped-stays": (lambda: world([mig("rsc1")], (), STARTED_MIGRATING,
                                                             [lrm("rsc1", FAILED_FROM, STOPPED_AFTER)]),
                                               ["Recover rsc1 (node1)"]),
    "failed-migrate-from-active-on-both": (lambda: world([mig("rsc1")], [loc("l", "rsc1", "node1", "-INFINITY")],
                                                         STARTED_MIGRATING, [lrm("rsc1", FAILED_FROM)]),
                                           ["Recover rsc1 (node2)"]),
}


test_migration_chains, test_against_crm_simulate = case_tests(CASES)
