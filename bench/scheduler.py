#!/usr/bin/env python3
"""Benchmark: our scheduler against Pacemaker 2.1.5's crm_simulate on the same generated CIBs.

For each size (nodes x Dummy primitives) and state (fresh: nothing running; steady: everything running,
then one node lost) it measures, each in its own child process with its peak RSS (and the same for
clone-heavy CIBs: NODES x anonymous clones of NODES instances + promotable clones, `--clones 32x100x10`):
  ours     parse_cib + schedule in-process (the scheduling alone, no printing)
  crm -R   crm_simulate -R -x FILE (2.1.5's scheduling alone), bounded at 120 s
  hactl    `hactl simulate FILE` as a whole process (start-up, parse, schedule, the full output: status,
           summary, executed actions, revised status), at every size, against crm -R's whole process
and for the small sizes also `crm_simulate -S -x FILE` (-S grows quadratically: only worth quoting for small
inputs).

hactl is measured as the RPM installs it: packaging/install-python lays the package and its console scripts
into a temporary prefix (hactl: `#!/usr/bin/python3 -IS`, the wrapper adding that site directory to sys.path;
--isolated hactl, as hadaemon.spec does), byte-compiled as the RPM's %install does; `--hactl venv` measures the
development venv's .venv/bin/hactl instead, `--hactl PATH` any other. Whole processes report CPU time
(user+sys of the child from wait4, median of --repeat interleaved runs for runs under 2 s) and wall time; a line
before the table breaks hactl's start-up down (interpreter, site, imports, whole run).

    .venv/bin/python bench/scheduler.py [--quick] [--sizes 2x10,16x1000] [--states fresh,steady_lost_node]

The last line is `RESULT ratio_max=... ratio_median=...`: ours (parse + schedule, timed in-process) /
crm_simulate -R (whole process) over the runs both finished, below 1 meaning we are faster; wall_ratio_*
compares the whole process of that in-process child (`python -I -c`: site, json and the timing harness
included, unlike hactl's start) with crm -R's; hactl_ratio_* is `hactl simulate` (whole
process, full output) / `crm_simulate -R` (whole process), wall time, hactl_cpu_ratio_* the same in CPU time;
hactl_slower_cpu / hactl_slower_wall count the runs where hactl's whole process took longer than crm -R's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hadaemon.testing.cibgen import generate_bench_cib  # noqa: E402

FULL_SIZES = [(n, r) for n in (2, 16, 32) for r in (10, 100, 1000, 3000)]
QUICK_SIZES = [(2, 10), (2, 100), (16, 10), (16, 100)]
FULL_CLONES = [(8, 20, 2), (32, 100, 10)]  # nodes x anonymous clones x promotable clones
QUICK_CLONES = [(4, 10, 2)]
STATES = ("fresh", "steady_lost_node")
CRM_BOUND = 120.0
OURS_BOUND = 1800.0
SMALL = 100  # primitives: up to this size the full simulations are compared too
SIM_BOUND = 120.0

CHILD = r"""
import json, sys, time
sys.path.append(sys.argv.pop(1))
t0 = time.perf_counter()
from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
text = open(sys.argv[1]).read()
t1 = time.perf_counter()
cib = parse_cib(text, sys.argv[1])
t2 = time.perf_counter()
tr = schedule(cib, now=None)
t3 = time.perf_counter()
print(json.dumps({"parse": t2 - t1, "schedule": t3 - t2, "actions": len(tr.graph.actions),
                  "summary": len(tr.summary)}))
"""


TIME = shutil.which("time") or "/usr/bin/time"


# The environment of our children: PYTHONDONTWRITEBYTECODE in the caller's environment would make every start
# of the venv's hactl compile the sources (the installed layout is byte-compiled and runs with -I anyway).
CHILD_ENV = None
# How hactl and our in-process child run: set by main() (install_layout or --hactl)
HACTL = None  # argv prefix of `hactl`
PY = sys.executable  # the interpreter of the in-process child ...
SITE = str(REPO)  # ... and the directory it imports hadaemon from
SYSTEM_PYTHON = "/usr/bin/python3"  # what the RPM's scripts run


def child_env(workdir: str) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
    return env


def install_layout(workdir: str) -> tuple:
    """Lay hadaemon out as its RPM does (packaging/install-python, hactl --isolated) under workdir, byte-compiled;
    -> (hactl path, python, site directory)."""
    python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
    site, bindir = os.path.join(workdir, "site"), os.path.join(workdir, "bin")
    subprocess.run([python, str(REPO / "packaging" / "install-python"), "--root", "/", "--sitelib", site,
                    "--bindir", bindir, "--shebang", python, "--isolated", "hactl", str(REPO)], check=True,
                   stdout=subprocess.DEVNULL, cwd=str(REPO))
    subprocess.run([python, "-m", "compileall", "-q", os.path.join(site, "hadaemon")], check=True,
                   env=dict(CHILD_ENV, PYTHONPYCACHEPREFIX=""))
    return os.path.join(bindir, "hactl"), python, site


def run_child(argv, bound, stdout=subprocess.DEVNULL, repeat=1):
    """Run argv; -> (wall seconds or None when over the bound, peak RSS in MB, stdout text or None, CPU
    seconds user+sys or None). One run under GNU time gives the peak RSS (and, for a single run, the times);
    inputs under 2 s then run `repeat` more times directly, their medians giving the wall and CPU times (wait4's
    CPU time has microsecond resolution, GNU time prints 10 ms). On a shared machine the CPU time is the
    steadier figure: wall time includes waiting for a core."""
    first = _run_child(argv, bound, stdout)
    if first[0] is None or repeat <= 1 or first[0] >= 2.0:
        return first
    runs = [_run_direct(argv, bound, stdout) for _ in range(repeat)]
    if any(r[0] is None for r in runs):
        return None, None, None, None
    return (statistics.median(r[0] for r in runs), first[1], runs[-1][2], statistics.median(r[1] for r in runs))


def run_interleaved(argvs, bound, repeat):
    """Run each argv `repeat` times directly, taking turns (a change of the machine's load then falls on all
    of them alike); -> [(median wall, median CPU) or None when one went over the bound] in the order given."""
    runs = [[] for _ in argvs]
    for _ in range(repeat):
        for i, argv in enumerate(argvs):
            wall, cpu, _ = _run_direct(argv, bound)
            if wall is None:
                return [None] * len(argvs)
            runs[i].append((wall, cpu))
    return [(statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for rs in runs]


def _run_direct(argv, bound, stdout=subprocess.DEVNULL):
    """One run of argv without GNU time; -> (wall seconds, CPU seconds, stdout text or None), (None, None, None)
    when over the bound."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out if stdout is None else stdout, stderr=subprocess.DEVNULL,
                                cwd=str(REPO), start_new_session=True, env=CHILD_ENV)
        timer = threading.Timer(bound, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode == -signal.SIGKILL and wall >= bound:
            return None, None, None
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}")
        text = None
        if stdout is None:
            out.seek(0)
            text = out.read().decode(errors="replace")
        return wall, usage.ru_utime + usage.ru_stime, text


def _run_child(argv, bound, stdout=subprocess.DEVNULL):
    """One run of argv; -> (wall seconds or None when over the bound, peak RSS in MB, stdout text or None,
    CPU seconds or None).
    The RSS comes from GNU time (exec'd from a small process); a child forked straight from this
    (large) Python would inherit our high-water mark in its ru_maxrss."""
    use_time = os.access(TIME, os.X_OK)
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = [TIME, "-f", "%M %U %S", "-o", rss_file.name] + argv if use_time else argv
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out if stdout is None else stdout, stderr=subprocess.DEVNULL,
                                cwd=str(REPO), start_new_session=True, env=CHILD_ENV)
        try:
            proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session we made: GNU time and its child
            proc.wait()
            return None, None, None, None
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}")
        rss = cpu = None
        if use_time:
            fields = rss_file.read().split()
            if len(fields) >= 3 and fields[-3].isdigit():
                rss = int(fields[-3]) / 1024
                try:
                    cpu = float(fields[-2]) + float(fields[-1])
                except ValueError:
                    cpu = None
        text = None
        if stdout is None:
            out.seek(0)
            text = out.read().decode(errors="replace")
        return wall, rss, text, cpu


def ours_available() -> bool:
    try:
        from hadaemon.core.cib import parse_cib  # noqa: F401
        from hadaemon.core.policy import schedule  # noqa: F401
    except ImportError:
        return False
    return True


def hactl_argv():
    return list(HACTL)


def fmt(t, bound):
    return f">{bound:.0f}" if t is None else f"{t:.2f}"


def generate_clone_cib(nodes: int, clones: int, promotable: int, state: str) -> str:
    """NODES nodes, CLONES anonymous clones (one instance per node), PROMOTABLE promotable clones
    (promoted-max 1) with promotion scores; fresh: nothing ran; steady_lost_node: every instance
    runs (the promotable ones promoted on node1), then the last node is lost (fencing disabled)."""
    names = [f"node{i + 1}" for i in range(nodes)]
    res = []
    for c in range(clones):
        res.append(f'<clone id="c{c}"><meta_attributes id="c{c}-m"><nvpair id="c{c}-m1" name="interleave" '
                   f'value="true"/></meta_attributes><primitive id="d{c}" class="ocf" provider="heartbeat" '
                   f'type="Dummy"><operations><op id="d{c}-mon" name="monitor" interval="10s"/></operations>'
                   f'</primitive></clone>')
    for m in range(promotable):
        res.append(f'<clone id="ms{m}"><meta_attributes id="ms{m}-m"><nvpair id="ms{m}-m1" name="promotable" '
                   f'value="true"/></meta_attributes><primitive id="s{m}" class="ocf" provider="pacemaker" '
                   f'type="Stateful"/></clone>')
    cons = [f'<rsc_order id="ord{c}" first="c{c - 1}" then="c{c}"/>' for c in range(1, min(clones, 10))]
    states = []
    digest = "f2317cad3d54cec5d7d7aa7d0bf35cf8"
    for i, n in enumerate(names):
        lost = state == "steady_lost_node" and i == nodes - 1
        flags = ('in_ccm="false" crmd="offline" join="down" expected="member"' if lost else
                 'in_ccm="true" crmd="online" join="member" expected="member"')
        attrs = "".join(f'<nvpair id="{n}-ms{m}" name="master-s{m}" value="{5 if i else 10}"/>'
                        for m in range(promotable))
        lrm = []
        if state != "fresh":
            for c in range(clones):
                lrm.append(f'<lrm_resource id="d{c}" class="ocf" provider="heartbeat" type="Dummy">'
                           f'<lrm_rsc_op id="d{c}_last_0" operation="start" call-id="{c + 1}" rc-code="0" '
                           f'op-status="0" interval="0" transition-key="1:1:0:x" op-digest="{digest}"/>'
                           f'<lrm_rsc_op id="d{c}_monitor_10000" operation="monitor" call-id="{c + 1000}" '
                           f'rc-code="0" op-status="0" interval="10000" transition-key="2:1:0:x"/></lrm_resource>')
            for m in range(promotable):
                task = "promote" if i == 0 else "start"
                lrm.append(f'<lrm_resource id="s{m}" class="ocf" provider="pacemaker" type="Stateful">'
                           f'<lrm_rsc_op id="s{m}_last_0" operation="{task}" call-id="{m + 5000}" rc-code="0" '
                           f'op-status="0" interval="0" transition-key="3:1:0:x" op-digest="{digest}"/>'
                           f'</lrm_resource>')
        states.append(f'<node_state id="{n}" uname="{n}" {flags}><transient_attributes id="{n}-t">'
                      f'<instance_attributes id="{n}-ta">{attrs}</instance_attributes></transient_attributes>'
                      f'<lrm id="{n}"><lrm_resources>{"".join(lrm)}</lrm_resources></lrm></node_state>')
    return ('<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0" have-quorum="1" '
            'crm_feature_set="3.16.1" dc-uuid="node1"><configuration><crm_config><cluster_property_set id="o">'
            '<nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config><nodes>'
            + "".join(f'<node id="{n}" uname="{n}"/>' for n in names) + "</nodes><resources>" + "".join(res)
            + "</resources><constraints>" + "".join(cons) + "</constraints></configuration><status>"
            + "".join(states) + "</status></cib>")


def measure(nodes, prims, state, workdir, have_ours, have_crm, full_sim, clones=None, repeat=1):
    if clones is not None:
        n_clones, n_prom = clones
        path = os.path.join(workdir, f"bench-{nodes}x{n_clones}c{n_prom}p-{state}.xml")
        with open(path, "w") as f:
            f.write(generate_clone_cib(nodes, n_clones, n_prom, state))
        prims = nodes * (n_clones + n_prom)  # instances
        crm_s = prims <= 2000
    else:
        path = os.path.join(workdir, f"bench-{nodes}x{prims}-{state}.xml")
        with open(path, "w") as f:
            f.write(generate_bench_cib(nodes, prims, state, seed=1))
    row = {"nodes": nodes, "prims": prims, "state": state, "bytes": os.path.getsize(path)}
    # whole processes of small inputs take tens of ms, in the noise of a shared machine: runs under 2 s are
    # repeated (median of `repeat`)
    rep = repeat
    if clones is not None:
        row["clones"] = f"{clones[0]}c+{clones[1]}p"
    if have_ours:
        try:
            wall, rss, text, _ = run_child([PY, "-I", "-c", CHILD, SITE, path], OURS_BOUND, stdout=None, repeat=rep)
            info = json.loads(text) if text else {}
            row.update(ours=(info["parse"] + info["schedule"]) if info else None, ours_rss=rss, ours_wall=wall,
                       parse=info.get("parse"), actions=info.get("actions"))
        except RuntimeError as e:
            row.update(ours=None, ours_rss=None, ours_error=str(e))
    crm_argv, hactl = ["crm_simulate", "-R", "-x", path], hactl_argv() + ["simulate", path]
    if have_crm:
        wall, rss, _, cpu = run_child(crm_argv, CRM_BOUND)
        row.update(crm=wall, crm_rss=rss, crm_cpu=cpu)
    if full_sim and have_ours:
        try:
            row["sim_ours"], row["sim_ours_rss"], _, row["sim_ours_cpu"] = run_child(hactl, OURS_BOUND)
        except RuntimeError:
            row["sim_ours"], row["sim_ours_error"] = None, True
    if rep > 1 and have_crm and row.get("crm") is not None and row.get("sim_ours") is not None \
            and row["crm"] < 2.0 and row["sim_ours"] < 2.0:
        # runs under 2 s: crm -R and hactl taking turns, medians (wait4's CPU time, not GNU time's 10 ms steps)
        crm_run, hactl_run = run_interleaved([crm_argv, hactl], max(CRM_BOUND, OURS_BOUND), rep)
        if crm_run is not None:
            (row["crm"], row["crm_cpu"]), (row["sim_ours"], row["sim_ours_cpu"]) = crm_run, hactl_run
    if full_sim and (crm_s if clones is not None else prims <= SMALL):
        if have_crm:
            row["sim_crm"], row["sim_crm_rss"], _, _ = run_child(["crm_simulate", "-S", "-x", path], SIM_BOUND,
                                                                 repeat=rep)
    return row


def startup(workdir: str, repeat: int, have_crm: bool) -> None:
    """Say how hactl runs, then break its start-up down on the smallest CIB (2 x 10, fresh): the interpreter
    alone (-IS, as the installed hactl), what `site` would add, our imports, the whole `hactl simulate`, and
    crm_simulate -R on the same file; CPU (wall) medians of interleaved runs."""
    path = os.path.join(workdir, "warmup.xml")
    with open(path, "w") as f:
        f.write(generate_bench_cib(2, 10, "fresh", seed=1))
    run_child(hactl_argv() + ["simulate", path], OURS_BOUND)  # a warm-up (and, for the venv, its bytecode)
    with open(HACTL[-1], "rb") as f:
        head = f.readline().decode(errors="replace").strip()
    version = subprocess.run([PY, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True).stdout.strip()
    print(f"hactl: {' '.join(HACTL)} ({head}; Python {version}; hadaemon imported from {SITE})", flush=True)
    imports = f"import sys; sys.path.append({SITE!r}); import hadaemon.cli.simulate, hadaemon.core.cib, " \
              "hadaemon.core.policy"
    figures = [("python -IS -c pass", [PY, "-IS", "-c", "pass"]), ("python -c pass (site)", [PY, "-c", "pass"]),
               ("python -IS + imports", [PY, "-IS", "-c", imports]),
               ("hactl simulate", hactl_argv() + ["simulate", path])]
    if have_crm:
        figures.append(("crm_simulate -R", ["crm_simulate", "-R", "-x", path]))
    runs = run_interleaved([argv for _, argv in figures], OURS_BOUND, max(repeat, 11))
    print("start-up on 2 x 10 fresh, CPU (wall) medians: " + ", ".join(
        f"{label} {1000 * cpu:.1f} ({1000 * wall:.1f}) ms" for (label, _), (wall, cpu) in zip(figures, runs)),
        flush=True)


def print_row(r, have_ours):
    ours = fmt(r.get("ours"), OURS_BOUND) if have_ours else "n/a"
    ratio = ""
    if r.get("ours") is not None and r.get("crm") is not None:
        ratio = f"{r['ours'] / r['crm']:.3f}"
    sim = ""
    if "sim_crm" in r or "sim_ours" in r:
        ours_sim = f"{fmt(r['sim_ours'], SIM_BOUND)} s ({mb(r.get('sim_ours_rss'))} MB)" if "sim_ours" in r else "n/a"
        crm_sim = f"{fmt(r['sim_crm'], SIM_BOUND)} s ({mb(r.get('sim_crm_rss'))} MB)" if "sim_crm" in r else "n/a"
        sim = f"  simulate: hactl {ours_sim}, crm -S {crm_sim}" if "sim_crm" in r else ""
    if r.get("sim_ours_cpu") is not None and r.get("crm_cpu") is not None:
        sim += f"  CPU: hactl {1000 * r['sim_ours_cpu']:.0f} ms, crm -R {1000 * r['crm_cpu']:.0f} ms"
    actions = r.get("actions")
    per = f"{1e6 * r['ours'] / actions:.0f}" if actions and r.get("ours") else "-"
    per_nr = f"{1e6 * r['ours'] / (r['nodes'] * r['prims']):.1f}" if r.get("ours") else "-"
    wall = fmt(r.get("ours_wall"), OURS_BOUND) if have_ours else "n/a"
    label = r.get("clones", r["prims"])
    hactl = fmt(r["sim_ours"], OURS_BOUND) if "sim_ours" in r else "-"
    hratio = f"{r['sim_ours'] / r['crm']:.3f}" if r.get("sim_ours") and r.get("crm") else ""
    print(f"{r['nodes']:>5} {label:>6} {r['state']:<17} {actions if actions is not None else '-':>8}"
          f" {ours:>9} {wall:>9} {mb(r.get('ours_rss')):>8} {per:>7} {per_nr:>6} {fmt(r.get('crm'), CRM_BOUND):>9}"
          f" {mb(r.get('crm_rss')):>8} {ratio:>7} {hactl:>8} {hratio:>7}{sim}", flush=True)


def mb(value):
    return "-" if value is None else f"{value:.0f}"


def parse_sizes(text):
    sizes = []
    for item in text.split(","):
        n, _, r = item.strip().partition("x")
        sizes.append((int(n), int(r)))
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only: " + " ".join(f"{n}x{r}" for n, r in QUICK_SIZES))
    ap.add_argument("--sizes", help="comma-separated NODESxPRIMITIVES, e.g. 2x10,16x1000")
    ap.add_argument("--states", default=",".join(STATES), help="fresh and/or steady_lost_node")
    ap.add_argument("--no-simulate", action="store_true", help="skip the full hactl simulate / crm_simulate -S runs")
    ap.add_argument("--clones", help="comma-separated NODESxCLONESxPROMOTABLE, e.g. 32x100x10 (default: "
                                     + " ".join("x".join(map(str, c)) for c in FULL_CLONES) + "; --quick: "
                                     + " ".join("x".join(map(str, c)) for c in QUICK_CLONES) + "; 0 for none)")
    ap.add_argument("--hactl", default="installed",
                    help="installed (default: laid out as the RPM does, in a temporary prefix), venv "
                         "(.venv/bin/hactl) or the path of a hactl")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs per measurement of runs under 2 s, median (default 5)")
    args = ap.parse_args(argv)
    sizes = parse_sizes(args.sizes) if args.sizes else QUICK_SIZES if args.quick else FULL_SIZES
    states = [s for s in args.states.split(",") if s]
    have_ours, have_crm = ours_available(), shutil.which("crm_simulate") is not None
    if not have_ours:
        print("note: the scheduler (hadaemon.core.policy.schedule) is not available; timing crm_simulate only")
    if not have_crm:
        print("note: crm_simulate not installed; timing ours only")
    rows = []
    global CHILD_ENV, HACTL, PY, SITE
    with tempfile.TemporaryDirectory(prefix="hadbench-") as workdir:
        CHILD_ENV = child_env(workdir)
        if args.hactl == "installed":
            hactl, PY, SITE = install_layout(workdir)
            HACTL = [hactl]
        elif args.hactl == "venv":
            HACTL = [str(REPO / ".venv" / "bin" / "hactl")]
        else:
            HACTL = [args.hactl]
        if have_ours:
            startup(workdir, args.repeat, have_crm)
        print(f"{'nodes':>5} {'prims':>6} {'state':<17} {'actions':>8} {'ours s':>9} {'wall s':>9} {'ours MB':>8}"
              f" {'us/act':>7} {'us/NR':>6}"
              f" {'crm -R s':>9} {'crm MB':>8} {'ratio':>7} {'hactl s':>8} {'h/crm':>7}")
        for nodes, prims in sizes:
            for state in states:
                row = measure(nodes, prims, state, workdir, have_ours, have_crm, not args.no_simulate,
                              repeat=args.repeat)
                rows.append(row)
                print_row(row, have_ours)
        if args.clones == "0":
            clone_sizes = []
        elif args.clones:
            clone_sizes = [tuple(int(x) for x in item.split("x")) for item in args.clones.split(",")]
        else:
            clone_sizes = QUICK_CLONES if args.quick else FULL_CLONES
        for nodes, n_clones, n_prom in clone_sizes:
            for state in states:
                row = measure(nodes, 0, state, workdir, have_ours, have_crm, not args.no_simulate,
                              clones=(n_clones, n_prom), repeat=args.repeat)
                rows.append(row)
                print_row(row, have_ours)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    ratios = [r["ours"] / r["crm"] for r in rows if r.get("ours") is not None and r.get("crm") is not None]
    both = len(ratios)
    crm_over = sum(1 for r in rows if have_crm and r.get("crm") is None)
    ours_over = sum(1 for r in rows if have_ours and r.get("ours") is None)
    walls = [r["ours_wall"] / r["crm"] for r in rows if r.get("ours_wall") is not None and r.get("crm") is not None]
    hactls = [r["sim_ours"] / r["crm"] for r in rows if r.get("sim_ours") and r.get("crm")]
    hactl_part = (f" hactl_ratio_max={max(hactls):.3f} hactl_ratio_median={statistics.median(hactls):.3f}"
                  if hactls else "")
    cpus = [r["sim_ours_cpu"] / r["crm_cpu"] for r in rows if r.get("sim_ours_cpu") and r.get("crm_cpu")]
    if cpus:
        hactl_part += f" hactl_cpu_ratio_max={max(cpus):.3f} hactl_cpu_ratio_median={statistics.median(cpus):.3f}"
    if hactls:
        hactl_part += (f" hactl_slower_cpu={sum(1 for c in cpus if c >= 1)}"
                       f" hactl_slower_wall={sum(1 for h in hactls if h >= 1)} hactl_runs={len(hactls)}")
    if ratios:
        print(f"RESULT ratio_max={max(ratios):.3f} ratio_median={statistics.median(ratios):.3f}"
              f" wall_ratio_max={max(walls):.3f} wall_ratio_median={statistics.median(walls):.3f}{hactl_part}"
              f" runs_compared={both} crm_over_{CRM_BOUND:.0f}s={crm_over} ours_failed={ours_over}")
    else:
        print(f"RESULT ratio_max=nan ratio_median=nan runs_compared=0 crm_over_{CRM_BOUND:.0f}s={crm_over}"
              f" ours_available={str(have_ours).lower()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
