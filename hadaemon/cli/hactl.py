"""hactl: the admin's command line. Each subcommand lives in its own module under hadaemon.cli."""
import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "simulate": ("hadaemon.cli.simulate", "run the policy engine on a CIB file (like crm_simulate)"),
    "verify": ("hadaemon.cli.verify", "check a CIB file for errors (like crm_verify)"),
    "status": ("hadaemon.cli.status", "membership and link status from ha-heartbeat"),
    "director": ("hadaemon.cli.director", "LVS director: status, weights, drain, reload"),
}


def build_parser(only=None):
    parser = argparse.ArgumentParser(prog="hactl", description="Drive and inspect a hadaemon cluster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, helptext) in SUBCOMMANDS.items():
        if only and name != only:
            sub.add_parser(name, help=helptext)
            continue
        p = sub.add_parser(name, help=helptext, description=helptext)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
