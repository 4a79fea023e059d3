//! Secrets in the config may be references, so the file itself can stay shareable:
//! `env:NAME` reads an environment variable, `file:/abs/path` a file; anything else is the secret
//! itself. Secret values never appear in `Debug` output or in `gatewayctl config show`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Literal(String),
}

impl SecretRef {
    /// How the value is shown to people: references as written, literal secrets hidden.
    pub fn redacted(&self) -> String {
        match self {
            Self::Literal(_) => "<redacted>".to_owned(),
            other => String::from(other.clone()),
        }
    }

    /// Reads the secret now. A trailing newline of a secret file is not part of the secret.
    pub fn resolve(&self) -> Result<String, SecretError> {
        let value = match self {
            Self::Literal(v) => v.clone(),
            Self::Env(name) => std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?,
            Self::File(path) => fs::read_to_string(path)
                .map_err(|e| SecretError::File(path.clone(), e))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.redacted()));
        }
        Ok(value)
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid secret reference {s:?}: env: takes a variable name"));
            }
            Ok(Self::Env(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("invalid secret reference {s:?}: file: takes an absolute path"));
            }
            Ok(Self::File(path))
        } else if s.is_empty() {
            Err("empty secret: remove the key, or give a value, env:NAME or file:/path".to_owned())
        } else {
            Ok(Self::Literal(s))
        }
    }
}

impl From<SecretRef> for String {
    fn from(s: SecretRef) -> String {
        match s {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::File(path) => format!("file:{}", path.display()),
            SecretRef::Literal(v) => v,
        }
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (named by an env: secret reference)")]
    EnvMissing(String),
    #[error("cannot read secret file {0}: {1}")]
    File(PathBuf, io::Error),
    #[error("secret {0} is empty")]
    Empty(String),
}

/// A new random gateway token: 32 random bytes as 64 hex characters.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id hash of a password (PHC string, with its own random salt).
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source is available");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Whether `password` matches a hash from [`hash_password`]. Takes tens of milliseconds by design.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Reads a secret file written by [`write_secret_file`]; `None` when there is none yet.
pub fn read_secret_file(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim_end().to_owned()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a secret durably and privately (see [`write_private_file`]), newline-terminated.
pub fn write_secret_file(path: &Path, secret: &str) -> io::Result<()> {
    write_private_file(path, format!("{secret}\n").as_bytes())
}

/// Writes a file durably and privately: a 0600 temp file beside the target, fsync, rename over
/// the target, fsync of the directory. A crash leaves either the old or the new contents.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("secret"),
        std::process::id()
    ));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // The mode above is filtered by the umask; set it explicitly as well.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_never_show_literals() {
        let env = SecretRef::try_from("env:MY_TOKEN".to_owned()).unwrap();
        assert_eq!(env, SecretRef::Env("MY_TOKEN".into()));
        assert_eq!(env.redacted(), "env:MY_TOKEN");
        let lit = SecretRef::try_from("hunter2".to_owned()).unwrap();
        assert_eq!(format!("{lit:?}"), "<redacted>");
        assert!(SecretRef::try_from("file:relative".to_owned()).is_err());
        assert!(SecretRef::try_from("env:".to_owned()).is_err());
    }

    #[test]
    fn password_hashes_verify_only_their_password() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }

    #[test]
    fn secret_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert_eq!(read_secret_file(&path).unwrap(), None);
        let token = generate_token();
        assert_eq!(token.len(), 64);
        write_secret_file(&path, &token).unwrap();
        assert_eq!(read_secret_file(&path).unwrap().as_deref(), Some(token.as_str()));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let via_ref = SecretRef::File(path).resolve().unwrap();
        assert_eq!(via_ref, token);
    }
}
