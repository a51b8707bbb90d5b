"""The LRM's pure core: operation records, agent environments, result interpretation and the
bookkeeping of recurring operations (reported only on change, cancel, stop implies cancel).

No I/O here: the executor shell (hadaemon/io/lrm) asks these functions what to run and what a
finished process means, and keeps its per-resource state in an OpTable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Tuple

from hadaemon.core.cib.support import RESOURCE_CLASSES as CLASSES  # the classes the LRM runs: one table
from hadaemon.core.lrm import results as R

# OCF resource agent API version these environments follow (Pacemaker 2.1 sets 1.1).
OCF_RA_VERSION = ("1", "1")
EXIT_REASON_PREFIX = "ocf-exit-reason:"
# Agents of our own that the LRM can run in-process (same code as their OCF scripts):
# (provider, type) -> module with execute(action, params, env, out) -> agents.ocf.Result
BUILTIN_AGENTS = {("hadaemon", "IPaddr2"): "hadaemon.agents.ipaddr2"}
# Actions that never touch the resource (no serialisation with its other actions needed, no history).
INFO_ACTIONS = ("meta-data", "validate-all")


@dataclass(frozen=True)
class ResourceSpec:
    """A resource as the executor knows it: class, provider (ocf, stonith), agent type and parameters."""

    id: str
    cls: str
    provider: str | None
    type: str
    params: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OpRequest:
    """One operation. meta becomes OCF_RESKEY_CRM_meta_*; user_data (the transition key, say) is
    carried through to the result untouched."""

    name: str
    interval_ms: int = 0
    timeout_ms: int = 20000
    start_delay_ms: int = 0
    meta: Dict[str, str] = field(default_factory=dict)
    user_data: str = ""


@dataclass(frozen=True)
class OpResult:
    """A finished (or cancelled) operation. rc is the OCF code after class mapping; status one of
    results.EXEC_STATUS_CODES ("done", "cancelled", "timeout", "error", "not_installed", ...)."""

    rsc_id: str
    op: str
    interval_ms: int
    rc: int
    status: str
    output: str = ""
    call_id: int = 0
    user_data: str = ""
    started: float = 0.0
    exec_ms: int = 0
    queue_ms: int = 0
    exit_reason: str = ""

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.rsc_id, self.op, self.interval_ms)

    @property
    def op_status(self) -> int:
        """The CIB op-status code of status."""
        return R.exec_status_code(self.status)

    def describe(self) -> str:
        """cts-exec style: `rsc_id:r action:monitor rc:not running op_status:complete`."""
        return (f"rsc_id:{self.rsc_id} action:{self.op} rc:{R.rc_description(self.rc)} "
                f"op_status:{R.EXEC_STATUS_DESCRIPTIONS.get(self.status, self.status)}")


def op_key(rsc_id: str, op: str, interval_ms: int) -> str:
    """Pacemaker's operation key: RSC_ACTION_INTERVAL."""
    return f"{rsc_id}_{op}_{interval_ms}"


# --- checking a resource before running anything -------------------------------------------------
def _bad_name(name: str | None) -> bool:
    return not name or "/" in name or name in (".", "..") or "\0" in name


def check_spec(rsc: ResourceSpec) -> Tuple[int, str, str] | None:
    """(rc, status, message) when the resource cannot be run at all, else None.

    An unknown class or a missing OCF provider is a fatal configuration error (Pacemaker refuses to
    register such a resource); a bad agent name (a path) is "not installed".
    """
    if rsc.cls not in CLASSES:
        return R.OCF_ERR_CONFIGURED, "error_fatal", f"unknown resource class {rsc.cls!r}"
    if rsc.cls == "ocf" and not rsc.provider:
        return R.OCF_ERR_CONFIGURED, "error_fatal", f"ocf resource {rsc.id} has no provider"
    if rsc.cls == "ocf" and _bad_name(rsc.provider):
        return R.OCF_ERR_INSTALLED, "not_installed", f"bad provider {rsc.provider!r}"
    if _bad_name(rsc.type):
        return R.OCF_ERR_INSTALLED, "not_installed", f"bad agent name {rsc.type!r}"
    return None


def agent_path(rsc: ResourceSpec, ocf_root: str = "/usr/lib/ocf", lsb_dir: str = "/etc/init.d",
               stonith_dir: str = "/usr/sbin") -> str:
    """The program that implements the resource's agent ('' for systemd / service, resolved later)."""
    if rsc.cls == "ocf":
        return f"{ocf_root}/resource.d/{rsc.provider}/{rsc.type}"
    if rsc.cls == "lsb":
        return f"{lsb_dir}/{rsc.type}"
    if rsc.cls == "stonith":
        return f"{stonith_dir}/{rsc.type}"
    return ""


def lsb_action(action: str) -> str:
    """The init-script verb for an action: a monitor is `status`."""
    return "status" if action == "monitor" else action


def systemd_unit_name(agent: str) -> str:
    """The unit of a systemd resource type: a bare name means NAME.service."""
    for suffix in (".service", ".socket", ".mount", ".timer", ".path", ".target"):
        if agent.endswith(suffix):
            return agent
    return agent + ".service"


# --- environments ---------------------------------------------------------------------------------
def meta_attributes(op: OpRequest) -> Dict[str, str]:
    """The op's meta attributes with the executor's defaults (timeout and interval in ms, name)."""
    meta = {"timeout": str(op.timeout_ms), "interval": str(op.interval_ms), "name": op.name}
    meta.update({str(k): str(v) for k, v in op.meta.items()})
    return meta


def ocf_environment(rsc: ResourceSpec, op: OpRequest, ocf_root: str = "/usr/lib/ocf",
                    base: Mapping[str, str] | None = None) -> Dict[str, str]:
    """The environment an OCF agent runs with (Pacemaker's add_ocf_env_vars + parameters)."""
    env = dict(base or {})
    # parameters and meta attributes of a previous resource must never leak in from the base
    for k in [k for k in env if k.startswith("OCF_")]:
        del env[k]
    env.update({
        "OCF_RA_VERSION_MAJOR": OCF_RA_VERSION[0],
        "OCF_RA_VERSION_MINOR": OCF_RA_VERSION[1],
        "OCF_ROOT": ocf_root,
        "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
        "OCF_RESOURCE_INSTANCE": rsc.id,
        "OCF_RESOURCE_TYPE": rsc.type,
    })
    if rsc.provider:
        env["OCF_RESOURCE_PROVIDER"] = rsc.provider
    for k, v in rsc.params.items():
        # Pacemaker passes an op's OCF_CHECK_LEVEL as is, everything else with the OCF_RESKEY_ prefix
        env[k if k == "OCF_CHECK_LEVEL" else f"OCF_RESKEY_{k}"] = str(v)
    for k, v in meta_attributes(op).items():
        if k == "OCF_CHECK_LEVEL":
            env[k] = v
        else:
            env[f"OCF_RESKEY_CRM_meta_{k}"] = v
    return env


def stonith_input(rsc: ResourceSpec, action: str, target: str = "") -> str:
    """fence-agents' stdin: key=value lines with the device parameters and the action.

    Pacemaker's pcmk_* parameters are for the fencer, not the agent, and are left out.
    """
    lines = [f"action={action}"]
    for k, v in rsc.params.items():
        if k.startswith("pcmk_") or "\n" in str(v):
            continue
        lines.append(f"{k}={v}")
    if target:
        port = host_map(rsc.params.get("pcmk_host_map", "")).get(target, target)
        lines.append(f"plug={port}")
        lines.append(f"nodename={target}")
    return "\n".join(lines) + "\n"


def host_map(text: str) -> Dict[str, str]:
    """pcmk_host_map "node1:port1;node2:port2" (also spaces or commas between pairs, = for :)."""
    out: Dict[str, str] = {}
    for item in text.replace(",", ";").replace(" ", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        sep = ":" if ":" in item else "="
        if sep in item:
            node, port = item.split(sep, 1)
            out[node.strip()] = port.strip()
    return out


def stonith_action(action: str) -> str:
    """The fence agent's action for an executor action: start and monitor check the device."""
    return "monitor" if action in ("start", "monitor") else action


# --- interpreting a finished process -------------------------------------------------------------
def interpret(cls: str, action: str, exit_code: int | None, *, signal: int = 0,
              timed_out: bool = False) -> Tuple[int, str]:
    """(rc, status) of a finished agent process: exit code mapped per class, a timeout or a death by
    signal as Pacemaker reports them (generic error with status timeout / error)."""
    if timed_out:
        return R.OCF_ERR_GENERIC, "timeout"
    if exit_code is None or signal:
        return R.OCF_ERR_GENERIC, "error"
    if cls == "lsb":
        return R.lsb_to_ocf(lsb_action(action), exit_code), "done"
    if cls == "stonith":
        return R.stonith_to_ocf(action, exit_code), "done"
    rc = R.ocf_to_ocf(exit_code)
    return rc, "done"


def not_installed(cls: str, action: str) -> Tuple[int, str]:
    """The result of an action whose agent does not exist (services__handle_exec_error, ENOENT)."""
    return R.OCF_ERR_INSTALLED, "not_installed"


def exit_reason(stderr: str) -> str:
    """The last `ocf-exit-reason:` line an agent wrote (the message crm_mon shows)."""
    reason = ""
    for line in stderr.splitlines():
        if line.startswith(EXIT_REASON_PREFIX):
            reason = line[len(EXIT_REASON_PREFIX):].strip()
    return reason


def bounded(data: bytes, limit: int) -> str:
    """Captured output as text, cut to its last `limit` bytes (the end holds the error)."""
    if len(data) > limit:
        data = b"[...]\n" + data[-limit:]
    return data.decode("utf-8", "replace")


# --- recurring operations -------------------------------------------------------------------------
@dataclass
class Recurring:
    """A scheduled recurring operation and what was last reported for it."""

    rsc: ResourceSpec
    op: OpRequest
    call_id: int
    last: Tuple[int, str] | None = None   # (rc, status) last reported
    last_result: OpResult | None = None
    runs: int = 0
    cancelled: bool = False

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.rsc.id, self.op.name, self.op.interval_ms)


class OpTable:
    """Which recurring operations exist, which one-off operations wait, and what to report.

    Rules (Pacemaker's executor):
    - a recurring op is identified by (resource, action, interval); scheduling it again while it
      exists replaces its parameters and user data instead of adding a second one (duplicate monitor);
    - after its first result only changes of (rc, status) are reported, so a failing monitor is
      reported once and then again only when it recovers or fails differently;
    - cancelling an existing recurring op reports it once as cancelled (with its last rc); cancelling
      something that does not exist is refused;
    - a stop cancels every recurring op of the resource first (stop implies cancel);
    - a one-off op waiting for its start delay (or in the queue) can be cancelled too.
    """

    def __init__(self) -> None:
        self.recurring: Dict[Tuple[str, str, int], Recurring] = {}
        self.waiting: Dict[Tuple[str, str, int], List[int]] = {}
        self._call_id = 0

    def next_call_id(self) -> int:
        self._call_id += 1
        return self._call_id

    # recurring
    def schedule(self, rsc: ResourceSpec, op: OpRequest) -> Tuple[Recurring, bool]:
        """Add a recurring op; (entry, True) when one with the same key existed and was updated."""
        key = (rsc.id, op.name, op.interval_ms)
        old = self.recurring.get(key)
        if old is not None and not old.cancelled:
            # execd's merge_recurring_duplicate: the merged op takes the new request's call id, so
            # its next result is newer than anything recorded for the old request (a failure, say)
            old.rsc, old.op = rsc, op
            old.call_id = self.next_call_id()
            return old, True
        entry = Recurring(rsc, op, self.next_call_id())
        self.recurring[key] = entry
        return entry, False

    def record(self, key: Tuple[str, str, int], result: OpResult) -> bool:
        """Note a run's result; True when it must be reported (first result, or a change)."""
        entry = self.recurring.get(key)
        if entry is None or entry.cancelled:
            return False
        entry.runs += 1
        now = (result.rc, result.status)
        changed = entry.last != now
        entry.last = now
        entry.last_result = result
        return changed

    def cancel(self, key: Tuple[str, str, int]) -> Recurring | None:
        """Remove a recurring op; the removed entry (to report as cancelled) or None if unknown."""
        entry = self.recurring.pop(key, None)
        if entry is None or entry.cancelled:
            return None
        entry.cancelled = True
        return entry

    def of_resource(self, rsc_id: str) -> List[Tuple[str, str, int]]:
        return sorted(k for k in self.recurring if k[0] == rsc_id)

    def implied_cancels(self, rsc_id: str, action: str) -> List[Tuple[str, str, int]]:
        """The recurring ops an action cancels before it runs: all of the resource's for a stop."""
        if action == "stop":
            return self.of_resource(rsc_id)
        return []

    def keys(self) -> List[Tuple[str, str, int]]:
        return sorted(self.recurring)

    @staticmethod
    def cancelled_result(entry: Recurring, started: float = 0.0) -> OpResult:
        """The report of a cancelled recurring op: its last rc (ok if it never ran), status cancelled."""
        last = entry.last_result
        rc = last.rc if last is not None else R.OCF_SUCCESS
        return OpResult(entry.rsc.id, entry.op.name, entry.op.interval_ms, rc, "cancelled",
                        output="", call_id=entry.call_id, user_data=entry.op.user_data,
                        started=last.started if last is not None else started)

    # one-off ops waiting (start delay / queue)
    def wait(self, key: Tuple[str, str, int], token: int) -> None:
        self.waiting.setdefault(key, []).append(token)

    def done_waiting(self, key: Tuple[str, str, int], token: int) -> None:
        tokens = self.waiting.get(key)
        if tokens and token in tokens:
            tokens.remove(token)
            if not tokens:
                del self.waiting[key]

    def cancel_waiting(self, key: Tuple[str, str, int]) -> List[int]:
        """Tokens of the one-off ops with this key still waiting to run (all are cancelled)."""
        return self.waiting.pop(key, [])


def with_call(result: OpResult, **changes) -> OpResult:
    return replace(result, **changes)
