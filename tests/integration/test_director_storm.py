"""An event storm in namespaces (nft backend, D-Bus on the director's private bus): 200 real servers, half of
them flapping on every check. D-Bus gets coalesced changes (a bounded rate of PropertiesChanged that never
carries the RealServers table, one RealServerChanged per real per flush), reads keep working, the healthy
reals keep their weight and their check cadence."""
import json
import subprocess
import time

import pytest

from hadaemon.testing.netns import Cluster
from tests.integration.director_env import PYTHON

pytestmark = [pytest.mark.root, pytest.mark.slow]

N = 200
BASE = 20000
SERVER = r"""
import json, selectors, socket, sys, time
n, base = int(sys.argv[1]), int(sys.argv[2])
ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n"
no = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nNO\n"
sel = selectors.DefaultSelector()
toggle, seen = {}, {}
for port in range(base, base + n):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port)); ls.listen(64); ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, port)
print("READY", flush=True)
out = open(sys.argv[3], "w")
while True:
    for key, _ in sel.select():
        port = key.data
        try:
            c, _ = key.fileobj.accept()
        except OSError:
            continue
        c.settimeout(2)
        try:
            c.recv(4096)
            if port % 2:                       # odd ports flap: OK, NO, OK, ...
                toggle[port] = not toggle.get(port, False)
                c.sendall(ok if toggle[port] else no)
            else:
                out.write(f"{port} {time.monotonic()}\n"); out.flush()
                c.sendall(ok)
        except OSError:
            pass
        c.close()
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_storm_is_coalesced_on_dbus_and_healthy_reals_stay_put(workers):
    """workers: the daemon's --check-workers (2: the checks run in two checker processes)."""
    with Cluster(["dir1"]) as c:
        c.add_host("rs")
        rs = c.addr("rs")
        script, hits = c.workdir / "storm.py", c.workdir / "hits.txt"
        script.write_text(SERVER)
        srv = c.spawn("rs", [PYTHON, str(script), str(N), str(BASE), str(hits)], name="storm")
        deadline = time.monotonic() + 30
        while "READY" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        cfg = c.workdir / "ldirectord.cf"
        cfg.write_text("checktimeout=1\ncheckinterval=1\nfailurecount=1\nquiescent=yes\nvirtual=10.99.0.1:80\n"
                       + "".join(f"\treal={rs}:{p} gate\n" for p in range(BASE, BASE + N))
                       + '\trequest=".test.html"\n\treceive="OK"\n\tservice=http\n')
        # resync every second: reads of the table while applies go on must not be taken for changes made
        # behind the director's back
        d = c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--resync-interval", "1",
                             "--check-workers", str(workers), str(cfg)],
                    env=c.dbus_env("dir1"), name="ldirectord")
        bus = c.dbus("dir1")
        while "started:" not in d.output() and time.monotonic() < deadline + 30:
            time.sleep(0.2)
        # reals start down: wait until every healthy real's first check has brought it up (with checker processes
        # on a loaded machine that can take seconds), so that the window below sees only the storm
        from hadaemon.io.lvs.nft import parse_listing

        def healthy_weights():
            cp = c.run("dir1", ["nft", "-j", "list", "table", "ip", "hadaemon"], check=False)
            if cp.returncode != 0:
                return {}
            dests = parse_listing(json.loads(cp.stdout)).get("tcp:10.99.0.1:80")
            return {} if dests is None else {k: d.weight for k, d in dests.dests.items()
                                             if int(k.rsplit(":", 1)[1]) % 2 == 0}
        up_deadline = time.monotonic() + 120
        while True:
            weights = healthy_weights()
            if len(weights) == N // 2 and set(weights.values()) == {1}:
                break
            assert time.monotonic() < up_deadline, weights
            time.sleep(0.5)
        time.sleep(1)                                 # the storm is on
        mon_out = open(c.workdir / "monitor.json", "w")   # a file, not a pipe: a full pipe would stall busctl
        monitor = subprocess.Popen(["stdbuf", "-oL", "busctl", f"--address={bus}", "--json=short", "monitor", "--match",
                                    "type='signal',sender='org.hadaemon.Director1'"],
                                   stdout=mon_out, stderr=subprocess.DEVNULL, text=True)
        t0 = time.monotonic()
        reads = []
        try:
            while time.monotonic() - t0 < 10:
                cp = subprocess.run(["busctl", f"--address={bus}", "--timeout=5", "--json=short", "get-property",
                                     "org.hadaemon.Director1", "/org/hadaemon/Director1", "org.hadaemon.Director1",
                                     "RealServers"], capture_output=True, text=True, timeout=30)
                reads.append(cp)
                time.sleep(0.1)
        finally:
            monitor.send_signal(2)               # SIGINT: busctl flushes what it has
            monitor.wait(timeout=10)
            mon_out.close()
        out = (c.workdir / "monitor.json").read_text()
        window = time.monotonic() - t0
        messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        props = [m for m in messages if m.get("member") == "PropertiesChanged"]
        changed = [m["payload"]["data"] for m in messages if m.get("member") == "RealServerChanged"]
        log = d.output()
        print(f"{window:.1f}s: {len(props)} PropertiesChanged, {len(changed)} RealServerChanged, "
              f"{len(reads)} reads of RealServers; the daemon logged {log.count(' is down (')} downs and "
              f"{log.count(' is up (')} ups in all")
        # D-Bus: every read answered with the whole table; PropertiesChanged at a bounded rate, never the table
        assert all(r.returncode == 0 for r in reads), [r.stderr for r in reads if r.returncode][:3]
        assert all(len(json.loads(r.stdout)["data"]) == N for r in reads)
        assert props and len(props) <= window / 0.1 + 10, len(props)
        for m in props:
            iface, values, invalidated = m["payload"]["data"]
            assert "RealServers" not in values and "RealServers" in invalidated
        # the storm is there (about 100 flapping reals a second), and the healthy reals never flapped
        flapping = {f"{rs}:{p}" for p in range(BASE + 1, BASE + N, 2)}
        assert len(changed) > 5 * N / 2 * 0.2, len(changed)
        healthy_changed = {real for _, real, _, _ in changed} - flapping
        assert not healthy_changed, (sorted(healthy_changed)[:5], [line for line in log.splitlines()
                                                                    if any(r in line for r in healthy_changed)][:10])
        # each real is signalled at most once per flush (0.1 s)
        assert len(changed) <= len(flapping) * (window / 0.1 + 10)
        # the healthy reals keep weight 1 and are checked about every second
        cp = c.run("dir1", ["nft", "-j", "list", "table", "ip", "hadaemon"])
        dests = parse_listing(json.loads(cp.stdout))["tcp:10.99.0.1:80"].dests
        assert all(dests[f"{rs}:{p}"].weight == 1 for p in range(BASE, BASE + N, 2))
        # gaps between two checks of a healthy real within the window (the server and this test share the
        # system's monotonic clock), and for each healthy real the time since its last check: one no longer
        # checked at all counts too
        end = time.monotonic()
        last, gaps = {}, []
        for line in hits.read_text().splitlines():
            port, t = line.split()
            if port in last and last[port] >= t0:
                gaps.append(float(t) - last[port])
            last[port] = float(t)
        assert len(last) == N // 2, len(last)
        gaps += [end - t for t in last.values()]
        gaps.sort()
        print(f"healthy reals' check gaps: max {gaps[-1]:.2f}s p99 {gaps[int(len(gaps) * .99)]:.2f}s")
        # checkinterval 1 s: 3 intervals is a generous bound for a loaded 2-core machine (1.1-1.3 s measured at
        # load average 20); a stalled event loop or a real dropped from the schedule gives far more
        assert gaps[-1] < 3.0, gaps[-10:]
        d.terminate(timeout=30)
        assert "Traceback" not in d.output()
        assert "changed outside the director" not in d.output()
