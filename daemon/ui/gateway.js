// The gateway as this browser's WebSocket client: a device identity (an Ed25519 key made by
// WebCrypto, non-extractable, kept in IndexedDB), the connect handshake signed with it, requests
// with ids, and events. The session cookie authenticates the upgrade; the device's pairing and
// scopes decide what the connection may do, exactly as for any other client.

const PROTOCOL = 4;
const DB = "gateway-ui";
const STORE = "identity";

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function idb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => { open.result.close(); resolve(req && req.result); };
      tx.onerror = () => reject(tx.error);
    };
  });
}

/** This browser's device: made once, the private key never leaves WebCrypto. */
export async function deviceIdentity() {
  let keys = await idb("readonly", (s) => s.get("device"));
  if (!keys) {
    keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await idb("readwrite", (s) => s.put(keys, "device"));
  }
  const raw = await crypto.subtle.exportKey("raw", keys.publicKey);
  const id = hex(await crypto.subtle.digest("SHA-256", raw));
  return { id, publicKey: b64url(raw), privateKey: keys.privateKey };
}

/** Forgets this browser's device (a new one pairs on the next connect). */
export function forgetDevice() {
  return idb("readwrite", (s) => s.delete("device"));
}

export class GatewayError extends Error {
  constructor(error) {
    super(error.message || "request failed");
    this.code = error.code;
    this.details = error.details || {};
  }
}

export class Gateway extends EventTarget {
  constructor({ scopes }) {
    super();
    this.scopes = scopes;
    this.pending = new Map();
    this.nextId = 1;
    this.hello = null;
    this.closed = false;
  }

  /** Opens the socket and completes the handshake; rejects with the gateway's refusal. */
  async connect() {
    const device = await deviceIdentity();
    const url = new URL("/", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e) => { if (!settled) { settled = true; reject(e); } };
      ws.onerror = () => fail(new GatewayError({ message: "cannot reach the gateway" }));
      ws.onclose = (e) => {
        fail(new GatewayError({ message: e.reason || `connection closed (${e.code})`, code: "CLOSED" }));
        for (const { reject: r } of this.pending.values()) r(new GatewayError({ message: "connection closed" }));
        this.pending.clear();
        if (settled) this.dispatchEvent(new CustomEvent("close", { detail: { code: e.code, reason: e.reason } }));
      };
      ws.onmessage = async (m) => {
        let frame;
        try { frame = JSON.parse(m.data); } catch { return; }
        if (frame.type === "event" && frame.event === "connect.challenge") {
          try {
            const params = await this.connectParams(device, frame.payload.nonce);
            const hello = await this.request("connect", params);
            this.hello = hello;
            settled = true;
            resolve(hello);
          } catch (e) { fail(e); }
        } else if (frame.type === "res") {
          const waiting = this.pending.get(frame.id);
          if (!waiting) return;
          this.pending.delete(frame.id);
          if (frame.ok) waiting.resolve(frame.payload);
          else waiting.reject(new GatewayError(frame.error || {}));
        } else if (frame.type === "event") {
          this.dispatchEvent(new CustomEvent(frame.event, { detail: frame.payload }));
          this.dispatchEvent(new CustomEvent("*", { detail: frame }));
        }
      };
    });
  }

  async connectParams(device, nonce) {
    const client = { id: "gateway-control-ui", version: "1", platform: "web", mode: "ui", displayName: "Control UI (browser)" };
    const role = "operator";
    const signedAt = Date.now();
    // The v3 payload, as the reference clients sign it: platform and device family lower-cased.
    const payload = ["v3", device.id, client.id, client.mode, role, this.scopes.join(","), String(signedAt), "", nonce,
      client.platform.toLowerCase(), ""].join("|");
    const signature = await crypto.subtle.sign("Ed25519", device.privateKey, new TextEncoder().encode(payload));
    return {
      minProtocol: PROTOCOL, maxProtocol: PROTOCOL, client, role, scopes: this.scopes,
      device: { id: device.id, publicKey: device.publicKey, signature: b64url(signature), signedAt, nonce },
      locale: navigator.language, userAgent: navigator.userAgent,
    };
  }

  request(method, params = {}) {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new GatewayError({ message: "not connected to the gateway" }));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type: "req", id, method, params }));
    });
  }

  /** The scopes this connection was granted. */
  granted() {
    return (this.hello && this.hello.auth && this.hello.auth.scopes) || [];
  }

  can(need) {
    const s = this.granted();
    if (s.includes("operator.admin")) return true;
    if (need === "read") return s.includes("operator.read") || s.includes("operator.write");
    if (need === "write") return s.includes("operator.write");
    if (need === "pairing") return s.includes("operator.pairing");
    return false;
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000, "signed out");
  }
}

/** The UI's own calls to its sign-in routes: same origin, with the CSRF header. */
export async function uiSession(method, body) {
  const res = await fetch(new URL("/gateway/ui/session", location.href), {
    method,
    credentials: "same-origin",
    headers: { "x-gateway-csrf": "1", ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new GatewayError({ message: (data.error && data.error.message) || data.message || `HTTP ${res.status}`, code: res.status });
  return data;
}
