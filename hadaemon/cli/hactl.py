"""hactl: the admin's command line. Each subcommand lives in its own module under hadaemon.cli."""
import sys

# subcommand -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "status": ("hadaemon.cli.status", "the cluster like crm_mon: nodes, DC, resources; membership and links"),
    "resource": ("hadaemon.cli.resource", "move, ban, clear, cleanup, enable, disable, create, delete, show"),
    "group": ("hadaemon.cli.group", "create, add, remove, delete resource groups"),
    "constraint": ("hadaemon.cli.constraint", "location, colocation, order constraints; delete, list"),
    "node": ("hadaemon.cli.node", "standby, online, maintenance, list"),
    "cib": ("hadaemon.cli.cib", "show, export, import the CIB; upgrade a Heartbeat 2.x CIB file"),
    "simulate": ("hadaemon.cli.simulate", "run the policy engine on a CIB file (like crm_simulate)"),
    "verify": ("hadaemon.cli.verify", "check a CIB file for errors (like crm_verify)"),
    "director": ("hadaemon.cli.director", "LVS director: status, weights, drain, reload"),
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hadaemon")
    except Exception:  # noqa: BLE001 - not installed as a distribution (running from the tree)
        from hadaemon import __version__

        return __version__


def build_parser(only=None):
    """The argparse parser of every subcommand (only: the one whose module is loaded, the others get their
    name and help only)."""
    import argparse
    import importlib

    class VersionAction(argparse.Action):
        """--version, looked up only when asked (importlib.metadata costs tens of ms at every start-up)."""

        def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
            super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                             help="show program's version number and exit")

        def __call__(self, parser, namespace, values, option_string=None):
            parser._print_message(f"hactl (hadaemon) {_version()}\n", sys.stdout)
            parser.exit()

    parser = argparse.ArgumentParser(prog="hactl", description="Drive and inspect a hadaemon cluster.")
    parser.add_argument("--version", action=VersionAction)
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
    # a score of -INFINITY is an argument, not an option: argparse takes -1000000 (the same score) as one
    argv = ["-1000000" if a.lower() in ("-infinity", "-inf") else a for a in argv]
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = None
    if only == "simulate":  # start-up is most of a small simulation: its common command lines skip argparse
        from hadaemon.cli import simulate

        args = simulate.parse_fast(argv[1:])
        run = simulate.run
    if args is None:
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


def console_main() -> int:
    """The `hactl` command (pyproject's console script): main(), with a cheaper start and end for simulate,
    whose whole run on a small CIB takes less time than the interpreter's own start-up. Its imports and run go
    without the cyclic garbage collector (parse and schedule already pause it; its passes over the modules
    being loaded cost ~1 ms) and, the output flushed, it leaves with os._exit: tearing the interpreter down,
    freeing every object one by one, would cost ~2.5 ms more (mypy's hard_exit does the same)."""
    argv = sys.argv[1:]
    if argv[:1] != ["simulate"]:
        if sys.flags.no_site:  # the RPM's hactl runs python3 -IS (for simulate): the other commands need their
            import site       # dependencies (dbus-next) wherever the system's site directories hold them

            site.main()
        return main(argv)
    import gc
    import os

    gc.disable()
    rc = main(argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (`hactl simulate ... | head`): success, as in main()
        pass
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(console_main())
