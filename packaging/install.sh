#!/usr/bin/env bash
# Install gatewayd and gatewayctl from this source tree for the current user (no root needed):
# binaries into PREFIX/bin, man pages and shell completions under PREFIX/share.
#
#   packaging/install.sh [--prefix DIR] [--from DIR]
#
#   --prefix DIR  where to install (default: ~/.local)
#   --from DIR    take already-built binaries (gatewayd, gatewayctl, gateway-gen-assets) from DIR
#                 instead of running `cargo build --release`
#
# Then run `gatewayctl install` to run gatewayd under your service manager (docs/runbook.md).
set -euo pipefail

prefix="${HOME}/.local"
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$from" ]; then
  command -v cargo >/dev/null || {
    echo "install.sh: cargo not found; install Rust from https://rustup.rs, then run this again" >&2
    exit 1
  }
  (cd "$root" && cargo build --release --locked -p gatewayd -p gatewayctl -p gateway-packaging)
  from="$root/target/release"
fi
for bin in gatewayd gatewayctl gateway-gen-assets; do
  [ -x "$from/$bin" ] || { echo "install.sh: $from/$bin is missing or not executable" >&2; exit 1; }
done

assets="$(mktemp -d)"
trap 'rm -rf "$assets"' EXIT
"$from/gateway-gen-assets" "$assets"

share="$prefix/share"
install -d -m 0755 "$prefix/bin" "$share/man/man1" "$share/bash-completion/completions" \
  "$share/zsh/site-functions" "$share/fish/vendor_completions.d"
# install(1) writes a new file, so a running gatewayd keeps its old binary until it restarts.
install -m 0755 "$from/gatewayd" "$from/gatewayctl" "$prefix/bin/"
install -m 0644 "$assets"/man/*.1 "$share/man/man1/"
install -m 0644 "$assets"/completions/bash/* "$share/bash-completion/completions/"
install -m 0644 "$assets"/completions/zsh/* "$share/zsh/site-functions/"
install -m 0644 "$assets"/completions/fish/* "$share/fish/vendor_completions.d/"

echo "installed gatewayd and gatewayctl $("$prefix/bin/gatewayctl" --version | cut -d' ' -f2) into $prefix/bin"
case ":${PATH}:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
echo "next: gatewayctl install   (runs gatewayd under systemd or launchd; see docs/runbook.md)"
