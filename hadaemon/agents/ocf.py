"""OCF resource-agent vocabulary shared by agents: return codes, OCF_RESKEY_* parsing, exit reasons."""
from __future__ import annotations

import logging
import sys
from typing import Callable, Dict, Mapping, NamedTuple

from hadaemon.core.lrm.results import (  # noqa: F401  (the one vocabulary, re-exported for agents)
    OCF_ERR_ARGS, OCF_ERR_CONFIGURED, OCF_ERR_GENERIC, OCF_ERR_INSTALLED, OCF_ERR_PERM, OCF_ERR_UNIMPLEMENTED,
    OCF_FAILED_PROMOTED, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED, OCF_SUCCESS, RC_NAMES,
)

RESKEY_PREFIX = "OCF_RESKEY_"
META_PREFIX = "OCF_RESKEY_CRM_meta_"
# Pacemaker prefixes exit reasons on stderr with this marker and shows them in crm_mon.
EXIT_REASON_PREFIX = "ocf-exit-reason:"

# Values ocf_is_true() in ocf-shellfuncs accepts as true.
_TRUE = {"yes", "true", "1", "YES", "TRUE", "True", "ja", "on", "ON"}


class OcfError(Exception):
    """An action ends with this OCF return code; the message is the exit reason shown to the admin."""

    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc = rc
        self.message = message


class Result(NamedTuple):
    rc: int
    reason: str = ""


def is_true(value: str | None) -> bool:
    """ocf_is_true(): the shell-compatible truth test for boolean parameters."""
    return value is not None and str(value) in _TRUE


def is_decimal(value: str | None) -> bool:
    """ocf_is_decimal(): digits only, non-empty."""
    return value is not None and value != "" and str(value).isdigit() and str(value).isascii()


def params_from_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """Instance parameters from OCF_RESKEY_<name> variables (meta attributes excluded)."""
    return {
        k[len(RESKEY_PREFIX):]: v
        for k, v in environ.items()
        if k.startswith(RESKEY_PREFIX) and not k.startswith(META_PREFIX)
    }


def meta_from_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """Meta attributes from OCF_RESKEY_CRM_meta_<name> variables (e.g. interval, clone_max)."""
    return {k[len(META_PREFIX):]: v for k, v in environ.items() if k.startswith(META_PREFIX)}


def is_probe(action: str, meta: Mapping[str, str]) -> bool:
    """ocf_is_probe(): a monitor with interval 0 (the CRM asking 'is it running here?')."""
    return action == "monitor" and str(meta.get("interval", "0") or "0") == "0"


def main(run: Callable[..., Result], argv=None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point for an agent executable: action from argv[1], parameters from the environment.

    ``run(action, params, env)`` returns a Result; the exit reason (if any) goes to stderr with the
    ``ocf-exit-reason:`` marker, as ocf_exit_reason does in ocf-shellfuncs.
    """
    import os

    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    logging.basicConfig(
        level=logging.DEBUG if is_true(environ.get("HA_debug")) else logging.INFO,
        stream=sys.stderr,
        format="%(name)s: %(levelname)s: %(message)s",
    )
    if len(argv) != 2:
        sys.stderr.write(f"usage: {os.path.basename(argv[0])} ACTION (OCF parameters in OCF_RESKEY_*)\n")
        return OCF_ERR_ARGS
    result = run(argv[1], params_from_env(environ), dict(environ))
    if result.reason:
        sys.stderr.write(f"{EXIT_REASON_PREFIX}{result.reason}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return result.rc
