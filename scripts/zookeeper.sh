#!/usr/bin/env bash
# Starts and stops a standalone ZooKeeper on a loopback port, for tests and demos.
#
#   scripts/zookeeper.sh start [DIR]   install `zookeeper` (Debian) if missing, start a server whose config, data
#                                      and log live in DIR (default: a new temporary directory), wait until it
#                                      answers `ruok`, and print its connect string (127.0.0.1:PORT) on stdout
#   scripts/zookeeper.sh stop [DIR]    stop the server started in DIR and remove DIR
#   scripts/zookeeper.sh halt DIR       stop the server started in DIR and keep its data (`start DIR` resumes it;
#                                      set the same ZK_PORT)
#
#   scripts/zookeeper.sh start-ensemble N DIR   start an ensemble of N servers (1..N in DIR/s1..DIR/sN) on free
#                                      loopback ports, wait until each serves (one leads, the others follow) and
#                                      print the connect string (127.0.0.1:P1,127.0.0.1:P2,...); `stop DIR` stops
#                                      them all and removes their data
#   scripts/zookeeper.sh kill DIR I     SIGKILL server I of the ensemble (its data stays)
#   scripts/zookeeper.sh restart DIR I  start server I again on its ports and data, wait until it serves
#   scripts/zookeeper.sh freeze DIR I   SIGSTOP server I; `thaw DIR I` sends SIGCONT
#   scripts/zookeeper.sh leader DIR     print the number I of the server that leads now
#
# Without DIR, the directory of the last `start` without DIR is remembered in ${TMPDIR:-/tmp}/campanile-zookeeper.dir.
# Environment: ZK_PORT (default: a free port), ZK_TICK_MS (default 200: sessions of 400 ms to 60 s are allowed).
set -euo pipefail

state_file="${TMPDIR:-/tmp}/campanile-zookeeper.dir"
classpath="/usr/share/java/zookeeper.jar"

log() { printf 'zookeeper.sh: %s\n' "$*" >&2; }

install_zookeeper() {
  if [ -f "$classpath" ] && command -v java >/dev/null 2>&1; then
    return
  fi
  log "installing the zookeeper package"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends zookeeper >&2
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 30000))
    # Nothing listens there: connecting fails.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  log "found no free port"
  exit 1
}

# Sends a four-letter word to the server on $1 and prints the answer.
four_letters() {
  local port="$1" word="$2"
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s' "$word" >&3
  timeout 2 cat <&3 || true
  exec 3<&- 3>&-
}

start() {
  install_zookeeper
  local dir="${1:-}" remember=0
  if [ -z "$dir" ]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/campanile-zookeeper.XXXXXX")"
    remember=1
  fi
  mkdir -p "$dir/data" "$dir/conf"
  local port="${ZK_PORT:-$(free_port)}"
  local tick="${ZK_TICK_MS:-200}"
  cat >"$dir/conf/zoo.cfg" <<EOF
tickTime=$tick
minSessionTimeout=$((2 * tick))
maxSessionTimeout=600000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
autopurge.purgeInterval=0
EOF
  cat >"$dir/conf/log4j.properties" <<EOF
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$dir/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
  # setsid: the server must not die with the shell that started it, nor take its signals.
  setsid java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dzookeeper.log.dir="$dir" -Dlog4j.configuration="file:$dir/conf/log4j.properties" \
    -cp "$dir/conf:$classpath" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/conf/zoo.cfg" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  echo "$port" >"$dir/port"
  if [ "$remember" = 1 ]; then echo "$dir" >"$state_file"; fi
  local deadline=$((SECONDS + 60))
  # `ruok` answers as soon as the process runs; `srvr` shows a mode only once the server serves sessions.
  until [ "$(four_letters "$port" ruok 2>/dev/null)" = "imok" ] &&
    four_letters "$port" srvr 2>/dev/null | grep -q '^Mode:'; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      log "the server exited; its output:"
      cat "$dir/stdout.log" "$dir/zookeeper.log" >&2 2>/dev/null || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the server did not answer ruok on 127.0.0.1:$port within 60 s"
      stop "$dir"
      exit 1
    fi
    sleep 0.2
  done
  log "standalone server up on 127.0.0.1:$port (dir $dir, pid $(cat "$dir/pid"))"
  echo "127.0.0.1:$port"
}

# Writes the configuration of server $2 of the ensemble in $1 (ports in DIR/sI/{port,peer_port,election_port}).
ensemble_config() {
  local dir="$1" i="$2" s="$1/s$2" tick="${ZK_TICK_MS:-200}" j
  mkdir -p "$s/data" "$s/conf"
  echo "$i" >"$s/data/myid"
  {
    echo "tickTime=$tick"
    echo "initLimit=50"
    echo "syncLimit=10"
    echo "minSessionTimeout=$((2 * tick))"
    echo "maxSessionTimeout=600000"
    echo "dataDir=$s/data"
    echo "clientPort=$(cat "$s/port")"
    echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons"
    echo "autopurge.purgeInterval=0"
    for j in "$dir"/s*; do
      echo "server.${j##*/s}=127.0.0.1:$(cat "$j/peer_port"):$(cat "$j/election_port")"
    done
  } >"$s/conf/zoo.cfg"
  cat >"$s/conf/log4j.properties" <<EOF
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$s/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
}

# Starts server $2 of the ensemble in $1 from its configuration.
run_server() {
  local s="$1/s$2"
  setsid java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dzookeeper.log.dir="$s" -Dlog4j.configuration="file:$s/conf/log4j.properties" \
    -cp "$s/conf:$classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain "$s/conf/zoo.cfg" \
    >>"$s/stdout.log" 2>&1 </dev/null &
  echo $! >"$s/pid"
}

# Waits until server $2 of the ensemble in $1 serves: `srvr` shows it as leader or follower.
await_server() {
  local s="$1/s$2" deadline=$((SECONDS + 60))
  until four_letters "$(cat "$s/port")" srvr 2>/dev/null | grep -Eq '^Mode: (leader|follower)'; do
    if ! kill -0 "$(cat "$s/pid")" 2>/dev/null; then
      log "server $2 exited; its log:"
      tail -n 30 "$s/stdout.log" "$s/zookeeper.log" >&2 2>/dev/null || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "server $2 did not join a quorum within 60 s"
      return 1
    fi
    sleep 0.2
  done
}

server_dir() {
  local dir="${1:?the directory of the ensemble}" i="${2:?the number of the server}"
  if [ ! -f "$dir/s$i/port" ]; then
    log "no server $i in $dir"
    exit 2
  fi
  echo "$dir/s$i"
}

start_ensemble() {
  local n="${1:?start-ensemble needs the number of servers}" dir="${2:?start-ensemble needs a directory}"
  install_zookeeper
  stop_ensemble "$dir"
  rm -rf "$dir"/s*
  mkdir -p "$dir"
  local i port file used=" " connect=""
  for i in $(seq 1 "$n"); do
    mkdir -p "$dir/s$i"
    for file in port peer_port election_port; do
      port="$(free_port)"
      while [[ "$used" == *" $port "* ]]; do port="$(free_port)"; done
      used+="$port "
      echo "$port" >"$dir/s$i/$file"
    done
    connect+="${connect:+,}127.0.0.1:$(cat "$dir/s$i/port")"
  done
  for i in $(seq 1 "$n"); do ensemble_config "$dir" "$i"; done
  for i in $(seq 1 "$n"); do run_server "$dir" "$i"; done
  for i in $(seq 1 "$n"); do
    if ! await_server "$dir" "$i"; then
      stop_ensemble "$dir"
      exit 1
    fi
  done
  echo "$connect" >"$dir/connect"
  log "ensemble of $n servers up on $connect (dir $dir)"
  echo "$connect"
}

kill_ensemble_server() {
  local s pid
  s="$(server_dir "$@")"
  [ -f "$s/pid" ] || return 0
  pid="$(cat "$s/pid")"
  kill -CONT "$pid" 2>/dev/null || true
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

restart_ensemble_server() {
  local s
  s="$(server_dir "$@")"
  if [ -f "$s/pid" ] && kill -0 "$(cat "$s/pid")" 2>/dev/null; then
    log "server $2 is running"
    return
  fi
  run_server "$1" "$2"
  await_server "$1" "$2"
}

signal_ensemble_server() {
  local signal="$1" s
  shift
  s="$(server_dir "$@")"
  kill "-$signal" "$(cat "$s/pid")"
}

ensemble_leader() {
  local dir="${1:?leader needs the directory of the ensemble}" s
  for s in "$dir"/s*; do
    if four_letters "$(cat "$s/port")" srvr 2>/dev/null | grep -q '^Mode: leader'; then
      echo "${s##*/s}"
      return
    fi
  done
  log "no server leads now"
  return 1
}

stop_ensemble() {
  local dir="$1" s
  for s in "$dir"/s*; do
    [ -f "$s/pid" ] || continue
    kill -CONT "$(cat "$s/pid")" 2>/dev/null || true
    kill_server "$s"
  done
}

# Stops the server of $1 and waits for its exit.
kill_server() {
  local dir="$1"
  if [ -f "$dir/pid" ]; then
    local pid
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
  fi
}

halt() {
  local dir="${1:?halt needs the directory of the server}"
  kill_server "$dir"
  log "halted ($dir, data kept)"
}

stop() {
  local dir="${1:-}"
  if [ -z "$dir" ] && [ -f "$state_file" ]; then
    dir="$(cat "$state_file")"
  fi
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    log "nothing to stop"
    return 0
  fi
  kill_server "$dir"
  if [ -f "$dir/s1/port" ]; then
    stop_ensemble "$dir"
    rm -rf "$dir"/s* "$dir/connect"
  fi
  case "$dir" in
    "${TMPDIR:-/tmp}"/campanile-zookeeper.*) rm -rf "$dir" ;;
    *) rm -rf "$dir/data" ;;
  esac
  if [ -f "$state_file" ] && [ "$(cat "$state_file")" = "$dir" ]; then rm -f "$state_file"; fi
  log "stopped ($dir)"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  halt) halt "${2:-}" ;;
  start-ensemble) start_ensemble "${2:-}" "${3:-}" ;;
  kill) kill_ensemble_server "${2:-}" "${3:-}" ;;
  restart) restart_ensemble_server "${2:-}" "${3:-}" ;;
  freeze) signal_ensemble_server STOP "${2:-}" "${3:-}" ;;
  thaw) signal_ensemble_server CONT "${2:-}" "${3:-}" ;;
  leader) ensemble_leader "${2:-}" ;;
  *)
    echo "usage: $0 start [DIR] | stop [DIR] | halt DIR | start-ensemble N DIR | kill|restart|freeze|thaw DIR I | leader DIR" >&2
    exit 2
    ;;
esac
