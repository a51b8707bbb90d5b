"""The director's read side: real server rows (D-Bus RealServers, hactl), virtual service rows, the status
line and the ipvsadm-like listing. A mixin of hadaemon.daemons.director_runtime.Director.

Rows are addressed by (service key, dest key); `row_keys()` gives their order (derived once per config)
and `row(key)` one row, so a reader that keeps an encoded copy re-does only the rows that changed."""
from __future__ import annotations

from typing import Dict, Iterable, List, Set, Tuple

from hadaemon.core.director.lvs_table import format_table
from hadaemon.core.director.table import dest_key, health_by_dest, virtual_service

RowKey = Tuple[str, str]        # (service key, dest key)


class DirectorViews:
    """Needs: config, plan, health, current, overrides, backend (the Director's state)."""

    def _keys(self, v, r, plan=None) -> RowKey:
        """(service key, dest key) of a real, memoized per config."""
        memo = (plan or self.plan).memo
        k = ("keys", v.key, r.key)
        got = memo.get(k)
        if got is None:
            skey = memo.get(("skey", v.key))
            if skey is None:
                skey = memo[("skey", v.key)] = virtual_service(v).key
            got = memo[k] = (skey, dest_key(v, r))
        return got

    def _row_index(self, plan=None):
        """(order, by key, by pair) of the rows: key -> (virtual, real, is the fallback, its health pair),
        pair -> key; derived once per config (`plan`: a new config's, on the thread that loads it)."""
        plan = plan or self.plan
        memo = plan.memo
        got = memo.get("rows_index")
        if got is None:
            config = plan.config
            order: List[RowKey] = []
            index: Dict[RowKey, tuple] = {}
            by_pair: Dict[tuple, RowKey] = {}
            for v in config.virtuals:
                seen: Set[str] = set()
                for r in v.reals:
                    key = self._keys(v, r, plan)
                    by_pair[(v.key, r.key)] = key
                    if key[1] in seen:
                        continue
                    seen.add(key[1])
                    order.append(key)
                    index[key] = (v, r, False, (v.key, r.key))
                fb = config.fallback_for(v)
                if fb is not None:
                    key = self._keys(v, fb, plan)
                    if key[1] not in seen:
                        order.append(key)
                        index[key] = (v, fb, True, None)
            got = memo["rows_index"] = (order, index, by_pair)
        return got

    def row_keys(self) -> List[RowKey]:
        """The keys of real_rows(), in its order."""
        return self._row_index()[0]

    def row_keys_of(self, pairs: Iterable[tuple]) -> List[RowKey]:
        """The rows showing these (virtual key, real key) pairs and every pair that shares their check."""
        by_pair = self._row_index()[2]
        groups, identity = self.plan.groups, self.plan.identity
        out = []
        for p in pairs:
            ident = identity.get(p)
            for q in (groups[ident] if ident is not None else (p,)):
                k = by_pair.get(q)
                if k is not None:
                    out.append(k)
        return out

    def row(self, key: RowKey):
        """One row of real_rows() (None when no such row)."""
        got = self._row_index()[1].get(key)
        if got is None:
            return None
        _v, r, fallback, pair = got
        entry = self.current.get(key[0])
        d = entry.dests.get(key[1]) if entry is not None else None
        weight = d.weight if d is not None else -1
        if fallback:
            return (key[0], key[1], r.method, "fallback", weight, r.weight, True, "", 0.0, False)
        h = self.health.reals.get(pair) or self.health.get(pair)
        # (self._state inlined: this runs for every row a D-Bus read looks at)
        if h.maintenance:
            state = "maintenance"
        elif h.held is not None:
            state = "flapping"
        elif self.overrides and self.overrides.get(key) == 0:
            state = "drained" if h.up else "down"
        else:
            state = "up" if h.up else "down"
        return (key[0], key[1], r.method, state, weight, r.weight, bool(h.last_ok),
                h.last_detail or "", float(h.last_time or 0.0), key in self.overrides)

    def _state(self, h, key: RowKey) -> str:
        if h.maintenance:
            return "maintenance"
        if h.held is not None:
            return "flapping"
        if self.overrides and self.overrides.get(key) == 0:
            return "drained" if h.up else "down"
        return "up" if h.up else "down"

    def real_state(self, v, r, keys: RowKey | None = None) -> str:
        return self._state(self.health.get((v.key, r.key)), keys or self._keys(v, r))

    def real_rows(self) -> List[tuple]:
        """(virtual, real, method, health, weight, configured weight, last ok, last detail, last time,
        overridden) for every real server and the fallback (health "fallback")."""
        row = self.row
        return [row(k) for k in self.row_keys()]

    def _weight(self, skey: str, dkey: str) -> int:
        entry = self.current.get(skey)
        return entry.dests[dkey].weight if entry and dkey in entry.dests else -1

    def virtual_rows(self) -> List[tuple]:
        """(key, protocol, address, port, fwmark, scheduler, persistent, netmask, checktype, service)."""
        rows = []
        for v in self.config.virtuals:
            s = virtual_service(v)
            rows.append((s.key, s.protocol, s.address, s.port, s.fwmark, s.scheduler, s.persistent or 0,
                         s.netmask or "", v.checktype, v.service))
        return rows

    def status_line(self) -> str:
        up = self.health.up_total()
        return (f"{len(self.config.virtuals)} virtual service(s), {up}/{len(self.plan.targets)} real server(s) up, "
                f"backend {self.backend.name}")

    def listing(self) -> str:
        health = health_by_dest(self.config, self.health)
        return format_table(self.current, health)
