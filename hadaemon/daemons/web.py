"""ha-web: the cluster console in a browser (HTTPS on port 7630), a client of Crm1, Heartbeat1 and
Director1 on the system bus. See docs/web.md.

    ha-web [--listen ADDR:PORT] [--cert FILE --key FILE] [--state-dir DIR] [--pam-service NAME] [--debug]
           [--check-config]

SIGHUP loads the certificate again (a renewed one without a restart; a pair that does not load leaves
the one in use).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

from hadaemon.daemons.plumbing import Runtime, setup_logging
from hadaemon.web import server
from hadaemon.web.agents import Agents
from hadaemon.web.app import ADMIN_GROUP, App
from hadaemon.web.auth import Sessions, Throttle, groups_of
from hadaemon.web.cluster import Cluster

log = logging.getLogger("hadaemon.web")

DEFAULT_PORT = 7630


def parse_listen(text: str):
    """'ADDR:PORT', ':PORT', 'PORT' or '[v6]:PORT' -> (host or '', port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen {text!r}: the port is not a number") from None
    if not 0 < p < 65536:
        raise argparse.ArgumentTypeError(f"--listen {text!r}: the port must be 1..65535")
    return host, p


def ensure_certificate(state_dir: str) -> tuple:
    """The self-signed certificate and key in STATE_DIR/web, made with openssl on first start."""
    d = os.path.join(state_dir, "web")
    os.makedirs(d, mode=0o700, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    host = socket.gethostname()
    tmp_cert, tmp_key, conf = cert + ".new", key + ".new", os.path.join(d, "openssl.cnf.new")
    old = os.umask(0o077)
    try:
        # its own minimal configuration: the system's openssl.cnf may be missing or elsewhere
        with open(conf, "w") as f:
            f.write("[req]\ndistinguished_name = dn\nx509_extensions = v3\n[dn]\n"
                    "[v3]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n")
        cp = subprocess.run(["openssl", "req", "-config", conf, "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes", "-days", "3650", "-subj", f"/O=hadaemon/CN={host}",
                             "-addext", f"subjectAltName=DNS:{host},DNS:localhost,IP:127.0.0.1",
                             "-keyout", tmp_key, "-out", tmp_cert], capture_output=True, text=True, timeout=60)
    finally:
        os.umask(old)
        try:
            os.unlink(conf)
        except OSError:
            pass
    if cp.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {cp.stderr.strip()}")
    for f in (tmp_key, tmp_cert):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    os.rename(tmp_key, key)
    os.rename(tmp_cert, cert)
    log.info("made a self-signed certificate %s for %s", cert, host, extra={"EVENT": "certificate"})
    return cert, key


def _state_file(state_dir: str, name: str, what: str) -> str | None:
    """STATE_DIR/web/NAME, its directory made (mode 0700); None (and a warning that `what` is not kept
    across restarts) when the directory cannot be made."""
    d = os.path.join(state_dir, "web")
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
    except OSError as exc:
        log.warning("%s not kept across restarts: %s", what, exc)
        return None
    return os.path.join(d, name)


def load_sessions(state_dir: str) -> Sessions:
    """The sessions of the last run (STATE_DIR/web/sessions.json): a restart of ha-web logs nobody out.
    Each comes back with the rights its user has now (none when the account is gone)."""
    path = _state_file(state_dir, "sessions.json", "sessions are")
    if path is None:
        return Sessions()
    sessions = Sessions(path=path)

    def recheck(user):
        groups = groups_of(user)
        if not groups:
            return None  # the account is gone
        return ADMIN_GROUP in groups or user == "root", groups
    problem = sessions.load(time.time(), recheck)
    if problem:
        log.warning("%s", problem)
    elif len(sessions):
        log.info("%d session(s) kept from the last run", len(sessions))
    return sessions


def load_throttle(state_dir: str) -> Throttle:
    """The failed-login counts of the last run (STATE_DIR/web/throttle.json): a restart of ha-web (or a
    crash) does not give a password guesser a fresh start."""
    path = _state_file(state_dir, "throttle.json", "failed-login counts are")
    if path is None:
        return Throttle()
    throttle = Throttle(path=path)
    problem = throttle.load(time.time())
    if problem:
        log.warning("%s", problem)
    elif len(throttle):
        log.info("failed logins of %d user name(s) or address(es) kept from the last run", len(throttle))
    return throttle


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def check_config(args) -> str:
    """'' when ha-web could start with these options, else what is wrong, in one line: the certificate
    and key (given, or the state directory's own pair; without one, the openssl command that makes it)
    and the PAM service's file (or PAM's fallback, /etc/pam.d/other)."""
    if args.cert:
        cert, key = args.cert, args.key
    else:
        d = os.path.join(args.state_dir, "web")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        if not (os.path.exists(cert) and os.path.exists(key)):
            cert = key = ""
            if shutil.which("openssl") is None:
                return ("TLS: no --cert/--key, no certificate in the state directory yet and no openssl command "
                        "to make one")
    if cert:
        try:
            tls_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            return f"TLS: {cert} / {key}: {exc}"
    pam_dir = "/etc/pam.d"
    if not os.path.exists(os.path.join(pam_dir, args.pam_service)) and not os.path.exists(os.path.join(pam_dir, "other")):
        return f"PAM: neither {pam_dir}/{args.pam_service} nor {pam_dir}/other exists: nobody could log in"
    return ""


def reload_certificate(args, ctx: ssl.SSLContext) -> bool:
    """SIGHUP: the certificate and key read again into the context in use (new connections get them).
    They are loaded into a fresh context first: a pair that does not load leaves the old one serving."""
    try:
        cert, key = (args.cert, args.key) if args.cert else ensure_certificate(args.state_dir)
        tls_context(cert, key)
        ctx.load_cert_chain(cert, key)
    except (OSError, RuntimeError, ssl.SSLError, subprocess.SubprocessError) as exc:
        log.error("reload: the certificate was not loaded, the old one goes on: %s", exc,
                  extra={"EVENT": "reload-failed"})
        return False
    log.info("reload: certificate %s loaded", cert, extra={"EVENT": "reload"})
    return True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-web", description="hadaemon cluster console (HTTPS)")
    p.add_argument("--listen", type=parse_listen, default=("", DEFAULT_PORT), metavar="ADDR:PORT",
                   help=f"address and port (default :{DEFAULT_PORT}, every address)")
    p.add_argument("--cert", help="TLS certificate (PEM); default: a self-signed one in the state dir")
    p.add_argument("--key", help="its private key (PEM)")
    p.add_argument("--state-dir", default="/var/lib/hadaemon")
    p.add_argument("--pam-service", default="ha-web", help="PAM service name (default ha-web; "
                   "without /etc/pam.d/ha-web PAM uses /etc/pam.d/other)")
    p.add_argument("--ocf-root", default="/usr/lib/ocf")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--check-config", action="store_true",
                   help="check the certificate (or that one can be made) and PAM, then exit (1 and why, or 0)")
    return p


async def amain(args) -> int:
    rt = Runtime("ha-web")
    try:
        cert, key = (args.cert, args.key) if args.cert else ensure_certificate(args.state_dir)
        ctx = tls_context(cert, key)
    except (OSError, RuntimeError, ssl.SSLError, subprocess.SubprocessError) as exc:
        log.error("ha-web: TLS: %s", exc)
        print(f"ha-web: TLS: {exc}", file=sys.stderr)
        return 1

    def on_sighup() -> None:   # rt sends RELOADING=1 before and READY=1 after
        reload_certificate(args, ctx)
    rt.install_signals(reload=on_sighup)
    cluster = Cluster()
    sessions = load_sessions(args.state_dir)
    app = App(cluster, Agents(ocf_root=args.ocf_root), pam_service=args.pam_service, host_label=socket.gethostname(),
              sessions=sessions, throttle=load_throttle(args.state_dir))
    host, port = args.listen
    try:
        runner = await server.start(app, host, port, ctx)
    except OSError as exc:
        print(f"ha-web: cannot listen on {host or '*'}:{port}: {exc}", file=sys.stderr)
        return 1
    rt.spawn(cluster.run(rt.stop))
    rt.start_watchdog()
    log.info("listening on https://%s:%d/", host or "*", port, extra={"EVENT": "listening"})
    print(f"ha-web: listening on https://{host or '*'}:{port}/", file=sys.stderr, flush=True)
    rt.ready(f"listening on {host or '*'}:{port}")
    await rt.stop.wait()
    rt.stopping()
    await app.end_streams()
    try:
        await asyncio.wait_for(runner.cleanup(), 20)
    except asyncio.TimeoutError:
        log.warning("requests still running at shutdown were cut off")
    await rt.close()
    cluster._close()
    return 0


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.check_config:
        problem = check_config(args)
        if problem:
            print(f"ha-web: {problem}", file=sys.stderr)
            return 1
        return 0
    setup_logging("ha-web", args.debug)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
