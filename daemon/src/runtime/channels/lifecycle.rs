//! What every account's connection task shares: the wait between attempts, retrying its set-up
//! until it works or the account is stopped, and recording in the account's status where it
//! stands (ready, failed, stopped, a reply that was not sent).

use std::future::Future;
use std::time::Duration;

use gateway_proto::time::now_ms;
use tokio::sync::watch;

use super::{update, Outgoing, SharedStatus};

/// 1 s, 2 s, 4 s ... at most 60 s, each between half and one and a half of that.
pub fn backoff(failures: u32) -> Duration {
    let base = 2u64.saturating_pow(failures.saturating_sub(1)).min(60) * 1000;
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    Duration::from_millis(base / 2 + base * byte[0] as u64 / 255)
}

/// Runs `attempt` until it succeeds, recording each failure (and the attempts so far) in the
/// account's status and waiting [`backoff`] between tries. None when the account is stopped
/// meanwhile; it is then marked stopped.
pub async fn set_up<T, F: Future<Output = Result<T, String>>>(
    channel: &'static str,
    id: &str,
    status: &SharedStatus,
    stopped: &mut watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            r = attempt() => r,
            _ = stopped.changed() => break,
        };
        match result {
            Ok(ready) => return Some(ready),
            Err(why) => {
                failures += 1;
                tracing::warn!(channel, account = %id, error = %why, "channel account cannot start; retrying");
                update(status, |s| {
                    s.last_error = Some(why);
                    s.reconnect_attempts = failures;
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff(failures)) => {}
                    _ = stopped.changed() => break,
                }
            }
        }
    }
    mark_stopped(status);
    None
}

/// Connected (or logged in) as `name`, with no error standing.
pub fn mark_ready(status: &SharedStatus, name: String) {
    update(status, |s| {
        s.connected = true;
        s.last_error = None;
        s.last_connected_at = Some(now_ms());
        s.name = name;
    });
}

pub fn mark_stopped(status: &SharedStatus) {
    update(status, |s| {
        s.running = false;
        s.connected = false;
    });
}

/// Failures in a row of a long poll, and what they do to the account's status.
#[derive(Default)]
pub struct Streak(u32);

impl Streak {
    /// A poll worked: after failures, the account is connected again.
    pub fn succeeded(&mut self, status: &SharedStatus) {
        if self.0 > 0 {
            update(status, |s| {
                s.connected = true;
                s.last_error = None;
                s.last_connected_at = Some(now_ms());
            });
        }
        self.0 = 0;
    }

    /// A poll failed with `why`: the account is disconnected. Returns how long to wait: what the
    /// server asked for (a 429), else the backoff.
    pub fn failed(&mut self, status: &SharedStatus, why: String, asked: Option<Duration>) -> Duration {
        self.0 += 1;
        update(status, |s| {
            s.connected = false;
            s.last_error = Some(why);
            s.reconnect_attempts += 1;
        });
        asked.unwrap_or_else(|| backoff(self.0))
    }
}

/// Sleeps `wait`; false when the account was stopped meanwhile.
pub async fn pause(wait: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stopped.changed() => false,
    }
}

/// Tells the dispatcher how sending `out` went; a failure is also the account's `lastError`.
pub fn settle(status: &SharedStatus, out: Outgoing, result: Result<(), String>) {
    if let Err(e) = &result {
        update(status, |s| s.last_error = Some(e.clone()));
    }
    let _ = out.sent.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute_with_jitter() {
        assert!(backoff(1) <= Duration::from_millis(1500) && backoff(1) >= Duration::from_millis(500));
        let long = backoff(20);
        assert!(long >= Duration::from_secs(30) && long <= Duration::from_secs(90), "{long:?}");
    }
}
