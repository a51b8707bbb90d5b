"""hactl simulate: crm_simulate-style sections, scores, the saved graph and `file:line:` errors."""
from __future__ import annotations

import pytest

from hadaemon.cli.hactl import main
from tests.unit.test_policy_scheduler import s_lost_node_fenced, s_tie_break


def run(capsys, *argv):
    rc = main(["simulate", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_sections_and_summary_format(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(s_lost_node_fenced())
    rc, out, err = run(capsys, str(f))
    assert rc == 0 and err == ""
    heads = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert heads == ["Current cluster status:", "Transition Summary:", "Executing Cluster Transition:",
                     "Revised Cluster Status:"]
    assert "  * Fence (reboot) node1 'peer is no longer part of the cluster'" in out
    assert "  * Move       rsc1    ( node1 -> node2 )" in out
    assert "  * Fencing node1 (reboot)" in out
    assert "  * Pseudo action:   rsc1_stop_0" in out
    assert "    * rsc1\t(ocf:heartbeat:Dummy):\t Started node1 (UNCLEAN)" in out
    revised = out.split("Revised Cluster Status:")[1]
    assert "OFFLINE: [ node1 ]" in revised and "rsc1\t(ocf:heartbeat:Dummy):\t Started node2" in revised


def test_scores_and_saved_graph(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(s_tie_break())
    graph = tmp_path / "graph.xml"
    rc, out, _ = run(capsys, str(f), "--scores", "--save-graph", str(graph))
    assert rc == 0
    assert "pcmk__primitive_assign: rsc1 allocation score on node1: 0" in out
    text = graph.read_text()
    assert text.startswith("<transition_graph") and 'operation_key="rsc3_start_0"' in text
    rc2, _, _ = run(capsys, str(f), "--save-graph", str(graph))
    assert graph.read_text() == text  # same input, same bytes


def test_show_actions(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(s_tie_break())
    rc, out, _ = run(capsys, str(f), "--show-actions")
    assert rc == 0
    lines = out.splitlines()
    assert "Resource action: rsc1            start on node1" in lines
    assert lines.index("Resource action: rsc1            monitor on node1") < \
        lines.index("Resource action: rsc1            start on node1")


def test_bad_input_exit_2(tmp_path, capsys):
    f = tmp_path / "bad.xml"
    f.write_text("<cib>\n<configuration>\n<resources><bundle id='c'/></resources></configuration></cib>\n")
    rc, out, err = run(capsys, str(f))
    assert rc == 2 and out == ""
    assert err.strip() == f"{f}:3: <bundle> (bundles) is not supported"
    rc, _, err = run(capsys, str(tmp_path / "missing.xml"))
    assert rc == 2 and "cannot read" in err and "Traceback" not in err


FAST = (["f.xml"], ["-"], ["f.xml", "--scores"], ["--now", "1000", "f.xml"], ["f.xml", "--now=+12"],
        ["--save-graph", "g.xml", "f.xml", "--show-actions"], ["f.xml", "-t", "2026-12-05 01:30:00Z"],
        ["f.xml", "-unode1", "-u", "node2", "--node-down", "node3", "-f", "node4"],
        ["f.xml", "-i", "rsc1_monitor_0@node1=7", "-F", "rsc1_start_0@node2=1", "--op-fail=x_stop_0@n=1"],
        ["f.xml", "-g", "t1", "-r", "t2", "-b", "t3", "-e", "t4", "-q", "false", "-w", "true", "-S"],
        ["f.xml", "-I", "in.xml", "-O", "out.xml", "--save-input", "-"], ["--", "f.xml"], ["--scores", "--", "-x.xml"])
ARGPARSE_ONLY = (["f.xml", "--sco"], ["-h"], ["f.xml", "--help"], ["f.xml", "-Sq", "false"], ["f.xml", "--now", "x"],
                 ["f.xml", "--now", "-5"], ["f.xml", "-u"], ["f.xml", "-u", "-d"], ["f.xml", "-u=node1"],
                 ["f.xml", "--scores=yes"], ["a.xml", "b.xml"], [], ["f.xml", "--unknown"], ["f.xml", "-Z"],
                 ["f.xml", "--scores", "--"], ["f.xml", "--"])


def test_fast_option_parsing_agrees_with_argparse():
    """hactl simulate reads common command lines without argparse (start-up time): each one it reads must
    give what argparse gives; anything else is left to argparse (None)."""
    from hadaemon.cli import simulate
    from hadaemon.cli.hactl import build_parser

    parser = build_parser("simulate")
    for argv in FAST:
        fast = simulate.parse_fast(argv)
        assert fast is not None, argv
        expected = {k: v for k, v in vars(parser.parse_args(["simulate", *argv])).items() if k != "_run"}
        assert vars(fast) == expected, argv
    for argv in ARGPARSE_ONLY:
        assert simulate.parse_fast(argv) is None, argv


def test_console_script_flushes_everything_before_its_quick_exit(tmp_path, capsys):
    """The hactl console script ends a simulation with os._exit: the whole output and the exit status must
    still come out, also when stdout is a pipe (block-buffered)."""
    import subprocess
    import sys

    f = tmp_path / "cib.xml"
    f.write_text(s_tie_break())
    rc, expected, _ = run(capsys, str(f))
    assert rc == 0 and len(expected) > 500
    code = "import sys; from hadaemon.cli.hactl import console_main; sys.argv[0] = 'hactl'; sys.exit(console_main())"
    whole = subprocess.run([sys.executable, "-c", code, "simulate", str(f)], capture_output=True, text=True,
                           timeout=120)
    assert (whole.returncode, whole.stdout, whole.stderr) == (0, expected, "")
    bad = tmp_path / "bad.xml"
    bad.write_text("<cib>\n<configuration>\n<resources><bundle id='c'/></resources></configuration></cib>\n")
    failed = subprocess.run([sys.executable, "-c", code, "simulate", str(bad)], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 2 and failed.stdout == "" and "<bundle> (bundles) is not supported" in failed.stderr


def test_the_isolated_console_script_gives_other_commands_the_site_directories():
    """The RPM's hactl runs python3 -IS (no site: simulate's start-up); every other command needs dbus-next,
    which may sit in any site directory (/usr/lib64, /usr/local ...): console_main sets site's paths up for
    them, and only for them."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from hadaemon.cli import hactl; import os\n"
            "def probe(argv):\n"
            "    print('site' in sys.modules, sorted(set(sys.path) - before)); sys.stdout.flush(); return 0\n"
            "before = set(sys.path); hactl.main = probe; sys.argv[0] = 'hactl'; sys.exit(hactl.console_main())")
    for command, site in (("status", True), ("simulate", False)):
        cp = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(repo), command], capture_output=True,
                            text=True, timeout=60)
        loaded, added = cp.stdout.split(" ", 1)
        assert cp.returncode == 0 and loaded == str(site), (command, cp.stdout, cp.stderr)
        assert ("site-packages" in added) == site, (command, added)


def test_output_that_cannot_be_written_is_said_and_the_files_still_come(tmp_path):
    """stdout on a full disk (/dev/full): a message and exit status 1, no traceback; --save-graph is written."""
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    f = tmp_path / "cib.xml"
    f.write_text(s_tie_break())
    code = "import sys; from hadaemon.cli.hactl import console_main; sys.argv[0] = 'hactl'; sys.exit(console_main())"
    with open("/dev/full", "w") as full:
        cp = subprocess.run([sys.executable, "-c", code, "simulate", str(f), "--save-graph", str(tmp_path / "g.xml")],
                            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert cp.returncode == 1 and "Traceback" not in cp.stderr, cp.stderr
    assert "cannot write the output: No space left on device" in cp.stderr
    assert (tmp_path / "g.xml").read_text().rstrip().endswith("</transition_graph>")
