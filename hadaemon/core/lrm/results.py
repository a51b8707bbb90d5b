"""The one OCF result vocabulary: agent exit codes, executor statuses, and the LSB / systemd mappings.

Values and mappings follow Pacemaker (include/crm/common/results.h, lib/services/services_lsb.c,
services_ocf.c, systemd.c). Every part of hadaemon that speaks OCF results imports them from here.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, Tuple


# --- OCF exit codes (enum ocf_exitcode) ---------------------------------------------------------
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_FAILED_PROMOTED = 9
OCF_DEGRADED = 190
OCF_DEGRADED_PROMOTED = 191
# Pacemaker-internal: "no result yet" (a systemd unit still activating / deactivating).
OCF_UNKNOWN = 193

# Pacemaker's own names for the same codes (PCMK_OCF_*), used by the CIB history code.
OCF_OK = OCF_SUCCESS
OCF_UNKNOWN_ERROR = OCF_ERR_GENERIC
OCF_INVALID_PARAM = OCF_ERR_ARGS
OCF_UNIMPLEMENTED = OCF_ERR_UNIMPLEMENTED
OCF_INSUFFICIENT_PRIV = OCF_ERR_PERM
OCF_NOT_INSTALLED = OCF_ERR_INSTALLED
OCF_NOT_CONFIGURED = OCF_ERR_CONFIGURED

RC_NAMES: Dict[int, str] = {
    OCF_SUCCESS: "OCF_SUCCESS",
    OCF_ERR_GENERIC: "OCF_ERR_GENERIC",
    OCF_ERR_ARGS: "OCF_ERR_ARGS",
    OCF_ERR_UNIMPLEMENTED: "OCF_ERR_UNIMPLEMENTED",
    OCF_ERR_PERM: "OCF_ERR_PERM",
    OCF_ERR_INSTALLED: "OCF_ERR_INSTALLED",
    OCF_ERR_CONFIGURED: "OCF_ERR_CONFIGURED",
    OCF_NOT_RUNNING: "OCF_NOT_RUNNING",
    OCF_RUNNING_PROMOTED: "OCF_RUNNING_PROMOTED",
    OCF_FAILED_PROMOTED: "OCF_FAILED_PROMOTED",
    OCF_DEGRADED: "OCF_DEGRADED",
    OCF_DEGRADED_PROMOTED: "OCF_DEGRADED_PROMOTED",
    OCF_UNKNOWN: "OCF_UNKNOWN",
}

# services_ocf_exitcode_str(): the short descriptions crm_mon shows ("rc:ok", "not running", ...).
RC_DESCRIPTIONS: Dict[int, str] = {
    OCF_SUCCESS: "ok",
    OCF_ERR_GENERIC: "error",
    OCF_ERR_ARGS: "invalid parameter",
    OCF_ERR_UNIMPLEMENTED: "unimplemented feature",
    OCF_ERR_PERM: "insufficient privileges",
    OCF_ERR_INSTALLED: "not installed",
    OCF_ERR_CONFIGURED: "not configured",
    OCF_NOT_RUNNING: "not running",
    OCF_RUNNING_PROMOTED: "promoted",
    OCF_FAILED_PROMOTED: "promoted (failed)",
    OCF_DEGRADED: "OCF_DEGRADED",
    OCF_DEGRADED_PROMOTED: "promoted (degraded)",
    OCF_UNKNOWN: "unknown",
}


def rc_description(rc: int) -> str:
    return RC_DESCRIPTIONS.get(rc, "unknown")


# --- executor statuses (enum pcmk_exec_status) ---------------------------------------------------
EXEC_PENDING = -1
EXEC_DONE = 0
EXEC_CANCELLED = 1
EXEC_TIMEOUT = 2
EXEC_NOT_SUPPORTED = 3
EXEC_ERROR = 4
EXEC_ERROR_HARD = 5
EXEC_ERROR_FATAL = 6
EXEC_NOT_INSTALLED = 7
EXEC_NOT_CONNECTED = 8
EXEC_INVALID = 9
EXEC_NO_FENCE_DEVICE = 10
EXEC_NO_SECRETS = 11

# The names the LRM reports in OpResult.status, and their op-status codes in the CIB.
EXEC_STATUS_CODES: Dict[str, int] = {
    "pending": EXEC_PENDING,
    "done": EXEC_DONE,
    "cancelled": EXEC_CANCELLED,
    "timeout": EXEC_TIMEOUT,
    "not_supported": EXEC_NOT_SUPPORTED,
    "error": EXEC_ERROR,
    "error_hard": EXEC_ERROR_HARD,
    "error_fatal": EXEC_ERROR_FATAL,
    "not_installed": EXEC_NOT_INSTALLED,
    "not_connected": EXEC_NOT_CONNECTED,
    "invalid": EXEC_INVALID,
    "no_fence_device": EXEC_NO_FENCE_DEVICE,
    "no_secrets": EXEC_NO_SECRETS,
}
EXEC_STATUS_NAMES: Dict[int, str] = {v: k for k, v in EXEC_STATUS_CODES.items()}
# pcmk_exec_status_str(): as cts-exec prints them ("complete", "Cancelled", "Timed Out", ...).
EXEC_STATUS_DESCRIPTIONS: Dict[str, str] = {
    "pending": "pending", "done": "complete", "cancelled": "Cancelled", "timeout": "Timed Out",
    "not_supported": "NOT SUPPORTED", "error": "Error", "error_hard": "Hard error",
    "error_fatal": "Fatal error", "not_installed": "Not installed", "not_connected": "Internal communication failure",
    "invalid": "Cannot execute now", "no_fence_device": "No fence device", "no_secrets": "CIB secrets unavailable",
}


def exec_status_code(name: str) -> int:
    """The CIB op-status code of an OpResult.status name (ValueError for an unknown name)."""
    try:
        return EXEC_STATUS_CODES[name]
    except KeyError:
        raise ValueError(f"unknown executor status {name!r}") from None


# --- OCF agents ---------------------------------------------------------------------------------
def ocf_to_ocf(exit_status: int) -> int:
    """services__ocf2ocf(): codes outside 0..9 (except the degraded 190/191) are generic errors."""
    if exit_status in (OCF_DEGRADED, OCF_DEGRADED_PROMOTED):
        return exit_status
    if exit_status < 0 or exit_status > OCF_FAILED_PROMOTED:
        return OCF_ERR_GENERIC
    return exit_status


# --- LSB init scripts ---------------------------------------------------------------------------
# Exit codes of LSB actions other than status (LSB core spec, shared with OCF up to 7).
LSB_OK, LSB_UNKNOWN_ERROR, LSB_INVALID_PARAM, LSB_UNIMPLEMENT_FEATURE = 0, 1, 2, 3
LSB_INSUFFICIENT_PRIV, LSB_NOT_INSTALLED, LSB_NOT_CONFIGURED, LSB_NOT_RUNNING = 4, 5, 6, 7
# Exit codes of the status action.
LSB_STATUS_OK = 0
LSB_STATUS_VAR_PID = 1      # dead, but the pid file exists
LSB_STATUS_VAR_LOCK = 2     # dead, but the lock file exists
LSB_STATUS_NOT_RUNNING = 3
LSB_STATUS_UNKNOWN = 4
LSB_STATUS_NOT_INSTALLED = 150  # Pacemaker's extension (reserved range)
LSB_STATUS_INSUFFICIENT_PRIV = 151


def lsb_to_ocf(action: str, exit_status: int) -> int:
    """services__lsb2ocf(): map an init script's exit code onto an OCF code.

    status / monitor have their own codes (1, 2, 3 all mean "not running"); other actions share
    OCF's codes up to 7 and anything else is a generic error.
    """
    if action not in ("status", "monitor"):
        if exit_status < 0 or exit_status > LSB_NOT_RUNNING:
            return OCF_ERR_GENERIC
        return exit_status
    if exit_status == LSB_STATUS_OK:
        return OCF_SUCCESS
    if exit_status == LSB_STATUS_NOT_INSTALLED:
        return OCF_ERR_INSTALLED
    if exit_status == LSB_STATUS_INSUFFICIENT_PRIV:
        return OCF_ERR_PERM
    if exit_status in (LSB_STATUS_VAR_PID, LSB_STATUS_VAR_LOCK, LSB_STATUS_NOT_RUNNING):
        return OCF_NOT_RUNNING
    return OCF_ERR_GENERIC


# --- systemd units ------------------------------------------------------------------------------
def systemd_state_to_ocf(active_state: str) -> Tuple[int, str]:
    """(rc, status) of a status/monitor from a unit's ActiveState, as Pacemaker's systemd.c maps it.

    active and reloading are running; activating / deactivating give no answer yet (pending);
    everything else (inactive, failed, maintenance, ...) is not running.
    """
    if active_state in ("active", "reloading"):
        return OCF_SUCCESS, "done"
    if active_state in ("activating", "deactivating"):
        return OCF_UNKNOWN, "pending"
    return OCF_NOT_RUNNING, "done"


def systemd_job_to_ocf(job_result: str) -> int:
    """The rc of a start / stop from the JobRemoved result ("done" succeeded; failed, timeout,
    dependency, canceled, skipped did not)."""
    return OCF_SUCCESS if job_result == "done" else OCF_ERR_GENERIC


# --- fence agents -------------------------------------------------------------------------------
def stonith_to_ocf(action: str, exit_status: int) -> int:
    """fence-agents exit codes: 0 success; for status 2 means the port is off (not running);
    anything else is a generic error."""
    if exit_status == 0:
        return OCF_SUCCESS
    if action == "status" and exit_status == 2:
        return OCF_NOT_RUNNING
    return OCF_ERR_GENERIC


def effective_rc(rc: int) -> int:
    """Degraded results count as their successful counterparts."""
    if rc == OCF_DEGRADED:
        return OCF_SUCCESS
    if rc == OCF_DEGRADED_PROMOTED:
        return OCF_RUNNING_PROMOTED
    return rc
