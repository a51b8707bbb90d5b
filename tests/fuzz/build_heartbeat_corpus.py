#!/usr/bin/env python3
"""Writes tests/fuzz/heartbeat-corpus.txt: seed datagrams for fuzzing the heartbeat wire parser and the
message layer (tests/unit/test_heartbeat_fuzz_corpus.py). Deterministic; run it again after a wire change
(and add the inputs a fuzz failure found: `name hex` lines in EXTRA below or appended to the file).

Each line: NAME HEX, the datagram signed with CORPUS_KEY (index 1, sha256) unless the name says otherwise.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hadaemon.core.heartbeat import wire  # noqa: E402
from hadaemon.core.heartbeat.authkeys import parse_authkeys  # noqa: E402
from hadaemon.core.heartbeat.wire import Packet  # noqa: E402

CORPUS_KEY = "auth 1\n1 sha256 fuzz-corpus-key-0123456789abcdef\n2 sha1 fuzz-corpus-second-key\n3 crc\n"
OUT = Path(__file__).with_name("heartbeat-corpus.txt")


def seeds():
    auth = parse_authkeys(CORPUS_KEY)
    sha1 = parse_authkeys(CORPUS_KEY.replace("auth 1", "auth 2"))
    crc = parse_authkeys(CORPUS_KEY.replace("auth 1", "auth 3"))
    echo = wire.encode_echo([("a", 1), ("c", 4)])
    pkts = {
        "hb": Packet(kind="hb", src="b", generation=3, seq=17, link="eth0", payload=echo),
        "hb-no-echo": Packet(kind="hb", src="b", generation=3, seq=18, link="eth0"),
        "hb-max-generation": Packet(kind="hb", src="b", generation=2**64 - 1, seq=1, link="eth0", payload=echo),
        "hb-max-seq": Packet(kind="hb", src="b", generation=3, seq=2**64 - 1, link="eth0", payload=echo),
        "hb-unknown-name": Packet(kind="hb", src="n-000001-" + "x" * 40, generation=1, seq=1, link="eth0",
                                  payload=echo),
        "hb-long-names": Packet(kind="hb", src="b" * 64, generation=1, seq=2**64 - 1, link="l" * 15,
                                payload=wire.encode_echo([("a" * 64, 2**64 - 1)])),
        "hb-unicode": Packet(kind="hb", src="nœud-ノード", generation=2, seq=5, link="eth1", payload=echo),
        "msg-one": Packet(kind="msg", src="b", dst="a", generation=3, seq=19, link="eth0", payload=b"hello",
                          channel="crmd", msg_id=1, frag=0, nfrags=1, dst_generation=1, stream_id=1, stream_seq=1),
        "msg-first-of-3": Packet(kind="msg", src="b", dst="a", generation=3, seq=20, link="eth0",
                                 payload=b"x" * 300, channel="crmd", msg_id=2, frag=0, nfrags=3, dst_generation=1,
                                 stream_id=1, stream_seq=2),
        "msg-compressed": Packet(kind="msg", src="b", dst="a", generation=3, seq=21, link="eth0",
                                 payload=b"\x01" + bytes.fromhex("789c4b4c4a0600024d0127"), channel="cib",
                                 msg_id=3, frag=0, nfrags=1, compressed=True, dst_generation=1, stream_id=1,
                                 stream_seq=5),
        "msg-broadcast": Packet(kind="msg", src="c", dst="a", generation=4, seq=3, link="eth0", payload=b"{}",
                                channel="crmd", msg_id=9, frag=0, nfrags=1, broadcast=True, dst_generation=0,
                                stream_id=2, stream_seq=1),
        "ack-sack": Packet(kind="ack", src="b", dst="a", generation=3, seq=7, link="eth0", dst_generation=1,
                           stream_id=1, ack_seq=10, stream_seq=14, sack=((12, 14), (16, 20), (30, 30))),
        "ack-max-sack": Packet(kind="ack", src="b", dst="a", generation=3, seq=8, link="eth0", dst_generation=1,
                               stream_id=1, ack_seq=0, sack=tuple((i * 4, i * 4 + 1) for i in range(1, 33))),
    }
    out = [(name, wire.encode(p, auth)) for name, p in pkts.items()]
    out.append(("hb-sha1", wire.encode(pkts["hb"], sha1)))
    out.append(("hb-crc", wire.encode(pkts["hb"], crc)))
    hb = out[0][1]
    out += [("truncated-header", hb[:20]), ("truncated-body", hb[:-5]), ("bad-version", hb[:2] + b"\x09" + hb[3:]),
            ("unknown-key", hb[:3] + b"\x07" + hb[4:]), ("no-magic", b"XX" + hb[2:]), ("empty", b"")]
    return out


def main():
    lines = [f"{name} {data.hex() or '-'}" for name, data in seeds()]
    OUT.write_text("# seed datagrams for tests/unit/test_heartbeat_fuzz_corpus.py; made by build_heartbeat_corpus.py\n"
                   + "\n".join(lines) + "\n")
    print(f"{OUT}: {len(lines)} datagrams")


if __name__ == "__main__":
    main()
