"""ha-web.service under real systemd (nspawn) with its sandbox: Type=notify READY, the self-signed
certificate made in the state directory, a PAM login of a real account from inside the container (PAM
through ctypes works in the sandbox), the page saying ha-crmd is missing, journal fields, a restart
after kill -9 that keeps the session made before it."""
import json
import shutil

import pytest

from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

UNIT = "ha-web.service"

CLIENT = r"""
import http.client, json, ssl, sys
ctx = ssl.create_default_context(cafile="/var/lib/hadaemon/web/cert.pem")
ctx.check_hostname = False
def req(method, path, body=None, headers={}):
    c = http.client.HTTPSConnection("127.0.0.1", 7630, context=ctx, timeout=60)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r, r.read()
if sys.argv[1].startswith("hasession="):  # a cookie from an earlier login
    login, cookie = 0, sys.argv[1]
else:
    r, _ = req("POST", "/login", "user=webadmin&password=" + sys.argv[1],
               {"Content-Type": "application/x-www-form-urlencoded"})
    login, cookie = r.status, (r.getheader("Set-Cookie") or "").split(";")[0]
r2, body = req("GET", "/api/status", headers={"Cookie": cookie})
print(json.dumps({"login": login, "cookie": cookie, "status": r2.status,
                  "body": json.loads(body) if r2.status == 200 else body.decode()}))
"""


def show(ct, prop, unit=UNIT):
    return ct.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def test_web_unit_under_systemd(rootfs):
    with Cluster(["node1"]) as c:
        with Container(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
            ct.write_file("/etc/default/ha-web", "HA_WEB_OPTS=--listen 127.0.0.1:7630\n")
            # the package needs the openssl command (the first start makes the certificate with it, with its own
            # configuration); the test rootfs lacks it: the host's (the same bookworm build) stands in
            shutil.copy2("/usr/bin/openssl", ct.path("/usr/bin/openssl"))
            ct.write_file("/root/client.py", CLIENT)
            for argv in (["groupadd", "-f", "haclient"], ["useradd", "-M", "-G", "haclient", "webadmin"]):
                cp = ct.run(argv)
                assert cp.returncode == 0, cp.stderr
            assert ct.run(["chpasswd"], input="webadmin:Web-Pw-1234\n").returncode == 0
            cp = ct.systemctl("start", UNIT, timeout=120)
            assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(UNIT)[-30:], indent=1)
            assert show(ct, "ActiveState") == "active"
            assert "listening on 127.0.0.1:7630" in show(ct, "StatusText")
            assert ct.run(["test", "-s", "/var/lib/hadaemon/web/cert.pem"]).returncode == 0
            assert ct.run(["stat", "-c", "%a", "/var/lib/hadaemon/web/key.pem"]).stdout.strip() == "600"

            cp = ct.run(["python3", "/root/client.py", "Web-Pw-1234"], timeout=120)
            assert cp.returncode == 0, cp.stderr
            out = json.loads(cp.stdout)
            assert out["login"] == 303 and out["cookie"], (out, ct.journal(UNIT)[-20:])
            assert out["status"] == 200 and out["body"]["can_change"] is True
            wait_until(lambda: any("ha-crmd" in e for e in json.loads(
                ct.run(["python3", "/root/client.py", "Web-Pw-1234"], timeout=120).stdout)["body"]["errors"]),
                30, message="the page says ha-crmd is missing")
            entries = [e for e in ct.journal(UNIT) if e.get("SYSLOG_IDENTIFIER") == "ha-web"]
            assert any(e.get("EVENT") == "login" and e.get("USER") == "webadmin" for e in entries), entries[-10:]

            cp = ct.run(["python3", "/root/client.py", "wrong"], timeout=120)
            assert json.loads(cp.stdout)["login"] == 401

            # systemctl reload (the unit's ExecReload, SIGHUP): the same process loads the certificate again
            main_pid = show(ct, "MainPID")
            assert ct.systemctl("reload", UNIT, timeout=60).returncode == 0
            wait_until(lambda: any(e.get("EVENT") == "reload" for e in ct.journal(UNIT)), 30,
                       message="EVENT=reload in ha-web's journal")
            assert show(ct, "MainPID") == main_pid and show(ct, "ActiveState") == "active"

            assert ct.run(["kill", "-9", main_pid]).returncode == 0
            wait_until(lambda: show(ct, "MainPID") not in ("0", main_pid) and show(ct, "ActiveState") == "active",
                       60, message="ha-web restarted by systemd")
            # the session made before the crash is still good: nobody is logged out by a restart
            assert ct.run(["stat", "-c", "%a", "/var/lib/hadaemon/web/sessions.json"]).stdout.strip() == "600"
            cp = ct.run(["python3", "/root/client.py", out["cookie"]], timeout=120)
            assert cp.returncode == 0, cp.stderr
            again = json.loads(cp.stdout)
            assert again["status"] == 200 and again["body"]["user"] == "webadmin", (again, ct.journal(UNIT)[-20:])
