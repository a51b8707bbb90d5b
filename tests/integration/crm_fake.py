"""A stand-in ha-crmd backend for the Crm1 interface tests: the contract's backend over an in-memory CIB.

Every change goes through the real pure edits and parse_cib; after it the real scheduler runs and its
revised placement is written into the status section as if the LRM had done it (no agents run), with
the contract's listener events. The daemon itself is tested in test_crmd_*.

    python -m tests.integration.crm_fake --cib FILE --node admin1 [--members admin1,admin2]
exports org.hadaemon.Crm1 on DBUS_SYSTEM_BUS_ADDRESS and prints "ready" when it owns the name.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import signal
import sys
import time
import xml.etree.ElementTree as ET

from hadaemon.core.cib import edit as E
from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.history import digest
from hadaemon.core.cib.status_view import cib_epoch, status_dict
from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.core.policy import schedule


class FakeCrm:
    def __init__(self, cib_xml: str, node: str, members=None):
        self.local_node = node
        self.dc = node
        self.has_quorum = True
        self.listeners: list = []
        self.cib = ET.fromstring(cib_xml)
        self.members = list(members) if members else None
        self.transition = 0
        self.call_id = 100

    # -- the contract ----------------------------------------------------------------------------------
    def cib_xml(self) -> str:
        return ET.tostring(self.cib, encoding="unicode")

    def status_dict(self) -> dict:
        return status_dict(self.cib_xml(), local_node=self.local_node, dc=self.dc, quorum=self.has_quorum,
                           members=self.members, now=int(time.time()),
                           transition={"id": self.transition, "state": "idle"})

    async def modify_cib(self, edit, reason: str) -> str:
        new = copy.deepcopy(self.cib)
        edit(new)
        try:
            parse_cib(ET.tostring(new, encoding="unicode"), "<new CIB>")
        except ConfigError as exc:
            raise BadRequest("InvalidArgument", f"the change ({reason}) gives a CIB that does not load: {exc}") \
                from None
        new.set("epoch", str(int(self.cib.get("epoch", "0") or 0) + 1))
        new.set("num_updates", "0")
        self.cib = new
        epoch = cib_epoch(new.attrib)
        self._emit("cib", epoch)
        self._run_transition()
        return epoch

    async def replace_cib(self, xml: str) -> str:
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise BadRequest("InvalidArgument", f"<replacement CIB>:{exc.position[0]}: invalid XML: {exc}") from None
        conf = root.find("configuration") if root.tag == "cib" else None
        if conf is None:
            raise BadRequest("InvalidArgument", "the replacement must be a <cib> with a <configuration>")

        def edit(cib):
            cib.remove(cib.find("configuration"))
            cib.insert(0, copy.deepcopy(conf))

        return await self.modify_cib(edit, "replace the configuration")

    async def cleanup(self, resource: str, node: str) -> None:
        await self.modify_cib(lambda cib: E.cleanup(cib, resource, node), f"cleanup {resource}")

    # -- pretend to run the transition ----------------------------------------------------------------
    def _emit(self, kind: str, *args) -> None:
        for f in list(self.listeners):
            f(kind, *args)

    def _run_transition(self) -> None:
        t = schedule(parse_cib(self.cib_xml()), int(time.time()))
        self.transition += 1
        self._emit("transition_start", self.transition)
        prims = {}
        for r in self.cib.iter("primitive"):
            prims[r.get("id")] = r
        for rid in sorted(t.current):
            before, after = set(t.current[rid]), set(t.revised.get(rid, []))
            for node in sorted(before - after):
                self._record(rid, prims.get(rid), node, "stop")
                self._emit("resource", rid, node, "Stopped")
            for node in sorted(after - before):
                self._record(rid, prims.get(rid), node, "start")
                self._emit("resource", rid, node, "Started")
        self._emit("transition_end", self.transition, "complete")

    def _record(self, rid: str, prim, node: str, task: str) -> None:
        status = E.section(self.cib, "status")
        nid = E.node_names(self.cib).get(node, node)
        ns = next((s for s in status.findall("node_state") if s.get("id") == nid), None)
        if ns is None:
            ns = ET.SubElement(status, "node_state", {"id": nid, "uname": node, "in_ccm": "true", "crmd": "online",
                                                      "join": "member", "expected": "member"})
        lrm = ns.find("lrm")
        if lrm is None:
            lrm = ET.SubElement(ns, "lrm", {"id": nid})
        lrs = lrm.find("lrm_resources")
        if lrs is None:
            lrs = ET.SubElement(lrm, "lrm_resources")
        lr = next((x for x in lrs.findall("lrm_resource") if x.get("id") == rid), None)
        if lr is None:
            attrs = {"id": rid}
            if prim is not None:
                attrs.update({k: prim.get(k) for k in ("class", "provider", "type") if prim.get(k)})
            lr = ET.SubElement(lrs, "lrm_resource", attrs)
        for op in list(lr):
            lr.remove(op)
        params = {}
        if prim is not None:
            for ia in prim.findall("instance_attributes"):
                for nv in ia.findall("nvpair"):
                    params.setdefault(nv.get("name"), nv.get("value", ""))
        self.call_id += 1
        ET.SubElement(lr, "lrm_rsc_op", {
            "id": f"{rid}_last_0", "operation": task, "call-id": str(self.call_id), "rc-code": "0",
            "op-status": "0", "interval": "0", "transition-key": f"1:{self.transition}:0:fake-crmd",
            "op-digest": digest(params), "last-rc-change": str(int(time.time()))})


async def main(argv=None) -> int:
    from hadaemon.bus.crm import Export

    p = argparse.ArgumentParser()
    p.add_argument("--cib", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--members", default="")
    args = p.parse_args(argv)
    with open(args.cib) as f:
        backend = FakeCrm(f.read(), args.node, [m for m in args.members.split(",") if m] or None)
    export = Export(backend)
    await export.connect()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    export.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
