//! The `connect` request's params and the device proof check.
//!
//! Input: 8 bytes of the gateway's clock (ms, any i64), one byte giving the length of this
//! connection's challenge nonce, the nonce, then the params as JSON. Parsing
//! (`serde_json::from_slice::<ConnectParams>`) must never panic, whatever it is given; params
//! that parse must serialize and parse again; and when they carry a `device` proof,
//! `gatewayd::runtime::devices::proof::verify` must return Ok or a reason, never panic, for the arbitrary
//! clock and nonce and also for the proof's own nonce and `signedAt` (the path a real client
//! takes, up to the signature), with the role and credential the handshake would use.

#![no_main]

use gateway_proto::ws::ConnectParams;
use gatewayd::runtime::devices::proof::{self, Signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let now_ms = i64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let rest = &data[9..];
    let nonce_len = usize::from(data[8]).min(rest.len());
    let (nonce, json) = rest.split_at(nonce_len);
    let nonce = String::from_utf8_lossy(nonce);

    let Ok(params) = serde_json::from_slice::<ConnectParams>(json) else {
        return;
    };
    let again = serde_json::to_vec(&params).expect("parsed params serialize");
    serde_json::from_slice::<ConnectParams>(&again).expect("serialized params parse again");

    let Some(device) = &params.device else {
        return;
    };
    // As the handshake does: the role defaults to operator; the credential is auth.token, else
    // auth.deviceToken, else empty.
    let role = params.role.clone().unwrap_or_else(|| "operator".into());
    let auth = params.auth.clone().unwrap_or_default();
    let token = auth.token.or(auth.device_token).unwrap_or_default();
    let clocks = [
        (nonce.as_ref(), now_ms),
        (device.nonce.as_str(), now_ms),
        (device.nonce.as_str(), device.signed_at),
        (device.nonce.as_str(), device.signed_at.wrapping_add(proof::MAX_SKEW_MS)),
    ];
    for (challenge, now_ms) in clocks {
        let signed = Signed {
            client: &params.client,
            role: &role,
            scopes: &params.scopes,
            token: &token,
            challenge,
            now_ms,
            // Half the time as for a device the registry remembers: its key already parsed.
            known_key: if token.len() % 2 == 0 { proof::parse_key(&device.public_key).ok() } else { None },
        };
        match proof::verify(device, &signed) {
            Ok(()) => {}
            Err(why) => assert!(!why.is_empty()),
        }
        let _ = proof::payload_v2(device, &signed);
    }
});
