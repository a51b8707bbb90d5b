"""The handoff's helper process: the moments when a moving address is on neither node, without the GIL.

In a handoff (docs/crm.md "Handoffs") the old node removes the address and broadcasts its release frame,
and the new node, on that frame, adds the address and sends the first gratuitous ARP. A client request
sent between the two gets no answer (it went to the old node's MAC). Done by threads of ha-crmd, both
steps need the interpreter lock, which the daemon's event loop holds while it runs, and which it keeps
while it waits for a CPU on a loaded machine: 3-7 ms between the frame and the GARP on a quiet machine,
10-35 ms at load 6-12. This process does only those steps, prepared by ha-crmd (hadaemon.io.handoff
HandoffHelper): it holds no interpreter lock anyone else wants, runs at SCHED_RR priority 1 as
Heartbeat's cl_make_realtime did (else nice -10, else as it is), and imports only the standard library.

It is started by ha-crmd (`python -I -S this-file`) with its control socket (SOCK_SEQPACKET) as stdin,
runs in ha-crmd's namespaces, and exits when that socket closes (ha-crmd gone). One JSON object per
message, file descriptors with SCM_RIGHTS:

- ``{"op": "arm", "id": N, "tails": [hex], "newaddr": hex, "garp": [hex], "state": [tmp, path]}`` with
  fds [listen] or [listen, link]: an armed start. It goes on a frame received on `listen` (not one this
  host sent) whose bytes from offset 12 (after the MAC addresses) begin with one of `tails` (the
  signed release frames ha-crmd accepts, hadaemon.core.crm.handoff_frame.release_tails), or on "go".
  Going: rename the state file written ahead (tmp -> path), send the RTM_NEWADDR request `newaddr`
  and read its ack, then (added) send the `garp` frames on `link`; then ``{"ev": "went", "id": N,
  "how": ..., "err": errno or 0, "stage": "state"|"netlink", "garp_err": errno or 0, "at": wall clock
  time when done}``.
- ``{"op": "go", "id": N}`` / ``{"op": "cancel", "id": N}``: ``{"ev": "state", "id": N, "state":
  "going"|"cancelled"}``: what the armed start is now. Going and being cancelled are decided here, one
  message at a time: an armed start that went is never reported cancelled (its "went" comes first).
  An unknown id is "cancelled" for cancel; for go, "going" if it went already, else "cancelled".
  With "armed_frame": hex, that frame is sent on `link` once armed (the new node's "armed" frame), and
  again every 10 ms for 0.2 s, then every 0.1 s, while armed (the old node may listen only later).
- ``{"op": "del", "id": N, "deladdr": hex, "frame": hex, "wait": [[hex]], "wait_s": s}`` with fds [link]
  or [link, waiter]: a prepared stop. First, with a waiter socket, wait (up to wait_s; other messages
  are handled meanwhile) until for each list of `wait` a frame beginning (from offset 12) with one of
  its tails came on it: every follower's armed frame (queued since the stop was prepared), so that the
  address leaves only once the new node can add it at once. Then send the RTM_DELADDR request, and once the address is gone (acked, or
  EADDRNOTAVAIL: gone already) the release `frame` on `link`; then ``{"ev": "deleted", "id": N, "err":
  errno or 0, "sent": bool, "at": ..., "armed": bool or None, "waited": seconds}``.
"""
import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time

NLMSG_ERROR = 2
PACKET_OUTGOING = 4


def _later_close(sock) -> None:
    """Close from a thread: the last close of an AF_PACKET socket waits for an RCU grace period."""
    if sock is not None:
        threading.Thread(target=sock.close, daemon=True).start()


def _realtime() -> str:
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        return "SCHED_RR 1"
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except OSError:
        return "normal"


class Helper:
    def __init__(self, ctl: socket.socket):
        self.ctl = ctl
        self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.seq = 0
        self.armed = {}    # id -> dict(listen, link, tails, newaddr, garp, state)
        self.pending = {}  # id -> a prepared stop waiting for armed frames (delete)
        self.went = set()  # ids that went

    def reply(self, obj) -> None:
        self.ctl.send(json.dumps(obj).encode())

    def netlink(self, msg: bytes) -> int:
        """Send one request (its sequence number set here) and return the ack's errno (0: done)."""
        self.seq += 1
        self.nl.send(msg[:8] + struct.pack("=I", self.seq) + msg[12:])
        while True:
            data = self.nl.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    break
                if kind == NLMSG_ERROR and seq == self.seq and off + 20 <= len(data):
                    return -struct.unpack_from("=i", data, off + 16)[0]
                off += (length + 3) & ~3

    # -- an armed start
    def arm(self, msg, fds) -> None:
        socks = [socket.socket(fileno=fd) for fd in fds]
        listen = socks[0] if socks else None
        link = socks[1] if len(socks) > 1 else None
        self.armed[msg["id"]] = dict(listen=listen, link=link, tails=[bytes.fromhex(t) for t in msg["tails"]],
                                     newaddr=bytes.fromhex(msg["newaddr"]),
                                     garp=[bytes.fromhex(f) for f in msg["garp"]], state=msg.get("state"))
        if link is not None and msg.get("armed_frame"):   # the old node's stop may wait for this
            a = self.armed[msg["id"]]
            a.update(armed_frame=bytes.fromhex(msg["armed_frame"]), since=time.monotonic(), next=0.0)
            self.announce_armed(a, a["since"])

    def announce_armed(self, a, now: float) -> None:
        """(Again) the armed frame: every 10 ms for 0.2 s, then every 0.1 s while armed. The old node
        listens only once its own chain arrived, which can be after this node armed."""
        try:
            a["link"].send(a["armed_frame"])
        except OSError:
            pass
        a["next"] = now + (0.01 if now - a["since"] < 0.2 else 0.1)

    def go(self, ident, how: str) -> None:
        a = self.armed.pop(ident)
        err, stage, garp_err = 0, "state", 0
        if a["state"]:
            try:
                os.replace(a["state"][0], a["state"][1])
            except OSError as e:
                err = e.errno or errno.EIO
        if not err:
            stage = "netlink"
            err = self.netlink(a["newaddr"])
        if not err and a["link"] is not None:
            try:
                for frame in a["garp"]:
                    a["link"].send(frame)
            except OSError as e:
                garp_err = e.errno or errno.EIO
        self.went.add(ident)
        self.reply({"ev": "went", "id": ident, "how": how, "err": err, "stage": stage, "garp_err": garp_err,
                    "at": time.time()})
        self.drop(a)

    def drop(self, a) -> None:
        _later_close(a["listen"])
        if a["link"] is not None:
            a["link"].close()   # a copy: ha-crmd keeps the socket for the later rounds

    def frame(self, ident) -> None:
        a = self.armed[ident]
        try:
            frame, addr = a["listen"].recvfrom(2048)
        except OSError:
            return
        if addr[2] != PACKET_OUTGOING and any(frame[12:12 + len(t)] == t for t in a["tails"]):
            self.go(ident, "release frame")

    # -- a prepared stop
    def delete(self, msg, fds) -> None:
        """A prepared stop: with a waiter, pending until every follower's armed frame came or wait_s
        passed (the loop goes on meanwhile: this node's own armed starts, another stop), then done."""
        link = socket.socket(fileno=fds[0]) if fds else None
        waiter = socket.socket(fileno=fds[1]) if len(fds) > 1 else None
        d = dict(msg=msg, link=link, waiter=waiter, t0=time.monotonic(),
                 left=[[bytes.fromhex(t) for t in g] for g in msg.get("wait") or []])
        d["deadline"] = d["t0"] + float(msg.get("wait_s") or 0)
        if waiter is not None and d["left"]:
            self.pending[msg["id"]] = d
        else:
            self.finish_delete(d, None if waiter is None else True)

    def armed_frame(self, ident) -> None:
        d = self.pending[ident]
        try:
            frame = d["waiter"].recv(2048)
        except OSError:
            return
        d["left"] = [g for g in d["left"] if not any(frame[12:12 + len(t)] == t for t in g)]
        if not d["left"]:
            del self.pending[ident]
            self.finish_delete(d, True)

    def finish_delete(self, d, armed) -> None:
        msg, link = d["msg"], d["link"]
        try:
            waited = time.monotonic() - d["t0"]
            err = self.netlink(bytes.fromhex(msg["deladdr"]))
            sent = False
            if err in (0, errno.EADDRNOTAVAIL) and link is not None and msg.get("frame"):
                try:
                    link.send(bytes.fromhex(msg["frame"]))
                    sent = True
                except OSError:
                    pass
            self.reply({"ev": "deleted", "id": msg["id"], "err": err, "sent": sent, "at": time.time(),
                        "armed": armed, "waited": waited})
        finally:
            if link is not None:
                link.close()
            _later_close(d["waiter"])

    def handle(self, msg, fds) -> None:
        op, ident = msg.get("op"), msg.get("id")
        if op == "arm":
            self.arm(msg, fds)
        elif op == "go":
            if ident in self.armed:
                self.go(ident, "trigger")
            self.reply({"ev": "state", "id": ident, "state": "going" if ident in self.went else "cancelled"})
        elif op == "cancel":
            a = self.armed.pop(ident, None)
            if a is not None:
                self.drop(a)
            self.reply({"ev": "state", "id": ident, "state": "going" if ident in self.went else "cancelled"})
        elif op == "del":
            self.delete(msg, fds)
        elif op == "forget":
            self.went.discard(ident)
        else:
            for fd in fds:
                os.close(fd)
            self.reply({"ev": "error", "id": ident, "text": f"unknown op {op!r}"})

    def run(self) -> None:
        while True:
            listening = {a["listen"].fileno(): i for i, a in self.armed.items() if a["listen"] is not None}
            waiting = {d["waiter"].fileno(): i for i, d in self.pending.items()}
            now = time.monotonic()
            due = [d["deadline"] for d in self.pending.values()] + [a["next"] for a in self.armed.values() if "next" in a]
            timeout = max(0.0, min(due) - now) if due else None
            ready, _, _ = select.select([self.ctl] + list(listening) + list(waiting), [], [], timeout)
            for fd in ready:
                if fd is self.ctl:
                    continue
                if listening.get(fd) in self.armed:
                    self.frame(listening[fd])
                elif waiting.get(fd) in self.pending:
                    self.armed_frame(waiting[fd])
            now = time.monotonic()
            for ident in [i for i, d in self.pending.items() if d["deadline"] <= now]:
                self.finish_delete(self.pending.pop(ident), False)
            for a in list(self.armed.values()):
                if "next" in a and a["next"] <= now:
                    self.announce_armed(a, now)
            if self.ctl in ready:
                data, fds, _flags, _addr = socket.recv_fds(self.ctl, 65536, 4)
                if not data:
                    return   # ha-crmd is gone
                try:
                    self.handle(json.loads(data), fds)
                except (ValueError, KeyError, TypeError) as e:
                    self.reply({"ev": "error", "id": None, "text": f"bad request: {e}"})


def main() -> int:
    ctl = socket.socket(fileno=os.dup(0))
    os.close(0)
    how = _realtime()
    helper = Helper(ctl)
    helper.reply({"ev": "ready", "pid": os.getpid(), "priority": how})
    try:
        helper.run()
    except (BrokenPipeError, ConnectionResetError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
