"""Messages between crmd instances on the heartbeat channel "crmd": JSON objects with a type field "t".

vote          {vote}                                  election (every node -> every node)
join_offer    {round, dc, instance}                   DC -> voter
join_report   {round, version, cib, lrm, attrs}       voter -> DC (cib: configuration-only XML)
cib           {xml, ack}                              DC -> members: the whole CIB (ack: request id or 0)
cib_ack       {version, ack}                          member -> DC
op            {tkey, rsc, op, digest, target_rc}      DC -> node: run an operation through the LRM
op_result     {record}                                node -> DC: an OpRecord
fence         {id, device, target, action, timeout_ms}  DC -> executor node; fence_result {id, ok, text}
modify        {req, conf, reason} / modify_reply {req, version | kind, message}   member <-> DC
cleanup       {req, rsc, node} / forget {rsc}          member -> DC / DC -> node (drop local history)
attr          {name, value}                           node -> DC: a transient node attribute (pingd)
"""
from __future__ import annotations

import json
from typing import Any, Dict

CHANNEL = "crmd"

__all__ = ["CHANNEL", "encode", "decode"]


def encode(kind: str, /, **fields: Any) -> bytes:
    fields["t"] = kind
    return json.dumps(fields, separators=(",", ":")).encode()


def decode(body: bytes) -> Dict[str, Any] | None:
    """The message, or None when it is not a crmd message we understand."""
    try:
        msg = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        return None
    return msg
