#!/usr/bin/env bash
# Installs the headless browser the console tests drive, if missing, and prints where chromedriver is.
#
#   scripts/chromium.sh   install Debian's `chromium` and `chromium-driver` through apt (as root or with sudo)
#                         unless both are on PATH, then print the chromedriver path on stdout
#
# The browser comes from the distribution, never from a download of its own.
# Use it with: export CAMPANILE_TEST_CHROMEDRIVER=$(scripts/chromium.sh)
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  # fonts-liberation: one known font set, so that screenshots look alike on every machine.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-liberation >&2
fi
command -v chromedriver
