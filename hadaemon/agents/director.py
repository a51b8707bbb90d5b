"""OCF resource agent hadaemon:ldirectord: runs ha-ldirectord (own pidfile, or systemd) so the CRM can group it with a VIP."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List

from hadaemon.agents.ocf import (
    OCF_ERR_ARGS, OCF_ERR_CONFIGURED, OCF_ERR_GENERIC, OCF_ERR_INSTALLED, OCF_ERR_UNIMPLEMENTED,
    OCF_NOT_RUNNING, OCF_SUCCESS, Result, is_true, main as ocf_main, meta_from_env,
)

DEFAULT_CONFIG = "/etc/ha.d/ldirectord.cf"
RUN_DIR = "/run/hadaemon"
LOG_DIR = "/var/log/hadaemon"
UNIT = "ha-ldirectord.service"

META_DATA = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="ldirectord" version="1.0">
  <version>1.0</version>
  <longdesc lang="en">
Runs the hadaemon LVS director (ha-ldirectord) with an ldirectord.cf: health checks of the real
servers and the IPVS table (or its nftables equivalent on kernels without IPVS). Put it in a group
after the VIP. start returns once the table is programmed; stop removes it (cleanstop); monitor checks
the daemon (OCF_CHECK_LEVEL=10: also that every configured virtual service is in the table).
  </longdesc>
  <shortdesc lang="en">LVS director (ldirectord-compatible)</shortdesc>
  <parameters>
    <parameter name="configfile" unique="1" required="0">
      <longdesc lang="en">The ldirectord configuration file.</longdesc>
      <shortdesc lang="en">ldirectord.cf</shortdesc>
      <content type="string" default="/etc/ha.d/ldirectord.cf"/>
    </parameter>
    <parameter name="backend" required="0">
      <longdesc lang="en">ipvs, nft, or auto (IPVS when the kernel has it, else nftables).</longdesc>
      <shortdesc lang="en">table backend</shortdesc>
      <content type="string" default="auto"/>
    </parameter>
    <parameter name="pidfile" unique="1" required="0">
      <longdesc lang="en">PID file of the daemon (default /run/hadaemon/ldirectord-INSTANCE.pid).</longdesc>
      <shortdesc lang="en">PID file</shortdesc>
      <content type="string" default=""/>
    </parameter>
    <parameter name="logfile" required="0">
      <longdesc lang="en">Where the daemon's output goes when not run by systemd.</longdesc>
      <shortdesc lang="en">log file</shortdesc>
      <content type="string" default="/var/log/hadaemon/ldirectord-INSTANCE.log"/>
    </parameter>
    <parameter name="use_systemd" required="0">
      <longdesc lang="en">Start and stop ha-ldirectord.service with systemctl instead of running the
daemon directly (the unit reads /etc/ha.d/ldirectord.cf).</longdesc>
      <shortdesc lang="en">use systemctl</shortdesc>
      <content type="boolean" default="false"/>
    </parameter>
  </parameters>
  <actions>
    <action name="start" timeout="30s"/>
    <action name="stop" timeout="30s"/>
    <action name="monitor" timeout="20s" interval="10s" depth="0"/>
    <action name="monitor" timeout="20s" interval="60s" depth="10"/>
    <action name="meta-data" timeout="5s"/>
    <action name="validate-all" timeout="20s"/>
  </actions>
</resource-agent>
"""


def _instance(env: Dict[str, str]) -> str:
    name = env.get("OCF_RESOURCE_INSTANCE", "ldirectord")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _pidfile(params, env) -> str:
    return params.get("pidfile") or os.path.join(RUN_DIR, f"ldirectord-{_instance(env)}.pid")


def _logfile(params, env) -> str:
    return params.get("logfile") or os.path.join(LOG_DIR, f"ldirectord-{_instance(env)}.log")


def _timeout(env, default: float) -> float:
    ms = meta_from_env(env).get("timeout")
    try:
        return max(1.0, int(ms) / 1000.0 - 1.0) if ms else default
    except ValueError:
        return default


def _pid(pidfile: str) -> int | None:
    """The daemon's PID if the pidfile names a live ha-ldirectord process."""
    try:
        pid = int(open(pidfile).read().strip())
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
    except (OSError, ValueError):
        return None
    if b"hadaemon.daemons.director" in cmdline or b"ha-ldirectord" in cmdline:
        return pid
    return None


def _daemon_argv(params) -> List[str]:
    argv = [sys.executable, "-m", "hadaemon.daemons.director"]
    backend = params.get("backend") or "auto"
    return argv + ["--backend", backend]


def validate(params) -> Result:
    from hadaemon.core.errors import ConfigError
    from hadaemon.io.director_config import load_config

    config = params.get("configfile") or DEFAULT_CONFIG
    backend = params.get("backend") or "auto"
    if backend not in ("auto", "ipvs", "nft"):
        return Result(OCF_ERR_CONFIGURED, f"backend must be auto, ipvs or nft, not {backend!r}")
    if not os.path.exists(config):
        return Result(OCF_ERR_INSTALLED, f"{config} does not exist")
    from hadaemon.core.director.table import check_table

    try:
        check_table(load_config(config))
    except ConfigError as e:
        return Result(OCF_ERR_CONFIGURED, str(e))
    if backend == "ipvs":
        from hadaemon.io.lvs.ipvs import IPVSBackend

        reason = IPVSBackend.unavailable()
        if reason:
            return Result(OCF_ERR_INSTALLED, reason)
    return Result(OCF_SUCCESS)


def _configured_keys(params) -> List[str]:
    from hadaemon.io.director_config import load_config
    from hadaemon.core.director.table import virtual_service

    config = load_config(params.get("configfile") or DEFAULT_CONFIG)
    return [virtual_service(v).key for v in config.virtuals]


def _backend(params):
    from hadaemon.io.lvs import make_backend

    return make_backend(params.get("backend") or "auto")


def start(params, env) -> Result:
    if is_true(params.get("use_systemd")):
        return _systemctl("start")
    res = validate(params)
    if res.rc != OCF_SUCCESS:
        return res
    pidfile = _pidfile(params, env)
    if _pid(pidfile):
        return Result(OCF_SUCCESS)
    logfile = _logfile(params, env)
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    argv = _daemon_argv(params) + ["--pidfile", pidfile, params.get("configfile") or DEFAULT_CONFIG]
    child_env = dict(os.environ)
    # from a source tree (hadaemon not installed): let the daemon import the same package
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_env["PYTHONPATH"] = root + (os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else "")
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, cwd="/", env=child_env)
    deadline = time.monotonic() + _timeout(env, 30)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return Result(OCF_ERR_GENERIC, f"ha-ldirectord exited with {proc.returncode}: {_tail(logfile)}")
        if _pid(pidfile) == proc.pid:     # written once the table is programmed
            return Result(OCF_SUCCESS)
        time.sleep(0.1)
    return Result(OCF_ERR_GENERIC, "ha-ldirectord did not finish starting in time")


def stop(params, env) -> Result:
    if is_true(params.get("use_systemd")):
        return _systemctl("stop")
    pidfile = _pidfile(params, env)
    pid = _pid(pidfile)
    if pid is None:
        return Result(OCF_SUCCESS)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _timeout(env, 30) - 2
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
        try:       # it had no chance to clean up: remove what it programmed ourselves (cleanstop)
            _backend(params).clear(_configured_keys(params))
        except Exception as e:  # noqa: BLE001 - report, the process is gone anyway
            return Result(OCF_ERR_GENERIC, f"ha-ldirectord killed; removing its table failed: {e}")
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return Result(OCF_SUCCESS)


def monitor(params, env) -> Result:
    if is_true(params.get("use_systemd")):
        cp = subprocess.run(["systemctl", "is-active", "--quiet", UNIT])
        return Result(OCF_SUCCESS if cp.returncode == 0 else OCF_NOT_RUNNING)
    if _pid(_pidfile(params, env)) is None:
        return Result(OCF_NOT_RUNNING)
    if int(env.get("OCF_CHECK_LEVEL", "0") or 0) >= 10:
        try:
            table = _backend(params).read()
            missing = [k for k in _configured_keys(params) if k not in table]
        except Exception as e:  # noqa: BLE001
            return Result(OCF_ERR_GENERIC, f"cannot read the table: {e}")
        if missing:
            return Result(OCF_ERR_GENERIC, f"virtual service(s) missing from the table: {', '.join(missing)}")
    return Result(OCF_SUCCESS)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _systemctl(action: str) -> Result:
    cp = subprocess.run(["systemctl", action, UNIT], capture_output=True, text=True)
    if cp.returncode != 0:
        return Result(OCF_ERR_GENERIC, f"systemctl {action} {UNIT}: {cp.stderr.strip()}")
    return Result(OCF_SUCCESS)


def _tail(path: str, n: int = 3) -> str:
    try:
        return " | ".join(open(path, errors="replace").read().strip().splitlines()[-n:])
    except OSError:
        return ""


def run(action: str, params: Dict[str, str], env: Dict[str, str]) -> Result:
    if action == "meta-data":
        sys.stdout.write(META_DATA)
        return Result(OCF_SUCCESS)
    if action == "validate-all":
        return validate(params)
    if action == "start":
        return start(params, env)
    if action == "stop":
        return stop(params, env)
    if action in ("monitor", "status"):
        return monitor(params, env)
    if action in ("usage", "help"):
        sys.stdout.write("usage: ldirectord {start|stop|monitor|validate-all|meta-data}\n")
        return Result(OCF_SUCCESS)
    if not action:
        return Result(OCF_ERR_ARGS, "no action given")
    return Result(OCF_ERR_UNIMPLEMENTED, f"action {action!r} is not implemented")


def main(argv=None, environ=None) -> int:
    return ocf_main(run, argv, environ)
