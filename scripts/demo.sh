#!/usr/bin/env bash
# A tour of the gateway, start to stop, on a fresh temp home and a free port: status, a chat over
# HTTP (plain and streamed), an OpenResponses follow-up with previous_response_id, a WebSocket
# session, a webhook, a scheduled job firing, a hot reload applied and a broken one refused,
# `status --deep`, `doctor`, and the stop. The built-in echo model answers, so nothing leaves the
# machine and the output is the same on every run apart from ids, times and paths, which are
# masked (<id>, <time>, <home>, ...). tests/e2e/demo.rs runs it twice and compares.
#
#   scripts/demo.sh            # builds the binaries first if target/debug lacks them
#   GATEWAY_BIN_DIR=target/release scripts/demo.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GATEWAY_BIN_DIR:-$ROOT/target/debug}
if ! [ -x "$BIN/gatewayd" ] || ! [ -x "$BIN/gatewayctl" ] || ! [ -x "$BIN/gateway-ws-client" ]; then
  (cd "$ROOT" && cargo build -q --workspace --bins)
fi

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/gateway-demo.XXXXXX")
DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT
# A home of its own: nothing of the user's gateway is read or touched.
for v in $(env | sed -n 's/^\(GATEWAY_[A-Z_]*\)=.*/\1/p; s/^\(OTEL_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export HOME=$DEMO XDG_CONFIG_HOME=$DEMO/config XDG_STATE_HOME=$DEMO/state XDG_RUNTIME_DIR=$DEMO/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOOKS_TOKEN=demo-hooks-token-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
export DEMO_HOOKS_TOKEN=$HOOKS_TOKEN
CONFIG=$XDG_CONFIG_HOME/gateway/gateway.toml

# Masks what changes from run to run, so two runs print the same.
mask() {
  sed -E \
    -e "s#$DEMO#<home>#g" \
    -e "s#:$PORT\\b#:<port>#g; s#port $PORT\\b#port <port>#g; s#Port $PORT\\b#Port <port>#g" \
    -e 's#\b(run|resp|msg|chatcmpl|cmpl|item|fc)[_-][0-9a-f]{8,}#\1_<id>#g' \
    -e 's#"(id|runId|jobId|agentRunId|idempotencyKey)":"[^"]*"#"\1":"<id>"#g' \
    -e 's#[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)#<time>#g' \
    -e 's#\b1[0-9]{12}\b#<ms>#g; s#\b1[0-9]{9}\b#<s>#g' \
    -e 's#\bpid [0-9]+#pid <pid>#g; s#"pid":[0-9]+#"pid":<pid>#g' \
    -e 's#[0-9]+(\.[0-9]+)? ?([KMGT]i?B)\b#<size>#g' \
    -e 's#\b[0-9a-f]{8}\b#<hex>#g; s#\b[0-9a-f]{12}\b#<hex>#g' \
    -e 's#\b[0-9]+(\.[0-9]+)? ?(ms|µs|s|m|h|d)\b( ago)?#<dur>#g'
}
say() { printf '\n== %s\n' "$*"; }
ctl() { "$BIN/gatewayctl" "$@" 2>&1 | mask; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

say "start gatewayd with no config: it makes a token and answers with the built-in echo model"
"$BIN/gatewayd" run --port "$PORT" >"$DEMO/gatewayd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 200); do
  "$BIN/gatewayctl" health >/dev/null 2>&1 && break
  sleep 0.05
done
ctl health
TOKEN=$("$BIN/gatewayctl" token show --json | json 'd["token"]')
AUTH="Authorization: Bearer $TOKEN"
API=http://127.0.0.1:$PORT

say "status"
"$BIN/gatewayctl" status --json | json '"state=%s auth=%s bind=%s config_generation=%s" % (d["state"], d["auth_mode"], d["listen"]["bind"], d["config"]["generation"])'

say "a chat completion over HTTP (OpenAI-compatible)"
curl -fsS "$API/v1/chat/completions" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"model":"echo/echo","messages":[{"role":"user","content":"Hello, gateway."}]}' \
  | json '"%s: %s (finish: %s)" % (d["model"], d["choices"][0]["message"]["content"], d["choices"][0]["finish_reason"])'

say "the same, streamed (server-sent events)"
curl -fsSN "$API/v1/chat/completions" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"model":"echo/echo","stream":true,"messages":[{"role":"user","content":"Stream this back."}]}' \
  | python3 -c '
import json, sys
parts, events = [], 0
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("data: "):
        continue
    events += 1
    if line == "data: [DONE]":
        break
    for c in json.loads(line[6:])["choices"]:
        parts.append(c.get("delta", {}).get("content") or "")
print("%d events, text: %s" % (events, "".join(parts)))'

say "OpenResponses: a response, then a follow-up that continues it with previous_response_id"
FIRST=$(curl -fsS "$API/v1/responses" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"model":"echo/echo","input":"Remember the word teapot."}')
echo "$FIRST" | json '"%s: %s" % (d["status"], d["output"][0]["content"][0]["text"])'
FIRST_ID=$(echo "$FIRST" | json 'd["id"]')
curl -fsS "$API/v1/responses" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"model\":\"echo/echo\",\"input\":\"What was the word?\",\"previous_response_id\":\"$FIRST_ID\"}" \
  | json '"%s: %s (previous_response_id set: %s)" % (d["status"], d["output"][0]["content"][0]["text"], bool(d.get("previous_response_id")))' | mask

say "a WebSocket session (gateway-ws-client: connect, a method, a chat)"
GATEWAY_TOKEN=$TOKEN "$BIN/gateway-ws-client" --port "$PORT" hello \
  call sessions.create '{"key":"demo-ws"}' chat demo-ws "Hi over the WebSocket." 2>&1 | mask

say "webhooks: turn them on with a token of their own (a hot reload), then call one"
cat >"$CONFIG" <<TOML
[hooks]
enabled = true
token = "env:DEMO_HOOKS_TOKEN"
TOML
ctl reload
curl -fsS "$API/hooks/agent" -H "Authorization: Bearer $HOOKS_TOKEN" -H 'Content-Type: application/json' \
  -d '{"message":"The build passed.","sessionKey":"hook:ci"}' | json '"accepted: ok=%s session=%s" % (d["ok"], d["sessionKey"])'

say "a scheduled job: every second, until it has run once"
ctl cron add --name demo-tick --every 1s --message "Tick from the scheduler."
for _ in $(seq 1 100); do
  "$BIN/gatewayctl" cron runs demo-tick --json | json 'any(r["status"] == "ok" for r in d)' | grep -q True && break
  sleep 0.1
done
"$BIN/gatewayctl" cron disable demo-tick >/dev/null
"$BIN/gatewayctl" cron runs demo-tick --json \
  | json '"first run: %s %s (%s), answer: %s" % ([r for r in d if r["status"] == "ok"][-1]["trigger"], "ok", [r for r in d if r["status"] == "ok"][-1]["reasonCode"], [r for r in d if r["status"] == "ok"][-1]["summary"])'
"$BIN/gatewayctl" status --json | json '"events: rollout_gate=%s reason=%s discovered=%s" % (d["events"]["rollout_gate"], d["events"]["reason_code"], d["events"]["discovered_events"])'

say "a hot reload applied: the heartbeat every 2 s"
cat >>"$CONFIG" <<TOML
[gateway.heartbeat]
interval_ms = 2000
TOML
ctl reload

say "a broken config is refused with its file, line and key; the old one keeps serving"
cp "$CONFIG" "$DEMO/good.toml"
sed -i 's/^interval_ms = 2000$/interval_ms = "often"/' "$CONFIG"
ctl reload || true
"$BIN/gatewayctl" status --json | json '"still serving generation %s" % d["config"]["generation"]'
cp "$DEMO/good.toml" "$CONFIG"
echo "(the file put back)"
ctl reload

say "status --deep"
"$BIN/gatewayctl" status --deep >"$DEMO/deep.txt" 2>&1 || true
grep -E '^(Runtime|Control socket|RPC probe|Daemon health|Scheduled jobs|Verdict)' "$DEMO/deep.txt" | mask

say "doctor"
"$BIN/gatewayctl" doctor --json | json '"\n".join("%s: %s: %s" % (c["id"], c["severity"], c["finding"]) for c in d["checks"])' | mask

say "stop"
ctl stop
wait "$DAEMON_PID" 2>/dev/null || true
echo "gatewayd exited $?"
DAEMON_PID=
