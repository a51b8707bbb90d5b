"""ha-web in a real browser: Debian's headless chromium driven through chromedriver (WebDriver over
HTTP), against ha-web and the stand-in Crm1 backend on a private bus. Login, a look-only user, the page
following a D-Bus change without a reload, a move from the resource page, an error shown beside its
field, and a narrow window without sideways scrolling."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.web_driver import Browser, available
from tests.integration.web_env import web_env

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="chromium and chromium-driver are not installed")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with web_env(tmp_path_factory.mktemp("webui"), with_director=True) as e:
        yield e


@pytest.fixture(scope="module")
def browser(env, tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield b
    finally:
        b.close()


def base(env):
    return f"https://127.0.0.1:{env.port}"


def login(b: Browser, env, user):
    b.get(base(env) + "/")  # the login page when logged out, else the console with its log-out button
    if not b.url().endswith("/login"):
        b.wait(lambda: b.exists("form.logout"), what="the console")
        b.click("form.logout button")
        b.wait(lambda: b.url().endswith("/login"), what="the login page")
    for _ in range(10):
        b.type("#user", user)
        b.type("#password", env.password)
        b.click("#login-submit")
        b.wait(lambda: b.exists("#resources tr[data-resource='webserver']") or "try again" in (b.text("#login-error") or ""),
               what="the cluster page")
        if b.exists("#resources"):
            return
        time.sleep(2)  # an earlier failed login (from this address) slows this one
    raise AssertionError("could not log in")


def where_on_page(b, rsc):
    return b.js("const r = document.querySelector(`#resources tr[data-resource='${arguments[0]}'] .where`);"
                "return r ? r.textContent : null", rsc)


def busctl_move(env, rsc, node):
    cp = subprocess.run(["busctl", f"--address={env.bus.address}", "call", "--", "org.hadaemon.Crm1",
                         "/org/hadaemon/Crm1", "org.hadaemon.Crm1", "MigrateResource", "ss", rsc, node],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr


def test_login_page_refuses_a_wrong_password(env, browser):
    b = browser
    b.get(base(env) + "/")
    b.wait(lambda: b.url().endswith("/login"), what="the redirect to /login")
    b.type("#user", env.viewer)
    b.type("#password", "wrong-password")
    b.click("#login-submit")
    b.wait(lambda: "Login failed" in (b.text("#login-error") or ""), what="the error")
    assert b.js("return document.querySelector('#user').value") == env.viewer  # what was typed stays


def test_login_and_see_the_cluster(env, browser):
    b = browser
    login(b, env, env.admin)
    assert b.text("#dc") == "admin1"
    assert b.exists("#nodes tr[data-node='admin1']") and b.exists("#nodes tr[data-node='admin2']")
    assert b.exists("#resources tr[data-resource='web_ip']")
    assert b.wait(lambda: "ha-heartbeat" in (b.text("#missing") or ""), what="the missing daemons")
    assert "live" in b.wait(lambda: b.text("#live") == "live" and b.text("#live"), what="the live stream")


def test_page_follows_a_dbus_change_without_reload(env, browser):
    b = browser
    b.get(base(env) + "/#/")
    b.wait(lambda: where_on_page(b, "mysql"), what="mysql's row")
    b.wait(lambda: b.text("#live") == "live", what="the live stream")
    b.js("window.__noReload = 42")
    before = where_on_page(b, "mysql").split()
    target = "admin1" if before != ["admin1"] else "admin2"
    busctl_move(env, "mysql", target)
    b.wait(lambda: where_on_page(b, "mysql") == target, what=f"mysql on {target}")
    assert b.js("return window.__noReload") == 42
    cp = subprocess.run(["busctl", f"--address={env.bus.address}", "call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1",
                         "org.hadaemon.Crm1", "ClearResource", "ss", "mysql", ""], capture_output=True, timeout=60)
    assert cp.returncode == 0


def test_move_from_the_resource_page(env, browser):
    b = browser
    b.get(base(env) + "/#/resource/webserver")
    b.wait(lambda: b.text("#where") not in (None, "no node"), what="webserver's state")
    before = b.text("#where")
    target = "admin2" if before != "admin2" else "admin1"
    b.select("form.move select[name=node]", target)
    b.click("#btn-move")
    b.wait(lambda: b.text("#where") == target, what=f"webserver on {target}")
    assert "Done" in b.text("form.move .done")
    # moving it again to the same node is refused, in words, beside the form
    b.click("#btn-move")
    msg = b.wait(lambda: b.text("form.move .error, form.move .field-error"), what="the refusal")
    assert msg and target in msg
    b.click("#btn-clear")
    b.wait(lambda: "Done" in (b.text("form.clear .done") or ""), what="the clear")


def test_error_is_shown_beside_its_field(env, browser):
    b = browser
    b.get(base(env) + "/#/constraints")
    b.wait(lambda: b.exists("form.add-location input[name=score]"), what="the constraints page")
    b.type("form.add-location input[name=score]", "lots")
    b.click("form.add-location button")
    msg = b.wait(lambda: b.js("const i = document.querySelector('form.add-location input[name=score]');"
                              "const e = i.closest('label').querySelector('.field-error');"
                              "return e && i.classList.contains('invalid') ? e.textContent : null"),
                 what="the error beside the score")
    assert "lots" in msg or "score" in msg
    assert b.js("return document.querySelector('form.add-location input[name=score]').value") == "lots"


def test_create_form_is_built_from_meta_data(env, browser):
    b = browser
    b.get(base(env) + "/#/create")
    b.wait(lambda: b.js("return document.querySelectorAll('#agent-type option').length > 5"), what="the agents")
    b.select("#agent-type", "IPaddr2")
    b.wait(lambda: b.exists("input[data-param='ip']"), what="IPaddr2's fields")
    assert b.js("return document.querySelector(\"input[data-param='ip']\").closest('label')"
                ".classList.contains('req')")


def test_drain_and_restore_a_real_server(env, browser):
    b = browser
    b.get(base(env) + "/#/director")
    row = "tr[data-real='10.9.0.11:80']"
    b.wait(lambda: b.exists(row + " button[name=drain]"), what="the real server")
    b.click(row + " button[name=drain]")
    b.wait(lambda: b.text(row + " .state") == "drained" and b.text(row + " .weight") == "0", what="drained")
    b.click(row + " button[name=restore]")
    b.wait(lambda: b.text(row + " .state") == "up" and b.text(row + " .weight") == "1", what="restored")


def test_a_wrong_vip_gives_an_error_beside_its_field(env, browser):
    b = browser
    b.get(base(env) + "/#/create")
    b.wait(lambda: b.js("return document.querySelectorAll('#agent-type option').length > 5"), what="the agents")
    b.select("#agent-type", "IPaddr2")
    b.wait(lambda: b.exists("input[data-param='ip']"), what="IPaddr2's fields")
    b.type("#new-id", "web_vip")
    b.type("input[data-param='ip']", "192.168.1.300")
    b.type("input[data-param='cidr_netmask']", "24")
    b.type("#new-group", "webserver")
    b.click("#btn-create")
    msg = b.wait(lambda: b.js("const i = document.querySelector(\"input[data-param='ip']\");"
                              "const e = i.closest('label').querySelector('.field-error');"
                              "return e && i.classList.contains('invalid') ? e.textContent : null"),
                 what="the error beside ip")
    assert "192.168.1.300" in msg and "not valid" in msg
    # nothing typed is lost
    assert b.js("return document.querySelector(\"input[data-param='ip']\").value") == "192.168.1.300"
    assert b.js("return document.querySelector('#new-id').value") == "web_vip"


def test_standby_and_online_from_the_node_page(env, browser):
    b = browser
    b.get(base(env) + "/#/node/admin2")
    b.wait(lambda: b.exists("#btn-standby") and b.exists("#page .state"), what="the node page")
    b.click("#btn-standby")
    b.wait(lambda: b.text("#page .state") == "standby", what="admin2 in standby")
    b.click("#btn-online")
    b.wait(lambda: b.text("#page .state") == "online", what="admin2 online")


def test_edit_a_primitive_s_parameters(env, browser):
    b = browser
    b.get(base(env) + "/#/resource/web_fs")
    b.wait(lambda: b.exists("form.edit input[data-param='fake']"), what="web_fs's parameter form")
    b.type("form.edit input[data-param='fake']", "edited-in-browser")
    b.click("form.edit button")
    b.wait(lambda: "Done" in (b.text("form.edit .done") or ""), what="the save")
    c = env.client()
    c.login(env.admin, env.password)
    code, detail = c.get_json("/api/resource?id=web_fs")
    assert code == 200 and detail["params"]["fake"] == "edited-in-browser", detail


def test_create_a_group_through_the_form(env, browser):
    b = browser
    b.get(base(env) + "/#/create")
    b.wait(lambda: b.js("return document.querySelectorAll('#agent-type option').length > 5"), what="the agents")
    b.select("#agent-provider", "pacemaker")
    b.wait(lambda: b.js("return [...document.querySelectorAll('#agent-type option')].some(o => o.value === 'Dummy')"),
           what="ocf:pacemaker agents")
    b.select("#agent-type", "Dummy")
    b.wait(lambda: b.exists("input[data-param='state']"), what="Dummy's fields")
    b.type("#new-id", "site_svc")
    b.type("#new-group", "site")
    b.click("#btn-create")
    b.wait(lambda: "Done" in (b.text("form.create-primitive .done") or ""), what="the primitive created")
    b.get(base(env) + "/#/")
    b.wait(lambda: where_on_page(b, "site") in ("admin1", "admin2") and where_on_page(b, "site_svc"),
           what="the new group placed")
    c = env.client()
    c.login(env.admin, env.password)
    status, body = c.post("/api/crm/delete_group", {"group": "site"})
    assert status == 200, body
    status, body = c.post("/api/crm/delete_resource", {"id": "site_svc"})
    assert status == 200, body


@pytest.mark.parametrize("width", [400, 360])
def test_narrow_window(env, browser, width):
    """Every page in a phone-sized window: nothing wider than the window (no sideways scrolling), tables
    stacked into label: value lines, form fields in one column."""
    b = browser
    b.resize(width, 800)
    try:
        pages = (("#/", "#resources"), ("#/node/admin1", "#btn-standby"), ("#/resource/webserver", "#history"),
                 ("#/create", "#btn-create"), ("#/constraints", "#constraints, .card p.muted"), ("#/cib", "#cib-xml"),
                 ("#/director", ".reals"))
        for page, ready in pages:
            b.get(base(env) + "/" + page)
            b.wait(lambda ready=ready: b.exists(ready), what=page)
            inner = b.js("return window.innerWidth")
            assert inner <= width, (page, inner)
            wide = b.js("const w = window.innerWidth; return [document.documentElement.scrollWidth, "
                        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)"
                        ".map(e => e.tagName + '.' + e.className).slice(0, 5)]")
            assert wide[0] <= inner + 1 and not wide[1], (page, inner, wide)
        b.get(base(env) + "/#/")
        b.wait(lambda: b.exists("#resources td"), what="the resources")
        assert b.js("return getComputedStyle(document.querySelector('#resources td')).display") == "block"
        b.get(base(env) + "/#/create")
        b.wait(lambda: b.exists("#new-id"), what="the create form")
        # one column: the id field and the type field start at the same left edge, one under the other
        boxes = b.js("return ['#new-id', '#agent-type'].map(s => document.querySelector(s).closest('label')"
                     ".getBoundingClientRect()).map(r => [r.left, r.top])")
        assert abs(boxes[0][0] - boxes[1][0]) < 2 and boxes[1][1] > boxes[0][1], boxes
    finally:
        b.resize(1280, 900)


def test_narrow_login_page(env, tmp_path):
    b = Browser(tmp_path, 400, 800)
    try:
        b.get(base(env) + "/login")
        b.wait(lambda: b.exists("#login-submit"), what="the login page")
        wide = b.js("return [document.documentElement.scrollWidth, window.innerWidth, "
                    "document.querySelector('#password').getBoundingClientRect().right]")
        assert wide[0] <= wide[1] + 1 and wide[2] <= wide[1], wide
    finally:
        b.close()


def test_a_user_outside_haclient_may_look_not_change(env, browser):
    b = browser
    login(b, env, env.viewer)
    assert "read only" in b.text("#who")
    b.get(base(env) + "/#/resource/webserver")
    b.wait(lambda: b.exists("#btn-move"), what="the resource page")
    assert b.js("return document.querySelector('#btn-move').disabled") is True
