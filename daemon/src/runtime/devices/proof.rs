//! Checking a device's signed proof in `connect`: the id is the SHA-256 of the public key, the
//! nonce is this connection's challenge, the signature is fresh and covers what the client asked
//! for (role, scopes, the credential it presented), so none of it can be replayed or altered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use gateway_proto::ws::{ClientInfo, DeviceProof};
use sha2::{Digest, Sha256};

/// How far `signedAt` may be from our clock.
pub const MAX_SKEW_MS: i64 = 2 * 60 * 1000;

/// What the signature must cover besides the proof itself.
pub struct Signed<'a> {
    pub client: &'a ClientInfo,
    pub role: &'a str,
    pub scopes: &'a [String],
    /// The credential presented in `auth` (token or device token), or "" if none.
    pub token: &'a str,
    /// The `connect.challenge` nonce sent on this connection.
    pub challenge: &'a str,
    pub now_ms: i64,
    /// The device's key as an earlier handshake parsed it, when the registry remembers one:
    /// used if it is the key presented, which saves decompressing the curve point again.
    pub known_key: Option<VerifyingKey>,
}

/// The device id of a raw 32-byte public key: lowercase hex SHA-256.
pub fn device_id(public_key: &[u8]) -> String {
    Sha256::digest(public_key).iter().map(|b| format!("{b:02x}")).collect()
}

/// Ok when the proof is valid; otherwise why not, in words for the client.
pub fn verify(proof: &DeviceProof, signed: &Signed<'_>) -> Result<(), String> {
    let key_bytes = key_bytes(&proof.public_key)?;
    if device_id(&key_bytes) != proof.id.to_ascii_lowercase() {
        return Err("device.id is not the SHA-256 of device.publicKey".into());
    }
    if proof.nonce != signed.challenge {
        return Err("device.nonce does not match this connection's challenge".into());
    }
    // abs_diff: `signedAt` is the client's number, and a subtraction could overflow.
    if signed.now_ms.abs_diff(proof.signed_at) > MAX_SKEW_MS.unsigned_abs() {
        return Err("device.signedAt is more than 2 minutes from the gateway's clock".into());
    }
    let key = match signed.known_key.filter(|k| k.as_bytes() == &key_bytes) {
        Some(key) => key,
        None => parse_key_bytes(&key_bytes)?,
    };
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(proof.signature.trim_end_matches('='))
        .map_err(|_| "device.signature is not base64url".to_owned())?;
    let signature =
        Signature::from_slice(&sig_bytes).map_err(|_| "device.signature is not 64 bytes".to_owned())?;
    // v3 first, as the reference gateway tries them: current clients sign v3, and each
    // verification that fails costs as much as one that succeeds.
    let v2 = payload_v2(proof, signed);
    let v3 = payload_v3(&v2, signed);
    if key.verify(v3.as_bytes(), &signature).is_ok() || key.verify(v2.as_bytes(), &signature).is_ok() {
        Ok(())
    } else {
        Err("device.signature does not verify".into())
    }
}

/// A `device.publicKey` as a key to verify with.
pub fn parse_key(public_key: &str) -> Result<VerifyingKey, String> {
    parse_key_bytes(&key_bytes(public_key)?)
}

fn key_bytes(public_key: &str) -> Result<[u8; 32], String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(public_key.trim_end_matches('='))
        .map_err(|_| "device.publicKey is not base64url".to_owned())?;
    bytes.try_into().map_err(|_| "device.publicKey is not a 32-byte Ed25519 key".to_owned())
}

fn parse_key_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(bytes).map_err(|_| "device.publicKey is not a valid Ed25519 key".to_owned())
}

/// `v2|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce`
pub fn payload_v2(proof: &DeviceProof, signed: &Signed<'_>) -> String {
    [
        "v2",
        &proof.id,
        &signed.client.id,
        &signed.client.mode,
        signed.role,
        &signed.scopes.join(","),
        &proof.signed_at.to_string(),
        signed.token,
        &proof.nonce,
    ]
    .join("|")
}

/// `v3|…v2's fields…|platform|deviceFamily`, the two metadata fields normalised as the
/// reference clients sign them: trimmed, ASCII letters lower-cased, anything else kept (a client
/// sends `"Linux"` and signs `linux`).
pub fn payload_v3(v2: &str, signed: &Signed<'_>) -> String {
    format!(
        "{}|{}|{}",
        v2.replacen("v2|", "v3|", 1),
        normalized_metadata(&signed.client.platform),
        normalized_metadata(signed.client.device_family.as_deref().unwrap_or(""))
    )
}

fn normalized_metadata(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn setup() -> (SigningKey, ClientInfo, Vec<String>) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let client = ClientInfo {
            id: "test".into(),
            mode: "cli".into(),
            platform: "linux".into(),
            ..Default::default()
        };
        (key, client, vec!["operator.read".into()])
    }

    fn proof(key: &SigningKey, signed: &Signed<'_>, version: &str) -> DeviceProof {
        let public = key.verifying_key().to_bytes();
        let mut proof = DeviceProof {
            id: device_id(&public),
            public_key: URL_SAFE_NO_PAD.encode(public),
            signature: String::new(),
            signed_at: signed.now_ms - 1000,
            nonce: signed.challenge.into(),
        };
        let mut text = payload_v2(&proof, signed);
        if version == "v3" {
            text = format!("{}|linux|", text.replacen("v2|", "v3|", 1));
        }
        proof.signature = URL_SAFE_NO_PAD.encode(key.sign(text.as_bytes()).to_bytes());
        proof
    }

    #[test]
    fn v3_metadata_is_normalised_as_the_reference_signs_it() {
        // The reference's own vectors (openclaw src/gateway/device-auth.test.ts).
        assert_eq!(normalized_metadata("  IOS  "), "ios");
        assert_eq!(normalized_metadata("  MAC  "), "mac");
        assert_eq!(normalized_metadata("  \u{130}OS  "), "\u{130}os");
        assert_eq!(normalized_metadata(""), "");
        let client = ClientInfo {
            id: "openclaw-macos".into(),
            mode: "ui".into(),
            platform: "  IOS  ".into(),
            device_family: Some("  iPhone  ".into()),
            ..setup().1
        };
        let scopes = vec!["operator.admin".to_owned(), "operator.read".to_owned()];
        let signed = Signed {
            client: &client,
            role: "operator",
            scopes: &scopes,
            token: "tok-123",
            challenge: "nonce-abc",
            now_ms: 1_700_000_000_000,
            known_key: None,
        };
        let vector = DeviceProof {
            id: "dev-1".into(),
            public_key: String::new(),
            signature: String::new(),
            signed_at: 1_700_000_000_000,
            nonce: "nonce-abc".into(),
        };
        assert_eq!(
            payload_v3(&payload_v2(&vector, &signed), &signed),
            "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000|tok-123|nonce-abc|ios|iphone"
        );
        // A client that says "Linux" and signs "linux" (as the OpenClaw CLI does) verifies.
        let (key, mut client, scopes) = setup();
        client.platform = "Linux".into();
        let signed = Signed {
            client: &client,
            role: "operator",
            scopes: &scopes,
            token: "t",
            challenge: "n",
            now_ms: 1_700_000_000_000,
            known_key: None,
        };
        assert_eq!(verify(&proof(&key, &signed, "v3"), &signed), Ok(()));
    }

    #[test]
    fn v2_and_v3_proofs_verify_and_tampering_does_not() {
        let (key, client, scopes) = setup();
        let signed = Signed {
            client: &client,
            role: "operator",
            scopes: &scopes,
            token: "tok",
            challenge: "n1",
            now_ms: 1_800_000_000_000,
            known_key: None,
        };
        for version in ["v2", "v3"] {
            assert_eq!(verify(&proof(&key, &signed, version), &signed), Ok(()));
        }
        let good = proof(&key, &signed, "v2");
        let more_scopes = vec!["operator.admin".to_string()];
        let escalated = Signed { scopes: &more_scopes, ..signed };
        assert!(verify(&good, &escalated).unwrap_err().contains("does not verify"));
        let other_nonce = Signed { challenge: "n2", ..signed };
        assert!(verify(&good, &other_nonce).unwrap_err().contains("challenge"));
        let late = Signed { now_ms: signed.now_ms + 3 * 60 * 1000, ..signed };
        assert!(verify(&good, &late).unwrap_err().contains("2 minutes"));
        // A remembered key is used only when it is the one presented.
        let same = Signed { known_key: Some(key.verifying_key()), ..signed };
        assert_eq!(verify(&good, &same), Ok(()));
        let other = SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(verify(&good, &Signed { known_key: Some(other), ..signed }), Ok(()));
        let forged = proof(&SigningKey::from_bytes(&[9; 32]), &signed, "v3");
        let forged = DeviceProof { id: good.id.clone(), public_key: good.public_key.clone(), ..forged };
        let err = verify(&forged, &Signed { known_key: Some(other), ..signed }).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        let mut wrong_id = good.clone();
        wrong_id.id = "00".repeat(32);
        assert!(verify(&wrong_id, &signed).unwrap_err().contains("SHA-256"));
    }
}
