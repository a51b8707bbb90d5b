"""The RPMs: packaging/build-rpms builds hadaemon and python3-dbus-next from the checkout, rpmlint finds no
error, files lie where RHEL expects them, config files are %config(noreplace) and authkeys is 0600.
The scriptlets run for real in tests/system/test_rpm_scriptlets.py (nspawn)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system.pkgtools import build_rpms

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def _version():
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")


@pytest.fixture(scope="module")
def rpms(tmp_path_factory):
    return build_rpms(tmp_path_factory.mktemp("rpms"))


def test_rpm_lays_out_files_for_rhel(rpms):
    rpm_file = rpms["hadaemon"]
    assert rpm_file.name == f"hadaemon-{_version()}-1.noarch.rpm"
    listing = subprocess.run(["rpm", "-qlp", str(rpm_file)], capture_output=True, text=True, check=True).stdout.split()
    for expected in [
        "/usr/bin/ha-heartbeat", "/usr/bin/ha-crmd", "/usr/bin/ha-ldirectord", "/usr/bin/ha-realserver", "/usr/bin/hactl",
        "/usr/lib/systemd/system/ha-heartbeat.service", "/usr/lib/systemd/system/ha-crmd.service",
        "/usr/lib/systemd/system/ha-ldirectord.service", "/usr/lib/systemd/system/ha-realserver@.service",
        "/usr/libexec/hadaemon/ha-crm-respawn", "/usr/lib/systemd/system-generators/ha-heartbeat-generator",
        "/usr/share/dbus-1/system.d/org.hadaemon.Heartbeat1.conf", "/usr/share/dbus-1/system.d/org.hadaemon.Crm1.conf",
        "/usr/share/dbus-1/system.d/org.hadaemon.Director1.conf",
        "/usr/share/dbus-1/interfaces/org.hadaemon.Heartbeat1.xml", "/usr/share/dbus-1/interfaces/org.hadaemon.Crm1.xml",
        "/usr/share/dbus-1/interfaces/org.hadaemon.Director1.xml", "/etc/sysconfig/ha-ldirectord",
        "/usr/lib/ocf/resource.d/hadaemon/IPaddr2", "/usr/lib/ocf/resource.d/hadaemon/ldirectord",
        "/usr/sbin/fence_hadaemon",
        "/usr/lib/sysusers.d/hadaemon.conf", "/usr/lib/tmpfiles.d/hadaemon.conf", "/etc/ha.d", "/var/lib/hadaemon",
        "/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/sysconfig/ha-heartbeat", "/etc/sysconfig/ha-crmd",
    ]:
        assert expected in listing, f"{expected} missing from the RPM"
    assert any(p.endswith("/site-packages/hadaemon/core/heartbeat/hacf.py") for p in listing)
    assert any(p.endswith("/site-packages/hadaemon/web/static/app.js") for p in listing)  # package data
    assert any(p.endswith("/site-packages/hadaemon-0.1.0.dist-info/entry_points.txt") for p in listing)
    # every console script of pyproject.toml
    from hadaemon.testing.nspawn import console_scripts
    assert {p.rsplit("/", 1)[1] for p in listing if p.startswith("/usr/bin/")} == set(console_scripts())
    # every unit the package ships is one the repository has, and the other way round
    units = {p.rsplit("/", 1)[1] for p in listing if p.startswith("/usr/lib/systemd/system/")}
    assert units == {p.name for p in (REPO / "units").glob("*.service")}


def test_config_files_are_noreplace_and_authkeys_is_root_only(rpms):
    out = subprocess.run(["rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]",
                          str(rpms["hadaemon"])], capture_output=True, text=True, check=True).stdout
    files = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    for conf in ["/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/sysconfig/ha-heartbeat", "/etc/sysconfig/ha-crmd",
                 "/etc/sysconfig/ha-ldirectord", "/etc/sysconfig/ha-web"]:
        flags = files[conf][0] if len(files[conf]) == 2 else ""
        assert "c" in flags and "n" in flags, f"{conf}: flags {files[conf]} (want %config(noreplace))"
    assert files["/etc/ha.d/authkeys"][-1] == "-rw-------"
    assert files["/var/lib/hadaemon"][-1] == "drwxr-x---"


def test_scriptlets_and_requires(rpms):
    scripts = subprocess.run(["rpm", "-qp", "--scripts", str(rpms["hadaemon"])], capture_output=True, text=True,
                             check=True).stdout
    assert "systemd-sysusers" in scripts or "useradd" in scripts or "groupadd" in scripts  # %pre: users first
    for unit in ["ha-heartbeat.service", "ha-crmd.service", "ha-ldirectord.service"]:
        assert unit in scripts.split("postuninstall scriptlet")[1], f"{unit} not restarted after an upgrade"
    requires = subprocess.run(["rpm", "-qp", "--requires", str(rpms["hadaemon"])], capture_output=True, text=True,
                              check=True).stdout.split("\n")
    for dep in ["python3-dbus-next", "python3-systemd", "python3-pyroute2", "python3-scapy", "python3-aiohttp"]:
        assert any(r.startswith(dep) for r in requires), f"Requires: {dep} missing"
    dbus_next = subprocess.run(["rpm", "-qlp", str(rpms["python3-dbus-next"])], capture_output=True, text=True,
                               check=True).stdout.split()
    assert any(p.endswith("/site-packages/dbus_next/message_bus.py") for p in dbus_next)


def test_rpm_installs_into_a_root_with_system_python_shebangs(rpms, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    proc = subprocess.run(["rpm", "-i", "--nodeps", "--noscripts", "--root", str(root), str(rpms["hadaemon"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for script, shebang in [("ha-heartbeat", "#!/usr/bin/python3"), ("hactl", "#!/usr/bin/python3 -IS")]:
        first = (root / "usr/bin" / script).read_text().splitlines()[0]
        assert first == shebang, f"{script}: {first}"  # hactl: isolated, without site (start-up time)
    agent = root / "usr/lib/ocf/resource.d/hadaemon/IPaddr2"
    assert os.access(agent, os.X_OK)
    assert (root / "usr/lib/sysusers.d/hadaemon.conf").read_text().count("haclient") >= 1
    assert (root / "etc/ha.d/authkeys").stat().st_mode & 0o777 == 0o600


def test_rpmlint_reports_no_errors(rpms):
    # build-rpms already failed on an rpmlint error; run it again here to show the verdict in the test
    assert shutil.which("rpmlint"), "rpmlint not installed (scripts/setup installs it)"
    proc = subprocess.run(["rpmlint", "-r", str(REPO / "packaging" / "hadaemon.rpmlintrc"),
                           str(rpms["hadaemon"]), str(rpms["python3-dbus-next"])],
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout[-4000:])
    errors = [line for line in proc.stdout.splitlines() if ": E: " in line]
    assert not errors and " 0 errors" in proc.stdout, "\n".join(errors) or proc.stdout[-2000:]
