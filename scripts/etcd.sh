#!/usr/bin/env bash
# Starts and stops a throwaway single-member etcd on loopback, for tests and demos.
#
#   scripts/etcd.sh start [STATE_DIR]   install etcd-server if missing, start etcd on a free loopback port
#                                       with a temporary data dir, wait until it is healthy, and print its
#                                       endpoint (127.0.0.1:PORT) on stdout
#   scripts/etcd.sh stop [STATE_DIR]    stop it and delete its data dir
#
# STATE_DIR (default: ${TMPDIR:-/tmp}/campanile-etcd) holds the pid, the endpoint, the data and the log.
# Use it with: export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start)
set -euo pipefail

cmd="${1:-}"
state="${2:-${TMPDIR:-/tmp}/campanile-etcd}"

log() { printf 'etcd.sh: %s\n' "$*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() {
  local port="$1" reply
  reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" \
    && printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
    && timeout 2 cat <&3) 2>/dev/null || true)"
  [[ "$reply" == *'"health":"true"'* ]]
}

start() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    cat "$state/endpoint"
    return
  fi
  if ! command -v etcd >/dev/null 2>&1; then
    log "installing etcd-server"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends etcd-server >&2
  fi
  rm -rf "$state"
  mkdir -p "$state"
  local port peer
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    peer=$((port + 1))
    if port_free "$port" && port_free "$peer"; then break; fi
  done
  ETCD_UNSUPPORTED_ARCH="$(dpkg --print-architecture 2>/dev/null || true)" \
    etcd --name campanile-test \
    --data-dir "$state/data" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "campanile-test=http://127.0.0.1:$peer" \
    >"$state/etcd.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  echo "127.0.0.1:$port" >"$state/endpoint"
  for _ in $(seq 1 100); do
    if healthy "$port"; then
      log "etcd is up at 127.0.0.1:$port (pid $(cat "$state/pid"), log $state/etcd.log)"
      sleep 0.05
      echo "127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "etcd did not become healthy; its log:"
  tail -n 30 "$state/etcd.log" >&2 || true
  stop
  exit 1
}

stop() {
  if [ -f "$state/pid" ]; then
    local pid
    pid="$(cat "$state/pid")"
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
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
