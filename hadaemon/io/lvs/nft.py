"""nftables backend for kernels without IPVS: weighted DNAT in its own `ip hadaemon` / `ip6 hadaemon` table.

Layout (one table per address family, replaced atomically by one `nft -f` transaction per apply):

    chain pre   (nat prerouting, dstnat): `ip daddr VIP tcp dport 80 jump s0` / `meta mark 7 jump s1`
    chain post  (nat postrouting, srcnat): `ct status dnat ip daddr @masq_dests masquerade`
    chain sN    one per virtual service:
                  [persistent] `ip saddr & MASK @sNpJ jump sNdJ` for each weighted real J
                  `numgen inc mod TOTAL vmap { 0 : jump sNd0, 1-3 : jump sNd1 }`   (wrr and the rest)
                  `jhash ip saddr mod TOTAL vmap {...}` for sh (source hashing), `ip daddr` for dh
                  `drop comment "hadaemon-service ..."`   (no real with a weight: no new connections)
    chain sNdJ  one per real server: `[update @sNpJ {...}] dnat to ADDR:PORT comment "hadaemon-dest ..."`
                (`redirect to :PORT` for a loopback real such as the fallback 127.0.0.1:80)

Weights become ranges of the numgen/jhash value (weight 1 and 3 -> 0 and 1-3), so new connections go
1:3 exactly with numgen. A real with weight 0 (quiescent) keeps its chain but is left out of the map.
Only new connections pass through nat chains, so established ones stay where they are, as with IPVS.
Forwarding methods: every real is reached by DNAT. For `masq` reals the real must route replies back
through the director (the LVS-NAT requirement); `gate` and `ipip` reals (LVS-DR/TUN, which reply
directly in IPVS) are also masqueraded so their replies return through the director.
Persistence: a dynamic set of client addresses (under the netmask) per real with the persistence
timeout; a client found in a real's set goes to that real again. The sets start empty when the table
is replaced (any apply), and quiescent reals are not kept for persistent clients.
The model (scheduler, thresholds, methods...) is kept in rule comments so read() returns the Table.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from functools import lru_cache
from typing import Dict, Iterable, List

from hadaemon.core.director.lvs_table import (
    DEFAULT_NETMASK, Destination, Op, Service, Table, TableError, VirtualService, apply_ops,
)
from hadaemon.io.lvs.base import Backend, BackendError

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


@lru_cache(maxsize=1 << 17)
def _dest_chain(chain: str, pset: str, svc: VirtualService, d: Destination) -> str:
    """One real server's chain (memoized: in a storm most reals keep their chain from one apply to
    the next, and rendering is the Python part of a whole-table replace)."""
    stmt = ""
    if svc.persistent is not None and d.weight > 0:
        stmt += f"update @{pset} {{ {_mask_expr(svc)} }} "
    l4 = svc.protocol if svc.protocol != "fwm" else "{ tcp, udp }"
    if _is_local(d.address):
        stmt += f"meta l4proto {l4} redirect to :{d.port}" if d.port else "redirect"
    elif d.port:
        target = f"[{d.address}]:{d.port}" if svc.family == "inet6" else f"{d.address}:{d.port}"
        stmt += f"meta l4proto {l4} dnat to {target}"
    else:
        stmt += f"dnat to {d.address}"
    return f"  chain {chain} {{\n    {stmt} comment \"{_dest_comment(d)}\"\n  }}"


def render(table: Table, family: str) -> str:
    """The nft script that replaces table `<ip|ip6> hadaemon` with `table`'s services of `family`."""
    fam = _FAMILY[family]
    lines = [f"table {fam} {TABLE} {{}}", f"delete table {fam} {TABLE}", f"table {fam} {TABLE} {{"]
    services = [table[k] for k in sorted(table) if table[k].service.family == family]
    masq = sorted({d.address for e in services for d in e.dests.values()
                   if d.method in ("gate", "ipip") and not _is_local(d.address)})
    addr_type = "ipv4_addr" if family == "inet" else "ipv6_addr"
    lines.append(f"  set masq_dests {{ type {addr_type};"
                 + (f" elements = {{ {', '.join(masq)} }};" if masq else "") + " }")
    pre, chains = [], []
    for i, entry in enumerate(services):
        svc, name = entry.service, f"s{i}"
        if svc.protocol == "fwm":
            pre.append(f"    meta mark {svc.fwmark} jump {name}")
        else:
            pre.append(f"    {fam} daddr {svc.address} {svc.protocol} dport {svc.port} jump {name}")
        dests = [entry.dests[k] for k in sorted(entry.dests)]
        weighted = [(j, d) for j, d in enumerate(dests) if d.weight > 0]
        body = []
        if svc.persistent is not None:
            for j, _d in weighted:
                lines.append(f"  set {name}p{j} {{ type {addr_type}; flags dynamic,timeout; "
                             f"timeout {svc.persistent}s; }}")
                body.append(f"    {_mask_expr(svc)} @{name}p{j} jump {name}d{j}")
        if len(weighted) == 1:
            body.append(f"    jump {name}d{weighted[0][0]}")
        elif weighted:
            total, parts = 0, []
            for j, d in weighted:
                lo, hi = total, total + d.weight - 1
                parts.append(f"{lo if lo == hi else f'{lo}-{hi}'} : jump {name}d{j}")
                total += d.weight
            if svc.scheduler == "sh":
                key = f"jhash {fam} saddr mod {total}"
            elif svc.scheduler == "dh":
                key = f"jhash {fam} daddr mod {total}"
            else:
                key = f"numgen inc mod {total}"
            body.append(f"    {key} vmap {{ {', '.join(parts)} }}")
        body.append(f'    drop comment "{_svc_comment(svc)}"')
        chains.append(f"  chain {name} {{\n" + "\n".join(body) + "\n  }")
        for j, d in enumerate(dests):
            chains.append(_dest_chain(f"{name}d{j}", f"{name}p{j}", svc, d))
    lines.append("  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;")
    lines.extend(pre)
    lines.append("  }")
    lines.append("  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n"
                 f"    ct status dnat {fam} daddr @masq_dests masquerade\n  }}")
    lines.extend(chains)
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_listing(data: dict) -> Table:
    """The Table described by the comments in `nft -j list table` output."""
    services: Dict[str, VirtualService] = {}
    dests: Dict[str, List[Destination]] = {}
    for obj in data.get("nftables", []):
        rule = obj.get("rule")
        if not rule or "comment" not in rule:
            continue
        comment, chain = rule["comment"], rule["chain"]
        try:
            if comment.startswith(_SVC_TAG + " "):
                services[chain] = _parse_svc(comment)
            elif comment.startswith(_DEST_TAG + " "):
                dests.setdefault(chain.rsplit("d", 1)[0], []).append(_parse_dest(comment))
        except (ValueError, TableError) as e:
            raise BackendError(f"nft table {TABLE}: unreadable rule comment {comment!r}: {e}") from e
    table: Table = {}
    for chain, svc in services.items():
        table[svc.key] = Service(svc, {d.key: d for d in dests.get(chain, [])})
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
        self._model = dict(table)
        return table

    def apply(self, ops: Iterable[Op]) -> None:
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
        self.write(wanted, families={o.service.family for o in ops})

    def write(self, table: Table, families=("inet", "inet6")) -> None:
        """Replace our nft tables of `families` with `table` in one transaction."""
        script = ""
        for family in sorted(families):
            if any(e.service.family == family for e in table.values()):
                script += render(table, family)
            else:
                fam = _FAMILY[family]
                script += f"table {fam} {TABLE} {{}}\ndelete table {fam} {TABLE}\n"
        try:
            self._run(["-f", "-"], script)
        except BackendError:
            self._model = None
            raise
        model = {k: e for k, e in (self._model or {}).items() if e.service.family not in families}
        model.update({k: e for k, e in table.items() if e.service.family in families})
        self._model = model if self._model is not None or set(families) == {"inet", "inet6"} else None

    def clear(self, keys: Iterable[str]) -> List[Op]:
        ops = super().clear(keys)
        if not self.read():                       # nothing left: remove our tables entirely
            self.write({})
        return ops
