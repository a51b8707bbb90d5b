"""The director's admin requests (D-Bus SetWeight / Drain / Restore, hactl director weight|drain|restore):
weights set by an admin override the configured weight of a real while it is up, until Restore, and are
kept across reloads. A mixin of hadaemon.daemons.director_runtime.Director."""
from __future__ import annotations

import logging

from hadaemon.core.director.lvs_table import MAX_WEIGHT
from hadaemon.core.director.table import dest_key, virtual_service
from hadaemon.core.errors import BadRequest

log = logging.getLogger("ha-ldirectord")


class DirectorAdmin:
    """Needs: config, overrides, _changed, reconcile(), real_state(), _weight(), _emit() (the Director's)."""

    def _find(self, virtual: str, real: str):
        """(Virtual, Real, service key, dest key) for a virtual key / address:port and a real address[:port]."""
        matches = [v for v in self.config.virtuals
                   if virtual in (v.key, virtual_service(v).key, v.display, f"{v.protocol}:{v.display}")]
        if len(matches) != 1:
            known = ", ".join(virtual_service(v).key for v in self.config.virtuals)
            raise BadRequest("UnknownVirtual", f"no virtual service {virtual!r}"
                             + (" (ambiguous: give the protocol, e.g. tcp:ADDRESS:PORT)" if matches else "")
                             + f"; known: {known}")
        v = matches[0]
        reals = [r for r in v.reals if real in (dest_key(v, r), r.key, r.address)]
        if len(reals) != 1:
            raise BadRequest("UnknownReal", f"no real server {real!r} in {virtual_service(v).key}; known: "
                             + ", ".join(dest_key(v, r) for r in v.reals))
        return v, reals[0], virtual_service(v).key, dest_key(v, reals[0])

    async def set_weight(self, virtual: str, real: str, weight: int) -> None:
        if not 0 <= weight <= MAX_WEIGHT:
            raise BadRequest("InvalidArgument", f"weight must be 0..{MAX_WEIGHT}, got {weight}")
        v, r, skey, dkey = self._find(virtual, real)
        self.overrides[(skey, dkey)] = weight
        log.info("admin: weight of %s in %s set to %d", dkey, skey, weight, extra={"VIRTUAL": skey, "REAL": dkey})
        self._changed.add((v.key, r.key))
        await self.reconcile()
        self._emit("real", skey, dkey, self.real_state(v, r), self._weight(skey, dkey))
        self._emit("admin")

    async def restore(self, virtual: str, real: str) -> None:
        v, r, skey, dkey = self._find(virtual, real)
        self.overrides.pop((skey, dkey), None)
        log.info("admin: %s in %s restored to its configured weight", dkey, skey,
                 extra={"VIRTUAL": skey, "REAL": dkey})
        self._changed.add((v.key, r.key))
        await self.reconcile()
        self._emit("real", skey, dkey, self.real_state(v, r), self._weight(skey, dkey))
        self._emit("admin")
