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
#   private-postgres.sh pooler DIR NAME [MODE [SIZE]]  starts pgbouncer in front of database
#                                          NAME, pool_mode MODE (transaction) with SIZE (2)
#                                          servers (a misconfiguration the fleet store must
#                                          refuse); prints its URL
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

# apt-get installs package $1 unless the rest of the arguments, a command, succeed.
ensure() {
    local package=$1
    shift
    if "$@" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "private-postgres: $package is not installed and this is not root: apt-get install $package" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "$package" >&2
}

install() {
    ensure postgresql pg_bin
    pg_bin >/dev/null || { echo "private-postgres: no initdb after installing postgresql" >&2; exit 1; }
}

install_pooler() {
    ensure pgbouncer test -x /usr/sbin/pgbouncer
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
    install_pooler
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
pooler)
    need_dir "${1:-}"
    dir=$1 name=$2 mode=${3:-transaction} size=${4:-2}
    install_pooler
    pool=$dir/pooler-$name
    mkdir -p "$pool"
    chmod 755 "$pool"
    user=$( [ "$(id -u)" = 0 ] && echo postgres || id -un )
    # `trust` still needs the user listed.
    printf '"%s" ""\n' "$user" >"$pool/users.txt"
    cat >"$pool/pgbouncer.ini" <<INI
[databases]
$name = host=$dir/sock dbname=$name
[pgbouncer]
listen_addr =
listen_port = 6432
unix_socket_dir = $pool
auth_type = trust
auth_file = $pool/users.txt
pool_mode = $mode
default_pool_size = $size
max_client_conn = 100
logfile = $pool/pgbouncer.log
pidfile = $pool/pgbouncer.pid
INI
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$pool"; fi
    as_owner /usr/sbin/pgbouncer -d "$pool/pgbouncer.ini" >&2 ||
        { cat "$pool/pgbouncer.log" >&2 2>/dev/null; exit 1; }
    for _ in $(seq 100); do [ -S "$pool/.s.PGSQL.6432" ] && break; sleep 0.05; done
    [ -S "$pool/.s.PGSQL.6432" ] || { cat "$pool/pgbouncer.log" >&2; exit 1; }
    enc=$(printf '%s' "$pool" | sed -e 's/%/%25/g' -e 's,/,%2F,g' -e 's/ /%20/g')
    echo "postgresql://$user@localhost/$name?host=$enc&port=6432"
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
    for pidfile in "$1"/pooler-*/pgbouncer.pid; do
        [ -f "$pidfile" ] && { kill "$(cat "$pidfile")" 2>/dev/null || true; }
    done
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
