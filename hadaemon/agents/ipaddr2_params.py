"""IPaddr2 parameters, pure: the OCF meta-data, parameter checks as ClusterLabs IPaddr2 does them,
findif's route choice, broadcast and label rules.  No sockets, no files."""
from __future__ import annotations

import ipaddress
import logging
import re
from typing import Mapping, NamedTuple, Sequence, Tuple

from hadaemon.agents import ocf
from hadaemon.agents.ocf import OCF_ERR_CONFIGURED, OcfError

log = logging.getLogger("hadaemon.ipaddr2")

ARP_SENDERS = ("", "send_arp", "iputils_arping", "libnet_arping", "ipoibarping")

# (name, default, type, shortdesc, longdesc); ip is required.
PARAMETERS: Sequence[Tuple[str, str, str, str, str]] = (
    ("ip", "", "string", "IPv4 or IPv6 address",
     "The IPv4 (dotted quad) or IPv6 (colon hexadecimal) address to bring up, e.g. 192.168.1.1."),
    ("nic", "", "string", "Network interface",
     "The base interface to put the address on. When empty, it is taken from the routing table "
     "(the most specific connected route containing the address). 'eth0:label' is accepted (deprecated)."),
    ("cidr_netmask", "", "string", "CIDR netmask",
     "The prefix length (e.g. 24; a dotted quad is converted). When empty, taken from the routing table."),
    ("broadcast", "", "string", "Broadcast address",
     "IPv4 broadcast address; '+' sets and '-' clears the host bits of the prefix. Default: none."),
    ("iflabel", "", "string", "Interface label",
     "Label appended to the interface name (eth0:label, at most 15 characters in all); IPv4 only."),
    ("lvs_support", "false", "boolean", "Enable support for LVS Direct Routing",
     "When starting, take the address off lo (where an LVS-DR real server keeps it) and put it back "
     "on lo when stopping."),
    ("lvs_ipv6_addrlabel", "false", "boolean", "IPv6 address label (not supported)",
     "Accepted for compatibility; setting it true is rejected as not configured."),
    ("lvs_ipv6_addrlabel_value", "99", "integer", "IPv6 address label value", "Unused."),
    ("mac", "", "string", "Cluster IP MAC address", "Only used by cluster-IP clones (not supported)."),
    ("clusterip_hash", "sourceip-sourceport", "string", "Cluster IP hashing", "Not supported."),
    ("unique_clone_address", "false", "boolean", "Unique address per clone", "Not supported."),
    ("arp_interval", "200", "integer", "ARP/NA packet interval in ms",
     "Milliseconds between unsolicited ARP (IPv4) or NA (IPv6) rounds."),
    ("arp_count", "5", "integer", "ARP/NA packet count sent during initialization",
     "Number of rounds sent at start; an IPv4 round is a gratuitous ARP request and a reply."),
    ("arp_count_refresh", "0", "integer", "ARP packet count sent during monitoring",
     "Rounds sent on each monitor, to repair stale neighbour caches after a split brain."),
    ("arp_bg", "", "string", "Send ARP/NA from the background",
     "Send all rounds after the first from a detached process. Default true for IPv4, false for IPv6."),
    ("arp_sender", "", "string", "ARP sender (ignored)",
     "Accepted for compatibility; hadaemon always sends with its built-in sender."),
    ("send_arp_opts", "", "string", "Options for the ARP sender (ignored)", "Accepted for compatibility."),
    ("flush_routes", "false", "boolean", "Flush routes on stop (no-op)",
     "Accepted for compatibility; Linux has had no IPv4 route cache to flush since 3.6."),
    ("run_arping", "true", "string", "Check for an address collision before start",
     "Before adding an IPv4 address, send 2 ARP probes 100 ms apart and fail the start when another "
     "host answers for the address. Default true here (false in ClusterLabs IPaddr2)."),
    ("nodad", "false", "string", "Use nodad flag", "IPv6: skip duplicate address detection."),
    ("noprefixroute", "false", "string", "Use noprefixroute flag", "Do not add the prefix route."),
    ("preferred_lft", "forever", "string", "IPv6 preferred lifetime",
     "'forever' or seconds; 0 keeps the address from being chosen as a source address."),
    ("network_namespace", "", "string", "Network namespace (not supported)",
     "Run the agent inside the namespace instead (ip netns exec)."),
)
DEFAULTS = {name: default for name, default, *_ in PARAMETERS}

_R1 = r"([1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"
_R0 = r"([0-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"
_IPV4_RE = re.compile(rf"^{_R1}\.{_R0}\.{_R0}\.{_R0}$")


class Config(NamedTuple):
    """Parsed instance parameters (before the nic/netmask lookup in the routing table)."""
    ip: str
    family: int  # 4 or 6
    nic: str
    netmask: str  # as given (dotted quad converted); "" when not given
    prefix: int | None  # the netmask as a valid prefix length, else None
    label: str  # the iflabel without the nic
    broadcast: str  # "", "+", "-" or an address
    lvs_support: bool
    arp_count: int
    arp_interval: float  # seconds
    arp_count_refresh: int
    arp_bg: bool
    run_arping: bool
    nodad: bool
    noprefixroute: bool
    preferred_lft: int | None  # None = forever
    findif_error: str = ""  # a bad ip/netmask/broadcast syntax (start, validate-all)
    late_error: str = ""  # a bad announcement parameter, reported after findif


class Placement(NamedTuple):
    """Where the address goes, once nic and prefix are known."""
    nic: str
    prefix: int
    label: str  # full label "eth0:x" or ""
    broadcast: str | None


def meta_data() -> str:
    """The OCF meta-data XML."""
    # Not xml.sax.saxutils: it imports urllib.request and http.client (~0.1 s) for meta-data.
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

    def quoteattr(text: str) -> str:
        return f'"{escape(text)}"'

    params = []
    for name, default, kind, short, long in PARAMETERS:
        attrs = ' unique="1" required="1"' if name == "ip" else ' unique="0" required="0"'
        params.append(
            f'<parameter name="{name}"{attrs}>\n<longdesc lang="en">{escape(long)}</longdesc>\n'
            f'<shortdesc lang="en">{escape(short)}</shortdesc>\n'
            f'<content type="{kind}" default={quoteattr(default)} />\n</parameter>')
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">\n'
        '<resource-agent name="IPaddr2" version="1.0">\n<version>1.0</version>\n'
        '<longdesc lang="en">Manages a virtual IPv4 or IPv6 address on an interface (hadaemon, '
        'parameter-compatible with ClusterLabs IPaddr2). After adding the address it announces it '
        'with gratuitous ARP (request and reply forms) or unsolicited neighbour advertisements.'
        '</longdesc>\n<shortdesc lang="en">Manages virtual IPv4 and IPv6 addresses</shortdesc>\n'
        '<parameters>\n' + "\n".join(params) + '\n</parameters>\n<actions>\n'
        '<action name="start" timeout="20s" />\n<action name="stop" timeout="20s" />\n'
        '<action name="status" depth="0" timeout="20s" interval="10s" />\n'
        '<action name="monitor" depth="0" timeout="20s" interval="10s" />\n'
        '<action name="meta-data" timeout="5s" />\n<action name="validate-all" timeout="20s" />\n'
        '</actions>\n</resource-agent>\n')


def dotted_quad_to_prefix(mask: str) -> int | None:
    """255.255.255.0 -> 24; None when it is not a contiguous dotted-quad netmask."""
    try:
        value = int(ipaddress.IPv4Address(mask))
    except ValueError:
        return None
    inverted = value ^ 0xFFFFFFFF
    if inverted & (inverted + 1):
        return None
    return 32 - inverted.bit_length()


def parse_params(params: Mapping[str, str], action: str, meta: Mapping[str, str] | None = None,
                 late: bool = True) -> Config:
    """Check the parameters in IPaddr2's order; raises OcfError(OCF_ERR_CONFIGURED) with a message.

    IPaddr2 checks in three stages: the basics (ip given, clones, family), then findif (which checks
    the syntax of ip, netmask and broadcast only on start and validate-all, then looks up the route),
    then the announcement parameters.  Which stage fails first decides the code (a probe whose route
    lookup fails says "not running" even with a bad arp_count), so with late=False the findif syntax
    error and the late error are returned in the Config (findif_error, late_error) for the agent to
    raise at the right moment.
    """
    p = dict(DEFAULTS)
    p.update({k: v for k, v in params.items() if v is not None})
    meta = meta or {}
    strict = action in ("start", "validate-all")

    def bad(msg: str):
        raise OcfError(OCF_ERR_CONFIGURED, msg)

    ip = p["ip"].strip()
    if not ip and action != "stop":
        bad("IP address (the ip parameter) is mandatory")
    clone_max = meta.get("clone_max", "1") or "1"
    if not ocf.is_decimal(clone_max) or int(clone_max) < 1:
        bad(f"Invalid meta-attribute clone_max [{clone_max}], should be positive integer")
    if int(clone_max) > 1:
        bad("cluster IP (clone_max > 1, iptables CLUSTERIP) is not supported by hadaemon:IPaddr2")
    family = 6 if ":" in ip else 4
    if family == 4 and ocf.is_true(p["lvs_ipv6_addrlabel"]):
        bad("IPv4 does not support lvs_ipv6_addrlabel")
    if family == 6 and ocf.is_true(p["lvs_support"]):
        bad("The IPv6 does not support lvs_support")
    if family == 6 and ocf.is_true(p["lvs_ipv6_addrlabel"]):
        bad("lvs_ipv6_addrlabel is not supported by hadaemon:IPaddr2")
    if p["network_namespace"]:
        bad("network_namespace is not supported by hadaemon:IPaddr2; run the agent in the namespace")
    nic, label = p["nic"], p["iflabel"]
    if ":" in nic:
        nic, label = nic.split(":", 1)

    # findif: syntax (start and validate-all only)
    netmask = p["cidr_netmask"] or p.get("netmask", "")
    if netmask.count(".") == 3:
        converted = dotted_quad_to_prefix(netmask)
        if converted is not None:
            log.warning("Please convert dotted quad netmask %s to CIDR notation %d", netmask, converted)
            netmask = str(converted)
    limit = 32 if family == 4 else 128
    prefix = None
    if netmask.isdigit() and netmask.isascii() and len(netmask) <= 3 and 1 <= int(netmask) <= limit:
        prefix = int(netmask)
    brd = p["broadcast"]
    findif_error = ""
    if strict:
        if family == 4 and not _IPV4_RE.match(ip):
            findif_error = f"IP address [{ip}] not valid."
        elif family == 6 and not _valid_ipv6(ip):
            findif_error = f"IP address [{ip}] not valid."
        elif family == 6 and not nic and ip.lower().startswith("fe80::"):
            findif_error = f"'nic' parameter is mandatory for a link local address [{ip}]."
        elif netmask and prefix is None:
            findif_error = f"Invalid netmask specification [{netmask}]."
        elif family == 4 and brd and brd not in ("+", "-") and not _IPV4_RE.match(brd):
            findif_error = f"Invalid broadcast address [{brd}]."
    if family == 6 and _valid_ipv6(ip):
        ip = ipaddress.IPv6Address(ip).compressed

    # after findif: the announcement parameters (every action)
    late_error = ""
    lft = p["preferred_lft"].strip()
    if p["arp_sender"] not in ARP_SENDERS:
        late_error = f"unrecognized arp_sender value: {p['arp_sender']}"
    elif not ocf.is_decimal(p["arp_interval"]) or int(p["arp_interval"]) <= 0:
        late_error = f"Invalid OCF_RESKEY_arp_interval [{p['arp_interval']}]"
    elif not ocf.is_decimal(p["arp_count"]) or int(p["arp_count"]) <= 0:
        late_error = f"Invalid OCF_RESKEY_arp_count [{p['arp_count']}]"
    elif not lft:
        late_error = "Empty value is invalid for OCF_RESKEY_preferred_lft"
    elif lft != "forever" and not ocf.is_decimal(lft):
        late_error = f"Invalid OCF_RESKEY_preferred_lft [{lft}], should be 'forever' or seconds"
    elif not ocf.is_decimal(p["arp_count_refresh"]):
        late_error = f"Invalid OCF_RESKEY_arp_count_refresh [{p['arp_count_refresh']}]"
    if late and (findif_error or late_error):
        bad(findif_error or late_error)

    def number(key: str, default: int) -> int:
        return int(p[key]) if ocf.is_decimal(p[key]) else default

    arp_bg = p["arp_bg"]
    return Config(
        ip=ip, family=family, nic=nic, netmask=netmask, prefix=prefix, label=label, broadcast=brd,
        lvs_support=ocf.is_true(p["lvs_support"]),
        arp_count=number("arp_count", 5), arp_interval=number("arp_interval", 200) / 1000.0,
        arp_count_refresh=number("arp_count_refresh", 0),
        arp_bg=ocf.is_true(arp_bg) if arp_bg else family == 4,
        run_arping=ocf.is_true(p["run_arping"]), nodad=ocf.is_true(p["nodad"]),
        noprefixroute=ocf.is_true(p["noprefixroute"]),
        preferred_lft=int(lft) if ocf.is_decimal(lft) else None,
        findif_error=findif_error, late_error=late_error)


def _valid_ipv6(ip: str) -> bool:
    try:
        ipaddress.IPv6Address(ip)
    except ValueError:
        return False
    return True


class Route(NamedTuple):
    dst: str
    dst_len: int
    nic: str


def choose_route(ip: str, prefix: int | None, nic: str, routes: Sequence[Route]) -> Route | None:
    """findif: the most specific route containing ip[/prefix] (restricted to nic when given)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    best = None
    for r in routes:
        if r.dst_len == 0 or (nic and r.nic != nic) or (prefix is not None and r.dst_len > prefix):
            continue
        try:
            net = ipaddress.ip_network(f"{r.dst}/{r.dst_len}", strict=False)
        except ValueError:
            continue
        if net.version == addr.version and addr in net and (best is None or r.dst_len >= best.dst_len):
            best = r
    return best


def broadcast_for(ip: str, prefix: int, spec: str) -> str | None:
    """The IPv4 broadcast to set: '+' all host bits set, '-' host bits clear (none for /31, /32, as
    `ip addr add ... brd +` does), an address as is."""
    if not spec:
        return None
    if spec in ("+", "-"):
        if prefix > 30:  # as ip(8): no broadcast for /31 and /32
            return None
        try:
            net = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
        except ValueError:  # only reachable for stop/monitor, where the syntax is not checked
            return None
        return str(net.broadcast_address if spec == "+" else net.network_address)
    return spec


def placement_for(cfg: Config, nic: str, prefix: int) -> Placement:
    """Full label and broadcast for the address; a label longer than 15 characters is refused (for
    IPv6 too, as IPaddr2, though only IPv4 addresses carry labels).  prefix -1: a netmask that is not
    a valid prefix (never matches an address)."""
    label = f"{nic}:{cfg.label}" if cfg.label else ""
    if len(label) > 15:
        raise OcfError(OCF_ERR_CONFIGURED, f"Interface label [{label}] exceeds maximum character limit of 15")
    brd = broadcast_for(cfg.ip, prefix, cfg.broadcast) if cfg.family == 4 and prefix >= 0 else None
    return Placement(nic, prefix, label if cfg.family == 4 else "", brd)
