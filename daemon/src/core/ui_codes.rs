//! One-time sign-in codes for the Control UI. `gatewayctl dashboard` asks the control socket for
//! one and puts it in the link's fragment; the page exchanges it for a browser session. A code is
//! random, lives two minutes, is kept only as its SHA-256, and opens at most one session. Codes
//! are held in memory: a restart ends them, which costs only a fresh `gatewayctl dashboard`.

use std::sync::Mutex;

use gateway_config::secret::generate_token;
use gateway_proto::time::now_ms;
use sha2::{Digest, Sha256};

/// How long a code may wait for its browser.
pub const CODE_TTL_MS: u64 = 120_000;
/// Codes waiting at once; the oldest is dropped beyond that.
const MAX_PENDING: usize = 16;

#[derive(Default)]
pub struct UiCodes {
    pending: Mutex<Vec<([u8; 32], u64)>>,
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

impl UiCodes {
    /// A new code and when it expires.
    pub fn issue(&self) -> (String, u64) {
        let code = generate_token();
        let expires = now_ms() + CODE_TTL_MS;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        pending.retain(|(_, exp)| *exp > now);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push((digest(&code), expires));
        (code, expires)
    }

    /// True, once, for a live code: it is used up either way.
    pub fn redeem(&self, code: &str) -> bool {
        let wanted = digest(code);
        let now = now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|(_, exp)| *exp > now);
        // Compared in constant time, like every credential.
        let found = pending.iter().position(|(d, _)| crate::core::secrets::tokens_equal_bytes(d, &wanted));
        found.map(|i| pending.remove(i)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_opens_once() {
        let codes = UiCodes::default();
        let (code, expires) = codes.issue();
        assert!(expires > now_ms());
        assert!(!codes.redeem("not-a-code"));
        assert!(codes.redeem(&code));
        assert!(!codes.redeem(&code), "a used code is gone");
    }

    #[test]
    fn only_the_newest_codes_wait() {
        let codes = UiCodes::default();
        let first = codes.issue().0;
        for _ in 0..MAX_PENDING {
            codes.issue();
        }
        assert!(!codes.redeem(&first), "the oldest code was dropped");
    }
}
