"""The CIB as ha-web's pages read it: the constraints list and one resource's detail and history."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Dict

from hadaemon.web.responses import HttpError


def constraints(cib: ET.Element) -> list:
    out = []
    for c in cib.findall("./configuration/constraints/*"):
        out.append({"id": c.get("id", ""), "kind": c.tag.replace("rsc_", ""), "attributes": dict(c.attrib),
                    "rules": len(c.findall("rule")), "sets": len(c.findall("resource_set"))})
    return out


def _nvpairs(el: ET.Element | None, tag: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if el is None:
        return out
    for ia in el.findall(tag):
        for nv in ia.findall("nvpair"):
            out.setdefault(nv.get("name", ""), nv.get("value", ""))
    return out


def resource_detail(cib: ET.Element, rid: str, with_params: bool = True) -> dict:
    el = next((x for x in cib.find("configuration").iter() if x.tag in ("primitive", "group", "clone", "master")
               and x.get("id") == rid), None) if cib.find("configuration") is not None else None
    if el is None:
        raise HttpError(404, f"no resource '{rid}'")
    members = [m.get("id") for m in el.findall("primitive")] if el.tag == "group" else []
    ops = [dict(op.attrib) for op in el.findall("./operations/op")]
    history = []
    ids = {rid, *members}
    for ns in cib.findall("./status/node_state"):
        for lr in ns.findall("./lrm/lrm_resources/lrm_resource"):
            if lr.get("id") in ids:
                for op in lr.findall("lrm_rsc_op"):
                    history.append({"node": ns.get("uname", ns.get("id", "")), "resource": lr.get("id"),
                                    "operation": op.get("operation", ""), "interval": op.get("interval", "0"),
                                    "rc": op.get("rc-code", ""), "status": op.get("op-status", ""),
                                    "call": int(op.get("call-id", "0") or 0),
                                    "last_rc_change": int(op.get("last-rc-change", "0") or 0),
                                    "exec_time": op.get("exec-time", ""), "output": op.get("exit-reason", "")})
    history.sort(key=lambda h: (h["last_rc_change"], h["call"]), reverse=True)
    return {"id": rid, "kind": el.tag, "class": el.get("class", ""), "provider": el.get("provider", ""),
            "type": el.get("type", ""), "members": members,
            "params": _nvpairs(el, "instance_attributes") if with_params else None,
            "meta": _nvpairs(el, "meta_attributes"), "ops": ops, "history": history}
