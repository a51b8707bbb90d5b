"""The LVS table model and the pure diff: examples, then properties over generated tables."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hadaemon.core.director.lvs_table import (
    AddDest, AddService, DelDest, DelService, Destination, EditDest, EditService, Service, TableError,
    VirtualService, apply_ops, diff, format_table, make_table, service_key, with_weight,
)

VIP = VirtualService("tcp", "192.168.18.100", 80, scheduler="wrr")
R1 = Destination("192.168.18.191", 80, "gate", 1)
R2 = Destination("192.168.18.192", 80, "gate", 3)
FALLBACK = Destination("127.0.0.1", 80, "gate", 1)


def test_keys_and_normalisation():
    assert VIP.key == "tcp:192.168.18.100:80"
    v6 = VirtualService("udp", "2001:DB8:0::1", 53)
    assert v6.key == "udp:[2001:db8::1]:53" and v6.family == "inet6"
    assert VirtualService("fwm", fwmark=7).key == "fwm:7"
    assert VirtualService("fwm", fwmark=7, family="inet6").key == "fwm6:7"
    assert service_key("tcp", "10.0.0.1", 443) == "tcp:10.0.0.1:443"
    assert Destination("2001:db8::2", 8080).key == "[2001:db8::2]:8080"
    assert VirtualService("tcp", "10.0.0.1", 80, flags=("flag-2", "ops", "ops")).flags == ("flag-2", "ops")
    assert VirtualService("tcp", "10.0.0.1", 80, scheduler="sh", flags=("flag-2",)).flags == ("sh-port",)
    assert VirtualService("tcp", "10.0.0.1", 80, scheduler="wrr", flags=("sh-port",)).flags == ("flag-2",)


def test_netmask_normalisation():
    assert VirtualService("tcp", "10.0.0.1", 80, netmask="255.255.255.0").netmask is None   # no persistence
    assert VirtualService("tcp", "10.0.0.1", 80, persistent=60, netmask="255.255.255.255").netmask is None
    assert VirtualService("tcp", "10.0.0.1", 80, persistent=60, netmask="255.255.255.0").netmask == "255.255.255.0"
    assert VirtualService("tcp", "2001:db8::1", 80, persistent=60, netmask="/64").netmask == "64"
    assert VirtualService("fwm", fwmark=1, family="inet6", persistent=60, netmask="128").netmask is None


@pytest.mark.parametrize("bad", [
    lambda: VirtualService("sctp", "10.0.0.1", 80),
    lambda: VirtualService("tcp", "not-an-ip", 80),
    lambda: VirtualService("tcp", "10.0.0.1", 70000),
    lambda: VirtualService("fwm", fwmark=0),
    lambda: VirtualService("tcp", "10.0.0.1", 80, persistent=0),
    lambda: VirtualService("tcp", "10.0.0.1", 80, flags=("bogus",)),
    lambda: Destination("10.0.0.1", 80, "route"),
    lambda: Destination("10.0.0.1", 80, "gate", -1),
    lambda: make_table([(VIP, [R1, R1])]),
    lambda: make_table([(VIP, []), (VIP, [])]),
])
def test_malformed_entries_are_rejected(bad):
    with pytest.raises(TableError):
        bad()


def test_diff_of_equal_tables_is_empty():
    t = make_table([(VIP, [R1, R2])])
    assert diff(t, t) == []
    assert diff({}, {}) == []


def test_from_empty_services_come_before_their_dests():
    wanted = make_table([(VIP, [R2, R1])])
    assert diff({}, wanted) == [AddService(VIP), AddDest(VIP, R1), AddDest(VIP, R2)]


def test_to_empty_dests_are_deleted_before_their_service():
    current = make_table([(VIP, [R1, R2])])
    assert diff(current, {}) == [DelDest(VIP, R1), DelDest(VIP, R2), DelService(VIP)]


def test_quiescent_real_is_a_weight_edit():
    current = make_table([(VIP, [R1, R2])])
    wanted = with_weight(current, VIP.key, R1.key, 0)
    assert diff(current, wanted) == [EditDest(VIP, Destination("192.168.18.191", 80, "gate", 0), R1)]


def test_fallback_is_added_before_the_last_real_is_removed():
    current = make_table([(VIP, [R1])])
    wanted = make_table([(VIP, [FALLBACK])])
    assert diff(current, wanted) == [AddDest(VIP, FALLBACK), DelDest(VIP, R1)]


def test_scheduler_and_persistence_changes_are_service_edits():
    current = make_table([(VIP, [R1])])
    new = VirtualService("tcp", "192.168.18.100", 80, scheduler="rr", persistent=300, netmask="255.255.255.0")
    wanted = make_table([(new, [R1])])
    assert diff(current, wanted) == [EditService(new, VIP)]


def test_method_and_threshold_changes_are_dest_edits():
    current = make_table([(VIP, [R1])])
    r1m = Destination("192.168.18.191", 80, "masq", 1, lower=5, upper=10)
    assert diff(current, make_table([(VIP, [r1m])])) == [EditDest(VIP, r1m, R1)]


def test_apply_ops_rejects_invalid_operations():
    t = make_table([(VIP, [R1])])
    with pytest.raises(TableError):
        apply_ops(t, [AddService(VIP)])
    with pytest.raises(TableError):
        apply_ops(t, [DelService(VIP)])           # still has a real server
    with pytest.raises(TableError):
        apply_ops(t, [AddDest(VIP, R1)])
    with pytest.raises(TableError):
        apply_ops(t, [DelDest(VIP, R2)])
    with pytest.raises(TableError):
        apply_ops(t, [EditDest(VIP, R2, R2)])
    with pytest.raises(TableError):
        apply_ops({}, [AddDest(VIP, R1)])
    with pytest.raises(TableError):
        with_weight(t, VIP.key, R2.key, 0)


def test_apply_ops_does_not_mutate_its_input():
    t = make_table([(VIP, [R1])])
    before = dict(t)
    apply_ops(t, diff(t, {}))
    assert t == before


def test_format_table_looks_like_ipvsadm():
    svc = VirtualService("tcp", "192.168.18.100", 80, persistent=300, netmask="255.255.255.0")
    text = format_table(make_table([(svc, [R1, R2]), (VirtualService("fwm", fwmark=3, scheduler="rr"), [])]),
                        health={(svc.key, R1.key): "up"})
    lines = text.splitlines()
    assert lines[2] == "FWM  3 rr"
    assert lines[3] == "TCP  192.168.18.100:80 wrr persistent 300 mask 255.255.255.0"
    assert lines[4].split() == ["->", "192.168.18.191:80", "Route", "1", "up"]
    assert lines[5].split() == ["->", "192.168.18.192:80", "Route", "3", "-"]


# --- properties over generated tables -------------------------------------------------------------

_services = st.one_of(
    st.builds(VirtualService, protocol=st.sampled_from(["tcp", "udp"]),
              address=st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]),
              port=st.sampled_from([80, 443]),
              scheduler=st.sampled_from(["wrr", "rr", "sh"]),
              persistent=st.one_of(st.none(), st.sampled_from([60, 300])),
              flags=st.sampled_from([(), ("ops",)])),
    st.builds(VirtualService, protocol=st.just("fwm"), fwmark=st.sampled_from([1, 2]),
              family=st.sampled_from(["inet", "inet6"]), scheduler=st.sampled_from(["wrr", "rr"])),
)
_dests = st.builds(Destination, address=st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.3", "127.0.0.1"]),
                   port=st.sampled_from([80, 8080]), method=st.sampled_from(["gate", "masq", "ipip"]),
                   weight=st.integers(0, 4), upper=st.sampled_from([0, 100]))


def _unique(items, key):
    seen = {}
    for it in items:
        seen.setdefault(key(it), it)
    return list(seen.values())


_tables = st.lists(st.tuples(_services, st.lists(_dests, max_size=4)), max_size=5).map(
    lambda entries: make_table([(s, _unique(ds, lambda d: d.key)) for s, ds in _unique(entries, lambda e: e[0].key)]))


@settings(max_examples=400, deadline=None)
@given(_tables, _tables)
def test_diff_then_apply_reaches_wanted_with_every_op_valid(current, wanted):
    ops = diff(current, wanted)
    assert apply_ops(current, ops) == wanted          # apply_ops raises if any op is invalid where applied
    assert diff(wanted, wanted) == []
    if current == wanted:
        assert ops == []


@settings(max_examples=300, deadline=None)
@given(_tables, _tables)
def test_ordering_rules(current, wanted):
    ops = diff(current, wanted)
    seen_services = set(current)
    for i, op in enumerate(ops):
        if isinstance(op, AddService):
            seen_services.add(op.service.key)
        if isinstance(op, (AddDest, EditDest)):
            assert op.service.key in seen_services     # a service exists before its dests are touched
        if isinstance(op, DelService):
            # every dest of a deleted service was deleted before it, explicitly
            deleted = {o.dest.key for o in ops[:i] if isinstance(o, DelDest) and o.service.key == op.service.key}
            assert deleted == set(current[op.service.key].dests)
    # a service kept in both tables with destinations in both never goes through an empty state
    table = dict(current)
    for op in ops:
        table = apply_ops(table, [op])
        for key in set(current) & set(wanted):
            if current[key].dests and wanted[key].dests:
                assert table[key].dests, f"{key} emptied transiently"


@settings(max_examples=300, deadline=None)
@given(_tables, _tables, st.integers(0, 50))
def test_resuming_from_any_partially_applied_prefix_converges(current, wanted, cut):
    ops = diff(current, wanted)
    partial = apply_ops(current, ops[: min(cut, len(ops))])   # a crash after `cut` ops
    assert apply_ops(partial, diff(partial, wanted)) == wanted
    assert len(diff(partial, wanted)) <= len(ops)


@settings(max_examples=200, deadline=None)
@given(_tables)
def test_edits_are_minimal_single_weight_change(table):
    for key, entry in table.items():
        for dkey, d in entry.dests.items():
            changed = with_weight(table, key, dkey, d.weight + 1)
            ops = diff(table, changed)
            assert len(ops) == 1 and isinstance(ops[0], EditDest) and ops[0].dest.weight == d.weight + 1
            return


def test_service_equality_ignores_mapping_type():
    from types import MappingProxyType
    assert Service(VIP, {R1.key: R1}) == Service(VIP, MappingProxyType({R1.key: R1}))


@settings(max_examples=100, deadline=None)
@given(_tables)
def test_table_data_round_trip(table):
    import json
    from hadaemon.core.director.lvs_table import table_from_data, table_to_data
    assert table_from_data(json.loads(json.dumps(table_to_data(table)))) == table
