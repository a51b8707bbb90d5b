"""ha.cf ping nodes as the `pingd` node attribute: how many of them answer ICMP echo (like pingd -m 1).

Each round pings every ping node once. The first value is reported at once; a lower value as soon as
a round sees it (an isolated node gives up its resources quickly); a higher value only once every
round for `deadping` seconds saw it (dampening: a node whose link comes back must not take resources
back before the membership has merged)."""
from __future__ import annotations

import asyncio
import logging
__all__ = ["Pinger", "ATTRIBUTE"]

ATTRIBUTE = "pingd"
log = logging.getLogger("ha-crmd")


class Pinger:
    def __init__(self, node, cfg, multiplier: int = 1, clock=None):
        self.node = node
        self.targets = tuple(dict.fromkeys(tuple(cfg.ping) + tuple(a for g in cfg.ping_groups.values() for a in g)))
        self.deadping = float(getattr(cfg, "deadping", 30.0))
        self.interval = max(0.5, min(self.deadping / 3, 10.0))
        self.multiplier = multiplier
        self.clock = clock or asyncio.get_event_loop().time

    async def _one(self, addr: str) -> bool:
        wait = max(1, int(self.interval))
        try:
            proc = await asyncio.create_subprocess_exec(
                "ping", "-n", "-q", "-c", "1", "-W", str(wait), addr,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            return await asyncio.wait_for(proc.wait(), wait + 5) == 0
        except (OSError, asyncio.TimeoutError):
            return False

    async def run(self, stop: asyncio.Event) -> None:
        reported = None
        candidate, since = None, 0.0
        while not stop.is_set():
            started = self.clock()
            results = await asyncio.gather(*(self._one(a) for a in self.targets))
            now = self.clock()
            count = sum(1 for ok in results if ok)
            value = count * self.multiplier
            if value != candidate:
                candidate, since = value, now
            if reported is None or value < reported or (value > reported and now - since >= self.deadping):
                if value != reported:
                    log.info("ping nodes reachable: %d of %d", count, len(self.targets), extra={"EVENT": "pingd"})
                    reported = value
                    self.node.set_attribute(ATTRIBUTE, str(value))
            delay = max(0.0, self.interval - (self.clock() - started))
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
