"""The systemd resource class: start / stop / status of units through org.freedesktop.systemd1.

Like Pacemaker's systemd.c + execd: before a start a runtime drop-in sets Restart=no (the cluster,
not systemd, decides about restarts), then daemon-reload if the drop-in changed; start and stop wait
for their job's result and then for the unit to settle (activating / deactivating is "pending");
a monitor reads ActiveState. A unit that does not exist is "not installed", except for stop (a
unit that is not there is stopped).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.ops import OpRequest, OpResult, ResourceSpec, systemd_unit_name

log = logging.getLogger("hadaemon.lrm")

DROPIN_DIR = "/run/systemd/system"
DROPIN_NAME = "50-hadaemon.conf"
POLL_S = 0.2
CRMD_UNIT = "ha-crmd.service"
_NO_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.InvalidName",
            "org.freedesktop.systemd1.LoadFailed")


def dropin_text(unit: str) -> str:
    return ("# written by ha-crmd: the cluster decides about restarts of this unit\n"
            "[Unit]\n"
            f"Description=Cluster Controlled {unit[:-len('.service')] if unit.endswith('.service') else unit}\n"
            "Before=ha-crmd.service\n"
            "[Service]\n"
            "Restart=no\n")


def write_dropin(unit: str, dropin_dir: str = DROPIN_DIR) -> bool:
    """Write the unit's runtime drop-in atomically; True when it changed (a reload is needed)."""
    d = os.path.join(dropin_dir, unit + ".d")
    path = os.path.join(d, DROPIN_NAME)
    text = dropin_text(unit)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return True


def _result(rsc: ResourceSpec, op: OpRequest, rc: int, status: str, started: float, t0: float,
            reason: str = "") -> OpResult:
    return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=reason, started=started,
                    exec_ms=int((time.monotonic() - t0) * 1000), exit_reason=reason)


async def _settle(client, unit: str, want_active: bool) -> tuple:
    """Poll ActiveState until it is no longer activating / deactivating; (rc, status, state)."""
    while True:
        st = await client.unit_state(unit)
        state = st.get("ActiveState", "")
        rc, status = R.systemd_state_to_ocf(state)
        if status != "pending":
            return rc, status, state
        await asyncio.sleep(POLL_S)


async def _stop_mode(client) -> str:
    """The job mode of a resource's stop: "replace", except while ha-crmd.service itself is stopping.

    The drop-in orders the resource Before=ha-crmd.service, so when ha-crmd stops the resource's stop
    job would wait for ha-crmd's own stop job to finish: a deadlock until the job times out. While
    ha-crmd is deactivating, the stop ignores ordering dependencies (the cluster orders it itself)."""
    try:
        st = await client.unit_state(CRMD_UNIT)
    except Exception:  # noqa: BLE001 - no such unit (not under systemd, a test fake): plain replace
        return "replace"
    return "ignore-dependencies" if st.get("ActiveState") == "deactivating" else "replace"


async def _action(client, rsc: ResourceSpec, op: OpRequest, started: float, t0: float,
                  dropin_dir: str) -> OpResult:
    unit = systemd_unit_name(rsc.type)
    timeout_s = op.timeout_ms / 1000.0
    st = await client.unit_state(unit)
    if st.get("LoadState") in ("not-found", "", "bad-setting", "error", "masked") and op.name != "stop":
        load = st.get("LoadState") or "unknown"
        return _result(rsc, op, R.OCF_ERR_INSTALLED, "not_installed", started, t0,
                       f"systemd unit {unit} cannot be used (LoadState {load})")
    if op.name in ("monitor", "status"):
        rc, status, state = await _settle(client, unit, True)
        return _result(rsc, op, rc, status, started, t0, "" if rc == R.OCF_SUCCESS else f"unit {unit} is {state}")
    if op.name == "start":
        if write_dropin(unit, dropin_dir):
            await client.reload()
        job = await client.start_unit(unit, timeout_s)
        if job != "done":
            return _result(rsc, op, R.OCF_ERR_GENERIC, "done", started, t0, f"start job of {unit}: {job}")
        rc, status, state = await _settle(client, unit, True)
        if rc != R.OCF_SUCCESS:
            return _result(rsc, op, R.OCF_ERR_GENERIC, "done", started, t0, f"{unit} is {state} after its start")
        return _result(rsc, op, R.OCF_SUCCESS, "done", started, t0)
    if op.name == "stop":
        if st.get("LoadState") in ("not-found", ""):
            return _result(rsc, op, R.OCF_SUCCESS, "done", started, t0)
        job = await client.stop_unit(unit, timeout_s, await _stop_mode(client))
        if job not in ("done", "skipped"):
            return _result(rsc, op, R.OCF_ERR_GENERIC, "done", started, t0, f"stop job of {unit}: {job}")
        rc, status, state = await _settle(client, unit, False)
        if rc == R.OCF_SUCCESS:
            return _result(rsc, op, R.OCF_ERR_GENERIC, "done", started, t0, f"{unit} is still {state} after its stop")
        return _result(rsc, op, R.OCF_SUCCESS, "done", started, t0)
    return _result(rsc, op, R.OCF_ERR_UNIMPLEMENTED, "not_supported", started, t0,
                   f"action {op.name} is not supported for systemd units")


async def run_systemd_action(client, rsc: ResourceSpec, op: OpRequest, started: float,
                             dropin_dir: str = DROPIN_DIR) -> OpResult:
    """Run start / stop / monitor of a systemd resource within the op's timeout."""
    from hadaemon.bus.systemd1 import SystemdError

    t0 = time.monotonic()
    try:
        return await asyncio.wait_for(_action(client, rsc, op, started, t0, dropin_dir), op.timeout_ms / 1000.0)
    except asyncio.TimeoutError:
        return _result(rsc, op, R.OCF_ERR_GENERIC, "timeout", started, t0,
                       f"{op.name} of {rsc.type} timed out after {op.timeout_ms} ms")
    except SystemdError as e:
        if e.name in _NO_UNIT:
            # as Pacemaker's set_result_from_method_error: a unit that is not there is stopped
            if op.name == "stop":
                return _result(rsc, op, R.OCF_SUCCESS, "done", started, t0)
            return _result(rsc, op, R.OCF_ERR_INSTALLED, "not_installed", started, t0, str(e))
        return _result(rsc, op, R.OCF_ERR_GENERIC, "error", started, t0, f"systemd: {e}")
    except (OSError, EOFError) as e:
        return _result(rsc, op, R.OCF_ERR_GENERIC, "error", started, t0, f"systemd: {e}")
