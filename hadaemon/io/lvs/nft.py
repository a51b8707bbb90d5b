"""nftables backend for kernels without IPVS: weighted DNAT in its own `ip hadaemon` / `ip6 hadaemon` table.

Layout (one table per address family):

    chain pre   (nat prerouting, dstnat): `ip daddr VIP tcp dport 80 jump s0` / `meta mark 7 jump s1`
    chain post  (nat postrouting, srcnat): `ct status dnat ip daddr @masq_dests masquerade`
    chain sN    one per virtual service: [`jump sNq`] `jump sNn` `drop comment "hadaemon-service ..."`
    chain sNq   (persistent) `ip saddr & MASK @sNpJ jump sNdJ` for each real J
    chain sNn   `numgen inc mod TOTAL vmap @sNm` (wrr and the rest), `jhash ip saddr` for sh, `ip daddr`
                for dh; empty when no real has a weight (new connections are dropped)
    map sNm     value -> `jump sNdJ`: a real of weight W owns W of the values 0..TOTAL-1 (single values in a
                hash map up to SINGLE_VALUES in all, else intervals)
    chain sNdJ  one per real server: `[update @sNpJ {...}] dnat to ADDR:PORT comment "hadaemon-dest ..."`
                (`redirect to :PORT` for a loopback real such as the fallback 127.0.0.1:80)

So new connections go exactly by weight (1 and 3: 1:3 with numgen). A real with weight 0 (quiescent) keeps
its chain but owns no value. Only new connections pass through nat chains, so established ones stay where
they are, as with IPVS. Forwarding methods: every real is reached by DNAT. For `masq` reals the real must
route replies back through the director (the LVS-NAT requirement); `gate` and `ipip` reals (LVS-DR/TUN,
which reply directly in IPVS) are also masqueraded so their replies return through the director.
Persistence: a dynamic set of client addresses (under the netmask) per real with the persistence timeout;
a client found in a real's set goes to that real again; a real going quiescent has its set flushed.

Changes: destination ops (weights, reals added or removed: the event path) are made in place, with
element and rule changes proportional to the ops (render_changes, nft_slots.Slots), in one `nft -f`
transaction; service ops (a reload) rewrite the family's table whole (render), also in one transaction.
The model (scheduler, thresholds, methods...) is kept in rule comments and the weights in the maps, so
read() returns the Table.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections import Counter
from functools import lru_cache
from typing import Dict, Iterable, List

from hadaemon.core.director.lvs_table import (
    DEFAULT_NETMASK, AddDest, DelDest, Destination, EditDest, Op, Service, Table, TableError, VirtualService,
    apply_ops,
)
from hadaemon.io.lvs.base import Backend, BackendError
from hadaemon.io.lvs.nft_slots import Slots

TABLE = "hadaemon"
_FAMILY = {"inet": "ip", "inet6": "ip6"}
_SVC_TAG, _DEST_TAG = "hadaemon-service", "hadaemon-dest"


@lru_cache(maxsize=1 << 16)
def _is_local(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def _mask_expr(svc: VirtualService) -> str:
    """`ip saddr & 255.255.255.0` (or the plain source address when the netmask is the default)."""
    fam = _FAMILY[svc.family]
    if not svc.netmask or svc.netmask == DEFAULT_NETMASK[svc.family]:
        return f"{fam} saddr"
    if svc.family == "inet6":
        mask = str(ipaddress.IPv6Network(f"::/{int(svc.netmask)}").netmask)
    else:
        mask = svc.netmask
    return f"{fam} saddr & {mask}"


def _svc_comment(s: VirtualService) -> str:
    return " ".join([_SVC_TAG, s.protocol, s.address or "-", str(s.port), str(s.fwmark), s.family, s.scheduler,
                     str(s.persistent) if s.persistent is not None else "-", s.netmask or "-",
                     ",".join(s.flags) or "-"])


def _dest_comment(d: Destination) -> str:
    return " ".join([_DEST_TAG, d.address, str(d.port), d.method, str(d.weight), str(d.lower), str(d.upper)])


def _parse_svc(comment: str) -> VirtualService:
    f = comment.split()
    _, proto, addr, port, fwmark, family, sched, pers, mask, flags = f
    return VirtualService(proto, "" if addr == "-" else addr, int(port), int(fwmark), family, sched,
                          None if pers == "-" else int(pers), None if mask == "-" else mask,
                          () if flags == "-" else tuple(flags.split(",")))


def _parse_dest(comment: str) -> Destination:
    _, addr, port, method, weight, lower, upper = comment.split()
    return Destination(addr, int(port), method, int(weight), int(lower), int(upper))


def _dest_rule(pset: str, svc: VirtualService, d: Destination) -> str:
    """The one rule of a real server's chain: `[update @pset {...}] dnat to ADDR:PORT comment "..."`."""
    stmt = ""
    if svc.persistent is not None:
        stmt += f"update @{pset} {{ {_mask_expr(svc)} }} "
    l4 = svc.protocol if svc.protocol != "fwm" else "{ tcp, udp }"
    if _is_local(d.address):
        stmt += f"meta l4proto {l4} redirect to :{d.port}" if d.port else "redirect"
    elif d.port:
        target = f"[{d.address}]:{d.port}" if svc.family == "inet6" else f"{d.address}:{d.port}"
        stmt += f"meta l4proto {l4} dnat to {target}"
    else:
        stmt += f"dnat to {d.address}"
    return f"{stmt} comment \"{_dest_comment(d)}\""


@lru_cache(maxsize=1 << 17)
def _dest_chain(chain: str, pset: str, svc: VirtualService, d: Destination) -> str:
    """One real server's chain (memoized: rendering is the Python part of a whole-table write)."""
    return f"  chain {chain} {{\n    {_dest_rule(pset, svc, d)}\n  }}"


def _key_expr(svc: VirtualService) -> str:
    """What picks a real: `numgen inc` (wrr, rr, wlc...: weighted rotation), a hash of the client (sh) or of
    the destination address (dh)."""
    fam = _FAMILY[svc.family]
    if svc.scheduler == "sh":
        return f"jhash {fam} saddr"
    if svc.scheduler == "dh":
        return f"jhash {fam} daddr"
    return "numgen inc"


def _pick_rule(svc: VirtualService, name: str, total: int) -> str:
    return f"{_key_expr(svc)} mod {total} vmap @{name}m"


# Up to this many values a service's map is a hash map of single values (a real of weight W has W elements):
# adding or deleting elements there costs nft a few ms whatever the map's size, while an interval map
# makes nft fetch and re-check the whole set (~0.5 s at 5,000 elements). Larger totals use an interval map.
SINGLE_VALUES = 65536


def _keys_of(elements, interval: bool) -> List[str]:
    if interval:
        return [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi, _ in elements]
    return [str(v) for lo, hi, _ in elements for v in range(lo, hi + 1)]


def _elements(name: str, elements, interval: bool = True) -> str:
    if interval:
        return ", ".join(f"{lo if lo == hi else f'{lo}-{hi}'} : jump {name}d{j}" for lo, hi, j in elements)
    return ", ".join(f"{v} : jump {name}d{j}" for lo, hi, j in elements for v in range(lo, hi + 1))


def _masq(d: Destination) -> bool:
    return d.method in ("gate", "ipip") and not _is_local(d.address)


class _Svc:
    """What the backend keeps per service to change it in place: its chain number, its reals' chain
    numbers, the numgen values each real owns."""

    __slots__ = ("n", "svc", "ids", "next_id", "slots", "interval")

    def __init__(self, n: int, svc: VirtualService):
        self.n, self.svc, self.ids, self.next_id, self.slots = n, svc, {}, 0, Slots()
        self.interval = False                   # an interval map (else single values)


class _Family:
    __slots__ = ("services", "masq")

    def __init__(self):
        self.services: Dict[str, _Svc] = {}
        self.masq: Counter = Counter()          # address -> gate/ipip reals using it (the masq_dests set)


def render_state(table: Table, family: str):
    """(the nft script that replaces table `<ip|ip6> hadaemon` with `table`'s services of `family`, the
    state the backend keeps to change that table in place afterwards)."""
    fam = _FAMILY[family]
    state = _Family()
    lines = [f"table {fam} {TABLE} {{}}", f"delete table {fam} {TABLE}", f"table {fam} {TABLE} {{"]
    services = [table[k] for k in sorted(table) if table[k].service.family == family]
    for e in services:
        for d in e.dests.values():
            if _masq(d):
                state.masq[d.address] += 1
    addr_type = "ipv4_addr" if family == "inet" else "ipv6_addr"
    masq = sorted(state.masq)
    lines.append(f"  set masq_dests {{ type {addr_type};"
                 + (f" elements = {{ {', '.join(masq)} }};" if masq else "") + " }")
    pre, chains = [], []
    for i, entry in enumerate(services):
        svc, name = entry.service, f"s{i}"
        st = state.services[svc.key] = _Svc(i, svc)
        if svc.protocol == "fwm":
            pre.append(f"    meta mark {svc.fwmark} jump {name}")
        else:
            pre.append(f"    {fam} daddr {svc.address} {svc.protocol} dport {svc.port} jump {name}")
        keys = sorted(entry.dests)
        for j, k in enumerate(keys):
            st.ids[k] = j
            if entry.dests[k].weight > 0:
                st.slots.set_weight(j, entry.dests[k].weight)
        st.next_id = len(keys)
        st.slots.compact()
        st.slots.take_changes()
        st.interval = st.slots.total > SINGLE_VALUES
        elements = st.slots.elements()
        # the key is the 32-bit value of numgen or jhash; `typeof numgen` for both (nft 1.0.6 crashes
        # listing a map declared `typeof jhash ...`)
        lines.append(f"  map {name}m {{ typeof numgen inc mod 1 : verdict;{' flags interval;' if st.interval else ''}"
                     + (f" elements = {{ {_elements(name, elements, st.interval)} }};" if elements else "") + " }")
        body = []
        if svc.persistent is not None:
            for j in range(len(keys)):
                lines.append(f"  set {name}p{j} {{ type {addr_type}; flags dynamic,timeout; "
                             f"timeout {svc.persistent}s; }}")
            chains.append(f"  chain {name}q {{\n" + "".join(f"    {_mask_expr(svc)} @{name}p{j} jump {name}d{j}\n"
                                                           for j in range(len(keys))) + "  }")
            body.append(f"    jump {name}q")
        body.append(f"    jump {name}n")
        body.append(f'    drop comment "{_svc_comment(svc)}"')
        chains.append(f"  chain {name} {{\n" + "\n".join(body) + "\n  }")
        chains.append(f"  chain {name}n {{\n" + (f"    {_pick_rule(svc, name, st.slots.total)}\n" if st.slots.total
                                                  else "") + "  }")
        for j, k in enumerate(keys):
            chains.append(_dest_chain(f"{name}d{j}", f"{name}p{j}", svc, entry.dests[k]))
    lines.append("  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;")
    lines.extend(pre)
    lines.append("  }")
    lines.append("  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n"
                 f"    ct status dnat {fam} daddr @masq_dests masquerade\n  }}")
    lines.extend(chains)
    lines.append("}")
    return "\n".join(lines) + "\n", state


def render(table: Table, family: str) -> str:
    """The nft script that replaces table `<ip|ip6> hadaemon` with `table`'s services of `family`."""
    return render_state(table, family)[0]


def render_changes(state: _Family, model: Table, ops: List[Op], family: str) -> str | None:
    """The nft commands that apply destination ops (AddDest, EditDest, DelDest) of `family` in place,
    updating `state`; None when an op needs the table rewritten (a service added, edited or removed).
    The work and the script are proportional to the ops (and, for a persistent service whose reals come
    or go, to its reals), not to the table."""
    fam = _FAMILY[family]
    t = f"{fam} {TABLE}"
    out: List[str] = []
    touched: Dict[str, int] = {}             # service key -> its total before the changes
    q_dirty = set()
    dests = {k: dict(model[k].dests) for k in {op.service.key for op in ops} if k in model}
    for op in ops:
        key = op.service.key
        st = state.services.get(key)
        if (not isinstance(op, (AddDest, EditDest, DelDest)) or st is None or st.svc != op.service
                or key not in dests):
            return None
        name, svc, d = f"s{st.n}", st.svc, op.dest
        touched.setdefault(key, st.slots.total)
        old = dests[key].get(d.key)
        if isinstance(op, AddDest):
            j = st.ids[d.key] = st.next_id
            st.next_id += 1
            if svc.persistent is not None:
                out.append(f"add set {t} {name}p{j} {{ type {'ipv4_addr' if family == 'inet' else 'ipv6_addr'}; "
                           f"flags dynamic,timeout; timeout {svc.persistent}s; }}")
                q_dirty.add(key)
            out.append(f"add chain {t} {name}d{j}")
            out.append(f"add rule {t} {name}d{j} {_dest_rule(f'{name}p{j}', svc, d)}")
            st.slots.set_weight(j, d.weight)
            dests[key][d.key] = d
        elif isinstance(op, EditDest):
            j = st.ids[d.key]
            if old is None or (old.method, old.lower, old.upper) != (d.method, d.lower, d.upper):
                # the rule changes (a weight alone is only the map: read() counts the real's values there)
                out.append(f"flush chain {t} {name}d{j}")
                out.append(f"add rule {t} {name}d{j} {_dest_rule(f'{name}p{j}', svc, d)}")
            if svc.persistent is not None and d.weight == 0 and old is not None and old.weight > 0:
                out.append(f"flush set {t} {name}p{j}")        # quiescent: its persistent clients go
            st.slots.set_weight(j, d.weight)
            dests[key][d.key] = d
        else:
            j = st.ids.pop(d.key)
            st.slots.set_weight(j, 0)
            out.append(("del", key, j))                         # after the map and sNq no longer name it
            dests[key].pop(d.key, None)
            if svc.persistent is not None:
                q_dirty.add(key)
        new = d if not isinstance(op, DelDest) else None
        if old is not None and new is not None and old.address == new.address and _masq(old) == _masq(new):
            continue                                            # the masq_dests set stays as it is
        for dd, sign in ((old, -1), (new, 1)):
            if dd is not None and _masq(dd):
                n = state.masq[dd.address] + sign
                if n <= 0:
                    state.masq.pop(dd.address, None)
                    if sign < 0:
                        out.append(("unmasq", dd.address))
                else:
                    state.masq[dd.address] = n
                    if sign > 0 and n == 1:
                        out.insert(0, f"add element {t} masq_dests {{ {dd.address} }}")
    script: List[str] = []
    deletes: List[str] = []
    for item in out:
        if isinstance(item, tuple):
            if item[0] == "del":
                st = state.services[item[1]]
                name = f"s{st.n}"
                deletes.append(f"delete chain {t} {name}d{item[2]}")
                if st.svc.persistent is not None:
                    deletes.append(f"delete set {t} {name}p{item[2]}")
            elif item[1] not in state.masq:
                deletes.append(f"delete element {t} masq_dests {{ {item[1]} }}")
        else:
            script.append(item)
    for key, before in touched.items():
        st = state.services[key]
        name = f"s{st.n}"
        if not st.interval and st.slots.total > SINGLE_VALUES:
            return None                         # too many values for single elements: rewrite (interval map)
        flushed, deleted, added = st.slots.take_changes()
        if key in q_dirty:
            script.append(f"flush chain {t} {name}q")
            script.extend(f"add rule {t} {name}q {_mask_expr(st.svc)} @{name}p{j} jump {name}d{j}"
                          for j in sorted(st.ids.values()))
        if flushed:
            script.append(f"flush map {t} {name}m")
        elif deleted:
            script.append(f"delete element {t} {name}m {{ {', '.join(_keys_of(deleted, st.interval))} }}")
        elements = st.slots.elements() if flushed else added
        if elements:
            script.append(f"add element {t} {name}m {{ {_elements(name, elements, st.interval)} }}")
        if st.slots.total != before or flushed:
            script.append(f"flush chain {t} {name}n")
            if st.slots.total:
                script.append(f"add rule {t} {name}n {_pick_rule(st.svc, name, st.slots.total)}")
    return "\n".join(script + deletes) + "\n" if script or deletes else ""


def parse_listing(data: dict) -> Table:
    """The Table described by the comments in `nft -j list table` output."""
    services: Dict[str, VirtualService] = {}
    dests: Dict[str, List[tuple]] = {}
    owned: Dict[str, Dict[str, int]] = {}        # service chain -> {dest chain: values it owns in the map}
    for obj in data.get("nftables", []):
        m = obj.get("map")
        if m is not None and m.get("name", "").endswith("m"):
            counts = owned.setdefault(m["name"][:-1], {})
            for key, verdict in m.get("elem", []):
                if isinstance(key, dict) and "elem" in key:      # an element with options
                    key = key["elem"]["val"]
                lo, hi = key["range"] if isinstance(key, dict) else (key, key)
                target = verdict["jump"]["target"]
                counts[target] = counts.get(target, 0) + hi - lo + 1
            continue
        rule = obj.get("rule")
        if not rule or "comment" not in rule:
            continue
        comment, chain = rule["comment"], rule["chain"]
        try:
            if comment.startswith(_SVC_TAG + " "):
                services[chain] = _parse_svc(comment)
            elif comment.startswith(_DEST_TAG + " "):
                dests.setdefault(chain.rsplit("d", 1)[0], []).append((chain, _parse_dest(comment)))
        except (ValueError, TableError) as e:
            raise BackendError(f"nft table {TABLE}: unreadable rule comment {comment!r}: {e}") from e
    table: Table = {}
    for chain, svc in services.items():
        counts = owned.get(chain)
        found = {}
        for dchain, d in dests.get(chain, []):
            if counts is not None:        # the weight is what the real owns in the map (not the comment's)
                d = Destination(d.address, d.port, d.method, counts.get(dchain, 0), d.lower, d.upper)
            found[d.key] = d
        table[svc.key] = Service(svc, found)
    return table


class NftBackend(Backend):
    """Weighted DNAT with nftables (the `nft` command), for kernels without IPVS.

    Why the nft CLI and not libnftables' Python bindings: python3-nftables is a Debian/RHEL system
    package that the project's virtualenv cannot import, while `nft -f` gives the same atomic
    transaction and `nft -j` the same JSON; one small subprocess per table change is cheap.
    """

    name = "nft"

    def __init__(self, nft: str = "nft"):
        self.nft = shutil.which(nft) or nft
        self._model: Table | None = None     # what we last wrote or read (saves a read per apply)
        self._state: Dict[str, _Family] = {}  # per family, as we last wrote it whole: to change it in place
        self.writes = 0                       # whole-table writes (a measure for tests and the bench)
        self.updates = 0                      # in-place changes

    @classmethod
    def unavailable(cls) -> str:
        if not shutil.which("nft"):
            return "nft (nftables) is not installed"
        r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        return "" if r.returncode == 0 else f"nftables not usable: {r.stderr.strip()}"

    def _run(self, args, script=None) -> str:
        r = subprocess.run([self.nft, *args], input=script, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BackendError(f"nft {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def read(self) -> Table:
        table: Table = {}
        for fam in _FAMILY.values():
            r = subprocess.run([self.nft, "-j", "list", "table", fam, TABLE], capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                if "No such file" in r.stderr or "does not exist" in r.stderr:
                    continue
                raise BackendError(f"nft list table {fam} {TABLE}: {r.stderr.strip()}")
            table.update(parse_listing(json.loads(r.stdout)))
        if table != self._model:
            self._state = {}                  # not what we wrote: the next change rewrites the table
        self._model = dict(table)
        return table

    def apply(self, ops: Iterable[Op]) -> None:
        """Destination changes (the event path: weights, reals coming and going) are made in place, with
        `add/delete element`, `flush chain` + `add rule` in one `nft -f` transaction proportional to the
        changes; a service added, edited or removed (a reload), or a table we did not write ourselves,
        rewrites the table of that family whole (also one transaction)."""
        ops = list(ops)
        if not ops:
            return
        try:
            wanted = apply_ops(self._model if self._model is not None else self.read(), ops)
        except TableError:
            try:                              # changed behind our back: start from what is there
                wanted = apply_ops(self.read(), ops)
            except TableError as e:
                raise BackendError(f"operations do not fit the nft table: {e}") from e
        families = {o.service.family for o in ops}
        rewrite = set()
        script = ""
        for family in sorted(families):
            state = self._state.get(family)
            mine = [o for o in ops if o.service.family == family]
            part = render_changes(state, self._model, mine, family) if state is not None else None
            if part is None:
                rewrite.add(family)
                self._state.pop(family, None)
            else:
                script += part
        if rewrite:
            self.write(wanted, families=rewrite, extra=script)
            return
        try:
            if script:
                self._run(["-f", "-"], script)
        except BackendError:
            self._model, self._state = None, {}
            raise
        self.updates += 1
        self._model = wanted

    def write(self, table: Table, families=("inet", "inet6"), extra: str = "") -> None:
        """Replace our nft tables of `families` with `table` in one transaction (with `extra`, in-place
        changes of the other family, in the same transaction)."""
        script = extra
        states = {}
        for family in sorted(families):
            if any(e.service.family == family for e in table.values()):
                text, states[family] = render_state(table, family)
                script += text
            else:
                fam = _FAMILY[family]
                script += f"table {fam} {TABLE} {{}}\ndelete table {fam} {TABLE}\n"
                states[family] = _Family()
        try:
            self._run(["-f", "-"], script)
        except BackendError:
            self._model, self._state = None, {}
            raise
        self.writes += 1
        if extra:
            self._model = dict(table)
        else:
            model = {k: e for k, e in (self._model or {}).items() if e.service.family not in families}
            model.update({k: e for k, e in table.items() if e.service.family in families})
            self._model = model if self._model is not None or set(families) == {"inet", "inet6"} else None
        self._state.update(states)
        if self._model is None:
            self._state = {}

    def clear(self, keys: Iterable[str]) -> List[Op]:
        ops = super().clear(keys)
        if not self.read():                       # nothing left: remove our tables entirely
            self.write({})
        return ops
