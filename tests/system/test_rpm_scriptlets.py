"""The RPM's scriptlets for real: rpm -i, -U to a newer build and -e inside an nspawn container with systemd
as PID 1 (Debian root + Debian's rpm; the shims are listed in tests/system/pkgtools.py).

install: the sysusers user and group exist before the files (%pre), tmpfiles made /run/hadaemon, units
and D-Bus policy are in place and ha-heartbeat starts from the package; upgrade: the admin's ha.cf,
authkeys and sysconfig file are kept (%config(noreplace)), the running daemon is restarted on the new
build and stays enabled; erase: the daemon is stopped and disabled (its
multi-user.target.wants link removed), the files are gone, the edited config is kept as .rpmsave.
"""
import json

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.system.pkgtools import PackageContainer, build_rpms, ensure_rpm_rootfs

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

HB = "ha-heartbeat.service"


def show(ct, unit, prop):
    return ct.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    first = build_rpms(tmp_path_factory.mktemp("rpms1"), release=1)
    second = build_rpms(tmp_path_factory.mktemp("rpms2"), release=2, only="hadaemon")
    return first, second


def test_install_upgrade_erase_under_systemd(builds):
    first, second = builds
    rootfs = ensure_rpm_rootfs()
    with Cluster(["node1", "node2"]) as c:
        hb = HeartbeatCluster(c, keepalive="200ms", deadtime="2", initdead="3")
        hacf = hb.hacf_text("node1")
        with PackageContainer(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
            ct.run(["groupdel", "haclient"])  # the harness's rootfs has the group: the package must make it
            assert ct.run(["getent", "group", "haclient"]).returncode != 0
            ct.install_packages(first)
            cp = ct.run(["rpm", "-q", "hadaemon", "python3-dbus-next"])
            assert cp.returncode == 0 and "hadaemon-0.1.0-1" in cp.stdout, cp.stdout + cp.stderr

            # %pre: sysusers made the group and the user; %post: tmpfiles made /run/hadaemon
            assert ct.run(["getent", "group", "haclient"]).returncode == 0
            passwd = ct.run(["getent", "passwd", "hacluster"]).stdout
            assert passwd.split(":")[5:7] == ["/var/lib/hadaemon", "/sbin/nologin\n"], passwd
            assert "hacluster" in ct.run(["id", "-nG", "hacluster"]).stdout
            assert ct.run(["stat", "-c", "%a %U %G", "/run/hadaemon"]).stdout.split() == ["750", "root", "haclient"]
            assert ct.run(["stat", "-c", "%a", "/etc/ha.d/authkeys"]).stdout.strip() == "600"
            # the package's own python and entry points (no checkout on the path)
            cp = ct.run(["python3", "-c", "import hadaemon, dbus_next; print(hadaemon.__file__, dbus_next.__file__)"])
            assert cp.stdout.split() == [f"{s}/{m}/__init__.py" for s, m in
                                         [(ct_site(), "hadaemon"), (ct_site(), "dbus_next")]], cp.stdout + cp.stderr
            assert ct.run(["ha-heartbeat", "--help"]).returncode == 0

            # the shipped ha.cf configures nothing: the unit refuses to start and says why
            cp = ct.systemctl("start", HB, timeout=90)
            assert cp.returncode != 0
            log = "\n".join(e.get("MESSAGE", "") for e in ct.journal(HB) if isinstance(e.get("MESSAGE"), str))
            assert "/etc/ha.d/ha.cf: no nodes defined" in log, log[-2000:]
            ct.systemctl("reset-failed", HB)

            # the admin configures the node; the package's unit starts the daemon
            ct.write_file("/etc/ha.d/ha.cf", hacf)
            ct.write_file("/etc/ha.d/authkeys", f"auth {hb.key.split()[0]}\n{hb.key}\n", 0o600)
            ct.write_file("/etc/sysconfig/ha-heartbeat", 'HA_HEARTBEAT_OPTS="--node node1"\n')
            cp = ct.systemctl("start", HB, timeout=90)
            assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(HB)[-20:], indent=1)
            cp = ct.busctl("get-property", "org.hadaemon.Heartbeat1", "/org/hadaemon/Heartbeat1",
                           "org.hadaemon.Heartbeat1", "LocalNode")
            assert cp.stdout.strip() == 's "node1"', cp.stderr
            assert show(ct, "ha-crmd.service", "ActiveState") == "inactive"  # ha.cf has no crm line
            pid1 = show(ct, HB, "MainPID")
            # enabled by the admin: an upgrade keeps it so, an erase disables it (%systemd_preun)
            ct.systemctl("enable", HB, check=True)
            wants = "/etc/systemd/system/multi-user.target.wants/" + HB
            assert ct.path(wants).is_symlink()

            # upgrade to release 2: config kept, daemon restarted on the new files
            cp = ct.rpm("-U", "--nodeps", files=[second["hadaemon"]])
            assert cp.returncode == 0, cp.stdout + cp.stderr
            assert "hadaemon-0.1.0-2" in ct.run(["rpm", "-q", "hadaemon"]).stdout
            assert ct.path("/etc/ha.d/ha.cf").read_text() == hacf
            assert ct.path("/etc/ha.d/authkeys").read_text().startswith("auth ")
            assert ct.run(["stat", "-c", "%a", "/etc/ha.d/authkeys"]).stdout.strip() == "600"
            assert "--node node1" in ct.path("/etc/sysconfig/ha-heartbeat").read_text()
            wait_until(lambda: show(ct, HB, "ActiveState") == "active" and show(ct, HB, "MainPID") not in ("0", pid1),
                       60, message="ha-heartbeat restarted by the upgrade")
            assert show(ct, HB, "NRestarts") == "0"  # a try-restart, not a crash
            assert ct.path(wants).is_symlink() and show(ct, HB, "UnitFileState") == "enabled"

            # a real-server VIP set up by the template unit: the erase takes it down while ha-realserver is there
            rs_vip = f"10.{c.base}.0.250"
            cp = ct.systemctl("start", f"ha-realserver@{rs_vip}.service", timeout=90)
            assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(f"ha-realserver@{rs_vip}.service")[-10:])
            assert f" {rs_vip}/32 " in ct.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout

            # erase: stopped, disabled, files gone, the edited ha.cf kept as .rpmsave
            cp = ct.run(["rpm", "-e", "--nodeps", "hadaemon", "python3-dbus-next"], timeout=180)
            assert cp.returncode == 0, cp.stdout + cp.stderr
            assert show(ct, HB, "ActiveState") in ("inactive", "failed", "")
            assert ct.run(["pgrep", "-f", "ha-heartbeat"]).returncode != 0
            assert not ct.path(wants).is_symlink(), f"{wants} left behind: the erase did not disable the unit"
            assert rs_vip not in ct.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout, "real-server VIP left on lo"
            leftovers = ct.run(["find", f"{ct_site()}/hadaemon", f"{ct_site()}/dbus_next"]).stdout
            assert not leftovers.strip(), leftovers[:2000]
            for gone in ["/usr/bin/ha-heartbeat", "/usr/lib/systemd/system/ha-heartbeat.service",
                         "/usr/share/dbus-1/system.d/org.hadaemon.Heartbeat1.conf"]:
                assert not ct.path(gone).exists(), f"{gone} left behind"
            assert ct.path("/etc/ha.d/ha.cf.rpmsave").read_text() == hacf
            assert not ct.path("/etc/ha.d/ha.cf").exists()


def ct_site():
    from tests.system.pkgtools import SITE
    return SITE
