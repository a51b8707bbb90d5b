"""Private dbus-daemon with a system-bus-like policy, for tests (optionally inside a network namespace)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable
from xml.sax.saxutils import escape

from hadaemon.testing.procs import HarnessError, Proc, base_env, run_cmd, wait_until

__all__ = ["PrivateBus", "ensure_group", "REPO_POLICY_DIR"]

REPO_POLICY_DIR = Path(__file__).resolve().parents[2] / "dbus"

# Mirrors Debian's /usr/share/dbus-1/system.conf default context: nobody may own a name and method
# calls to services are denied unless a policy file punches a hole, exactly like the real system bus.
_DEFAULT_POLICY = """\
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <{method_call} send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
"""


def ensure_group(name: str = "haclient") -> None:
    """Create the system group on the host if it does not exist (policy files name it)."""
    if run_cmd(["getent", "group", name], check=False).returncode == 0:
        return
    cp = run_cmd(["groupadd", "--system", name], check=False)
    # 9: already exists (a concurrent run created it first)
    if cp.returncode not in (0, 9):
        raise HarnessError(f"groupadd {name} failed: {cp.stderr.strip()}")


class PrivateBus:
    """dbus-daemon --nofork --print-address on a unix path socket in workdir; closed on exit.

    policy_dirs are <includedir>s (only *.conf files are read; default: the repo's dbus/).
    extra_policy is raw busconfig XML added after the defaults (e.g. to let a test own a name).
    allow_method_calls=True relaxes the default-deny of method calls (the real system bus denies).
    """

    def __init__(self, netns: str | None = None, policy_dirs: Iterable[Path] | None = None,
                 workdir: Path | None = None, extra_policy: str = "", allow_method_calls: bool = False,
                 timeout: float = 10):
        self.netns = netns
        self.policy_dirs = [Path(p) for p in (policy_dirs if policy_dirs is not None else [REPO_POLICY_DIR])]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"hd{os.getpid()}bus-"))
        self.extra_policy = extra_policy
        self.allow_method_calls = allow_method_calls
        self.timeout = timeout
        self.socket_path = self.workdir / "bus"
        self.config_path = self.workdir / "bus.conf"
        self.proc: Proc | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket_path}"

    @property
    def env(self) -> Dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def config_xml(self) -> str:
        includes = "".join(f"  <includedir>{escape(str(d))}</includedir>\n" for d in self.policy_dirs)
        policy = _DEFAULT_POLICY.format(method_call="allow" if self.allow_method_calls else "deny")
        return (
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig>\n"
            "  <type>system</type>\n"
            f"  <listen>unix:path={escape(str(self.socket_path))}</listen>\n"
            "  <auth>EXTERNAL</auth>\n"
            f"{policy}{includes}{self.extra_policy}\n"
            "</busconfig>\n")

    def start(self) -> PrivateBus:
        if shutil.which("dbus-daemon") is None:
            raise HarnessError("dbus-daemon not found (apt-get install dbus)")
        ensure_group("haclient")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_xml())
        self.proc = Proc(["dbus-daemon", f"--config-file={self.config_path}", "--nofork", "--nopidfile",
                          "--print-address=1"], self.workdir / "dbus-daemon.log", env=base_env(),
                         netns=self.netns, name="dbus-daemon")
        try:
            wait_until(lambda: "unix:" in self.proc.output() or not self.proc.alive(), self.timeout,
                       message="dbus-daemon to print its address")
        except TimeoutError:
            pass
        if not self.proc.alive() or not self.socket_path.exists():
            out = self.proc.output()
            self.close()
            raise HarnessError(f"dbus-daemon did not start (config {self.config_path}):\n{out[-2000:]}")
        return self

    def busctl(self, *args: str, check: bool = True, timeout: float = 30):
        """busctl --address=<this bus> ARGS (run on the host; the socket is a path)."""
        return run_cmd(["busctl", f"--address={self.address}", *args], check=check, timeout=timeout)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate(timeout=3)
            self.proc = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivateBus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
