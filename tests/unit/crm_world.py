"""A simulated cluster for the CRM's pure parts: the real scheduler, the real transition executor and
the real status updates, with agents replaced by a dictionary of where each resource runs."""
from __future__ import annotations

import itertools
from typing import Dict, List, Set

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.core.crm import transition as T
from hadaemon.core.crm.ops import plan_op
from hadaemon.core.policy import schedule

NOW = 1_700_000_000


def cib_with(resources: str, constraints: str = "", nodes=("node1", "node2"), options: str = "",
             rsc_defaults: str = ""):
    text = f"""<cib admin_epoch="0" epoch="1" num_updates="0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-st" name="stonith-enabled" value="false"/>{options}
</cluster_property_set></crm_config>
<nodes>{''.join(f'<node id="{n}" uname="{n}"/>' for n in nodes)}</nodes>
<resources>{resources}</resources>
<constraints>{constraints}</constraints>{rsc_defaults}
</configuration><status/></cib>"""
    cib = cibdoc.parse(text)
    for n in nodes:
        S.set_node_state(cib, n, in_ccm="true", crmd="online", join="member", expected="member")
    cib.set("have-quorum", "1")
    return cib


def dummy(rid: str, monitor: str = "10s") -> str:
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy"><operations>'
            f'<op id="{rid}-mon" name="monitor" interval="{monitor}" timeout="20s"/></operations></primitive>')


class World:
    """Where resources really run; executes actions by updating it and returning OpRecords."""

    def __init__(self, cib, running: Dict[str, Set[str]] | None = None):
        self.cib = cib
        self.running: Dict[str, Set[str]] = {k: set(v) for k, v in (running or {}).items()}
        self.calls = itertools.count(1)
        self.tid = 0
        self.max_active = 0
        self.executed: List[tuple] = []
        self.fail: Dict[tuple, int] = {}     # (rsc, task, node) -> rc to return once
        self.news = ""                        # the last result's abort reason (a probe's unexpected answer)
        self.ends: List[tuple] = []           # (result, reason) of every transition run to its end

    def schedule(self):
        model = parse_cib(cibdoc.to_text(self.cib))
        return model, schedule(model, NOW)

    def start_run(self):
        model, tr = self.schedule()
        self.tid += 1
        timeouts = {a.id: 20.0 for a in tr.graph.actions}
        return model, T.from_graph(self.tid, tr.graph, timeouts)

    def execute(self, model, run: T.Run, a: T.ActionSpec) -> bool:
        """Run one action against the world and record its result; True when it did not fail. As the
        DC: a probe's unexpected answer (running where "not running" was expected) is no failure but
        news (self.news, the ActionDone's abort reason)."""
        self.executed.append((a.task, a.rsc, a.node, a.interval_ms))
        if a.kind == "crm_event":
            return True
        plan = plan_op(model, a.rsc, a.task, a.interval_ms, a.node)
        here = self.running.setdefault(a.rsc, set())
        rc = 0
        status = "done"
        if a.task == "start":
            rc = self.fail.pop((a.rsc, "start", a.node), 0)
            if rc == 0:
                here.add(a.node)
        elif a.task == "stop":
            here.discard(a.node)
        elif a.task == "monitor":
            rc = 0 if a.node in here else 7
            rc = self.fail.pop((a.rsc, "monitor", a.node), rc)
        elif a.task == "cancel":
            status = "cancelled"
        self.max_active = max(self.max_active, max((len(v) for v in self.running.values()), default=0))
        op = "monitor" if a.task == "cancel" else a.task
        rec = S.OpRecord(a.rsc, op, a.interval_ms, rc, S.exec_status_code(status), next(self.calls),
                         S.transition_key(a.id, run.id, a.target_rc, "dc"), a.target_rc,
                         last_run=NOW, digest=plan.digest if plan else "", rsc_class="ocf",
                         rsc_provider="heartbeat", rsc_type="Dummy")
        failed = S.record_op(self.cib, a.node, rec, NOW)
        cibdoc.bump(self.cib, configuration=False)
        self.news = f"probe of {a.rsc} on {a.node}: rc={rc} (expected {a.target_rc})" \
            if S.unexpected_probe(rec) else ""
        return not failed

    def run_transition(self, limit: int | None = None) -> T.Run:
        """Run one transition to its end (or stop after `limit` executed actions: a crash)."""
        model, run = self.start_run()
        run, effects = T.step(run, T.Started(), 0.0)
        done = 0
        queue = [e for e in effects if isinstance(e, T.Execute)]
        while queue:
            if limit is not None and done >= limit:
                return run
            e = queue.pop(0)
            ok = self.execute(model, run, e.action)
            done += 1
            run, effects = T.step(run, T.ActionDone(e.action.id, ok, abort=self.news), 0.0)
            queue += [x for x in effects if isinstance(x, T.Execute)]
            self.ends += [(x.result, x.reason) for x in effects if isinstance(x, T.Completed)]
        return run

    def converge(self, max_transitions: int = 10) -> int:
        """Schedule and run transitions until the scheduler has nothing to do; returns how many ran."""
        for n in range(max_transitions):
            _model, tr = self.schedule()
            if not tr.graph.actions:
                return n
            self.run_transition()
        raise AssertionError(f"no stable state after {max_transitions} transitions: {self.executed[-10:]}")

    def where(self) -> Dict[str, List[str]]:
        return {r: sorted(v) for r, v in sorted(self.running.items()) if v}
