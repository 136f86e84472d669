#!/usr/bin/env bash
# README's test command, and exactly what CI runs (.ci/run calls this): on a fresh machine with only Rust, it
#   1. installs what the tests need and is missing: etcd (`etcd-server`), ZooKeeper (`zookeeper`), PostgreSQL
#      (`postgresql`) and the headless browser of the console tests (`chromium`, `chromium-driver`), through
#      apt, as root or with sudo (scripts/etcd.sh, scripts/zookeeper.sh, scripts/postgres.sh,
#      scripts/chromium.sh);
#   2. starts a throwaway etcd, ZooKeeper and PostgreSQL on free loopback ports (CAMPANILE_TEST_ETCD,
#      CAMPANILE_TEST_ZK, CAMPANILE_TEST_POSTGRES), unless those variables already name servers to use;
#   3. checks formatting, lints (a build of every crate and target with PROTOC pointing at nothing, so no
#      dependency can bring back a need for `protoc`), every test including the real-server ones, docs, the
#      packaging (systemd unit, completions, man pages), the API against its OpenAPI document (schemathesis,
#      installed from PyPI into a virtualenv; python3-venv through apt if missing), and benchmark and fuzz
#      smoke runs;
#   4. stops the servers it started, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

# One target dir for every step (tests, clippy, docs, bench and fuzz smoke), so nothing is built twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Building needs no system tool: with PROTOC naming a file that does not exist, a build script that wants
# protoc fails every step below.
export PROTOC="$CARGO_TARGET_DIR/no-protoc-here/protoc"

# Servers started here are stopped on exit, in reverse order.
stop_steps=()
stop_servers() { local i; for ((i = ${#stop_steps[@]} - 1; i >= 0; i--)); do eval "${stop_steps[i]}" || true; done; }
trap stop_servers EXIT

if [ -z "${CAMPANILE_TEST_ETCD:-}" ]; then
  step "etcd (installed if missing, on a loopback port)"
  etcd_state="$(mktemp -d "${TMPDIR:-/tmp}/campanile-etcd.XXXXXX")"
  stop_steps+=("scripts/etcd.sh stop '$etcd_state'")
  CAMPANILE_TEST_ETCD="$(scripts/etcd.sh start "$etcd_state")"
  export CAMPANILE_TEST_ETCD
  echo "etcd at $CAMPANILE_TEST_ETCD"
fi
if [ -z "${CAMPANILE_TEST_ZK:-}" ]; then
  step "ZooKeeper (installed if missing, on a loopback port)"
  zk_dir="$(mktemp -d "${TMPDIR:-/tmp}/campanile-zookeeper.XXXXXX")"
  stop_steps+=("scripts/zookeeper.sh stop '$zk_dir'")
  CAMPANILE_TEST_ZK="$(scripts/zookeeper.sh start "$zk_dir")"
  export CAMPANILE_TEST_ZK
  echo "ZooKeeper at $CAMPANILE_TEST_ZK"
fi
if [ -z "${CAMPANILE_TEST_POSTGRES:-}" ]; then
  step "PostgreSQL (installed if missing, on a loopback port), for the history store"
  pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/campanile-postgres.XXXXXX")"
  stop_steps+=("scripts/postgres.sh stop '$pg_dir'")
  CAMPANILE_TEST_POSTGRES="$(scripts/postgres.sh start "$pg_dir")"
  export CAMPANILE_TEST_POSTGRES
  echo "PostgreSQL at $CAMPANILE_TEST_POSTGRES"
fi
if [ -z "${CAMPANILE_TEST_CHROMEDRIVER:-}" ]; then
  step "chromium and chromedriver (installed if missing), for the console tests"
  CAMPANILE_TEST_CHROMEDRIVER="$(scripts/chromium.sh)"
  export CAMPANILE_TEST_CHROMEDRIVER
  echo "chromedriver at $CAMPANILE_TEST_CHROMEDRIVER"
fi
# Under CI a test whose server or browser is missing fails instead of skipping; here all are always there.
export CI="${CI:-1}"

step "format"
cargo fmt --all -- --check

step "clippy: every crate and target, built with no protoc (PROTOC=$PROTOC)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Every workspace member, including adapters/examples/wrapper (the outside wrapper of adapters/README.md, run
# through the conformance suite) and the check that the suite catches every contract break.
step "tests (with real etcd, ZooKeeper and PostgreSQL)"
cargo test --workspace --locked

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "packaging: completions, man pages, example config, systemd unit"
bin="$CARGO_TARGET_DIR/debug/campanile"
generated="$(mktemp -d "${TMPDIR:-/tmp}/campanile-packaging.XXXXXX")"
stop_steps+=("rm -rf '$generated'")
packaging/generate.sh "$generated" "$bin"
"$bin" config check packaging/campanile.toml >/dev/null
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit as shipped, but pointing at the binary just built (verify checks that ExecStart exists) and with
  # the generated man pages on MANPATH (verify checks Documentation=man:campanile(1)).
  sed "s#/usr/local/bin/campanile#$bin#" packaging/campanile.service >"$generated/campanile.service"
  # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure here.
  verdict="$(MANPATH="$generated/man" systemd-analyze verify "$generated/campanile.service" 2>&1)" || {
    echo "$verdict"
    exit 1
  }
  if [ -n "$verdict" ]; then
    echo "$verdict"
    echo "systemd-analyze verify: packaging/campanile.service has problems"
    exit 1
  fi
  echo "systemd-analyze verify: the unit is valid"
else
  echo "systemd-analyze is not installed: the systemd unit was not verified"
fi

step "schemathesis: the API against its OpenAPI document, without a token, read-only and admin"
# The binary the tests built; 50 examples per operation and pass (about 2 minutes on 2 cores).
SCHEMATHESIS_EXAMPLES=50 scripts/schemathesis.sh "$bin"

step "chaos smoke: a fixed seed on a 3-member etcd cluster and a 3-server ZooKeeper ensemble"
# Debug builds of `chaos` and `campanile` (the one the tests built): 60 jobs, 90 s of faults
# (a rolling restart, a cut, and a node kill with a cut and a member freeze at once), about 2.5 minutes per
# backend; any violation (a fire run twice, an instant without its record, a misfire in a rolling restart)
# fails. The report stays in target/chaos/ (docs/chaos.md).
cargo build -p campanile-chaos --locked
for backend in etcd zk; do
  "$CARGO_TARGET_DIR/debug/chaos" --backend "$backend" --jobs 60 --minutes 1.5 --seed 1 \
    --campanile "$bin" --out "$CARGO_TARGET_DIR/chaos/smoke-$backend"
done

step "benchmark smoke (each benchmark runs once, as a test)"
cargo bench -p campanile-benches --locked -- --test

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke (replay the committed corpus)"
  scripts/fuzz-smoke.sh
fi
echo
echo "check: all green"
