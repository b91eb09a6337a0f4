#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private PostgreSQL cluster for the fleet store's tests, examples and benchmark.
#
#   private-postgres.sh install            apt-get install postgresql when initdb is missing
#   private-postgres.sh start DIR          initdb (first time) and start a cluster in DIR;
#                                          prints its database URL (Unix socket only)
#   private-postgres.sh createdb DIR NAME  creates database NAME; prints its URL
#   private-postgres.sh psql DIR NAME ...  runs psql on database NAME with the other arguments
#   private-postgres.sh pgbench DIR NAME ...  runs pgbench on database NAME likewise
#   private-postgres.sh restart DIR        pg_ctl restart -m immediate (a crash of the server)
#   private-postgres.sh stop DIR           stops it (immediate) and removes DIR
#   private-postgres.sh bin                prints the directory of the server's binaries
#
# The cluster listens on a Unix socket in DIR/sock only (no TCP). As root it runs as the
# `postgres` user (PostgreSQL refuses to run as root), so DIR is made traversable for it.
# PG_FSYNC=off (tests) writes WAL without fsync: commits still survive a kill -9 of the
# server or of a replica, not a crash of the machine.
# The binaries come from /usr/lib/postgresql/<version>/bin, never from PATH: /usr/local/bin
# may hold unrelated programs named pg_ctl or initdb.
set -euo pipefail

cmd=${1:-}
shift || true

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        return 1
    fi
    echo "$d"
}

install() {
    if pg_bin >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "private-postgres: PostgreSQL is not installed and this is not root: apt-get install postgresql" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    pg_bin >/dev/null || { echo "private-postgres: no initdb after installing postgresql" >&2; exit 1; }
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url_for() { # DIR NAME
    local sock="$1/sock"
    local user
    if [ "$(id -u)" = 0 ]; then user=postgres; else user=$(id -un); fi
    local enc
    enc=$(printf '%s' "$sock" | sed -e 's/%/%25/g' -e 's,/,%2F,g' -e 's/ /%20/g')
    echo "postgresql://$user@localhost/$2?host=$enc"
}

need_dir() {
    [ -n "${1:-}" ] || { echo "private-postgres: $cmd needs a directory" >&2; exit 2; }
}

case "$cmd" in
install)
    install
    ;;
bin)
    pg_bin || { echo "private-postgres: PostgreSQL is not installed" >&2; exit 1; }
    ;;
start)
    need_dir "${1:-}"
    dir=$1
    install
    bin=$(pg_bin)
    mkdir -p "$dir/sock"
    chmod 755 "$dir" "$dir/sock"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir" "$dir/sock"
        # Every parent must be traversable for the postgres user.
        p=$(dirname "$(readlink -f "$dir")")
        while [ "$p" != / ]; do
            if ! runuser -u postgres -- test -x "$p"; then chmod o+x "$p"; fi
            p=$(dirname "$p")
        done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir/data" -A trust -U "$( [ "$(id -u)" = 0 ] && echo postgres || id -un )" \
            --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; exit 1; }
        cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir/sock'
max_connections = 200
shared_buffers = 128MB
fsync = ${PG_FSYNC:-on}
log_min_messages = warning
EOF
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { tail -n 30 "$dir/server.log" >&2; exit 1; }
    url_for "$dir" postgres
    ;;
createdb)
    need_dir "${1:-}"
    bin=$(pg_bin)
    as_owner "$bin/createdb" -h "$1/sock" "$2"
    url_for "$1" "$2"
    ;;
psql)
    need_dir "${1:-}"
    dir=$1 name=$2
    shift 2
    bin=$(pg_bin)
    as_owner "$bin/psql" -h "$dir/sock" -d "$name" -v ON_ERROR_STOP=1 -X -q "$@"
    ;;
pgbench)
    need_dir "${1:-}"
    dir=$1 name=$2
    shift 2
    bin=$(pg_bin)
    as_owner "$bin/pgbench" -h "$dir/sock" "$@" "$name"
    ;;
restart)
    need_dir "${1:-}"
    bin=$(pg_bin)
    as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 -m immediate restart >/dev/null ||
        { tail -n 30 "$1/server.log" >&2; exit 1; }
    ;;
stop)
    need_dir "${1:-}"
    bin=$(pg_bin)
    if [ -f "$1/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$1/data" -w -t 60 -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$1"
    ;;
*)
    sed -n '3,20p' "$0" >&2
    exit 2
    ;;
esac
