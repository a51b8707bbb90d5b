"""Resource agents on this node for ha-web's forms: classes, providers and types (OCF under ocf_root,
LSB scripts in /etc/init.d, systemd services), and an OCF agent's meta-data parsed into parameters.
Crm1 does not export the LRM's meta-data, and the console runs on a cluster node, so it reads them here."""
from __future__ import annotations

import asyncio
import os
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

__all__ = ["Agents", "parse_meta_data"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")
_BOOLEANS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"}


def parse_meta_data(text: str) -> dict:
    """{"shortdesc", "longdesc", "parameters": [{name, required, unique, type, default, shortdesc,
    longdesc}], "actions": [{name, timeout, interval, depth}]} from an OCF meta-data document."""
    root = ET.fromstring(text)

    def desc(el, tag):
        x = el.find(tag)
        return " ".join((x.text or "").split()) if x is not None else ""

    params = []
    for p in root.findall("./parameters/parameter"):
        content = p.find("content")
        params.append({"name": p.get("name", ""), "required": p.get("required", "0") in ("1", "true"),
                       "unique": p.get("unique", "0") in ("1", "true"),
                       "type": content.get("type", "string") if content is not None else "string",
                       "default": content.get("default", "") if content is not None else "",
                       "shortdesc": desc(p, "shortdesc"), "longdesc": desc(p, "longdesc")})
    actions = [{k: a.get(k, "") for k in ("name", "timeout", "interval", "depth")}
               for a in root.findall("./actions/action")]
    return {"shortdesc": desc(root, "shortdesc"), "longdesc": desc(root, "longdesc"),
            "parameters": params, "actions": actions}


class Agents:
    def __init__(self, ocf_root: str = "/usr/lib/ocf", lsb_dir: str = "/etc/init.d", timeout: float = 15.0):
        self.ocf_root, self.lsb_dir, self.timeout = ocf_root, lsb_dir, timeout
        self._cache: Dict[tuple, dict] = {}

    def providers(self) -> List[str]:
        base = os.path.join(self.ocf_root, "resource.d")
        try:
            return sorted(p for p in os.listdir(base) if os.path.isdir(os.path.join(base, p)))
        except OSError:
            return []

    async def listing(self) -> dict:
        out: dict = {"ocf": {}, "lsb": [], "systemd": []}
        for prov in self.providers():
            d = os.path.join(self.ocf_root, "resource.d", prov)
            out["ocf"][prov] = sorted(t for t in os.listdir(d) if _NAME.match(t) and not t.startswith(".")
                                      and os.access(os.path.join(d, t), os.X_OK))
        try:
            out["lsb"] = sorted(t for t in os.listdir(self.lsb_dir) if _NAME.match(t)
                                and os.access(os.path.join(self.lsb_dir, t), os.X_OK))
        except OSError:
            pass
        try:
            proc = await asyncio.create_subprocess_exec(
                "systemctl", "list-unit-files", "--type=service", "--no-legend", "--no-pager",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            stdout, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
            units = [line.split()[0] for line in stdout.decode(errors="replace").splitlines() if line.split()]
            out["systemd"] = sorted(u[:-len(".service")] for u in units
                                    if u.endswith(".service") and "@" not in u)
        except (OSError, asyncio.TimeoutError):
            pass
        return out

    async def meta_data(self, cls: str, provider: str, type_: str) -> dict:
        if cls != "ocf":
            # lsb and systemd agents have no parameters (Pacemaker's meta-data for them has none)
            return {"shortdesc": f"{cls}:{type_}", "longdesc": "", "parameters": [],
                    "actions": [{"name": "monitor", "timeout": "100s", "interval": "15s", "depth": ""}]}
        if not (_NAME.match(provider or "") and _NAME.match(type_ or "")):
            raise ValueError("bad agent name")
        key = (cls, provider, type_)
        if key in self._cache:
            return self._cache[key]
        path = os.path.join(self.ocf_root, "resource.d", provider, type_)
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"no agent ocf:{provider}:{type_} on this node")
        env = dict(os.environ, OCF_ROOT=self.ocf_root, OCF_RESOURCE_INSTANCE="meta-data",
                   OCF_RESOURCE_TYPE=type_, OCF_RESOURCE_PROVIDER=provider)
        proc = await asyncio.create_subprocess_exec(path, "meta-data", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL, env=env)
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            raise RuntimeError(f"ocf:{provider}:{type_} meta-data did not finish in {self.timeout:g}s") from None
        try:
            md = parse_meta_data(stdout.decode(errors="replace"))
        except ET.ParseError as exc:
            raise RuntimeError(f"ocf:{provider}:{type_} meta-data is not XML: {exc}") from None
        self._cache[key] = md
        return md

    async def validate(self, provider: str, type_: str, params: Dict[str, str],
                       changed=None) -> Tuple[str, str] | None:
        """Check a primitive's parameters before it is created or changed: (field, message) when they
        are wrong, else None. Refused: a required parameter missing, a parameter the agent does not have,
        an integer/boolean that is not one, and what the agent's own validate-all calls a configuration
        error (exit code 6, OCF_ERR_CONFIGURED: wrong on every node). Other validate-all failures depend
        on this node (a missing binary, no interface for the address here) and do not refuse.
        changed: for an edit, the names being set (params is then the whole new set): only those are
        checked for being unknown or mistyped, so a parameter the CIB already had does not block an edit."""
        md = await self.meta_data("ocf", provider, type_)
        known = {p["name"]: p for p in md["parameters"]}
        editing = changed is not None
        changed = set(params) if changed is None else set(changed)
        for name in params:
            if known and name not in known and name in changed:
                return f"params.{name}", (f"ocf:{provider}:{type_} has no parameter '{name}' "
                                          f"(it has: {', '.join(sorted(known))})")
        for p in md["parameters"]:
            value = params.get(p["name"], "")
            if p["required"] and not value and (not editing or p["name"] in changed):
                return f"params.{p['name']}", f"{p['name']} is required by ocf:{provider}:{type_}"
            if p["name"] not in changed:
                continue
            if value and p["type"] == "integer" and not re.fullmatch(r"[+-]?\d+", value):
                return f"params.{p['name']}", f"{p['name']} must be an integer, not '{value}'"
            if value and p["type"] == "boolean" and value.lower() not in _BOOLEANS:
                return f"params.{p['name']}", f"{p['name']} must be true or false, not '{value}'"
        if not any(a["name"] == "validate-all" for a in md["actions"]):
            return None
        path = os.path.join(self.ocf_root, "resource.d", provider, type_)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "OCF_ROOT": self.ocf_root,
               "OCF_RESOURCE_INSTANCE": "ha-web-validate", "OCF_RESOURCE_TYPE": type_,
               "OCF_RESOURCE_PROVIDER": provider, "HA_LOGFACILITY": "none", "HA_debug": "0"}
        env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
        proc = await asyncio.create_subprocess_exec(path, "validate-all", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env,
                                                    stdin=asyncio.subprocess.DEVNULL)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return None
        if proc.returncode != 6:
            return None
        lines = [re.sub(r"^\w{3} \d\d \d\d:\d\d:\d\d ", "", x).strip()
                 for x in (err + out).decode(errors="replace").splitlines()]
        lines = [x for x in lines if x and not x.startswith("ocf-exit-reason:")] or \
            [x.split(":", 1)[1] for x in lines if x.startswith("ocf-exit-reason:")]
        message = "; ".join(dict.fromkeys(x.replace("ERROR: ", "") for x in lines)) or \
            f"ocf:{provider}:{type_} says the configuration is wrong (validate-all exit 6)"
        names = sorted(params, key=lambda k: k not in changed)  # a value the user just gave first
        field = next((f"params.{k}" for k in names if len(params[k]) >= 3 and params[k] in message), "")
        return field, message
