"""What the hactl subcommands that talk to ha-crmd share: one Crm1 call, errors, colour and tables."""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Dict, List, Sequence

from hadaemon.bus.crm_client import CrmClient, CrmError, CrmUnavailable

# exit codes: 0 done, 1 refused or failed, 2 bad usage (argparse), 3 ha-crmd not reachable
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def add_timeout(parser) -> None:
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for ha-crmd (default 60: a change waits for replication)")


def call(prog: str, member: str, signature: str = "", *args, timeout: float = 60.0):
    """Call org.hadaemon.Crm1.member; returns (exit code, reply body). Errors are printed as
    'hactl PROG: message' on stderr."""
    async def go():
        crm = await CrmClient.connect(timeout=min(timeout, 10.0), call_timeout=timeout)
        try:
            return await crm.call(member, signature, *args)
        finally:
            crm.close()

    try:
        return EXIT_OK, asyncio.run(go())
    except CrmUnavailable as exc:
        print(f"hactl {prog}: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE, None
    except CrmError as exc:
        print(f"hactl {prog}: {exc.message}" + (f" ({exc.kind})" if exc.kind in ("NotReady", "NoQuorum") else ""),
              file=sys.stderr)
        return EXIT_REFUSED, None


def status(prog: str, timeout: float = 10.0):
    """(exit code, the Crm1 Status dict or None)."""
    async def go():
        crm = await CrmClient.connect(timeout=timeout, call_timeout=timeout)
        try:
            return await crm.status()
        finally:
            crm.close()

    try:
        return EXIT_OK, asyncio.run(go())
    except CrmUnavailable as exc:
        print(f"hactl {prog}: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE, None
    except CrmError as exc:
        print(f"hactl {prog}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED, None


def done(prog: str, what: str, body, quiet: bool = False) -> int:
    """Print what was done and the CIB version the change made (the reply's last string)."""
    if not quiet:
        epoch = body[-1] if body else ""
        print(f"{what}" + (f" (CIB {epoch})" if epoch else ""))
    return EXIT_OK


def usage_error(message: str):
    """Print a usage problem and exit 2 (as argparse does)."""
    print(message, file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def pairs(items: Sequence[str], what: str) -> Dict[str, str]:
    """NAME=VALUE arguments -> dict; raises SystemExit(2) with a message for a bad one."""
    out: Dict[str, str] = {}
    for item in items:
        if "=" not in item or item.startswith("="):
            usage_error(f"hactl: {what} {item!r} is not NAME=VALUE")
        k, v = item.split("=", 1)
        out[k] = v
    return out


# --- output: colour on a terminal, plain when piped -----------------------------------------------------
_COLOURS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, colour: str, on: bool) -> str:
    if not on or colour not in _COLOURS:
        return text
    return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def table(rows: List[List[str]], indent: str = "", colours: List[List[str]] | None = None, on: bool = False) -> List[str]:
    """Rows of cells as aligned columns (the first row is the header); colours per cell when on."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    out = []
    for ri, r in enumerate(rows):
        cells = []
        for i, c in enumerate(r):
            cell = c.ljust(widths[i]) if i < len(r) - 1 else c
            colour = colours[ri][i] if colours and ri < len(colours) and i < len(colours[ri]) else ""
            cells.append(paint(cell, "bold" if ri == 0 else colour, on))
        out.append((indent + "  ".join(cells)).rstrip())
    return out
