"""org.hadaemon.Crm1 on D-Bus: cluster status, CIB edits (move, ban, standby, resources, constraints)
and signals, exported from ha-crmd's backend (thin: every decision is in core/cib/edit)."""
# No `from __future__ import annotations` here: dbus-next reads the signature strings from annotations.
import json
import logging
import time
from typing import Dict, List

from hadaemon.bus.dbusnext import DBusError, PropertyAccess, ServiceInterface, dbus_property, method, signal
from hadaemon.core.cib import edit as E
from hadaemon.core.cib.status_view import cib_epoch, root_attributes
from hadaemon.core.cib.upgrade import heartbeat2_reason
from hadaemon.core.cib.xmltree import parse_xml
from hadaemon.core.errors import BadRequest, ConfigError

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "ERROR_PREFIX", "CrmInterface", "Export"]

BUS_NAME = "org.hadaemon.Crm1"
OBJECT_PATH = "/org/hadaemon/Crm1"
INTERFACE = "org.hadaemon.Crm1"
ERROR_PREFIX = "org.hadaemon.Crm1.Error."
MAX_CIB = 16 << 20
MAX_NAME = 256

log = logging.getLogger("hadaemon.crm.bus")


def _refuse(kind: str, message: str) -> DBusError:
    return DBusError(ERROR_PREFIX + kind, message)


def _name(value: str, what: str, empty_ok: bool = False) -> str:
    if value == "" and empty_ok:
        return value
    if not value or len(value) > MAX_NAME or not value.isprintable() or any(c.isspace() for c in value):
        raise _refuse("InvalidArgument", f"{what} must be 1..{MAX_NAME} printable characters without spaces, "
                                         f"got {value!r}")
    return value


class CrmInterface(ServiceInterface):
    """Exports the daemon backend of the contract (docs/crm-api.md): local_node, dc, has_quorum,
    listeners, cib_xml(), async modify_cib(edit, reason) -> epoch, async replace_cib(xml) -> epoch,
    status_dict(), async cleanup(resource, node); refused requests raise BadRequest."""

    def __init__(self, backend, clock=time.time):
        super().__init__(INTERFACE)
        self.backend = backend
        self._clock = clock
        self._placement = None  # (CIB version, {resource: nodes}) for the move checks

    # -- plumbing -------------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock())

    async def _modify(self, reason: str, edit) -> str:
        """Run one pure edit through the daemon; BadRequest -> org.hadaemon.Crm1.Error.<kind>."""
        try:
            return str(await self.backend.modify_cib(edit, reason))
        except BadRequest as exc:
            raise _refuse(exc.kind, str(exc)) from None
        except DBusError:
            raise
        except Exception as exc:  # noqa: BLE001 - a daemon fault must not kill the connection
            log.exception("CIB change failed: %s", reason)
            raise _refuse("Failed", f"{reason}: {type(exc).__name__}: {exc}") from None

    def _status(self) -> dict:
        try:
            return self.backend.status_dict()
        except BadRequest as exc:
            raise _refuse(exc.kind, str(exc)) from None

    def _running_on(self, rsc: str) -> List[str]:
        """Where rsc runs, from the status (reused while the CIB version is the same: it comes from the
        CIB's status section, and a whole status costs a scheduler unpack on a large cluster)."""
        try:
            epoch = self.CibEpoch
            if self._placement is None or self._placement[0] != epoch:
                self._placement = (epoch, {r.get("id"): list(r.get("nodes", []))
                                           for r in self.backend.status_dict().get("resources", [])})
            return list(self._placement[1].get(rsc, []))
        except Exception:  # noqa: BLE001 - the check is advisory; the edit validates the rest
            return []

    # -- properties -----------------------------------------------------------------------------------
    @dbus_property(access=PropertyAccess.READ)
    def LocalNode(self) -> "s":  # noqa: F821
        return str(self.backend.local_node)

    @dbus_property(access=PropertyAccess.READ)
    def DC(self) -> "s":  # noqa: F821
        return str(self.backend.dc or "")

    @dbus_property(access=PropertyAccess.READ)
    def HaveQuorum(self) -> "b":  # noqa: F821
        return bool(self.backend.has_quorum)

    @dbus_property(access=PropertyAccess.READ)
    def CibEpoch(self) -> "s":  # noqa: F821
        return cib_epoch(root_attributes(self.backend.cib_xml()))

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":  # noqa: F821
        return json.dumps(self._status(), sort_keys=True)

    # -- resources: placement ------------------------------------------------------------------------
    @method()
    async def MigrateResource(self, resource: "s", node: "s") -> "s":  # noqa: F821
        return await self._migrate(resource, node, "")

    @method()
    async def MigrateResourceFor(self, resource: "s", node: "s", lifetime: "s") -> "s":  # noqa: F821
        return await self._migrate(resource, node, lifetime)

    async def _migrate(self, resource: str, node: str, lifetime: str) -> str:
        _name(resource, "resource")
        _name(node, "node", empty_ok=True)
        now, running = self._now(), self._running_on(resource)
        if not node:  # crm_resource --move without --node: away from where it runs (a ban there)
            if len(running) != 1:
                raise _refuse("InvalidArgument", f"'{resource}' is active on {len(running)} nodes: "
                                                 "give the node to move it to")
            return await self._modify(f"move {resource} away from {running[0]}", lambda cib: E.ban(
                cib, resource, running[0], now, lifetime=lifetime))
        return await self._modify(f"move {resource} to {node}", lambda cib: E.move(
            cib, resource, node, now, lifetime=lifetime, running_on=running))

    @method()
    async def BanResource(self, resource: "s", node: "s", lifetime: "s") -> "s":  # noqa: F821
        _name(resource, "resource")
        _name(node, "node")
        now = self._now()
        return await self._modify(f"ban {resource} from {node}",
                                  lambda cib: E.ban(cib, resource, node, now, lifetime=lifetime))

    @method()
    async def ClearResource(self, resource: "s", node: "s") -> "s":  # noqa: F821
        _name(resource, "resource")
        _name(node, "node", empty_ok=True)
        return await self._modify(f"clear {resource}" + (f" on {node}" if node else ""),
                                  lambda cib: E.clear(cib, resource, node))

    @method()
    async def CleanupResource(self, resource: "s", node: "s"):  # noqa: F821
        _name(resource, "resource")
        _name(node, "node", empty_ok=True)
        try:
            await self.backend.cleanup(resource, node)
        except BadRequest as exc:
            raise _refuse(exc.kind, str(exc)) from None

    @method()
    async def EnableResource(self, resource: "s") -> "s":  # noqa: F821
        _name(resource, "resource")
        return await self._modify(f"enable {resource}", lambda cib: E.set_target_role(cib, resource, "Started"))

    @method()
    async def DisableResource(self, resource: "s") -> "s":  # noqa: F821
        _name(resource, "resource")
        return await self._modify(f"disable {resource}", lambda cib: E.set_target_role(cib, resource, "Stopped"))

    @method()
    async def SetResourceManaged(self, resource: "s", managed: "b") -> "s":  # noqa: F821
        _name(resource, "resource")
        return await self._modify(f"{'manage' if managed else 'unmanage'} {resource}",
                                  lambda cib: E.set_managed(cib, resource, bool(managed)))

    # -- nodes ----------------------------------------------------------------------------------------
    @method()
    async def StandbyNode(self, node: "s") -> "s":  # noqa: F821
        _name(node, "node")
        return await self._modify(f"standby {node}", lambda cib: E.set_standby(cib, node, True))

    @method()
    async def OnlineNode(self, node: "s") -> "s":  # noqa: F821
        _name(node, "node")
        return await self._modify(f"online {node}", lambda cib: E.set_standby(cib, node, False))

    @method()
    async def SetMaintenance(self, node: "s", on: "b") -> "s":  # noqa: F821
        _name(node, "node", empty_ok=True)
        what = node or "cluster"
        return await self._modify(f"maintenance {what} {'on' if on else 'off'}",
                                  lambda cib: E.set_maintenance(cib, node, bool(on)))

    # -- the CIB --------------------------------------------------------------------------------------
    @method()
    def GetCib(self) -> "s":  # noqa: F821
        return str(self.backend.cib_xml())

    @method()
    async def ReplaceCib(self, xml: "s") -> "s":  # noqa: F821
        if len(xml) > MAX_CIB:
            raise _refuse("InvalidArgument", f"the CIB is {len(xml)} characters; at most {MAX_CIB}")
        if not xml.strip():
            raise _refuse("InvalidArgument", "the CIB is empty")
        try:
            reason = heartbeat2_reason(parse_xml(xml, "<new CIB>"))
        except ConfigError as exc:
            raise _refuse("InvalidArgument", str(exc)) from None
        if reason:
            raise _refuse("InvalidArgument", f"this is a Heartbeat 2.x CIB ({reason}); convert it first with "
                                             "`hactl cib upgrade FILE -o NEW.xml`, then replace with NEW.xml")
        try:
            return str(await self.backend.replace_cib(xml))
        except BadRequest as exc:
            raise _refuse(exc.kind, str(exc)) from None

    # -- resources, groups, constraints ------------------------------------------------------------------
    @method()
    async def CreatePrimitive(self, resource: "s", agent_class: "s", provider: "s", agent_type: "s",  # noqa: F821
                              params: "a{ss}", meta: "a{ss}", ops: "aa{ss}", group: "s") -> "s":  # noqa: F722, F821
        _name(resource, "resource")
        _name(group, "group", empty_ok=True)
        return await self._modify(f"create {resource}", lambda cib: E.create_primitive(
            cib, resource, agent_class, provider, agent_type, dict(params), dict(meta), [dict(o) for o in ops], group))

    @method()
    async def UpdateResource(self, resource: "s", params: "a{ss}", meta: "a{ss}") -> "s":  # noqa: F722, F821
        _name(resource, "resource")
        return await self._modify(f"update {resource}",
                                  lambda cib: E.update_resource(cib, resource, dict(params), dict(meta)))

    @method()
    async def DeleteResource(self, resource: "s") -> "s":  # noqa: F821
        _name(resource, "resource")
        return await self._modify(f"delete {resource}", lambda cib: E.delete_resource(cib, resource))

    @method()
    async def CreateGroup(self, group: "s", members: "as") -> "s":  # noqa: F722, F821
        _name(group, "group")
        return await self._modify(f"create group {group}", lambda cib: E.create_group(cib, group, list(members)))

    @method()
    async def AddToGroup(self, group: "s", resource: "s", before: "s", after: "s") -> "s":  # noqa: F821
        _name(group, "group")
        _name(resource, "resource")
        return await self._modify(f"add {resource} to group {group}", lambda cib: E.group_add(
            cib, group, resource, before=before, after=after))

    @method()
    async def RemoveFromGroup(self, group: "s", resource: "s") -> "s":  # noqa: F821
        _name(group, "group")
        _name(resource, "resource")
        return await self._modify(f"remove {resource} from group {group}",
                                  lambda cib: E.group_remove(cib, group, resource))

    @method()
    async def DeleteGroup(self, group: "s") -> "s":  # noqa: F821
        _name(group, "group")
        return await self._modify(f"ungroup {group}", lambda cib: E.delete_group(cib, group))

    async def _add_constraint(self, reason: str, edit) -> List[str]:
        made: Dict[str, str] = {}

        def run(cib):
            made["id"] = edit(cib)

        epoch = await self._modify(reason, run)
        return [made.get("id", ""), epoch]

    @method()
    async def AddLocation(self, id: "s", resource: "s", node: "s", score: "s") -> "ss":  # noqa: F821, A002
        _name(id, "constraint id", empty_ok=True)
        return await self._add_constraint(f"location {resource} {node} {score}", lambda cib: E.add_location(
            cib, id, resource, node, score))

    @method()
    async def AddColocation(self, id: "s", resource: "s", with_resource: "s", score: "s") -> "ss":  # noqa: F821, A002
        _name(id, "constraint id", empty_ok=True)
        return await self._add_constraint(f"colocation {resource} with {with_resource} {score}",
                                          lambda cib: E.add_colocation(cib, id, resource, with_resource, score))

    @method()
    async def AddOrder(self, id: "s", first: "s", then: "s", kind: "s") -> "ss":  # noqa: F821, A002
        _name(id, "constraint id", empty_ok=True)
        return await self._add_constraint(f"order {first} then {then}",
                                          lambda cib: E.add_order(cib, id, first, then, kind or "Mandatory"))

    @method()
    async def DeleteConstraint(self, id: "s") -> "s":  # noqa: F821, A002
        _name(id, "constraint id")
        return await self._modify(f"delete constraint {id}", lambda cib: E.delete_constraint(cib, id))

    # -- signals (call the method to emit) ------------------------------------------------------------
    @signal()
    def ResourceStateChanged(self, resource: str, node: str, state: str) -> "sss":  # noqa: F821
        return [resource, node, state]

    @signal()
    def TransitionStarted(self, transition: int) -> "t":  # noqa: F821
        return transition

    @signal()
    def TransitionEnded(self, transition: int, result: str) -> "ts":  # noqa: F821
        return [transition, result]

    @signal()
    def DCChanged(self, dc: str) -> "s":  # noqa: F821
        return dc

    @signal()
    def CibChanged(self, epoch: str) -> "s":  # noqa: F821
        return epoch

    @signal()
    def NodeStateChanged(self, node: str, state: str) -> "ss":  # noqa: F821
        return [node, state]

    # -- helpers for the daemon -----------------------------------------------------------------------
    def forward(self, kind: str, *args) -> None:
        """A backend event (the contract's listener call) -> signals and PropertiesChanged."""
        if kind == "resource":
            rsc, node, state = (list(args) + ["", "", ""])[:3]
            self.ResourceStateChanged(str(rsc), str(node), str(state))
            self._changed("Status")
        elif kind == "transition_start":
            self.TransitionStarted(_uint(args[0] if args else 0))
            self._changed("Status")
        elif kind == "transition_end":
            tid, result = (list(args) + [0, ""])[:2]
            self.TransitionEnded(_uint(tid), str(result))
            self._changed("Status")
        elif kind == "cib":
            self.CibChanged(str(args[0]) if args else "")
            self._changed("CibEpoch", "Status")
        elif kind == "dc":
            self.DCChanged(str(args[0] or "") if args else "")
            self._changed("DC", "HaveQuorum", "Status")
        elif kind == "node":
            node, state = (list(args) + ["", ""])[:2]
            self.NodeStateChanged(str(node), str(state))
            self._changed("HaveQuorum", "Status")

    def _changed(self, *names: str) -> None:
        """PropertiesChanged: the cheap values sent along; Status (a whole scheduler unpack) only
        invalidated, so a burst of resource events costs nothing until a client reads it again."""
        getters = {"DC": lambda: self.DC, "HaveQuorum": lambda: self.HaveQuorum, "CibEpoch": lambda: self.CibEpoch}
        changed = {}
        for name in names:
            if name not in getters:
                continue
            try:
                changed[name] = getters[name]()
            except Exception:  # noqa: BLE001 - e.g. the CIB is being replaced: skip this value
                continue
        invalidated = [n for n in names if n == "Status"]
        if changed or invalidated:
            self.emit_properties_changed(changed, invalidated)


def _uint(value) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


class Export:
    """The daemon's presence on the bus: connect, export CrmInterface, own BUS_NAME, forward the
    backend's events as signals. connect() again after a lost connection."""

    def __init__(self, backend):
        self.backend = backend
        self.bus = None
        self.iface = None
        self._listener = None

    async def connect(self) -> None:
        from hadaemon.bus.dbusnext import export_owned, quiet_refusals

        iface = CrmInterface(self.backend)
        bus = await export_owned(OBJECT_PATH, iface, BUS_NAME)
        self.bus, self.iface = bus, iface
        self._listener = self._on_event
        self.backend.listeners.append(self._listener)
        quiet_refusals(log)

    async def wait_for_disconnect(self):
        """Returns (or raises the connection's error) when the bus connection is gone."""
        return await self.bus.wait_for_disconnect()

    def close(self) -> None:
        if self._listener in self.backend.listeners:
            self.backend.listeners.remove(self._listener)
        self._listener = None
        if self.bus is not None:
            try:
                self.bus.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.bus = self.iface = None

    def _on_event(self, kind: str, *args) -> None:
        if self.iface is None or not self.bus or not self.bus.connected:
            return
        try:
            self.iface.forward(kind, *args)
        except Exception:  # noqa: BLE001 - a signal that cannot be sent must not break the daemon
            log.exception("cannot emit the D-Bus signal for %s", kind)
