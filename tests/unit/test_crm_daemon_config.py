"""ha-crmd's start-up checks without running it: --check-config, ha.cf `crm`, the seed and stored CIB
(Heartbeat 2.1 CIBs refused naming `hactl cib upgrade`, bad XML with file:line), and the daemon
plumbing's sd_notify messages."""
import asyncio
import os
import socket

from hadaemon.daemons import crmd
from hadaemon.daemons.plumbing import Runtime
from hadaemon.io.systemd import Notifier

HACF = "keepalive 200ms\ndeadtime 2\nbcast eth0\nnode node1\nnode node2\ncrm {crm}\nauto_failback on\n"
GOOD = """<cib admin_epoch="0" epoch="3" num_updates="1"><configuration><crm_config/><nodes/>
<resources><primitive id="d" class="ocf" provider="heartbeat" type="Dummy"/></resources>
<constraints/></configuration><status><node_state id="node1" uname="node1"/></status></cib>"""
OLD = """<cib><configuration><crm_config><cluster_property_set id="o"><attributes>
<nvpair id="n" name="stonith_enabled" value="false"/></attributes></cluster_property_set></crm_config>
<nodes/><resources/><constraints/></configuration></cib>"""


def _files(tmp_path, cib=GOOD, crm="respawn"):
    (tmp_path / "ha.cf").write_text(HACF.format(crm=crm))
    (tmp_path / "seed.xml").write_text(cib)
    return ["--config", str(tmp_path / "ha.cf"), "--node", "node1", "--state-dir", str(tmp_path / "state"),
            "--cib", str(tmp_path / "seed.xml")]


def test_check_config_accepts_a_good_setup(tmp_path, capsys):
    assert crmd.main(_files(tmp_path) + ["--check-config"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "0:3:1" in out


def test_a_heartbeat_2_1_cib_is_refused_naming_the_upgrade_command(tmp_path, capsys):
    assert crmd.main(_files(tmp_path, OLD) + ["--check-config"]) == 1
    err = capsys.readouterr().err
    assert "seed.xml" in err and "hactl cib upgrade" in err


def test_bad_xml_is_refused_with_file_and_line(tmp_path, capsys):
    assert crmd.main(_files(tmp_path, "<cib>\n<configuration>\n</cib>") + ["--check-config"]) == 1
    err = capsys.readouterr().err
    assert "seed.xml:3: invalid XML" in err


def test_crm_off_in_ha_cf_is_refused(tmp_path, capsys):
    assert crmd.main(_files(tmp_path, crm="off") + ["--check-config"]) == 1
    assert "crm respawn" in capsys.readouterr().err


def test_the_stored_cib_wins_over_the_seed_and_loses_its_status(tmp_path):
    args = _files(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "cib.xml").write_text(GOOD.replace('epoch="3"', 'epoch="9"'))
    store = crmd.CibStore(str(state))
    cib, origin = crmd.load_cib(store, args[-1])
    assert origin == str(state / "cib.xml")
    assert cib.get("epoch") == "9" and list(cib.find("status")) == []


def test_runtime_sends_ready_status_and_stopping_to_notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    sink.settimeout(2)

    async def run():
        rt = Runtime("test", Notifier(path))
        rt.install_signals(reload=lambda: None)
        rt.ready("DC, 2 members")
        rt.status("DC, 2 members")          # unchanged: not sent again
        rt.status("no DC")
        os.kill(os.getpid(), __import__("signal").SIGHUP)
        await asyncio.sleep(0.05)
        rt.stopping()
        await rt.close()

    asyncio.run(run())
    got = [sink.recv(4096).decode() for _ in range(5)]
    assert got == ["READY=1\nSTATUS=DC, 2 members", "STATUS=no DC", "RELOADING=1", "READY=1\nSTATUS=no DC",
                   "STOPPING=1"]


def test_a_cib_the_scheduler_cannot_read_is_refused_with_file_and_line(tmp_path, capsys):
    cib = ('<cib admin_epoch="0" epoch="1" num_updates="0">\n<configuration><crm_config/><nodes/>\n<resources>\n'
           '<primitive id="d" class="ocf" provider="heartbeat" type="Dummy"><operations>\n'
           '<op name="monitor" interval="bogus"/></operations></primitive>\n'
           '</resources><constraints/></configuration></cib>')
    assert crmd.main(_files(tmp_path, cib) + ["--check-config"]) == 1
    assert "seed.xml:5: a monitor op without id has an invalid interval 'bogus'" in capsys.readouterr().err


def test_node_state_dir_debug_and_crm_on(tmp_path, capsys):
    """--node names the local node (one ha.cf does not list is refused, naming the option); `crm on`
    runs the CRM as `crm respawn` does; --debug is accepted with every other option."""
    args = _files(tmp_path, crm="on")
    assert crmd.main(args + ["--check-config", "--debug"]) == 0
    assert "OK (2 nodes)" in capsys.readouterr().out
    args[args.index("--node") + 1] = "node9"
    assert crmd.main(args + ["--check-config"]) == 1
    err = capsys.readouterr().err
    assert "the local node 'node9' is not listed" in err and "--node" in err
    parsed = crmd.build_parser().parse_args(_files(tmp_path) + ["--debug"])
    assert parsed.debug and parsed.node == "node1" and parsed.state_dir == str(tmp_path / "state")
    assert parsed.config == str(tmp_path / "ha.cf")
