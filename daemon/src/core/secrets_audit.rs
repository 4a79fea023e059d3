//! `gatewayctl secrets audit`: where each secret the gateway uses comes from (a literal in the
//! config, an `env:` or `file:` reference, the environment, the state dir), whether it resolves
//! now, and what is wrong with how it is kept. Never a value.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gateway_config::{AuthMode, SecretRef};
use gateway_proto::api::{SecretEntry, SecretsAudit};
use gateway_proto::paths::env_var;

use crate::core::gateway::{Gateway, TokenSource};

pub fn audit(gw: &Gateway) -> SecretsAudit {
    let active = gw.active();
    let config = &active.config;
    let config_file = gw.config_file();
    let config_mode = mode_of(config_file);
    let config_open = config_mode.is_some_and(|m| m & 0o077 != 0);
    let mut secrets = Vec::new();
    for (key, secret) in gateway_config::classify::secret_refs(config) {
        // What the environment overrides is not in use: said as such.
        let overridden = match key.as_str() {
            "gateway.auth.token" => active.token_source == TokenSource::Env,
            "gateway.auth.password" => gw.password.from_env(),
            _ => false,
        };
        let mut entry = from_config(&key, secret, config_file, config_open);
        if overridden {
            entry.problem = Some(format!("not in use: the environment's {} wins over it", env_name(&key)));
        }
        secrets.push(entry);
    }
    if active.token_source == TokenSource::Env {
        secrets.push(environment("gateway.auth.token", env_var::TOKEN));
    }
    if active.token_source == TokenSource::File {
        secrets.push(state("gateway.auth.token", &gw.paths.token_file()));
    }
    if gw.password.from_env() {
        secrets.push(environment("gateway.auth.password", env_var::PASSWORD));
    } else if config.gateway.auth.password.is_none() && gw.paths.password_file().exists() {
        secrets.push(state("gateway.auth.password", &gw.paths.password_file()));
    } else if config.gateway.auth.mode == AuthMode::Password && !gw.password.is_set() {
        let mut entry = blank("gateway.auth.password", "state");
        entry.problem =
            Some("auth mode is password but no password is set: `gatewayctl password set`".into());
        secrets.push(entry);
    }
    let problems = secrets.iter().filter(|e| e.problem.is_some()).count();
    SecretsAudit {
        config_file: config_file.display().to_string(),
        config_mode: config_mode.map(octal),
        secrets,
        problems,
    }
}

fn env_name(key: &str) -> &'static str {
    if key == "gateway.auth.token" {
        env_var::TOKEN
    } else {
        env_var::PASSWORD
    }
}

fn blank(key: &str, source: &str) -> SecretEntry {
    SecretEntry {
        key: key.to_owned(),
        source: source.to_owned(),
        reference: None,
        resolves: true,
        error: None,
        file: None,
        file_mode: None,
        problem: None,
    }
}

fn from_config(key: &str, secret: &SecretRef, config_file: &Path, config_open: bool) -> SecretEntry {
    let resolved = secret.resolve();
    let mut entry = SecretEntry {
        source: match secret {
            SecretRef::Literal(_) => "literal",
            SecretRef::Env(_) => "env",
            SecretRef::File(_) => "file",
        }
        .to_owned(),
        reference: (!matches!(secret, SecretRef::Literal(_))).then(|| secret.redacted()),
        resolves: resolved.is_ok(),
        error: resolved.as_ref().err().map(ToString::to_string),
        ..blank(key, "")
    };
    match secret {
        SecretRef::File(path) => {
            entry.file = Some(path.display().to_string());
            let mode = mode_of(path);
            entry.file_mode = mode.map(octal);
            if mode.is_some_and(|m| m & 0o077 != 0) {
                entry.problem = Some(format!("{} is readable by others: chmod 600 {0}", path.display()));
            }
        }
        SecretRef::Literal(_) if config_open => {
            entry.problem = Some(format!(
                "a literal secret in {0}, which others can read: chmod 600 {0}, or use an env: or file: reference",
                config_file.display()
            ));
        }
        _ => {}
    }
    if let Some(error) = &entry.error {
        entry.problem =
            Some(format!("does not resolve ({error}): fix the reference, then `gatewayctl secrets reload`"));
    }
    entry
}

fn environment(key: &str, var: &str) -> SecretEntry {
    SecretEntry { reference: Some(var.to_owned()), ..blank(key, "environment") }
}

fn state(key: &str, file: &Path) -> SecretEntry {
    let mode = mode_of(file);
    let mut entry = SecretEntry {
        file: Some(file.display().to_string()),
        file_mode: mode.map(octal),
        resolves: mode.is_some(),
        ..blank(key, "state")
    };
    if mode.is_some_and(|m| m & 0o077 != 0) {
        entry.problem = Some(format!(
            "{} is readable by others: chmod 600 {0} (or `gatewayctl doctor --fix`)",
            file.display()
        ));
    }
    entry
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}
