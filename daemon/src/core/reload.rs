//! A reload is a transaction: read, parse, validate, resolve secrets, check the new config could
//! start, then swap the snapshot. Any failure before the swap leaves the old config serving.
//! The same transaction serves the file watcher, SIGHUP and `gatewayctl reload`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_config::classify::diff;
use gateway_config::{check_startable, load_file, Config, Overrides, Port, ReloadMode};
use gateway_proto::api::{ConfigIssue, ReloadOutcome, ReloadReport, ReloadTrigger};
use gateway_proto::Profile;
use notify::{EventKind, RecursiveMode, Watcher as _};
use sha2::Digest;

use crate::core::events::{CoreEvent, Credential};
use crate::core::gateway::{Active, ExitReason, Gateway, Stats, TokenSource};
use gateway_proto::time::now_ms;

/// Everything needed to run with the config file as it is now.
pub struct Prepared {
    pub config: Config,
    pub file_exists: bool,
    pub token: String,
    pub token_source: TokenSource,
    pub token_generated: bool,
    pub hooks_token: Option<String>,
    pub provider_keys: Vec<String>,
    /// `gateway.auth.password`'s value, resolved (hashed by [`crate::core::password`]).
    pub password: Option<String>,
    pub addr: SocketAddr,
    /// The dotted keys the file sets.
    pub file_keys: BTreeSet<String>,
}

/// Loads and checks the config file under the overrides; the one path for startup and reload.
pub fn prepare(
    file: &Path,
    profile: &Profile,
    overrides: &Overrides,
    token_file: &Path,
) -> Result<Prepared, Vec<ConfigIssue>> {
    let loaded = load_file(file)?;
    let config = overrides.apply(loaded.config.clone());
    let addr = listen_addr(&config, profile);
    check_startable(&config, &loaded, file, overrides, addr)?;
    let password = match &config.gateway.auth.password {
        Some(secret) => {
            let value = secret
                .resolve()
                .map_err(|e| vec![loaded.issue_at(file, "gateway.auth.password", e.to_string())])?;
            if value.chars().count() < crate::core::password::MIN_LENGTH {
                let message =
                    format!("the password must be at least {} characters", crate::core::password::MIN_LENGTH);
                return Err(vec![loaded.issue_at(file, "gateway.auth.password", message)]);
            }
            Some(value)
        }
        None => None,
    };
    let password_file = token_file.with_file_name("password");
    if config.gateway.auth.mode == gateway_config::AuthMode::Password
        && overrides.password.is_none()
        && password.is_none()
        && !password_file.exists()
    {
        return Err(vec![loaded.issue_at(
            file,
            "gateway.auth.mode",
            "auth mode \"password\" but no password is set: set gateway.auth.password, run `gatewayctl password set`, or set GATEWAY_PASSWORD".into(),
        )]);
    }
    let (token, token_source, token_generated) =
        crate::core::secrets::resolve_token(&config, overrides, token_file)
            .map_err(|e| vec![loaded.issue_at(file, "gateway.auth.token", e.to_string())])?;
    let hooks_token = crate::core::webhooks::prepare(&config, &token)
        .map_err(|(key, message)| vec![loaded.issue_at(file, &key, message)])?;
    gateway_config::channels::check(&config.channels, &config.agents)
        .map_err(|(key, message)| vec![loaded.issue_at(file, &key, message)])?;
    crate::runtime::scheduler::check_config(&config)
        .map_err(|(key, message)| vec![loaded.issue_at(file, &key, message)])?;
    // A key that cannot be read is the provider's error to report, on its first request. A
    // short placeholder (`none`, for a local server) is no secret worth refusing URLs over.
    let provider_keys = config
        .models
        .providers
        .values()
        .filter_map(|p| p.api_key.as_ref()?.resolve().ok())
        .filter(|k| k.len() >= 8)
        .collect();
    Ok(Prepared {
        provider_keys,
        password,
        file_keys: loaded.set_keys(),
        config,
        file_exists: loaded.exists,
        token,
        token_source,
        token_generated,
        hooks_token,
        addr,
    })
}

/// The password in effect changed: its sign-in sessions end and its sockets close. Returns how
/// many of each.
pub fn end_password_grants(gw: &Gateway, why: &str) -> (usize, usize) {
    let sessions = gw.signins.revoke_all().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot end the sessions of the old password");
        0
    });
    let closed_connections = gw.events.publish(&CoreEvent::CredentialRevoked(Credential::Password));
    tracing::info!(
        event = "password_changed",
        sessions,
        closed_connections,
        "gateway password changed: {why}"
    );
    (sessions, closed_connections)
}

/// A secret written into the config file itself should be readable by its owner only.
pub fn warn_if_secret_exposed(file: &Path, prepared: &Prepared) {
    use gateway_config::SecretRef;
    use std::os::unix::fs::PermissionsExt;
    let config = &prepared.config;
    let literal = |s: &Option<SecretRef>| matches!(s, Some(SecretRef::Literal(_)));
    let mut keys: Vec<String> = Vec::new();
    if literal(&config.gateway.auth.token) && prepared.token_source == TokenSource::Config {
        keys.push("gateway.auth.token".into());
    }
    if literal(&config.gateway.auth.password) {
        keys.push("gateway.auth.password".into());
    }
    for (name, provider) in &config.models.providers {
        if literal(&provider.api_key) {
            keys.push(format!("models.providers.{name}.api_key"));
        }
    }
    if literal(&config.hooks.token) {
        keys.push("hooks.token".into());
    }
    if keys.is_empty() {
        return;
    }
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            mode = format!("{mode:o}"),
            keys = %keys.join(", "),
            "the config file holds {} and others can read it: chmod 600 it, or use env: or file: references",
            keys.join(", ")
        );
    }
}

pub fn listen_addr(config: &Config, profile: &Profile) -> SocketAddr {
    SocketAddr::new(config.gateway.bind.ip(), config.gateway.port.map_or(profile.default_port(), Port::port))
}

pub async fn reload(gw: &Gateway, trigger: ReloadTrigger) -> ReloadReport {
    let _serial = gw.reload_lock.lock().await;
    gw.notifier.reloading();
    let report = transact(gw, trigger);
    let counter = match report.outcome {
        ReloadOutcome::Applied | ReloadOutcome::Restarting => &gw.stats.reloads_applied,
        ReloadOutcome::Unchanged => &gw.stats.reloads_unchanged,
        ReloadOutcome::Rejected => &gw.stats.reloads_rejected,
    };
    Stats::bump(counter);
    match report.outcome {
        ReloadOutcome::Rejected => {
            for issue in &report.errors {
                tracing::warn!(event = "reload_rejected", trigger = %trigger, "config rejected, the previous config keeps serving: {issue}");
            }
        }
        ReloadOutcome::Unchanged => {
            tracing::debug!(event = "reload_unchanged", trigger = %trigger, "{}", report.message)
        }
        _ => tracing::info!(
            event = "reload",
            trigger = %trigger,
            outcome = %report.outcome,
            generation = report.generation,
            changed = %report.changed_keys.join(","),
            "{}",
            report.message
        ),
    }
    gw.last_reload.store(Some(Arc::new(report.clone())));
    // systemd expects READY=1 after RELOADING=1 whatever the outcome.
    let mut status = gw.status_line();
    if let Some(issue) = report.errors.first() {
        status = format!("{status}; reload rejected: {issue}");
    }
    gw.notifier.ready(&status);
    if report.outcome == ReloadOutcome::Applied {
        gw.events.publish(&CoreEvent::ConfigApplied {
            generation: report.generation,
            changed_keys: report.changed_keys.clone(),
            trigger: report.trigger,
        });
    }
    report
}

fn transact(gw: &Gateway, trigger: ReloadTrigger) -> ReloadReport {
    let current = gw.active();
    let report = |outcome,
                  generation,
                  changed: Vec<String>,
                  restart: Vec<String>,
                  errors: Vec<ConfigIssue>,
                  message: String| {
        ReloadReport {
            trigger,
            outcome,
            generation,
            at_ms: now_ms(),
            changed_keys: changed,
            restart_keys: restart,
            defaulted_keys: Vec::new(),
            errors,
            message,
        }
    };
    let reject = |errors: Vec<ConfigIssue>| {
        let message = format!("generation {} keeps serving", current.generation);
        report(ReloadOutcome::Rejected, current.generation, vec![], vec![], errors, message)
    };
    let file = gw.config_file();
    let next = match prepare(file, &gw.profile, &gw.overrides, &gw.paths.token_file()) {
        Ok(next) => next,
        Err(errors) => return reject(errors),
    };
    if trigger == ReloadTrigger::Watcher && !next.file_exists && current.file_exists {
        return reject(vec![ConfigIssue::new(
            file,
            None,
            "the config file was removed; restore it, or run `gatewayctl reload` to run on the defaults"
                .into(),
        )]);
    }
    // A program rewriting the file in place (truncate, then write) can be caught in between:
    // the watcher never trades a config that set keys for an empty one.
    if trigger == ReloadTrigger::Watcher && next.file_keys.is_empty() && !current.file_keys.is_empty() {
        return reject(vec![ConfigIssue::new(
            file,
            None,
            "the config file is empty now (or holds only comments): if a program is rewriting it, this passes; to run on the defaults, run `gatewayctl reload`".into(),
        )]);
    }
    let mut changes = diff(&current.config, &next.config);
    // A secret reference may name a value that changed while the reference did not.
    let secrets_changed = [
        ("gateway.auth.token", next.token != current.token),
        ("hooks.token", next.hooks_token != current.hooks_token),
        ("gateway.auth.password", gw.password.would_change(next.password.as_deref())),
    ];
    for (key, changed) in secrets_changed {
        if changed && !changes.changed.iter().any(|k| k == key) {
            changes.changed.push(key.into());
        }
    }
    if changes.is_empty() {
        let message = format!("unchanged; generation {} stays in effect", current.generation);
        return report(ReloadOutcome::Unchanged, current.generation, vec![], vec![], vec![], message);
    }
    // Restart-required keys are judged against what runs (the config this process started
    // with), not the last generation: reload mode `hot` keeps such edits pending, and reverting
    // one, or an unrelated edit after it, needs no restart.
    changes.restart = diff(&gw.booted_with, &next.config).restart;
    let mode = next.config.gateway.reload.mode;
    let restart = match mode {
        ReloadMode::Restart => true,
        ReloadMode::Hybrid | ReloadMode::Off => !changes.restart.is_empty(),
        ReloadMode::Hot => false,
    };
    if restart {
        if next.addr != gw.listen_addr {
            if let Err(e) = std::net::TcpListener::bind(next.addr) {
                let message = format!("cannot listen on {} after a restart: {e}", next.addr);
                return reject(vec![ConfigIssue::new(file, Some("gateway.port".into()), message)]);
            }
        }
        gw.request_exit(ExitReason::Restart);
        let message = format!("restarting to apply {}", changes.restart.join(", "));
        return report(
            ReloadOutcome::Restarting,
            current.generation,
            changes.changed,
            changes.restart,
            vec![],
            message,
        );
    }
    let defaulted = back_to_default(&changes.changed, &current.file_keys, &next.file_keys);
    warn_if_secret_exposed(file, &next);
    let generation = current.generation + 1;
    let pending = changes.restart.clone();
    let mut message = format!("applied; generation {generation} in effect");
    if !pending.is_empty() {
        message.push_str(&format!("; restart to apply {}", pending.join(", ")));
    }
    *gw.pending_restart.lock().unwrap_or_else(|e| e.into_inner()) = pending;
    if gw.password.configure(next.password.as_deref()) {
        end_password_grants(gw, "gateway.auth.password changed");
    }
    let mut applied =
        report(ReloadOutcome::Applied, generation, changes.changed, changes.restart, vec![], message);
    applied.defaulted_keys = defaulted.clone();
    // Recorded before the swap: whoever sees the new generation also sees its report.
    gw.last_reload.store(Some(Arc::new(applied.clone())));
    gw.swap_active(Active {
        config: next.config,
        generation,
        file_exists: next.file_exists,
        token: next.token,
        token_source: next.token_source,
        hooks_token: next.hooks_token,
        provider_keys: next.provider_keys,
        file_keys: next.file_keys,
    });
    if !defaulted.is_empty() {
        tracing::warn!(
            event = "reload_defaults",
            keys = %defaulted.join(","),
            "the config file no longer sets {}: back to the built-in defaults (if that was not meant, restore them)",
            defaulted.join(", ")
        );
    }
    applied
}

/// The changed keys that the old file set and the new one does not: they went back to their
/// defaults. A key covers its sub-keys (`hooks.mappings` covers `hooks.mappings[0].name`).
fn back_to_default(changed: &[String], before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    let covers = |set: &BTreeSet<String>, key: &str| {
        set.iter().any(|k| {
            k == key
                || key.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
                || k.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
        })
    };
    changed.iter().filter(|k| covers(before, k) && !covers(after, k)).cloned().collect()
}

/// Keeps the file watch alive while held.
pub type Watcher = notify::RecommendedWatcher;

/// Watches the config file's directory (editors replace files rather than write them in place)
/// and reloads once the file has been quiet for the debounce. Only create, modify and remove
/// count: reading the file ourselves raises access events, which would otherwise reload forever.
/// The debounce is a timer armed by an event, so an idle daemon is never woken by the watch.
pub fn watch(gw: Arc<Gateway>) -> notify::Result<Watcher> {
    let file = gw.config_file().clone();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| "/".into());
    let name = file.file_name().map(ToOwned::to_owned);
    let debounce = Duration::from_millis(gw.active().config.gateway.reload.debounce_ms.get());
    // A config written after start must still be seen: the directory has to exist to be watched.
    if !dir.exists() {
        crate::core::fsutil::ensure_private_dir(&dir)
            .map_err(|e| notify::Error::io(e).add_path(dir.clone()))?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        let relevant =
            matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
                && !matches!(event.kind, EventKind::Modify(notify::event::ModifyKind::Metadata(_)))
                && event.paths.iter().any(|p| p.file_name() == name.as_deref());
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if !quiet_for(debounce, &mut rx).await {
                return;
            }
            if gw.active().config.gateway.reload.mode == ReloadMode::Off || gw.exit_reason().is_some() {
                continue;
            }
            if !settled(gw.config_file(), &mut rx).await {
                // Still changing after the settle budget: its next change brings us back.
                continue;
            }
            reload(&gw, ReloadTrigger::Watcher).await;
        }
    });
    Ok(watcher)
}

/// Waits until no event has come for `debounce`. False when the watch is gone.
async fn quiet_for(debounce: Duration, events: &mut tokio::sync::mpsc::UnboundedReceiver<()>) -> bool {
    loop {
        match tokio::time::timeout(debounce, events.recv()).await {
            Err(_) => return true,
            Ok(Some(())) => {}
            Ok(None) => return false,
        }
    }
}

/// How long the file must stay the same before the watcher reads it for a reload.
const SETTLE: Duration = Duration::from_millis(50);
/// How long a file that keeps changing is waited for before the watcher leaves it.
const SETTLE_BUDGET: Duration = Duration::from_secs(2);

/// Waits until two looks at the file `SETTLE` apart agree (size, mtime and content), so that
/// a file being written is not read half-way; re-armed while it keeps changing. Watcher events
/// that arrive meanwhile are for this same change. False when it did not settle in the budget.
async fn settled(file: &Path, events: &mut tokio::sync::mpsc::UnboundedReceiver<()>) -> bool {
    let look = || async {
        let meta = tokio::fs::metadata(file).await.ok();
        let bytes = tokio::fs::read(file).await.ok();
        (meta.map(|m| (m.len(), m.modified().ok())), bytes.map(|b| sha2::Sha256::digest(&b)))
    };
    let deadline = tokio::time::Instant::now() + SETTLE_BUDGET;
    let mut last = look().await;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SETTLE).await;
        while events.try_recv().is_ok() {}
        let now = look().await;
        if now == last {
            return true;
        }
        last = now;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_vanished_from_the_file_are_the_ones_back_at_their_defaults() {
        let set = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<BTreeSet<String>>();
        let before =
            set(&["gateway.port", "gateway.heartbeat.interval_ms", "logging.level", "hooks.mappings"]);
        let after = set(&["gateway.port"]);
        let changed: Vec<String> =
            ["gateway.heartbeat.interval_ms", "logging.level", "hooks.mappings[0].name", "gateway.bind"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            back_to_default(&changed, &before, &after),
            ["gateway.heartbeat.interval_ms", "logging.level", "hooks.mappings[0].name"]
        );
        assert!(back_to_default(&changed, &before, &before).is_empty(), "still set: changed, not defaulted");
    }
}
