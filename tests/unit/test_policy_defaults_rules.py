"""rsc_expression / op_expression in rsc_defaults and op_defaults rules (Pacemaker's pe__eval_rsc_expr and
pe__eval_op_expr): every expected summary is what crm_simulate 2.1.5 printed for the same CIB (the
crm_simulate-marked test checks them again)."""
from __future__ import annotations

from tests.unit.crmsim import case_tests
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op


def prim(rid, prov="heartbeat", mon=False):
    ops = f'<operations><op id="{rid}-mon" name="monitor" interval="10s"/></operations>' if mon else ""
    return f'<primitive id="{rid}" class="ocf" provider="{prov}" type="Dummy">{ops}</primitive>'


def history(rid, prov="heartbeat", failed_monitor=False):
    ops = [op(rid, "start", call=1)]
    if failed_monitor:
        ops.append(op(rid, "monitor", rc=1, call=2, interval=10000, target=0))
    return lrm(rid, *ops, agent=("ocf", prov, "Dummy"))


def world(defaults: str, monitors: bool = False) -> str:
    """rsc1 (ocf:heartbeat:Dummy) and rsc2 (ocf:pacemaker:Dummy) both on node1 (their monitors failed when
    `monitors`), node2 empty; `defaults` is the rsc_defaults / op_defaults section."""
    x = cib(resources=[prim("rsc1", mon=monitors), prim("rsc2", "pacemaker", mon=monitors)],
            status=[node_state("node1", history("rsc1", failed_monitor=monitors),
                               history("rsc2", "pacemaker", failed_monitor=monitors)), node_state("node2")])
    x = x.replace('validate-with="pacemaker-3.0"', 'validate-with="pacemaker-3.5"')
    return x.replace("</constraints>", "</constraints>" + defaults)


def rsc_defaults(terms: str, nvpair: str, op: str = "and") -> str:
    return (f'<rsc_defaults><meta_attributes id="rd1"><rule id="rd1-r" score="INFINITY" boolean-op="{op}">{terms}'
            f'</rule>{nvpair}</meta_attributes></rsc_defaults>')


def op_defaults(terms: str, nvpair: str) -> str:
    return (f'<op_defaults><meta_attributes id="od1"><rule id="od1-r" score="INFINITY">{terms}</rule>{nvpair}'
            '</meta_attributes></op_defaults>')


STOPPED = '<nvpair id="rd1-tr" name="target-role" value="Stopped"/>'
IGNORE = '<nvpair id="od1-of" name="on-fail" value="ignore"/>'

CASES = {
    # class, provider and type all match rsc1 only
    "rsc-full": (lambda: world(rsc_defaults('<rsc_expression id="e" class="ocf" provider="heartbeat" type="Dummy"/>',
                                            STOPPED)),
                 ["Stop rsc1 (node1) due to node availability"]),
    # no provider in the expression matches only resources without one: nothing is stopped (rsc2 spreads)
    "rsc-class-only": (lambda: world(rsc_defaults('<rsc_expression id="e" class="ocf"/>', STOPPED)),
                       ["Move rsc2 (node1 -> node2)"]),
    "rsc-type-only": (lambda: world(rsc_defaults('<rsc_expression id="e" type="Dummy"/>', STOPPED)),
                      ["Move rsc2 (node1 -> node2)"]),
    "rsc-provider": (lambda: world(rsc_defaults('<rsc_expression id="e" provider="pacemaker"/>', STOPPED)),
                     ["Stop rsc2 (node1) due to node availability"]),
    # a node-attribute expression has no node to look at in rsc_defaults: false
    "rsc-or-uname": (lambda: world(rsc_defaults('<rsc_expression id="e" provider="pacemaker"/><expression id="e2" '
                                                'attribute="#uname" operation="eq" value="node1"/>', STOPPED, "or")),
                     ["Stop rsc2 (node1) due to node availability"]),
    "rsc-is-managed": (lambda: world(rsc_defaults('<rsc_expression id="e" provider="pacemaker"/>',
                                                  '<nvpair id="rd1-im" name="is-managed" value="false"/>'), True),
                       ["Recover rsc1 (node1)"]),
    # on-fail=ignore from op_defaults for the 10 s monitors: no recovery (rsc2 still spreads)
    "op-name-interval": (lambda: world(op_defaults('<op_expression id="e" name="monitor" interval="10s"/>', IGNORE),
                                       True),
                         ["Move rsc2 (node1 -> node2)"]),
    "op-name-any-interval": (lambda: world(op_defaults('<op_expression id="e" name="monitor"/>', IGNORE), True),
                             ["Move rsc2 (node1 -> node2)"]),
    "op-other-interval": (lambda: world(op_defaults('<op_expression id="e" name="monitor" interval="20s"/>', IGNORE),
                                        True),
                          ["Recover rsc1 (node1)", "Recover rsc2 (node1 -> node2)"]),
    "op-defaults-rsc": (lambda: world(op_defaults('<rsc_expression id="e" provider="pacemaker"/>', IGNORE), True),
                        ["Move rsc2 (node1 -> node2)", "Recover rsc1 (node1)"]),
    "op-defaults-both": (lambda: world(op_defaults('<rsc_expression id="e" type="Dummy"/><op_expression id="e3" '
                                                   'name="monitor"/>',
                                                   '<nvpair id="od1-of" name="on-fail" value="block"/>'), True),
                         ["Recover rsc1 (node1)", "Recover rsc2 (node1 -> node2)"]),
}


test_defaults_rules, test_against_crm_simulate = case_tests(CASES)
