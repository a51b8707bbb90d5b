"""The director's real server rows by key (daemons/director_views.py): the rows D-Bus RealServers and hactl
show, one per destination (the first real wins when one is listed twice), the fallback as its own row;
row(key) gives the same row as real_rows(); row_keys_of maps check results to the rows of every pair sharing
the check."""
from hadaemon.core.director.checks import make_plan
from hadaemon.core.director.config import parse_config
from hadaemon.core.director.debounce import Result, apply_results, initial_state
from hadaemon.core.director.table import wanted_table
from hadaemon.daemons.director_views import DirectorViews

CONFIG = """checktimeout=3
virtual=10.0.0.1:80
\treal=10.0.1.1:80 gate 2
\treal=10.0.1.2:80 masq
\treal=10.0.1.1:80 gate 5
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest="x"
\treceive="OK"
virtual=10.0.0.2:80
\treal=10.0.1.1:80 gate
\tservice=http
\trequest="x"
\treceive="OK"
"""


class Backend:
    name = "nft"


class Views(DirectorViews):
    def __init__(self):
        self.config = parse_config(CONFIG, "t.cf")
        self.plan = make_plan(self.config)
        self.health = initial_state(self.config, plan=self.plan)
        self.overrides = {}
        self.backend = Backend()
        self.current = wanted_table(self.config, self.health, None, self.plan)


def test_rows_by_key_equal_the_listing():
    d = Views()
    first = next(p for p in d.plan.targets if p[1].startswith("10.0.1.1"))
    d.health, _ = apply_results(d.plan, d.health, [Result(first, "negotiate", True, "200 OK")], 5.0)
    d.current = wanted_table(d.config, d.health, d.current, d.plan)
    d.overrides[("tcp:10.0.0.1:80", "10.0.1.2:80")] = 0
    rows = d.real_rows()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("tcp:10.0.0.1:80", "10.0.1.1:80", "up"), ("tcp:10.0.0.1:80", "10.0.1.2:80", "down"),
        ("tcp:10.0.0.1:80", "127.0.0.1:80", "fallback"), ("tcp:10.0.0.2:80", "10.0.1.1:80", "down")]
    assert rows[0][4:7] == (2, 2, True) and rows[0][7] == "200 OK" and rows[0][8] == 5.0
    assert rows[1][9] is True and rows[2][4] == -1            # an admin override; the fallback is out
    assert [d.row(k) for k in d.row_keys()] == rows and d.row(("tcp:10.0.0.9:80", "x")) is None
    # a result touches the rows of every pair sharing its check (the real listed twice: one pair, one row)
    group = d.plan.groups[d.plan.identity[first]]
    assert set(d.row_keys_of([first])) == {d._keys(d.plan.targets[p].virtual, d.plan.targets[p].real) for p in group}
    assert set(d.row_keys_of([first])) == {("tcp:10.0.0.1:80", "10.0.1.1:80")}
