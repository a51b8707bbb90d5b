"""ldirectord.cf parsing: the model, ldirectord's defaults and messages, and ldirectord itself as oracle."""

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hadaemon.core.errors import ConfigError
from hadaemon.core.director.config import Resolver, check_port, parse_config, table_port
from hadaemon.io.director_config import load_config, system_resolver

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "ldirectord"
SHARED_FILES = sorted(SHARED.glob("ldirectord.cf.example")) + sorted(SHARED.glob("derived/*.cf"))
LDIRECTORD = "/usr/sbin/ldirectord"

SCENARIO = """\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=yes
virtual=192.168.18.100:80
        real=192.168.18.191:80 gate
        real=192.168.18.192:80 gate 3
        fallback=127.0.0.1:80 gate
        service=http
        request=".test.html"
        receive="OK"
        virtualhost=www.tuchao.com
        scheduler=wrr
        protocol=tcp
        checktype=negotiate
        checkport=80
"""


def oracle(path: str):
    """Run the real ldirectord on a file in parse-only fashion (`status` parses the config first).

    Returns None when it accepts the file, else (line, message)."""
    p = subprocess.run([LDIRECTORD, "-d", path, "status"], capture_output=True, text=True, timeout=60,
                       cwd="/tmp")
    if p.returncode == 3:
        return None
    out = p.stdout + p.stderr
    m = re.search(r"Error \[\d+\] reading file .* at line (\d+): (.*?)\n(DEBUG|Exiting)", out, re.S)
    assert m and p.returncode == 2, f"unexpected ldirectord output rc={p.returncode}: {out}"
    return int(m.group(1)), m.group(2)


def ours(path: str):
    try:
        load_config(path)
        return None
    except ConfigError as e:
        return e.line, e.message


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


need_oracle = pytest.mark.skipif(not os.access(LDIRECTORD, os.X_OK), reason="ldirectord not installed")


# ---- the scenario's file ----------------------------------------------------

def test_scenario_file_model():
    c = parse_config(SCENARIO, "ldirectord.cf")
    assert c.globals.checktimeout == 3 and c.globals.checkinterval == 1
    assert c.globals.autoreload and c.globals.quiescent
    (v,) = c.virtuals
    assert v.key == "tcp:192.168.18.100:80"
    assert (v.protocol, v.address, v.port, v.fwmark, v.family) == ("tcp", "192.168.18.100", 80, None, 4)
    assert [(r.address, r.port, r.method, r.weight) for r in v.reals] == [
        ("192.168.18.191", 80, "gate", 1), ("192.168.18.192", 80, "gate", 3)]
    assert (v.fallback.address, v.fallback.port, v.fallback.method) == ("127.0.0.1", 80, "gate")
    assert v.service == "http" and v.request == "/.test.html" and v.receive == "OK"
    assert v.virtualhost == "www.tuchao.com" and v.scheduler == "wrr" and v.checkport == 80
    # checktimeout=3 is also the negotiate timeout when negotiatetimeout is unset (ld_setup)
    assert v.checktimeout == 3 and v.negotiatetimeout == 3 and v.checkinterval == 1
    assert v.quiescent and v.failurecount == 1 and v.line == 5


def test_defaults_follow_the_code_not_the_manual():
    c = parse_config("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n", "x.cf")
    (v,) = c.virtuals
    assert c.globals.quiescent is False and v.quiescent is False  # manual says yes, code says no
    assert (v.checktimeout, v.negotiatetimeout, v.checkinterval) == (5, 30, 10)
    assert v.scheduler == "wrr" and v.checktype == "negotiate" and v.service == "http"
    assert v.request == "/" and v.httpmethod == "GET" and c.globals.cleanstop


def test_timeouts_default_to_each_other():
    c = parse_config("negotiatetimeout=7\nvirtual=10.0.0.1:25\n\treal=10.0.0.2 masq\n", "x.cf")
    v = c.virtuals[0]
    assert (v.checktimeout, v.negotiatetimeout, v.service) == (7, 7, "smtp")
    c = parse_config("virtual=10.0.0.1:25\n\treal=10.0.0.2 masq\n\tchecktimeout=2\n", "x.cf")
    assert (c.virtuals[0].checktimeout, c.virtuals[0].negotiatetimeout) == (2, 2)


def test_ranges_weights_thresholds_and_per_real_check():
    text = ('virtual=10.0.0.1:80\n'
            '\treal=10.0.1.254->10.0.2.1:8080 masq 5 "/a.html", "yes" l:3 u:9\n'
            '\treal=10.0.3.1 ipip\n')
    v = parse_config(text, "x.cf").virtuals[0]
    assert [r.address for r in v.reals] == ["10.0.1.254", "10.0.1.255", "10.0.2.0", "10.0.2.1", "10.0.3.1"]
    r = v.reals[0]
    assert (r.port, r.method, r.weight, r.request, r.receive, r.lower, r.upper) == (
        8080, "masq", 5, "/a.html", "yes", 3, 9)
    last = v.reals[-1]
    assert last.port == 0 and table_port(v, last) == 80 and check_port(v, last) == 80


def test_fwmark_ipv6_and_global_fallback():
    text = ("fallback=127.0.0.1 masq\nfallback6=[::1]:8080\n"
            "virtual=7\n\treal=10.0.0.2:80 gate\n\tservice=http\n"
            "virtual6=[2001:db8::1]:443\n\treal6=[2001:db8::2]:443 masq\n")
    c = parse_config(text, "x.cf")
    f, s = c.virtuals
    assert f.key == "fwm:7" and f.protocol == "fwm" and f.address is None and f.port is None
    assert c.fallback_for(f).key == "127.0.0.1:0" and c.fallback_for(f).method == "masq"
    assert s.key == "tcp:[2001:db8::1]:443" and s.family == 6 and s.service == "https"
    assert s.reals[0].address == "2001:db8::2" and s.reals[0].key == "[2001:db8::2]:443"
    assert c.fallback_for(s).key == "[::1]:8080"


def test_service_name_ports_and_resolver_injection():
    res = Resolver(host=lambda n, f: {"web1": "10.9.9.9"}.get(n) or Resolver().host(n, f))
    v = parse_config("virtual=10.0.0.1:http\n\treal=web1:https gate\n", "x.cf", res).virtuals[0]
    assert v.port == 80 and v.reals[0].address == "10.9.9.9" and v.reals[0].port == 443
    with pytest.raises(ConfigError) as e:
        parse_config("virtual=10.0.0.1:80\n\treal=web1:80 gate\n", "x.cf")
    assert str(e.value) == "x.cf:2: invalid address (web1) for real server (could not resolve host)"


def test_udp_for_dns_and_checktype_number():
    v = parse_config("virtual=10.0.0.1:53\n\treal=10.0.0.2 gate\n\tchecktype=5\n", "x.cf").virtuals[0]
    assert v.protocol == "udp" and v.service == "dns"
    assert v.checktype == "combined" and v.num_connects == 5


@pytest.mark.parametrize("text,line,message", [
    ("timeout=3\n", 1, "timeout directive deprecated in favour of checktimeout and negotiatetimeout"),
    ("connecttimeout=3\n", 1, "connecttimeout directive deprecated in favour of negotiatetimeout"),
    ("bogus=1\n", 1, "Unknown command bogus=1"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2 gate\n\tbogus=1\n", 3, 'Unknown command "bogus=1"'),
    ("quiescent=maybe\n", 1, "quiescent must be 'yes' or 'no'"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2 tunnel\n", 2, "forward method must be gate, masq or ipip"),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\nvirtual=10.0.0.1:80\n\treal=10.0.0.3 gate\n",
     4, "duplicate virtual server"),
])
def test_errors_are_file_line_message(text, line, message):
    with pytest.raises(ConfigError) as e:
        parse_config(text, "/etc/ha.d/ldirectord.cf")
    assert (e.value.line, e.value.message) == (line, message)
    assert str(e.value) == f"/etc/ha.d/ldirectord.cf:{line}: {message}"


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "nope.cf"))
    assert "can not open file" in str(e.value)


# ---- every shared file, against ldirectord's own verdict ------------------------

@pytest.mark.skipif(not SHARED_FILES, reason="../shared/testdata/ldirectord absent")
@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.name)
def test_shared_files_load_or_fail_like_ldirectord(path):
    got = ours(str(path))
    if os.access(LDIRECTORD, os.X_OK):
        want = oracle(str(path))
        assert (got is None) == (want is None), (got, want)
        if want is not None:
            assert got[0] == want[0] and squash(got[1]) == squash(want[1])
    if got is None:
        c = load_config(str(path))
        assert c.virtuals, "every shared example defines a virtual service"
        for v in c.virtuals:
            assert v.reals and all(r.method in ("gate", "masq", "ipip") for r in v.reals)


# ---- a corpus of edge cases, each judged by the real ldirectord -------------------

V = "virtual=10.0.0.1:80\n"
CORPUS = [
    SCENARIO,
    "checktimeout=0\n", "checktimeout=abc\n", "checkinterval=x5\n", "failurecount=0\n",
    "checkcount=2\n", "negotiatetimeout=\n", "autoreload=yes \n", "fork=yes\n", "supervised\n",
    "supervised=maybe\n", "emailalert=\"\"\n", "emailalertstatus=starting,bogus\n",
    "emailalertstatus=none,all\n", "emailalertfreq=abc\n", "smtp=-\n", "smtp=!bad\n",
    "callback=/bin/true\n", "callback=\"/bin/true\"\n", "  checktimeout=3\n", "virtualhost=x\n",
    "fallback=127.0.0.1:80 gate\n", "fallback=127.0.0.1:80 tunnel\n", "fallback=nohost.invalid\n",
    "fallback6=[::1]:80\n", "execute=other.cf\n", "maintenancedir=/nonexistent\n",
    V + "\treal=10.0.0.2:80 gate\n\tquiescent=yes # comment\n",
    V + "\treal=10.0.0.2:80 gate\n\n\tservice=http\n",
    V + "\treal=10.0.0.2:80 gate\n\t# comment\n\tservice=ftp\n",
    V + "\treal=10.0.0.2:80\n", V + "\treal=10.0.0.2:80 \n", V + "\treal=10.0.0.2:80 gate 3 junk\n",
    V + "\treal=10.0.0.9->10.0.0.2:80 gate\n", V + "\treal6=[::1]:80 gate\n",
    V + "\treal=10.0.0.2:99999 gate\n", V + "\treal=10.0.0.2:80 gate\n\tchecktype=bogus\n",
    V + "\treal=10.0.0.2:80 gate\n\tchecktype=external-perl\n",
    V + "\treal=10.0.0.2:80 gate\n\tcheckport=0\n", V + "\treal=10.0.0.2:80 gate\n\tcheckport=x\n",
    V + "\treal=10.0.0.2:80 gate\n\tservice=gopher\n", V + "\treal=10.0.0.2:80 gate\n\tservice=oracle\n",
    V + "\treal=10.0.0.2:80 gate\n\tprotocol=fwm\n", V + "\treal=10.0.0.2:80 gate\n\tprotocol=udp\n",
    V + "\treal=10.0.0.2:80 gate\n\tnetmask=24\n", V + "\treal=10.0.0.2:80 gate\n\tnetmask=255.255.0.0\n",
    V + "\treal=10.0.0.2:80 gate\n\tscheduler=WRR\n", V + "\treal=10.0.0.2:80 gate\n\tpersistent=x\n",
    V + "\treal=10.0.0.2:80 gate\n\thttpmethod=POST\n", V + "\treal=10.0.0.2:80 gate\n\trequest=\"\"\n",
    V + "\treal=10.0.0.2:80 gate\n\trequest=x.html\n", V + "\treal=10.0.0.2:80 gate\n\treceive=\"\"\n",
    V + "\treal=10.0.0.2:80 gate\n\tops=maybe\n", V + "\treal=10.0.0.2:80 gate\n\tlogin=\"\"\n",
    V + "\treal=10.0.0.2:80 gate\n\tfallback6=[::1]:80\n", V + "\treal=10.0.0.2:80 gate\n\tsmtp=\n",
    V + "\treal=10.0.0.2:80 gate\n\temailalertfrom=a@b\n", V + "\treal=10.0.0.2:80 gate\n\tcleanstop=no\n",
    V + "\treal=10.0.0.2:80 gate\n\tconnecttimeout=3\n", V + "\treal=10.0.0.2:80 gate\n\tcheckcount=3\n",
    V + "\treal=10.0.0.2:80 gate\n\tfallback=127.0.0.1:http masq\n",
    "virtual=[::1]:80\n\treal=10.0.0.2 gate\n", "virtual6=[zz::1]:80\n\treal6=[::2] gate\n",
    "virtual6=10.0.0.1:80\n\treal6=[::2] gate\n", "virtual=10.0.0.1\n\treal=10.0.0.2 gate\n",
    "virtual=?\n", "virtual=1\n\treal=10.0.0.2 gate\n\tprotocol=tcp\n",
    "virtual=10.0.0.1:80\n\treal=10.0.0.2 gate\n  service=http\n",
    "virtual=10.0.0.1:80\n\treal=10.0.0.2 gate\nvirtual=10.0.0.1:80\n\tprotocol=udp\n",
]


GOLDEN = Path(__file__).parent / "data" / "ldirectord_corpus.json"


def _key(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _ours_on_text(tmp_path, i, text):
    p = tmp_path / f"c{i:03d}.cf"
    p.write_text(text)
    return ours(str(p))


def test_corpus_matches_golden_verdicts(tmp_path):
    """Each corpus file loads or fails exactly as recorded from the real ldirectord (see below)."""
    golden = json.loads(GOLDEN.read_text())
    missing = [t for t in CORPUS if _key(t) not in golden]
    assert not missing, f"corpus entries without a recorded verdict (regenerate): {missing[:3]}"
    mismatches = []
    for i, text in enumerate(CORPUS):
        want = golden[_key(text)]
        got = _ours_on_text(tmp_path, i, text)
        same = (got is None and want is None) or (
            got is not None and want is not None and got[0] == want[0] and squash(got[1]) == squash(want[1]))
        if not same:
            mismatches.append((text, got, want))
    assert not mismatches, "\n".join(map(repr, mismatches))


@pytest.mark.slow
@need_oracle
def test_golden_verdicts_are_ldirectords(tmp_path):
    """The recorded verdicts are what the installed ldirectord says (HADAEMON_REGEN=1 rewrites them)."""
    paths = []
    for i, text in enumerate(CORPUS):
        p = tmp_path / f"c{i:03d}.cf"
        p.write_text(text)
        paths.append(str(p))
    with ThreadPoolExecutor(4) as pool:
        wants = list(pool.map(oracle, paths))
    fresh = {_key(t): (list(w) if w else None) for t, w in zip(CORPUS, wants)}
    if os.environ.get("HADAEMON_REGEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(fresh, indent=1, sort_keys=True) + "\n")
    assert json.loads(GOLDEN.read_text()) == fresh


def test_system_resolver_resolves_localhost():
    res = system_resolver()
    assert res.host("localhost", 4) == "127.0.0.1"
    assert res.service("http", "tcp") == 80


@pytest.mark.skipif(shutil.which("true") is None, reason="no true")
def test_monitorfile_must_be_writable(tmp_path):
    cf = tmp_path / "m.cf"
    cf.write_text(V + f"\treal=10.0.0.2:80 gate\n\tmonitorfile={tmp_path}/no/such/dir/log\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(cf))
    assert e.value.line == 3 and "unable to open monitorfile" in e.value.message
