"""ha.cf ping nodes as the `pingd` node attribute: how many of them answer ICMP echo (like pingd -m 1)."""
from __future__ import annotations

import asyncio
import logging

__all__ = ["Pinger", "ATTRIBUTE"]

ATTRIBUTE = "pingd"
log = logging.getLogger("ha-crmd")


class Pinger:
    def __init__(self, node, cfg, multiplier: int = 1):
        self.node = node
        self.targets = tuple(cfg.ping) + tuple(a for g in cfg.ping_groups.values() for a in g)
        self.interval = max(1.0, min(float(getattr(cfg, "deadping", 30.0)) / 3, 10.0))
        self.multiplier = multiplier

    async def _one(self, addr: str) -> bool:
        try:
            proc = await asyncio.create_subprocess_exec(
                "ping", "-n", "-q", "-c", "1", "-W", "1", addr,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            return await asyncio.wait_for(proc.wait(), 5) == 0
        except (OSError, asyncio.TimeoutError):
            return False

    async def run(self, stop: asyncio.Event) -> None:
        last = None
        while not stop.is_set():
            results = await asyncio.gather(*(self._one(a) for a in self.targets))
            value = str(sum(results) * self.multiplier)
            if value != last:
                log.info("ping nodes reachable: %d of %d", sum(results), len(results),
                         extra={"EVENT": "pingd"})
                last = value
                self.node.set_attribute(ATTRIBUTE, value)
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
