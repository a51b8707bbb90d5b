"""A small sampling profiler for a running Python program (py-spy is not installed): every INTERVAL seconds
of CPU time used by the process (ITIMER_PROF) the main thread's stack is counted (functions self and
cumulative, and whole stacks). Samples follow CPU time, so a function's share is its share of the CPU the
process used (a system call is counted at the Python line that made it; CPU of other threads lands on
whatever the main thread runs next). Far cheaper than cProfile's per-call hooks, so the program keeps its
real timing.

    python bench/stack_sampler.py OUT.txt -m hadaemon.daemons.director --backend nft CONFIG

The report is written to OUT.txt at exit: samples where the main thread was busy (not waiting in
select/epoll), the top functions by self and by cumulative samples, and the top stacks.
"""
from __future__ import annotations

import atexit
import collections
import runpy
import sys

INTERVAL = 0.001


def start(out: str) -> None:
    import signal

    self_count: collections.Counter = collections.Counter()
    cum_count: collections.Counter = collections.Counter()
    stacks: collections.Counter = collections.Counter()
    totals = {"samples": 0}
    names_of: dict = {}

    def name(code) -> str:
        n = names_of.get(code)
        if n is None:
            n = names_of[code] = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}:{code.co_firstlineno}"
        return n

    def on_prof(_sig, frame) -> None:
        totals["samples"] += 1
        names = []
        f = frame
        while f is not None:
            names.append(name(f.f_code))
            f = f.f_back
        if not names:
            return
        self_count[names[0]] += 1
        for n in set(names):
            cum_count[n] += 1
        stacks[" <- ".join(names[:8])] += 1

    def report() -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        n = max(1, totals["samples"])
        with open(out, "w") as f:
            f.write(f"samples {totals['samples']} (one per {INTERVAL * 1000:g} ms of the process's CPU)\n\n")
            f.write("self:\n")
            for k, c in self_count.most_common(40):
                f.write(f"  {100 * c / n:5.1f}%  {k}\n")
            f.write("\ncumulative:\n")
            for k, c in cum_count.most_common(70):
                f.write(f"  {100 * c / n:5.1f}%  {k}\n")
            f.write("\nstacks:\n")
            for k, c in stacks.most_common(40):
                f.write(f"  {100 * c / n:5.1f}%  {k}\n")

    signal.signal(signal.SIGPROF, on_prof)
    signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)
    atexit.register(report)


def main() -> None:
    out = sys.argv[1]
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        raise SystemExit("usage: stack_sampler.py OUT -m MODULE [ARGS...]")
    module = sys.argv[3]
    sys.argv = [module] + sys.argv[4:]
    start(out)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
