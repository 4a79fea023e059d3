//! Password auth (`gateway.auth.mode = "password"`). Only argon2id hashes are kept: the one
//! `gatewayctl password set` (or `GATEWAY_PASSWORD`) stored in the state dir (0600), and, in
//! memory, the one of `gateway.auth.password`, which wins over the stored one while the config
//! sets it. Verifying costs tens of milliseconds and megabytes by design, so it runs off the
//! async workers, two at a time; the per-address rate limit stops guessing long before that
//! matters.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use gateway_config::secret::{hash_password, read_secret_file, verify_password, write_secret_file};
use tokio::sync::Semaphore;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 8;

pub struct Password {
    file: PathBuf,
    hash: RwLock<Option<String>>,
    /// Set when `GATEWAY_PASSWORD` provides it: then it cannot be changed from a client.
    from_env: bool,
    /// `gateway.auth.password`'s hash, and a fingerprint of its value to see it change on a
    /// reload without hashing again.
    configured: RwLock<Option<Configured>>,
    verifying: Semaphore,
}

struct Configured {
    hash: String,
    fingerprint: [u8; 32],
}

fn fingerprint(password: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(password.as_bytes()).into()
}

impl Password {
    /// Loads the stored hash; `GATEWAY_PASSWORD`, when given, replaces a hash it does not match.
    pub fn load(file: &Path, from_env: Option<&str>) -> io::Result<Self> {
        let mut hash = read_secret_file(file)?;
        if let Some(password) = from_env {
            if !hash.as_deref().is_some_and(|h| verify_password(password, h)) {
                let fresh = hash_password(password);
                write_secret_file(file, &fresh)?;
                hash = Some(fresh);
            }
        }
        Ok(Self {
            file: file.to_owned(),
            hash: RwLock::new(hash),
            from_env: from_env.is_some(),
            configured: RwLock::new(None),
            verifying: Semaphore::new(2),
        })
    }

    /// Takes `gateway.auth.password`'s value (None: the config does not set it); hashes it when
    /// it changed (inline: tens of milliseconds, on a start or a reload that changed it).
    /// Returns whether the password in effect changed. `GATEWAY_PASSWORD` wins over it.
    pub fn configure(&self, password: Option<&str>) -> bool {
        if self.from_env {
            return false;
        }
        let next = password.map(fingerprint);
        let current =
            self.configured.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.fingerprint);
        if next == current {
            return false;
        }
        let configured =
            password.zip(next).map(|(p, fingerprint)| Configured { hash: hash_password(p), fingerprint });
        *self.configured.write().unwrap_or_else(|e| e.into_inner()) = configured;
        true
    }

    /// Whether [`Password::configure`] with this value would change the password in effect.
    pub fn would_change(&self, password: Option<&str>) -> bool {
        let current =
            self.configured.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.fingerprint);
        !self.from_env && password.map(fingerprint) != current
    }

    pub fn is_set(&self) -> bool {
        self.effective().is_some()
    }

    pub fn from_env(&self) -> bool {
        self.from_env
    }

    /// Where the password in effect comes from: `env`, `config` or `state` (the stored hash).
    pub fn source(&self) -> &'static str {
        if self.from_env {
            "env"
        } else if self.configured.read().unwrap_or_else(|e| e.into_inner()).is_some() {
            "config"
        } else {
            "state"
        }
    }

    fn effective(&self) -> Option<String> {
        let configured =
            self.configured.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.hash.clone());
        configured.or_else(|| self.hash.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub async fn verify(&self, candidate: &str) -> bool {
        let Some(hash) = self.effective() else { return false };
        let Ok(_permit) = self.verifying.acquire().await else { return false };
        let candidate = candidate.to_owned();
        tokio::task::spawn_blocking(move || verify_password(&candidate, &hash)).await.unwrap_or(false)
    }

    /// Replaces the password. The caller revokes what the old one granted.
    pub async fn set(&self, new: &str) -> Result<(), String> {
        if self.from_env {
            return Err("the password comes from GATEWAY_PASSWORD: change it in gatewayd's environment and restart it".into());
        }
        if self.source() == "config" {
            return Err("the password comes from gateway.auth.password in the config: change it there (a reload applies it), or remove the key to set one here".into());
        }
        if new.chars().count() < MIN_LENGTH {
            return Err(format!("the password must be at least {MIN_LENGTH} characters"));
        }
        let (new, file) = (new.to_owned(), self.file.clone());
        let hash = tokio::task::spawn_blocking(move || {
            let hash = hash_password(&new);
            write_secret_file(&file, &hash).map(|()| hash)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write {}: {e}; the old password stays", self.file.display()))?;
        *self.hash.write().unwrap_or_else(|e| e.into_inner()) = Some(hash);
        Ok(())
    }
}
