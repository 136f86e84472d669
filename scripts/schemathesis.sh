#!/usr/bin/env bash
# Checks the API against its own OpenAPI document with schemathesis (https://schemathesis.readthedocs.io):
# a live `campanile serve` (in-memory coordinator, loopback port, a token file with an admin and a read-only
# token) gets generated requests for every operation, three times: without a token (everything under /v1 must
# answer the documented 401), with the read-only token (403 on every change) and with the admin token (the
# run stream, which stays open for seconds, has a short run of its own). Every
# answer must match the document (status, content type, schema, headers), and none may be a 5xx.
#
#   scripts/schemathesis.sh [BINARY]      # default: $CARGO_TARGET_DIR/debug/campanile, built if missing
#
# Environment: SCHEMATHESIS_EXAMPLES (examples per operation, default 50: about 2 minutes on 2 cores; CI runs
# this default), SCHEMATHESIS_VERSION (default the pinned one below). schemathesis is installed from PyPI with
# pip into a virtualenv under the target dir on first use (python3-venv is installed through apt if missing).
# What the document cannot express, and so what schemathesis is told to expect, is in scripts/schemathesis.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
examples="${SCHEMATHESIS_EXAMPLES:-50}"
bin="${1:-$CARGO_TARGET_DIR/debug/campanile}"
[ -x "$bin" ] || cargo build -p campanile-runtime --locked

# What the document cannot say (semantic checks answered with a 400, preconditions with a 412): see there.
config="$PWD/scripts/schemathesis.toml"

venv="$CARGO_TARGET_DIR/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  # A bare Debian has python3 without venv/ensurepip (the python3-venv package): install what is missing,
  # as scripts/etcd.sh installs etcd-server (root or sudo).
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing python3-venv"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3 python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/campanile-schemathesis.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

admin="schemathesis-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
reader="schemathesis-reader-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf 'admin %s\nread-only %s\n' "$admin" "$reader" >"$work/tokens"
chmod 600 "$work/tokens"

"$bin" serve --listen 127.0.0.1:0 --coordinator memory: --token-file "$work/tokens" --log-format json \
  --log-level warn,campanile_runtime=info 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  addr="$(sed -n 's/.*"message":"listening","addr":"\([^"]*\)".*/\1/p' "$work/server.log" | head -1)"
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "${addr:-}" ]; then
  echo "the server did not start:"; cat "$work/server.log"; exit 1
fi
base="http://$addr"
curl -fsS -H "Authorization: Bearer $admin" "$base/v1/openapi.json" >"$work/openapi.json"
echo "schemathesis $version against $base, $examples examples per operation"

failed=()
run() {
  local name="$1"; shift
  echo
  echo "== $name"
  # From the temporary directory: schemathesis keeps a cache (.schemathesis/) in its working directory.
  (cd "$work" && "$venv/bin/st" --config-file "$config" run openapi.json --url "$base" --checks all \
    --max-examples "$examples" --seed 1 --no-color "$@") || failed+=("$name")
}
# `GET /v1/runs/stream` stays open for `seconds` (1 to 25, default 25) and every generated request would wait
# that long: without a token it answers 401 at once and is tested with the rest; with a token it has a run of
# its own, its examples and boundary values only (a few requests).
stream="/v1/runs/stream"
run "without a token"
run "read-only token" --header "Authorization: Bearer $reader" --exclude-path "$stream"
run "admin token" --header "Authorization: Bearer $admin" --exclude-path "$stream"
run "run stream, admin token" --header "Authorization: Bearer $admin" --include-path "$stream" \
  --phases examples,coverage

if grep -q '"level":"ERROR"' "$work/server.log"; then
  echo "the server logged errors:"; grep '"level":"ERROR"' "$work/server.log"; exit 1
fi
echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "schemathesis: failures ${failed[*]}"
  exit 1
fi
echo "schemathesis: no failure"
