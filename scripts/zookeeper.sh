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
  *)
    echo "usage: $0 start [DIR] | stop [DIR] | halt DIR" >&2
    exit 2
    ;;
esac
