"""Pure parts of the IPaddr2 agent: parameter checks, findif route choice, meta-data, GARP/NA frames."""
import ipaddress
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hadaemon.agents import ipaddr2, ocf
from hadaemon.agents.ipaddr2 import Route, choose_route, parse_params
from hadaemon.agents.ocf import OCF_ERR_CONFIGURED, OcfError
from hadaemon.daemons import realserver
from hadaemon.io import garp


RA_DTD = "/usr/share/resource-agents/ra-api-1.dtd"  # from Debian's resource-agents


def rc_of(params, action="validate-all", meta=None):
    try:
        parse_params(params, action, meta)
    except OcfError as e:
        return e.rc
    return 0


# -- parameters -----------------------------------------------------------------------------------

def test_defaults_match_clusterlabs():
    cfg = parse_params({"ip": "192.168.18.222"}, "start")
    assert cfg.family == 4 and cfg.prefix is None and cfg.nic == ""
    assert cfg.arp_count == 5 and cfg.arp_interval == pytest.approx(0.2)
    assert cfg.arp_count_refresh == 0 and cfg.arp_bg is True and cfg.preferred_lft is None
    assert cfg.lvs_support is False


def test_scenario_parameters():
    cfg = parse_params({"ip": "192.168.18.222", "cidr_netmask": "24", "nic": "eth0", "iflabel": "web",
                        "arp_count": "3", "arp_interval": "150", "arp_count_refresh": "2",
                        "lvs_support": "true", "broadcast": "+"}, "start")
    assert (cfg.prefix, cfg.nic, cfg.label, cfg.arp_count, cfg.arp_count_refresh) == (24, "eth0", "web", 3, 2)
    assert cfg.arp_interval == pytest.approx(0.15) and cfg.lvs_support and cfg.broadcast == "+"


@pytest.mark.parametrize("params", [
    {},                                                   # ip missing
    {"ip": "10.0.0.300"}, {"ip": "010.0.0.1"}, {"ip": "10.0.0"}, {"ip": "fd00:::1"},
    {"ip": "10.0.0.1", "cidr_netmask": "33"}, {"ip": "10.0.0.1", "cidr_netmask": "0"},
    {"ip": "10.0.0.1", "cidr_netmask": "x"}, {"ip": "fd00::1", "cidr_netmask": "129"},
    {"ip": "10.0.0.1", "broadcast": "10.0.0.256"},
    {"ip": "10.0.0.1", "arp_count": "0"}, {"ip": "10.0.0.1", "arp_count": "-1"},
    {"ip": "10.0.0.1", "arp_interval": "0"}, {"ip": "10.0.0.1", "arp_interval": "1.5"},
    {"ip": "10.0.0.1", "arp_count_refresh": "a"}, {"ip": "10.0.0.1", "preferred_lft": ""},
    {"ip": "10.0.0.1", "preferred_lft": "soon"}, {"ip": "10.0.0.1", "arp_sender": "carrier-pigeon"},
    {"ip": "fd00::1", "lvs_support": "yes"}, {"ip": "10.0.0.1", "lvs_ipv6_addrlabel": "true"},
    {"ip": "fe80::1"},                                    # link-local needs a nic
])
def test_bad_parameters_are_not_configured(params):
    assert rc_of(params) == OCF_ERR_CONFIGURED


def test_ip_syntax_is_checked_on_start_and_validate_only():
    # As IPaddr2/findif: a monitor with a bad address must not say "not configured".
    assert rc_of({"ip": "10.0.0.300"}, "monitor") == 0
    assert rc_of({"ip": "10.0.0.300"}, "start") == OCF_ERR_CONFIGURED
    assert rc_of({"ip": "10.0.0.1", "arp_count": "0"}, "monitor") == OCF_ERR_CONFIGURED
    assert rc_of({}, "stop") == 0


def test_cluster_ip_clones_are_refused_with_a_reason():
    with pytest.raises(OcfError) as e:
        parse_params({"ip": "10.0.0.1"}, "start", {"clone_max": "2"})
    assert e.value.rc == OCF_ERR_CONFIGURED and "not supported" in e.value.message


def test_nic_with_label_and_dotted_netmask():
    cfg = parse_params({"ip": "10.0.0.1", "nic": "eth1:vip", "cidr_netmask": "255.255.255.0"}, "start")
    assert (cfg.nic, cfg.label, cfg.prefix) == ("eth1", "vip", 24)


def test_ipv6_defaults_and_canonical_form():
    cfg = parse_params({"ip": "FD00:0:0::0001", "preferred_lft": "0", "nodad": "1"}, "start")
    assert cfg.family == 6 and cfg.ip == "fd00::1" and cfg.arp_bg is False
    assert cfg.preferred_lft == 0 and cfg.nodad is True


@given(st.integers(min_value=0, max_value=32))
def test_dotted_quad_round_trip(prefix):
    mask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    assert ipaddr2.dotted_quad_to_prefix(mask) == prefix


def test_non_contiguous_netmask_is_rejected():
    assert ipaddr2.dotted_quad_to_prefix("255.0.255.0") is None
    assert rc_of({"ip": "10.0.0.1", "cidr_netmask": "255.0.255.0"}) == OCF_ERR_CONFIGURED


@given(st.dictionaries(st.sampled_from([p[0] for p in ipaddr2.PARAMETERS] + ["netmask"]), st.text(max_size=20)),
       st.sampled_from(["start", "stop", "monitor", "validate-all"]))
def test_any_input_gives_a_config_or_an_ocf_error(params, action):
    try:
        parse_params(params, action)
    except OcfError as e:
        assert e.rc == OCF_ERR_CONFIGURED and e.message


def test_label_longer_than_15_is_refused():
    cfg = parse_params({"ip": "10.0.0.1", "iflabel": "abcdefghijk"}, "start")
    with pytest.raises(OcfError) as e:
        ipaddr2.placement_for(cfg, "eth0", 24)
    assert e.value.rc == OCF_ERR_CONFIGURED
    assert ipaddr2.placement_for(cfg._replace(label="abcdefghij"), "eth0", 24).label == "eth0:abcdefghij"


def test_broadcast_symbols():
    assert ipaddr2.broadcast_for("192.168.18.222", 24, "+") == "192.168.18.255"
    assert ipaddr2.broadcast_for("192.168.18.222", 24, "-") == "192.168.18.0"
    assert ipaddr2.broadcast_for("192.168.18.222", 24, "") is None
    assert ipaddr2.broadcast_for("192.168.18.222", 31, "+") is None  # ip(8) sets none for /31 and /32
    assert ipaddr2.broadcast_for("192.168.18.222", 30, "+") == "192.168.18.223"
    assert ipaddr2.broadcast_for("192.168.18.222", 24, "192.168.18.127") == "192.168.18.127"


# -- findif ---------------------------------------------------------------------------------------

ROUTES = [Route("192.168.18.0", 24, "eth0"), Route("192.168.0.0", 16, "eth1"), Route("0.0.0.0", 0, "eth2"),
          Route("10.1.0.0", 24, "eth3")]


def test_most_specific_connected_route_wins():
    assert choose_route("192.168.18.222", None, "", ROUTES).nic == "eth0"
    assert choose_route("192.168.19.1", None, "", ROUTES) == Route("192.168.0.0", 16, "eth1")
    assert choose_route("192.168.18.222", None, "eth1", ROUTES).dst_len == 16
    assert choose_route("192.168.18.222", 16, "", ROUTES).nic == "eth1"  # route must contain ip/16


def test_default_route_is_never_used():
    assert choose_route("8.8.8.8", None, "", ROUTES) is None
    assert choose_route("not-an-ip", None, "", ROUTES) is None


def test_ipv6_route_choice():
    routes = [Route("fd00::", 64, "eth0"), Route("::", 0, "eth0"), Route("fd00:1::", 64, "eth1")]
    assert choose_route("fd00:1::5", None, "", routes).nic == "eth1"
    assert choose_route("10.0.0.1", None, "", routes) is None


# -- meta-data and OCF helpers --------------------------------------------------------------------

def test_meta_data_is_valid_and_lists_the_parameters():
    root = ET.fromstring(ipaddr2.meta_data().split("\n", 2)[2])
    params = {p.get("name"): p for p in root.iter("parameter")}
    for name in ("ip", "cidr_netmask", "nic", "broadcast", "iflabel", "lvs_support", "arp_count",
                 "arp_interval", "arp_count_refresh", "preferred_lft", "arp_bg", "nodad"):
        assert name in params
    assert params["ip"].get("required") == "1"
    assert params["arp_count"].find("content").get("default") == "5"
    assert params["arp_interval"].find("content").get("default") == "200"
    actions = {a.get("name") for a in root.iter("action")}
    assert {"start", "stop", "monitor", "validate-all", "meta-data"} <= actions


@pytest.mark.skipif(not shutil.which("xmllint") or not os.path.exists(RA_DTD), reason="xmllint or ra-api-1.dtd missing")
def test_meta_data_validates_against_the_ocf_dtd(tmp_path):
    path = tmp_path / "meta.xml"
    path.write_text(ipaddr2.meta_data())
    cp = subprocess.run(["xmllint", "--noout", "--dtdvalid", RA_DTD, str(path)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr


def test_ocf_env_helpers():
    env = {"OCF_RESKEY_ip": "10.0.0.1", "OCF_RESKEY_CRM_meta_interval": "10000", "PATH": "/bin"}
    assert ocf.params_from_env(env) == {"ip": "10.0.0.1"}
    assert ocf.meta_from_env(env) == {"interval": "10000"}
    assert not ocf.is_probe("monitor", {"interval": "10000"}) and ocf.is_probe("monitor", {})
    assert ocf.is_true("yes") and ocf.is_true("ON") and not ocf.is_true("no") and not ocf.is_true(None)


def test_meta_data_action_needs_no_parameters():
    import io
    out = io.StringIO()
    assert ipaddr2.run("meta-data", {}, {}, out) == 0 and "<resource-agent" in out.getvalue()


def test_findif_and_late_errors_are_deferred_for_the_agent():
    # The agent raises these after the route lookup, in IPaddr2's order (see ipaddr2.execute).
    cfg = parse_params({"ip": "10.0.0.300", "arp_count": "0"}, "validate-all", late=False)
    assert cfg.findif_error == "IP address [10.0.0.300] not valid."
    assert cfg.late_error == "Invalid OCF_RESKEY_arp_count [0]"
    cfg = parse_params({"ip": "10.0.0.1", "cidr_netmask": "abc"}, "monitor", late=False)
    assert (cfg.netmask, cfg.prefix, cfg.findif_error) == ("abc", None, "")


# -- frames ---------------------------------------------------------------------------------------

MAC = "02:00:00:00:00:0a"


def test_garp_request_and_reply_forms():
    frames = garp.garp_frames(MAC, "192.168.18.222")
    parsed = [garp.parse_arp(f) for f in frames]
    assert [p[0] for p in parsed] == [garp.ARPOP_REQUEST, garp.ARPOP_REPLY]
    for f, (_op, sha, spa, _tha, tpa) in zip(frames, parsed):
        assert f[:6] == b"\xff" * 6 and sha == MAC and spa == tpa == "192.168.18.222"
    assert parsed[0][3] == garp.ZERO_MAC and parsed[1][3] == MAC  # reply: tha == sha (Linux arp_is_garp)


def test_probe_frame_has_no_sender_address():
    op, sha, spa, _tha, tpa = garp.parse_arp(garp.probe_frame(MAC, "10.0.0.5"))
    assert (op, sha, spa, tpa) == (garp.ARPOP_REQUEST, MAC, "0.0.0.0", "10.0.0.5")


def test_raw_probe_frame_equals_the_scapy_one():
    for mac, ip in ((MAC, "10.0.0.5"), ("aa:bb:cc:dd:ee:ff", "192.168.18.100")):
        assert garp.probe_frame_raw(mac, ip) == garp.probe_frame(mac, ip)


def test_unsolicited_na():
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    (frame,) = garp.announcement_frames(MAC, "fd00::0:5")
    pkt = Ether(frame)
    assert pkt.dst == garp.ALL_NODES_MAC and pkt[IPv6].dst == "ff02::1" and pkt[IPv6].hlim == 255
    na = pkt[ICMPv6ND_NA]
    assert na.tgt == "fd00::5" and na.O == 1 and na.S == 0 and na.R == 0
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC


def test_parse_arp_rejects_other_frames():
    assert garp.parse_arp(b"\x00" * 60) is None and garp.parse_arp(b"") is None


# -- real-server helper (pure bits) ---------------------------------------------------------------

def test_realserver_sysctl_targets():
    assert realserver.sysctl_targets(None) == {
        "/proc/sys/net/ipv4/conf/all/arp_ignore": "1", "/proc/sys/net/ipv4/conf/all/arp_announce": "2",
        "/proc/sys/net/ipv4/conf/lo/arp_ignore": "1", "/proc/sys/net/ipv4/conf/lo/arp_announce": "2"}
    assert set(realserver.sysctl_targets("eth1")) == {
        "/proc/sys/net/ipv4/conf/eth1/arp_ignore", "/proc/sys/net/ipv4/conf/eth1/arp_announce"}


def test_realserver_bad_vip_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        realserver.main(["start", "192.168.18.300"])
    assert e.value.code == 2 and "invalid VIP" in capsys.readouterr().err


def test_garp_frames_are_the_bytes_scapy_builds():
    from scapy.layers.l2 import ARP, Ether

    for mac, ip in ((MAC, "192.168.18.222"), ("aa:bb:cc:dd:ee:ff", "10.0.0.1"), ("02:00:00:00:00:01", "0.0.0.0")):
        want = [bytes(Ether(dst=garp.BROADCAST_MAC, src=mac, type=garp.ETH_P_ARP) / ARP(
                    op=garp.ARPOP_REQUEST, hwsrc=mac, psrc=ip, hwdst=garp.ZERO_MAC, pdst=ip)),
                bytes(Ether(dst=garp.BROADCAST_MAC, src=mac, type=garp.ETH_P_ARP) / ARP(
                    op=garp.ARPOP_REPLY, hwsrc=mac, psrc=ip, hwdst=mac, pdst=ip))]
        assert garp.garp_frames(mac, ip) == want
