"""ha-web on the namespace cluster: real ha-heartbeat + ha-crmd on n1 and n2 (Dummy agents), ha-web on
n2's bus, headless chromium. The page shows both nodes and the group on n1 with heartbeat's links; n1 is
cut and the page shows it offline and the group on n2 without a reload; n1 comes back and the move
button moves the group from the resource page."""
from __future__ import annotations

import os
import secrets
import sys

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import Proc
from hadaemon.testing.scenario import cib_xml, primitive
from tests.integration.web_driver import Browser, available
from tests.integration.web_env import REPO, account, free_port

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="chromium and chromium-driver are not installed")]

NODES = ["n1", "n2"]


def test_console_follows_a_failover_and_moves_back(tmp_path):
    group = ('<group id="web">' + primitive("a", "ocf", "Dummy", "pacemaker", monitor="10s")
             + primitive("b", "ocf", "Dummy", "pacemaker", monitor="10s") + "</group>")
    user, password = "hwc" + secrets.token_hex(3), "Pw-" + secrets.token_urlsafe(12)
    port = free_port()
    with Cluster(NODES) as c, account(user, password, ["haclient"]):
        crm = CrmCluster(c, cib_xml(NODES, group, '<rsc_location id="web-pref" rsc="web" node="n1" score="100"/>'),
                         keepalive="200ms", deadtime="3", fencing=False)
        web = None
        b = None
        try:
            crm.start_all()
            crm.wait_resource("web", ["n1"], "n2", 90)
            web = Proc([sys.executable, "-m", "hadaemon.daemons.web", "--listen", f"127.0.0.1:{port}",
                        "--state-dir", str(tmp_path / "state")], tmp_path / "ha-web.log",
                       env=dict(os.environ, **c.dbus_env("n2")), name="ha-web", cwd=str(REPO))
            web.wait_output("listening on", timeout=60)
            b = Browser(tmp_path)
            url = f"https://127.0.0.1:{port}/"
            b.get(url)
            b.type("#user", user)
            b.type("#password", password)
            b.click("#login-submit")

            def where(rsc):
                return b.js("const r = document.querySelector(`#resources tr[data-resource='${arguments[0]}'] .where`);"
                            "return r ? r.textContent : null", rsc)

            def node_state(n):
                return b.js("const r = document.querySelector(`#nodes tr[data-node='${arguments[0]}'] .state`);"
                            "return r ? r.textContent : null", n)

            b.wait(lambda: where("web") == "n1" and node_state("n1") == "online" and node_state("n2") == "online",
                   90, "web on n1, both nodes online")
            missing = b.text("#missing") or ""  # Crm1 and Heartbeat1 both answer (no director here)
            assert "ha-crmd" not in missing and "ha-heartbeat" not in missing and "ha-ldirectord" in missing
            b.js("window.__noReload = 7")

            crm.cut("n1")
            b.wait(lambda: node_state("n1") == "offline" and where("web") == "n2", 90, "n1 offline, web on n2")
            assert b.js("return window.__noReload") == 7
            hb = b.js("const r = document.querySelector(\"#nodes tr[data-node='n1'] td[data-label='heartbeat'] .state\");"
                      "return r ? r.textContent : null")
            assert hb == "dead", hb

            crm.restore("n1")
            b.wait(lambda: node_state("n1") == "online", 120, "n1 back online")
            b.get(url + "#/resource/web")
            b.wait(lambda: b.text("#where") in ("n1", "n2"), 90, "web placed")
            b.wait(lambda: b.text("#live") == "live", 30, "the live stream")
            target = "n2" if b.text("#where") == "n1" else "n1"
            b.select("form.move select[name=node]", target)
            b.click("#btn-move")
            b.wait(lambda: b.text("#where") == target, 90, f"web on {target} after the move button")
            crm.wait_resource("web", [target], "n2", 90)
        except Exception:
            print(crm.logs())
            if web is not None:
                print(web.output()[-3000:])
            raise
        finally:
            if b is not None:
                b.close()
            if web is not None:
                web.terminate(timeout=10)
            crm.close()
