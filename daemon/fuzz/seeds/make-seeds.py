#!/usr/bin/env python3
"""Writes the seed inputs in this directory (python3 with `cryptography` for Ed25519).

Seeds are committed; run this only to change them:  python3 daemon/fuzz/seeds/make-seeds.py
The working corpora (daemon/fuzz/corpus/) grow from these and are not committed.
"""
import base64, hashlib, json, os, struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# connect_params: clock (i64 LE), nonce length, nonce, JSON params.
def connect_seed(params, now_ms, nonce):
    n = nonce.encode()
    return struct.pack("<q", now_ms) + bytes([len(n)]) + n + json.dumps(params).encode()


key = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
public = key.public_key().public_bytes_raw()
device_id = hashlib.sha256(public).hexdigest()
client = {"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli", "deviceFamily": "desktop"}
scopes = ["operator.read", "operator.write"]
token, nonce, signed_at = "gateway-token", "5f0c8a52-2f7e-4b7e-9d0a-0c1f4c1b2e3d", 1_800_000_000_000
v2 = "|".join(["v2", device_id, client["id"], client["mode"], "operator", ",".join(scopes), str(signed_at), token, nonce])
v3 = v2.replace("v2|", "v3|", 1) + "|" + client["platform"] + "|" + client["deviceFamily"]
for version, payload in (("v2", v2), ("v3", v3)):
    params = {
        "minProtocol": 3, "maxProtocol": 4, "client": client, "role": "operator", "scopes": scopes,
        "caps": [], "auth": {"token": token}, "locale": "en", "userAgent": "seed",
        "device": {"id": device_id, "publicKey": b64(public), "signature": b64(key.sign(payload.encode())),
                   "signedAt": signed_at, "nonce": nonce},
    }
    write("connect_params", f"device-{version}", connect_seed(params, signed_at + 1000, nonce))
write("connect_params", "token-only", connect_seed(
    {"minProtocol": 4, "maxProtocol": 4, "client": {"id": "x", "mode": "y"}, "auth": {"token": "t"}}, 0, "n"))
write("connect_params", "device-token", connect_seed(
    {"minProtocol": 4, "maxProtocol": 4, "client": {"id": "x", "mode": "y"}, "role": "node",
     "auth": {"deviceToken": "dt", "password": "p"},
     "device": {"id": "AB" * 32, "publicKey": "=", "signature": "", "signedAt": -1, "nonce": ""}},
    -(2 ** 63), ""))

# A known crash, replayed by run-short.sh (not a seed, so that fuzzing still explores while it
# stands): the v2 proof with the gateway's clock at i64::MIN, so that `now_ms - signed_at`
# overflows in proof::verify.
d = os.path.join(HERE, "..", "regressions", "connect_params")
os.makedirs(d, exist_ok=True)
with open(os.path.join(HERE, "connect_params", "device-v2"), "rb") as f:
    seed = f.read()
with open(os.path.join(d, "signed-at-overflow"), "wb") as f:
    f.write(struct.pack("<q", -(2 ** 63)) + seed[8:])

# config_loader: the reference config and a few small ones, valid and not.
with open(os.path.join(ROOT, "config", "gateway.toml"), "rb") as f:
    write("config_loader", "reference", f.read())
write("config_loader", "token", '[gateway.auth]\ntoken = "env:MY_TOKEN"\nmode = "token"\n')
write("config_loader", "bad-type", '[gateway]\nport = "eighty"\n[gateway.ws]\nmax_payload_bytes = 1\n')
write("config_loader", "unknown-key", 'gateway.nope = 1\n[logging]\nlevel = "loud"\n')
write("config_loader", "inline", 'gateway = { bind = "lan", http = { trusted_proxies = ["10.0.0.1"] } }\n')


# ws_frames: mode byte (bit 7: frames mode; low bits: limit), two chunking bytes, then the rest.
def client_frame(fin, opcode, payload, mask):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


M = b"\x01\x02\x03\x04"
req = json.dumps({"type": "req", "id": "1", "method": "health", "params": {}}).encode()
write("ws_frames", "raw-text", bytes([0x05, 0x02, 0x07]) + client_frame(True, 1, req, M))
write("ws_frames", "raw-fragments", bytes([0x06, 0x01, 0x00]) + client_frame(False, 1, b"hel", M)
      + client_frame(True, 9, b"p", M) + client_frame(True, 0, b"lo", M) + client_frame(True, 8, b"\x03\xe8bye", M))
write("ws_frames", "raw-long", bytes([0x04, 0x03, 0x01]) + client_frame(True, 2, bytes(300), M)
      + client_frame(True, 1, "é".encode() * 40000, M))
write("ws_frames", "frames", bytes([0x80, 0x04, 0x09]) + bytes([0x0C, 40]) + bytes(range(40)) + bytes([128, 64])
      + M * 8 + bytes([0x02, 5]) + b"hello" + M + bytes([0x04, 0x10]) + b"reason" + M)

# http_routes: route index (ROUTES in fuzz_targets/http_routes.rs), flags (4: a path parameter
# follows, length-prefixed), then the body.
HTTP_ROUTES = [
    ("POST", "/v1/chat/completions", {"model": "echo/echo", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
    ("POST", "/v1/completions", {"model": "echo/echo", "prompt": "hello", "max_tokens": 3}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/{}", None),
    ("POST", "/v1/responses", {"model": "echo/echo", "input": "hello", "store": True}),
    ("GET", "/v1/responses/{}", None),
    ("DELETE", "/v1/responses/{}", None),
    ("POST", "/v1/{}", {}),
    ("GET", "/gateway/status", None),
    ("POST", "/gateway/auth/session", {"password": "x"}),
    ("DELETE", "/gateway/auth/session", None),
    ("GET", "/gateway/sessions", None),
    ("GET", "/gateway/sessions/{}", None),
    ("DELETE", "/gateway/sessions/{}", None),
    ("POST", "/gateway/sessions/{}/reset", None),
    ("GET", "/gateway/memory/{}", None),
    ("PUT", "/gateway/memory/fuzz/{}", {"value": "tea"}),
    ("DELETE", "/gateway/memory/fuzz/{}", None),
    ("POST", "/hooks/wake", {"text": "wake up", "mode": "now"}),
    ("POST", "/hooks/agent", {"message": "hello", "sessionKey": "hook:fuzz", "model": "echo/echo"}),
    ("POST", "/hooks/{}", {}),
    ("POST", "/tools/invoke", {"tool": "sessions_list", "args": {}}),
]
for i, (method, path, body) in enumerate(HTTP_ROUTES):
    raw = b"" if body is None else json.dumps(body).encode()
    param = (bytes([4]) + b"desk") if "{}" in path else b""
    name = "%02d%s" % (i, (method + path).replace("/", "_").replace("{}", "P"))
    write("http_routes", name, bytes([i, 4 if param else 0]) + param + raw)

# control_api: route index (ROUTES in fuzz_targets/control_api.rs), path parameter length, the
# parameter, then the body.
CONTROL_ROUTES = ["v1_status", "v1_reload", "v1_logs", "v1_config", "v1_token", "v1_token_rotate",
                  "v1_devices", "approve", "reject", "revoke", "v1_signins", "srevoke", "v1_sessions",
                  "osrevoke", "get", "post"]
for i, name in enumerate(CONTROL_ROUTES):
    param = b"0123abcd" if i in (7, 8, 9, 11, 13, 14, 15) else b""
    raw = json.dumps({"scopes": ["operator.read"]}).encode() if i == 7 else b""
    write("control_api", "%02d-%s" % (i, name), bytes([i, len(param)]) + param + raw)
