#!/usr/bin/env bash
# Writes what a package installs beside the binary, generated from the CLI definition:
#   packaging/generate.sh OUT_DIR [CAMPANILE]
# OUT_DIR/completions/{campanile.bash,_campanile,campanile.fish} and OUT_DIR/man/man1/*.1 (one page per command).
# CAMPANILE is the binary to ask (default: `campanile` on PATH). To install them:
#   install -D -m 0644 OUT_DIR/completions/campanile.bash /usr/share/bash-completion/completions/campanile
#   install -D -m 0644 OUT_DIR/completions/_campanile /usr/share/zsh/vendor-completions/_campanile
#   install -D -m 0644 OUT_DIR/completions/campanile.fish /usr/share/fish/vendor_completions.d/campanile.fish
#   install -D -m 0644 -t /usr/local/share/man/man1 OUT_DIR/man/man1/*.1
set -euo pipefail
out="${1:?usage: packaging/generate.sh OUT_DIR [CAMPANILE]}"
bin="${2:-campanile}"
mkdir -p "$out/completions" "$out/man/man1"
"$bin" completions bash >"$out/completions/campanile.bash"
"$bin" completions zsh >"$out/completions/_campanile"
"$bin" completions fish >"$out/completions/campanile.fish"
"$bin" man --out-dir "$out/man/man1"
echo "wrote completions to $out/completions and man pages to $out/man/man1" >&2
