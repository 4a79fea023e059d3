#!/usr/bin/env bash
# Build a release tarball of gatewayd and gatewayctl: gateway-VERSION-ARCH-linux.tar.gz with
# bin/ (both binaries), share/ (man pages, shell completions), install.sh, README.md and the
# commented default config. Unpacked anywhere, `./install.sh` installs it (no Rust needed).
#
#   packaging/build-tarball.sh [--output DIR] [--from DIR]
#
#   --output DIR  where to write the tarball (default: target/dist)
#   --from DIR    package binaries already built in DIR (gatewayd, gatewayctl and
#                 gateway-gen-assets) instead of running `cargo build --release`
#
# Prints the path of the tarball it wrote.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
output="$root/target/dist"
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output) output="${2:?--output needs a directory}"; shift 2 ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "build-tarball.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$from" ]; then
  (cd "$root" && cargo build --release --locked -p gatewayd -p gatewayctl -p gateway-packaging) >&2
  from="$root/target/release"
fi
for bin in gatewayd gatewayctl gateway-gen-assets; do
  [ -x "$from/$bin" ] || { echo "build-tarball.sh: $from/$bin is missing or not executable" >&2; exit 1; }
done

version="$("$from/gatewayctl" --version | cut -d' ' -f2)"
name="gateway-$version-$(uname -m)-linux"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
top="$stage/$name"
install -d "$top/bin" "$top/share"
install -m 0755 "$from/gatewayd" "$from/gatewayctl" "$top/bin/"
"$from/gateway-gen-assets" "$top/share"
install -m 0755 "$root/packaging/install.sh" "$top/install.sh"
install -m 0644 "$root/README.md" "$top/README.md"
install -m 0644 "$root/config/gateway.toml" "$top/gateway.toml"
mkdir -p "$output"
tar -C "$stage" -czf "$output/$name.tar.gz" "$name"
echo "$output/$name.tar.gz"
