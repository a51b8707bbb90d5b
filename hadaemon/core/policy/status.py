"""Stage 1b, status: replay each resource's lrm history on each node the way Pacemaker reads it."""
from __future__ import annotations

from hadaemon.core.cib import history as H
from hadaemon.core.cib.model import LrmResource
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.resources import PROMOTED, STARTED, STOPPED, UNKNOWN, UNPROMOTED, WNode, WRsc
from hadaemon.core.policy.working import WorkingSet, agent_of, new_instance, setup_primitive

FAIL_IGNORE, FAIL_DEMOTE, FAIL_RECOVER, FAIL_MIGRATE, FAIL_BLOCK, FAIL_STOP, FAIL_STANDBY, FAIL_FENCE = range(8)
_ON_FAIL = {"ignore": FAIL_IGNORE, "demote": FAIL_DEMOTE, "restart": FAIL_RECOVER,
            "block": FAIL_BLOCK, "stop": FAIL_STOP, "standby": FAIL_STANDBY, "fence": FAIL_FENCE}



def _only_monitors_after(ops, op) -> bool:
    return all(o.operation == "monitor" for o in ops[ops.index(op) + 1:])


def _newer_state_after(ops, op) -> bool:
    """newer_state_after_migrate on the op's own node: a later start, stop, migrate_to or migrate_from
    (non_monitor_after), or a later monitor that found the resource not running (monitor_not_running_after)."""
    for o in ops:
        if o is op or o.call_id <= op.call_id or o.call_id < 0:
            continue
        if o.operation in ("start", "stop", "migrate_to", "migrate_from"):
            return True
        if o.operation == "monitor" and o.rc_code == 7:
            return True
    return False


def _settle_migrations(ws: WorkingSet) -> None:
    """A successful migrate_to as a resource's last word on its source: the migration completed
    (dangling: stop the source), failed on the target (active on both), or is partial."""
    for r, source, mig, _ops in ws.migrations:
        target = ws.node_by_uname.get(mig.migrate_target or "")
        entry = r.history_all.get(target.uname) if target is not None else None
        target_ops = entry[1] if entry else ()
        frm = None
        for o in target_ops:
            if o.operation == "migrate_from" and (o.migrate_source or source.uname) == source.uname:
                frm = o
        if frm is not None and frm.rc_code == 0 and frm.op_status == 0:
            if source in r.running_on:  # dangling: completed, the source only needs its stop
                r.running_on.remove(source)
            r.dangling_migrations.append(source)
            continue
        if target is None or not target.online:
            if frm is None:
                r.failed = r.stop_flag = True
                r.allow_migrate = False
            continue
        if frm is None and not target_ops:
            continue  # nothing known on the target: it will be probed
        if frm is not None and _newer_state_after(target_ops, frm):
            # unpack_migrate_to_success: the target's history moved on after the failed migrate_from (a
            # stop, say), so the resource is not active there: it failed on the source, cannot migrate
            r.failed = r.stop_flag = True
            r.allow_migrate = False
            continue
        if target in r.running_on:  # Pacemaker adds the target while reading the source's history
            r.running_on.remove(target)
        r.running_on.insert(0, target)
        if frm is None and source.online:
            r.partial_migration_source = source
            r.partial_migration_target = target
        elif frm is not None:
            r.failed = r.stop_flag = True


def unpack_status(ws: WorkingSet) -> None:
    for st in ws.cib.node_states:
        node = ws.node_by_id.get(st.id) or ws.node_by_uname.get(st.uname or "")
        if node is None:
            continue
        if not ws.stonith_enabled and not ws.shutdown_lock and not node.online:
            continue  # without fencing (or shutdown locks), an offline node's history is not read
        for lr in st.lrm:
            _unpack_lrm_resource(ws, node, lr)
    _settle_migrations(ws)
    for r in ws.prims.values():
        if not r.promotable and r.role > STARTED:
            r.role = STARTED  # a promoted role only means something for promotable clones
        target = r.target_role
        if target is not None and target > STARTED:
            # Pacemaker: Promoted is the default for promotable instances, Unpromoted keeps them
            # from being promoted, and neither means anything for other resources
            target = UNPROMOTED if (r.promotable and target == UNPROMOTED) else None
        if r.next_role == UNKNOWN and target is not None:
            r.next_role = target
        elif target is not None and target < r.next_role:
            r.next_role = target


def _history_rsc(ws: WorkingSet, node: WNode, rid: str) -> WRsc | None:
    """The resource a history entry belongs to; for clones, the instance (Pacemaker's
    unpack_find_resource and find_anonymous_clone)."""
    r = ws.prims.get(rid)
    if r is not None and r.clone is None:
        return r
    base = rid.rsplit(":", 1)[0] if ":" in rid else rid
    clone = r.clone if r is not None else ws.clone_of.get(base)
    if clone is None:
        return None
    if clone.unique:
        if r is not None:
            return r
        if rid == base:
            return None  # a unique clone's history names its instances
        return _member(new_instance(ws, clone, _cloned_prim(clone)), base)
    return _anonymous_instance(ws, node, clone, base)


def _cloned_prim(clone):
    first = clone.instances[0]
    return first.members[0].prim if first.is_group else first.prim


def _member(inst, base: str):
    """The primitive of an instance (a cloned group's member) that the history id names."""
    if not inst.is_group:
        return inst
    for m in inst.members:
        if m.prim is not None and m.prim.id == base:
            return m
    return None


def _anonymous_instance(ws: WorkingSet, node: WNode, clone, base: str) -> WRsc | None:
    found = None
    inactive = None
    skip_inactive = False
    for inst in clone.instances:
        if inst.running_on:
            if inst.running_on[0] is node:
                found = _member(inst, base)
                if found is not None and found.running_on:
                    # another history entry on this node already maps here: look further (another
                    # instance active here, e.g. a removed cloned group's, may still lack this member)
                    skip_inactive = True
                    found = None
                if found is not None:
                    break
        elif not skip_inactive and inactive is None and not inst.blocked:
            inactive = _member(inst, base)
    if found is None and not skip_inactive:
        found = inactive
    if found is not None and found.requires != "fencing" and (not node.online or node.unclean) \
            and clone.clone_max != len(ws.nodes):
        found = None
    if found is None:
        found = _member(new_instance(ws, clone, _cloned_prim(clone)), base)
    return found


def _orphan(ws: WorkingSet, lr: LrmResource) -> WRsc:
    r = WRsc(lr.id, None, {})
    r.agent = f"{lr.cls}:{lr.provider}:{lr.type}" if lr.provider else f"{lr.cls}:{lr.type}"
    r.cls = lr.cls or ""
    setup_primitive(ws, r)
    r.orphan = True
    if not ws.stop_orphans:
        r.managed = False
    else:
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    ws.prims[r.id] = r
    ws.resources.append(r)
    return r


def failcount(ws: WorkingSet, r: WRsc, node: WNode) -> int:
    """The resource's effective fail-count on a node (expired failures do not count). Per-operation
    counts (fail-count-RSC#OP_INTERVAL) always count (Pacemaker 3.0's regression outputs count them
    whatever the CIB's crm_feature_set; 2.1.5 ignores them below 3.0.13); a per-resource count
    (fail-count-RSC) counts only in a CIB without a feature set or one below 3.0.13 (generate_fail_regexes:
    newer CIBs match per-operation names only)."""
    total = 0
    last = 0
    # rsc_fail_name: the name the history knows; an anonymous clone's without its instance number,
    # matched with any instance number (or none)
    name = r.history_name or r.id
    anonymous = r.clone is not None and not r.clone.unique
    if anonymous and ":" in name:
        name = name.rsplit(":", 1)[0]
    legacy = _legacy_failcounts(ws)
    for k, v in node.attrs.items():
        rest = _fail_suffix(k, "fail-count-", name, anonymous)
        if rest is not None:
            if rest != "" or legacy is None or legacy:
                total = add_scores(total, parse_score(v, 0) or 0)
        elif _fail_suffix(k, "last-failure-", name, anonymous) is not None:
            if legacy is False and _fail_suffix(k, "last-failure-", name, anonymous) == "":
                continue
            try:
                last = max(last, int(v))
            except ValueError:
                pass
    if total > 0 and r.failure_timeout > 0 and ws.now is not None and last > 0:
        if ws.now >= last + r.failure_timeout:
            return 0
    return total


def _fail_suffix(key: str, prefix: str, name: str, anonymous: bool) -> str | None:
    """generate_fail_regex: what follows PREFIX-NAME (an anonymous clone's optional :N skipped) when it is
    nothing or #OP_INTERVAL, else None."""
    if not key.startswith(prefix + name):
        return None
    rest = key[len(prefix) + len(name):]
    if anonymous and rest.startswith(":"):
        number = rest[1:].split("#", 1)[0]
        if not number.isdigit():
            return None
        rest = rest[1 + len(number):]
    return rest if rest == "" or rest.startswith("#") else None


def _legacy_failcounts(ws: WorkingSet) -> bool | None:
    """compare_version(crm_feature_set, "3.0.13") < 0; None without a feature set."""
    if ws.cib.feature_set is None:
        return None
    version = []
    for part in (ws.cib.feature_set or "").split("."):
        try:
            version.append(int(part))
        except ValueError:
            break
    return tuple(version) < (3, 0, 13)


def _on_fail_for(ws: WorkingSet, r: WRsc, task: str, interval_ms: int):
    """(on-fail response, fail role) configured for an operation."""
    value = None
    if r.prim is not None:
        for op in r.prim.ops:
            if op.name == task and op.interval_ms == interval_ms:
                value = op.on_fail
                break
        if value is None and task == "monitor" and interval_ms == 0:
            value = None
    if value is None:
        d = resolve_sets(ws.cib.op_defaults, rsc=agent_of(r.prim), op=(task, interval_ms), now=ws.now)
        value = d.get("on-fail")
    fail_role = STARTED
    if value is not None:
        v = value.lower()
        if v == "fence" and not ws.stonith_enabled:
            return FAIL_STOP, STOPPED
        if v == "stop":
            return FAIL_STOP, STOPPED
        if v in _ON_FAIL:
            return _ON_FAIL[v], fail_role
    if task == "stop":
        return (FAIL_FENCE if ws.stonith_enabled else FAIL_BLOCK), fail_role
    return FAIL_RECOVER, fail_role


def _unpack_lrm_resource(ws: WorkingSet, node: WNode, lr: LrmResource) -> None:
    if not lr.ops:
        return
    r = _history_rsc(ws, node, lr.id)
    if r is not None and r.clone is not None:
        r.history_name = lr.id  # Pacemaker's clone_name: the id of the latest history entry mapped to it
    if r is None:
        if ws.cib.find(lr.id) is not None:
            return  # history for a group id: nothing to do
        r = _orphan(ws, lr)
    saved_role = r.role
    r.role = UNKNOWN
    ops = H.sort_ops(lr.ops)
    state = {"on_fail": FAIL_IGNORE, "last_failure": None}
    for op in ops:
        _unpack_op(ws, r, node, op, state)
    # active recurring operations since the last start
    recent = H.active_ops(ops)
    active = set()
    for o in recent:
        if o.interval_ms > 0 and o.op_status != H.EXEC_PENDING:
            active.add((o.operation, o.interval_ms))
    r.active_ops[node.uname] = active
    r.history[node.uname] = (lr, recent)
    r.history_all[node.uname] = (lr, ops)
    if ws.shutdown_lock and lr.shutdown_lock:  # unpack_shutdown_lock
        if ws.shutdown_lock_limit > 0 and ws.now is not None and ws.now > lr.shutdown_lock + ws.shutdown_lock_limit:
            r.lock_expired.add(node.uname)  # the lock expired: the history is cleared
        else:
            r.lock_node, r.lock_time = node, lr.shutdown_lock
    if state.get("migrate_to") is not None and ops[-1] is state["migrate_to"] or \
            (state.get("migrate_to") is not None and _only_monitors_after(ops, state["migrate_to"])):
        ws.migrations.append((r, node, state["migrate_to"], ops))
    _process_rsc_state(ws, r, node, state["on_fail"])
    if saved_role > r.role:
        r.role = saved_role


def _unpack_op(ws: WorkingSet, r: WRsc, node: WNode, op, state) -> None:
    task = op.operation
    if task in ("notify", "meta-data"):
        return
    rc = op.rc_code
    status = op.op_status
    expected = H.target_rc(op)
    probe = H.is_probe(op)
    if status == H.EXEC_DONE or status == H.EXEC_ERROR:
        status = H.EXEC_DONE
        rc = H.effective_rc(rc)
        if expected < 0 or expected != rc:
            status = H.EXEC_ERROR
        if rc == H.OCF_OK:
            if probe and expected == H.OCF_NOT_RUNNING:
                status = H.EXEC_DONE
        elif rc == H.OCF_NOT_RUNNING:
            if probe or expected == rc or not r.managed:
                status = H.EXEC_DONE
                r.role = STOPPED
                state["on_fail"] = FAIL_IGNORE
                r.next_role = UNKNOWN
        elif rc == H.OCF_RUNNING_PROMOTED:
            if probe and rc != expected:
                status = H.EXEC_DONE
            r.role = PROMOTED
        elif rc == H.OCF_FAILED_PROMOTED:
            r.role = PROMOTED
            status = H.EXEC_ERROR
        elif rc == H.OCF_NOT_CONFIGURED:
            status = H.EXEC_ERROR_FATAL
        elif rc in (H.OCF_UNIMPLEMENTED, H.OCF_NOT_INSTALLED, H.OCF_INVALID_PARAM, H.OCF_INSUFFICIENT_PRIV):
            if rc == H.OCF_UNIMPLEMENTED and op.interval_ms > 0:
                status = H.EXEC_NOT_SUPPORTED
            else:
                status = H.EXEC_ERROR_HARD
        elif status == H.EXEC_DONE:
            status = H.EXEC_ERROR
    if status == H.EXEC_PENDING:
        if task == "start":
            r.start_pending = True
            _set_active(r)
        return
    if status == H.EXEC_CANCELLED:
        return
    if status == H.EXEC_DONE:
        _update_state(r, task, rc, op, state)
        return
    on_fail, fail_role = _on_fail_for(ws, r, task, op.interval_ms)
    if on_fail == FAIL_IGNORE:
        _update_state(r, task, expected, op, state)
        r.failure_ignored = True
        return
    # a failure
    state["last_failure"] = op
    if on_fail > state["on_fail"] or (state["on_fail"] == FAIL_IGNORE):
        state["on_fail"] = max(on_fail, state["on_fail"])
    if task == "stop":
        r.allowed[node.uname] = -INFINITY
    elif task == "promote":
        r.role = PROMOTED
    elif task == "demote":
        # unpack_rsc_op_failure: staying promoted would loop; a demote that found it stopped stops it
        if on_fail == FAIL_BLOCK:
            r.role = PROMOTED
            r.next_role = STOPPED
        elif rc == H.OCF_NOT_RUNNING:
            r.role = STOPPED
        else:
            r.role = UNPROMOTED
    if probe and rc == H.OCF_NOT_INSTALLED:
        r.role = STOPPED
    elif r.role < STARTED:
        _set_active(r)
    if fail_role == STOPPED:
        r.next_role = STOPPED
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    if status == H.EXEC_ERROR_HARD:
        r.allowed[node.uname] = -INFINITY
    elif status == H.EXEC_ERROR_FATAL:
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY


def _set_active(r: WRsc) -> None:
    r.role = STARTED


def _update_state(r: WRsc, task: str, rc: int, op, state) -> None:
    clear = False
    if rc == H.OCF_NOT_INSTALLED:
        r.role = STOPPED
    elif rc == H.OCF_NOT_RUNNING:
        clear = True
    elif task == "monitor":
        last = state["last_failure"]
        if last is not None and last.operation == op.operation and last.interval_ms == op.interval_ms:
            clear = True
        if r.role < STARTED:
            _set_active(r)
    elif task == "promote":
        r.role = PROMOTED
        clear = True
    elif task == "demote":
        r.role = UNPROMOTED
        clear = state["on_fail"] == FAIL_DEMOTE  # a demote clears a failure only with on-fail=demote
    elif task in ("start", "migrate_from"):
        r.role = STARTED
        clear = True
    elif task == "stop":
        r.role = STOPPED
        clear = True
    elif task == "migrate_to":
        # judged once every node's history is known (see _settle_migrations)
        r.role = STARTED if r.role < STARTED else r.role
        state["migrate_to"] = op
    elif r.role < STARTED:
        _set_active(r)
    if clear and state["on_fail"] in (FAIL_BLOCK, FAIL_IGNORE, FAIL_DEMOTE, FAIL_RECOVER):
        state["on_fail"] = FAIL_IGNORE
        r.next_role = UNKNOWN


def _process_rsc_state(ws: WorkingSet, r: WRsc, node: WNode, on_fail: int) -> None:
    if r.role != UNKNOWN:
        r.known_on.add(node.uname)
        if r.clone is not None and not r.clone.unique:
            r.clone.known_on.add(node.uname)
    if r.role > STOPPED and not node.online and not node.maintenance and r.managed:
        if ws.stonith_enabled:
            ws.fence_node(node, f"{r.id} is thought to be active there")
    if node.unclean:
        on_fail = FAIL_IGNORE
    if on_fail == FAIL_FENCE:
        ws.fence_node(node, f"{r.id} failed there")
    elif on_fail == FAIL_STANDBY:
        node.standby = True
        node.standby_onfail = True
    elif on_fail == FAIL_BLOCK:
        r.managed = False
        r.blocked = True
    elif on_fail == FAIL_MIGRATE:
        r.allowed[node.uname] = -INFINITY
    elif on_fail == FAIL_STOP:
        r.next_role = STOPPED
    elif on_fail == FAIL_RECOVER:
        if r.role not in (STOPPED, UNKNOWN):
            r.failed = True
            r.stop_flag = True
    if r.role not in (STOPPED, UNKNOWN):
        _add_running(ws, r, node)
        if on_fail in (FAIL_DEMOTE, FAIL_BLOCK):
            r.failed = True
        elif on_fail != FAIL_IGNORE:
            r.failed = True
            r.stop_flag = True


def _add_running(ws: WorkingSet, r: WRsc, node: WNode) -> None:
    if node not in r.running_on:
        r.running_on.append(node)
    if node.maintenance:
        r.managed = False
    if not r.managed:
        r.allowed[node.uname] = add_scores(r.allowed.get(node.uname, 0), INFINITY)
        return
    if len(r.running_on) > 1:
        if r.multiple_active == "stop_only":
            for n in ws.nodes:
                r.allowed[n.uname] = -INFINITY
        elif r.multiple_active == "block":
            r.managed = False
            r.blocked = True
            if r.group is not None and (r.group.meta.get("multiple-active") or "") == "block":
                for m in r.group.members:
                    m.managed = False
                    m.blocked = True
