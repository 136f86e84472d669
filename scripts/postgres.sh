#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL on loopback, for the history store's tests and for demos.
#
#   scripts/postgres.sh start [STATE_DIR]   install Debian's `postgresql` if no server is found, create a cluster
#                                           in STATE_DIR/data, start it on a free loopback port, wait until it
#                                           accepts connections, and print its URL on stdout
#                                           (postgres://campanile@127.0.0.1:PORT/postgres, no password: the
#                                           cluster trusts loopback connections)
#   scripts/postgres.sh stop [STATE_DIR]    stop it and delete its data
#
# STATE_DIR (default: ${TMPDIR:-/tmp}/campanile-postgres) holds the data, the log and the socket.
# Use it with: export CAMPANILE_TEST_POSTGRES=$(scripts/postgres.sh start)
#
# The server binaries are looked up on PATH, then in Debian's /usr/lib/postgresql/<version>/bin (the newest).
# PostgreSQL refuses to run as root: as root the cluster belongs to, and runs as, the `postgres` user that the
# Debian package creates (or `nobody` when there is none), and STATE_DIR is handed to that user.
# The cluster is made for tests: no fsync, nothing a crash must survive.
set -euo pipefail

cmd="${1:-}"
state="${2:-${TMPDIR:-/tmp}/campanile-postgres}"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The directory holding initdb, pg_ctl and postgres, or nothing.
find_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

install_postgres() {
  log "installing postgresql"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  # Debian's package would create and start a cluster of its own (`main`, port 5432): this script makes its
  # own, so the package is told not to (postgresql-common reads this before the install creates anything).
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo apt-get update -qq >&2
  # Keep that file as it is, unasked (ucf and dpkg would otherwise offer the package's version).
  $sudo env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >&2
}

# Runs a server binary as the cluster's owner: this user, or as root the `postgres` user (else `nobody`).
as_owner() {
  if [ "$(id -u)" != 0 ]; then
    "$@"
    return
  fi
  local user=postgres
  if ! getent passwd postgres >/dev/null; then user=nobody; fi
  setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups --reset-env -- "$@"
}

owner() {
  if [ "$(id -u)" != 0 ]; then id -un; elif getent passwd postgres >/dev/null; then echo postgres; else echo nobody; fi
}

start() {
  if [ -f "$state/url" ] && [ -f "$state/data/postmaster.pid" ] \
    && kill -0 "$(head -n 1 "$state/data/postmaster.pid")" 2>/dev/null; then
    cat "$state/url"
    return
  fi
  local bin
  bin="$(find_bin)"
  if [ -z "$bin" ]; then
    install_postgres
    bin="$(find_bin)"
  fi
  if [ -z "$bin" ]; then
    log "no PostgreSQL server found after installing postgresql"
    exit 1
  fi
  rm -rf "$state"
  mkdir -p "$state"
  if [ "$(id -u)" = 0 ]; then
    chown "$(owner):" "$state"
    # Every directory above must let the owner through.
    local up="$state"
    while up="$(dirname "$up")" && [ "$up" != / ]; do
      if ! setpriv --reuid="$(owner)" --regid="$(id -g "$(owner)")" --clear-groups test -x "$up"; then
        log "$(owner) cannot enter $up: choose a STATE_DIR under a directory it may enter"
        exit 1
      fi
    done
  fi
  echo "$bin" >"$state/bin"
  as_owner "$bin/initdb" --pgdata="$state/data" --username=campanile --auth=trust --no-sync \
    --encoding=UTF8 --locale=C >"$state/initdb.log" 2>&1 || {
    log "initdb failed; its log:"
    tail -n 30 "$state/initdb.log" >&2
    exit 1
  }
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if port_free "$port"; then break; fi
  done
  # -w: pg_ctl returns once the server accepts connections (or fails after --timeout).
  as_owner "$bin/pg_ctl" --pgdata="$state/data" --log="$state/postgres.log" --wait --timeout=60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $state -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2 || {
    log "postgres did not start; its log:"
    tail -n 30 "$state/postgres.log" >&2 || true
    exit 1
  }
  echo "postgres://campanile@127.0.0.1:$port/postgres" >"$state/url"
  log "postgres is up at 127.0.0.1:$port (log $state/postgres.log)"
  cat "$state/url"
}

stop() {
  if [ -f "$state/bin" ] && [ -f "$state/data/postmaster.pid" ]; then
    as_owner "$(cat "$state/bin")/pg_ctl" --pgdata="$state/data" --mode=immediate --wait stop >&2 || true
  fi
  rm -rf "$state"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac
