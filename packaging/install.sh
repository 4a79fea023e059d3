#!/usr/bin/env bash
# Install gatewayd and gatewayctl for the current user (no root needed): binaries into
# PREFIX/bin, man pages and shell completions under PREFIX/share. From a source tree it builds
# them first; from an unpacked release tarball (packaging/build-tarball.sh) it installs what the
# tarball holds.
#
#   packaging/install.sh [--prefix DIR] [--from DIR]
#
#   --prefix DIR  where to install (default: ~/.local)
#   --from DIR    take already-built binaries from DIR (or DIR/bin) instead of building: with
#                 gateway-gen-assets beside them, man pages and completions are generated; with
#                 DIR/share (a release tarball's), they are copied; else only the binaries go in
#
# Then run `gatewayctl install` to run gatewayd under your service manager (docs/runbook.md).
set -euo pipefail

prefix="${HOME}/.local"
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "$0")" && pwd)"
# An unpacked release tarball has bin/ and share/ beside this script.
if [ -z "$from" ] && [ -x "$here/bin/gatewayd" ]; then
  from="$here"
fi
if [ -z "$from" ]; then
  root="$(cd "$here/.." && pwd)"
  command -v cargo >/dev/null || {
    echo "install.sh: cargo not found; install Rust from https://rustup.rs, then run this again" >&2
    exit 1
  }
  (cd "$root" && cargo build --release --locked -p gatewayd -p gatewayctl -p gateway-packaging)
  from="$root/target/release"
fi
bindir="$from"
[ -x "$from/bin/gatewayd" ] && bindir="$from/bin"
for bin in gatewayd gatewayctl; do
  [ -x "$bindir/$bin" ] || { echo "install.sh: $bindir/$bin is missing or not executable" >&2; exit 1; }
done

assets=""
if [ -x "$bindir/gateway-gen-assets" ]; then
  assets="$(mktemp -d)"
  trap 'rm -rf "$assets"' EXIT
  "$bindir/gateway-gen-assets" "$assets"
elif [ -d "$from/share/man" ]; then
  assets="$from/share"
else
  echo "note: no man pages or completions in $from (neither gateway-gen-assets nor share/): installing the binaries only" >&2
fi

share="$prefix/share"
install -d -m 0755 "$prefix/bin" "$share/man/man1" "$share/bash-completion/completions" \
  "$share/zsh/site-functions" "$share/fish/vendor_completions.d"
# install(1) writes a new file, so a running gatewayd keeps its old binary until it restarts.
install -m 0755 "$bindir/gatewayd" "$bindir/gatewayctl" "$prefix/bin/"
if [ -n "$assets" ]; then
  install -m 0644 "$assets"/man/*.1 "$share/man/man1/"
  install -m 0644 "$assets"/completions/bash/* "$share/bash-completion/completions/"
  install -m 0644 "$assets"/completions/zsh/* "$share/zsh/site-functions/"
  install -m 0644 "$assets"/completions/fish/* "$share/fish/vendor_completions.d/"
fi

echo "installed gatewayd and gatewayctl $("$prefix/bin/gatewayctl" --version | cut -d' ' -f2) into $prefix/bin"
case ":${PATH}:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
echo "next: gatewayctl install   (runs gatewayd under systemd or launchd; see docs/runbook.md)"
