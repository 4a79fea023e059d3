//! Session tokens for password mode: `POST /gateway/auth/session` exchanges the password for a
//! random token with a TTL, so clients need not keep the password. Only the token's SHA-256 is
//! stored; sessions can be listed and revoked (`gatewayctl sessions`).

use std::sync::Arc;

use gateway_config::secret::generate_token;
pub use gateway_proto::api::SignInInfo;
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::core::store::{Store, StoreError};
use gateway_proto::time::now_ms;

#[derive(Clone)]
pub struct SignIns {
    store: Arc<Store>,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl SignIns {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// A new session: its record and the token, which is shown this once.
    pub fn create(&self, ttl_ms: u64, client: &str) -> Result<(SignInInfo, String), StoreError> {
        let token = generate_token();
        let now = now_ms();
        let info = SignInInfo {
            id: generate_token()[..8].to_owned(),
            client: client.chars().filter(|c| !c.is_control()).take(200).collect(),
            created_at_ms: now,
            expires_at_ms: now + ttl_ms,
        };
        self.store.with(|c| {
            c.execute(
                "INSERT INTO auth_sessions (session_id, token_hash, client, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![info.id, hash(&token), info.client, info.created_at_ms as i64, info.expires_at_ms as i64],
            )
        })?;
        Ok((info, token))
    }

    /// The id of the live session this token belongs to.
    pub fn verify(&self, token: &str) -> Option<String> {
        self.store
            .with(|c| {
                c.query_row(
                    "SELECT session_id FROM auth_sessions WHERE token_hash = ?1 AND expires_at_ms > ?2",
                    params![hash(token), now_ms() as i64],
                    |row| row.get::<_, String>(0),
                )
                .map(Some)
                .or_else(|e| {
                    if e == rusqlite::Error::QueryReturnedNoRows {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                })
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot check a session token");
                None
            })
    }

    pub fn list(&self) -> Result<Vec<SignInInfo>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT session_id, client, created_at_ms, expires_at_ms FROM auth_sessions WHERE expires_at_ms > ?1 ORDER BY created_at_ms",
            )?;
            let rows = stmt.query_map(params![now_ms() as i64], |r| {
                Ok(SignInInfo {
                    id: r.get(0)?,
                    client: r.get(1)?,
                    created_at_ms: r.get::<_, i64>(2)? as u64,
                    expires_at_ms: r.get::<_, i64>(3)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Ends one session; false if there was none by that id.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.store.with(|c| {
            c.execute("DELETE FROM auth_sessions WHERE session_id = ?1", params![id]).map(|n| n > 0)
        })
    }

    /// Ends every session (the password changed).
    pub fn revoke_all(&self) -> Result<usize, StoreError> {
        self.store.with(|c| c.execute("DELETE FROM auth_sessions", []))
    }

    /// Forgets expired sessions (housekeeping).
    pub fn prune(&self) -> Result<usize, StoreError> {
        self.store.with(|c| {
            c.execute("DELETE FROM auth_sessions WHERE expires_at_ms <= ?1", params![now_ms() as i64])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_list_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        let sessions = SignIns::new(store);
        let (info, token) = sessions.create(60_000, "127.0.0.1 curl").unwrap();
        assert_eq!(sessions.verify(&token).as_deref(), Some(info.id.as_str()));
        assert_eq!(sessions.verify("not-it"), None);
        assert_eq!(sessions.list().unwrap().len(), 1);
        assert!(sessions.revoke(&info.id).unwrap());
        assert_eq!(sessions.verify(&token), None);
        let (_, expired) = sessions.create(0, "x").unwrap();
        assert_eq!(sessions.verify(&expired), None, "a zero TTL is already over");
        assert_eq!(sessions.prune().unwrap(), 1);
    }
}
