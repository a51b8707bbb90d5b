"""Email alerts through a loopback SMTP server, reminders, status filter; fallbackcommand/callback runners."""

import asyncio
import email
import email.policy

from hadaemon.core.director.config import parse_config
from hadaemon.core.director.debounce import RealDown, RealUp
from hadaemon.core.director.model import STATUS_STARTING
from hadaemon.io.alerts import EmailAlerts, run_callback, run_shell
from tests.integration.servers import smtp_sink_handler


async def smtp_sink(messages):
    def on_message(raw):
        messages.append(email.message_from_bytes(raw, policy=email.policy.default))

    server = await asyncio.start_server(smtp_sink_handler(on_message), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def wait_for(pred, timeout=5.0):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_alert_mail_reminder_and_status_filter():
    messages = []
    server, port = await smtp_sink(messages)
    try:
        c = parse_config("emailalert=ops@example.com\nemailalertfreq=1\nemailalertstatus=running\n"
                         "smtp=127.0.0.1\nemailalertfrom=director@example.com\nquiescent=yes\n"
                         "virtual=192.168.18.100:80\n\treal=192.168.18.191:80 gate\n"
                         "\tservicename=Web Site\n\tcomment=blog\n", "x.cf")
        # smtp= takes a host name only (ldirectord's syntax); point the sender at the sink's port
        from hadaemon.io import alerts
        alerter = EmailAlerts(c, hostname="admin1", sender=lambda m, s: alerts.send_message(m, f"{s}:{port}"))
        pair = ("tcp:192.168.18.100:80", "192.168.18.191:80")
        assert alerter.notify(RealDown(pair), now=100.0, daemon_status=STATUS_STARTING) is None  # filtered
        await asyncio.wait_for(alerter.notify(RealDown(pair), now=100.0), 10)
        assert await wait_for(lambda: len(messages) == 1)
        m = messages[0]
        assert m["Subject"] == ("[Web Site] Quiescent real server: 192.168.18.191:80 (192.168.18.100:80) "
                                "(Weight set to 0)")
        assert m["From"] == "director@example.com" and m["To"] == "ops@example.com"
        body = m.get_content()
        assert "ldirectord host: admin1" in body and "Daemon-Status: running" in body and "Comment: blog" in body
        assert alerter.resend_due(100.5) == []
        futs = alerter.resend_due(101.5)
        await asyncio.wait_for(asyncio.gather(*futs), 10)
        assert await wait_for(lambda: len(messages) == 2)
        assert messages[1]["Subject"] == "[Web Site] Inaccessible real server: 192.168.18.191:80 (192.168.18.100:80)"
        await asyncio.wait_for(alerter.notify(RealUp(pair), now=102.0), 10)
        assert await wait_for(lambda: len(messages) == 3)
        assert messages[2]["Subject"].endswith("Restored real server: 192.168.18.191:80 (192.168.18.100:80) "
                                               "(Weight set to 1)")
        assert alerter.resend_due(200.0) == []          # back up: no more reminders
    finally:
        server.close()


async def test_alert_failure_is_counted_not_raised():
    c = parse_config("emailalert=ops@example.com\nsmtp=127.0.0.1\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n",
                     "x.cf")
    from hadaemon.io import alerts
    alerter = EmailAlerts(c, sender=lambda m, s: alerts.send_message(m, f"{s}:1", timeout=2))
    fut = alerter.notify(RealDown(("tcp:10.0.0.1:80", "10.0.0.2:80")), now=1.0)
    try:
        await fut
    except OSError:
        pass
    assert await wait_for(lambda: alerter.failures == 1)


async def test_run_shell_and_callback(tmp_path):
    out = tmp_path / "out"
    assert await run_shell(f"echo start 192.168.18.100:80 tcp > {out}") == 0
    assert out.read_text().strip() == "start 192.168.18.100:80 tcp"
    assert await run_shell("exit 3") == 3
    assert await run_shell("sleep 10", timeout=0.3) == -1
    cb = tmp_path / "cb.sh"
    cb.write_text(f"#!/bin/sh\necho \"$1\" > {out}\n")
    cb.chmod(0o755)
    c = parse_config(f'callback="{cb}"\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n', "x.cf")
    assert await run_callback(c, "/etc/ha.d/ldirectord.cf") == 0
    assert out.read_text().strip() == "/etc/ha.d/ldirectord.cf"
