#!/usr/bin/env bash
# Build the Debian package of gatewayd and gatewayctl with cargo-deb (metadata in daemon/Cargo.toml):
# both binaries, the systemd user and system units, the commented default config, man pages and
# shell completions.
#
#   packaging/build-deb.sh [--profile release|dev] [--output DIR] [--fast] [--no-build]
#
#   --profile   the Cargo profile to build and package (default: release)
#   --output    where to write the .deb (default: target/debian)
#   --fast      gzip instead of xz: a larger file, built quicker (the tests use it)
#   --no-build  package the binaries already built for the profile (gatewayd, gatewayctl and
#               gateway-gen-assets) instead of running `cargo build`
#
# Needs cargo-deb: `cargo install cargo-deb --locked`. Prints the path of the .deb it wrote.
set -euo pipefail

profile=release
output=""
fast=()
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --output) output="${2:?--output needs a directory}"; shift 2 ;;
    --fast) fast=(--fast -Z gz); shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo deb --version >/dev/null 2>&1 || {
  echo "build-deb.sh: cargo-deb not found; install it with: cargo install cargo-deb --locked" >&2
  exit 1
}
target="${CARGO_TARGET_DIR:-$root/target}"
case "$profile" in dev) dir="$target/debug" ;; *) dir="$target/$profile" ;; esac

if [ "$build" = 1 ]; then
  cargo build --locked --profile "$profile" -p gatewayd -p gatewayctl -p gateway-packaging >&2
fi
for bin in gatewayd gatewayctl gateway-gen-assets; do
  [ -x "$dir/$bin" ] || { echo "build-deb.sh: $dir/$bin is not built (drop --no-build)" >&2; exit 1; }
done
# The man pages and completions that daemon/Cargo.toml's assets list, rendered from the binaries' CLIs.
rm -rf "$target/packaging"
"$dir/gateway-gen-assets" "$target/packaging" >&2
cargo deb -p gatewayd --no-build --profile "$profile" ${output:+--output "$output"} "${fast[@]}" --quiet
