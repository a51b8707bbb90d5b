"""hactl simulate: run the policy engine on a CIB file and print what it would do (like crm_simulate)."""
from __future__ import annotations

import sys
import time

from hadaemon.core.errors import ConfigError


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE.xml", help="CIB XML (cibadmin --query output or a scheduler test input)")
    parser.add_argument("--scores", action="store_true", help="print allocation scores")
    parser.add_argument("--save-graph", metavar="FILE", help="write the transition graph XML to FILE")
    parser.add_argument("--show-actions", action="store_true",
                        help="print only the executed actions, one per line")
    parser.add_argument("--now", type=int, metavar="EPOCH",
                        help="the current time in seconds since the epoch (default: the clock)")


def run(args) -> int:
    from hadaemon.core.cib import load_cib
    from hadaemon.core.policy import schedule

    try:
        cib = load_cib(args.file)
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        return 2
    now = args.now if args.now is not None else int(time.time())
    t = schedule(cib, now)
    out = []
    if args.show_actions:
        out.extend(line.strip()[2:] for line in t.executed_lines())
    else:
        counts = t.counts_line()
        if counts:
            out.extend([counts, ""])
        out.append("Current cluster status:")
        out.append(t.status_text(revised=False))
        out.append("")
        if args.scores:
            out.append("Assignment Scores:")
            out.extend(t.score_lines())
            out.append("")
        out.append("Transition Summary:")
        out.extend(t.summary)
        out.append("")
        out.append("Executing Cluster Transition:")
        out.extend(t.executed_lines())
        out.append("")
        out.append("Revised Cluster Status:")
        out.append(t.status_text(revised=True))
    sys.stdout.write("\n".join(out) + "\n")
    if args.save_graph:
        from hadaemon.io.files import write_atomic
        try:
            write_atomic(args.save_graph, t.graph.to_xml().encode(), 0o644)
        except OSError as err:
            print(f"{args.save_graph}: cannot write: {err.strerror}", file=sys.stderr)
            return 1
    return 0
