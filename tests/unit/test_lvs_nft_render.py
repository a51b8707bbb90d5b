"""The nftables backend's rendering of a Table (pure text; the real nft is exercised by the
integration tests): weights to ranges, quiescent reals left out, schedulers, persistence, loopback."""
from hadaemon.core.director.lvs_table import Destination, VirtualService, make_table
from hadaemon.io.lvs.nft import _dest_comment, _parse_dest, _parse_svc, _svc_comment, render

VIP = VirtualService("tcp", "192.168.18.100", 80, scheduler="wrr")


def chain(text: str, name: str) -> str:
    return text.split(f"  chain {name} {{\n", 1)[1].split("\n  }", 1)[0]


def test_weights_become_consecutive_ranges_and_weight_0_is_left_out():
    t = make_table([(VIP, [Destination("10.0.0.1", 80, "gate", 1), Destination("10.0.0.2", 80, "gate", 0),
                           Destination("10.0.0.3", 80, "masq", 3)])])
    text = render(t, "inet")
    assert chain(text, "s0n").strip() == "numgen inc mod 4 vmap @s0m"
    m = text.split("map s0m", 1)[1].split("\n", 1)[0]
    assert "elements = { 0 : jump s0d0, 1 : jump s0d2, 2 : jump s0d2, 3 : jump s0d2 }" in m and "interval" not in m
    assert "s0d1" not in m and "chain s0d1" in text   # kept in the model, not in the map
    # beyond SINGLE_VALUES values in all, an interval map (one element per real)
    big = make_table([(VIP, [Destination("10.0.0.1", 80, "gate", 40000), Destination("10.0.0.3", 80, "masq", 30000)])])
    m = render(big, "inet").split("map s0m", 1)[1].split("\n", 1)[0]
    assert "flags interval; elements = { 0-39999 : jump s0d0, 40000-69999 : jump s0d1 }" in m
    assert "ip daddr 192.168.18.100 tcp dport 80 jump s0" in chain(text, "pre")
    assert "elements = { 10.0.0.1, 10.0.0.2 }" in text        # gate reals are masqueraded, masq ones not
    assert "meta l4proto tcp dnat to 10.0.0.3:80" in chain(text, "s0d2")


def test_no_real_with_a_weight_drops():
    one = render(make_table([(VIP, [Destination("10.0.0.1", 80, "gate", 2)])]), "inet")
    assert chain(one, "s0n").strip() == "numgen inc mod 2 vmap @s0m"
    none = render(make_table([(VIP, [Destination("10.0.0.1", 80, "gate", 0)])]), "inet")
    assert "  chain s0n {\n  }" in none and "drop comment" in chain(none, "s0")


def test_sh_and_dh_hash_the_client_or_the_destination():
    for sched, key in (("sh", "jhash ip saddr mod 2"), ("dh", "jhash ip daddr mod 2"), ("rr", "numgen inc mod 2")):
        svc = VirtualService("tcp", "10.0.0.100", 80, scheduler=sched)
        text = render(make_table([(svc, [Destination("10.0.0.1", 80), Destination("10.0.0.2", 80)])]), "inet")
        assert key in chain(text, "s0n"), (sched, text)


def test_persistence_sets_per_real_with_the_netmask_and_timeout():
    svc = VirtualService("tcp", "10.0.0.100", 443, persistent=600, netmask="255.255.255.0")
    text = render(make_table([(svc, [Destination("10.0.0.1", 443), Destination("10.0.0.2", 443)])]), "inet")
    assert "set s0p0 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }" in text
    assert "ip saddr & 255.255.255.0 @s0p1 jump s0d1" in chain(text, "s0q") and "jump s0q" in chain(text, "s0")
    assert "update @s0p1 { ip saddr & 255.255.255.0 }" in chain(text, "s0d1")


def test_ipv6_fwmark_and_loopback_fallback():
    v6 = VirtualService("tcp", "2001:db8::1", 80, persistent=60, netmask="64")
    fwm = VirtualService("fwm", fwmark=5, scheduler="wrr")
    t = make_table([(v6, [Destination("2001:db8::2", 8080)]), (fwm, [Destination("10.0.0.1", 0)]),
                    (VIP, [Destination("127.0.0.1", 80, "gate", 1)])])
    text6 = render(t, "inet6")
    assert "table ip6 hadaemon {" in text6 and "ip6 daddr 2001:db8::1 tcp dport 80 jump s0" in text6
    assert "ip6 saddr & ffff:ffff:ffff:ffff:: @s0p0" in text6
    assert "dnat to [2001:db8::2]:8080" in text6
    text4 = render(t, "inet")
    assert "meta mark 5 jump s0" in chain(text4, "pre")
    assert "dnat to 10.0.0.1 comment" in chain(text4, "s0d0")           # fwmark, port 0: keep the port
    assert "meta l4proto tcp redirect to :80" in chain(text4, "s1d0")   # the fallback on the director
    assert "127.0.0.1" not in text4.split("set masq_dests", 1)[1].split("}", 1)[0]


def test_comments_round_trip_the_model():
    for svc in (VIP, VirtualService("fwm", fwmark=9, family="inet6", scheduler="sh", flags=("sh-port",),
                                    persistent=30, netmask="64")):
        assert _parse_svc(_svc_comment(svc)) == svc
    d = Destination("10.0.0.1", 80, "ipip", 7, lower=3, upper=9)
    assert _parse_dest(_dest_comment(d)) == d


def test_in_place_changes_touch_only_the_changed_reals():
    """render_changes: a weight change is a few map elements, the real's rule and the pick rule, whatever
    the number of reals; a service change asks for a rewrite (None)."""
    from hadaemon.core.director.lvs_table import AddService, EditDest
    from hadaemon.io.lvs.nft import render_changes, render_state

    t = make_table([(VIP, [Destination(f"10.0.{i // 250}.{i % 250 + 1}", 80, "gate", 1) for i in range(2000)])])
    _, state = render_state(t, "inet")
    d = Destination("10.0.0.7", 80, "gate", 0)
    script = render_changes(state, t, [EditDest(VIP, d, Destination("10.0.0.7", 80, "gate", 1))], "inet")
    assert len(script.splitlines()) <= 6, script
    assert "delete element ip hadaemon s0m" in script and "numgen inc mod 1999 vmap @s0m" in script
    assert "chain" not in script.replace("flush chain ip hadaemon s0n", "")   # a weight alone: the map only
    moved = render_changes(state, t, [EditDest(VIP, Destination("10.0.0.8", 80, "masq", 1),
                                               Destination("10.0.0.8", 80, "gate", 1))], "inet")
    assert 'comment "hadaemon-dest 10.0.0.8 80 masq 1 0 0"' in moved and "s0m" not in moved
    assert render_changes(state, t, [AddService(VirtualService("tcp", "10.9.9.9", 80))], "inet") is None
