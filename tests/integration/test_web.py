"""ha-web at the HTTP level: TLS with the certificate it made, PAM login with real accounts, haclient
membership, cookie flags, CSRF, throttling, the JSON API over the stand-in Crm1 backend (crm_fake) on a
private bus, live events, the CIB, agent meta-data, bad input, and a missing daemon named."""
from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from hadaemon.testing.procs import Proc, wait_until
from hadaemon.daemons.web import ensure_certificate
from tests.integration.web_env import CIB, REPO, free_port, web_env

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with web_env(tmp_path_factory.mktemp("web")) as e:
        yield e


@pytest.fixture
def admin(env):
    c = env.client()
    c.login(env.admin, env.password)
    return c


@pytest.fixture
def viewer(env):
    c = env.client()
    c.login(env.viewer, env.password)
    return c


def test_tls_self_signed_certificate_made_at_first_start(env):
    cert = env.state / "web" / "cert.pem"
    key = env.state / "web" / "key.pem"
    assert cert.exists() and key.exists()
    assert key.stat().st_mode & 0o077 == 0
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-issuer"],
                          capture_output=True, text=True, check=True).stdout
    subj, issuer = (line.split("=", 1)[1] for line in text.splitlines())
    assert subj == issuer  # self-signed
    served = ssl.get_server_certificate(("127.0.0.1", env.port))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
    # plain HTTP is not answered as HTTP
    with socket.create_connection(("127.0.0.1", env.port), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not s.recv(100).startswith(b"HTTP/1.1 200")


def test_nothing_but_the_login_page_before_login(env):
    c = env.client()
    resp, page = c.request("GET", "/login")
    assert resp.status == 200 and b'name="password"' in page
    for path in ("/", "/static/app.js", "/api/nothing-here"):
        resp, _ = c.request("GET", path)
        assert resp.status in (303, 401), path
        if resp.status == 303:
            assert resp.getheader("Location") == "/login"
    for path in ("/api/status", "/api/events", "/api/cib", "/api/agents"):
        resp, data = c.request("GET", path)
        assert resp.status == 401 and b"log in" in data, path
    status, _ = c.post("/api/crm/move", {"resource": "webserver", "node": "admin2"}, csrf=False)
    assert status == 401


def test_the_seed_passwd_hacluster_then_log_in(env):
    """The scenario's seed: the admin sets hacluster's password (`passwd hacluster`) and logs in as
    hacluster, a member of haclient, who may change the cluster. hacluster's password entry is put back."""
    made = subprocess.run(["id", "hacluster"], capture_output=True).returncode != 0
    if made:  # (Debian's pacemaker packages make it; the RPM's sysusers file too)
        subprocess.run(["useradd", "-M", "-r", "-g", "haclient", "-s", "/sbin/nologin", "hacluster"], check=True)
    old = subprocess.run(["getent", "shadow", "hacluster"], capture_output=True, text=True,
                         check=True).stdout.split(":")[1]
    password = "Hc-" + secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"hacluster:{password}\n", text=True, check=True)
    try:
        c = env.client()
        c.login("hacluster", password)
        s = c.status()
        assert s["user"] == "hacluster" and s["can_change"] is True and s["crm"]["dc"] == "admin1"
    finally:
        if made:
            subprocess.run(["userdel", "hacluster"], check=True)
        else:
            subprocess.run(["usermod", "-p", old, "hacluster"], check=True)


def test_login_sets_a_secure_httponly_cookie(env):
    c = env.client()
    _, cookie = c.login(env.admin, env.password)
    flags = [f.strip() for f in cookie.split(";")]
    assert flags[0].startswith("hasession=") and len(flags[0]) > 40
    assert "Secure" in flags and "HttpOnly" in flags and "SameSite=Strict" in flags
    s = c.status()
    assert s["user"] == env.admin and s["can_change"] is True
    assert s["crm"]["dc"] == "admin1"


def test_wrong_password_is_refused_and_slows_the_next_attempt(env):
    c = env.client()
    user = env.viewer
    resp, page = c.login(user, "not-the-password", expect_ok=False)
    assert resp.status == 401 and b"Login failed" in page and resp.getheader("Set-Cookie") is None
    # at once again, even with the right password: refused until the delay has passed
    resp, page = c.request("POST", "/login", f"user={user}&password=x",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 429 and int(resp.getheader("Retry-After")) >= 1 and b"try again" in page
    # a second failure doubles the delay
    time.sleep(float(resp.getheader("Retry-After")) + 0.1)
    resp, _ = c.request("POST", "/login", f"user={user}&password=y",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 401
    resp, _ = c.request("POST", "/login", f"user={user}&password={env.password}",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 429 and int(resp.getheader("Retry-After")) >= 2
    c.login(user, env.password)  # waits out Retry-After, then works
    assert c.status()["user"] == user


def test_login_from_another_site_is_refused(env):
    c = env.client()
    resp, _ = c.request("POST", "/login", f"user={env.admin}&password={env.password}",
                        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
    assert resp.status == 403 and resp.getheader("Set-Cookie") is None


def test_unknown_user_is_refused(env):
    c = env.client()
    resp, _ = c.login("nosuchuser-hw", "whatever", expect_ok=False)
    assert resp.status in (401, 429)


def test_outside_haclient_may_look_not_change(env, viewer):
    s = viewer.status()
    assert s["can_change"] is False and s["crm"]["resources"]
    before = viewer.where("webserver")
    status, body = viewer.post("/api/crm/move", {"resource": "webserver", "node": "admin2"})
    assert status == 403 and "haclient" in body["error"]
    code, body = viewer.get_json("/api/cib")
    assert code == 403
    assert viewer.where("webserver") == before


def test_a_change_without_the_csrf_token_changes_nothing(env, admin):
    before = admin.where("webserver")
    target = "admin2" if before != ["admin2"] else "admin1"
    epoch = env.settled_epoch(admin)
    status, body = admin.post("/api/crm/move", {"resource": "webserver", "node": target}, csrf=False)
    assert status == 403 and "CSRF" in body["error"]
    status, body = admin.request("POST", "/api/crm/move", {"resource": "webserver", "node": target},
                                 {"X-CSRF-Token": "forged"})[0].status, None
    assert status == 403
    # another session's token does not do either
    other = env.client()
    other.login(env.admin, env.password)
    status, _ = admin.post("/api/crm/move", {"resource": "webserver", "node": target},
                           csrf=False, headers={"X-CSRF-Token": other.csrf})
    assert status == 403
    # a cross-site Origin is refused even with the token
    status, _ = admin.post("/api/crm/move", {"resource": "webserver", "node": target},
                           headers={"Origin": "https://evil.example"})
    assert status == 403
    time.sleep(0.5)
    s = admin.status()
    assert s["crm"]["cib_epoch"] == epoch and admin.where("webserver") == before


def test_move_clear_through_the_api(env, admin):
    before = admin.where("webserver")
    target = "admin2" if before != ["admin2"] else "admin1"
    status, body = admin.post("/api/crm/move", {"resource": "webserver", "node": target})
    assert status == 200 and body["ok"], body
    env.wait_crm(admin, lambda s: next(r for r in s["crm"]["resources"] if r["id"] == "webserver")["nodes"]
                 == [target])
    code, cons = admin.get_json("/api/constraints")
    assert any(c["id"] == "cli-prefer-webserver" for c in cons)
    # a move to where it runs is refused, in words
    status, body = admin.post("/api/crm/move", {"resource": "webserver", "node": target})
    assert status == 409 and body["kind"] == "Conflict" and body["error"]
    status, body = admin.post("/api/crm/clear", {"resource": "webserver", "node": ""})
    assert status == 200
    code, cons = admin.get_json("/api/constraints")
    assert not any(c["id"] == "cli-prefer-webserver" for c in cons)


def test_node_standby_maintenance_and_resource_disable(env, admin):
    def node(s, n):
        return s["crm"]["nodes"][n]

    for action, body, want in [
            ("standby", {"node": "admin2"}, lambda s: node(s, "admin2")["standby"]),
            ("online", {"node": "admin2"}, lambda s: not node(s, "admin2")["standby"]),
            ("maintenance", {"node": "admin2", "on": True}, lambda s: node(s, "admin2")["maintenance"]),
            ("maintenance", {"node": "admin2", "on": False}, lambda s: not node(s, "admin2")["maintenance"]),
            ("disable", {"resource": "mysql"},
             lambda s: next(r for r in s["crm"]["resources"] if r["id"] == "mysql")["nodes"] == []),
            ("enable", {"resource": "mysql"},
             lambda s: next(r for r in s["crm"]["resources"] if r["id"] == "mysql")["nodes"] != []),
            ("cleanup", {"resource": "web_fs", "node": ""},
             lambda s: not next(r for r in s["crm"]["resources"] if r["id"] == "web_fs")["failcounts"])]:
        status, reply = admin.post("/api/crm/" + action, body)
        assert status == 200, (action, reply)
        env.wait_crm(admin, want)


def test_ban_colocation_order_and_deleting_constraints(env, admin):
    def ids():
        return {c["id"]: c for c in admin.get_json("/api/constraints")[1]}

    status, reply = admin.post("/api/crm/ban", {"resource": "mysql", "node": "admin2", "lifetime": ""})
    assert status == 200, reply
    ban = next(c for i, c in ids().items() if c["kind"] == "location" and "mysql" in i and "admin2" in i)
    assert ban["attributes"]["score"] == "-INFINITY"
    status, reply = admin.post("/api/crm/add_colocation", {"id": "web-with-db", "resource": "webserver",
                                                           "with": "mysql", "score": "INFINITY"})
    assert status == 200, reply
    status, reply = admin.post("/api/crm/add_order", {"id": "db-then-web", "first": "mysql", "then": "webserver",
                                                      "kind": "Mandatory"})
    assert status == 200, reply
    got = ids()
    assert got["web-with-db"]["kind"] == "colocation" and got["db-then-web"]["kind"] == "order"
    for cid in ("web-with-db", "db-then-web", ban["id"]):
        status, reply = admin.post("/api/crm/delete_constraint", {"id": cid})
        assert status == 200, (cid, reply)
    assert not {"web-with-db", "db-then-web", ban["id"]} & set(ids())
    status, reply = admin.post("/api/crm/delete_constraint", {"id": "web-with-db"})
    assert status == 404 and reply["kind"] == "UnknownConstraint", reply


def test_malformed_values_get_400_with_a_message(env, admin):
    cases = [
        ("/api/crm/move", {"resource": "webserver", "node": 7}, "node"),
        ("/api/crm/move", {"resource": "", "node": "admin2"}, "resource"),
        ("/api/crm/move", {"resource": "webserver", "node": "admin2", "extra": "x"}, "extra"),
        ("/api/crm/maintenance", {"node": "admin1", "on": "yes"}, "on"),
        ("/api/crm/create_primitive", {"id": "x1", "class": "ocf", "provider": "heartbeat", "type": "Dummy",
                                       "params": ["not", "a", "dict"]}, "params"),
        ("/api/crm/create_group", {"group": "g", "members": []}, "members"),
        ("/api/crm/move", {"resource": "web\x01server", "node": "admin2"}, "resource"),
    ]
    epoch = env.settled_epoch(admin)
    for path, body, field in cases:
        status, reply = admin.post(path, body)
        assert status == 400, (body, reply)
        assert reply["error"] and reply["field"] == field, reply
    status, reply = admin.post("/api/crm/move", "not json {", headers={"Content-Type": "application/json"})
    assert status == 400 and "JSON" in reply["error"]
    status, reply = admin.post("/api/crm/no_such_action", {})
    assert status == 404
    # refusals of the cluster: unknown node, a bad parameter on create
    status, reply = admin.post("/api/crm/move", {"resource": "webserver", "node": "admin9"})
    assert status == 404 and reply["kind"] == "UnknownNode" and "admin9" in reply["error"]
    status, reply = admin.post("/api/crm/add_location", {"resource": "webserver", "node": "admin1",
                                                         "score": "lots"})
    assert status == 400 and reply["kind"] == "InvalidArgument" and reply["field"] == "score", reply
    assert admin.status()["crm"]["cib_epoch"] == epoch


def test_create_a_primitive_in_a_group_and_delete_it(env, admin):
    status, body = admin.post("/api/crm/create_primitive", {
        "id": "web_site", "class": "ocf", "provider": "heartbeat", "type": "Dummy", "params": {},
        "meta": {}, "ops": [{"name": "monitor", "interval": "10s"}], "group": "webserver"})
    assert status == 200, body
    s = env.wait_crm(admin, lambda s: "web_site" in next(r for r in s["crm"]["resources"]
                                                          if r["id"] == "webserver")["members"])
    assert s
    code, detail = admin.get_json("/api/resource?id=web_site")
    assert code == 200 and detail["ops"][0]["interval"] == "10s"
    assert any(h["operation"] == "start" for h in detail["history"])
    status, body = admin.post("/api/crm/delete_resource", {"id": "web_site"})
    assert status == 200, body


def test_events_stream_a_change_live(env, admin):
    conn_ctx = admin.ctx
    conn = http.client.HTTPSConnection("127.0.0.1", env.port, context=conn_ctx, timeout=60)
    conn.request("GET", "/api/events", headers={"Cookie": admin.cookie})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"

    def next_status():
        data = None
        while True:
            line = resp.readline().decode()
            assert line, "the stream ended"
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "\n" and data is not None:
                return data

    first = next_status()
    before = next(r for r in first["crm"]["resources"] if r["id"] == "mysql")["nodes"]
    target = "admin1" if before != ["admin1"] else "admin2"
    status, body = admin.post("/api/crm/move", {"resource": "mysql", "node": target})
    assert status == 200, body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = next_status()
        if next(r for r in s["crm"]["resources"] if r["id"] == "mysql")["nodes"] == [target]:
            break
    else:
        raise AssertionError("no event showed the move")
    conn.close()
    admin.post("/api/crm/clear", {"resource": "mysql", "node": ""})


def test_cib_read_and_replace_with_validation(env, admin):
    resp, xml = admin.request("GET", "/api/cib")
    assert resp.status == 200 and xml.startswith(b"<cib")
    status, body = admin.post("/api/cib", {"xml": "<cib><configuration><resources>"})
    assert status == 400 and body["field"] == "xml" and body["error"]
    bad = xml.decode().replace('type="Dummy"', 'type="Dummy" class="nonsense"', 1)
    status, body = admin.post("/api/cib", {"xml": bad})
    assert status == 400 and body["error"], body
    good = xml.decode().replace("<resources>", '<resources><primitive id="replaced_one" class="ocf" '
                                'provider="heartbeat" type="Dummy"/>', 1)
    status, body = admin.post("/api/cib", {"xml": good})
    assert status == 200, body
    env.wait_crm(admin, lambda s: any(r["id"] == "replaced_one" for r in s["crm"]["resources"]))
    admin.post("/api/crm/delete_resource", {"id": "replaced_one"})


def test_agent_forms_come_from_meta_data(env, admin):
    code, agents = admin.get_json("/api/agents")
    assert code == 200 and "IPaddr2" in agents["ocf"]["heartbeat"] and "Filesystem" in agents["ocf"]["heartbeat"]
    assert "dbus" in agents["systemd"] and "dbus" in agents["lsb"]   # dbus.service, /etc/init.d/dbus here
    code, md = admin.get_json("/api/agent?class=ocf&provider=heartbeat&type=IPaddr2")
    assert code == 200
    ip = next(p for p in md["parameters"] if p["name"] == "ip")
    assert ip["required"] and ip["shortdesc"]
    code, _ = admin.get_json("/api/agent?class=ocf&provider=heartbeat&type=..%2Fx")
    assert code == 404


def test_missing_daemons_are_named(env, admin):
    s = admin.status()
    text = " ".join(s["errors"])
    assert "ha-heartbeat" in text and "ha-ldirectord" in text
    assert s["crm"] is not None
    status, body = admin.post("/api/director/drain", {"virtual": "tcp:10.0.0.1:80", "real": "10.0.0.2:80"})
    assert status == 503 and "ha-ldirectord" in body["error"]


def test_without_crmd_it_keeps_serving_and_says_so(tmp_path):
    with web_env(tmp_path, with_crm=False) as e:
        c = e.client()
        c.login(e.admin, e.password)
        s = e.wait_crm(c, lambda s: any("ha-crmd" in x for x in s["errors"]))
        assert s["crm"] is None
        status, body = c.post("/api/crm/move", {"resource": "webserver", "node": "admin2"})
        assert status == 503 and "ha-crmd" in body["error"]
        # ha-crmd comes: the page has it without anything else done
        crm = Proc([sys.executable, "-m", "tests.integration.crm_fake", "--cib", str(CIB), "--node", "admin1",
                    "--members", "admin1,admin2"], tmp_path / "crm_fake.log", env=dict(os.environ, **e.bus.env),
                   name="crm_fake", cwd=str(REPO))
        try:
            crm.wait_output("ready", timeout=60)
            s = e.wait_crm(c, lambda s: s["crm"] is not None)
            assert not any("ha-crmd" in x for x in s["errors"]) and s["crm"]["dc"] == "admin1"
        finally:
            crm.terminate(timeout=10)
        e.wait_crm(c, lambda s: s["crm"] is None and any("ha-crmd" in x for x in s["errors"]))


def test_logout_ends_the_session(env):
    c = env.client()
    c.login(env.admin, env.password)
    status, _ = c.post("/logout", "csrf=" + c.csrf, csrf=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303
    resp, _ = c.request("GET", "/api/status")
    assert resp.status == 401


def test_director_reals_drain_and_restore(tmp_path):
    with web_env(tmp_path, with_director=True) as e:
        c = e.client()
        c.login(e.admin, e.password)
        s = e.wait_crm(c, lambda s: s["director"] is not None)
        assert s["director"]["virtual_services"][0]["key"] == "tcp:10.9.0.200:80"
        assert not any("ha-ldirectord" in x for x in s["errors"])
        status, body = c.post("/api/director/drain", {"virtual": "tcp:10.9.0.200:80", "real": "10.9.0.12:80"})
        assert status == 200, body

        def real(s, name):
            return next(r for r in s["director"]["reals"] if r["real"] == name)

        e.wait_crm(c, lambda s: real(s, "10.9.0.12:80")["health"] == "drained" and real(s, "10.9.0.12:80")["weight"] == 0)
        status, body = c.post("/api/director/drain", {"virtual": "tcp:10.9.0.200:80", "real": "10.9.0.99:80"})
        assert status == 404 and body["kind"] == "UnknownReal" and body["field"] == "real"
        status, body = c.post("/api/director/restore", {"virtual": "tcp:10.9.0.200:80", "real": "10.9.0.12:80"})
        assert status == 200, body
        e.wait_crm(c, lambda s: real(s, "10.9.0.12:80")["weight"] == 3)


def test_a_wrong_vip_is_refused_beside_its_field(env, admin):
    epoch = env.settled_epoch(admin)
    base = {"id": "web_vip", "class": "ocf", "provider": "heartbeat", "type": "IPaddr2", "meta": {}, "ops": [],
            "group": "webserver"}
    status, body = admin.post("/api/crm/create_primitive", dict(base, params={"ip": "192.168.1.300",
                                                                              "cidr_netmask": "24"}))
    assert status == 400 and body["field"] == "params.ip" and "192.168.1.300" in body["error"], body
    status, body = admin.post("/api/crm/create_primitive", dict(base, params={"cidr_netmask": "24"}))
    assert status == 400 and body["field"] == "params.ip" and "required" in body["error"], body
    status, body = admin.post("/api/crm/create_primitive", dict(base, params={"ip": "10.0.0.1", "nosuch": "1"}))
    assert status == 400 and body["field"] == "params.nosuch", body
    status, body = admin.post("/api/crm/create_primitive", dict(base, type="NoSuchAgent", params={}))
    assert status == 400 and body["field"] == "type", body
    assert admin.status()["crm"]["cib_epoch"] == epoch


def test_an_edit_is_checked_like_a_create(env, admin):
    status, body = admin.post("/api/crm/create_primitive", {
        "id": "edit_vip", "class": "ocf", "provider": "heartbeat", "type": "IPaddr2",
        "params": {"ip": "127.0.0.5", "cidr_netmask": "8"}, "meta": {"target-role": "Stopped"}, "ops": [], "group": ""})
    assert status == 200, body
    try:
        epoch = env.settled_epoch(admin)
        for params, field, words in (({"ip": "10.0.0.256"}, "params.ip", "10.0.0.256"),    # validate-all: exit 6
                                     ({"nosuch": "1"}, "params.nosuch", "nosuch"),         # not in the meta-data
                                     ({"ip": ""}, "params.ip", "required")):               # emptied (deleted)
            status, body = admin.post("/api/crm/update_resource", {"id": "edit_vip", "params": params, "meta": {}})
            assert status == 400 and body["field"] == field and words in body["error"], (params, body)
        code, detail = admin.get_json("/api/resource?id=edit_vip")
        assert detail["params"] == {"ip": "127.0.0.5", "cidr_netmask": "8"}
        assert admin.status()["crm"]["cib_epoch"] == epoch
        status, body = admin.post("/api/crm/update_resource", {"id": "edit_vip", "params": {"ip": "127.0.0.6"},
                                                               "meta": {}})
        assert status == 200, body
        code, detail = admin.get_json("/api/resource?id=edit_vip")
        assert detail["params"] == {"ip": "127.0.0.6", "cidr_netmask": "8"}
        # a parameter the CIB already had but the agent does not know does not block another edit
        status, body = admin.post("/api/crm/update_resource", {"id": "web_fs", "params": {"fake": "x1"}, "meta": {}})
        assert status == 200, body
    finally:
        admin.post("/api/crm/delete_resource", {"id": "edit_vip"})


def test_more_bad_input_is_refused_and_changes_nothing(env, admin):
    epoch = env.settled_epoch(admin)
    # the login form: a missing password is 400 with words, no cookie
    resp, page = env.client().request("POST", "/login", f"user={env.admin}&password=",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 400 and b"Give a user name and a password" in page and resp.getheader("Set-Cookie") is None
    for path, body, field in (("/api/cib", {"xml": 5}, "xml"),
                              ("/api/crm/update_resource", {"id": "web_fs", "params": {"fake": 5}, "meta": {}}, "fake"),
                              ("/api/crm/ban", {"resource": "webserver", "node": ["admin1"]}, "node"),
                              ("/api/director/drain", {"virtual": 1, "real": "10.9.0.11:80"}, "virtual")):
        status, reply = admin.post(path, body)
        assert status == 400 and reply["error"] and reply["field"] == field, (path, reply)
    status, reply = admin.post("/api/crm/move", ["webserver", "admin2"])
    assert status == 400 and "object" in reply["error"]
    status, reply = admin.post("/api/crm/move", "resource=webserver", headers={"Content-Type": "text/plain"})
    assert status == 415 and "JSON" in reply["error"]
    for path in ("/api/resource", "/api/agent?class=ocf&provider=heartbeat"):
        code, reply = admin.get_json(path)
        assert code == 400 and reply["error"], (path, reply)
    # without a valid session: nothing changes
    for cookie in ("", "hasession=forged-" + "x" * 40):
        c = env.client()
        c.cookie, c.csrf = cookie, admin.csrf
        status, reply = c.post("/api/crm/move", {"resource": "webserver", "node": "admin2"})
        assert status == 401, reply
    # log-out without the CSRF token is refused and the session goes on
    status, _ = admin.post("/logout", "csrf=wrong", csrf=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403
    assert admin.status()["crm"]["cib_epoch"] == epoch


def test_sessions_survive_a_restart_of_ha_web(env):
    kept, ended = env.client(), env.client()
    kept.login(env.admin, env.password)
    ended.login(env.admin, env.password)
    status, _ = ended.post("/logout", "csrf=" + ended.csrf, csrf=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303
    starts = env.web.output().count("ha-web: listening on")
    env.web.kill9()                      # no chance to write anything on the way out
    env.web.restart(timeout=10)
    wait_until(lambda: env.web.output().count("ha-web: listening on") > starts, 60, message="ha-web restarted")
    s = env.wait_crm(kept, lambda s: s["crm"] is not None)   # the same cookie
    assert s["user"] == env.admin and s["can_change"] is True
    status, body = kept.post("/api/crm/clear", {"resource": "webserver", "node": ""})  # and its CSRF token
    assert status == 200, body
    resp, _ = ended.request("GET", "/api/status")
    assert resp.status == 401
    f = env.state / "web" / "sessions.json"
    assert f.stat().st_mode & 0o077 == 0
    assert kept.cookie.split("=", 1)[1] not in f.read_text()


def test_failed_logins_still_count_after_a_restart(env):
    c = env.client()
    user = env.viewer
    for wrong in ("wrong-1", "wrong-2"):       # (login() waits out the 429s: each is a real failure)
        resp, _ = c.login(user, wrong, expect_ok=False)
        assert resp.status == 401
    f = env.state / "web" / "throttle.json"
    assert f.stat().st_mode & 0o077 == 0 and f"user:{user}" in f.read_text() and "wrong-" not in f.read_text()
    starts = env.web.output().count("ha-web: listening on")
    env.web.kill9()                      # no chance to write anything on the way out
    env.web.restart(timeout=10)
    wait_until(lambda: env.web.output().count("ha-web: listening on") > starts, 60, message="ha-web restarted")
    resp, _ = c.login(user, "wrong-3", expect_ok=False)
    assert resp.status == 401
    # the third failure in a row: 4 s until the next attempt (a count started afresh would say 1 s)
    resp, page = c.request("POST", "/login", f"user={user}&password={env.password}",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 429 and int(resp.getheader("Retry-After")) >= 2, (resp.status, resp.getheader("Retry-After"))
    c.login(user, env.password)          # waits it out; the success clears the user's and the address's count
    assert f"user:{user}" not in f.read_text()


def test_request_limits_and_protocol_errors_in_words(env, admin):
    epoch = env.settled_epoch(admin)
    big = json.dumps({"xml": "<cib>" + " " * (16 * 1024 * 1024) + "</cib>"})
    status, reply = admin.post("/api/cib", big, headers={"Content-Type": "application/json"})
    assert status == 413 and "16777216" in reply["error"], (status, str(reply)[:200])
    # a header line longer than aiohttp's bound: 400 and why, the server goes on
    resp, data = admin.request("GET", "/api/status", headers={"X-Long": "x" * 20000})
    assert resp.status == 400 and b"8190" in data, (resp.status, data[:200])
    env.web.wait_output("EVENT=bad-request", timeout=30)   # one line in the log, no traceback
    # a chunked body is read like any other
    conn = http.client.HTTPSConnection("127.0.0.1", env.port, context=admin.ctx, timeout=60)
    conn.request("POST", "/api/crm/move", body=iter([b'{"resource": "webserver",', b' "node": 7}']),
                 headers={"Cookie": admin.cookie, "X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    reply = json.loads(resp.read())
    conn.close()
    assert resp.status == 400 and reply["field"] == "node", reply
    # a method a path does not take; a path that is not there
    resp, data = admin.request("DELETE", "/api/status", headers={"X-CSRF-Token": admin.csrf})
    assert resp.status == 405 and "GET" in json.loads(data)["error"]
    code, reply = admin.get_json("/api/nothing-here")
    assert code == 404 and "nothing at /api/nothing-here" in reply["error"]
    resp, data = admin.request("HEAD", "/api/status")
    assert resp.status == 200 and data == b""
    for name in ("X-Frame-Options", "Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options"):
        assert resp.getheader(name), name
    assert admin.status()["crm"]["cib_epoch"] == epoch
    assert "Traceback" not in env.web.output()


def test_bad_options_and_files_are_one_line_and_nonzero(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "hadaemon.daemons.web", *args], capture_output=True, text=True,
                              timeout=60, cwd=str(REPO))

    cp = run("--listen", "127.0.0.1:http")
    assert cp.returncode == 2 and "the port is not a number" in cp.stderr
    cp = run("--cert", str(tmp_path / "nothing.pem"))
    assert cp.returncode == 2 and "--cert and --key go together" in cp.stderr
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    cp = run("--listen", "127.0.0.1:1", "--cert", str(tmp_path / "bad.pem"), "--key", str(tmp_path / "bad.pem"))
    assert cp.returncode == 1 and "ha-web: TLS:" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr


def test_sighup_loads_a_renewed_certificate_and_check_config(tmp_path):
    """SIGHUP: a renewed certificate is served without a restart; a pair that does not load leaves the
    one in use. --check-config says in one line what would stop ha-web, and nothing when all is well."""
    pairs = [ensure_certificate(str(tmp_path / name)) for name in ("a", "b")]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pairs[0][0], cert)
    shutil.copy(pairs[0][1], key)
    port = free_port()

    def served():
        return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))

    def der(path):
        return ssl.PEM_cert_to_DER_cert(open(path).read())

    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    web = Proc([sys.executable, "-m", "hadaemon.daemons.web", "--listen", f"127.0.0.1:{port}", "--cert", str(cert),
                "--key", str(key), "--state-dir", str(tmp_path / "state"), "--debug"], tmp_path / "ha-web.log",
               env=env, name="ha-web", cwd=str(REPO))
    try:
        web.wait_output("listening on", timeout=60)
        assert served() == der(pairs[0][0])
        shutil.copy(pairs[1][0], cert)
        shutil.copy(pairs[1][1], key)
        web.signal(signal.SIGHUP)
        wait_until(lambda: served() == der(pairs[1][0]), 60, message="the renewed certificate served")
        assert "EVENT=reload" in web.output()
        cert.write_text("not a certificate\n")
        web.signal(signal.SIGHUP)
        web.wait_output("EVENT=reload-failed", timeout=60)
        assert served() == der(pairs[1][0]) and web.alive()
    finally:
        web.terminate(timeout=10)

    def check(*args):
        return subprocess.run([sys.executable, "-m", "hadaemon.daemons.web", "--check-config", *args],
                              capture_output=True, text=True, timeout=60, cwd=str(REPO))

    cp = check("--cert", str(cert), "--key", str(key))
    assert cp.returncode == 1 and cp.stderr.startswith(f"ha-web: TLS: {cert}") and cp.stderr.count("\n") == 1, cp.stderr
    cp = check("--cert", pairs[1][0], "--key", pairs[1][1])
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", "")
    cp = check("--state-dir", str(tmp_path / "a"))          # its own pair
    assert (cp.returncode, cp.stderr) == (0, "")
    cp = check("--state-dir", str(tmp_path / "new"))        # none yet: openssl will make one
    assert (cp.returncode, cp.stderr) == (0, "") and not (tmp_path / "new").exists()
    cp = check("--cert", pairs[0][0], "--key", pairs[1][1])  # a key that is not the certificate's
    assert cp.returncode == 1 and "ha-web: TLS:" in cp.stderr
