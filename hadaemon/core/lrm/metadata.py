"""Meta-data for agent classes that have none of their own: LSB init scripts (from their
"### BEGIN INIT INFO" header, as Pacemaker's services_lsb.c builds it) and systemd units."""
from __future__ import annotations

from typing import Dict
from xml.sax.saxutils import escape

_LSB_FIELDS = {
    "# Provides:": "Provides", "# Required-Start:": "Required-Start", "# Required-Stop:": "Required-Stop",
    "# Should-Start:": "Should-Start", "# Should-Stop:": "Should-Stop", "# Default-Start:": "Default-Start",
    "# Default-Stop:": "Default-Stop", "# Short-Description:": "Short-Description",
}


def lsb_header(text: str) -> Dict[str, str]:
    """The fields of an init script's LSB comment block (first value of each wins)."""
    fields: Dict[str, str] = {}
    in_header = False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("### BEGIN INIT INFO"):
            in_header = True
            continue
        if not in_header:
            continue
        matched = False
        for prefix, name in _LSB_FIELDS.items():
            if line.startswith(prefix):
                fields.setdefault(name, line[len(prefix):].strip())
                matched = True
                break
        if matched:
            continue
        if line.startswith("# Description:") and "Description" not in fields:
            desc = [line[len("# Description:"):].strip()]
            while i < len(lines) and (lines[i].startswith("#  ") or lines[i].startswith("#\t")):
                desc.append(lines[i][1:].strip())
                i += 1
            fields["Description"] = "\n".join(d for d in desc if d)
            continue
        if line.startswith("### END INIT INFO") or not line.startswith("#"):
            break
    return fields


def lsb_metadata(agent: str, script_text: str) -> str:
    """Pacemaker-style meta-data of an LSB init script."""
    f = lsb_header(script_text)
    e = escape
    special = "".join(
        f"    <{k}>{e(f.get(k, ''))}</{k}>\n"
        for k in ("Provides", "Required-Start", "Required-Stop", "Should-Start", "Should-Stop",
                  "Default-Start", "Default-Stop"))
    return (
        "<?xml version='1.0'?>\n"
        f"<resource-agent name='{e(agent, {chr(39): '&apos;'})}' version='0.1'>\n"
        "  <version>1.0</version>\n"
        f"  <longdesc lang='en'>\n{e(f.get('Description', agent))}\n  </longdesc>\n"
        f"  <shortdesc lang='en'>{e(f.get('Short-Description', agent))}</shortdesc>\n"
        "  <parameters/>\n"
        "  <actions>\n"
        "    <action name='meta-data'    timeout='5s' />\n"
        "    <action name='start'        timeout='15s' />\n"
        "    <action name='stop'         timeout='15s' />\n"
        "    <action name='status'       timeout='15s' />\n"
        "    <action name='restart'      timeout='15s' />\n"
        "    <action name='force-reload' timeout='15s' />\n"
        "    <action name='monitor'      timeout='15s' interval='15s' />\n"
        "  </actions>\n"
        "  <special tag='LSB'>\n"
        f"{special}"
        "  </special>\n"
        "</resource-agent>\n")


def systemd_metadata(unit: str, description: str) -> str:
    """Pacemaker-style meta-data of a systemd unit (its Description as the short description)."""
    e = escape
    name = unit[:-len(".service")] if unit.endswith(".service") else unit
    desc = description or name
    return (
        "<?xml version='1.0'?>\n"
        f"<resource-agent name='{e(name, {chr(39): '&apos;'})}' version='0.1'>\n"
        "  <version>1.1</version>\n"
        f"  <longdesc lang='en'>\n{e(desc)}\n  </longdesc>\n"
        f"  <shortdesc lang='en'>systemd unit file for {e(name)}</shortdesc>\n"
        "  <parameters/>\n"
        "  <actions>\n"
        "    <action name='start'     timeout='100s' />\n"
        "    <action name='stop'      timeout='100s' />\n"
        "    <action name='status'    timeout='100s' />\n"
        "    <action name='monitor'   timeout='100s' interval='60s'/>\n"
        "    <action name='meta-data' timeout='5s' />\n"
        "  </actions>\n"
        "  <special tag='systemd'/>\n"
        "</resource-agent>\n")


_TRUE = ("1", "true", "yes", "y", "on")


def reload_parameters(metadata_xml: str):
    """What an OCF agent's meta-data says about reloads, as Pacemaker's controller reads it
    (controld_metadata.c, used by append_restart_list): ("reload-agent", names of the parameters NOT
    marked reloadable) when the agent declares OCF 1.1 or later and a reload-agent action;
    ("reload", names of the parameters marked unique) when it is older and has a reload action
    (the pre-1.1 convention: unique="0" meant reloadable); None when it cannot reload or the XML is
    unreadable. A change of a listed parameter needs a restart, of any other one a reload."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(metadata_xml)
    except ET.ParseError:
        return None
    version = (root.findtext("version") or "0").strip()
    try:
        ocf1_1 = tuple(int(x) for x in version.split(".")[:2]) >= (1, 1)
    except ValueError:
        ocf1_1 = False
    actions = {a.get("name") for a in root.iter("action")}
    params = [p for p in root.iter("parameter") if p.get("name")]
    if ocf1_1 and "reload-agent" in actions:
        return "reload-agent", tuple(p.get("name") for p in params
                                     if (p.get("reloadable") or "").lower() not in _TRUE)
    if not ocf1_1 and "reload" in actions:
        return "reload", tuple(p.get("name") for p in params if (p.get("unique") or "").lower() in _TRUE)
    return None
