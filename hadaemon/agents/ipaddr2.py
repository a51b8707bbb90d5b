"""OCF agent hadaemon:IPaddr2: a virtual IP address on an interface, announced by gratuitous ARP / NA.

Parameter-compatible with ClusterLabs IPaddr2.  Usable as a library (``run(action, params, env)``
returns the OCF code, ``execute`` also the exit reason) and through the agents/IPaddr2 executable.
Addresses are managed with pyroute2; announcements are sent by hadaemon.io.garp; the parameter
rules are in hadaemon.agents.ipaddr2_params.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import List, Mapping

from hadaemon.agents import ocf
from hadaemon.agents.ipaddr2_params import (  # noqa: F401 - re-exported for callers of this module
    DEFAULTS,
    PARAMETERS,
    Config,
    Placement,
    Route,
    broadcast_for,
    choose_route,
    dotted_quad_to_prefix,
    meta_data,
    parse_params,
    placement_for,
)
from hadaemon.agents.ipaddr2_handoff import (  # noqa: F401 - re-exported: the LRM's prepare/arm use them
    HANDOFF_NICE, PREPARED_TTL, _PREPARED, _close, _Prepared, _set_state, _state_dir, _take_prepared, armed_start,
    cancel_armed, discard, prepare, stop_prepared, trigger)
from hadaemon.agents.ipaddr2_io import (  # noqa: F401 - netlink constants re-exported
    ADDR_PROTO, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_TENTATIVE, RT_SCOPE_HOST, RT_SCOPE_LINK,
    RT_TABLE_LOCAL, RT_TABLE_MAIN, _SENDERS, _SENDERS_LOCK, NetlinkError, _nl_add_ipv4, _send_in_thread)
from hadaemon.agents.ocf import (OCF_ERR_CONFIGURED, OCF_ERR_GENERIC, OCF_ERR_PERM, OCF_ERR_UNIMPLEMENTED,
                                 OCF_NOT_RUNNING, OCF_SUCCESS, OcfError, Result)

log = logging.getLogger("hadaemon.ipaddr2")

DAD_WAIT_MAX = 10.0  # seconds, as IPaddr2's run_send_ua
PROBE_COUNT = 2
PROBE_INTERVAL = 0.1  # seconds


# Shell: netlink, state files, announcements (see also ipaddr2_io, and ipaddr2_handoff: prepared actions).
class Agent:
    """One invocation: parameters, environment and a netlink socket."""

    def __init__(self, cfg: Config, env: Mapping[str, str], action: str, probe: bool):
        from pyroute2 import IPRoute

        self.cfg, self.env, self.action, self.is_probe = cfg, env, action, probe
        self.ipr = IPRoute()
        self.state_path = os.path.join(_state_dir(env), f"{cfg.ip}.json")
        self.pid_path = os.path.join(_state_dir(env), f"{cfg.ip}.send_arp.pid")

    def close(self):
        self.ipr.close()

    # -- netlink queries
    def ifindex(self, nic: str) -> int | None:
        # one ioctl (a netlink dump of every link, parsed in Python, cost ~2 ms of CPU per call)
        try:
            return socket.if_nametoindex(nic)
        except (OSError, ValueError):
            return None

    def routes(self, table: int, scope: int | None) -> List[Route]:
        af = socket.AF_INET if self.cfg.family == 4 else socket.AF_INET6
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in self.ipr.get_links()}
        out = []
        for r in self.ipr.get_routes(family=af, table=table):
            if (r.get_attr("RTA_TABLE") or r["table"]) != table or (scope is not None and r["scope"] != scope):
                continue
            dst = r.get_attr("RTA_DST") or ("0.0.0.0" if af == socket.AF_INET else "::")
            out.append(Route(dst, r["dst_len"], names.get(r.get_attr("RTA_OIF"), "")))
        return out

    def resolve(self) -> Placement:
        """findif: nic and prefix from the parameters and the routing table.

        OCF_ERR_CONFIGURED for a bad syntax (start, validate-all) or label; OCF_ERR_GENERIC when the
        route lookup finds nothing (the caller turns that into 7 for a probe and 0 for stop)."""
        cfg = self.cfg
        if cfg.nic and self.action in ("start", "validate-all") and self.ifindex(cfg.nic) is None:
            raise OcfError(OCF_ERR_CONFIGURED, f"Invalid interface name [{cfg.nic}]")
        if cfg.findif_error:
            raise OcfError(OCF_ERR_CONFIGURED, cfg.findif_error)
        nic, prefix = cfg.nic, cfg.prefix
        if not nic or not cfg.netmask:
            route = None
            if not cfg.netmask or prefix is not None:  # an unparsable netmask matches no route
                scope = RT_SCOPE_LINK if cfg.family == 4 else None
                route = choose_route(cfg.ip, prefix, nic, self.routes(RT_TABLE_MAIN, scope))
            if route is None and cfg.family == 4 and cfg.ip.startswith("127."):
                # findif's getnetworkinfo: the loopback network from the local table, whatever
                # nic and netmask say
                route = choose_route(cfg.ip, None, "", [
                    r for r in self.routes(RT_TABLE_LOCAL, RT_SCOPE_HOST) if r.dst_len < 32])
            if route is None:
                raise OcfError(OCF_ERR_GENERIC, f"Unable to find nic or netmask for {cfg.ip or '(no ip)'}")
            nic = nic or route.nic
            if not cfg.netmask:
                prefix = route.dst_len
        return placement_for(cfg, nic, -1 if prefix is None else prefix)

    def find_addr(self, nic: str, prefix: int | None):
        """The address entry for ip (with that prefix, when given) on nic, or None."""
        index = self.ifindex(nic)
        try:
            want = ipaddress.ip_address(self.cfg.ip)
        except ValueError:  # a malformed ip is never "served" (its syntax is checked on start)
            return None
        if index is None:
            return None
        af = socket.AF_INET if self.cfg.family == 4 else socket.AF_INET6
        for a in self.ipr.get_addr(family=af, index=index):
            addr = a.get_attr("IFA_ADDRESS") if af == socket.AF_INET6 else (
                a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"))
            if addr and ipaddress.ip_address(addr) == want and (prefix is None or a["prefixlen"] == prefix):
                return a
        return None

    # -- state
    def load_state(self) -> dict | None:
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save_state(self, state: dict) -> None:
        from hadaemon.io.files import write_atomic

        # /run state (gone at reboot): atomic, without fsync (60-400 ms on a busy disk before the address
        # could be added, where /run is not a tmpfs)
        write_atomic(self.state_path, json.dumps(state, sort_keys=True).encode(), 0o600, durable=False)

    def drop_state(self) -> None:
        try:
            os.unlink(self.state_path)
        except FileNotFoundError:
            pass

    def owned(self, entry, where: Placement) -> bool:
        """Did this agent add the address? IFA_PROTO marker, else the state file."""
        if entry.get_attr("IFA_PROTO") == ADDR_PROTO:
            return True
        state = self.load_state()
        return bool(state and state.get("nic") == where.nic and state.get("prefix") == where.prefix)

    # -- announcements
    def prepare_announcement(self, nic: str):
        """(link socket, frames of one round) for nic, or None on loopback."""
        from hadaemon.io import garp

        if nic.startswith("lo"):
            return None
        link = garp.LinkSocket(nic)
        return link, garp.announcement_frames(link.mac, self.cfg.ip)

    def announce(self, prepared, rounds: int, sent_by: str = "", error: OSError | None = None) -> None:
        """Send the first round now, the rest (arp_interval apart) in the background or here. sent_by:
        the first round went out already (the handoff helper; error: how it failed)."""
        from hadaemon.io import garp

        if prepared is None:
            return
        link, frames = prepared
        in_process = self.env.get("HADAEMON_IN_PROCESS") == "1"
        if rounds <= 0:
            _close(link, in_process)
            return
        handed = False
        try:
            sent = time.monotonic()
            try:
                if error is not None:
                    raise error
                if not sent_by:
                    link.send(frames)
            except OSError as e:  # as IPaddr2: the address is up, only the announcement failed
                log.error("Could not send gratuitous ARP/NA for %s on %s: %s", self.cfg.ip, link.ifname, e)
                return
            log.info("announced %s on %s (round 1/%d%s)", self.cfg.ip, link.ifname, rounds,
                     f", {sent_by}" if sent_by else "")
            if rounds == 1:
                return
            if self.cfg.arp_bg and in_process:
                # run in a daemon's thread (the LRM's built-in path): a thread, not a forked copy of
                # the daemon (forking it costs 50-100 ms before the start can report success); it
                # takes over this socket
                self.kill_sender()
                _send_in_thread(self.pid_path, link.ifname, frames, rounds - 1, self.cfg.arp_interval, sent,
                                link=link)
                handed = True
            elif self.cfg.arp_bg:
                self.kill_sender()
                os.makedirs(_state_dir(self.env), exist_ok=True)
                garp.send_in_background(link, frames, rounds - 1, self.cfg.arp_interval, self.pid_path,
                                        after=sent)
            else:
                garp.send_rounds(link, frames, rounds - 1, self.cfg.arp_interval,
                                 first_delay=max(0.0, sent + self.cfg.arp_interval - time.monotonic()))
        finally:
            if not handed:
                _close(link, in_process)

    def kill_sender(self) -> None:
        """Stop a background announcer still running for this address (stop, or a new start)."""
        from hadaemon.io import garp

        with _SENDERS_LOCK:
            stop = _SENDERS.pop(self.pid_path, None)
        if stop is not None:
            stop.set()
            log.info("stopped the announcer thread for %s", self.cfg.ip)
        pid = garp.stop_background(self.pid_path)
        if pid:
            log.info("killed previously running announcer %d for %s", pid, self.cfg.ip)

    def addr_kw(self, where: Placement, index: int) -> dict:
        """The address's netlink attributes (pyroute2's addr("add", **kw); _nl_addr_msg for IPv4)."""
        cfg = self.cfg
        kw = {"index": index, "address": cfg.ip, "prefixlen": where.prefix, "proto": ADDR_PROTO}
        if cfg.family == 4 and cfg.ip.startswith("127."):
            kw["scope"] = RT_SCOPE_HOST  # as `ip addr add` does for loopback addresses
        flags = (IFA_F_NODAD if cfg.family == 6 and cfg.nodad else 0) | (
            IFA_F_NOPREFIXROUTE if cfg.noprefixroute else 0)
        if flags:
            kw["flags"] = flags
        if where.label:
            kw["label"] = where.label
        if where.broadcast:
            kw["broadcast"] = where.broadcast
        if cfg.family == 6 and cfg.preferred_lft is not None:
            # pyroute2 >= 0.9 reads preferred_lft, 0.7 (Debian 12, EPEL 9) only the cacheinfo dict.
            kw["preferred_lft"] = cfg.preferred_lft
            kw["cacheinfo"] = {"preferred": cfg.preferred_lft, "valid": 0xFFFFFFFF}
        return kw

    def state_of(self, where: Placement, lo_saved=None) -> dict:
        return {"ip": self.cfg.ip, "nic": where.nic, "prefix": where.prefix, "label": where.label,
                "lo": lo_saved, "added": time.time()}

    # -- actions
    def start(self, where: Placement, ready: _Prepared | None = None) -> None:
        """ready: prepared ahead (prepare()): the address was not here then, the announcement is built;
        if it appeared meanwhile, adding it fails and the start looks again as an unprepared one does."""
        cfg = self.cfg
        if ready is None:
            entry = self.find_addr(where.nic, where.prefix)
            if entry is not None:
                if not self.owned(entry, where):
                    log.warning("%s/%d is already on %s and was not added by this agent; leaving it as is",
                                cfg.ip, where.prefix, where.nic)
                return
        index = self.ifindex(where.nic)
        if index is None:
            raise OcfError(OCF_ERR_CONFIGURED, f"Invalid interface name [{where.nic}]")
        if cfg.family == 6 and cfg.broadcast:  # what `ip addr add ... brd` says, which IPaddr2 reports
            raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}: a broadcast address "
                                            f"[{cfg.broadcast}] can be set only for IPv4 addresses")
        lo_saved = self.take_from_lo() if cfg.lvs_support else None
        prober = None
        if cfg.family == 4 and cfg.run_arping and not where.nic.startswith("lo"):
            from hadaemon.io import garp

            prober = garp.Probe(where.nic, cfg.ip, PROBE_COUNT, PROBE_INTERVAL)
        # Build the announcement (importing scapy) while the probe is on the wire.
        if ready is not None:
            prepared = ready.announcement
        else:
            prepared = self.prepare_announcement(where.nic) if cfg.arp_count else None
        other = prober.result() if prober else None
        if other:
            self.restore_lo(lo_saved)
            if prepared:
                prepared[0].close()
            raise OcfError(OCF_ERR_GENERIC, f"IPv4 address collision {cfg.ip} [DAD]: "
                                            f"already in use by {other} on {where.nic}")
        self.save_state(self.state_of(where, lo_saved))
        kw = self.addr_kw(where, index)
        if ready is None:
            log.info("Adding inet%s address %s/%d to device %s", "6" if cfg.family == 6 else "",
                     cfg.ip, where.prefix, where.nic)
        added = False
        try:
            if ready is not None and cfg.family == 4:
                _nl_add_ipv4(kw)
            else:
                self.ipr.addr("add", **kw)
            added = True
            if ready is not None and prepared:
                # the address is up: the first announcement goes before anything else (the link's
                # state is checked right after; a link that is down does not send it anyway)
                self.announce(prepared, cfg.arp_count)
                prepared = None
            if ready is not None:   # logged once done: every write lets the event loop take the GIL
                log.info("Adding inet%s address %s/%d to device %s (prepared%s)", "6" if cfg.family == 6 else "",
                         cfg.ip, where.prefix, where.nic, f"; {ready.how}" if ready.how else "")
            if ready is None or not ready.link_up:   # (up when prepared: not asked again)
                link = self.ipr.get_links(index)[0]
                if not link["flags"] & 1:
                    self.ipr.link("set", index=index, state="up")
        except Exception as e:  # pyroute2 raises NetlinkError or ValueError
            if prepared:
                prepared[0].close()
            if ready is not None and not added and getattr(e, "code", None) == errno.EEXIST:
                # it appeared after the start was prepared: look again, as an unprepared start does
                self.drop_state()
                self.start(where)
                return
            self.drop_state()
            self.restore_lo(lo_saved)
            raise OcfError(OCF_ERR_GENERIC, f"Failed to add {cfg.ip}/{where.prefix} to {where.nic}: {e}") from e
        if cfg.family == 6 and not cfg.nodad:
            try:
                self.wait_dad(where)
            except OcfError:
                if prepared:
                    prepared[0].close()
                raise
        self.announce(prepared, cfg.arp_count)

    def wait_dad(self, where: Placement) -> None:
        """IPv6: wait until the kernel's duplicate address detection finishes; fail on a collision."""
        deadline = time.monotonic() + DAD_WAIT_MAX
        while True:
            entry = self.find_addr(where.nic, where.prefix)
            flags = (entry.get_attr("IFA_FLAGS") or entry["flags"]) if entry else 0
            if entry is None or flags & IFA_F_DADFAILED:
                self.remove(where)
                raise OcfError(OCF_ERR_GENERIC, f"IPv6 address collision {self.cfg.ip} [DAD]")
            if not flags & IFA_F_TENTATIVE:
                return
            if time.monotonic() >= deadline:
                log.warning("IPv6 address %s: DAD is still tentative", self.cfg.ip)
                return
            time.sleep(0.05)

    def remove(self, where: Placement) -> None:
        index = self.ifindex(where.nic)
        if index is not None:
            self.ipr.addr("del", index=index, address=self.cfg.ip, prefixlen=where.prefix)
        self.drop_state()

    def take_from_lo(self) -> dict | None:
        """lvs_support: a real server's copy of the VIP on lo (/32) conflicts; move it aside."""
        entry = self.find_addr("lo", 32)
        if entry is None:
            return None
        saved = {"prefix": 32, "label": entry.get_attr("IFA_LABEL") or "lo"}
        log.info("Removing conflicting loopback address %s/32", self.cfg.ip)
        self.ipr.addr("del", index=self.ifindex("lo"), address=self.cfg.ip, prefixlen=32)
        return saved

    def restore_lo(self, saved: dict | None) -> None:
        if not saved:
            return
        log.info("Restoring loopback address %s/32", self.cfg.ip)
        try:
            self.ipr.addr("add", index=self.ifindex("lo"), address=self.cfg.ip, prefixlen=32,
                          label=saved.get("label") or "lo")
        except Exception as e:
            log.error("could not restore %s/32 on lo: %s", self.cfg.ip, e)

    def stop(self, where: Placement | None) -> None:
        """where None: nic/netmask not found (IPaddr2 then stops nothing); the state file may know."""
        self.kill_sender()
        state = self.load_state()
        if where is None:
            if not state:
                log.warning("cannot find nic/netmask for %s; nothing to stop", self.cfg.ip or "(no ip)")
                return
            where = placement_for(self.cfg, state["nic"], state["prefix"])
        entry = self.find_addr(where.nic, where.prefix)
        if entry is None:
            self.drop_state()
            self.restore_lo((state or {}).get("lo"))
            return
        if not self.owned(entry, where) and self.env.get("HADAEMON_IPADDR2_STOP_ANY") != "1":
            log.warning("%s/%d on %s was not added by this agent; leaving it", self.cfg.ip, where.prefix,
                        where.nic)
            return
        try:
            self.remove(where)
        except Exception as e:
            raise OcfError(OCF_ERR_GENERIC, f"Unable to remove IP [{self.cfg.ip}] from interface "
                                            f"[{where.nic}]: {e}") from e
        self.restore_lo((state or {}).get("lo"))

    def monitor(self, where: Placement | None, refresh: bool) -> int:
        if where is None or self.find_addr(where.nic, where.prefix) is None:
            return OCF_NOT_RUNNING
        if refresh and self.cfg.arp_count_refresh:
            self.announce(self.prepare_announcement(where.nic), self.cfg.arp_count_refresh)
        return OCF_SUCCESS


USAGE = "usage: IPaddr2 {start|stop|status|monitor|validate-all|meta-data}\n"


def execute(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None,
            out=None) -> Result:
    """Run one OCF action; returns the OCF code and the exit reason (empty on success)."""
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    if action == "meta-data":
        out.write(meta_data())
        return Result(OCF_SUCCESS)
    if action in ("usage", "help"):
        out.write(USAGE)
        return Result(OCF_SUCCESS)
    meta = ocf.meta_from_env(env)
    agent = None
    try:
        # The order of IPaddr2's ip_validate decides which code a doubly bad call gets.
        cfg = parse_params(params, action, meta, late=False)
        if action in ("start", "stop") and os.geteuid() != 0:
            raise OcfError(OCF_ERR_PERM, f"You must be root for {action} operation.")
        probe = ocf.is_probe(action, meta)
        ready = _take_prepared(cfg, action, params, env) if action in ("start", "stop") and not cfg.late_error \
            else None
        if ready is not None:   # prepared ahead (prepare()): placement found (start: announcement built)
            agent, where = ready.agent, ready.where
            if _set_state(ready, "cancelled") == "going":   # armed, and it went: its thread adds it
                if ready.done.wait(max(1.0, float(meta.get("timeout", "20000") or 20000) / 1000.0)):
                    return ready.result or Result(OCF_ERR_GENERIC, "start failed")
                return Result(OCF_ERR_GENERIC, "the armed start did not finish")
            if action == "start":
                agent.start(where, ready)
            else:
                stop_prepared(agent, where, ready)
            return Result(OCF_SUCCESS)
        agent = Agent(cfg, env, action, probe)
        try:
            where = agent.resolve()
        except OcfError as e:
            if e.rc != OCF_ERR_GENERIC or not (probe or action == "stop"):
                raise
            log.info("%s", e.message)  # findif failed: IPaddr2 exits at once, before its later checks
            if probe:
                return Result(OCF_NOT_RUNNING)
            agent.stop(None)  # nothing to do, unless the state file says otherwise
            return Result(OCF_SUCCESS)
        if cfg.late_error:
            raise OcfError(OCF_ERR_CONFIGURED, cfg.late_error)
        if action == "start":
            agent.start(where)
        elif action == "stop":
            agent.stop(where)
        elif action == "monitor":
            return Result(agent.monitor(where, refresh=True))
        elif action == "status":
            rc = agent.monitor(where, refresh=False)
            out.write("running\n" if rc == OCF_SUCCESS else "stopped\n")
            return Result(rc)
        elif action != "validate-all":
            out.write(USAGE)
            return Result(OCF_ERR_UNIMPLEMENTED, f"unknown action {action!r}")
        return Result(OCF_SUCCESS)
    except OcfError as e:
        log.error("%s", e.message)
        return Result(e.rc, e.message)
    except Exception as e:  # netlink or file errors: a reason for the admin, not a traceback
        log.exception("%s failed", action)
        return Result(OCF_ERR_GENERIC, f"{action} failed: {e}")
    finally:
        if agent is not None:
            if env.get("HADAEMON_IN_PROCESS") == "1":
                # closing the netlink socket (and pyroute2's loop) takes 1-20 ms: not before the
                # result (the group's next member, a handoff's release wait for it)
                threading.Thread(target=agent.close, name="ipaddr2-close", daemon=True).start()
            else:
                agent.close()


def run(action: str, params: Mapping[str, str], env: Mapping[str, str] | None = None, out=None) -> int:
    """Run one OCF action and return its OCF code (for in-process use by the LRM)."""
    return execute(action, params, env, out).rc


def main(argv=None) -> int:
    return ocf.main(execute, argv)
