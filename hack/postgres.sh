#!/usr/bin/env bash
# Makes a throwaway PostgreSQL server available on loopback for the storage tests and prints
# its DSN on stdout (and nothing else there: callers do DSN="$(hack/postgres.sh)"). Everything
# else goes to stderr.
#
# It runs its own cluster, never the distro's service, so it needs no system configuration
# and cannot disturb a PostgreSQL the machine already runs. The cluster lives outside the work
# tree and is kept between runs: the first run pays for initdb, later runs only check that the
# server is up. Safe to run twice, and concurrently (a lock serialises runs).
#
# Environment:
#   HALLPASS_CACHE       cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/hallpass)
#   HALLPASS_PG_DURABLE  1: a second cluster, durable as production runs it (fsync,
#                        synchronous_commit and full_page_writes on), for the storage
#                        suite and benchmarks to measure real flushes (make test runs them
#                        once against it). Default port 55433.
#   HALLPASS_PG_PORT     TCP port on 127.0.0.1 (default 55432, away from the default 5432)
set -euo pipefail

DURABLE="${HALLPASS_PG_DURABLE:-0}"
if [[ "$DURABLE" == 1 ]]; then
  PORT="${HALLPASS_PG_PORT:-55433}"
else
  PORT="${HALLPASS_PG_PORT:-55432}"
fi
DB=hallpass_test
SUPERUSER=hallpass

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local initdb
  initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$initdb" ]] && dirname "$initdb"
}

BINDIR="$(find_bindir || true)"
if [[ -z "$BINDIR" ]]; then
  log "no initdb under /usr/lib/postgresql/*/bin; installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y postgresql >&2
  BINDIR="$(find_bindir || true)"
  [[ -n "$BINDIR" ]] || { log "postgresql installed but no initdb found"; exit 1; }
fi
MAJOR="$(basename "$(dirname "$BINDIR")")"

# PostgreSQL refuses to run as root, so as root the server runs as the postgres user that the
# Debian package creates. That user cannot enter root's home (mode 0700), so unless a cache
# root was given explicitly the cluster then lives in the postgres user's own home.
as_owner=()
if [[ "$(id -u)" == 0 ]]; then
  as_owner=(runuser -u postgres --)
  if [[ -z "${HALLPASS_CACHE:-}" ]]; then
    HALLPASS_CACHE="$(getent passwd postgres | cut -d: -f6)/.cache/hallpass"
  fi
fi
BASE="${HALLPASS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallpass}/pg-$MAJOR"
if [[ "$DURABLE" == 1 ]]; then
  BASE="$BASE-durable"
fi
DATA="$BASE/data"
mkdir -p "$BASE"
if [[ ${#as_owner[@]} -gt 0 ]]; then
  chown postgres: "$BASE"
  if ! runuser -u postgres -- test -w "$BASE"; then
    log "the postgres user cannot write $BASE; set HALLPASS_CACHE to a directory it can reach"
    exit 1
  fi
fi

exec 9>"$BASE/lock"
flock 9

if [[ ! -s "$DATA/PG_VERSION" ]]; then
  log "initialising a test cluster in $DATA"
  rm -rf "$DATA"
  # Trust authentication is acceptable only because this is a throwaway test cluster that
  # listens on 127.0.0.1 and on a socket inside its own directory: nothing else can reach it.
  "${as_owner[@]}" "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-instructions >&2
  # Durability is pointless for most test data; turning it off keeps the tests quick on a
  # shared machine (benchmarks against this cluster therefore measure no disk flushes). The
  # durable cluster keeps PostgreSQL's defaults, as production runs it.
  if [[ "$DURABLE" == 1 ]]; then
    durability="fsync = on
synchronous_commit = on
full_page_writes = on"
  else
    durability="fsync = off
synchronous_commit = off
full_page_writes = off"
  fi
  cat >>"$DATA/postgresql.conf" <<EOF

# hallpass test cluster (hack/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$BASE'
$durability
max_connections = 200
EOF
fi

if ! "${as_owner[@]}" "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting the test cluster on 127.0.0.1:$PORT"
  # 9>&- keeps the lock out of the long-lived server, or no later run could take it.
  if ! "${as_owner[@]}" "$BINDIR/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 start >&2 9>&-; then
    log "start failed; last lines of $BASE/server.log:"
    tail -n 20 "$BASE/server.log" >&2 || true
    exit 1
  fi
fi

psql_admin() {
  "${as_owner[@]}" "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$BASE" -p "$PORT" \
    -U "$SUPERUSER" -d postgres "$@"
}
if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
  psql_admin -c "CREATE DATABASE $DB" >&2
fi

echo "postgres://$SUPERUSER@127.0.0.1:$PORT/$DB?sslmode=disable"
