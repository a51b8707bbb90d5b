"""The LVS table model (virtual services and their destinations) and the pure diff between two tables.

A `Table` maps a service key (see `VirtualService.key`) to a `Service`: the `VirtualService` plus its
destinations keyed by `Destination.key`. `diff(current, wanted)` returns the operations that turn
`current` into `wanted`; `apply_ops(table, ops)` is the reference semantics of those operations (every
backend must end up in the table that `apply_ops` computes).

Order of the operations `diff` returns (each op is valid in the table produced by the ops before it):

1. services present in both tables: EditService (if its attributes changed), then AddDest, EditDest,
   DelDest — adds and edits before deletions so a service is never left without destinations
   transiently when one real replaces another (e.g. the fallback replacing the last real);
2. new services: AddService, then its AddDest ops;
3. removed services: DelDest for each destination, then DelService.

Within each group, services and destinations come in key order, so the result is deterministic.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Mapping, Tuple, Union

PROTOCOLS = ("tcp", "udp", "fwm")
METHODS = ("gate", "masq", "ipip")
FAMILIES = ("inet", "inet6")
# IPVS service flags we model by name (IP_VS_SVC_F_*): one-packet scheduling and the scheduler flags.
# The scheduler flags are stored under the scheduler's own names (sh-port for sh, flag-2 for others).
FLAG_BITS = {"ops": 0x4, "flag-1": 0x8, "flag-2": 0x10, "flag-3": 0x20,
             "sh-fallback": 0x8, "sh-port": 0x10, "mh-fallback": 0x8, "mh-port": 0x10}
SERVICE_FLAGS = tuple(FLAG_BITS)
_SCHED_FLAG_NAMES = {"sh": {0x8: "sh-fallback", 0x10: "sh-port"},
                     "mh": {0x8: "mh-fallback", 0x10: "mh-port"}}
DEFAULT_NETMASK = {"inet": "255.255.255.255", "inet6": "128"}
# One weight limit everywhere (ldirectord.cf, D-Bus SetWeight, both backends): ipvsadm's 0..65535.
# The kernel's IPVS would take up to 2^31-1, but ldirectord programs it through ipvsadm, which refuses
# more than 65535, and the nft backend needs the sum of a service's weights below 2^32.
MAX_WEIGHT = 65535
# The nft backend spreads new connections with `numgen inc mod TOTAL`: TOTAL (the sum of a service's
# weights) is a 32-bit value.
MAX_TOTAL_WEIGHT = 2 ** 32 - 1


def flag_bits(flags: Iterable[str]) -> int:
    """The IP_VS_SVC_F_* bits of flag names (persistence not included)."""
    bits = 0
    for f in flags:
        bits |= FLAG_BITS[f]
    return bits


def flag_names(bits: int, scheduler: str) -> Tuple[str, ...]:
    """Canonical flag names for IP_VS_SVC_F_* bits under `scheduler` (persistent/hashed bits ignored)."""
    names = []
    for bit, generic in ((0x4, "ops"), (0x8, "flag-1"), (0x10, "flag-2"), (0x20, "flag-3")):
        if bits & bit:
            names.append(_SCHED_FLAG_NAMES.get(scheduler, {}).get(bit, generic))
    return tuple(sorted(names))


class TableError(ValueError):
    """An operation that is not valid in the table it is applied to, or a malformed entry."""


def normalize_address(address: str) -> str:
    """The canonical text form of an IPv4/IPv6 address (raises TableError when it is not one)."""
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError as e:
        raise TableError(f"not an IP address: {address!r}") from e


def address_family(address: str) -> str:
    return "inet6" if ipaddress.ip_address(address.strip("[]")).version == 6 else "inet"


def hostport(address: str, port: int) -> str:
    """`192.0.2.1:80` or `[2001:db8::1]:80`, as ipvsadm prints them."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def service_key(protocol: str, address: str = "", port: int = 0, fwmark: int = 0,
                family: str = "inet") -> str:
    """The key of a virtual service: `tcp:192.0.2.1:80`, `udp:[2001:db8::1]:53`, `fwm:1`, `fwm6:1`."""
    if protocol == "fwm":
        return f"fwm:{fwmark}" if family == "inet" else f"fwm6:{fwmark}"
    return f"{protocol}:{hostport(address, port)}"


@dataclass(frozen=True)
class VirtualService:
    """One IPVS virtual service. tcp/udp services are keyed by address:port, fwm ones by fwmark+family.

    persistent: persistence timeout in seconds, or None when not persistent.
    netmask: persistence granularity (IPv4 dotted netmask, or IPv6 prefix length as a string);
             None means the default (255.255.255.255 / 128); always None without persistence.
    flags: sorted tuple of names from SERVICE_FLAGS, canonical for the scheduler (see flag_names).
    """

    protocol: str
    address: str = ""
    port: int = 0
    fwmark: int = 0
    family: str = "inet"
    scheduler: str = "wrr"
    persistent: int | None = None
    netmask: str | None = None
    flags: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise TableError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if self.protocol == "fwm":
            if not 0 < self.fwmark < 2 ** 32:
                raise TableError(f"fwmark must be 1..4294967295, not {self.fwmark}")
            if self.family not in FAMILIES:
                raise TableError(f"family must be inet or inet6, not {self.family!r}")
            object.__setattr__(self, "address", "")
            object.__setattr__(self, "port", 0)
        else:
            address = normalize_address(self.address)
            object.__setattr__(self, "address", address)
            object.__setattr__(self, "family", address_family(address))
            object.__setattr__(self, "fwmark", 0)
            if not 0 <= self.port < 65536:
                raise TableError(f"port must be 0..65535, not {self.port}")
        if self.persistent is not None and not 0 < self.persistent < 2 ** 32:
            raise TableError(f"persistent timeout must be 1..4294967295, not {self.persistent}")
        unknown = [f for f in self.flags if f not in SERVICE_FLAGS]
        if unknown:
            raise TableError(f"unknown service flag(s): {', '.join(unknown)}")
        object.__setattr__(self, "flags", flag_names(flag_bits(self.flags), self.scheduler))
        # the persistence netmask only matters with persistence; the default is stored as None
        netmask = self.netmask
        if netmask is not None:
            netmask = str(netmask).lstrip("/")
        if self.persistent is None or netmask == DEFAULT_NETMASK[self.family]:
            netmask = None
        object.__setattr__(self, "netmask", netmask)
        if not self.scheduler:
            raise TableError("scheduler must not be empty")

    @property
    def key(self) -> str:
        return service_key(self.protocol, self.address, self.port, self.fwmark, self.family)

    def describe(self) -> str:
        """`TCP  192.0.2.1:80` / `FWM  1` as in ipvsadm's listing (without the scheduler)."""
        if self.protocol == "fwm":
            return f"FWM  {self.fwmark}" + (" IPv6" if self.family == "inet6" else "")
        return f"{self.protocol.upper()}  {hostport(self.address, self.port)}"


@dataclass(frozen=True)
class Destination:
    """One real server of a virtual service: address:port, forwarding method, weight, thresholds
    (lower = l:, upper = u: in ldirectord.cf; 0 = unlimited)."""

    address: str
    port: int = 0
    method: str = "gate"
    weight: int = 1
    lower: int = 0
    upper: int = 0

    def __post_init__(self):
        object.__setattr__(self, "address", normalize_address(self.address))
        if self.method not in METHODS:
            raise TableError(f"forwarding method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0 <= self.port < 65536:
            raise TableError(f"port must be 0..65535, not {self.port}")
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise TableError(f"weight must be 0..{MAX_WEIGHT} (ipvsadm's range), not {self.weight}")
        if not (0 <= self.lower < 2 ** 32 and 0 <= self.upper < 2 ** 32):
            raise TableError("thresholds must be 0..4294967295")

    @property
    def key(self) -> str:
        return hostport(self.address, self.port)


@dataclass(frozen=True)
class Service:
    """A virtual service together with its destinations (key -> Destination)."""

    service: VirtualService
    dests: Mapping[str, Destination] = field(default_factory=dict)

    def __eq__(self, other):
        return (isinstance(other, Service) and self.service == other.service
                and dict(self.dests) == dict(other.dests))

    def __hash__(self):  # pragma: no cover - services are not used as dict keys
        return hash(self.service)


Table = Dict[str, Service]


def make_table(entries: Iterable[Tuple[VirtualService, Iterable[Destination]]]) -> Table:
    """Build a Table from (service, destinations) pairs; duplicate keys are a TableError."""
    table: Table = {}
    for svc, dests in entries:
        if svc.key in table:
            raise TableError(f"duplicate virtual service {svc.key}")
        dmap: Dict[str, Destination] = {}
        for d in dests:
            if d.key in dmap:
                raise TableError(f"duplicate real server {d.key} in {svc.key}")
            dmap[d.key] = d
        table[svc.key] = Service(svc, dmap)
    return table


# --- operations -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddService:
    service: VirtualService


@dataclass(frozen=True)
class EditService:
    service: VirtualService
    old: VirtualService


@dataclass(frozen=True)
class DelService:
    service: VirtualService


@dataclass(frozen=True)
class AddDest:
    service: VirtualService
    dest: Destination


@dataclass(frozen=True)
class EditDest:
    service: VirtualService
    dest: Destination
    old: Destination


@dataclass(frozen=True)
class DelDest:
    service: VirtualService
    dest: Destination


Op = Union[AddService, EditService, DelService, AddDest, EditDest, DelDest]


def diff(current: Mapping[str, Service], wanted: Mapping[str, Service]) -> List[Op]:
    """The operations that turn `current` into `wanted`, in the order described in the module doc."""
    ops: List[Op] = []
    for key in sorted(set(current) & set(wanted)):
        cur, want = current[key], wanted[key]
        svc = want.service
        if cur.service != svc:
            ops.append(EditService(svc, cur.service))
        for dkey in sorted(set(want.dests) - set(cur.dests)):
            ops.append(AddDest(svc, want.dests[dkey]))
        for dkey in sorted(set(want.dests) & set(cur.dests)):
            if want.dests[dkey] != cur.dests[dkey]:
                ops.append(EditDest(svc, want.dests[dkey], cur.dests[dkey]))
        for dkey in sorted(set(cur.dests) - set(want.dests)):
            ops.append(DelDest(svc, cur.dests[dkey]))
    for key in sorted(set(wanted) - set(current)):
        want = wanted[key]
        ops.append(AddService(want.service))
        for dkey in sorted(want.dests):
            ops.append(AddDest(want.service, want.dests[dkey]))
    for key in sorted(set(current) - set(wanted)):
        cur = current[key]
        for dkey in sorted(cur.dests):
            ops.append(DelDest(cur.service, cur.dests[dkey]))
        ops.append(DelService(cur.service))
    return ops


def apply_op(table: Table, op: Op) -> None:
    """Apply one operation to `table` in place; TableError when it is not valid there."""
    _apply_op(table, op, set())


def _apply_op(table: Table, op: Op, owned: set) -> None:
    """apply_op; the destinations of services whose key is in `owned` are dicts of this call's own
    (changed in place), others are copied once and then owned: a batch of n destination ops on a
    service of m destinations costs O(m + n), not O(n * m)."""
    key = op.service.key
    if isinstance(op, AddService):
        if key in table:
            raise TableError(f"AddService: {key} exists")
        table[key] = Service(op.service, {})
        owned.add(key)
        return
    if key not in table:
        raise TableError(f"{type(op).__name__}: no virtual service {key}")
    entry = table[key]
    if isinstance(op, EditService):
        table[key] = Service(op.service, entry.dests)
    elif isinstance(op, DelService):
        if entry.dests:
            raise TableError(f"DelService: {key} still has real servers")
        del table[key]
        owned.discard(key)
    else:
        dkey = op.dest.key
        dests = entry.dests
        if isinstance(op, AddDest):
            if dkey in dests:
                raise TableError(f"AddDest: {dkey} exists in {key}")
        elif isinstance(op, (EditDest, DelDest)):
            if dkey not in dests:
                raise TableError(f"{type(op).__name__}: no {dkey} in {key}")
        else:  # pragma: no cover
            raise TableError(f"unknown operation {op!r}")
        if key not in owned:
            dests = dict(dests)
            table[key] = entry = Service(entry.service, dests)
            owned.add(key)
        if isinstance(op, DelDest):
            del dests[dkey]
        else:
            dests[dkey] = op.dest


def apply_ops(table: Mapping[str, Service], ops: Iterable[Op]) -> Table:
    """A new table: `table` with `ops` applied in order (the reference semantics for backends).
    `table` itself is not changed."""
    result: Table = dict(table)
    owned: set = set()
    for op in ops:
        _apply_op(result, op, owned)
    return result


def dest_ops(service: VirtualService, current: Mapping[str, Destination],
             wanted: Mapping[str, Destination | None]) -> List[Op]:
    """The ops that give the destinations named in `wanted` their wanted value (None: absent) in a
    service whose destinations are `current`; other destinations are left alone. Adds, then edits,
    then deletions (as diff orders them), each in key order. O(len(wanted))."""
    adds, edits, dels = [], [], []
    for dkey in sorted(wanted):
        want, cur = wanted[dkey], current.get(dkey)
        if want is None:
            if cur is not None:
                dels.append(DelDest(service, cur))
        elif cur is None:
            adds.append(AddDest(service, want))
        elif cur != want:
            edits.append(EditDest(service, want, cur))
    return adds + edits + dels


def with_weight(table: Mapping[str, Service], service_key_: str, dest_key: str, weight: int) -> Table:
    """A copy of `table` with one destination's weight changed (TableError when it does not exist)."""
    if service_key_ not in table or dest_key not in table[service_key_].dests:
        raise TableError(f"no real server {dest_key} in {service_key_}")
    entry = table[service_key_]
    dests = dict(entry.dests)
    dests[dest_key] = replace(dests[dest_key], weight=weight)
    result = dict(table)
    result[service_key_] = Service(entry.service, dests)
    return result


_FORWARD_NAMES = {"gate": "Route", "masq": "Masq", "ipip": "Tunnel"}


def format_table(table: Mapping[str, Service], health: Mapping[Tuple[str, str], str] | None = None) -> str:
    """The table as `ipvsadm -Ln` prints it; with `health` ((service key, dest key) -> text) an extra
    column per real server."""
    lines = ["Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight" + ("  Health" if health is not None else "")]
    for key in sorted(table):
        entry = table[key]
        svc = entry.service
        head = f"{svc.describe()} {svc.scheduler}"
        if svc.flags:
            head += " (" + ",".join(svc.flags) + ")"
        if svc.persistent is not None:
            head += f" persistent {svc.persistent}"
            if svc.netmask:
                head += f" mask {svc.netmask}"
        lines.append(head)
        for dkey in sorted(entry.dests):
            d = entry.dests[dkey]
            row = f"  -> {d.key:<28} {_FORWARD_NAMES[d.method]:<7} {d.weight:<6}"
            if health is not None:
                row += "  " + health.get((key, dkey), "-")
            lines.append(row.rstrip())
    return "\n".join(lines) + "\n"


def table_to_data(table: Mapping[str, Service]) -> list:
    """The table as JSON-able data: [{"service": {...}, "dests": [{...}, ...]}, ...] in key order."""
    from dataclasses import asdict

    return [{"service": asdict(table[k].service),
             "dests": [asdict(table[k].dests[d]) for d in sorted(table[k].dests)]}
            for k in sorted(table)]


def table_from_data(data: list) -> Table:
    """The inverse of table_to_data (TableError on malformed entries)."""
    try:
        return make_table([(VirtualService(**dict(e["service"], flags=tuple(e["service"].get("flags", ())))),
                            [Destination(**d) for d in e["dests"]]) for e in data])
    except (KeyError, TypeError) as e:
        raise TableError(f"malformed table data: {e}") from e
