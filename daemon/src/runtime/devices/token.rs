//! Device tokens: derived, not stored.
//!
//! `hello-ok` hands a paired device its token on every handshake, and the database keeps only
//! the token's SHA-256. So that the token can be handed out again without being kept, it is
//! derived: HMAC-SHA-256 under a key kept in its own 0600 file (`STATE_DIR/device-key`), over
//! the device id and a random salt stored with the digest when the token is issued. The database
//! alone yields no working credential; the token stays the same from one handshake to the next
//! (so a reconnect writes nothing) until the device is revoked or pairs again, which draws a new
//! salt. Losing the key file only makes every device token stale: the next handshake of each
//! device (the stale token's digest still lets it in) issues a new one.

use std::io;
use std::path::Path;

use gateway_config::secret::{generate_token, read_secret_file, write_secret_file};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bytes of random salt per issued token.
const SALT_LEN: usize = 16;

/// The derivation key.
pub struct TokenKey(Vec<u8>);

/// A token as issued: what the device gets, and what the database keeps.
pub struct Issued {
    pub token: String,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl TokenKey {
    /// Reads the key file, or creates it (0600, durably) on first use.
    pub fn load_or_create(file: &Path) -> io::Result<Self> {
        let key = match read_secret_file(file)? {
            Some(key) => key,
            None => {
                let key = generate_token();
                write_secret_file(file, &key)?;
                key
            }
        };
        Ok(Self(key.into_bytes()))
    }

    /// A key that lives as long as the process (tests).
    pub fn ephemeral() -> Self {
        Self(generate_token().into_bytes())
    }

    /// A new token for `device_id`, under a fresh salt.
    pub fn issue(&self, device_id: &str) -> Issued {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::fill(&mut salt).expect("the OS random source is available");
        let token = self.derive(device_id, &salt);
        let hash = digest(&token);
        Issued { token, salt, hash }
    }

    /// The token issued under `salt`, if it is still the live one (its digest is `hash`): not
    /// when the key changed since, or the token was replaced.
    pub fn current(&self, device_id: &str, salt: &[u8], hash: &[u8]) -> Option<String> {
        let token = self.derive(device_id, salt);
        crate::core::secrets::tokens_equal_bytes(&digest(&token), hash).then_some(token)
    }

    fn derive(&self, device_id: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"gateway device token\0");
        mac.update(device_id.as_bytes());
        mac.update(b"\0");
        mac.update(salt);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the database keeps of a token.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_again_under_its_salt_and_key_only() {
        let key = TokenKey::ephemeral();
        let issued = key.issue("ab");
        assert_eq!(issued.token.len(), 64);
        assert_eq!(key.current("ab", &issued.salt, &issued.hash).as_deref(), Some(issued.token.as_str()));
        assert_eq!(key.current("ac", &issued.salt, &issued.hash), None, "another device");
        let again = key.issue("ab");
        assert_ne!(again.token, issued.token, "a new salt, a new token");
        assert_eq!(key.current("ab", &issued.salt, &again.hash), None, "replaced");
        assert_eq!(TokenKey::ephemeral().current("ab", &issued.salt, &issued.hash), None, "another key");
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("device-key");
        let issued = TokenKey::load_or_create(&file).unwrap().issue("ab");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let reread = TokenKey::load_or_create(&file).unwrap();
        assert_eq!(reread.current("ab", &issued.salt, &issued.hash), Some(issued.token));
    }
}
