"""ha.cf parser: Heartbeat defaults and rules, every directive, every error message."""
from pathlib import Path

import pytest

from hadaemon.core.errors import ConfigError
from hadaemon.core.heartbeat.hacf import (
    DIRECTIVES, UNSUPPORTED, HaConfig, Medium, format_time, hacf_summary, load_hacf, parse_hacf, parse_time,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
BASE = "node a\nnode b\nbcast eth0\n"

SCENARIO_HACF = """\
logfacility     local0
keepalive 2
deadtime 30
warntime 10
initdead 30
udpport 694
bcast   eth0 eth1
auto_failback on
node    admin1.tuchao.com
node    admin2.tuchao.com
crm respawn
compression     bz2
compression_threshold 2
"""


def cfg(extra: str = "", base: str = BASE) -> HaConfig:
    return parse_hacf(base + extra, "/etc/ha.d/ha.cf")


def error(text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        parse_hacf(text, "ha.cf")
    return str(ei.value)


def test_scenario_hacf_loads_as_is():
    c = parse_hacf(SCENARIO_HACF, "/etc/ha.d/ha.cf")
    assert (c.keepalive, c.deadtime, c.warntime, c.initdead) == (2.0, 30.0, 10.0, 30.0)
    assert c.udpport == 694
    assert c.media == (Medium("bcast", "eth0"), Medium("bcast", "eth1"))
    assert c.links == ("eth0", "eth1")
    assert c.nodes == ("admin1.tuchao.com", "admin2.tuchao.com")
    assert (c.auto_failback, c.crm, c.compression, c.compression_threshold) == ("on", "respawn", "bz2", 2)
    assert c.compression_threshold_bytes == 2048
    assert c.logfacility == "local0"
    assert c.warnings == ()


def test_scenario_md_hacf_block_matches_shared_file():
    scenario = SHARED / "SCENARIO.md"
    if not scenario.exists():
        pytest.skip("../shared absent")
    text = scenario.read_text()
    block = text.split("`/etc/ha.d/ha.cf`", 1)[1].split("```", 2)[1].lstrip("\n")
    c = parse_hacf(block, "SCENARIO.md")
    assert c.links == ("eth0", "eth1") and c.compression == "bz2" and c.crm == "respawn"


def test_heartbeat_defaults():
    c = cfg()
    assert (c.keepalive, c.deadtime, c.warntime) == (1.0, 30.0, 15.0)
    assert c.initdead == 30.0          # deadtime > 10 s: initdead = deadtime
    assert c.deadping == 30.0
    assert c.udpport == 694
    assert c.auto_failback == "legacy" and c.crm == "off"
    assert c.compression == "zlib" and c.compression_threshold == 2 and c.traditional_compression
    assert c.cluster == "linux-ha"
    assert c.max_rexmit_delay == 0.25 and c.hopfudge == 1 and c.realtime and c.debug == 0
    assert (c.hbgenmethod, c.autojoin, c.uuidfrom, c.msgfmt) == ("file", "none", "file", "classic")
    assert c.logfacility is None and c.logfile is None and c.debugfile is None and c.use_logd is None


@pytest.mark.parametrize("deadtime,initdead", [("30", 30.0), ("8", 16.0), ("5", 12.0), ("11", 11.0)])
def test_initdead_default_follows_heartbeat(deadtime, initdead):
    assert cfg(f"deadtime {deadtime}\n").initdead == initdead


@pytest.mark.parametrize("text,seconds", [
    ("2", 2.0), ("0.5", 0.5), (".5", 0.5), ("1.", 1.0), ("100ms", 0.1), ("100MS", 0.1), ("250msec", 0.25),
    ("500000us", 0.5), ("1500usec", 0.0015), ("3s", 3.0),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1m", "-1", "1e3", "nan", "inf", "1..2", "ms"])
def test_parse_time_rejects(text):
    assert parse_time(text) is None


def test_format_time():
    assert [format_time(x) for x in (30, 1.5, 0.5, 0.0005)] == ["30s", "1.5s", "500ms", "500us"]


def test_subsecond_timing():
    c = cfg("keepalive 100ms\ndeadtime 500ms\nwarntime 300ms\ninitdead 10\n")
    assert (c.keepalive, c.deadtime, c.warntime, c.initdead) == pytest.approx((0.1, 0.5, 0.3, 10.0))
    assert c.warnings == ()


def test_subsecond_default_initdead_and_warning():
    c = cfg("keepalive 100ms\ndeadtime 500ms\ninitdead 1\n")
    assert c.initdead == 1.0
    assert c.warnings == ("/etc/ha.d/ha.cf:6: warning: initdead 1s may be too small: it covers slow network "
                          "start-up and should be >= 10s",)
    assert cfg("keepalive 100ms\ndeadtime 500ms\n").initdead == 12.0


def test_media_and_links():
    c = cfg(base="node a\n", extra="bcast eth0 eth1\nmcast eth2 239.1.2.3 694 1 0\nucast eth0 10.0.0.2\n"
                                   "ucast eth0 10.0.0.3 10.0.0.4\nucast eth3 peer.example\n")
    assert c.media == (
        Medium("bcast", "eth0"), Medium("bcast", "eth1"),
        Medium("mcast", "eth2", "239.1.2.3", 694, 1, False),
        Medium("ucast", "eth0", "10.0.0.2"), Medium("ucast", "eth0", "10.0.0.3"), Medium("ucast", "eth0", "10.0.0.4"),
        Medium("ucast", "eth3", "peer.example"),
    )
    assert c.links == ("eth0", "eth1", "eth2", "eth3")
    assert len(c.media_on("eth0")) == 4
    assert cfg(base="node a\n", extra="mcast eth0 224.0.0.251 5405 255 1\n").media[0].loop is True


def test_nodes_several_per_line_commas_and_comments():
    c = cfg(base="", extra="# cluster\nnode a b,c   # three\n\n   node d\nbcast eth0 # link\n")
    assert c.nodes == ("a", "b", "c", "d")


def test_ping_and_ping_group():
    c = cfg("ping 10.0.0.254 gw.example\nping_group uplinks 10.0.1.1 10.0.2.1\ndeadping 20\n")
    assert c.ping == ("10.0.0.254", "gw.example")
    assert c.ping_groups == {"uplinks": ("10.0.1.1", "10.0.2.1")}
    assert c.deadping == 20.0


def test_every_implemented_directive():
    c = cfg("""cluster web-cluster
udpport 7000
auto_failback off
crm yes
compression zlib
compression_threshold 8
traditional_compression yes
logfacility daemon
logfile /var/log/ha-log
debugfile /var/log/ha-debug
use_logd no
conn_logd_time 30
hopfudge 3
realtime off
rtprio 50
debug 2
hbgenmethod time
autojoin other
uuidfrom nodename
max_rexmit_delay 400
coredumps false
log_badpack off
msgfmt netstring
record_config_changes off
record_pengine_inputs off
enable_config_writes off
env FOO=bar=baz
""")
    assert c.cluster == "web-cluster"
    assert c.udpport == 7000 and c.auto_failback == "off" and c.crm == "on"
    assert c.compression == "zlib" and c.compression_threshold_bytes == 8192 and c.traditional_compression
    assert (c.logfacility, c.logfile, c.debugfile, c.use_logd) == ("daemon", "/var/log/ha-log", "/var/log/ha-debug",
                                                                   False)
    assert c.conn_logd_time == 30.0 and c.hopfudge == 3 and not c.realtime and c.rtprio == 50 and c.debug == 2
    assert (c.hbgenmethod, c.autojoin, c.uuidfrom, c.msgfmt) == ("time", "other", "nodename", "netstring")
    assert c.max_rexmit_delay == 0.4 and not c.coredumps and not c.log_badpack
    assert not (c.record_config_changes or c.record_pengine_inputs or c.enable_config_writes)
    assert c.env == {"FOO": "bar=baz"}


@pytest.mark.parametrize("value,crm", [("on", "on"), ("true", "on"), ("1", "on"), ("off", "off"), ("no", "off"),
                                       ("respawn", "respawn"), ("Respawn", "respawn")])
def test_crm_values(value, crm):
    assert cfg(f"crm {value}\n").crm == crm
    assert cfg(f"pacemaker {value}\n").crm == crm


def test_logfacility_none_and_autojoin_any_without_nodes():
    assert cfg("logfacility none\n").logfacility is None
    assert parse_hacf("autojoin any\nbcast eth0\n").nodes == ()


def test_udp_is_old_bcast_with_warning():
    c = cfg(base="node a\n", extra="udp eth1\n")
    assert c.media == (Medium("bcast", "eth1"),)
    assert c.warnings == ("/etc/ha.d/ha.cf:2: warning: directive 'udp' is the old name of 'bcast'; write 'bcast'",)


def test_repeated_scalar_last_wins_with_warning():
    c = cfg("keepalive 2\nkeepalive 3\n")
    assert c.keepalive == 3.0
    assert c.warnings == ("/etc/ha.d/ha.cf:5: warning: 'keepalive' given again (first on line 4); the last one wins",)


def test_ignored_directives_warn():
    c = cfg("memreserve 6500\ntraditional_compression off\n")
    assert any("memreserve is ignored" in w for w in c.warnings)
    assert any("traditional_compression off has no effect" in w for w in c.warnings)


ERRORS = [
    ("keepalive 2\ndeadtime 4\n" + BASE, "ha.cf:2: deadtime 4s must be more than twice keepalive 2s"),
    ("keepalive 20\n" + BASE, "ha.cf:1: deadtime 30s must be more than twice keepalive 20s"),
    ("keepalive 100ms\ndeadtime 200ms\n" + BASE, "ha.cf:2: deadtime 200ms must be more than twice keepalive 100ms"),
    ("warntime 30\n" + BASE, "ha.cf:1: warntime 30s must be smaller than deadtime 30s"),
    ("deadtime 20\ninitdead 10\n" + BASE, "ha.cf:2: initdead 10s must not be smaller than deadtime 20s"),
    ("deadping 2\n" + BASE, "ha.cf:1: deadping 2s must be more than twice keepalive 1s"),
    ("keepalive 0\n" + BASE, "ha.cf:1: keepalive: invalid time '0' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("deadtime 1m\n" + BASE, "ha.cf:1: deadtime: invalid time '1m' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("keepalive\n" + BASE, "ha.cf:1: 'keepalive' needs a value"),
    ("keepalive 1 2\n" + BASE, "ha.cf:1: 'keepalive' takes one value, got 2: 1 2"),
    ("udpport 70000\n" + BASE, "ha.cf:1: udpport: invalid value '70000' (use an integer from 1 to 65535)"),
    ("udpport ha\n" + BASE, "ha.cf:1: udpport: invalid value 'ha' (use an integer from 1 to 65535)"),
    ("auto_failback maybe\n" + BASE, "ha.cf:1: auto_failback: invalid value 'maybe' (use on, off or legacy)"),
    ("crm sometimes\n" + BASE, "ha.cf:1: crm: invalid value 'sometimes' (use on, off or respawn)"),
    ("compression lzma\n" + BASE, "ha.cf:1: compression: invalid value 'lzma' (use one of: zlib, bz2)"),
    ("compression_threshold 0\n" + BASE,
     "ha.cf:1: compression_threshold: invalid value '0' (use an integer from 1 to 1048576)"),
    ("traditional_compression maybe\n" + BASE, "ha.cf:1: traditional_compression: invalid value 'maybe' (use on or off)"),
    ("logfacility local9\n" + BASE,
     "ha.cf:1: logfacility: unknown syslog facility 'local9' (e.g. daemon, local0 ... local7, none)"),
    ("logfile ha-log\n" + BASE, "ha.cf:1: logfile: 'ha-log' is not an absolute path"),
    ("hbgenmethod random\n" + BASE, "ha.cf:1: hbgenmethod: invalid value 'random' (use one of: file, time)"),
    ("autojoin all\n" + BASE, "ha.cf:1: autojoin: invalid value 'all' (use one of: none, other, any)"),
    ("rtprio 100\n" + BASE, "ha.cf:1: rtprio: invalid value '100' (use an integer from 1 to 99)"),
    ("max_rexmit_delay 0\n" + BASE,
     "ha.cf:1: max_rexmit_delay: invalid value '0' (milliseconds, a positive integer)"),
    ("env 1X=2\n" + BASE, "ha.cf:1: env: expected NAME=value, got '1X=2'"),
    ("node\n", "ha.cf:1: 'node' needs at least one node name"),
    ("node a b a\n", "ha.cf:1: node 'a' declared twice (first on line 1)"),
    ("node a\nnode A\n", "ha.cf:2: node 'A' declared twice (first on line 1)"),
    ("node a/b\n", "ha.cf:1: node: invalid node name 'a/b' (a host name as `uname -n` prints it, "
                   "at most 64 characters)"),
    ("node " + "x" * 65 + "\n", "ha.cf:1: node: invalid node name '" + "x" * 65 + "' (a host name as `uname -n` "
                                "prints it, at most 64 characters)"),
    ("node a\nbcast\n", "ha.cf:2: 'bcast' needs at least one interface, e.g. bcast eth0 eth1"),
    ("node a\nbcast averyveryverylongname\n",
     "ha.cf:2: bcast: invalid interface name 'averyveryverylongname' (at most 15 characters, no '/')"),
    ("node a\nbcast eth0\nbcast eth0\n", "ha.cf:3: bcast medium on eth0 declared twice (first on line 2)"),
    ("node a\nmcast eth0 239.0.0.1 694 1\n",
     "ha.cf:2: mcast needs 5 values: mcast INTERFACE GROUP PORT TTL LOOP (e.g. mcast eth0 239.0.0.1 694 1 0)"),
    ("node a\nmcast eth0 10.0.0.1 694 1 0\n",
     "ha.cf:2: mcast: '10.0.0.1' is not an IPv4 multicast group (224.0.0.0 to 239.255.255.255)"),
    ("node a\nmcast eth0 239.0.0.1 0 1 0\n", "ha.cf:2: mcast: invalid port '0' (use 1 to 65535)"),
    ("node a\nmcast eth0 239.0.0.1 694 256 0\n", "ha.cf:2: mcast: invalid ttl '256' (use 1 to 255)"),
    ("node a\nmcast eth0 239.0.0.1 694 1 yes\n", "ha.cf:2: mcast: invalid loop 'yes' (use 0 or 1)"),
    ("node a\nucast eth0\n", "ha.cf:2: ucast needs an interface and a peer address: ucast INTERFACE PEER [PEER...]"),
    ("node a\nucast eth0 10.0.0.300\n", "ha.cf:2: ucast: invalid peer address '10.0.0.300'"),
    ("ping\n" + BASE, "ha.cf:1: 'ping' needs at least one address"),
    ("ping bad/addr\n" + BASE, "ha.cf:1: ping: invalid address 'bad/addr'"),
    ("ping_group g\n" + BASE,
     "ha.cf:1: ping_group needs a name and at least one address: ping_group NAME ADDR [ADDR...]"),
    ("ping_group g 10.0.0.1\nping_group g 10.0.0.2\n" + BASE, "ha.cf:2: ping_group 'g' declared twice"),
    ("ping_group g bad/addr\n" + BASE, "ha.cf:1: ping_group: invalid address 'bad/addr'"),
    ("bcast eth0\n", "ha.cf: no nodes defined (add one 'node NAME' line per cluster node, named as `uname -n` prints)"),
    ("node a\n", "ha.cf: no heartbeat media defined (add bcast, mcast or ucast)"),
    ("frobnicate 1\n" + BASE, "ha.cf:1: unknown directive 'frobnicate'"),
    ("Keepalive 2\n" + BASE, "ha.cf:1: unknown directive 'Keepalive' (directives are lower case: 'keepalive')"),
]


@pytest.mark.parametrize("text,message", ERRORS)
def test_error_messages(text, message):
    assert error(text) == message


@pytest.mark.parametrize("directive", sorted(UNSUPPORTED))
def test_unsupported_directives_say_so_and_why(directive):
    message = error(BASE + f"{directive} something\n")
    assert message == f"ha.cf:4: directive '{directive}' is not supported by hadaemon ({UNSUPPORTED[directive]})"


def test_heartbeat_directive_list_is_covered():
    heartbeat = {
        "node", "hopfudge", "keepalive", "deadtime", "deadping", "initdead", "warntime", "watchdog", "baud",
        "udpport", "logfacility", "logfile", "debugfile", "nice_failback", "auto_failback", "rtprio",
        "hbgenmethod", "realtime", "debug", "normalpoll", "msgfmt", "use_logd", "conn_logd_time", "log_badpack",
        "use_apphbd", "coredumps", "coreroot", "crm", "autojoin", "uuidfrom", "compression",
        "compression_threshold", "traditional_compression", "env", "max_rexmit_delay", "record_config_changes",
        "record_pengine_inputs", "enable_config_writes", "stonith", "stonith_host", "apiauth", "respawn",
        "bcast", "mcast", "mcast6", "ucast", "serial", "ping", "ping_group", "hbaping", "openais", "tipc",
        "cluster", "memreserve", "quorum_server", "pacemaker",
    }
    known = set(DIRECTIVES) | set(UNSUPPORTED)
    assert heartbeat - known == set()
    assert not set(DIRECTIVES) & set(UNSUPPORTED)


def test_load_hacf_file_errors(tmp_path):
    missing = tmp_path / "nope.cf"
    with pytest.raises(ConfigError) as ei:
        load_hacf(str(missing))
    assert str(ei.value) == f"{missing}: cannot read: No such file or directory"
    bad = tmp_path / "bad.cf"
    bad.write_bytes(b"node a\nnode \xff\n")
    with pytest.raises(ConfigError) as ei:
        load_hacf(str(bad))
    assert str(ei.value) == f"{bad}:2: not valid UTF-8 text"
    good = tmp_path / "ha.cf"
    good.write_text(SCENARIO_HACF)
    assert load_hacf(str(good)).path == str(good)


def test_summary():
    s = hacf_summary(parse_hacf(SCENARIO_HACF))
    assert s == ("2 nodes (admin1.tuchao.com, admin2.tuchao.com); links eth0 (bcast), eth1 (bcast); keepalive 2s, "
                 "warntime 10s, deadtime 30s, initdead 30s; udpport 694; crm respawn; auto_failback on")


def test_config_is_immutable():
    c = cfg()
    with pytest.raises(AttributeError):
        c.keepalive = 5  # type: ignore[misc]


INVALID_VALUE = [
    ("stack pacemaker", "stack: invalid value 'pacemaker' (use one of: heartbeat, corosync)"),
    ("udpport ²", "udpport: invalid value '²' (use an integer from 1 to 65535)"),
    ("udpport ١٢", "udpport: invalid value '١٢' (use an integer from 1 to 65535)"),
    ("keepalive ١", "keepalive: invalid time '١' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("initdead -5", "initdead: invalid time '-5' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("warntime 0", "warntime: invalid time '0' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("deadping x", "deadping: invalid time 'x' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("deadtime 86401", "deadtime: 86401 is too long (at most 86400 seconds)"),
    ("keepalive 9999999999999999999999999999999999999999999999", "keepalive: 9999999999999999999999999999999999999999999999 is too long (at most 86400 seconds)"),
    ("cluster a/b", "cluster: invalid cluster name 'a/b' (letters, digits, '.', '_', '-'; at most 64)"),
    ("conn_logd_time 0", "conn_logd_time: invalid time '0' (use seconds such as 2 or 0.5, or 500ms / 500000us)"),
    ("pacemaker maybe", "pacemaker: invalid value 'maybe' (use on, off or respawn)"),
    ("use_logd maybe", "use_logd: invalid value 'maybe' (use on or off)"),
    ("realtime 2", "realtime: invalid value '2' (use on or off)"),
    ("coredumps x", "coredumps: invalid value 'x' (use on or off)"),
    ("log_badpack x", "log_badpack: invalid value 'x' (use on or off)"),
    ("record_config_changes x", "record_config_changes: invalid value 'x' (use on or off)"),
    ("record_pengine_inputs x", "record_pengine_inputs: invalid value 'x' (use on or off)"),
    ("enable_config_writes x", "enable_config_writes: invalid value 'x' (use on or off)"),
    ("hopfudge 256", "hopfudge: invalid value '256' (use an integer from 0 to 255)"),
    ("debug -1", "debug: invalid value '-1' (use an integer from 0 to 255)"),
    ("rtprio 0", "rtprio: invalid value '0' (use an integer from 1 to 99)"),
    ("uuidfrom mac", "uuidfrom: invalid value 'mac' (use one of: file, nodename)"),
    ("msgfmt xml", "msgfmt: invalid value 'xml' (use one of: classic, netstring)"),
    ("memreserve lots", "memreserve: invalid value 'lots' (use an integer from 0 to 1073741824)"),
    ("debugfile tmp/x", "debugfile: 'tmp/x' is not an absolute path"),
    ("logfacility", "'logfacility' needs a value"),
    ("env NOEQUALS", "env: expected NAME=value, got 'NOEQUALS'"),
    ("max_rexmit_delay 1.5", "max_rexmit_delay: invalid value '1.5' (milliseconds, a positive integer)"),
    ("mcast eth0 239.0.0.1 ６９４ 1 0", "mcast: invalid port '６９４' (use 1 to 65535)"),
    ("mcast eth0 239.0.0.1 694 ² 0", "mcast: invalid ttl '²' (use 1 to 255)"),
    ("mcast a/b 239.0.0.1 694 1 0", "mcast: invalid interface name 'a/b' (at most 15 characters, no '/')"),
    ("ucast .. 10.0.0.1", "ucast: invalid interface name '..' (at most 15 characters, no '/')"),
    ("logfile /var/log/\x01x", "control character in line (ha.cf is plain text)"),
    ("node a\x00b", "control character in line (ha.cf is plain text)"),
]


@pytest.mark.parametrize("line,message", INVALID_VALUE)
def test_invalid_values(line, message):
    assert error(BASE + line + "\n") == "ha.cf:4: " + message


def test_every_directive_has_an_error_test():
    tested = {line.split()[0] for line, _ in INVALID_VALUE}
    tested |= {text.splitlines()[0].split()[0] for text, _ in ERRORS if text.strip()}
    tested |= {line.split()[0] for text, _ in ERRORS for line in text.splitlines()
               if line.split() and line.split()[0] in ("mcast", "ucast", "bcast", "ping_group", "node")}
    missing = set(DIRECTIVES) - tested - {"udp"}
    assert missing == set()


def test_fuzzed_text_only_ever_raises_config_error():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    words = st.sampled_from(sorted(DIRECTIVES) + sorted(UNSUPPORTED) + ["#", ",", "1", "0.5", "100ms", "eth0",
                                                                        "239.0.0.1", "on", "²", "\x00", "-1"])
    line = st.lists(st.one_of(words, st.text(max_size=8)), max_size=6).map(" ".join)

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(st.lists(line, max_size=12))
    def check(lines):
        try:
            parse_hacf("\n".join(lines), "f")
        except ConfigError as e:
            assert str(e).startswith("f")

    check()


def test_stack_corosync_needs_no_nodes_or_media():
    cfg = parse_hacf("stack corosync\nkeepalive 1\ndeadtime 10\n", "ha.cf")
    assert cfg.stack == "corosync" and cfg.nodes == () and cfg.media == ()
    assert parse_hacf("bcast eth0\nnode a\n", "ha.cf").stack == "heartbeat"
    cfg = parse_hacf("stack corosync\nbcast eth0\nnode a\n", "ha.cf")
    assert any("ignored" in w for w in cfg.warnings)
