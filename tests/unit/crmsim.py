"""crm_simulate as the reference answer: its Transition Summary, normalised like ours (one module for
every test that compares with it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Callable, Dict, List, Tuple

import pytest


def needs_crm_simulate(test):
    """Mark a test that runs crm_simulate: selected by `-m crm_simulate`, skipped when it is not installed."""
    test = pytest.mark.skipif(shutil.which("crm_simulate") is None, reason="crm_simulate not installed")(test)
    return pytest.mark.crm_simulate(test)


def summary_block(text: str) -> List[str] | None:
    """The raw bullet lines of the "Transition Summary:" block of crm_simulate's (or hactl simulate's)
    output, or None when no such block was printed."""
    lines, inside = [], False
    for raw in text.splitlines():
        if raw.startswith("Transition Summary:"):
            inside = True
            continue
        if inside:
            if not raw.strip():
                continue
            if not raw.lstrip().startswith("*"):
                break
            lines.append(raw)
    return lines if inside else None


def summary_of(text: str) -> List[str]:
    """The sorted lines of the "Transition Summary:" block, without the bullet and with runs of blanks
    and the blanks inside parentheses squeezed."""
    out = []
    for raw in summary_block(text) or []:
        line = re.sub(r"\s+", " ", raw.strip().lstrip("*").strip())
        out.append(line.replace("( ", "(").replace(" )", ")"))
    return sorted(out)


def crm_simulate_summary(xml: str, tmp: str, *args: str) -> List[str]:
    """crm_simulate -x CIB -S [args...] on xml written to tmp/cib.xml: its summary lines."""
    path = os.path.join(tmp, "cib.xml")
    with open(path, "w") as f:
        f.write(xml)
    out = subprocess.run(["crm_simulate", "-x", path, "-S", *args], capture_output=True, text=True,
                         timeout=120).stdout
    return summary_of(out)


def simulate_both(xml: str, tmp: str, capsys) -> Tuple[str, str]:
    """The CIB xml written to tmp/cib.xml, run through `hactl simulate` (which must exit 0; its output read
    from pytest's capsys) and `crm_simulate -x CIB -S`: (our output, crm_simulate's output)."""
    from hadaemon.cli.hactl import main

    path = os.path.join(tmp, "cib.xml")
    with open(path, "w") as f:
        f.write(xml)
    crm = subprocess.run(["crm_simulate", "-x", path, "-S"], capture_output=True, text=True, timeout=120).stdout
    capsys.readouterr()
    assert main(["simulate", path]) == 0
    return capsys.readouterr().out, crm


def case_tests(cases: Dict[str, Tuple[Callable[[], str], List[str]]]):
    """The two tests of a table of scheduler cases {name: (make the CIB xml, expected summary lines)}, for a
    test module to take as its own (`test_summary, test_against_crm_simulate = case_tests(CASES)`):
    test_summary: our summary of each case is the expected one (what crm_simulate printed for it);
    test_against_crm_simulate: our summary is what crm_simulate prints now (when it is installed)."""
    from tests.unit.test_policy_scheduler import summary

    @pytest.mark.parametrize("name", sorted(cases))
    def test_summary(name):
        make, expected = cases[name]
        assert summary(make()) == sorted(expected)

    @needs_crm_simulate
    @pytest.mark.parametrize("name", sorted(cases))
    def test_against_crm_simulate(name, tmp_path):
        make, _ = cases[name]
        assert summary(make()) == crm_simulate_summary(make(), str(tmp_path))

    return test_summary, test_against_crm_simulate


GraphKey = Tuple[str, str]


def graph_inputs(graph_xml: str) -> Dict[GraphKey, set]:
    """{(operation key, node): {its inputs' (operation key, node)}} of a transition graph; an instance's own
    key where the graph gives one (Pacemaker writes an anonymous instance's history id as operation_key and
    the instance's key as internal_operation_key), "" for no node."""
    import xml.etree.ElementTree as ET

    def key(el) -> GraphKey:
        return (el.get("internal_operation_key") or el.get("operation_key") or el.get("operation"),
                el.get("on_node") or "")

    out: Dict[GraphKey, set] = {}
    for syn in ET.fromstring(graph_xml).iter("synapse"):
        action = list(syn.find("action_set"))[0]
        out[key(action)] = {key(list(t)[0]) for t in syn.iter("trigger")}
    return out


def crm_simulate_graph(xml: str, tmp: str, now: int) -> str:
    """The transition graph crm_simulate -S -G writes for the CIB xml at the time now (seconds since the
    epoch), as XML text. crm_simulate 2.1.5 aborts on a few inputs (an assertion in its simulated run:
    clone-recover-no-shuffle-4/7/10) after writing the graph: the graph counts, a missing one fails."""
    import time

    path, graph = os.path.join(tmp, "cib.xml"), os.path.join(tmp, "crm-graph.xml")
    with open(path, "w") as f:
        f.write(xml)
    if os.path.exists(graph):
        os.unlink(graph)
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now))
    run = subprocess.run(["crm_simulate", "-S", "-x", path, "-G", graph, "-t", when], capture_output=True,
                         text=True, timeout=120)
    if not os.path.exists(graph):
        raise AssertionError(f"crm_simulate wrote no graph (exit {run.returncode}): {run.stderr[-500:]}")
    with open(graph) as f:
        return f.read()
