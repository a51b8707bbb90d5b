"""ha.cf `realtime` / `rtprio` (hadaemon/daemons/heartbeat_realtime.py), each case in a child process (the
test process itself never turns real-time): SCHED_RR at rtprio or 1, memory locked when allowed, a refusal
reported without failing, `realtime off` leaving a real-time policy given from outside."""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

CHILD = """
import json, os, sys, threading
from hadaemon.daemons import heartbeat_realtime as rt
done, refused = rt.apply(sys.argv[1] == "on", int(sys.argv[2]) if sys.argv[2] != "-" else None)
locked = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmLck:")][0]
sender = {}
t = threading.Thread(target=lambda: sender.update(raised=rt.sender_priority(), now=rt.current()))
t.start()
t.join()
print(json.dumps({"done": done, "refused": refused, "now": rt.current(), "locked_kb": int(locked),
                  "sender": sender}))
"""


def child(realtime, rtprio, prefix=()):
    cp = subprocess.run([*prefix, sys.executable, "-c", CHILD, realtime, str(rtprio) if rtprio else "-"],
                        capture_output=True, text=True, timeout=60,
                        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


@pytest.fixture(autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.skip("needs root (SCHED_RR, mlockall)")


def test_realtime_on_defaults_to_priority_1_and_locks_memory():
    r = child("on", None)
    assert r["now"] == ["SCHED_RR", 1]
    assert r["done"] == ["SCHED_RR priority 1", "locked in memory"] and r["refused"] == []
    assert r["locked_kb"] > 0
    # the heartbeat sender thread: one step above the daemon's main thread
    assert r["sender"] == {"raised": "SCHED_RR priority 2", "now": ["SCHED_RR", 2]}


def test_sender_stays_at_the_top_priority_and_normal_threads_stay_normal():
    assert child("on", 99)["sender"] == {"raised": None, "now": ["SCHED_RR", 99]}
    assert child("off", None)["sender"] == {"raised": None, "now": ["SCHED_OTHER", 0]}


def test_rtprio_is_used():
    r = child("on", 7)
    assert r["now"] == ["SCHED_RR", 7] and r["done"][0] == "SCHED_RR priority 7"


def test_a_priority_given_from_outside_is_kept_when_rtprio_is_unset():
    assert shutil.which("chrt"), "chrt missing (util-linux)"
    r = child("on", None, prefix=["chrt", "--rr", "3"])
    assert r["now"] == ["SCHED_RR", 3] and r["done"][0] == "SCHED_RR priority 3 (already)"


def test_realtime_off_leaves_a_real_time_policy():
    r = child("off", None, prefix=["chrt", "--fifo", "2"])
    assert r["now"] == ["SCHED_OTHER", 0] and r["done"] == ["SCHED_OTHER (realtime off)"]
    assert r["locked_kb"] == 0


def test_refused_is_reported_and_not_fatal():
    """Without CAP_SYS_NICE / CAP_IPC_LOCK and with RLIMIT_RTPRIO 0 the daemon stays SCHED_OTHER and says why."""
    assert shutil.which("setpriv") and shutil.which("prlimit"), "setpriv/prlimit missing (util-linux)"
    r = child("on", 5, prefix=["prlimit", "--rtprio=0", "--memlock=65536", "setpriv",
                               "--inh-caps=-sys_nice,-ipc_lock", "--bounding-set=-sys_nice,-ipc_lock", "--"])
    assert r["now"] == ["SCHED_OTHER", 0] and r["done"] == []
    assert r["refused"] == ["realtime on: cannot run as SCHED_RR priority 5: Operation not permitted (needs "
                            "CAP_SYS_NICE or LimitRTPRIO=; running as SCHED_OTHER)"]
