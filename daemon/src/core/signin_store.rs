//! Sign-in sessions: random tokens with a TTL, of two kinds. `Bearer`: password mode's
//! `POST /gateway/auth/session` exchanges the password for one, so clients need not keep the
//! password. `Browser`: the Control UI's sign-in exchanges a one-time code, the token or the
//! password for one, held in an HttpOnly cookie. A token opens only its own kind's door. Only
//! the token's SHA-256 is stored; sessions can be listed and revoked (`gatewayctl sessions`).

use std::sync::Arc;

use gateway_config::secret::generate_token;
pub use gateway_proto::api::SignInInfo;
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::core::store::{Store, StoreError};
use gateway_proto::time::now_ms;

/// Which door a sign-in session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bearer,
    Browser,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Browser => "browser",
        }
    }
}

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
    pub fn create(&self, kind: Kind, ttl_ms: u64, client: &str) -> Result<(SignInInfo, String), StoreError> {
        let token = generate_token();
        let now = now_ms();
        let info = SignInInfo {
            id: generate_token()[..8].to_owned(),
            kind: kind.as_str().to_owned(),
            client: client.chars().filter(|c| !c.is_control()).take(200).collect(),
            created_at_ms: now,
            expires_at_ms: now + ttl_ms,
        };
        self.store.with(|c| {
            c.execute(
                "INSERT INTO auth_sessions (session_id, token_hash, client, created_at_ms, expires_at_ms, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![info.id, hash(&token), info.client, info.created_at_ms as i64, info.expires_at_ms as i64, info.kind],
            )
        })?;
        Ok((info, token))
    }

    /// The id of the live session of this kind this token belongs to.
    pub fn verify(&self, kind: Kind, token: &str) -> Option<String> {
        self.store
            .with(|c| {
                c.query_row(
                    "SELECT session_id FROM auth_sessions WHERE token_hash = ?1 AND expires_at_ms > ?2 AND kind = ?3",
                    params![hash(token), now_ms() as i64, kind.as_str()],
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
                "SELECT session_id, client, created_at_ms, expires_at_ms, kind FROM auth_sessions WHERE expires_at_ms > ?1 ORDER BY created_at_ms",
            )?;
            let rows = stmt.query_map(params![now_ms() as i64], |r| {
                Ok(SignInInfo {
                    id: r.get(0)?,
                    client: r.get(1)?,
                    created_at_ms: r.get::<_, i64>(2)? as u64,
                    expires_at_ms: r.get::<_, i64>(3)? as u64,
                    kind: r.get(4)?,
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

    /// Ends every session of one kind (the gateway token changed: browser sign-ins end).
    pub fn revoke_kind(&self, kind: Kind) -> Result<usize, StoreError> {
        self.store.with(|c| c.execute("DELETE FROM auth_sessions WHERE kind = ?1", [kind.as_str()]))
    }

    /// Live sessions of one kind.
    pub fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        self.store.with(|c| {
            c.query_row(
                "SELECT count(*) FROM auth_sessions WHERE kind = ?1 AND expires_at_ms > ?2",
                params![kind.as_str(), now_ms() as i64],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
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
        let (info, token) = sessions.create(Kind::Bearer, 60_000, "127.0.0.1 curl").unwrap();
        assert_eq!(sessions.verify(Kind::Bearer, &token).as_deref(), Some(info.id.as_str()));
        assert_eq!(sessions.verify(Kind::Bearer, "not-it"), None);
        assert_eq!(sessions.list().unwrap().len(), 1);
        assert!(sessions.revoke(&info.id).unwrap());
        assert_eq!(sessions.verify(Kind::Bearer, &token), None);
        let (_, expired) = sessions.create(Kind::Bearer, 0, "x").unwrap();
        assert_eq!(sessions.verify(Kind::Bearer, &expired), None, "a zero TTL is already over");
        assert_eq!(sessions.prune().unwrap(), 1);
    }

    #[test]
    fn a_token_opens_only_its_own_kind_and_a_kind_can_be_ended_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = SignIns::new(Arc::new(Store::open(&dir.path().join("g.db")).unwrap()));
        let (_, browser) = sessions.create(Kind::Browser, 60_000, "ui").unwrap();
        let (_, bearer) = sessions.create(Kind::Bearer, 60_000, "curl").unwrap();
        assert!(sessions.verify(Kind::Bearer, &browser).is_none(), "a cookie is no bearer token");
        assert!(sessions.verify(Kind::Browser, &bearer).is_none());
        assert_eq!(sessions.count(Kind::Browser).unwrap(), 1);
        assert_eq!(sessions.revoke_kind(Kind::Browser).unwrap(), 1);
        assert!(sessions.verify(Kind::Browser, &browser).is_none());
        assert!(sessions.verify(Kind::Bearer, &bearer).is_some());
    }
}
