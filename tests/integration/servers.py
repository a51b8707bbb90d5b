"""Small asyncio servers on loopback that speak just enough of each protocol to test the checkers."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess

import pytest

from hadaemon.core.director.checks import CheckSpec

from hadaemon.io.checks import ber
from hadaemon.io.checks.radius import hide_password


LO = "127.0.0.1"


def spec(service, port, kind="negotiate", timeout=2.0, **kw):
    """A CheckSpec for a server on 127.0.0.1:port."""
    return CheckSpec(kind, service, kw.pop("protocol", "tcp"), LO, 4, port, timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


@pytest.fixture
async def running():
    """Start servers with `await running(server_coro)`; all are closed at the end."""
    started = []

    async def start(coro):
        server, port = await coro
        started.append(server)
        return port
    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=not-the-real-name", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


async def serve(handler, host="127.0.0.1", ssl=None):
    server = await asyncio.start_server(handler, host, 0, ssl=ssl)
    return server, server.sockets[0].getsockname()[1]


async def _lines(reader):
    line = await reader.readline()
    return line.decode().rstrip("\r\n")


# ---- HTTP ---------------------------------------------------------------------

def http_handler(seen: list):
    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        seen.append((method, target, headers.get("host")))
        path = target.split("://", 1)[-1]
        path = path[path.index("/"):] if "://" in target else target
        if path == "/.test.html":
            status, body, extra = "200 OK", b"OK\n", ""
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n4\r\nOK!!\r\n0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        elif path == "/redirect":
            status, body, extra = "302 Found", b"", "Location: /.test.html\r\n"
        elif path == "/wrong":
            status, body, extra = "200 OK", b"Server is repairing\n", ""
        else:
            status, body, extra = "404 Not Found", b"no\n", ""
        if method == "HEAD":
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode())
        else:
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()
        writer.close()
    return handle


async def silent(reader, writer):
    """Accept and never answer (a hung real server); ends when the client hangs up."""
    try:
        await reader.read()
    except ConnectionError:
        pass
    writer.close()


# ---- mail ---------------------------------------------------------------------

def smtp_handler(banner="220 mail ESMTP"):
    async def handle(reader, writer):
        writer.write(f"{banner}\r\n".encode())
        while True:
            line = await _lines(reader)
            if not line:
                break
            cmd = line.split(" ")[0].upper()
            if cmd == "EHLO":
                writer.write(b"250-mail hello\r\n250 PIPELINING\r\n")
            elif cmd == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"502 no\r\n")
        await writer.drain()
        writer.close()
    return handle


def pop_handler(user="u", password="p"):
    async def handle(reader, writer):
        writer.write(b"+OK POP3 ready\r\n")
        got_user = None
        while True:
            line = await _lines(reader)
            if not line:
                break
            cmd, _, arg = line.partition(" ")
            if cmd == "USER":
                got_user = arg
                writer.write(b"+OK\r\n")
            elif cmd == "PASS":
                writer.write(b"+OK\r\n" if (got_user, arg) == (user, password) else b"-ERR auth\r\n")
            elif cmd == "QUIT":
                writer.write(b"+OK bye\r\n")
                break
        await writer.drain()
        writer.close()
    return handle


def imap_handler(user="u", password="p"):
    async def handle(reader, writer):
        writer.write(b"* OK IMAP4rev1 ready\r\n")
        while True:
            line = await _lines(reader)
            if not line:
                break
            tag, cmd, rest = (line.split(" ", 2) + ["", ""])[:3]
            if cmd.upper() == "LOGIN":
                ok = rest == f'"{user}" "{password}"'
                writer.write(f"{tag} {'OK' if ok else 'NO'} login\r\n".encode())
            elif cmd.upper() == "LOGOUT":
                writer.write(f"* BYE\r\n{tag} OK\r\n".encode())
                break
        await writer.drain()
        writer.close()
    return handle


def nntp_handler(greeting):
    async def handle(reader, writer):
        writer.write(f"{greeting}\r\n".encode())
        await writer.drain()
        await reader.read(100)
        writer.close()
    return handle


# ---- FTP ----------------------------------------------------------------------

def ftp_handler(files: dict, user="anonymous"):
    async def handle(reader, writer):
        writer.write(b"220 ftp ready\r\n")
        data_server = None
        data_conn = asyncio.get_running_loop().create_future()
        while True:
            line = await _lines(reader)
            if not line:
                break
            cmd, _, arg = line.partition(" ")
            if cmd == "USER":
                writer.write(b"331 password\r\n" if arg == user else b"530 no\r\n")
            elif cmd == "PASS":
                writer.write(b"230 in\r\n")
            elif cmd in ("CWD", "TYPE"):
                writer.write(b"250 ok\r\n" if cmd == "CWD" else b"200 binary\r\n")
            elif cmd == "PASV":
                async def on_data(r, w):
                    if not data_conn.done():
                        data_conn.set_result(w)
                data_server = await asyncio.start_server(on_data, "127.0.0.1", 0)
                port = data_server.sockets[0].getsockname()[1]
                writer.write(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 255})\r\n".encode())
            elif cmd == "RETR":
                if arg not in files:
                    writer.write(b"550 no such file\r\n")
                    continue
                writer.write(b"150 sending\r\n")
                await writer.drain()
                w = await data_conn
                w.write(files[arg])
                await w.drain()
                w.close()
                writer.write(b"226 done\r\n")
            elif cmd == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            await writer.drain()
        if data_server:
            data_server.close()
        writer.close()
    return handle


# ---- LDAP ---------------------------------------------------------------------

def ldap_handler(entries: set, dn="cn=admin", password="secret"):
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readexactly(2)
                if head[1] & 0x80:
                    head += await reader.readexactly(head[1] & 0x7F)
                _, _, n = ber.header(head)
                msg = ber.parse(await reader.readexactly(n))
                msgid = ber.to_int(msg[0][1])
                tag, value = msg[1]
                if tag == 0x60:
                    parts = ber.parse(value)
                    name, pw = parts[1][1].decode(), parts[2][1].decode()
                    code = 0 if (name, pw) in (("", ""), (dn, password)) else 49
                    res = ber.seq(ber.integer(code, 0x0A), ber.octets(b""), ber.octets(b""), tag=0x61)
                    writer.write(ber.seq(ber.integer(msgid), res))
                elif tag == 0x63:
                    base = ber.parse(value)[0][1].decode()
                    if base in entries:
                        entry = ber.seq(ber.octets(base.encode()), ber.seq(), tag=0x64)
                        writer.write(ber.seq(ber.integer(msgid), entry))
                        code = 0
                    else:
                        code = 32
                    done = ber.seq(ber.integer(code, 0x0A), ber.octets(b""), ber.octets(b""), tag=0x65)
                    writer.write(ber.seq(ber.integer(msgid), done))
                elif tag == 0x42:
                    break
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()
    return handle


# ---- UDP: DNS, SIP, RADIUS ------------------------------------------------------

class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, reply):
        self.reply = reply

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        out = self.reply(data)
        if out is not None:
            self.transport.sendto(out, addr)


async def serve_udp(reply, host="127.0.0.1"):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: UdpServer(reply), local_addr=(host, 0))
    return transport, transport.get_extra_info("sockname")[1]


def dns_reply(records: dict):
    """Answer A queries for names in `records` (name -> dotted address)."""
    def reply(q: bytes):
        qid = q[:2]
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        question = q[12:i + 5]
        name = ".".join(labels)
        if name in records:
            rdata = bytes(int(x) for x in records[name].split("."))
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + rdata
            return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer
        return qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    return reply


def sip_reply(status="SIP/2.0 200 OK"):
    def reply(data: bytes):
        if not data.startswith(b"OPTIONS sip:"):
            return None
        return f"{status}\r\nCSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode()
    return reply


def radius_reply(secret: str, user: str, password: str):
    def reply(data: bytes):
        code, ident, length = struct.unpack("!BBH", data[:4])
        auth = data[4:20]
        attrs, i = {}, 20
        while i < length:
            t, n = data[i], data[i + 1]
            attrs[t] = data[i + 2:i + n]
            i += n
        ok = attrs.get(1) == user.encode() and attrs.get(2) == hide_password(
            password.encode(), secret.encode(), auth)
        rcode = 2 if ok else 3
        body = struct.pack("!BBH", rcode, ident, 20)
        rauth = hashlib.md5(body + auth + secret.encode()).digest()
        return body + rauth
    return reply


# ---- MySQL --------------------------------------------------------------------

def mysql_handler(user="readuser", password="genericpassword", rows=1):
    """A MySQL server speaking handshake v10 + mysql_native_password and one-column result sets."""
    stored = hashlib.sha1(hashlib.sha1(password.encode()).digest()).digest()
    nonce = b"abcdefgh" + b"ijklmnopqrst"

    def pkt(seq, payload):
        return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload

    async def read(reader):
        head = await reader.readexactly(4)
        n = head[0] | head[1] << 8 | head[2] << 16
        return head[3], await reader.readexactly(n)

    async def handle(reader, writer):
        hs = (b"\x0a" + b"5.5.5-10.11-fake\0" + struct.pack("<I", 7) + nonce[:8] + b"\0"
              + struct.pack("<H", 0xF7FF) + b"\x21" + struct.pack("<H", 2) + struct.pack("<H", 0x81FF)
              + bytes([21]) + b"\0" * 10 + nonce[8:] + b"\0" + b"mysql_native_password\0")
        writer.write(pkt(0, hs))
        try:
            seq, resp = await read(reader)
            i = 32
            end = resp.index(b"\0", i)
            got_user = resp[i:end].decode()
            alen = resp[end + 1]
            scramble = resp[end + 2:end + 2 + alen]
            h1 = bytes(a ^ b for a, b in zip(scramble, hashlib.sha1(nonce + stored).digest()))
            if got_user != user or hashlib.sha1(h1).digest() != stored:
                writer.write(pkt(seq + 1, b"\xff\x15\x04#28000Access denied for user"))
                await writer.drain()
                writer.close()
                return
            writer.write(pkt(seq + 1, b"\x00\x00\x00\x02\x00\x00\x00"))
            while True:
                seq, q = await read(reader)
                if q[:1] == b"\x01":
                    break
                if not q[1:].lower().startswith(b"select"):
                    writer.write(pkt(1, b"\xff\x28\x04#42000You have an error in your SQL syntax"))
                    continue
                col = b"\x03def\x00\x00\x00\x01x\x00\x0c\x21\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00"
                out = pkt(1, b"\x01") + pkt(2, col) + pkt(3, b"\xfe\x00\x00\x02\x00")
                n = 4
                for r in range(rows):
                    out += pkt(n, b"\x01" + str(r + 1).encode())
                    n += 1
                out += pkt(n, b"\xfe\x00\x00\x02\x00")
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ValueError):
            pass
        writer.close()
    return handle


# ---- SMTP sink (for alert tests) ----------------------------------------------

def smtp_sink_handler(on_message):
    """An SMTP server that accepts every message and hands its raw bytes to `on_message`."""
    async def handle(reader, writer):
        writer.write(b"220 sink ESMTP\r\n")
        data, in_data = [], False
        while True:
            line = await reader.readline()
            if not line:
                break
            if in_data:
                if line == b".\r\n":
                    on_message(b"".join(data))
                    data, in_data = [], False
                    writer.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            cmd = line[:4].upper()
            writer.write({b"EHLO": b"250 sink\r\n", b"DATA": b"354 go\r\n",
                          b"QUIT": b"221 bye\r\n"}.get(cmd, b"250 ok\r\n"))
            in_data = cmd == b"DATA"
            await writer.drain()
            if cmd == b"QUIT":
                break
        writer.close()
    return handle


def _serve_smtp_sink(out_path: str, port: int) -> None:
    """`python servers.py smtp-sink FILE PORT`: append each message to FILE (for tests in a namespace)."""
    def save(raw: bytes) -> None:
        with open(out_path, "ab") as f:
            f.write(raw + b"\n=====\n")

    async def main():
        server = await asyncio.start_server(smtp_sink_handler(save), LO, port)
        print("listening", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["smtp-sink"] and len(sys.argv) == 4:
        _serve_smtp_sink(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: servers.py smtp-sink FILE PORT")
