"""Fencing for the DC: pick a stonith device that can fence the node and a node to run it (through
its LRM, fence-agents style), and mark the node cleanly down once the device reported success."""
from __future__ import annotations

import itertools
import logging
import re
import time
from typing import Dict, Tuple

from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.crm import transition as T

__all__ = ["Fencing", "device_can_fence"]

log = logging.getLogger("ha-crmd")
_ids = itertools.count(1)


def device_can_fence(params: Dict[str, str], target: str) -> bool:
    """pcmk_host_list / pcmk_host_map name the nodes a device can fence; with neither, any node."""
    check = (params.get("pcmk_host_check") or "").lower()
    hosts = [h for h in re.split(r"[\s,;]+", params.get("pcmk_host_list", "")) if h]
    mapped = [item.replace("=", ":").split(":", 1)[0] for item in re.split(r"[\s,;]+", params.get("pcmk_host_map", ""))
              if item]
    if check == "none":
        return True
    if hosts or mapped:
        return target in hosts or target in mapped
    return True


class Fencing:
    def __init__(self, dc):
        self.dc = dc
        self.inflight: Dict[int, Tuple[int, str, str]] = {}

    def close(self) -> None:
        self.inflight.clear()

    @staticmethod
    def timeout_s(model) -> float:
        ms = parse_interval_ms(model.option("stonith-timeout") or model.option("fencing-timeout") or "60s")
        return (ms or 60000) / 1000.0

    def _device(self, model, target: str):
        for prim in sorted(model.primitives().values(), key=lambda p: p.id):
            if prim.cls != "stonith":
                continue
            params = resolve_sets(prim.instance_sets, now=int(time.time()))  # rules with dates: now
            if device_can_fence(params, target):
                return prim, params
        return None

    def _executor(self, target: str) -> str | None:
        node = self.dc.node
        if node.local_node != target:
            return node.local_node
        others = sorted(n for n in self.dc.joined if n != target)
        return others[0] if others else None

    def fence(self, a: T.ActionSpec, model) -> None:
        target = a.node or ""
        found = self._device(model, target)
        unfence = a.fence_type == "on"
        # unfencing ('on': fabric access given back, e.g. fence_scsi's key registered) is run on the
        # target itself while it is a member, as Pacemaker's fencer does for on_target devices; it
        # never marks the node down
        executor = target if unfence and target in self.dc.joined else self._executor(target)
        if found is None or executor is None:
            log.error("cannot fence %s: %s", target,
                      "no stonith resource can fence it" if found is None else "no node can run the device",
                      extra={"NODE": target, "EVENT": "fence-failed"})
            self.dc.loop.call_later(1.0, self.dc._step, T.ActionDone(a.id, False))
            return
        prim, params = found
        fid = next(_ids)
        action = a.fence_type if a.fence_type in ("off", "on") else "reboot"
        self.inflight[fid] = (a.id, target, action)
        log.warning("fencing %s (%s) with %s on %s", target, action, prim.id, executor,
                    extra={"NODE": target, "RESOURCE": prim.id, "EVENT": "fence-request"})
        self.dc.node.send(executor, "fence", id=fid, target=target, action=action,
                          timeout_ms=int(self.timeout_s(model) * 1000),
                          device={"id": prim.id, "type": prim.type, "params": params})

    def result(self, src: str, msg: dict) -> None:
        entry = self.inflight.pop(msg.get("id"), None)
        if entry is None:
            return
        aid, target, action = entry
        if msg.get("ok") and action == "on":
            # the scheduler asks for unfencing while #node-unfenced is unset or 0 (Pacemaker's
            # fencer sets it to the time of the last unfencing)
            self.dc.set_attribute(target, "#node-unfenced", str(int(time.time())))
        elif msg.get("ok"):
            self.dc.fenced(target)
        else:
            log.error("fencing %s failed on %s: %s", target, src, msg.get("text", ""),
                      extra={"NODE": target, "EVENT": "fence-failed"})
        self.dc._step(T.ActionDone(aid, bool(msg.get("ok"))))
