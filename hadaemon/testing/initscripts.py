"""The reference scenario's LSB init scripts and the database bootstrap (hadaemon.testing.scenario uses them).

httpd is lighttpd (Debian's package), mysqld MariaDB's mariadbd; both keep pidfiles and sockets in the node's
private /run and their data on the shared store only (see hadaemon.testing.scenario).
"""
from __future__ import annotations

__all__ = ["HTTPD_LSB", "MYSQLD_LSB", "BOOT_SQL"]

# Both scripts' view of their daemon: running() reads $PIDFILE (shell builtins only, as a start-stop-daemon
# based Debian script sees it)
_PIDFILE_CHECKS = r"""# a zombie is not running (start-stop-daemon's view): a daemon orphaned by its double fork waits
# for init to reap it, which can take a second where init is not systemd. Shell builtins only (no
# cat / cut: every fork costs 10-50 ms on a loaded node).
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    read -r st < "/proc/$1/stat" 2>/dev/null || return 1
    case "${st##*) }" in Z*|X*|"") return 1 ;; esac
}

running() {
    [ -f "$PIDFILE" ] || return 1
    read -r pid < "$PIDFILE" 2>/dev/null
    [ -n "$pid" ] && alive "$pid"
}
"""

HTTPD_LSB = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          httpd
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:
# Default-Stop:      0 1 6
# Short-Description: lighttpd serving the shared store (hadaemon demo)
### END INIT INFO
# LSB init script for the cluster: the cluster alone starts it (never enabled at boot).
DOCROOT="@DOCROOT@"
PIDFILE=/run/httpd.pid
CONF=/run/httpd.conf
DAEMON=/usr/sbin/lighttpd

""" + _PIDFILE_CHECKS + r"""
case "$1" in
start)
    running && exit 0
    [ -f "$DOCROOT/index.html" ] || { echo "httpd: $DOCROOT/index.html missing (store not mounted?)" >&2; exit 1; }
    # builtins only before lighttpd's exec (no cat, no $(hostname)): each fork delays the listener
    read -r host < /proc/sys/kernel/hostname
    {
        echo "server.document-root = \"$DOCROOT\""
        echo "server.port = 80"
        echo "server.pid-file = \"$PIDFILE\""
        echo "server.errorlog = \"/run/httpd-error.log\""
        echo "server.modules = (\"mod_setenv\")"
        echo "setenv.add-response-header = (\"X-Served-By\" => \"$host\")"
        echo "index-file.names = (\"index.html\")"
        echo "mimetype.assign = (\".html\" => \"text/html\")"
    } > "$CONF"
    $DAEMON -f "$CONF" || exit 1
    i=0; while [ $i -lt 10 ]; do running && exit 0; sleep 0.01; i=$((i + 1)); done
    i=0; while [ $i -lt 50 ]; do running && exit 0; sleep 0.1; i=$((i + 1)); done
    echo "httpd: did not start" >&2; exit 1 ;;
stop)
    if running; then
        kill "$pid"
        # as start-stop-daemon --retry TERM/10/KILL: the signal, a look at once, then polls until the
        # timeout. Its polls are 20 ms or more apart; lighttpd is gone 1-2 ms after SIGTERM, so the
        # first looks here are back to back with builtins (no fork: a `sleep` costs its fork and exec
        # on top of its time), at most 200 of them (~5 ms of CPU), then every 10 ms, then every 0.1 s.
        i=0; while [ $i -lt 200 ] && alive "$pid"; do i=$((i + 1)); done
        i=0; while [ $i -lt 10 ] && alive "$pid"; do sleep 0.01; i=$((i + 1)); done
        i=0; while [ $i -lt 100 ] && alive "$pid"; do sleep 0.1; i=$((i + 1)); done
        alive "$pid" && kill -9 "$pid"
    fi
    # lighttpd removes its pidfile when it exits: rm (a fork) only for one left behind
    [ -e "$PIDFILE" ] && rm -f "$PIDFILE"; exit 0 ;;
status)
    running && { echo "httpd is running"; exit 0; }
    [ -f "$PIDFILE" ] && { echo "httpd is dead but the pidfile exists"; exit 1; }
    echo "httpd is stopped"; exit 3 ;;
restart|force-reload) "$0" stop && "$0" start ;;
*) echo "usage: $0 {start|stop|status|restart|force-reload}" >&2; exit 2 ;;
esac
"""

MYSQLD_LSB = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          mysqld
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:
# Default-Stop:      0 1 6
# Short-Description: MariaDB on the shared store (hadaemon demo)
### END INIT INFO
DATADIR="@DATADIR@"
RUNDIR=/run/mysqld
PIDFILE=$RUNDIR/mysqld.pid
SOCKET=$RUNDIR/mysqld.sock

""" + _PIDFILE_CHECKS + r"""
case "$1" in
start)
    running && exit 0
    [ -d "$DATADIR/mysql" ] || { echo "mysqld: no database in $DATADIR (store not mounted?)" >&2; exit 1; }
    mkdir -p "$RUNDIR"
    /usr/sbin/mariadbd --no-defaults --datadir="$DATADIR" --user=root --socket="$SOCKET" \
        --pid-file="$PIDFILE" --tmpdir="$RUNDIR" --port=3306 --bind-address=0.0.0.0 --skip-name-resolve \
        --innodb-buffer-pool-size=16M --performance-schema=OFF --report-host="$(hostname)" \
        --log-error="$RUNDIR/error.log" >/dev/null 2>&1 </dev/null &
    for i in $(seq 300); do
        running && /usr/bin/mariadb --no-defaults --socket="$SOCKET" -u root -e "SELECT 1" >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    echo "mysqld: did not start: $(tail -3 $RUNDIR/error.log 2>/dev/null)" >&2; exit 1 ;;
stop)
    if running; then
        kill "$pid"
        i=0; while [ $i -lt 300 ] && alive "$pid"; do sleep 0.1; i=$((i + 1)); done
        alive "$pid" && kill -9 "$pid"
    fi
    rm -f "$PIDFILE"; exit 0 ;;
status)
    running && { echo "mysqld is running"; exit 0; }
    [ -f "$PIDFILE" ] && { echo "mysqld is dead but the pidfile exists"; exit 1; }
    echo "mysqld is stopped"; exit 3 ;;
restart|force-reload) "$0" stop && "$0" start ;;
*) echo "usage: $0 {start|stop|status|restart|force-reload}" >&2; exit 2 ;;
esac
"""

BOOT_SQL = """FLUSH PRIVILEGES;
CREATE DATABASE blog;
CREATE TABLE blog.posts (id INT PRIMARY KEY, title VARCHAR(200));
INSERT INTO blog.posts VALUES (1, 'Hello from the shared store');
CREATE USER 'demo'@'%' IDENTIFIED BY 'demo';
GRANT ALL ON blog.* TO 'demo'@'%';
"""
