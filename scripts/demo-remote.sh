#!/usr/bin/env bash
# Remote-access posture, read from the config alone (no daemon): `gatewayctl remote inspect` and
# `remote plan` for a safe profile (tailscale-serve on a loopback bind with token auth: a plan
# with its preflight checks and commands) and an unsafe one (tailscale-funnel without a
# password, then local-only on a LAN bind: the gate holds and plan refuses with exit 78). The
# output is the same on every run apart from the temp home and the port, which are masked.
# tests/e2e/demo.rs runs it.
#
#   scripts/demo-remote.sh      # builds gatewayctl first if target/debug lacks it
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GATEWAY_BIN_DIR:-$ROOT/target/debug}
[ -x "$BIN/gatewayctl" ] || (cd "$ROOT" && cargo build -q -p gatewayctl)

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/gateway-demo.XXXXXX")
trap 'rm -rf "$DEMO"' EXIT
for v in $(env | sed -n 's/^\(GATEWAY_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export HOME=$DEMO XDG_CONFIG_HOME=$DEMO/config XDG_STATE_HOME=$DEMO/state XDG_RUNTIME_DIR=$DEMO/run
# A PATH without tailscale, so the preflight check reads the same everywhere.
export PATH=/usr/bin:/bin
CONFIG=$XDG_CONFIG_HOME/gateway/gateway.toml
mkdir -p "$(dirname "$CONFIG")"

say() { printf '\n== %s\n' "$*"; }
run() {
  printf '$ gatewayctl %s\n' "$*"
  set +e
  "$BIN/gatewayctl" "$@" 2>&1 | sed -e "s#$DEMO#<home>#g"
  local code=${PIPESTATUS[0]}
  set -e
  echo "(exit $code)"
}

say "the default: local-only, loopback, token auth"
run remote inspect

say "a safe remote profile: tailscale-serve keeps the loopback bind and token auth"
printf '[remote]\nprofile = "tailscale-serve"\n' >"$CONFIG"
run remote inspect --json
run remote plan

say "an unsafe one: tailscale-funnel puts the port on the internet, and no password is set"
run remote inspect --profile tailscale-funnel
run remote plan --profile tailscale-funnel

say "local-only with a LAN bind: the gate holds"
printf '[gateway]\nbind = "lan"\n' >"$CONFIG"
run remote inspect
run remote plan
