//! Limits per client address: failed authentication, shared by every auth path (WebSocket
//! connect, HTTP bearer, password exchange; after `max_failures` within `window_ms` the address
//! is locked out for `lockout_ms`), and requests on the HTTP APIs (`gateway.http.rate_limit`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_config::{RateLimit, RequestRateLimit};

#[derive(Default)]
pub struct AuthLimiter {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Above this many tracked addresses, stale entries are swept on the next failure.
const SWEEP_AT: usize = 10_000;

impl AuthLimiter {
    /// `Err(retry_after)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        match self.lock().get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lockout it caused, if any.
    pub fn failure(&self, ip: IpAddr, limits: &RateLimit) -> Option<Duration> {
        let now = Instant::now();
        let window = Duration::from_millis(limits.window_ms.get());
        let lockout = Duration::from_millis(limits.lockout_ms.get());
        let mut entries = self.lock();
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, e| {
                now.duration_since(e.window_start) < window || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let entry = entries.entry(ip).or_insert(Entry { window_start: now, failures: 0, locked_until: None });
        if now.duration_since(entry.window_start) >= window {
            *entry = Entry { window_start: now, failures: 0, locked_until: None };
        }
        entry.failures += 1;
        if u64::from(entry.failures) >= limits.max_failures.get() {
            entry.locked_until = Some(now + lockout);
            return Some(lockout);
        }
        None
    }

    pub fn success(&self, ip: IpAddr) {
        let mut entries = self.lock();
        if entries.get(&ip).is_some_and(|e| e.locked_until.is_none()) {
            entries.remove(&ip);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Requests per client address in fixed windows: at most `max_requests` per `window_seconds`.
#[derive(Default)]
pub struct RequestLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl RequestLimiter {
    /// Counts a request from `ip`; `Err(retry_after)` when it is over the limit (not counted).
    pub fn take(&self, ip: IpAddr, limits: &RequestRateLimit) -> Result<(), Duration> {
        let max = limits.max_requests.get();
        if max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let window = Duration::from_secs(limits.window_seconds.get());
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= window {
            (*start, *count) = (now, 0);
        }
        if *count >= max {
            return Err(window - now.duration_since(*start));
        }
        *count += 1;
        Ok(())
    }
}

/// At most this many config writes per minute, from all clients together.
pub const WRITES_PER_MINUTE: usize = 10;

#[derive(Default)]
pub struct WriteLimiter(Mutex<VecDeque<Instant>>);

impl WriteLimiter {
    /// Takes one of this minute's writes, or says how long until one is free.
    pub fn take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let mut recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while recent.front().is_some_and(|t| now.duration_since(*t) >= minute) {
            recent.pop_front();
        }
        if recent.len() >= WRITES_PER_MINUTE {
            return Err(minute - now.duration_since(recent[0]));
        }
        recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_past_the_window_limit_wait_for_the_next_window() {
        let limits = RequestRateLimit {
            window_seconds: gateway_config::Bounded::new(60).unwrap(),
            max_requests: gateway_config::Bounded::new(3).unwrap(),
        };
        let l = RequestLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.take(a, &limits).is_ok());
        }
        let retry = l.take(a, &limits).unwrap_err();
        assert!(retry <= Duration::from_secs(60) && retry > Duration::from_secs(58), "{retry:?}");
        assert!(l.take(b, &limits).is_ok(), "another address has its own window");
        let off = RequestRateLimit::default();
        assert!((0..1000).all(|_| l.take(a, &off).is_ok()), "0 turns it off");
    }

    #[test]
    fn locks_out_after_max_failures() {
        let limits = RateLimit::default();
        let l = AuthLimiter::default();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..9 {
            assert_eq!(l.failure(ip, &limits), None);
            assert!(l.check(ip).is_ok());
        }
        assert!(l.failure(ip, &limits).is_some());
        assert!(l.check(ip).is_err());
        // A success does not lift a lockout.
        l.success(ip);
        assert!(l.check(ip).is_err());
        assert!(l.check("10.1.2.4".parse().unwrap()).is_ok());
    }
}
