"""ha-web on experiment 1 with the real agents, in headless chromium: admin1 and admin2 run ha-heartbeat and
ha-crmd in namespaces (client = ping node); ha-web runs on admin2 inside its network, mount and UTS
namespaces (so it lists admin2's agents: the resource-agents IPaddr2 and Filesystem, the LSB script httpd)
and the browser on the host reaches it through a forwarded port.

The admin (a haclient member, logged in through PAM) builds the webserver group as the scenario has it
through the forms: the VIP with ocf:heartbeat:IPaddr2 (a wrong address first: the error shows beside the ip
field, nothing typed is lost), the shared store with ocf:heartbeat:Filesystem, lsb:httpd, all created
stopped; then the location constraint (admin1, 100) from the constraints page and Enable from the group's
page. The page shows the group on admin1 and the client gets the page through the VIP from admin1. admin1
is unplugged: without a reload the page shows admin1 offline and dead and the group on admin2 (the client
is served by admin2). admin1 comes back; the seed's resource-stickiness (200, more than the preference)
keeps the group on admin2 until the move button moves it back. A wrong VIP given in the edit form is
refused beside its field. Finally a user outside haclient logs in: the page shows everything, the buttons
are disabled, and a change sent from the page anyway is refused (403) and changes nothing.

The seed CIB holds what the cluster had before the admin opened the console: the nodes, no resources,
rsc_defaults resource-stickiness 200, and the ping rule (as experiment 1's, for the group named
webserver through rsc-pattern) that makes an isolated node give its group up."""
from __future__ import annotations

import secrets

import pytest

from hadaemon.testing.crm import CrmCluster, mounted, pidfile, vip
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import Experiment1, cib_xml
from tests.integration.web_driver import Browser, available
from tests.integration.web_env import account, web_in_node

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="chromium and chromium-driver are not installed")]

NODES = ["admin1", "admin2"]
PING_RULE = ('<rsc_location id="webserver-connected" rsc-pattern="^webserver$"><rule id="webserver-connected-rule" '
             'score="-INFINITY" boolean-op="or">'
             '<expression id="webserver-connected-undef" attribute="pingd" operation="not_defined"/>'
             '<expression id="webserver-connected-zero" attribute="pingd" operation="lte" value="0"/>'
             '</rule></rsc_location>')


def field_error(b: Browser, css: str):
    """The error shown beside the input css (None when there is none)."""
    return b.js("const i = document.querySelector(arguments[0]); if (!i) return null;"
                "const e = i.closest('label').querySelector('.field-error');"
                "return e && i.classList.contains('invalid') ? e.textContent : null", css)


def where(b: Browser, rsc: str):
    return b.js("const r = document.querySelector(`#resources tr[data-resource='${arguments[0]}'] .where`);"
                "return r ? r.textContent : null", rsc)


def node_state(b: Browser, node: str, column: str = "state"):
    return b.js("const r = document.querySelector(`#nodes tr[data-node='${arguments[0]}'] "
                "td[data-label='${arguments[1]}'] .state`); return r ? r.textContent : null", node, column)


def login(b: Browser, url: str, user: str, password: str) -> None:
    b.get(url)
    b.wait(lambda: b.url().endswith("/login"), what="the login page")
    b.type("#user", user)
    b.type("#password", password)
    b.click("#login-submit")
    b.wait(lambda: b.exists("#nodes"), 60, "the cluster page")


def choose_agent(b: Browser, cls: str, provider: str, type_: str, first_param: str | None) -> None:
    b.wait(lambda: b.js("return document.querySelectorAll('#agent-provider option').length > 1"), 60,
           "the agents of admin2")
    b.select("#agent-class", cls)
    if cls == "ocf":
        b.select("#agent-provider", provider)
        assert b.js("return document.querySelector('#agent-provider').value") == provider
    b.wait(lambda: b.js("return [...document.querySelectorAll('#agent-type option')].some(o => o.value === arguments[0])",
                        type_), 30, f"{cls}:{type_} in the list of agents")
    b.select("#agent-type", type_)
    if first_param:
        b.wait(lambda: b.exists(f"input[data-param='{first_param}']"), 60, f"{type_}'s fields")
    else:
        b.wait(lambda: "no parameters" in (b.text("form.create-primitive .params") or ""), 60, f"{type_}'s (no) fields")


def create(b: Browser, rid: str) -> None:
    b.type("#new-id", rid)
    b.click("#btn-create")
    b.wait(lambda: "Done" in (b.text("form.create-primitive .done") or "")
           or b.text("form.create-primitive .error") or b.text("form.create-primitive .field-error"),
           60, f"{rid} created")
    assert "Done" in (b.text("form.create-primitive .done") or ""), b.describe()


def test_console_builds_the_webserver_group_and_follows_a_failover(tmp_path):
    admin, viewer = "hwa" + secrets.token_hex(3), "hwv" + secrets.token_hex(3)
    password = "Pw-" + secrets.token_urlsafe(12)
    with Cluster(NODES, client=True) as c, account(admin, password, ["haclient"]), account(viewer, password):
        e = Experiment1(c, groups=())
        for d in (e.http_export, e.www):
            d.mkdir(parents=True, exist_ok=True)
        (e.http_export / "index.html").write_text("<html><body><h1>tuchao's blog</h1></body></html>\n")
        seed = cib_xml(NODES, "", PING_RULE, rsc_defaults={"resource-stickiness": "200"})
        crm = CrmCluster(c, seed, keepalive="200ms", deadtime="3", initd=e.initd(), extra=e.hacf_extra())
        probes = {"vip": vip(e.web_vip), "store": mounted(str(e.www)), "httpd": pidfile("httpd.pid")}
        b = None
        try:
            crm.start_all()
            with web_in_node(crm, "admin2", tmp_path / "web-state", tmp_path / "ha-web.log") as (_web, url):
                b = Browser(tmp_path)
                with crm.observer(probes) as obs:
                    login(b, url, admin, password)
                    b.wait(lambda: node_state(b, "admin1") == "online" and node_state(b, "admin2") == "online"
                           and node_state(b, "admin1", "heartbeat") not in (None, "dead"), 90, "both nodes online")

                    # -- the VIP: a wrong address first, refused beside the ip field ---------------------------------
                    b.get(url + "#/create")
                    choose_agent(b, "ocf", "heartbeat", "IPaddr2", "ip")
                    b.type("input[data-param='ip']", "192.168.1.300")
                    b.type("input[data-param='cidr_netmask']", "24")
                    b.type("input[data-param='nic']", "eth0")
                    b.type("#new-group", "webserver")
                    b.type("form.create-primitive input[name=monitor]", "5s")
                    b.select("form.create-primitive select[name=target]", "Stopped")
                    b.type("#new-id", "vip")
                    b.click("#btn-create")
                    msg = b.wait(lambda: field_error(b, "input[data-param='ip']"), 60, "the error beside ip")
                    assert "192.168.1.300" in msg and "not valid" in msg, msg
                    for css, value in (("input[data-param='ip']", "192.168.1.300"), ("#new-id", "vip"),
                                       ("#new-group", "webserver"), ("input[data-param='nic']", "eth0")):
                        assert b.js("return document.querySelector(arguments[0]).value", css) == value, css
                    assert 'id="vip"' not in crm.cib_file("admin2")
                    b.type("input[data-param='ip']", e.web_vip)
                    create(b, "vip")

                    # -- the shared store and httpd, in the same group -------------------------------------------
                    choose_agent(b, "ocf", "heartbeat", "Filesystem", "device")
                    for name, value in (("device", str(e.http_export)), ("directory", str(e.www)), ("fstype", "none"),
                                        ("options", "bind")):
                        b.type(f"input[data-param='{name}']", value)
                    create(b, "store")
                    choose_agent(b, "lsb", "", "httpd", None)
                    create(b, "httpd")

                    # -- webserver prefers admin1 (the constraints page), then Enable on the group's page ---------
                    b.get(url + "#/constraints")
                    b.wait(lambda: b.js("return [...document.querySelectorAll('form.add-location select[name=resource] option')]"
                                        ".some(o => o.value === 'webserver')"), 30, "webserver in the location form")
                    b.select("form.add-location select[name=resource]", "webserver")
                    b.select("form.add-location select[name=node]", "admin1")
                    b.type("form.add-location input[name=score]", "100")
                    b.click("form.add-location button")
                    b.wait(lambda: "Done" in (b.text("form.add-location .done") or ""), 60, "the location added")
                    b.get(url + "#/resource/webserver")
                    b.wait(lambda: b.exists("form.enable button[name=enable]") and b.text("#where"), 30, "the group's page")
                    b.click("form.enable button[name=enable]")
                    b.wait(lambda: "Done" in (b.text("form.enable .done") or ""), 60, "the group enabled")
                    b.get(url + "#/")
                    b.wait(lambda: where(b, "webserver") == "admin1" and where(b, "httpd") == "admin1", 120,
                           "webserver on admin1 on the page")
                    for r in probes:
                        obs.wait(r, ["admin1"], 60)
                    wait_until(lambda: e.web()[:2] == (True, "admin1"), 30, interval=0.3, message="the page from admin1")

                    # -- admin1 unplugged: the page follows without a reload -------------------------------------
                    b.wait(lambda: b.text("#live") == "live", 30, "the live stream")
                    b.js("window.__noReload = 12")
                    crm.cut("admin1")
                    b.wait(lambda: node_state(b, "admin1") == "offline" and node_state(b, "admin1", "heartbeat") == "dead"
                           and where(b, "webserver") == "admin2", 120, "admin1 offline and dead, webserver on admin2")
                    assert b.js("return window.__noReload") == 12
                    wait_until(lambda: e.web()[:2] == (True, "admin2"), 60, interval=0.3, message="the page from admin2")
                    obs.wait_released("admin1", list(probes), 90)   # the ping rule: the isolated admin1 gives up

                    # -- admin1 back: stickiness keeps the group on admin2; the move button moves it back ---------
                    crm.restore("admin1")
                    b.wait(lambda: node_state(b, "admin1") == "online", 120, "admin1 online again")
                    crm.wait_idle("admin2", 90)
                    assert crm.resource_nodes("admin2", "webserver") == ["admin2"]
                    b.wait(lambda: where(b, "webserver") == "admin2", 30, "webserver still on admin2 on the page")
                    b.get(url + "#/resource/webserver")
                    b.wait(lambda: b.text("#where") == "admin2"
                           and b.js("return [...document.querySelectorAll('form.move select[name=node] option')]"
                                    ".some(o => o.value === 'admin1')"), 30, "the group's page")
                    b.select("form.move select[name=node]", "admin1")
                    b.click("#btn-move")
                    b.wait(lambda: b.text("#where") == "admin1", 120, "webserver on admin1 after the move button")
                    for r in probes:
                        obs.wait(r, ["admin1"], 60)
                    wait_until(lambda: e.web()[:2] == (True, "admin1"), 30, interval=0.3, message="the page from admin1")

                    # -- a wrong VIP in the edit form: refused beside its field, nothing changed -----------------
                    b.get(url + "#/resource/vip")
                    b.wait(lambda: b.exists("form.edit input[data-param='ip']"), 60, "vip's parameter form")
                    assert b.js("return document.querySelector(\"form.edit input[data-param='ip']\").value") == e.web_vip
                    b.type("form.edit input[data-param='ip']", "10.0.0.256")
                    b.click("form.edit button")
                    msg = b.wait(lambda: field_error(b, "form.edit input[data-param='ip']"), 60, "the error beside ip")
                    assert "10.0.0.256" in msg, msg
                    assert e.web_vip in crm.cib_file("admin2") and "10.0.0.256" not in crm.cib_file("admin2")

                    # -- a user outside haclient looks, cannot change --------------------------------------------
                    b.get(url + "#/")
                    b.click("form.logout button")
                    b.wait(lambda: b.url().endswith("/login"), 30, "the login page after logging out")
                    login(b, url, viewer, password)
                    assert "read only" in b.text("#who")
                    b.wait(lambda: where(b, "webserver") == "admin1", 30, "webserver shown to the viewer")
                    b.get(url + "#/resource/webserver")
                    b.wait(lambda: b.exists("#btn-move") and b.text("#where") == "admin1", 30, "the group's page")
                    assert b.js("return document.querySelector('#btn-move').disabled") is True
                    assert b.js("return document.querySelector('form.enable button[name=disable]').disabled") is True
                    refused = b.js("const done = arguments[arguments.length - 1];"
                                   "fetch('/api/crm/move', {method: 'POST', credentials: 'same-origin', headers: {"
                                   "'Content-Type': 'application/json', 'X-CSRF-Token': "
                                   "document.querySelector('meta[name=csrf-token]').content},"
                                   "body: JSON.stringify({resource: 'webserver', node: 'admin2'})})"
                                   ".then(r => r.json().then(j => done([r.status, j.error])))", async_=True)
                    assert refused[0] == 403 and "haclient" in refused[1], refused
                    crm.wait_idle("admin2", 60)
                    assert crm.resource_nodes("admin2", "webserver") == ["admin1"]
                assert not obs.dual_active(), f"{obs.describe()}\n{obs.timeline()}"
        except Exception:
            print(crm.logs())
            print((tmp_path / "ha-web.log").read_text(errors="replace")[-4000:]
                  if (tmp_path / "ha-web.log").exists() else "")
            raise
        finally:
            if b is not None:
                b.close()
            crm.close()
