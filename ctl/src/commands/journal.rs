//! Logs from journald (`journalctl`), matched on gatewayd's own structured fields, and the
//! `--since` cut-off for the other log sources.

use std::process::Command;

use anyhow::{bail, Result};
use gateway_proto::Profile;

/// The journalctl arguments that select one instance's entries, all from processes of user
/// `uid`: gatewayd's own fields; or the unit's output stream (what gatewayd printed before its
/// logging started, such as a config error), by the per-profile `SyslogIdentifier` that systemd
/// sends in the stream's header. journald attributes a stream to its unit only when it can read
/// the process's cgroup, which fails for a process that has already exited (and on cgroup v1,
/// where an exited process moves to the root cgroup), so the identifier is the match that always
/// holds; `_SYSTEMD_USER_UNIT` (or `_SYSTEMD_UNIT`, where user services are not told apart) is
/// kept for the entries it does reach.
pub fn args(
    profile: &Profile,
    uid: u32,
    follow: bool,
    lines: usize,
    json: bool,
    since: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--no-pager".into(),
        "-o".into(),
        if json { "json" } else { "short-iso" }.into(),
        "-n".into(),
        lines.to_string(),
    ];
    if follow {
        args.push("-f".into());
    }
    if let Some(t) = since {
        args.extend(["--since".into(), t.into()]);
    }
    let unit = crate::service::unit_name(profile);
    let uid = format!("_UID={uid}");
    args.extend([
        "SYSLOG_IDENTIFIER=gatewayd".into(),
        format!("GATEWAY_PROFILE={}", profile.name().unwrap_or("default")),
        uid.clone(),
        "+".into(),
        format!("SYSLOG_IDENTIFIER={}", profile.service_name()),
        "_TRANSPORT=stdout".into(),
        uid.clone(),
        "+".into(),
        format!("_SYSTEMD_USER_UNIT={unit}"),
        uid.clone(),
        "+".into(),
        format!("_SYSTEMD_UNIT={unit}"),
        uid,
    ]);
    args
}

/// The last `lines` journal lines of the instance, for a failure report: gatewayd's own
/// entries (what it printed before it died included) and the service manager's lines about the
/// unit (`Main process exited, code=killed, status=9/KILL`, `Start request repeated too
/// quickly`). Empty when journalctl cannot run or finds nothing.
pub fn recent(profile: &Profile, lines: usize) -> Vec<String> {
    let uid = nix::unistd::getuid().as_raw();
    let mut query = args(profile, uid, false, lines, false, None);
    let unit = crate::service::unit_name(profile);
    query.extend(["+".into(), format!("USER_UNIT={unit}"), format!("_UID={uid}")]);
    match Command::new("journalctl").args(&query).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("-- "))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs journalctl with our terminal; None when journalctl cannot run (the caller falls back).
pub fn show(
    profile: &Profile,
    follow: bool,
    lines: usize,
    json: bool,
    since: Option<&str>,
) -> Result<Option<i32>> {
    let uid = nix::unistd::getuid().as_raw();
    let status =
        match Command::new("journalctl").args(args(profile, uid, follow, lines, json, since)).status() {
            Ok(s) => s,
            Err(_) => return Ok(None),
        };
    Ok(Some(status.code().unwrap_or(1)))
}

/// `--since` for log lines that carry an RFC 3339 UTC `timestamp`: `YYYY-MM-DD[THH:MM[:SS]]`
/// (UTC), or a time ago: `30s`, `15m`, `2h`, `1d`. Returns the timestamp prefix to compare with.
pub fn cutoff(since: &str) -> Result<String> {
    let since = since.trim();
    if let Some(unit) = since.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = since[..since.len() - 1].parse::<u64>() {
            let secs = n * match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86400,
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            return Ok(gateway_proto::time::utc_datetime(now.saturating_sub(secs)));
        }
    }
    let b = since.as_bytes();
    let shape_ok = b.len() >= 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T' || *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && matches!(b.len(), 10 | 16 | 19);
    if !shape_ok {
        bail!("--since {since:?}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) or a time ago such as 15m, 2h, 1d");
    }
    Ok(since.replacen(' ', "T", 1))
}

/// Whether a JSON log line's `time` (`timestamp` in older lines) is at or after `cutoff` (lines
/// without one are kept).
pub fn at_or_after(line: &str, cutoff: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => {
            v.get("time").or_else(|| v.get("timestamp")).and_then(|t| t.as_str()).is_none_or(|t| t >= cutoff)
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_matches_our_fields_or_the_unit() {
        let a = args(&Profile::new(Some("work"), false).unwrap(), 1000, true, 20, true, Some("1h ago"));
        assert_eq!(
            a,
            [
                "--no-pager",
                "-o",
                "json",
                "-n",
                "20",
                "-f",
                "--since",
                "1h ago",
                "SYSLOG_IDENTIFIER=gatewayd",
                "GATEWAY_PROFILE=work",
                "_UID=1000",
                "+",
                "SYSLOG_IDENTIFIER=gatewayd-work",
                "_TRANSPORT=stdout",
                "_UID=1000",
                "+",
                "_SYSTEMD_USER_UNIT=gatewayd-work.service",
                "_UID=1000",
                "+",
                "_SYSTEMD_UNIT=gatewayd-work.service",
                "_UID=1000"
            ]
        );
    }

    #[test]
    fn since_accepts_dates_and_times_ago() {
        assert_eq!(cutoff("2026-11-21").unwrap(), "2026-11-21");
        assert_eq!(cutoff("2026-11-21 08:30").unwrap(), "2026-11-21T08:30");
        assert!(cutoff("yesterday").is_err());
        assert!(cutoff("2026-1-2").is_err());
        let recent = cutoff("5m").unwrap();
        assert!(at_or_after(r#"{"time":"2999-01-01T00:00:00Z"}"#, &recent));
        assert!(!at_or_after(r#"{"time":"2000-01-01T00:00:00Z"}"#, &recent));
        assert!(at_or_after(r#"{"timestamp":"2999-01-01T00:00:00Z"}"#, &recent));
        assert!(!at_or_after(r#"{"timestamp":"2000-01-01T00:00:00Z"}"#, &recent));
        assert!(at_or_after("not json", &recent));
    }
}
