#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL on 127.0.0.1 for tests and benchmarks.
#   scripts/postgres.sh start   → prints the DATABASE_URL to use
#   scripts/postgres.sh stop
# initdb refuses to run as root, so the cluster belongs to the postgres user.
set -euo pipefail
PGPORT=${PGPORT:-54329}
PGDIR=${PGDIR:-/tmp/upload-ops-pg}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] || { echo "PostgreSQL is not installed: apt-get install -y postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
  start)
    if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
      install -d -o postgres -g postgres "$PGDIR" 2>/dev/null || mkdir -p "$PGDIR"
      as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if ! as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
      as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off -c max_connections=200" start >/dev/null
    fi
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='app'" | grep -q 1 \
      || psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE app'
    echo "postgres://postgres@127.0.0.1:$PGPORT/app"
    ;;
  stop)
    as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
