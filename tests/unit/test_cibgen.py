"""The random CIB generator: deterministic, inside the supported subset, and its model matches its XML."""
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from hadaemon.core.cib.verify import ERROR, verify_text
from hadaemon.testing.cibgen import generate_bench_cib, random_cib

SEEDS = range(150)


def test_same_seed_same_text_and_seeds_differ():
    assert random_cib(7).xml == random_cib(7).xml
    assert len({random_cib(s).xml for s in range(20)}) == 20
    assert generate_bench_cib(3, 30, "steady_lost_node", seed=4) == generate_bench_cib(3, 30, "steady_lost_node", seed=4)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cib_passes_hactl_verify(seed):
    errors = [f for f in verify_text(random_cib(seed).xml) if f.severity == ERROR]
    assert errors == [], f"seed {seed}: {errors}"


def test_covers_the_subset():
    """Across the seeds every feature the generator promises shows up somewhere."""
    seen = Counter()
    for seed in SEEDS:
        g = random_cib(seed)
        root = ET.fromstring(g.xml)
        seen["group"] += bool(g.groups)
        seen["standby"] += any(n.standby for n in g.nodes)
        seen["offline"] += any(n.state == "offline" for n in g.nodes)
        seen["unclean"] += any(n.state == "unclean" for n in g.nodes)
        seen["rule"] += bool(root.findall(".//rsc_location/rule"))
        seen["+inf"] += any(loc.score == "INFINITY" for loc in g.locations)
        seen["-inf"] += any(loc.score == "-INFINITY" for loc in g.locations)
        seen["col-inf"] += any(c[3] == "-INFINITY" for c in g.colocations)
        seen["optional"] += any(o[3] == "Optional" for o in g.orders)
        seen["asymmetric"] += any(not o[4] for o in g.orders)
        seen["stickiness"] += bool(root.findall(".//nvpair[@name='resource-stickiness']"))
        seen["history"] += bool(root.findall(".//lrm_rsc_op"))
        seen["failcount"] += any(nv.get("name", "").startswith("fail-count-")
                                for nv in root.findall("status//nvpair"))
        seen["failed-monitor"] += bool(root.findall(".//lrm_rsc_op[@id][@rc-code='7'][@interval='10000']"))
        seen["failed-start"] += bool(root.findall(".//lrm_rsc_op[@operation='start'][@rc-code='1']"))
        seen["stonith"] += g.stonith
        seen["orphan"] += bool(root.findall(".//lrm_resource[@id='orphan1']"))
    assert all(seen[k] > 0 for k in ("group", "standby", "offline", "unclean", "rule", "+inf", "-inf", "col-inf",
                                     "optional", "asymmetric", "stickiness", "history", "failcount",
                                     "failed-monitor", "failed-start", "stonith", "orphan")), seen


def test_model_matches_xml():
    for seed in range(40):
        g = random_cib(seed)
        root = ET.fromstring(g.xml)
        prims = [p.get("id") for p in root.find("configuration/resources").iter("primitive")
                 if p.get("class") == "ocf"]
        assert prims == g.primitives
        states = {s.get("uname"): s for s in root.iter("node_state")}
        for n in g.nodes:
            s = states.get(n.name)
            if n.state == "online":
                assert (s.get("in_ccm"), s.get("crmd"), s.get("join"), s.get("expected")) == \
                    ("true", "online", "member", "member")
            elif n.state == "unclean":
                assert (s.get("in_ccm"), s.get("expected")) == ("false", "member")
            else:
                assert s is None or (s.get("in_ccm"), s.get("expected")) == ("false", "down")
        for rid, node in g.running.items():
            ops = states[node].findall(f".//lrm_resource[@id='{rid}']/lrm_rsc_op")
            assert any(op.get("operation") == "start" and op.get("rc-code") == "0" for op in ops)
        for loc in g.locations:
            assert loc.nodes <= {n.name for n in g.nodes}


@pytest.mark.parametrize("state", ["fresh", "steady_lost_node"])
def test_bench_cib_shape(state):
    text = generate_bench_cib(4, 100, state, seed=2)
    root = ET.fromstring(text)
    assert not [f for f in verify_text(text) if f.severity == ERROR]
    prims = list(root.iter("primitive"))
    groups = list(root.iter("group"))
    assert len(prims) == 100 and len(groups) == 20  # 60 in groups of 3
    cons = root.find("configuration/constraints")
    assert len(cons.findall("rsc_location")) == 60  # one preference per top-level resource
    scores = Counter(c.get("score") for c in cons.findall("rsc_colocation"))
    assert scores["INFINITY"] > 0 and scores["-INFINITY"] > 0
    assert cons.findall("rsc_order") and all(o.get("kind") == "Mandatory" for o in cons.findall("rsc_order"))
    ops = list(root.iter("lrm_rsc_op"))
    if state == "fresh":
        assert ops == []
    else:
        starts = [op for op in ops if op.get("operation") == "start"]
        probes = [op for op in ops if op.get("operation") == "monitor" and op.get("interval") == "0"]
        assert (len(starts), len(probes)) == (100, 300)  # running once, probed on the 3 other nodes
        lost = [s for s in root.iter("node_state") if s.get("in_ccm") == "false"]
        assert len(lost) == 1 and lost[0].get("expected") == "member"
        load = Counter(s.get("uname") for s in root.iter("node_state") for op in s.iter("lrm_rsc_op")
                       if op.get("operation") == "start")
        assert load[lost[0].get("uname")] == max(load.values())


def test_bench_rejects_unknown_state():
    with pytest.raises(ValueError):
        generate_bench_cib(2, 10, "warm")
