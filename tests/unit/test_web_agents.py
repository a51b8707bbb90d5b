"""ha-web's checks of an OCF primitive's parameters (agents.Agents.validate) against a small agent made
here: meta-data, then validate-all (exit 6 refuses); a create checks every parameter, an edit the ones it
sets, with validate-all run on the whole new set."""
from __future__ import annotations

import asyncio

import pytest

from hadaemon.web.agents import Agents

AGENT = r"""#!/bin/sh
case "$1" in
meta-data) cat <<'X'
<?xml version="1.0"?>
<resource-agent name="Addr"><shortdesc>test</shortdesc><parameters>
<parameter name="ip" required="1"><content type="string"/></parameter>
<parameter name="count"><content type="integer" default="1"/></parameter>
<parameter name="flag"><content type="boolean"/></parameter>
</parameters><actions><action name="start"/><action name="validate-all"/></actions></resource-agent>
X
  exit 0 ;;
validate-all)
  case "$OCF_RESKEY_ip" in *bad*) echo "ERROR: IP address [$OCF_RESKEY_ip] not valid." >&2; exit 6 ;; esac
  case "$OCF_RESKEY_ip" in *elsewhere*) echo "ERROR: no interface here" >&2; exit 1 ;; esac
  exit 0 ;;
esac
exit 3
"""


@pytest.fixture
def agents(tmp_path):
    d = tmp_path / "resource.d" / "test"
    d.mkdir(parents=True)
    (d / "Addr").write_text(AGENT)
    (d / "Addr").chmod(0o755)
    return Agents(ocf_root=str(tmp_path), lsb_dir=str(tmp_path / "none"))


def check(agents, params, changed=None):
    return asyncio.run(agents.validate("test", "Addr", params, changed=changed))


def test_a_create_checks_every_parameter(agents):
    assert check(agents, {"ip": "10.0.0.1"}) is None
    assert check(agents, {}) == ("params.ip", "ip is required by ocf:test:Addr")
    field, msg = check(agents, {"ip": "10.0.0.1", "nosuch": "x"})
    assert field == "params.nosuch" and "has no parameter 'nosuch'" in msg
    assert check(agents, {"ip": "10.0.0.1", "count": "two"})[0] == "params.count"
    assert check(agents, {"ip": "10.0.0.1", "flag": "maybe"})[0] == "params.flag"
    assert check(agents, {"ip": "10.0.0.bad"}) == ("params.ip", "IP address [10.0.0.bad] not valid.")
    assert check(agents, {"ip": "10.0.0.elsewhere"}) is None  # exit 1 depends on the node: the cluster decides


def test_an_edit_checks_what_it_sets_and_validates_the_whole_set(agents):
    kept = {"ip": "10.0.0.1", "legacy": "x", "count": "zz"}   # what the CIB already has, however odd
    assert check(agents, dict(kept, flag="yes"), changed={"flag"}) is None
    assert check(agents, dict(kept, count="3"), changed={"count"}) is None
    assert check(agents, dict(kept, flag="maybe"), changed={"flag"})[0] == "params.flag"
    assert check(agents, dict(kept, other="1"), changed={"other"})[0] == "params.other"
    assert check(agents, {"legacy": "x"}, changed={"ip"}) == ("params.ip", "ip is required by ocf:test:Addr")
    assert check(agents, {"legacy": "x", "count": "4"}, changed={"count"}) is None  # a missing ip it did not touch
    # validate-all runs with the whole new set: a bad value it keeps still refuses, named by its field
    assert check(agents, {"ip": "1.2.bad", "count": "5"}, changed={"count"}) == \
        ("params.ip", "IP address [1.2.bad] not valid.")
