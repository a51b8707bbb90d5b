"""Health-check throughput: N real servers on loopback (one HTTP listener each, in a separate process),
checkinterval 1 s, http negotiate; checks/s, checker CPU% and RSS, all up and half hung; plus what
ldirectord's sequential loop would take for the same table. Then the storm: the whole ha-ldirectord
daemon (nft backend, D-Bus on a private bus or --no-dbus) with half of its reals flapping on every check.

    .venv/bin/python bench/checks.py              # 1,000 and 10,000 reals, then storms at 1,000 and 5,000
    .venv/bin/python bench/checks.py --reals 10000 --workers 2 --seconds 10
    .venv/bin/python bench/checks.py --storm-only --storm-reals 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nOK\n")
BASE_PORT = 30000


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def real_addr(i: int) -> tuple:
    """Real i: 100 loopback addresses (127.1.0.1-100) x ports from 30000."""
    return f"127.1.0.{i % 100 + 1}", BASE_PORT + i // 100


# ---- the real servers (separate process) --------------------------------------------------

def _serve(n: int, half_down: bool) -> None:
    """One listener per port on 0.0.0.0 inside the bench's private network namespace (so 100
    listeners serve 100 addresses x 100 ports), as lean as a real HTTP server can be so that it
    takes little of the CPU the checker is measured on: TCP_DEFER_ACCEPT makes accept() return
    a connection only once its request has arrived, so each one is accepted, read (the request is
    checked to be a GET or HEAD of /.test.html), answered and closed at once, without ever
    entering the selector. A connection to an even last octet (odd real index) is hung when
    half_down: kept open unanswered, and closed 10 s later (the checker gives up after its
    timeout and resets it)."""
    import collections
    import selectors
    import socket
    sel = selectors.DefaultSelector()
    hung: collections.deque = collections.deque()
    ok_head = RESPONSE[:RESPONSE.index(b"\r\n\r\n") + 4]
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def answer(conn, data: bytes) -> None:
        if data.startswith(b"GET /.test.html "):
            out = RESPONSE
        elif data.startswith(b"HEAD /.test.html "):
            out = ok_head
        else:
            out = not_found
        try:
            conn.send(out)
        except OSError:
            pass
        conn.close()

    def on_data(conn):                            # the rare request that arrived in pieces
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        sel.unregister(conn)
        if data:
            answer(conn, data)
        else:
            conn.close()

    def on_accept(lsock):
        now = time.monotonic()
        while hung and hung[0][0] < now:
            hung.popleft()[1].close()
        while True:
            try:
                conn, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:                       # EMFILE and friends: let the checker time out
                return
            if half_down and int(conn.getsockname()[0].rsplit(".", 1)[1]) % 2 == 0:
                hung.append((now + 10.0, conn))
                continue
            try:
                data = conn.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, (on_data, conn))
                continue
            except OSError:
                conn.close()
                continue
            if data:
                answer(conn, data)
            else:
                conn.close()

    ports = sorted({real_addr(i)[1] for i in range(n)})
    for port in ports:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        ls.bind(("0.0.0.0", port))               # only inside the private namespace
        ls.listen(4096)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, (on_accept, ls))
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print("READY", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:                  # the parent closed our stdin: done
                return
            fn, *args = key.data
            fn(*args)


def serve_main(n: int, half_down: bool) -> None:
    raise_nofile()
    _serve(n, half_down)


# ---- the checker (separate process, optionally several shards) ------------------------------

def config_text(n: int, shard: int, shards: int, timeout: float) -> str:
    """ldirectord.cf for reals shard, shard+shards, ... (one virtual service)."""
    lines = [f"checktimeout={timeout:g}", "checkinterval=1", "quiescent=yes", "virtual=10.255.0.1:80"]
    for i in range(shard, n, shards):
        host, port = real_addr(i)
        lines.append(f"\treal={host}:{port} gate")
    lines += ['\trequest=".test.html"', '\treceive="OK"', "\tservice=http", "\tscheduler=wrr", ""]
    return "\n".join(lines)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _check(n, workers, warmup, seconds, timeout) -> dict:
    """The director side: parse, plan, health core, and either an in-process CheckScheduler
    (workers=1) or CheckWorkers processes; CPU and RSS cover all of them."""
    from hadaemon.core.director.checks import make_plan
    from hadaemon.core.director.config import parse_config
    from hadaemon.core.director.debounce import apply_results, initial_state
    from hadaemon.core.director.table import wanted_table
    from hadaemon.io.checks.scheduler import CheckScheduler
    from hadaemon.io.checks.worker import CheckWorkers

    t0 = time.perf_counter()
    config = parse_config(config_text(n, 0, 1, timeout), "bench.cf")
    plan = make_plan(config)
    parse_s = time.perf_counter() - t0
    state = {"s": initial_state(config, plan=plan), "last_table": 0.0, "table_s": 0.0, "tables": 0}
    last_seen: dict = {}
    gaps: list = []
    durations: list = []
    window = {"on": False}

    def on_results(results, maintenance, now):
        state["s"], _ = apply_results(plan, state["s"], results, now)
        for r in results:
            if window["on"] and r.ok and r.pair in last_seen:
                gaps.append(now - last_seen[r.pair])
                durations.append(r.duration)
            last_seen[r.pair] = now
        if now - state["last_table"] >= 1.0:          # the director recomputes the table each second
            a = time.perf_counter()
            wanted_table(config, state["s"], plan=plan)
            state["table_s"] += time.perf_counter() - a
            state["tables"] += 1
            state["last_table"] = now

    if workers > 1:
        runner = CheckWorkers(workers, on_results)
        await runner.start(config)
        pids = runner.pids()
    else:
        runner = CheckScheduler(plan, on_results, flush_interval=0.1)
        task = asyncio.ensure_future(runner.run())
        pids = []

    def cpu():
        t = os.times()
        return t.user + t.system + sum(proc_cpu(p) for p in pids), t.system + sum(proc_sys(p) for p in pids)

    await asyncio.sleep(warmup)
    window["on"] = True
    (cpu0, sys0), done0, w0 = cpu(), runner.checks_done, time.monotonic()
    state["table_s"], state["tables"] = 0.0, 0
    await asyncio.sleep(seconds)
    (cpu1, sys1), done1, w1 = cpu(), runner.checks_done, time.monotonic()
    rss = _rss_mb() + sum(_proc_rss_mb(p) for p in pids)
    if workers > 1:
        await runner.stop()
    else:
        runner.stop()
        await asyncio.wait_for(task, 30)
    up = sum(1 for h in state["s"].reals.values() if h.up)
    gaps.sort()
    return {"reals": len(plan.targets), "checks_per_s": (done1 - done0) / (w1 - w0),
            "cpu_pct": 100 * (cpu1 - cpu0) / (w1 - w0), "rss_mb": rss,
            "sys_pct": 100 * (sys1 - sys0) / (w1 - w0), "up": up, "parse_s": parse_s,
            "gap_p50": gaps[len(gaps) // 2] if gaps else None,
            "gap_p99": gaps[int(len(gaps) * 0.99)] if gaps else None,
            "table_ms": 1000 * state["table_s"] / max(1, state["tables"]),
            "check_ms": 1000 * sum(durations) / max(1, len(durations))}


def check_main(n, workers, warmup, seconds, timeout) -> None:
    raise_nofile()
    print(json.dumps(asyncio.run(_check(n, workers, warmup, seconds, timeout))), flush=True)


# ---- sequential per-check latency (what ldirectord's loop pays per real) ---------------------

async def _sequential_latency(n_checks: int) -> float:
    from hadaemon.core.director.checks import CheckSpec
    from hadaemon.io.checks import run_check
    t0 = time.perf_counter()
    for i in range(n_checks):
        host, port = real_addr(2 * (i % 50))        # even reals answer in both modes
        r = await run_check(CheckSpec("negotiate", "http", "tcp", host, 4, port, 3,
                                      url=f"http://{host}:{port}/.test.html", receive="OK"))
        assert r.ok, r.detail
    return (time.perf_counter() - t0) / n_checks


def lwp_latency(n_checks: int) -> float | None:
    """Per-check latency of ldirectord's own HTTP client (LWP::UserAgent), one after another."""
    urls = " ".join(f"http://{h}:{p}/.test.html" for h, p in (real_addr(2 * (i % 50)) for i in range(n_checks)))
    code = ("use LWP::UserAgent; use Time::HiRes qw(time); my $ua = LWP::UserAgent->new(timeout => 3);"
            "my @u = split / /, $ARGV[0]; my $t = time; for my $u (@u) {"
            " my $r = $ua->request(HTTP::Request->new('GET', $u, HTTP::Headers->new(Host => 'x')));"
            " die $r->status_line unless $r->is_success && $r->content =~ /OK/; }"
            " printf \"%.9f\\n\", (time - $t) / scalar(@u);")
    try:
        p = subprocess.run(["perl", "-e", code, urls], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return float(p.stdout) if p.returncode == 0 else None


# ---- the storm: the daemon with half its reals flapping on every check ------------------------------

def _serve_storm(n: int) -> None:
    """Like _serve, but a real whose address ends in an even octet (odd index: half of them) flaps:
    its /.test.html answers OK and NO on alternate requests, so with failurecount=1 it changes state on
    every check. Arrival times of the healthy reals' checks are kept: `MARK` on stdin starts the
    window, `REPORT` prints the largest and the p99 gap between two checks of one healthy real."""
    import selectors
    import socket
    sel = selectors.DefaultSelector()
    ok = RESPONSE
    no = RESPONSE.replace(b"OK\n", b"NO\n")
    toggle: dict = {}
    last: dict = {}
    gaps: list = []
    window = {"on": False, "start": 0.0}
    worst = {"gap": 0.0, "end": 0.0}             # the largest gap and when it ended (monotonic)

    def on_accept(lsock):
        while True:
            try:
                conn, _ = lsock.accept()
            except (BlockingIOError, InterruptedError, OSError):
                return
            addr, port = conn.getsockname()
            key = (addr, port)
            try:
                conn.recv(4096, socket.MSG_DONTWAIT)
            except OSError:
                pass
            if int(addr.rsplit(".", 1)[1]) % 2 == 0:
                t = toggle[key] = not toggle.get(key, False)
                out = ok if t else no
            else:
                out = ok
                now = time.monotonic()
                prev = last.get(key)
                if window["on"] and prev is not None and prev >= window["start"]:
                    gaps.append(now - prev)
                    if now - prev > worst["gap"]:
                        worst["gap"], worst["end"] = now - prev, now
                last[key] = now
            try:
                conn.send(out)
            except OSError:
                pass
            conn.close()

    for port in sorted({real_addr(i)[1] for i in range(n)}):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        ls.bind(("0.0.0.0", port))               # only inside the private namespace
        ls.listen(4096)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, ls)
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print("READY", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is not None:
                on_accept(key.data)
                continue
            line = sys.stdin.readline().strip()
            if line == "MARK":
                window["on"], window["start"] = True, time.monotonic()
            elif line == "REPORT":
                now = time.monotonic()
                # a healthy real not checked since: its open gap counts too
                tail = [now - t for t in last.values() if t >= window["start"]]
                allg = sorted(gaps + tail)
                print(json.dumps({"gap_max": allg[-1] if allg else None,
                                  "gap_p99": allg[int(len(allg) * 0.99)] if allg else None,
                                  "gaps": len(gaps), "gap_max_end": worst["end"] - window["start"]}), flush=True)
            else:
                return


def _dbus_reader(address: str, seconds: float, interval: float) -> None:
    """A D-Bus client reading RealServers every `interval` s; prints the call latencies (ms) as JSON.
    The latency is the daemon's and the bus's: request sent -> whole reply received. The reply body is
    not decoded in the loop (dbus-next's pure-Python unmarshaller alone takes tens of ms for 5,000 rows,
    which would measure this client); the last reply is decoded once to count the rows."""
    import socket
    import struct as st

    from hadaemon.bus.dbusnext import Message, MessageBus

    async def rows_once() -> int:
        bus = await MessageBus(bus_address=address).connect()
        try:
            reply = await bus.call(Message(destination="org.hadaemon.Director1", path="/org/hadaemon/Director1",
                                           interface="org.freedesktop.DBus.Properties", member="Get", signature="ss",
                                           body=["org.hadaemon.Director1", "RealServers"]))
            return len(reply.body[0].value) if reply.body else -1
        finally:
            bus.disconnect()

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address.split("path=", 1)[1].split(",")[0])
    sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    assert sock.recv(4096).startswith(b"OK")
    sock.sendall(b"BEGIN\r\n")
    buf = bytearray()

    def read_message():
        while True:
            if len(buf) >= 16:
                body_len, _serial, fields_len = st.unpack_from("<III", buf, 4)
                total = 16 + fields_len + (-fields_len % 8) + body_len
                if len(buf) >= total:
                    msg = bytes(buf[:total])
                    del buf[:total]
                    return msg
            data = sock.recv(1 << 20)
            if not data:
                raise EOFError("bus closed")
            buf.extend(data)

    def call(msg: Message) -> bytes:
        sock.sendall(msg._marshall())
        while True:
            m = read_message()
            if m[1] in (2, 3):              # METHOD_RETURN / ERROR (signals are skipped)
                return m

    call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                 member="Hello", serial=1))
    lat, at, errors, serial = [], [], 0, 1
    end = time.monotonic() + seconds
    sock.settimeout(10)
    while time.monotonic() < end:
        serial += 1
        t0 = time.monotonic()
        try:
            m = call(Message(destination="org.hadaemon.Director1", path="/org/hadaemon/Director1",
                             interface="org.freedesktop.DBus.Properties", member="Get", signature="ss",
                             body=["org.hadaemon.Director1", "RealServers"], serial=serial))
            if m[1] != 2:
                errors += 1
        except OSError:
            errors += 1
        lat.append(1000 * (time.monotonic() - t0))
        at.append(round(time.time(), 3))
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    sock.close()
    print(json.dumps({"lat": lat, "at": at, "errors": errors, "rows": asyncio.run(rows_once())}), flush=True)


def storm_config(n: int) -> str:
    lines = ["checktimeout=1", "checkinterval=1", "failurecount=1", "quiescent=yes", "virtual=10.255.0.1:80"]
    lines += [f"\treal={h}:{p} gate" for h, p in (real_addr(i) for i in range(n))]
    lines += ['\trequest=".test.html"', '\treceive="OK"', "\tservice=http", "\tscheduler=wrr", ""]
    return "\n".join(lines)


def _children(pid: int) -> list:
    """The PIDs whose parent is `pid` (the daemon's checker processes)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(_stat(int(d))[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _vmhwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_storm(n: int, dbus: bool, warmup: float, seconds: float, workdir: str, workers: int = 0) -> dict:
    """One storm: servers, (a private bus,) the daemon, a reader every 100 ms, three SIGHUPs."""
    import signal
    import tempfile
    cfg = os.path.join(workdir, f"storm{n}.cf")
    with open(cfg, "w") as f:
        f.write(storm_config(n))
    logpath = os.path.join(workdir, f"storm{n}-{'dbus' if dbus else 'nodbus'}.log")
    srv = subprocess.Popen([sys.executable, __file__, "--serve-storm", str(n)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "READY"
    bus = None
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        if dbus:
            from hadaemon.testing.dbus import PrivateBus
            bus = PrivateBus(workdir=Path(tempfile.mkdtemp(dir=workdir))).start()
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        with open(logpath, "wb") as log:
            # STORM_PROFILE=1: cProfile (slows the daemon down); STORM_SAMPLE=1: bench/stack_sampler.py (cheap);
            # STORM_LAG=1: bench/loop_lag.py (what held the event loop up, and when)
            prof = (["-m", "cProfile", "-o", logpath + ".prof"] if os.environ.get("STORM_PROFILE") else
                    [str(ROOT / "bench" / "stack_sampler.py"), logpath + ".samples"] if os.environ.get("STORM_SAMPLE")
                    else [str(ROOT / "bench" / "loop_lag.py"), logpath + ".lag.json"] if os.environ.get("STORM_LAG")
                    else [])
            d = subprocess.Popen([sys.executable, *prof, "-m", "hadaemon.daemons.director", "--backend", "nft",
                                  "--check-workers", str(workers),
                                  *([] if dbus else ["--no-dbus"]), cfg], stdout=log, stderr=log, env=env,
                                 cwd=str(ROOT))
        try:
            deadline = time.monotonic() + 120
            while b"started:" not in open(logpath, "rb").read() and time.monotonic() < deadline:
                if d.poll() is not None:
                    raise SystemExit(f"director exited: {open(logpath).read()[-2000:]}")
                time.sleep(0.2)
            time.sleep(warmup)
            reader = None
            if dbus:
                reader = subprocess.Popen([sys.executable, __file__, "--dbus-reader", bus.address, str(seconds)],
                                          stdout=subprocess.PIPE, text=True, env=env)
            srv.stdin.write("MARK\n")
            srv.stdin.flush()
            workers_pids = _children(d.pid) if workers else []
            wcpu0 = sum(proc_cpu(p) for p in workers_pids)
            cpu0, self0 = proc_cpu_children(d.pid), proc_cpu(d.pid)
            size0 = os.path.getsize(logpath)
            t0 = time.monotonic()
            hups, hup_at = [], []
            for k in range(3):                        # SIGHUPs spread over the window
                time.sleep(seconds / 4)
                before = open(logpath, "rb").read().count(b"reloaded ")
                with open(cfg, "a") as f:
                    f.write(f"# reload {k}\n")
                h0 = time.monotonic()
                hup_at.append(h0 - t0)
                d.send_signal(signal.SIGHUP)
                while open(logpath, "rb").read().count(b"reloaded ") == before and time.monotonic() - h0 < 120:
                    time.sleep(0.02)
                hups.append(time.monotonic() - h0)
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
            srv.stdin.write("REPORT\n")
            srv.stdin.flush()
            gaps = json.loads(srv.stdout.readline())
            window = time.monotonic() - t0
            with open(logpath, "rb") as f:
                f.seek(size0)
                tail = f.read()
            # each change is a line, or (a storm) counted in a summary line per table update
            changes = tail.count(b" is down (") + tail.count(b" is up (") + sum(
                int(m) for m in re.findall(rb"event storm: (\d+) real server state changes", tail))
            rss = _vmhwm_mb(d.pid)
            cpu, cpu_self = proc_cpu_children(d.pid) - cpu0, proc_cpu(d.pid) - self0
            wcpu = sum(proc_cpu(p) for p in workers_pids) - wcpu0
            rss += sum(_vmhwm_mb(p) for p in workers_pids)        # the checker processes' peaks too
            lat = {"lat": [], "errors": 0, "rows": 0}
            if reader is not None:
                try:
                    lat = json.loads(reader.communicate(timeout=seconds + 60)[0])
                except subprocess.TimeoutExpired:        # the daemon stopped answering (the old code did)
                    reader.kill()
                    reader.communicate()
                    lat = {"lat": [float("inf")], "errors": -1, "rows": 0}
        finally:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(60)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
    finally:
        stop(srv)
        if bus is not None:
            bus.close()
    if lat.get("at"):                                 # each read's wall time and latency, for a look at the slow ones
        with open(logpath + ".dbus.json", "w") as f:
            json.dump(list(zip(lat["at"], lat["lat"])), f)
    lats = sorted(lat["lat"])
    return {"reals": n, "dbus": dbus, "gap_max": gaps["gap_max"], "gap_p99": gaps["gap_p99"],
            "changes_per_s": changes / window, "hup_max": max(hups), "hup_all": hups, "rss_mb": rss,
            "hup_at": hup_at, "gap_max_end": gaps.get("gap_max_end"),
            "cpu_pct": 100 * cpu / window, "cpu_self_pct": 100 * cpu_self / window, "cpu_workers_pct": 100 * wcpu / window,
            "workers": workers, "dbus_p50": lats[len(lats) // 2] if lats else None,
            "dbus_p99": lats[int(len(lats) * 0.99)] if lats else None, "dbus_max": lats[-1] if lats else None,
            "dbus_reads": len(lats), "dbus_errors": lat["errors"], "dbus_rows": lat["rows"], "log": logpath}


def fmt_storm(r: dict) -> str:
    w = f" + {r['workers']} checker processes {r['cpu_workers_pct']:.0f} %" if r.get("workers") else ""
    d = (f"D-Bus RealServers read every 100 ms: p50 {r['dbus_p50']:.1f} ms p99 {r['dbus_p99']:.1f} ms "
         f"max {r['dbus_max']:.1f} ms ({r['dbus_reads']} reads, {r['dbus_errors']} failed, {r['dbus_rows']} rows)"
         if r["dbus"] else "no D-Bus")
    return (f"storm {r['reals']:>5} reals ({'D-Bus' if r['dbus'] else '--no-dbus'}): "
            f"{r['changes_per_s']:.0f} state changes/s; healthy reals' check gap max {r['gap_max']:.2f} s "
            f"p99 {r['gap_p99']:.2f} s (the largest ended {r.get('gap_max_end') or 0:.1f} s into the window); "
            f"SIGHUP to reloaded max {r['hup_max']:.2f} s "
            f"({', '.join(f'{h:.2f}' for h in r['hup_all'])}; sent at "
            f"{', '.join(f'{a:.1f}' for a in r.get('hup_at', []))} s); daemon CPU {r['cpu_self_pct']:.0f} % + its nft runs {r['cpu_pct'] - r['cpu_self_pct']:.0f} %"
            f"{w}; peak RSS {r['rss_mb']:.0f} MB; "
            f"{d}")


# ---- driver ----------------------------------------------------------------------------------

def start_servers(n: int, half_down: bool) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, __file__, "--serve", str(n)] + (["--half-down"] if half_down else []),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "READY":
        p.kill()
        raise SystemExit(f"server process failed to start: {line!r}")
    return p


def _stat(pid: int) -> list:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_cpu(pid: int) -> float:
    """user+system CPU seconds of a process (from /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_children(pid: int) -> float:
    """user+system CPU seconds of a process plus its waited-for children (the daemon's nft runs)."""
    f = _stat(pid)
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


def proc_sys(pid: int) -> float:
    return int(_stat(pid)[12]) / os.sysconf("SC_CLK_TCK")


def stop(p: subprocess.Popen) -> None:
    try:
        p.stdin.close()
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_checkers(n, workers, warmup, seconds, timeout) -> dict:
    p = subprocess.run([sys.executable, __file__, "--in-netns", "--check", str(n), "--workers", str(workers),
                        "--warmup", str(warmup), "--seconds", str(seconds), "--timeout", str(timeout)],
                       stdout=subprocess.PIPE, text=True, timeout=warmup + seconds + 180)
    if p.returncode != 0:
        raise SystemExit(f"checker failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    r["us_per_check"] = 1e4 * r["cpu_pct"] / max(1.0, r["checks_per_s"])
    gap = f"{r['gap_p50']:.2f}/{r['gap_p99']:.2f}s" if r["gap_p99"] is not None else "-"
    return (f"{r['reals']:>6} reals  {r['checks_per_s']:>8.0f} checks/s  cpu {r['cpu_pct']:>5.0f}%  "
            f"(kernel {r['sys_pct']:.0f}%) = {r['us_per_check']:.0f} us/check  server cpu {r.get('server_pct', 0):.0f}%  "
            f"mean ok check {r['check_ms']:.1f} ms  rss {r['rss_mb']:>6.1f} MB  up {r['up']:>6}  gap between checks of an up real p50/p99 {gap}  "
            f"parse {r['parse_s']:.2f}s  wanted_table {r['table_ms']:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reals", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2],
                    help="checker processes (reals sharded among them); tried for the largest table")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=3.0, help="checktimeout (the scenario uses 3)")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--half-down", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--check", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--storm-reals", type=int, nargs="*", default=[1000, 5000],
                    help="storm runs (half the reals flap on every check), each with and without D-Bus")
    ap.add_argument("--storm-seconds", type=float, default=20.0)
    ap.add_argument("--storm-only", action="store_true", help="only the storm runs")
    ap.add_argument("--storm-modes", default="nodbus,dbus", help="storm runs: nodbus, dbus or both (default)")
    ap.add_argument("--storm-workers", type=int, default=0,
                    help="the daemon's --check-workers (0: checks in its own event loop, the default)")
    ap.add_argument("--serve-storm", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dbus-reader", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_main(args.serve, args.half_down)
        return 0
    if args.serve_storm:
        raise_nofile()
        _serve_storm(args.serve_storm)
        return 0
    if args.dbus_reader:
        _dbus_reader(args.dbus_reader[0], float(args.dbus_reader[1]), 0.1)
        return 0
    if args.check:
        check_main(args.check, args.workers[0], args.warmup, args.seconds, args.timeout)
        return 0

    if not args.in_netns:
        # everything (servers, checkers, LWP) runs in a private network namespace: the listeners
        # bind 0.0.0.0 there without exposing anything, and the host's connection table stays clean
        cmd = ["unshare", "-n", "--", sys.executable, __file__, "--in-netns"] + sys.argv[1:]
        return subprocess.call(cmd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    raise_nofile()
    if args.storm_only:
        return storms(args)
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} checktimeout={args.timeout:g}s "
          "checkinterval=1s, http negotiate GET /.test.html expecting OK; servers in their own process")
    results = {}
    largest = max(args.reals)
    for n in args.reals:
        for half in (False, True):
            srv = start_servers(n, half)
            try:
                if not half and n == largest:
                    seq = asyncio.run(_sequential_latency(300))
                    lwp = lwp_latency(300)
                for w in (args.workers if n == largest else [1]):
                    c0 = proc_cpu(srv.pid)
                    r = run_checkers(n, w, args.warmup, args.seconds, args.timeout)
                    r["server_pct"] = 100 * (proc_cpu(srv.pid) - c0) / (args.warmup + args.seconds + 1)
                    r["load"] = os.getloadavg()[0]
                    results[(n, half, w)] = r
                    print(f"{'half hung' if half else 'all up   '} workers={w}  {fmt(r)}  load {r['load']:.1f}",
                          flush=True)
            finally:
                stop(srv)

    print(f"\nsequential per-check latency at {largest} reals: hadaemon checker {seq * 1000:.2f} ms"
          + (f", ldirectord's LWP client {lwp * 1000:.2f} ms (measured, 300 GETs one after another)"
             if lwp else ", LWP not measurable"))
    per = lwp or seq
    print(f"ldirectord's sequential loop for {largest} reals (sum of per-check latencies, measured "
          f"latency x reals): all up {largest * per:.1f} s per round; half hung "
          f"{largest / 2 * per + largest / 2 * args.timeout:.0f} s per round "
          f"(each hung real costs its {args.timeout:g} s timeout); plus checkinterval=1 s between rounds")

    costs = [r["us_per_check"] for (n, h, w), r in results.items() if not h]
    cost = sorted(costs)[len(costs) // 2]
    print(f"checker CPU per check (all up, median over runs): {cost:.0f} us -> one dedicated core "
          f"sustains about {1e6 / cost:.0f} checks/s; {largest} reals each second needs "
          f"{largest * cost / 1e6:.1f} cores (this host: {os.cpu_count()} cores shared with the real "
          "servers' process and other load)")
    best_w = max(args.workers, key=lambda w: results[(largest, False, w)]["checks_per_s"])
    up, half = results[(largest, False, best_w)], results[(largest, True, best_w)]
    result = (f"checks_per_s={up['checks_per_s']:.0f} checks_per_s_half_down={half['checks_per_s']:.0f} "
              f"cpu_pct={up['cpu_pct']:.0f} rss_mb={up['rss_mb']:.1f} workers={best_w} reals={largest} "
              f"us_per_check={cost:.0f} ldirectord_round_s={largest * per:.1f} load={up['load']:.1f}")
    return storms(args, result)


def storms(args, result: str = "") -> int:
    """The storm runs; the RESULT line's storm_* figures are the largest run with D-Bus."""
    import tempfile
    if not args.storm_reals:
        print(f"RESULT {result}".strip())
        return 0
    workdir = tempfile.mkdtemp(prefix="hadaemon-storm-")
    print(f"\nstorm: the ha-ldirectord daemon (nft backend in this namespace), checkinterval 1 s, failurecount 1, "
          f"half the reals flap on every check, {args.storm_seconds:g} s window; logs in {workdir}", flush=True)
    runs = {}
    for n in args.storm_reals:
        for dbus in [m == "dbus" for m in args.storm_modes.split(",")]:
            r = runs[(n, dbus)] = run_storm(n, dbus, 8.0, args.storm_seconds, workdir, args.storm_workers)
            r["load"] = os.getloadavg()[0]
            print(fmt_storm(r) + f"  load {r['load']:.1f}", flush=True)
    n = max(args.storm_reals)
    big, nod = runs.get((n, True)), runs.get((n, False))
    if big is None or nod is None:                    # one mode: the same keys as the full run's
        one = big or nod
        print(f"RESULT {result} storm_reals={n} storm_workers={args.storm_workers} "
              f"storm_gap_max_s{'' if big else '_nodbus'}={one['gap_max']:.2f} "
              + (f"storm_dbus_p99_ms={one['dbus_p99']:.1f} " if big else "")
              + f"storm_rss_mb{'' if big else '_nodbus'}={one['rss_mb']:.0f} storm_hup_max_s={one['hup_max']:.2f} "
              f"storm_changes_per_s={one['changes_per_s']:.0f} storm_load={one['load']:.1f}".replace("  ", " "))
        return 0
    print(f"RESULT {result} storm_reals={n} storm_workers={args.storm_workers} storm_gap_max_s={big['gap_max']:.2f} "
          f"storm_dbus_p99_ms={big['dbus_p99']:.1f} storm_rss_mb={big['rss_mb']:.0f} "
          f"storm_hup_max_s={big['hup_max']:.2f} storm_gap_max_s_nodbus={nod['gap_max']:.2f} "
          f"storm_rss_mb_nodbus={nod['rss_mb']:.0f} storm_changes_per_s={big['changes_per_s']:.0f} "
          f"storm_load={big['load']:.1f}".replace("  ", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
