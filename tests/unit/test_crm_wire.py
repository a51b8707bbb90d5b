"""crmd messages: small ones as is, large ones compressed, over CHUNK in chunks reassembled in any
order; bad, oversized or truncated ones are refused without raising."""
import base64
import os
import random

from hadaemon.daemons import crmd_wire as W


def _roundtrip(frames, src="n1", order=None):
    r = W.Reassembler()
    out = []
    msgs = [W.decode(f) for f in frames]
    for i in (order if order is not None else range(len(msgs))):
        got = r.feed(src, msgs[i], 0.0)
        assert r.last_error == ""
        if got is not None:
            out.append(got)
    return out, r


def test_small_message_is_sent_as_is():
    frames = W.frames("vote", vote={"a": 1})
    assert len(frames) == 1 and W.decode(frames[0]) == {"vote": {"a": 1}, "t": "vote"}


def test_compressible_large_message_is_one_compressed_frame():
    xml = "<cib>" + "<x/>" * 200000 + "</cib>"
    frames = W.frames("cib", xml=xml, ack=3)
    assert len(frames) == 1 and W.decode(frames[0])["t"] == "z"
    out, _ = _roundtrip(frames)
    assert out == [{"xml": xml, "ack": 3, "t": "cib"}]


def test_incompressible_2_mib_message_is_chunked_and_reassembled_in_any_order():
    blob = base64.b64encode(os.urandom(1536 * 1024)).decode()
    frames = W.frames("cib", xml=blob, ack=0)
    assert len(frames) >= 3 and all(len(f) < 1 << 20 for f in frames)
    order = list(range(len(frames)))
    random.Random(4).shuffle(order)
    out, r = _roundtrip(frames, order=order)
    assert out == [{"xml": blob, "ack": 0, "t": "cib"}] and r.partial == {}


def test_bad_chunks_are_refused_and_partials_are_bounded():
    r = W.Reassembler()
    assert r.feed("n1", {"t": "z", "data": "not base64!"}, 0.0) is None and r.last_error
    assert r.feed("n1", {"t": "z", "data": base64.b64encode(b"garbage").decode()}, 0.0) is None
    assert r.feed("n1", {"t": "chunk", "id": 1, "i": 5, "n": 2, "data": ""}, 0.0) is None and r.last_error
    for mid in range(W.MAX_PARTIAL + 3):
        r.feed("n1", {"t": "chunk", "id": mid, "i": 0, "n": 2, "data": base64.b64encode(b"x").decode()}, 0.0)
    assert len(r.partial) == W.MAX_PARTIAL
    r.feed("n1", {"t": "chunk", "id": 99, "i": 0, "n": 2, "data": ""}, W.PARTIAL_TTL + 1)
    assert list(r.partial) == [("n1", 99)]
    r.forget("n1")
    assert r.partial == {}
