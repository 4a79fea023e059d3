//! Password auth (`gateway.auth.mode = "password"`). Only an argon2id hash is kept, in the state
//! dir (0600). Verifying costs tens of milliseconds and megabytes by design, so it runs off the
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
    verifying: Semaphore,
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
            verifying: Semaphore::new(2),
        })
    }

    pub fn is_set(&self) -> bool {
        self.hash.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub fn from_env(&self) -> bool {
        self.from_env
    }

    pub async fn verify(&self, candidate: &str) -> bool {
        let Some(hash) = self.hash.read().unwrap_or_else(|e| e.into_inner()).clone() else { return false };
        let Ok(_permit) = self.verifying.acquire().await else { return false };
        let candidate = candidate.to_owned();
        tokio::task::spawn_blocking(move || verify_password(&candidate, &hash)).await.unwrap_or(false)
    }

    /// Replaces the password. The caller revokes what the old one granted.
    pub async fn set(&self, new: &str) -> Result<(), String> {
        if self.from_env {
            return Err("the password comes from GATEWAY_PASSWORD: change it in gatewayd's environment and restart it".into());
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
