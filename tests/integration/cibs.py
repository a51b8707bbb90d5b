"""Small CIBs for the ha-crmd integration tests: one place for the document's frame, the cluster
options, the fence_hadaemon device and the Dummy resource the tests keep writing."""
from __future__ import annotations

from typing import Dict


def cib(resources: str, constraints: str = "", options: Dict[str, str] | None = None, extra: str = "") -> str:
    """A pacemaker-3.0 CIB with these cluster options (stonith-enabled false unless given),
    resources and constraints (then `extra`, e.g. rsc_defaults), no nodes and an empty status."""
    opts = {"stonith-enabled": "false", **(options or {})}
    nvpairs = "\n".join(f'<nvpair id="o-{name}" name="{name}" value="{value}"/>' for name, value in opts.items())
    return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
{nvpairs}
</cluster_property_set></crm_config>
<nodes/>
<resources>
{resources}
</resources>
<constraints>{constraints}</constraints>
{extra}</configuration><status/></cib>"""


def fence_device(socket: str, hosts: str, meta: Dict[str, str] | None = None, rsc: str = "fence",
                 monitor: str | None = None) -> str:
    """A stonith:fence_hadaemon primitive driving the harness's power switch at `socket` (with a
    recurring monitor every `monitor` when given)."""
    metas = "".join(f'<nvpair id="{rsc}-{k}" name="{k}" value="{v}"/>' for k, v in (meta or {}).items())
    return (f'<primitive id="{rsc}" class="stonith" type="fence_hadaemon">\n'
            f'<instance_attributes id="{rsc}-a"><nvpair id="{rsc}-ip" name="ipaddr" value="{socket}"/>\n'
            f'<nvpair id="{rsc}-hosts" name="pcmk_host_list" value="{hosts}"/></instance_attributes>\n'
            + (f'<meta_attributes id="{rsc}-m">{metas}</meta_attributes>\n' if metas else "")
            + (f'<operations><op id="{rsc}-mon" name="monitor" interval="{monitor}" timeout="20s"/></operations>\n'
               if monitor else "")
            + "</primitive>")


def dummy_primitive(rsc: str, monitor: str = "2s") -> str:
    """An ocf:heartbeat:Dummy primitive with a recurring monitor."""
    return (f'<primitive id="{rsc}" class="ocf" provider="heartbeat" type="Dummy">\n'
            f'<operations><op id="{rsc}-mon" name="monitor" interval="{monitor}" timeout="10s"/></operations>\n'
            "</primitive>")
