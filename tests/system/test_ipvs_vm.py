"""The IPVS backend against a real kernel IPVS table, in a QEMU VM (Debian's kernel, -accel tcg).

Inside the VM (tests/system/ipvs_vm_steps.py): a pre-existing table made with ipvsadm is adopted, the
scenario-like config below is programmed, a diff (weight change, quiescent real, removals) is applied,
then cleanstop. Each stage's backend read() and `ipvsadm -Ln --thresholds` output come back here and are
compared with the tables this file expects.
"""
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from hadaemon.core.director.lvs_table import (
    Destination, VirtualService, format_table, make_table, table_from_data,
)

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=yes
virtual=192.168.18.100:80
\treal=192.168.18.191:80 gate
\treal=192.168.18.192:80 gate 3
\treal=10.0.0.5:8080 masq 2
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest=".test.html"
\treceive="OK"
\tvirtualhost=www.tuchao.com
\tscheduler=wrr
\tprotocol=tcp
\tchecktype=negotiate
\tcheckport=80
virtual=192.168.18.100:443
\treal=192.168.18.191:443 gate
\treal=192.168.18.192:443 gate 1 l:20 u:100
\tservice=https
\tscheduler=wlc
\tpersistent=600
\tnetmask=255.255.255.0
\tprotocol=tcp
\tchecktype=connect
virtual=7
\treal=192.168.18.191 gate
\treal=192.168.18.192 gate 2
\tscheduler=sh
\tschedflags=sh-port
\tprotocol=fwm
\tchecktype=ping
virtual=192.168.18.100:53
\treal=192.168.18.191:53 gate
\treal=192.168.18.192:53 ipip
\tservice=dns
\tscheduler=rr
\tprotocol=udp
virtual6=[2001:db8::100]:80
\treal6=[2001:db8::1]:80 gate 2
\treal6=[2001:db8::2]:80 masq
\tscheduler=wlc
\tpersistent=60
\tnetmask=64
\tprotocol=tcp
\tchecktype=connect
"""

# The table that existed before the director started (made with ipvsadm): one of our services with a
# wrong weight and a missing real, and a service that is not ours.
PRE_EXISTING = """
ipvsadm -A -t 192.168.18.100:80 -s wrr
ipvsadm -a -t 192.168.18.100:80 -r 192.168.18.191:80 -g -w 1
ipvsadm -a -t 192.168.18.100:80 -r 192.168.18.192:80 -g -w 7
ipvsadm -A -t 10.9.9.9:22 -s rr
ipvsadm -a -t 10.9.9.9:22 -r 10.9.9.10:22 -m -w 1
"""

WEB = VirtualService("tcp", "192.168.18.100", 80, scheduler="wrr")
HTTPS = VirtualService("tcp", "192.168.18.100", 443, scheduler="wlc", persistent=600, netmask="255.255.255.0")
FWM = VirtualService("fwm", fwmark=7, scheduler="sh", flags=("sh-port",))
DNS = VirtualService("udp", "192.168.18.100", 53, scheduler="rr")
V6 = VirtualService("tcp", "2001:db8::100", 80, scheduler="wlc", persistent=60, netmask="64")
V6_DESTS = [Destination("2001:db8::1", 80, "gate", 2), Destination("2001:db8::2", 80, "masq", 1)]
FOREIGN = (VirtualService("tcp", "10.9.9.9", 22, scheduler="rr"), [Destination("10.9.9.10", 22, "masq", 1)])

EXPECTED = {
    "adopted": make_table([
        (WEB, [Destination("192.168.18.191", 80, "gate", 1), Destination("192.168.18.192", 80, "gate", 7)]),
        FOREIGN]),
    "programmed": make_table([
        (WEB, [Destination("192.168.18.191", 80, "gate", 1), Destination("192.168.18.192", 80, "gate", 3),
               Destination("10.0.0.5", 8080, "masq", 2)]),
        (HTTPS, [Destination("192.168.18.191", 443, "gate", 1),
                 Destination("192.168.18.192", 443, "gate", 1, lower=20, upper=100)]),
        (FWM, [Destination("192.168.18.191", 0, "gate", 1), Destination("192.168.18.192", 0, "gate", 2)]),
        (DNS, [Destination("192.168.18.191", 53, "gate", 1), Destination("192.168.18.192", 53, "ipip", 1)]),
        (V6, V6_DESTS),
        FOREIGN]),
    "changed": make_table([
        (WEB, [Destination("192.168.18.191", 80, "gate", 0), Destination("192.168.18.192", 80, "gate", 5)]),
        (HTTPS, [Destination("192.168.18.191", 443, "gate", 1),
                 Destination("192.168.18.192", 443, "gate", 1, lower=20, upper=100)]),
        (FWM, [Destination("192.168.18.191", 0, "gate", 1), Destination("192.168.18.192", 0, "gate", 2)]),
        (V6, V6_DESTS),
        FOREIGN]),
    "cleanstop": make_table([FOREIGN]),
}

_FWD = {"Route": "gate", "Masq": "masq", "Tunnel": "ipip", "Local": "masq"}


def parse_ipvsadm(text: str, thresholds: str = ""):
    """`ipvsadm -Ln` output (and `ipvsadm -Ln --thresholds` output, which has the thresholds but not
    the forwarding method and weight) -> Table: an independent reading of the kernel table."""
    limits = [line.split()[2:4] for line in thresholds.splitlines()
              if line.startswith("  -> ") and "RemoteAddress" not in line]
    entries = []
    for line in text.splitlines():
        if line.startswith(("IP Virtual Server", "Prot ", "  -> RemoteAddress")) or not line.strip():
            continue
        if line.startswith("  -> "):
            f = line.split()
            addr, port = f[1].rsplit(":", 1)
            upper, lower = limits.pop(0) if thresholds else (0, 0)
            entries[-1][1].append(Destination(addr.strip("[]"), int(port), _FWD[f[2]], int(f[3]),
                                              upper=int(upper), lower=int(lower)))
            continue
        m = re.match(r"(TCP|UDP|FWM)\s+(\S+)(\s+IPv6)?\s+(\S+)(.*)$", line)
        assert m, f"unexpected ipvsadm line: {line!r}"
        proto, where, v6, sched, rest = m.groups()
        flags = re.search(r"\(([^)]*)\)", rest)
        persistent = re.search(r"persistent (\d+)", rest)
        mask = re.search(r"mask (\S+)", rest)
        common = dict(scheduler=sched, persistent=int(persistent.group(1)) if persistent else None,
                      netmask=mask.group(1) if mask else None,
                      flags=tuple(flags.group(1).split(",")) if flags else ()
                      + (("ops",) if re.search(r"\bops\b", rest) else ()))
        if proto == "FWM":
            svc = VirtualService("fwm", fwmark=int(where), family="inet6" if v6 else "inet", **common)
        else:
            addr, port = where.rsplit(":", 1)
            svc = VirtualService(proto.lower(), addr.strip("[]"), int(port), **common)
        entries.append((svc, []))
    return make_table(entries)


def test_parse_ipvsadm_reads_what_ipvsadm_prints():
    text = ("IP Virtual Server version 1.2.1 (size=4096)\n"
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            "TCP  192.168.18.100:443 wlc persistent 600 mask 255.255.255.0\n"
            "  -> 192.168.18.192:443            Route   1      0          0\n"
            "FWM  7 sh (sh-port)\n")
    thresholds = ("IP Virtual Server version 1.2.1 (size=4096)\n"
                  "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n"
                  "  -> RemoteAddress:Port\n"
                  "TCP  192.168.18.100:443 wlc persistent 600 mask 255.255.255.0\n"
                  "  -> 192.168.18.192:443            100        20         0          0\n"
                  "FWM  7 sh (sh-port)\n")
    t = parse_ipvsadm(text, thresholds)
    assert t[HTTPS.key].service == HTTPS
    assert t[HTTPS.key].dests["192.168.18.192:443"] == Destination("192.168.18.192", 443, "gate", 1, 20, 100)
    assert t[FWM.key].service == FWM


def _run_in_vm(config_text: str, script, tools=("ipvsadm",), timeout=600):
    """Boot the VM with `config_text` written to an ldirectord.cf it can read and run
    `script(python, cfg)` (a shell string) there; skips when QEMU or a needed tool is missing.
    The file lives under /var/tmp: the VM mounts tmpfs over /tmp and /run."""
    from hadaemon.testing import qemu

    reason = qemu.available()
    if reason:
        pytest.skip(reason)
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed")
    with tempfile.TemporaryDirectory(prefix="hd-ipvs-vm-", dir="/var/tmp") as tmp:
        cfg = Path(tmp) / "ldirectord.cf"
        cfg.write_text(config_text)
        return qemu.VM().run(script(REPO / ".venv" / "bin" / "python", cfg), timeout=timeout)


def test_ipvs_backend_in_vm():
    result = _run_in_vm(CONFIG, lambda python, cfg: PRE_EXISTING + f"{python} {REPO}/tests/system/ipvs_vm_steps.py {cfg}\n")
    print(f"VM boot {result.boot_seconds:.1f} s, whole run {result.seconds:.1f} s")
    assert result.returncode == 0, result.output + result.console[-2000:]
    data = json.loads(result.output.split("JSON", 1)[1])
    for stage, expected in EXPECTED.items():
        read = table_from_data(data[stage]["read"])
        listed = parse_ipvsadm(data[stage]["ipvsadm"], data[stage]["thresholds"])
        print(f"--- {stage}: {len(data[stage]['ops'])} ops\n{data[stage]['ipvsadm']}")
        assert read == expected, f"{stage}: backend read()\n{format_table(read)}expected\n{format_table(expected)}"
        assert listed == expected, f"{stage}: ipvsadm -Ln\n{data[stage]['ipvsadm']}expected\n{format_table(expected)}"
    programmed = data["programmed"]["ops"]
    # adoption: our existing service is kept (no AddService for it), only its wrong weight is edited
    assert "AddService tcp:192.168.18.100:80" not in programmed
    assert "EditDest tcp:192.168.18.100:80 192.168.18.192:80" in programmed
    assert not any("10.9.9.9" in op for stage in data.values() for op in stage["ops"])
    assert data["cleanstop"]["ops"][-1].startswith("DelService")


DAEMON_CONFIG = """\
checkinterval=1
checktimeout=1
quiescent=yes
virtual=192.168.18.100:80
\treal=192.168.18.191:80 gate
\treal=192.168.18.192:80 gate 3
\tfallback=127.0.0.1:80 gate
\tscheduler=wrr
\tprotocol=tcp
\tchecktype=on
virtual=10.0.2.100:80
\treal=127.0.0.1:9 masq 2
\tscheduler=rr
\tpersistent=300
\tchecktype=connect
"""

# In the VM: a table made with ipvsadm (ours with a wrong weight, and a foreign one), then the daemon.
DAEMON_SCRIPT = """
ipvsadm -A -t 192.168.18.100:80 -s wrr
ipvsadm -a -t 192.168.18.100:80 -r 192.168.18.191:80 -g -w 5
ipvsadm -A -t 10.9.9.9:22 -s rr
{python} -m hadaemon.daemons.director --backend ipvs --no-dbus --pidfile /run/ld.pid {config} 2>/run/ld.log &
i=0
while [ $i -lt 1800 ] && ! grep -q 'real server 127.0.0.1:9 of tcp:10.0.2.100:80 failed\\|started' /run/ld.log; do
  sleep 0.1; i=$((i+1))
done
sleep 3
echo "=== running"
ipvsadm -Ln
kill -TERM $(cat /run/ld.pid)
i=0
while [ $i -lt 300 ] && [ -e /run/ld.pid ]; do sleep 0.1; i=$((i+1)); done
echo "=== stopped"
ipvsadm -Ln
echo "=== log"
cat /run/ld.log
"""


def test_director_daemon_with_ipvs_in_vm():
    """ha-ldirectord itself on the VM's IPVS: adopts an existing table, programs checktype=on reals with
    their weights and an unreachable real at weight 0 (quiescent), leaves a foreign service alone, and
    removes its services on SIGTERM (cleanstop)."""
    result = _run_in_vm(DAEMON_CONFIG,
                        lambda python, cfg: f"cd {REPO}\n" + DAEMON_SCRIPT.format(python=python, config=cfg))
    print(f"VM boot {result.boot_seconds:.1f} s, whole run {result.seconds:.1f} s\n{result.output}")
    assert result.returncode == 0, result.output + result.console[-2000:]
    running = result.output.split("=== running", 1)[1].split("=== stopped", 1)[0]
    stopped = result.output.split("=== stopped", 1)[1].split("=== log", 1)[0]
    web = VirtualService("tcp", "192.168.18.100", 80, scheduler="wrr")
    other = VirtualService("tcp", "10.0.2.100", 80, scheduler="rr", persistent=300)
    foreign = VirtualService("tcp", "10.9.9.9", 22, scheduler="rr")
    assert parse_ipvsadm(running) == make_table([
        (web, [Destination("192.168.18.191", 80, "gate", 1), Destination("192.168.18.192", 80, "gate", 3)]),
        (other, [Destination("127.0.0.1", 9, "masq", 0)]),
        (foreign, [])])
    assert parse_ipvsadm(stopped) == make_table([(foreign, [])])
    log = result.output.split("=== log", 1)[1]
    assert "adopted 1 real server" in log and "cleanstop: removed 2 virtual service(s)" in log


DR_CONFIG = """\
checkinterval=1
checktimeout=1
quiescent=yes
virtual=10.9.0.100:80
\treal=10.9.0.11:80 gate
\treal=10.9.0.12:80 gate 3
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest=".test.html"
\treceive="OK"
\tscheduler=wrr
\tprotocol=tcp
\tchecktype=negotiate
"""

# In the VM: namespaces on a bridge (dir, rs1, rs2, client); real servers set up for LVS-DR (VIP on lo,
# arp_ignore/arp_announce) serving with busybox httpd; ha-ldirectord with IPVS in the dir namespace.
DR_SCRIPT = r"""
echo "setup starts at VM uptime $(cut -d" " -f1 /proc/uptime) s"
ip link add br0 type bridge
ip link set br0 up
mk() {
  ip netns add $1
  ip link add v-$1 type veth peer name eth0 netns $1
  ip link set v-$1 master br0 up
  ip -n $1 link set lo up
  ip -n $1 addr add $2/24 dev eth0
  ip -n $1 link set eth0 up
}
mk dir 10.9.0.1; mk rs1 10.9.0.11; mk rs2 10.9.0.12; mk client 10.9.0.50
ip -n dir addr add 10.9.0.100/24 dev eth0
for rs in rs1 rs2; do
  ip netns exec $rs sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
     net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.lo.arp_announce=2
  ip -n $rs addr add 10.9.0.100/32 dev lo
  mkdir -p /tmp/www-$rs
  echo $rs > /tmp/www-$rs/index.html
  echo OK > /tmp/www-$rs/.test.html
  ip netns exec $rs busybox httpd -p 80 -h /tmp/www-$rs
done
mkdir -p /tmp/www-dir
echo "Server is repairing" > /tmp/www-dir/index.html
ip netns exec dir busybox httpd -p 80 -h /tmp/www-dir
ip netns exec dir {python} -m hadaemon.daemons.director --backend ipvs --no-dbus --pidfile /run/ld.pid {config} \
   2>/run/ld.log &
wait_for() {  # wait_for PATTERN: until `ipvsadm -Ln` in dir matches (bounded)
  i=0
  while [ $i -lt 1800 ] && ! ip netns exec dir ipvsadm -Ln | tr -s ' ' | grep -q "$1"; do sleep 0.1; i=$((i+1)); done
}
requests() {
  for i in $(seq $1); do ip netns exec client curl -s -m 3 http://10.9.0.100/ || echo ERR; done \
    | sort | uniq -c | tr -s ' ' | tr '\n' ';'
  echo
}
wait_for "10.9.0.12:80 Route 3"
echo "=== up (VM uptime $(cut -d" " -f1 /proc/uptime) s)"; ip netns exec dir ipvsadm -Ln
echo "=== requests-up $(requests 20)"
echo broken > /tmp/www-rs1/.test.html
wait_for "10.9.0.11:80 Route 0"
echo "=== requests-rs1-down $(requests 4)"
echo broken > /tmp/www-rs2/.test.html
wait_for "127.0.0.1:80"
echo "=== fallback"; ip netns exec dir ipvsadm -Ln
echo "=== requests-all-down $(requests 2)"
echo OK > /tmp/www-rs1/.test.html
echo OK > /tmp/www-rs2/.test.html
wait_for "10.9.0.12:80 Route 3"
echo "=== requests-recovered $(requests 4)"
kill -TERM $(cat /run/ld.pid)
i=0; while [ $i -lt 300 ] && [ -e /run/ld.pid ]; do sleep 0.1; i=$((i+1)); done
echo "=== stopped (VM uptime $(cut -d" " -f1 /proc/uptime) s)"; ip netns exec dir ipvsadm -Ln
echo "=== log"; cat /run/ld.log
"""


def _counts(output: str, marker: str) -> dict:
    line = output.split(f"=== {marker} ", 1)[1].split("\n", 1)[0]
    return {name: int(n) for n, name in (item.strip().split(" ", 1) for item in line.strip(";").split(";")
                                         if item.strip())}


def test_lvs_dr_through_ipvs_in_vm():
    """Experiment 2's data path on real IPVS: LVS-DR real servers (VIP on lo, ARP sysctls) behind
    ha-ldirectord; the client's requests go 1:3, a failing negotiate check quiesces a real, the
    fallback answers when both are down, recovery, cleanstop."""
    result = _run_in_vm(
        DR_CONFIG,
        lambda python, cfg: f"cd {REPO}\n" + DR_SCRIPT.replace("{python}", str(python)).replace("{config}", str(cfg)),
        tools=("ipvsadm", "curl"), timeout=900)
    out = result.output
    print(f"VM boot {result.boot_seconds:.1f} s, whole run {result.seconds:.1f} s\n{out}")
    assert result.returncode == 0, out + result.console[-2000:]
    assert _counts(out, "requests-up") == {"rs1": 5, "rs2": 15}      # wrr 1:3, every request a new connection
    assert _counts(out, "requests-rs1-down") == {"rs2": 4}
    assert _counts(out, "requests-all-down") == {"Server is repairing": 2}
    assert _counts(out, "requests-recovered") == {"rs1": 1, "rs2": 3}
    fallback = parse_ipvsadm(out.split("=== fallback", 1)[1].split("===", 1)[0])
    assert {k: d.weight for k, d in fallback["tcp:10.9.0.100:80"].dests.items()} == {
        "10.9.0.11:80": 0, "10.9.0.12:80": 0, "127.0.0.1:80": 1}
    assert parse_ipvsadm(out.split("=== stopped", 1)[1].split("\n", 1)[1].split("===", 1)[0]) == {}
