//! Formatting for people: durations, log lines, reload outcomes; and `--json` output.

use std::io::{self, Write};

use gateway_proto::api::{ReloadOutcome, ReloadReport};
use serde::Serialize;
use serde_json::Value;

/// Prints an API structure as `--json` promises: pretty, as the daemon sent it.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `250ms`, `12s`, `3m12s`, `2h05m`, `3d4h`: short, and precise where it matters.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub use gateway_proto::time::now_ms;

/// `12s ago`, from a Unix time in milliseconds.
pub fn ago(at_ms: u64, now_ms: u64) -> String {
    format!("{} ago", duration(now_ms.saturating_sub(at_ms)))
}

/// One line saying how a reload ended, e.g. `applied: generation 3 (changed: logging.level)`.
/// `1 tick`, `2 ticks`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn reload_summary(r: &ReloadReport) -> String {
    match r.outcome {
        ReloadOutcome::Applied if r.changed_keys.is_empty() => {
            format!("applied: generation {}", r.generation)
        }
        ReloadOutcome::Applied => {
            // Reload mode `hot` applies what it can and leaves restart keys pending.
            let pending = if r.restart_keys.is_empty() {
                String::new()
            } else {
                format!("; restart to apply {}", r.restart_keys.join(", "))
            };
            let defaulted = if r.defaulted_keys.is_empty() {
                String::new()
            } else {
                format!(
                    "\nwarning: back to their defaults because the file no longer sets them: {}",
                    r.defaulted_keys.join(", ")
                )
            };
            format!(
                "applied: generation {} (changed: {}{pending}){defaulted}",
                r.generation,
                r.changed_keys.join(", ")
            )
        }
        ReloadOutcome::Unchanged => format!("unchanged: generation {}", r.generation),
        ReloadOutcome::Rejected if r.message.is_empty() => {
            "rejected: the config in effect keeps serving".to_owned()
        }
        ReloadOutcome::Rejected => format!("rejected: {}", r.message),
        ReloadOutcome::Restarting => {
            format!("restarting: {} changed, which needs a restart", r.restart_keys.join(", "))
        }
    }
}

/// A daemon JSON log line as `2026-11-21T06:01:02.123Z INFO  message k=v (subsystem)`: flat lines
/// (`time`, `level`, `subsystem`, `message`, then the fields) and the nested lines of older
/// versions (`timestamp`, `target`, `fields`). Lines that are not such JSON are shown as they are.
pub fn log_line(raw: &str) -> String {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(raw) else {
        return raw.to_owned();
    };
    let text = |key: &str| obj.get(key).and_then(Value::as_str);
    let (Some(ts), Some(level)) = (text("time").or(text("timestamp")), text("level")) else {
        return raw.to_owned();
    };
    let nested = obj.get("fields").and_then(Value::as_object);
    let (message, fields): (Option<&Value>, Vec<(&String, &Value)>) = match nested {
        Some(fields) => (fields.get("message"), fields.iter().filter(|(k, _)| *k != "message").collect()),
        None => (
            obj.get("message"),
            obj.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "time" | "level" | "subsystem" | "message"))
                .collect(),
        ),
    };
    let mut line = format!("{} {:<5}", millis(ts), level.to_ascii_uppercase());
    match message {
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            line.push(' ');
            line.push_str(s);
        }
        Some(other) => {
            line.push(' ');
            line.push_str(&other.to_string());
        }
        None => {}
    }
    for (key, value) in fields {
        line.push_str(&format!(" {key}={}", field_value(value)));
    }
    if let Some(subsystem) = text("subsystem").or(text("target")) {
        line.push_str(&format!(" ({subsystem})"));
    }
    line
}

/// Strings bare when that is unambiguous, quoted otherwise; other values as JSON.
fn field_value(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// Cuts the fraction of an RFC 3339 timestamp to milliseconds: the rest is noise to people.
fn millis(ts: &str) -> String {
    let Some(dot) = ts.find('.') else {
        return ts.to_owned();
    };
    let frac_len = ts[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
    let keep = frac_len.min(3);
    format!("{}{}", &ts[..dot + 1 + keep], &ts[dot + 1 + frac_len..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_proto::api::ReloadTrigger;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(12_400), "12s");
        assert_eq!(duration(192_000), "3m12s");
        assert_eq!(duration(7_500_000), "2h05m");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000 + 5), "3d4h");
        assert_eq!(ago(1_000, 61_000), "1m00s ago");
        assert_eq!(ago(5_000, 1_000), "0ms ago");
    }

    #[test]
    fn log_lines_are_readable() {
        let flat = r#"{"time":"2026-11-21T06:01:02.123Z","level":"info","subsystem":"gatewayd::reload","message":"reload applied","generation":2,"keys":"logging.level","why":"file changed"}"#;
        assert_eq!(
            log_line(flat),
            r#"2026-11-21T06:01:02.123Z INFO  reload applied generation=2 keys=logging.level why="file changed" (gatewayd::reload)"#
        );
        // Lines written by older versions, still in a log file after an upgrade.
        let raw = r#"{"timestamp":"2026-11-21T06:01:02.123456Z","level":"INFO","fields":{"message":"reload applied","generation":2,"keys":"logging.level","why":"file changed"},"target":"gatewayd::reload"}"#;
        assert_eq!(
            log_line(raw),
            r#"2026-11-21T06:01:02.123Z INFO  reload applied generation=2 keys=logging.level why="file changed" (gatewayd::reload)"#
        );
        let warn = r#"{"timestamp":"2026-11-21T06:01:02Z","level":"WARN","fields":{},"target":"t"}"#;
        assert_eq!(log_line(warn), "2026-11-21T06:01:02Z WARN  (t)");
    }

    #[test]
    fn non_json_lines_pass_through() {
        assert_eq!(log_line("plain text"), "plain text");
        assert_eq!(log_line("{\"no\":\"level\"}"), "{\"no\":\"level\"}");
        assert_eq!(log_line(""), "");
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(millis("2026-11-21T06:01:02.1Z"), "2026-11-21T06:01:02.1Z");
        assert_eq!(millis("2026-11-21T06:01:02.123456789+01:00"), "2026-11-21T06:01:02.123+01:00");
    }

    #[test]
    fn reload_outcomes() {
        let mut r = ReloadReport {
            trigger: ReloadTrigger::Control,
            outcome: ReloadOutcome::Applied,
            generation: 3,
            at_ms: 0,
            changed_keys: vec!["logging.level".into()],
            restart_keys: vec![],
            defaulted_keys: vec![],
            errors: vec![],
            message: String::new(),
        };
        assert_eq!(reload_summary(&r), "applied: generation 3 (changed: logging.level)");
        r.defaulted_keys = vec!["logging.level".into()];
        assert_eq!(
            reload_summary(&r),
            "applied: generation 3 (changed: logging.level)\nwarning: back to their defaults because the file no longer sets them: logging.level"
        );
        r.defaulted_keys.clear();
        r.changed_keys.push("gateway.port".into());
        r.restart_keys = vec!["gateway.port".into()];
        assert_eq!(
            reload_summary(&r),
            "applied: generation 3 (changed: logging.level, gateway.port; restart to apply gateway.port)"
        );
        r.outcome = ReloadOutcome::Unchanged;
        assert_eq!(reload_summary(&r), "unchanged: generation 3");
        r.outcome = ReloadOutcome::Restarting;
        r.restart_keys = vec!["gateway.port".into()];
        assert_eq!(reload_summary(&r), "restarting: gateway.port changed, which needs a restart");
    }
}
