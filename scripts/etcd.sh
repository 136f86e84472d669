#!/usr/bin/env bash
# Starts and stops a throwaway etcd on loopback (one member, or a cluster of several), for tests, demos and the
# chaos harness.
#
#   scripts/etcd.sh start [STATE_DIR]   install etcd-server if missing, start etcd on a free loopback port
#                                       with a temporary data dir, wait until it is healthy, and print its
#                                       endpoint (127.0.0.1:PORT) on stdout
#   scripts/etcd.sh stop [STATE_DIR]    stop it (or every member of a cluster) and delete its data
#
#   scripts/etcd.sh start-cluster N DIR start an N-member cluster (members 1..N in DIR/m1..DIR/mN), each on free
#                                       loopback client and peer ports; wait until every member is healthy
#                                       and print the client endpoints comma-separated (127.0.0.1:P1,...)
#   scripts/etcd.sh kill DIR I          SIGKILL member I (its data stays)
#   scripts/etcd.sh restart DIR I       start member I again on its ports and data (after `kill`), wait until
#                                       it is healthy
#   scripts/etcd.sh freeze DIR I        SIGSTOP member I; `thaw DIR I` sends SIGCONT
#   scripts/etcd.sh leader DIR          print the number I of the member that leads now
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

install_etcd() {
  if ! command -v etcd >/dev/null 2>&1; then
    log "installing etcd-server"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends etcd-server >&2
  fi
}

start() {
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    cat "$state/endpoint"
    return
  fi
  install_etcd
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

# Starts member $2 of the cluster in $1 from the ports and the initial cluster written by start-cluster.
run_member() {
  local dir="$1" i="$2" m="$1/m$2"
  local port peer
  port="$(cat "$m/client_port")"
  peer="$(cat "$m/peer_port")"
  # setsid: the member must not die with the shell that started it, nor take its signals.
  ETCD_UNSUPPORTED_ARCH="$(dpkg --print-architecture 2>/dev/null || true)" \
    setsid etcd --name "m$i" \
    --data-dir "$m/data" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$(cat "$dir/initial_cluster")" \
    --initial-cluster-state new \
    --initial-cluster-token campanile-cluster \
    >>"$m/etcd.log" 2>&1 </dev/null &
  echo $! >"$m/pid"
}

# Waits until member $2 of the cluster in $1 answers healthy (it needs a leader for that).
await_member() {
  local m="$1/m$2"
  for _ in $(seq 1 300); do
    if healthy "$(cat "$m/client_port")"; then return; fi
    if ! kill -0 "$(cat "$m/pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "member $2 did not become healthy; its log:"
  tail -n 30 "$m/etcd.log" >&2 || true
  return 1
}

member_dir() {
  local dir="${1:?the directory of the cluster}" i="${2:?the number of the member}"
  if [ ! -f "$dir/m$i/client_port" ]; then
    log "no member $i in $dir"
    exit 2
  fi
  echo "$dir/m$i"
}

start_cluster() {
  local n="${1:?start-cluster needs the number of members}" dir="${2:?start-cluster needs a directory}"
  install_etcd
  stop_cluster "$dir"
  rm -rf "$dir"/m* "$dir/initial_cluster" "$dir/endpoints"
  mkdir -p "$dir"
  local i port peer used=" " initial="" endpoints=""
  for i in $(seq 1 "$n"); do
    mkdir -p "$dir/m$i"
    for _ in $(seq 1 50); do
      port=$((20000 + RANDOM % 20000))
      peer=$((port + 1))
      if [[ "$used" != *" $port "* && "$used" != *" $peer "* ]] && port_free "$port" && port_free "$peer"; then
        break
      fi
    done
    used+="$port $peer "
    echo "$port" >"$dir/m$i/client_port"
    echo "$peer" >"$dir/m$i/peer_port"
    initial+="${initial:+,}m$i=http://127.0.0.1:$peer"
    endpoints+="${endpoints:+,}127.0.0.1:$port"
  done
  echo "$initial" >"$dir/initial_cluster"
  echo "$endpoints" >"$dir/endpoints"
  for i in $(seq 1 "$n"); do run_member "$dir" "$i"; done
  for i in $(seq 1 "$n"); do
    if ! await_member "$dir" "$i"; then
      stop_cluster "$dir"
      exit 1
    fi
  done
  log "etcd cluster of $n members up at $endpoints (dir $dir)"
  echo "$endpoints"
}

kill_member() {
  local m
  m="$(member_dir "$@")"
  if [ -f "$m/pid" ]; then
    local pid
    pid="$(cat "$m/pid")"
    kill -CONT "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

restart_member() {
  local m
  m="$(member_dir "$@")"
  if [ -f "$m/pid" ] && kill -0 "$(cat "$m/pid")" 2>/dev/null; then
    log "member $2 is running"
    return
  fi
  run_member "$1" "$2"
  await_member "$1" "$2"
}

signal_member() {
  local signal="$1" m
  shift
  m="$(member_dir "$@")"
  kill "-$signal" "$(cat "$m/pid")"
}

# The member whose status names itself as the leader (the v3 JSON gateway: ids are decimal strings).
leader() {
  local dir="${1:?leader needs the directory of the cluster}" m reply id leader
  for m in "$dir"/m*; do
    reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$m/client_port")" \
      && printf 'POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}' >&3 \
      && timeout 2 cat <&3) 2>/dev/null || true)"
    id="$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$reply")"
    leader="$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$reply")"
    if [ -n "$id" ] && [ "$id" = "$leader" ]; then
      echo "${m##*/m}"
      return
    fi
  done
  log "no member leads now"
  return 1
}

stop_cluster() {
  local dir="$1" m pid
  for m in "$dir"/m*; do
    [ -f "$m/pid" ] || continue
    pid="$(cat "$m/pid")"
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for m in "$dir"/m*; do
    [ -f "$m/pid" ] || continue
    pid="$(cat "$m/pid")"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

stop() {
  if [ -f "$state/initial_cluster" ]; then
    stop_cluster "$state"
  fi
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
  start-cluster) start_cluster "${2:-}" "${3:-}" ;;
  kill) kill_member "${2:-}" "${3:-}" ;;
  restart) restart_member "${2:-}" "${3:-}" ;;
  freeze) signal_member STOP "${2:-}" "${3:-}" ;;
  thaw) signal_member CONT "${2:-}" "${3:-}" ;;
  leader) leader "${2:-}" ;;
  *)
    echo "usage: $0 start|stop [STATE_DIR] | start-cluster N DIR | kill|restart|freeze|thaw DIR I | leader DIR" >&2
    exit 2
    ;;
esac
