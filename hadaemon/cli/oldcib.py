"""The Heartbeat 2.x CIB check shared by hactl simulate and hactl verify, light enough for simulate's start-up
(it reads only <cib>'s attributes unless they name a schema older than 1.0)."""
from __future__ import annotations


def old_cib_refusal(data: bytes, name: str) -> str | None:
    """`name:line: error: ...` naming `hactl cib upgrade` when DATA is a Heartbeat 2.x CIB (as `hactl cib
    import` and ha-crmd refuse it: such a file is converted, never silently misread), else None."""
    from xml.parsers import expat

    # heartbeat2_reason decides from <cib validate-with> alone when it names a schema from 1.0 on: read
    # just the root element then, not the whole (possibly large) document a second time
    root: dict = {}

    class _Root(Exception):
        pass

    def start(tag, attrs):
        root.update(attrs)
        raise _Root

    peek = expat.ParserCreate()
    peek.StartElementHandler = start
    try:
        peek.Parse(data, True)
    except (_Root, expat.ExpatError):
        pass
    vw = root.get("validate-with")
    if vw is not None and not vw.startswith(("pacemaker-0.", "transitional-0.")):
        return None
    import re

    from hadaemon.core.cib.upgrade import heartbeat2_reason
    from hadaemon.core.cib.xmltree import XmlSyntaxError as TreeSyntaxError
    from hadaemon.core.cib.xmltree import parse_xml as parse_tree

    try:
        reason = heartbeat2_reason(parse_tree(data, name))
    except TreeSyntaxError:
        return None
    if reason is None:
        return None
    from hadaemon.core.cib.verify import ERROR

    m = re.search(r"\(line (\d+)\)", reason)
    return (f"{name}:{m.group(1) if m else 1}: {ERROR}: this is a Heartbeat 2.x CIB ({reason}); convert it first "
            f"with `hactl cib upgrade {name} -o NEW.xml` (like `cibadmin --upgrade`), then use NEW.xml")
