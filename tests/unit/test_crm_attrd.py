"""crm_attribute / crm_master / attrd_updater / crm_node (hadaemon.io.attrd) against ha-crmd's attribute
server (hadaemon.daemons.crmd_attrd) with a stand-in node: the options agents use, transient and
permanent attributes, promotion score names, errors and exit codes."""
import asyncio
import os
import subprocess
import sys

import pytest

from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.daemons.crmd_attrd import AttrdServer, install_tools

pytestmark = [pytest.mark.root]   # the server answers root only (SO_PEERCRED)


class FakeNode:
    def __init__(self, name):
        self.local_node = name
        self.attrs = {}
        self.members = (name, "peer")
        self.has_quorum = True
        self.dc_role = None
        self.cib = cibdoc.empty_cib()
        cibdoc.ensure_nodes(self.cib, [name, "peer"])
        S.set_attribute(self.cib, "peer", "pingd", "3")

    def set_attribute(self, name, value):
        if value is None:
            self.attrs.pop(name, None)
        else:
            self.attrs[name] = value

    async def modify_cib(self, fn, reason=""):
        fn(self.cib)
        return "0:2:0"


async def _tool(env, *argv):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hadaemon.io.attrd", *argv, env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode().strip(), err.decode().strip()


async def test_the_tools_agents_call(tmp_path):
    node = FakeNode(f"t{os.getpid()}")
    server = AttrdServer(node)
    await server.start()
    try:
        env = dict(os.environ, HADAEMON_ATTRD_SOCKET=server.name, OCF_RESOURCE_INSTANCE="st:1",
                   OCF_RESKEY_CRM_meta_globally_unique="false")
        assert await _tool(env, "crm_attribute", "--promotion", "-v", "10") == (0, "", "")
        assert node.attrs == {"master-st": "10"}                      # clone marker stripped, transient
        rc, out, _ = await _tool(env, "crm_attribute", "--promotion", "-G", "-q")
        assert (rc, out) == (0, "10")
        assert (await _tool(env, "crm_master", "-l", "reboot", "-v", "5"))[0] == 0
        assert node.attrs["master-st"] == "5"
        uenv = dict(env, OCF_RESKEY_CRM_meta_globally_unique="true")
        assert (await _tool(uenv, "crm_attribute", "--promotion", "-v", "1"))[0] == 0
        assert node.attrs["master-st:1"] == "1"                       # a unique clone's instance keeps it
        assert (await _tool(env, "crm_attribute", "--promotion", "-D"))[0] == 0
        assert "master-st" not in node.attrs
        # attrd_updater (ocf:pacemaker:ping)
        assert (await _tool(env, "attrd_updater", "-n", "pingd", "-v", "200", "-d", "5s"))[0] == 0
        assert node.attrs["pingd"] == "200"
        rc, out, _ = await _tool(env, "attrd_updater", "-n", "pingd", "-Q")
        assert rc == 0 and out == f'name="pingd" host="{node.local_node}" value="200"'
        rc, out, _ = await _tool(env, "attrd_updater", "-n", "pingd", "-Q", "-N", "peer")
        assert rc == 0 and 'value="3"' in out
        # a permanent attribute goes through a CIB change; -G reads it back
        assert (await _tool(env, "crm_attribute", "-l", "forever", "-n", "site", "-v", "paris"))[0] == 0
        rc, out, _ = await _tool(env, "crm_attribute", "-t", "nodes", "-n", "site", "-G")
        assert rc == 0 and out == "scope=nodes  name=site value=paris"
        node_el = [n for n in node.cib.iter("node") if n.get("uname") == node.local_node][0]
        assert [nv.get("value") for nv in node_el.iter("nvpair") if nv.get("name") == "site"] == ["paris"]
        # missing attribute: 105 (CRM_EX_NOSUCH), or the default
        rc, _, err = await _tool(env, "crm_attribute", "-n", "nothing", "-l", "reboot", "-G")
        assert rc == 105 and "No such" in err
        rc, out, _ = await _tool(env, "crm_attribute", "-n", "nothing", "-l", "reboot", "-G", "-q", "-d", "7")
        assert (rc, out) == (0, "7")
        # crm_node
        assert await _tool(env, "crm_node", "-n") == (0, node.local_node, "")
        assert (await _tool(env, "crm_node", "-q"))[1] == "1"
        # refusals: another node's transient attribute off the DC, a bad lifetime, no ha-crmd
        rc, _, err = await _tool(env, "crm_attribute", "-N", "peer", "-n", "x", "-l", "reboot", "-v", "1")
        assert rc == 1 and "DC" in err
        assert (await _tool(env, "crm_attribute", "-n", "x", "-l", "sometimes", "-v", "1"))[0] == 64
        rc, _, err = await _tool(dict(env, HADAEMON_ATTRD_SOCKET="hadaemon-attrd-nobody-here"),
                                 "crm_attribute", "--promotion", "-v", "1")
        assert rc == 102 and "could not reach ha-crmd" in err
    finally:
        server.close()


def test_tools_are_installed_once(tmp_path):
    d = install_tools(tmp_path / "sbin", python="/usr/bin/python3")
    names = sorted(p.name for p in d.iterdir())
    assert names == ["attrd_updater", "crm_attribute", "crm_master", "crm_node"]
    st = os.stat(d / "crm_attribute")
    assert st.st_mode & 0o111
    install_tools(tmp_path / "sbin", python="/usr/bin/python3")
    assert os.stat(d / "crm_attribute").st_ino == st.st_ino          # unchanged content: not rewritten
    assert 'exec "/usr/bin/python3" -m hadaemon.io.attrd crm_attribute "$@"' in (d / "crm_attribute").read_text()
