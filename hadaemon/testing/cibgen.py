"""Seeded random CIBs within the scheduler's supported subset, for differential, property and bench runs."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Tuple

INF = "INFINITY"
UUID = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
# Pacemaker 2.1.5's feature set. On <cib> it matters: without it (or below 3.0.13) the scheduler
# only reads legacy fail counts ("fail-count-RSC"), not per-operation ones ("fail-count-RSC#start_0").
FEATURE_SET = "3.16.1"
# Pacemaker's op-digest of a parameter-less agent: md5 of " <parameters/>\n" for non-recurring ops, and
# of " <parameters CRM_meta_timeout="20000"/>\n" for a recurring op with the default 20 s timeout.
DIGEST = {0: "f2317cad3d54cec5d7d7aa7d0bf35cf8", 10000: "4811cef7f7f94e3a35a70be7916cb2fd"}
EPOCH = 1700000000  # last-rc-change of generated history; no failure-timeout is ever generated


@dataclass
class GenNode:
    """A node and how the status section shows it."""

    name: str
    nid: str
    state: str = "online"  # online | offline (clean, expected down) | unclean (expected member, lost)
    standby: bool = False
    attrs: Dict[str, str] = field(default_factory=dict)

    @property
    def can_run(self) -> bool:
        return self.state == "online" and not self.standby


@dataclass
class GenLocation:
    id: str
    rsc: str
    score: str
    nodes: FrozenSet[str]  # the nodes the constraint applies to (a rule is evaluated here)
    xml: str


@dataclass
class GeneratedCib:
    """A generated CIB: its XML and the model it was made from (what the property tests check)."""

    seed: int
    nodes: List[GenNode]
    groups: Dict[str, List[str]]  # group id -> member ids, in order
    top: List[str]  # top-level resource ids (primitives and groups) in XML order
    primitives: List[str]
    locations: List[GenLocation] = field(default_factory=list)
    colocations: List[Tuple[str, str, str, str]] = field(default_factory=list)  # id, rsc, with-rsc, score
    orders: List[Tuple[str, str, str, str, bool]] = field(default_factory=list)  # id, first, then, kind, symm
    running: Dict[str, str] = field(default_factory=dict)  # primitive -> node in the status history
    stonith: bool = False
    xml: str = ""

    def members(self, rsc: str) -> List[str]:
        return self.groups.get(rsc, [rsc])

    def node(self, name: str) -> GenNode:
        return next(n for n in self.nodes if n.name == name)


def _nvset(tag: str, sid: str, pairs: Dict[str, str]) -> str:
    if not pairs:
        return ""
    body = "".join(f'<nvpair id="{sid}-{k}" name="{k}" value="{v}"/>' for k, v in pairs.items())
    return f'<{tag} id="{sid}">{body}</{tag}>'


def _primitive(rid: str, agent: Tuple[str, str], meta: Dict[str, str], monitor: bool) -> str:
    ops = (f'<operations><op id="{rid}-monitor-10s" name="monitor" interval="10s"/></operations>'
           if monitor else "")
    return (f'<primitive id="{rid}" class="ocf" provider="{agent[0]}" type="{agent[1]}">'
            f'{_nvset("meta_attributes", rid + "-meta", meta)}{ops}</primitive>')


def _op(rid: str, key_id: str, task: str, interval: int, call: int, rc: int, target: int) -> str:
    key = f"{call}:1:{target}:{UUID}"
    return (f'<lrm_rsc_op id="{key_id}" operation_key="{rid}_{task}_{interval}" operation="{task}"'
            f' crm-debug-origin="cibgen" crm_feature_set="{FEATURE_SET}" transition-key="{key}"'
            f' transition-magic="0:{rc};{key}" exit-reason="" call-id="{call}" rc-code="{rc}" op-status="0"'
            f' interval="{interval}" last-rc-change="{EPOCH}" exec-time="0" queue-time="0"'
            f' op-digest="{DIGEST[interval]}"/>')


class _Status:
    """Builds lrm history per node: probes, starts, recurring monitors, failures and fail-counts."""

    def __init__(self, agents: Dict[str, Tuple[str, str]], monitors: Dict[str, bool]):
        self.agents, self.monitors = agents, monitors
        self.lrm: Dict[str, List[str]] = {}
        self.failcounts: Dict[str, Dict[str, str]] = {}
        self.call = 0

    def _rsc(self, node: str, rid: str, ops: List[str]):
        prov, typ = self.agents[rid]
        self.lrm.setdefault(node, []).append(
            f'<lrm_resource id="{rid}" class="ocf" provider="{prov}" type="{typ}">{"".join(ops)}</lrm_resource>')

    def _next(self) -> int:
        self.call += 1
        return self.call

    def probed_stopped(self, node: str, rid: str):
        self._rsc(node, rid, [_op(rid, f"{rid}_last_0", "monitor", 0, self._next(), 7, 7)])

    def running(self, node: str, rid: str, failed_monitor: bool = False):
        ops = [_op(rid, f"{rid}_last_0", "start", 0, self._next(), 0, 0)]
        if self.monitors[rid]:
            rc = 7 if failed_monitor else 0
            call = self._next()
            ops.append(_op(rid, f"{rid}_monitor_10000", "monitor", 10000, call, rc, 0))
            if failed_monitor:
                ops.append(_op(rid, f"{rid}_last_failure_0", "monitor", 10000, call, rc, 0))
                self.fail(node, rid, "monitor_10000", "1")
        self._rsc(node, rid, ops)

    def failed_start(self, node: str, rid: str):
        call = self._next()
        self._rsc(node, rid, [_op(rid, f"{rid}_last_0", "start", 0, call, 1, 0),
                              _op(rid, f"{rid}_last_failure_0", "start", 0, call, 1, 0)])
        self.fail(node, rid, "start_0", INF)

    def fail(self, node: str, rid: str, op: str, count: str):
        fc = self.failcounts.setdefault(node, {})
        fc[f"fail-count-{rid}#{op}"] = count
        fc[f"last-failure-{rid}#{op}"] = str(EPOCH)

    def node_state(self, n: GenNode) -> str:
        if n.state == "online":
            attrs = 'in_ccm="true" crmd="online" join="member" expected="member"'
        elif n.state == "unclean":
            attrs = 'in_ccm="false" crmd="offline" join="down" expected="member"'
        else:
            attrs = 'in_ccm="false" crmd="offline" join="down" expected="down"'
        inner = ""
        fc = self.failcounts.get(n.name)
        if fc:
            body = "".join(f'<nvpair id="status-{n.nid}-{k.replace("#", ".")}" name="{k}" value="{v}"/>'
                           for k, v in sorted(fc.items()))
            inner += (f'<transient_attributes id="{n.nid}"><instance_attributes id="status-{n.nid}">'
                      f'{body}</instance_attributes></transient_attributes>')
        if n.name in self.lrm:
            inner += f'<lrm id="{n.nid}"><lrm_resources>{"".join(self.lrm[n.name])}</lrm_resources></lrm>'
        return (f'<node_state id="{n.nid}" uname="{n.name}" {attrs} crm-debug-origin="cibgen">'
                f'{inner}</node_state>')


def _render(g: GeneratedCib, options: Dict[str, str], rsc_defaults: Dict[str, str], resources: List[str],
            status: _Status) -> str:
    nodes = "\n      ".join(
        f'<node id="{n.nid}" uname="{n.name}" type="member">'
        f'{_nvset("instance_attributes", "nodes-" + n.nid, dict(n.attrs, **({"standby": "on"} if n.standby else {})))}'
        f'</node>' for n in g.nodes)
    cons = [loc.xml for loc in g.locations]
    cons += [f'<rsc_colocation id="{c}" rsc="{r}" with-rsc="{w}" score="{s}"/>' for c, r, w, s in g.colocations]
    cons += [f'<rsc_order id="{o}" first="{f}" then="{t}" kind="{k}" symmetrical="{str(sy).lower()}"/>'
             for o, f, t, k, sy in g.orders]
    states = "\n    ".join(status.node_state(n) for n in g.nodes if n.state != "offline" or n.name in status.lrm)
    return f"""<cib crm_feature_set="{FEATURE_SET}" admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0" have-quorum="true" dc-uuid="{g.nodes[0].nid}">
  <configuration>
    <crm_config>
      {_nvset("cluster_property_set", "cib-bootstrap-options", options)}
    </crm_config>
    <nodes>
      {nodes}
    </nodes>
    <resources>
      {chr(10).join("      " + r for r in resources).lstrip()}
    </resources>
    <constraints>
      {chr(10).join("      " + c for c in cons).lstrip()}
    </constraints>
    {"<rsc_defaults>" + _nvset("meta_attributes", "rsc-options", rsc_defaults) + "</rsc_defaults>"
     if rsc_defaults else ""}
  </configuration>
  <status>
    {states}
  </status>
</cib>
"""


def _rule_location(rng: random.Random, lid: str, rsc: str, nodes: List[GenNode], score: str) -> GenLocation:
    """A location with a rule on #uname or on the node attribute 'rack' / 'ssd'; evaluated here."""
    kind = rng.choice(["uname", "rack-eq", "rack-gt", "ssd-defined", "or"])
    names = [n.name for n in nodes]
    if kind == "uname":
        target = rng.choice(names)
        exprs, match = [("#uname", "eq", target)], {target}
    elif kind == "rack-eq":
        exprs, match = [("rack", "eq", "1")], {n.name for n in nodes if n.attrs.get("rack") == "1"}
    elif kind == "rack-gt":
        exprs, match = [("rack", "gt", "1")], {n.name for n in nodes if int(n.attrs.get("rack", "0") or 0) > 1
                                                and "rack" in n.attrs}
    elif kind == "ssd-defined":
        exprs, match = [("ssd", "defined", None)], {n.name for n in nodes if "ssd" in n.attrs}
    else:
        a, b = rng.sample(names, 2) if len(names) > 1 else (names[0], names[0])
        exprs, match = [("#uname", "eq", a), ("#uname", "eq", b)], {a, b}
    body = "".join(f'<expression id="{lid}-e{i}" attribute="{a}" operation="{o}"'
                   + (f' value="{v}"' if v is not None else "") + (' type="number"' if o == "gt" else "") + "/>"
                   for i, (a, o, v) in enumerate(exprs))
    bop = ' boolean-op="or"' if len(exprs) > 1 else ""
    xml = f'<rsc_location id="{lid}" rsc="{rsc}"><rule id="{lid}-rule" score="{score}"{bop}>{body}</rule></rsc_location>'
    return GenLocation(lid, rsc, score, frozenset(match), xml)


def random_cib(seed: int, steady: bool | None = None) -> GeneratedCib:
    """A random CIB in the supported subset; the same seed gives the same text. steady=None picks
    fresh (no history) or steady (history, failures, lost nodes) from the seed."""
    rng = random.Random(seed)
    steady = rng.random() < 0.6 if steady is None else steady
    nn = rng.randint(2, 5)
    nodes = [GenNode(f"node{i}", str(i)) for i in range(1, nn + 1)]
    for n in nodes:
        if rng.random() < 0.5:
            n.attrs["rack"] = str(rng.randint(1, 2))
        if rng.random() < 0.3:
            n.attrs["ssd"] = "true"
    for n in rng.sample(nodes, rng.randint(0, nn - 1)):
        r = rng.random()
        if r < 0.4:
            n.standby = True
        elif r < 0.6:
            n.state = "offline"
        elif r < 0.75 and steady:
            n.state = "unclean"
    stonith = rng.random() < 0.25
    agents: Dict[str, Tuple[str, str]] = {}
    monitors: Dict[str, bool] = {}
    resources: List[str] = []
    g = GeneratedCib(seed, nodes, {}, [], [], stonith=stonith)
    if stonith:
        resources.append('<primitive id="fencer" class="stonith" type="fence_dummy"/>')
    count = rng.randint(1, 7)
    for i in range(1, count + 1):
        def prim(rid: str) -> str:
            agents[rid] = rng.choice([("pacemaker", "Dummy"), ("heartbeat", "Dummy")])
            monitors[rid] = rng.random() < 0.6
            meta = {}
            if rng.random() < 0.15:
                meta["resource-stickiness"] = rng.choice(["0", "50", "200", INF])
            if rng.random() < 0.08:
                meta["target-role"] = "Stopped"
            if rng.random() < 0.1:
                meta["migration-threshold"] = rng.choice(["1", "3"])
            g.primitives.append(rid)
            return _primitive(rid, agents[rid], meta, monitors[rid])

        if rng.random() < 0.3:
            gid = f"grp{i}"
            members = [f"grp{i}_r{j}" for j in range(1, rng.randint(2, 3) + 1)]
            g.groups[gid] = members
            meta = _nvset("meta_attributes", gid + "-meta", {"resource-stickiness": "100"}
                          if rng.random() < 0.3 else {})
            resources.append(f'<group id="{gid}">{"".join(prim(m) for m in members)}{meta}</group>')
            g.top.append(gid)
        else:
            resources.append(prim(f"rsc{i}"))
            g.top.append(f"rsc{i}")
    scores = [INF, f"-{INF}", "100", "50", "-50", "0", "10", "-10", "200", "500"]
    names = [n.name for n in nodes]
    for k in range(rng.randint(0, 2 * len(g.top))):
        rsc, lid, score = rng.choice(g.top), f"loc{k}", rng.choice(scores)
        if rng.random() < 0.2:
            g.locations.append(_rule_location(rng, lid, rsc, nodes, score))
        else:
            node = rng.choice(names)
            g.locations.append(GenLocation(lid, rsc, score, frozenset([node]),
                                           f'<rsc_location id="{lid}" rsc="{rsc}" node="{node}" score="{score}"/>'))
    pairs = [(a, b) for i, a in enumerate(g.top) for b in g.top[:i]]  # later -> earlier: no cycles
    rng.shuffle(pairs)
    for k, (a, b) in enumerate(pairs[:rng.randint(0, min(3, len(pairs)))]):
        g.colocations.append((f"col{k}", a, b, rng.choice([INF, INF, f"-{INF}", "100", "-100", "0"])))
    rng.shuffle(pairs)
    for k, (a, b) in enumerate(pairs[:rng.randint(0, min(3, len(pairs)))]):
        kind = rng.choice(["Mandatory", "Mandatory", "Optional"])
        g.orders.append((f"ord{k}", b, a, kind, rng.random() < 0.7))
    options = {"stonith-enabled": "true" if stonith else "false"}
    if rng.random() < 0.15:
        options["symmetric-cluster"] = "false"
    if rng.random() < 0.15:
        options["start-failure-is-fatal"] = "false"
    if rng.random() < 0.2:
        options["stop-orphan-resources"] = rng.choice(["true", "false"])
    rsc_defaults = {"resource-stickiness": rng.choice(["0", "1", "100"])} if rng.random() < 0.4 else {}
    status = _Status(agents, monitors)
    if steady:
        _steady_history(rng, g, status, agents, monitors)
    g.xml = _render(g, options, rsc_defaults, resources, status)
    return g


def _steady_history(rng, g: GeneratedCib, status: _Status, agents, monitors):
    """A plausible past: each primitive probed everywhere it could have been, running on one node (or
    stopped), sometimes a failed monitor or start; an orphan now and then."""
    was_up = [n for n in g.nodes if n.state != "offline" or rng.random() < 0.3]
    if not was_up:
        return
    for rsc in g.top:
        where = rng.choice(was_up).name if rng.random() < 0.8 else None
        for rid in g.members(rsc):
            for n in was_up:
                if n.name != where:
                    status.probed_stopped(n.name, rid)
                elif rng.random() < 0.08:
                    status.failed_start(n.name, rid)
                else:
                    status.running(n.name, rid, failed_monitor=rng.random() < 0.1 and monitors[rid])
                    g.running[rid] = n.name
    if rng.random() < 0.15:
        agents["orphan1"], monitors["orphan1"] = ("pacemaker", "Dummy"), False
        status.running(rng.choice(was_up).name, "orphan1")


def generate_bench_cib(nodes: int, primitives: int, state: str = "fresh", seed: int = 1) -> str:
    """The benchmark CIB: `primitives` Dummy resources, 60% in groups of 3, each top-level resource
    preferring one node, ~5% INFINITY and ~5% -INFINITY colocations, ~10% mandatory orders, stickiness.
    state "fresh": nothing has run (N*R probes, R starts); "steady_lost_node": everything runs where
    the preferences put it, every node probed, then the node running the most resources is lost
    (expected member, out of membership)."""
    if state not in ("fresh", "steady_lost_node"):
        raise ValueError(f"unknown state {state!r}")
    rng = random.Random(seed)
    gnodes = [GenNode(f"node{i}", str(i)) for i in range(1, nodes + 1)]
    g = GeneratedCib(seed, gnodes, {}, [], [])
    agents: Dict[str, Tuple[str, str]] = {}
    monitors: Dict[str, bool] = {}
    resources: List[str] = []
    prefer: Dict[str, str] = {}
    grouped = (primitives * 6 // 10) // 3 * 3
    i = 0
    while i < primitives:
        top = f"grp{i // 3}" if i < grouped else f"rsc{i}"
        members = [f"rsc{i}", f"rsc{i + 1}", f"rsc{i + 2}"] if i < grouped else [top]
        for rid in members:
            agents[rid], monitors[rid] = ("pacemaker", "Dummy"), True
            g.primitives.append(rid)
        body = "".join(_primitive(rid, agents[rid], {}, True) for rid in members)
        resources.append(f'<group id="{top}">{body}</group>' if i < grouped else body)
        g.top.append(top)
        if i < grouped:
            g.groups[top] = members
        prefer[top] = gnodes[rng.randrange(nodes)].name
        g.locations.append(GenLocation(f"loc-{top}", top, "100", frozenset([prefer[top]]),
                                       f'<rsc_location id="loc-{top}" rsc="{top}" node="{prefer[top]}" score="100"/>'))
        i += len(members)
    by_node: Dict[str, List[str]] = {}
    for top in g.top:
        by_node.setdefault(prefer[top], []).append(top)
    tops = list(g.top)
    for k in range(max(1, len(tops) // 20)):
        a = rng.choice(tops)
        same = [b for b in by_node[prefer[a]] if b != a]
        if same:
            g.colocations.append((f"col-inf-{k}", a, rng.choice(same), INF))
        other = [b for b in tops if prefer[b] != prefer[a]]
        if other:
            g.colocations.append((f"col-neg-{k}", a, rng.choice(other), f"-{INF}"))
    for k in range(max(1, len(tops) // 10)):
        a, b = sorted(rng.sample(range(len(tops)), 2)) if len(tops) > 1 else (0, 0)
        if a != b:
            g.orders.append((f"ord-{k}", tops[a], tops[b], "Mandatory", True))
    status = _Status(agents, monitors)
    if state == "steady_lost_node":
        for top in g.top:
            for rid in g.members(top):
                for n in gnodes:
                    if n.name == prefer[top]:
                        status.running(n.name, rid)
                        g.running[rid] = n.name
                    else:
                        status.probed_stopped(n.name, rid)
        # lose the node running the most resources (the lowest-numbered one on a tie)
        load = {n.name: sum(1 for where in g.running.values() if where == n.name) for n in gnodes}
        max(gnodes, key=lambda n: (load[n.name], -int(n.nid))).state = "unclean"
    options = {"stonith-enabled": "false", "no-quorum-policy": "ignore"}
    return _render(g, options, {"resource-stickiness": "50"}, resources, status)
