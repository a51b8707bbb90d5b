"""hactl verify: check a CIB XML file and report `FILE:line: severity: message` (like crm_verify)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

from hadaemon.core.cib.verify import (ERROR, AgentInfo, AgentSpec, XmlSyntaxError, agent_specs,
                                     parse_agent_metadata, parse_xml, verify)
from hadaemon.cli.oldcib import old_cib_refusal

DEFAULT_OCF_ROOT = "/usr/lib/ocf"
SYSTEMD_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
FENCE_DIRS = ("/usr/sbin", "/sbin", "/usr/bin")
METADATA_TIMEOUT = 10


def add_arguments(parser):
    parser.add_argument("file", metavar="FILE.xml", help="CIB XML file ('-' reads standard input)")
    parser.add_argument("--ocf-root", default=os.environ.get("OCF_ROOT", DEFAULT_OCF_ROOT),
                        help="OCF root holding resource.d/PROVIDER/TYPE (default: $OCF_ROOT or %(default)s)")
    parser.add_argument("--no-agents", action="store_true",
                        help="do not look for resource agents or run their meta-data action")
    parser.add_argument("--cache-dir", default=None,
                        help="where agent meta-data is cached (default: $XDG_CACHE_HOME/hadaemon/agent-metadata;"
                             " 'none' disables the on-disk cache)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, not warnings")


class AgentCatalogue:
    """Finds resource agents on this machine and reads their meta-data, cached in memory and on disk
    (keyed by the agent's path, size and mtime, so an upgraded agent is asked again)."""

    def __init__(self, ocf_root: str, cache_dir: str | None):
        self.ocf_root = ocf_root
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memory: Dict[str, Dict[str, bool] | None] = {}

    def lookup(self, spec: AgentSpec) -> AgentInfo:
        cls, provider, typ = spec
        if "/" in typ or "/" in provider or typ.startswith("."):
            return AgentInfo(False)
        if cls == "ocf":
            base = Path(self.ocf_root, "resource.d")
            if not base.is_dir():
                return AgentInfo(None)
            path = base / provider / typ
            if not os.access(path, os.X_OK) or not path.is_file():
                return AgentInfo(False)
            return AgentInfo(True, self.metadata(path))
        if cls == "lsb":
            return AgentInfo(Path("/etc/init.d", typ).is_file())
        if cls == "systemd":
            return AgentInfo(self._unit_exists(typ))
        if cls == "service":
            return AgentInfo(Path("/etc/init.d", typ).is_file() or self._unit_exists(typ))
        if cls == "stonith":
            return AgentInfo(any(Path(d, typ).is_file() for d in FENCE_DIRS) if typ.startswith("fence_") else None)
        return AgentInfo(None)

    @staticmethod
    def _unit_exists(typ: str) -> bool:
        unit = typ if "." in typ else typ + ".service"
        return any(Path(d, unit).exists() for d in SYSTEMD_DIRS)

    def metadata(self, path: Path) -> Dict[str, bool] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
        if key in self.memory:
            return self.memory[key]
        text = self._cached(key)
        if text is None:
            text = self._run_metadata(path)
            if text is not None:
                self._store(key, text)
        params = None
        if text is not None:
            try:
                params = parse_agent_metadata(text)
            except XmlSyntaxError:
                params = None
        self.memory[key] = params
        return params

    def _run_metadata(self, path: Path) -> bytes | None:
        env = dict(os.environ, OCF_ROOT=self.ocf_root)
        try:
            out = subprocess.run([str(path), "meta-data"], capture_output=True, env=env,
                                 timeout=METADATA_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 and out.stdout.strip() else None

    def _cached(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        try:
            return (self.cache_dir / (key + ".xml")).read_bytes()
        except OSError:
            return None

    def _store(self, key: str, text: bytes):
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{key}.{os.getpid()}"
            tmp.write_bytes(text)
            os.replace(tmp, self.cache_dir / (key + ".xml"))
        except OSError:
            pass


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hadaemon", "agent-metadata")


def run(args) -> int:
    """Exit 0: no errors (warnings may be printed); 1: errors found; 2: the file cannot be read."""
    path = args.file
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        print(f"{path}: cannot read: {e.strerror}", file=sys.stderr)
        return 2
    try:
        root = parse_xml(data)
    except XmlSyntaxError as e:
        print(f"{path}:{e.line}: {ERROR}: {e.message}", file=sys.stderr)
        return 1
    refusal = old_cib_refusal(data, path)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    agents = {}
    if not args.no_agents:
        cache = args.cache_dir if args.cache_dir is not None else default_cache_dir()
        catalogue = AgentCatalogue(args.ocf_root, None if cache == "none" else cache)
        agents = {spec: catalogue.lookup(spec) for spec in sorted(agent_specs(root))}
    findings = verify(root, agents)
    errors = [f for f in findings if f.severity == ERROR]
    for f in findings:
        if f.severity == ERROR or not args.quiet:
            print(f.format(path), file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)", file=sys.stderr)
        return 1
    return 0

