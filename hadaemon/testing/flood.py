"""Hostile traffic for ha-heartbeat tests and the bench: floods, replays, forged packets, heartbeat gaps."""
from __future__ import annotations

import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime
from typing import Dict, Iterable, List, Sequence, Tuple

__all__ = ["FLOODER", "NATIVE_FLOODER", "flood", "send_datagrams", "capture_payloads", "heartbeat_gaps", "rss_mb",
           "log_events", "native_flooder"]

# Sends datagrams to ADDR:PORT as fast as it can for SECONDS from PROCS processes (one socket each).
# mode "replay": the hex datagrams of FILE over and over; "random": a pool of random datagrams, half of
# them with the protocol's magic, version and key index 1 (so the receiver must compute a digest).
# SPOOF ("IP:PORT", optional): datagrams carry that source address (raw socket, IP header built here).
# Prints "sent=N seconds=S".
FLOODER = r"""
import os, random, socket, struct, sys, time
mode, path, addr, port, seconds, procs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
    float(sys.argv[5]), int(sys.argv[6])
spoof = sys.argv[7] if len(sys.argv) > 7 else ""
replay = [bytes.fromhex(x) for x in open(path).read().split()] if mode == "replay" else None

def forge(payload):
    sip, sport = spoof.rsplit(":", 1)
    udp = struct.pack("!HHHH", int(sport), port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(sip),
                     socket.inet_aton(addr))
    return ip + udp    # the kernel fills in the IP checksum

def run(k):
    if spoof:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    rnd = random.Random(k)
    pool = replay or [(b"HD\x01\x01" if i % 2 else b"") + rnd.randbytes(rnd.randint(40, 160)) for i in range(4096)]
    pool = (pool * (256 // len(pool) + 1))[:max(256, len(pool))]
    if spoof:
        pool = [forge(d) for d in pool]
    send, dest, n = s.sendto, (addr, 0 if spoof else port), 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for d in pool[:256]:
            try:
                send(d, dest)
                n += 1
            except OSError:
                pass
        pool = pool[256:] + pool[:256]
    return n

t0 = time.monotonic()
pipes = []
for k in range(procs):
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(run(k)).encode())
        os._exit(0)
    os.close(w)
    pipes.append(r)
total = 0
for r in pipes:
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    total += int(data or b"0")
for _ in pipes:
    os.wait()
print(f"sent={total} seconds={time.monotonic() - t0:.3f}")
"""

# The same floods at the rate the machine's kernel takes them: C, sendmmsg(2) in batches of 256 (a Python
# sendto loop makes about a tenth of that). flood ADDR PORT SECONDS FILE: the hex datagrams of FILE (at most
# 4096) over and over; prints "sent=N". A fifth argument "raw": the datagrams are whole IPv4 packets (a
# forged source: see _forge), sent on a raw socket.
NATIVE_FLOODER = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
enum { POOL = 4096, BATCH = 256, MAXLEN = 2048 };
static unsigned char pool[POOL][MAXLEN];
static size_t lens[POOL];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: hbflood ADDR PORT SECONDS FILE [raw]\n"); return 2; }
    int raw = argc == 6 && !strcmp(argv[5], "raw");
    FILE *f = fopen(argv[4], "r");
    if (!f) { perror(argv[4]); return 2; }
    static char line[2 * MAXLEN + 2];
    int n = 0;
    while (n < POOL && fgets(line, sizeof line, f)) {
        if (!strchr(line, '\n') && !feof(f)) { fprintf(stderr, "%s: a datagram over %d bytes\n", argv[4], MAXLEN); return 2; }
        size_t len = strcspn(line, "\r\n") / 2;
        if (!len) continue;
        for (size_t i = 0; i < len; i++) sscanf(line + 2 * i, "%2hhx", &pool[n][i]);
        lens[n++] = len;
    }
    fclose(f);
    if (!n) { fprintf(stderr, "%s: no datagrams\n", argv[4]); return 2; }
    int s = raw ? socket(AF_INET, SOCK_RAW, IPPROTO_RAW) : socket(AF_INET, SOCK_DGRAM, 0), one = 1, size = 1 << 22;
    if (s < 0) { perror("socket"); return 2; }
    setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = raw ? 0 : htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "%s: not an IPv4 address\n", argv[1]); return 2; }
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    double end = now() + atof(argv[3]);
    long sent = 0;
    int next = 0;
    while (now() < end) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = pool[next]; iov[i].iov_len = lens[next];
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &to; msgs[i].msg_hdr.msg_namelen = sizeof to;
            next = (next + 1) % n;
        }
        int r = sendmmsg(s, msgs, BATCH, 0);
        if (r > 0) sent += r;
    }
    printf("sent=%ld\n", sent);
    return 0;
}
"""

# Sends each hex datagram of FILE to ADDR:PORT, PER_SECOND of them per second (0: as fast as possible).
SENDER = r"""
import socket, sys, time
path, addr, port, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
n, t0 = 0, time.monotonic()
for line in open(path):
    line = line.strip()
    if not line:
        continue
    s.sendto(bytes.fromhex(line), (addr, port))
    n += 1
    if rate > 0:
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elif n % 50 == 0:
        time.sleep(0.001)
print(n)
"""


NATIVE_MAXLEN = 2048   # the longest datagram (a forged one: its IPv4 and UDP headers too) NATIVE_FLOODER takes


def native_flooder(cluster) -> str:
    """NATIVE_FLOODER compiled (gcc, from scripts/setup) in the cluster's workdir; its path. RuntimeError
    with gcc's own words when it cannot be compiled (no half-written binary is left to be run later)."""
    exe = cluster.workdir / "hbflood"
    if not exe.exists():
        src, tmp = cluster.workdir / "hbflood.c", cluster.workdir / f"hbflood.{os.getpid()}.new"
        src.write_text(NATIVE_FLOODER)
        why = ""
        try:
            cp = subprocess.run(["gcc", "-O2", "-o", str(tmp), str(src)], capture_output=True, text=True,
                                timeout=120)
            if cp.returncode != 0:
                why = f"gcc exited {cp.returncode}: {(cp.stderr or cp.stdout).strip()[-1500:]}"
        except FileNotFoundError:
            why = "no gcc on PATH (scripts/setup installs it)"
        except subprocess.TimeoutExpired:
            why = "gcc took over 120 s"
        if why:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"cannot compile the native flooder {src} "
                               f"(hadaemon.testing.flood.NATIVE_FLOODER): {why}")
        os.rename(tmp, exe)
    return str(exe)


def _forge(payload: bytes, spoof: str, addr: str, port: int) -> bytes:
    """An IPv4/UDP packet carrying `payload` from `spoof` ("IP:PORT") to addr:port (as FLOODER's forge)."""
    sip, sport = spoof.rsplit(":", 1)
    udp = struct.pack("!HHHH", int(sport), port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(sip),
                     socket.inet_aton(addr))
    return ip + udp    # the kernel fills in the IP checksum


def random_pool(seed: int, count: int = 4096) -> List[bytes]:
    """FLOODER's random datagrams: half of them with the protocol's magic, version and key index 1."""
    rnd = random.Random(seed)
    return [(b"HD\x01\x01" if i % 2 else b"") + rnd.randbytes(rnd.randint(40, 160)) for i in range(count)]


def flood(cluster, src: str, mode: str, addr: str, seconds: float, datagrams: Sequence[bytes] = (),
          procs: int = 2, port: int = 694, spoof: str = "", native: bool = False) -> Tuple[int, float]:
    """Flood addr:port from member `src` (see FLOODER; spoof "IP:PORT" forges the source); returns
    (datagrams sent, seconds taken). native: `procs` NATIVE_FLOODER processes (sendmmsg)."""
    if native:
        pools = []
        for k in range(procs):
            pool = list(datagrams) if mode == "replay" else random_pool(k)
            if spoof:
                pool = [_forge(d, spoof, addr, port) for d in pool]
            longest = max(map(len, pool), default=0)
            if longest > NATIVE_MAXLEN:
                raise ValueError(f"the native flooder takes datagrams of at most {NATIVE_MAXLEN} bytes"
                                 f"{' (with the forged IPv4 and UDP headers)' if spoof else ''}: one has {longest}")
            pools.append(pool)
        exe = native_flooder(cluster)
        paths = []
        for k, pool in enumerate(pools):
            path = cluster.workdir / f"flood-{time.monotonic_ns()}-{k}.hex"
            path.write_text("\n".join(d.hex() for d in pool) + "\n")
            paths.append(path)
        t0 = time.monotonic()
        runs = []
        try:
            for path in paths:   # a name per run: a Proc's log gathers every run of the same name
                runs.append(cluster.spawn(src, [exe, addr, str(port), str(seconds), str(path)]
                                          + (["raw"] if spoof else []), name=path.stem))
            total = 0
            for p in runs:
                code = p.wait(seconds + 60)
                m = re.search(r"sent=(\d+)", p.output())
                if code != 0 or not m:
                    raise RuntimeError(f"native flooder {p.name} failed "
                                       f"({'still running' if code is None else f'exit {code}'}): {p.output()[-500:]}")
                total += int(m.group(1))
        finally:
            for p in runs:   # a run that failed does not leave the others flooding (ended by PID)
                if p.alive():
                    p.terminate()
        return total, time.monotonic() - t0
    path = cluster.workdir / f"flood-{time.monotonic_ns()}.hex"
    path.write_text("\n".join(d.hex() for d in datagrams) + "\n")
    cp = cluster.run(src, [sys.executable, "-c", FLOODER, mode, str(path), addr, str(port), str(seconds),
                           str(procs)] + ([spoof] if spoof else []), check=True, timeout=seconds + 60)
    m = re.search(r"sent=(\d+) seconds=([\d.]+)", cp.stdout)
    return int(m.group(1)), float(m.group(2))


def send_datagrams(cluster, src: str, datagrams: Iterable[bytes], addr: str, per_second: float = 0,
                   port: int = 694) -> int:
    """Send each datagram once from member `src` (per_second: paced); returns how many were sent."""
    path = cluster.workdir / f"send-{time.monotonic_ns()}.hex"
    path.write_text("\n".join(d.hex() for d in datagrams) + "\n")
    cp = cluster.run(src, [sys.executable, "-c", SENDER, str(path), addr, str(port), str(per_second)],
                     check=True, timeout=600)
    return int(cp.stdout.strip())


def capture_payloads(cluster, at: str, src: str, seconds: float, port: int = 694) -> List[bytes]:
    """The UDP payloads member `at` receives from member `src` on `port` during `seconds` (tcpdump)."""
    from scapy.all import UDP

    with cluster.tcpdump(at, f"udp port {port} and src host {cluster.addr(src)}") as cap:
        time.sleep(seconds)
    return [bytes(p[UDP].payload) for p in cap.packets() if UDP in p]


_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ha-heartbeat\[\d+\] \w+: "
_HB = re.compile("^" + _STAMP + r"heartbeat from (\S+) on (\S+) ")
_EVENT = re.compile("^" + _STAMP + r"node (\S+)(?: is (dead|up|warn)|: no heartbeat for)")


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def heartbeat_gaps(log_text: str, since: float = 0.0, until: float = float("inf")) -> Dict[str, List[float]]:
    """{peer: [seconds between consecutive heartbeats accepted from it]} from a daemon's debug log
    (lines "heartbeat from NODE on LINK ..."), counting heartbeats timestamped within [since, until]."""
    last: Dict[str, float] = {}
    gaps: Dict[str, List[float]] = {}
    for line in log_text.splitlines():
        m = _HB.match(line)
        if not m:
            continue
        t = _ts(m.group(1))
        if t < since or t > until:
            continue
        node = m.group(2)
        if node in last:
            gaps.setdefault(node, []).append(t - last[node])
        last[node] = t
    return gaps


def log_events(log_text: str, since: float = 0.0) -> List[Tuple[float, str, str]]:
    """[(time, node, "dead"|"up"|"warn")] state events of a daemon's log at or after `since`."""
    out = []
    for line in log_text.splitlines():
        m = _EVENT.match(line)
        if m and _ts(m.group(1)) >= since:
            out.append((_ts(m.group(1)), m.group(2), m.group(3) or "warn"))
    return out


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
