"""A CIB larger than ha-heartbeat's 1 MiB message limit replicates: crmd messages over 64 KiB are
compressed and, still over 512 KiB, sent in chunks (hadaemon/daemons/crmd_wire.py). A ~2 MiB CIB
(a node attribute of incompressible text) imported through a member that is not the DC travels
member -> DC (modify) and DC -> members (cib), is acknowledged only once on every disk, and a
restarted crmd joins with it (join report)."""
import base64
import os
import re

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib, dummy_primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = cib(dummy_primitive("d1"), '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>')


def test_a_2_mib_cib_replicates_and_joins():
    blob = base64.b64encode(os.urandom(1536 * 1024)).decode()   # 2 MiB of text that compresses badly
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        dc = crm.wait_dc()
        crm.wait_idle(dc)
        member = "node2" if dc == "node1" else "node1"
        text = crm.cib_file(member)
        text = re.sub(r"<status>.*</status>|<status\s*/>", "<status/>", text, flags=re.S)
        node = re.search(r'<node id="[^"]*" uname="node1"\s*/>', text)
        assert node, text[:2000]
        big = node.group(0)[:-2] + ('><instance_attributes id="node1-blob"><nvpair id="node1-blob-v" '
                                    f'name="blob" value="{blob}"/></instance_attributes></node>')
        text = text.replace(node.group(0), big)
        assert len(text) > 2 * 1024 * 1024
        path = c.workdir / "big-cib.xml"
        path.write_text(text)
        cp = crm.hactl(member, "cib", "import", str(path), timeout=120)
        assert cp.returncode == 0, f"{cp.stdout}\n{cp.stderr}\n{crm.logs()}"
        # acknowledged: on every node's disk already
        for n in crm.nodes:
            assert blob in crm.cib_file(n), n
        crm.wait_idle(crm.wait_dc())
        # a restarted crmd joins with the big CIB (its join report carries the configuration)
        offset = len(crm.crmd[member].output())
        crm.kill_crmd(member)
        crm.restart_crmd(member)
        crm.wait_crm_name(member)
        wait_until(lambda: "joined the cluster" in crm.crmd[member].output()[offset:]
                   or "DC: join round" in crm.crmd[member].output()[offset:], 90,
                   message=f"{member} rejoined")
        st = crm.wait_idle(crm.wait_dc())
        assert st["nodes"][member]["state"] == "online", st
        assert blob in crm.cib_file(member)
        logs = crm.logs()
        assert "crmd message from" not in logs, logs   # no reassembly error anywhere
