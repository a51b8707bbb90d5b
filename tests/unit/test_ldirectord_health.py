"""Real-server health logic: debouncing, quiescent vs removal, fallback, maintenance, checktype N, reload."""

from hadaemon.core.director.checks import check_spec, make_plan, maintenance_names
from hadaemon.core.director.config import parse_config
from hadaemon.core.director.debounce import (
    RealDown, RealUp, Result, SoftFailure, apply_maintenance, apply_on_checks, apply_results,
    carry_over, check_kind, initial_state,
)
from hadaemon.core.director.table import dest_key, fallback_commands, wanted_table

VKEY = "tcp:192.168.18.100:80"
R1, R2 = (VKEY, "192.168.18.191:80"), (VKEY, "192.168.18.192:80")


def cfg(quiescent="yes", extra_global="", extra_virtual=""):
    return parse_config(f"""\
checktimeout=3
checkinterval=1
quiescent={quiescent}
{extra_global}
virtual=192.168.18.100:80
\treal=192.168.18.191:80 gate
\treal=192.168.18.192:80 gate 3
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest=".test.html"
\treceive="OK"
\tscheduler=wrr
{extra_virtual}""", "ldirectord.cf")


def weights(config, state, current=None):
    (svc,) = wanted_table(config, state, current).values()
    return {k: d.weight for k, d in svc.dests.items()}


def step(config, state, *results, now=1.0):
    plan = make_plan(config)
    return apply_results(plan, state, [Result(p, "negotiate", ok, "x") for p, ok in results], now)


def test_start_all_down_fallback_serves_then_reals_come_up():
    c = cfg()
    s = initial_state(c)
    assert weights(c, s) == {"127.0.0.1:80": 1, "192.168.18.191:80": 0, "192.168.18.192:80": 0}
    s, ev = step(c, s, (R1, True), (R2, True))
    assert ev == [RealUp(R1, "x"), RealUp(R2, "x")]
    assert weights(c, s) == {"192.168.18.191:80": 1, "192.168.18.192:80": 3}


def test_quiescent_sets_weight_zero_and_no_quiescent_removes():
    for q, want in (("yes", {"192.168.18.191:80": 1, "192.168.18.192:80": 0}),
                    ("no", {"192.168.18.191:80": 1})):
        c = cfg(quiescent=q)
        s, _ = step(c, initial_state(c), (R1, True), (R2, True))
        s, ev = step(c, s, (R2, False))
        assert ev == [RealDown(R2, "x")]
        assert weights(c, s, wanted_table(c, s)) == want


def test_failurecount_debounces_and_one_success_resets():
    c = cfg(extra_global="failurecount=3")
    s, _ = step(c, initial_state(c), (R1, True), (R2, True))
    s, ev = step(c, s, (R1, False))
    s, ev2 = step(c, s, (R1, False))
    assert ev + ev2 == [SoftFailure(R1, 1, 3, "x"), SoftFailure(R1, 2, 3, "x")]
    assert s.get(R1).up
    s, ev = step(c, s, (R1, True))          # a success in between resets the count
    assert ev == [] and s.get(R1).failcount == 0
    for _ in range(2):
        s, _ = step(c, s, (R1, False))
    assert s.get(R1).up
    s, ev = step(c, s, (R1, False))
    assert ev == [RealDown(R1, "x")] and not s.get(R1).up
    s, ev = step(c, s, (R1, False))         # already down: nothing more
    assert ev == []
    s, ev = step(c, s, (R1, True))
    assert ev == [RealUp(R1, "x")]


def test_fallback_only_while_no_real_is_up():
    c = cfg(quiescent="no")
    s, _ = step(c, initial_state(c), (R2, True))
    assert "127.0.0.1:80" not in weights(c, s)
    s, _ = step(c, s, (R2, False))
    assert weights(c, s) == {"127.0.0.1:80": 1}
    s, _ = step(c, s, (R1, True))
    assert weights(c, s) == {"192.168.18.191:80": 1}


def test_fallbackcommand_start_and_stop_once_per_change():
    c = cfg(extra_virtual='\tfallbackcommand="/usr/local/bin/fb"')
    s = initial_state(c)
    s, eff = fallback_commands(c, s)
    assert [e.command for e in eff] == ["/usr/local/bin/fb start 192.168.18.100:80 tcp"]
    s, eff = fallback_commands(c, s)
    assert eff == []
    s, _ = step(c, s, (R1, True))
    s, eff = fallback_commands(c, s)
    assert [e.command for e in eff] == ["/usr/local/bin/fb stop 192.168.18.100:80 tcp"]


def test_readdquiescent_keeps_a_hand_removed_quiescent_real_out_unless_set():
    for readd, present in (("no", False), ("yes", True)):
        c = cfg(extra_global=f"readdquiescent={readd}")
        s, _ = step(c, initial_state(c), (R1, True), (R2, True))
        current = wanted_table(c, s)
        svc = next(iter(current.values()))
        del svc.dests["192.168.18.192:80"]          # an admin ran ipvsadm -d
        s, _ = step(c, s, (R2, False))
        assert ("192.168.18.192:80" in weights(c, s, current)) is present
    # at start (no current table) a down quiescent real is added with weight 0 either way
    assert weights(c, initial_state(c))["192.168.18.192:80"] == 0


def test_maintenance_forces_down_without_debounce_and_skips_results():
    c = cfg(extra_global="failurecount=5")
    plan = make_plan(c)
    s, _ = step(c, initial_state(c), (R1, True), (R2, True))
    s, ev = apply_maintenance(plan, s, {R1: True}, 2.0)
    assert ev == [RealDown(R1, "Server in maintenance", maintenance=True)]
    s, ev = step(c, s, (R1, True))
    assert ev == [] and not s.get(R1).up               # checks do not bring it back
    s, ev = apply_maintenance(plan, s, {R1: False}, 3.0)
    s, ev = step(c, s, (R1, True))
    assert ev == [RealUp(R1, "x")]
    assert maintenance_names(plan.targets[R1].real, "web1.example.com") == (
        "192.168.18.191:80", "192.168.18.191", "web1.example.com:80", "web1.example.com", "web1:80", "web1")


def test_checktype_on_off_and_number():
    c_on = cfg(extra_virtual="\tchecktype=on")
    plan = make_plan(c_on)
    s = initial_state(c_on)
    assert all(s.get(p).up for p in plan.targets) and check_kind(plan.targets[R1], s.get(R1)) is None
    s, ev = apply_on_checks(plan, s, 1.0)
    assert ev == []
    c_off = cfg(extra_virtual="\tchecktype=off")
    s = initial_state(c_off)
    assert not any(s.get(p).up for p in make_plan(c_off).targets)
    assert weights(c_off, s)["127.0.0.1:80"] == 1
    # checktype=2: negotiate, then 2 connects, then negotiate again; a failed connect forces negotiate
    c = cfg(extra_virtual="\tchecktype=2")
    plan = make_plan(c)
    t = plan.targets[R1]
    s = initial_state(c)
    kinds = []
    for ok in (True, True, True, True, False, True):
        kind = check_kind(t, s.get(R1))
        kinds.append(kind)
        s, _ = apply_results(plan, s, [Result(R1, kind, ok)], 1.0)
    assert kinds == ["negotiate", "connect", "connect", "negotiate", "connect", "negotiate"]


def test_connect_on_udp_is_ping_and_timeouts_per_kind():
    c = parse_config("checktimeout=2\nnegotiatetimeout=9\nvirtual=10.0.0.1:53\n\treal=10.0.0.2 gate\n"
                     "\tchecktype=connect\n", "x.cf")
    plan = make_plan(c)
    (t,) = plan.targets.values()
    assert check_kind(t, initial_state(c).get(t.pair)) == "ping"
    assert check_spec(t.virtual, t.real, "ping").timeout == 2
    assert check_spec(t.virtual, t.real, "negotiate").timeout == 9
    assert check_spec(t.virtual, t.real, "negotiate").port == 53    # the virtual's port via service


def test_same_real_in_two_virtuals_shares_one_result():
    c = parse_config("virtual=10.0.0.1:80\n\treal=10.0.0.9:80 gate\n"
                     "virtual=10.0.0.2:80\n\treal=10.0.0.9:80 gate\n", "x.cf")
    plan = make_plan(c)
    assert len(plan.groups) == 1
    s, ev = apply_results(plan, initial_state(c), [Result(("tcp:10.0.0.1:80", "10.0.0.9:80"), "negotiate", True)], 1)
    assert len(ev) == 2 and s.get(("tcp:10.0.0.2:80", "10.0.0.9:80")).up


def test_reload_keeps_unchanged_reals_and_resets_changed_checks():
    c = cfg(extra_global="failurecount=3")
    s, _ = step(c, initial_state(c), (R1, True), (R2, True))
    s, _ = step(c, s, (R2, False))
    assert s.get(R2).failcount == 1
    # same reals, one added, different weight on R2 (changes its id), R1 untouched
    new = parse_config("""\
checktimeout=3
failurecount=3
quiescent=yes
virtual=192.168.18.100:80
\treal=192.168.18.191:80 gate
\treal=192.168.18.192:80 gate 5
\treal=192.168.18.193:80 gate
\tservice=http
\trequest=".test.html"
\treceive="OK"
""", "ldirectord.cf")
    s2 = carry_over(s, c, new)
    assert s2.get(R1) == s.get(R1)                     # unchanged: identical state, no flap
    assert s2.get(R2).up and s2.get(R2).failcount == 0  # check id changed: count restarts
    assert not s2.get((VKEY, "192.168.18.193:80")).up   # new: down until checked
    assert weights(new, s2, wanted_table(c, s)) == {
        "192.168.18.191:80": 1, "192.168.18.192:80": 5, "192.168.18.193:80": 0}
    # a removed virtual's state is dropped
    other = parse_config("virtual=10.1.1.1:80\n\treal=10.1.1.2:80 gate\n", "x.cf")
    assert set(carry_over(s, c, other).reals) == {("tcp:10.1.1.1:80", "10.1.1.2:80")}


def test_adopted_table_at_start():
    c = cfg()
    s = initial_state(c, adopted={R1: True, R2: False})
    assert weights(c, s) == {"192.168.18.191:80": 1, "192.168.18.192:80": 0}


def test_real_without_port_uses_virtual_port_in_table():
    c = parse_config("virtual=10.0.0.1:8080\n\treal=10.0.0.2 masq 2\n", "x.cf")
    v = c.virtuals[0]
    assert dest_key(v, v.reals[0]) == "10.0.0.2:8080"
    s, _ = apply_results(make_plan(c), initial_state(c), [Result((v.key, "10.0.0.2:0"), "negotiate", True)], 1)
    (svc,) = wanted_table(c, s).values()
    assert svc.dests["10.0.0.2:8080"].weight == 2 and svc.dests["10.0.0.2:8080"].method == "masq"


def test_monitorfile_lines_like_service_set():
    from hadaemon.core.director.monitor import has_monitorfile, monitor_lines

    plain = make_plan(cfg())
    assert not has_monitorfile(plain)
    assert monitor_lines(plain, [Result(R1, "negotiate", True, "200 OK")], "now", 7) == {}
    plan = make_plan(cfg(extra_virtual='\tmonitorfile="/var/log/ld-web.log"\n'))
    assert has_monitorfile(plan)
    out = monitor_lines(plan, [Result(R1, "negotiate", True, "200 OK"),
                               Result(R2, "negotiate", False, "timeout | after 3s\nmore 100%")],
                        "Tue Dec  1 15:40:47 2026", 4242)
    # ldirectord: "[localtime] [pid] REAL-ID [up|down] message", REAL-ID = get_real_id_str with its
    # colons squeezed to spaces and quotemeta's backslashes removed; % | and newlines URI-escaped
    assert out == {"/var/log/ld-web.log": [
        "[Tue Dec  1 15:40:47 2026] [4242] negotiate http tcp 192.168.18.191 80 1 gate /.test.html OK [up] 200 OK\n",
        "[Tue Dec  1 15:40:47 2026] [4242] negotiate http tcp 192.168.18.192 80 3 gate /.test.html OK [down] "
        "timeout %7c after 3s%0amore 100%25\n"]}
