#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests.
#
#   scripts/postgres.sh start DIR   # init + start a cluster in DIR, print its URL on stdout
#   scripts/postgres.sh stop DIR    # stop the cluster in DIR
#   scripts/postgres.sh url DIR     # print the URL of a running cluster in DIR
#
# Listens on 127.0.0.1 only, on a free port chosen at run time, trust auth,
# superuser `postgres`. If no initdb is found, installs postgresql from Debian
# (needs root). Typical use:
#
#   export FLOE_TEST_POSTGRES_URL=$(scripts/postgres.sh start /tmp/floe-pg)
#   cargo test -p floe-meta
#   scripts/postgres.sh stop /tmp/floe-pg
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

ensure_installed() {
    if ! find_bindir >/dev/null; then
        log "no initdb found; installing postgresql from Debian"
        [[ $(id -u) -eq 0 ]] || die "postgresql is not installed and we are not root"
        DEBIAN_FRONTEND=noninteractive apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
    fi
    find_bindir || die "initdb still not found after install"
}

# Run a command as the cluster owner (initdb/postgres refuse to run as root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local port
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    for _ in $(seq 1 200); do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    die "could not find a free port"
}

cmd_start() {
    local dir=$1 bindir port deadline
    bindir=$(ensure_installed)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
        chown postgres "$dir"
    fi
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        die "a cluster seems to be running in $dir (stop it first)"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    port=$(free_port)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >&2 \
        || { tail -n 50 "$dir/log" >&2 || true; die "pg_ctl start failed"; }
    echo "$port" >"$dir/port"
    deadline=$(( $(date +%s) + 30 ))
    until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
        if (( $(date +%s) >= deadline )); then
            tail -n 50 "$dir/log" >&2 || true
            die "server did not become ready within 30 s"
        fi
        sleep 0.2
    done
    echo "postgres://postgres@127.0.0.1:$port/postgres"
}

cmd_stop() {
    local dir=$1 bindir
    bindir=$(find_bindir) || die "initdb/pg_ctl not found"
    [[ -d "$dir/data" ]] || die "no cluster in $dir"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2
    else
        log "cluster in $dir is not running"
    fi
}

cmd_url() {
    local dir=$1
    [[ -f "$dir/port" ]] || die "no port file in $dir"
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

[[ $# -eq 2 ]] || die "usage: $0 start|stop|url DIR"
case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    url) cmd_url "$2" ;;
    *) die "usage: $0 start|stop|url DIR" ;;
esac
