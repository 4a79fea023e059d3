//! sd_notify messages to systemd. Without `NOTIFY_SOCKET` every call is a no-op.

use std::sync::Mutex;

use sd_notify::NotifyState;

#[derive(Default)]
pub struct Notifier {
    last_status: Mutex<String>,
}

impl Notifier {
    pub fn ready(&self, status: &str) {
        self.remember(status);
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with the monotonic timestamp systemd requires to match it to the reload.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self, status: &str) {
        self.remember(status);
        send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// Sends `STATUS=` only when the text changed.
    pub fn status(&self, status: &str) {
        if self.remember(status) {
            send(&[NotifyState::Status(status)]);
        }
    }

    fn remember(&self, status: &str) -> bool {
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        if *last == status {
            return false;
        }
        status.clone_into(&mut last);
        true
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// systemd's watchdog period, when it asks for pings. As in libsystemd's sd_watchdog_enabled(3),
/// `WATCHDOG_PID`, when set, must be our PID (the variable may have leaked to a child).
pub fn watchdog_usec() -> Option<u64> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?.parse::<u64>().ok().filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}
