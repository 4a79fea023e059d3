"use strict";
// Drives gatewayd with the real npm client `openclaw-node` (tests/e2e/openclaw_node.rs runs it).
//
// Env: GATEWAY_URL (ws://127.0.0.1:PORT/), GATEWAY_TOKEN (the gateway token),
// DEVICE_IDENTITY_PATH (where openclaw-node keeps its Ed25519 identity and device token).
//
// Connects with the shared token and a fresh device identity (paired on first use from
// loopback), calls a few methods, chats (the `agent` stream and `chat.send` with `chat` events,
// against the built-in echo model), disconnects, then connects again with a new client instance
// and no shared token, so the only credential is the device token the first hello-ok issued and
// openclaw-node persisted. Prints one JSON line to stdout and exits 0; on any error prints it
// (with what the gateway answered) to stderr and exits 1. Never runs longer than the timeout.

const fs = require("fs");

// Node 20 has no global WebSocket, and openclaw-node's send() reads `WebSocket.OPEN` from the
// global scope (its connect() would fall back to require("ws"), but send() would then throw a
// ReferenceError that its message handler swallows, and connect() would hang).
if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = require("ws");
}
const { OpenClawClient } = require("openclaw-node");

const TIMEOUT_MS = Number(process.env.OPENCLAW_CLIENT_TIMEOUT_MS || 20000);
const SCOPES = ["operator.read", "operator.write", "operator.admin"];
const NEEDED_METHODS = ["health", "status", "agents.list", "config.get", "channels.status"];

let step = "start";
// What the gateway said that the client does not surface itself: failed responses (the connect
// refusal among them, with its error code and details), close frames, client errors.
const diagnostics = [];

function fail(err) {
  const lines = [`openclaw-node client failed at step "${step}": ${err && err.stack ? err.stack : err}`];
  for (const d of diagnostics) lines.push(`  ${JSON.stringify(d)}`);
  process.stderr.write(lines.join("\n") + "\n");
  process.exit(1);
}

const timer = setTimeout(() => fail(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
process.on("unhandledRejection", fail);
process.on("uncaughtException", fail);

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

function readIdentity(path) {
  return JSON.parse(fs.readFileSync(path, "utf8"));
}

function makeClient(label, options) {
  const client = new OpenClawClient({ ...options, scopes: SCOPES, autoReconnect: false });
  client.on("error", (e) => diagnostics.push({ client: label, error: String(e && e.message) }));
  client.on("pairingRequired", (p) => diagnostics.push({ client: label, pairingRequired: p }));
  client.on("protocol:response", (res) => {
    if (!res.ok) diagnostics.push({ client: label, response: res });
  });
  return client;
}

// connect(), also recording the close frame if the gateway closes the socket (the client only
// reports "WebSocket closed before handshake completed").
async function connect(label, client) {
  const pending = client.connect();
  if (client.ws) {
    client.ws.addEventListener("close", (e) =>
      diagnostics.push({ client: label, closed: { code: e.code, reason: String(e.reason) } }),
    );
  }
  return pending;
}

async function main() {
  const url = env("GATEWAY_URL");
  const token = env("GATEWAY_TOKEN");
  const deviceIdentityPath = env("DEVICE_IDENTITY_PATH");

  step = "connect #1 (shared token, new device)";
  const first = makeClient("first", { url, token, deviceIdentityPath });
  const hello = await connect("first", first);
  if (!first.isConnected) throw new Error("connect() resolved but isConnected is false");

  const methods = first.availableMethods;
  const missing = NEEDED_METHODS.filter((m) => !methods.includes(m));
  if (missing.length) throw new Error(`hello-ok features.methods lacks ${missing.join(", ")}: ${JSON.stringify(methods)}`);

  step = "health";
  const health = await first.health();
  step = "status";
  const status = (await first.request("status", {})).payload;
  step = "agents.list";
  const agents = await first.agents.list();
  step = "config.get";
  const config = await first.config.get();
  step = "channels.status";
  const channels = await first.channels.status();

  // A conversation: chat() runs `agent` and streams its `agent` events; sessions.send runs
  // `chat.send`, whose `chat` events arrive as client events.
  step = "chat (agent stream)";
  const chunks = [];
  for await (const chunk of first.chat("hello from openclaw-node", { sessionKey: "node-chat" })) {
    chunks.push(chunk);
  }
  step = "sessions.send (chat.send) and its chat events";
  const chatEvents = [];
  const finished = new Promise((resolve) => {
    first.on("event", (event) => {
      if (event.event !== "chat") return;
      chatEvents.push(event.payload);
      if (event.payload.state !== "delta") resolve();
    });
  });
  const sent = await first.sessions.send("node-chat", "second message");
  await finished;
  step = "chat.history";
  const history = await first.sessions.history("node-chat");
  step = "sessions.list";
  const sessions = await first.sessions.list();

  step = "disconnect #1";
  await first.disconnect();

  step = "read the persisted device token";
  const identity = readIdentity(deviceIdentityPath);
  if (typeof identity.deviceToken !== "string" || !identity.deviceToken) {
    throw new Error(`openclaw-node persisted no deviceToken in ${deviceIdentityPath} (hello-ok.auth had ${JSON.stringify(Object.keys(hello.auth || {}))})`);
  }

  // A new instance, as after a restart: it loads the identity file and sends the persisted
  // device token as auth.token (and signs over it). No shared token is given, so the device
  // token is the only credential.
  step = "connect #2 (persisted device token only)";
  const second = makeClient("second", { url, deviceIdentityPath });
  const hello2 = await connect("second", second);
  const reconnected = second.isConnected && hello2.type === "hello-ok";
  // openclaw-node's own record of whether this attempt used the persisted token (an internal
  // field; absent in other versions, hence only reported).
  const usedPersistedToken = second.currentAttempt ? second.currentAttempt.usedPersistedToken : null;
  step = "status on connect #2";
  const status2 = (await second.request("status", {})).payload;
  step = "disconnect #2";
  await second.disconnect();
  const identity2 = readIdentity(deviceIdentityPath);

  const result = {
    connected: true,
    protocol: hello.protocol,
    server: hello.server,
    scopes: hello.auth && hello.auth.scopes,
    role: hello.auth && hello.auth.role,
    helloHasDeviceToken: typeof (hello.auth && hello.auth.deviceToken) === "string",
    methods,
    health,
    status,
    agents,
    channels,
    configHash: config.hash,
    configFormat: config.format,
    configExists: config.exists,
    chat: {
      chunks: chunks.map((c) => ({ type: c.type, text: c.text })),
      sent,
      chatEvents: chatEvents.map((e) => ({ runId: e.runId, state: e.state, deltaText: e.deltaText })),
      history: history.messages.map((m) => ({ role: m.role, text: m.text })),
      sessions: sessions.sessions.map((s) => s.key),
    },
    deviceId: identity.deviceId,
    deviceTokenPersisted: true,
    reconnectedWithDeviceToken: reconnected,
    reconnect: {
      usedPersistedToken,
      scopes: hello2.auth && hello2.auth.scopes,
      connId: hello2.server && hello2.server.connId,
      statusPid: status2.pid,
      // The gateway issues a new device token with every hello-ok; openclaw-node must have
      // persisted the latest one (it clears the file's token only when a connect with it fails).
      helloHasDeviceToken: typeof (hello2.auth && hello2.auth.deviceToken) === "string",
      deviceTokenIsLatest: identity2.deviceToken === (hello2.auth && hello2.auth.deviceToken),
      deviceTokenRotated: identity2.deviceToken !== identity.deviceToken,
    },
  };
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

main().catch(fail);
