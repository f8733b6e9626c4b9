#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster on loopback for the PostgreSQL ledger's tests and checks (`make test-postgres`):
# initdb into a folder under /tmp, trust authentication on 127.0.0.1 only, a free port, one database `retort`.
# The server refuses to run as root, so as root it runs as the system user `retortpg` (created when missing).
# Usage: scripts/postgres_cluster.sh up|down|url|restart|running
#   up       starts it (or finds it running) and prints its URL: postgres://retort@127.0.0.1:PORT/retort
#   down     stops it and deletes the folder
#   url      prints the URL of the running cluster
#   restart  stops and starts the server on the same port (a restart under load)
#   running  exits 0 when it runs
set -euo pipefail
BIN=${RETORT_PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${RETORT_PG_DIR:-/tmp/retort-postgres}
RUN_AS=retortpg

# The server must not keep the caller's descriptors beyond stdin, stdout and stderr: a caller that waits for one
# to close (Foundation's Process watches a socket it passes to its child) would wait as long as the server runs.
close_inherited() {
    local fd
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        case $fd in 0 | 1 | 2 | 255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
    done
}

fail() { echo "postgres_cluster: error: $*" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

running() { [ -f "$DIR/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

up() {
    [ -x "$BIN/initdb" ] || fail "no PostgreSQL binaries in $BIN; apt-get install postgresql-15 (or set RETORT_PG_BIN)"
    if running; then cat "$DIR/url"; return; fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then
        id "$RUN_AS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS"
        chown "$RUN_AS" "$DIR"
    fi
    local port
    port=${RETORT_PG_PORT:-$(free_port)}
    as_owner "$BIN/initdb" -D "$DIR/data" -U retort --auth=trust --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 \
        || fail "initdb failed; see $DIR/initdb.log"
    cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
max_connections = 200
CONF
    printf 'host all all 127.0.0.1/32 trust\n' >"$DIR/data/pg_hba.conf"
    printf 'local all all trust\n' >>"$DIR/data/pg_hba.conf"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 start >/dev/null \
        || fail "the server did not start; see $DIR/server.log (port $port in use? set RETORT_PG_PORT)"
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U retort retort || fail "createdb failed"
    echo "postgres://retort@127.0.0.1:$port/retort" | tee "$DIR/url"
}

down() {
    if running; then as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null || true; fi
    rm -rf "$DIR"
}

close_inherited
case "${1:-}" in
    up) up ;;
    down) down ;;
    url) running || fail "no cluster runs in $DIR; run scripts/postgres_cluster.sh up"; cat "$DIR/url" ;;
    restart)
        running || fail "no cluster runs in $DIR; run scripts/postgres_cluster.sh up"
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -m fast -w -t 30 restart >/dev/null
        ;;
    running) running ;;
    *) fail "usage: scripts/postgres_cluster.sh up|down|url|restart|running" ;;
esac
