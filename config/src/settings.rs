//! The config in effect: the file's values under the command line and the environment, and the
//! checks that decide whether a gateway may start with it.

use std::net::SocketAddr;
use std::path::Path;

use gateway_proto::api::ConfigIssue;

use crate::load::Loaded;
use crate::schema::{AuthMode, Bind, Config, GatewayMode, Port};
use crate::secret::SecretRef;

/// Values from flags and environment (`GATEWAY_PORT`, `GATEWAY_BIND`, `GATEWAY_TOKEN`,
/// `GATEWAY_PASSWORD`), which win over the file on every load, reloads included.
#[derive(Clone, Default)]
pub struct Overrides {
    pub port: Option<u16>,
    pub bind: Option<Bind>,
    pub token: Option<String>,
    /// Not part of the config: the daemon keeps only its hash.
    pub password: Option<String>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Overrides {
    pub fn apply(&self, mut config: Config) -> Config {
        if let Some(port) = self.port.and_then(|p| Port::new(p.into())) {
            config.gateway.port = Some(port);
        }
        if let Some(bind) = self.bind {
            config.gateway.bind = bind;
        }
        if let Some(token) = &self.token {
            config.gateway.auth.token = Some(SecretRef::Literal(token.clone()));
        }
        config
    }
}

/// Refuses what must never run: a remote-mode config, or a non-loopback bind without auth.
/// Used at startup (exit 78) and by every reload (rejected, the old config keeps serving).
pub fn check_startable(
    effective: &Config,
    loaded: &Loaded,
    file: &Path,
    overrides: &Overrides,
    addr: SocketAddr,
) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    if effective.gateway.mode == GatewayMode::Remote {
        issues.push(loaded.issue_at(
            file,
            "gateway.mode",
            "Gateway start blocked: set gateway.mode=local".to_owned(),
        ));
    }
    if !effective.gateway.bind.is_loopback() && effective.gateway.auth.mode == AuthMode::None {
        let message = format!(
            "refusing to bind gateway to {addr} without auth: set gateway.auth.mode = \"token\", or bind to loopback"
        );
        let mut issue = loaded.issue_at(file, "gateway.auth.mode", message);
        if overrides.bind.is_some() {
            issue.message.push_str(" (the bind comes from --bind or GATEWAY_BIND)");
        }
        issues.push(issue);
    }
    if effective.gateway.auth.mode == AuthMode::TrustedProxy
        && effective.gateway.http.trusted_proxies.is_empty()
    {
        issues.push(
            loaded.issue_at(
                file,
                "gateway.auth.mode",
                "auth mode \"trusted-proxy\" needs the proxies' addresses in gateway.http.trusted_proxies"
                    .to_owned(),
            ),
        );
    }
    if let Some(addr) = effective.metrics.listen.filter(|a| !a.ip().is_loopback()) {
        issues.push(loaded.issue_at(
            file,
            "metrics.listen",
            format!(
                "metrics.listen {addr} is not a loopback address: use 127.0.0.1:PORT or [::1]:PORT; \
                 scrapers on other hosts use /gateway/metrics on the main port, behind its auth"
            ),
        ));
    }
    let found = crate::agents::check(effective)
        .into_iter()
        .chain(crate::observability::check(&effective.observability));
    for (key, message) in found {
        issues.push(loaded.issue_at(file, &key, message));
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}
