//! When a job runs: one-shot times, intervals and cron expressions, read from what people type
//! and turned into the next time after a given instant. Cron expressions use `croner`, the
//! Rust port of the library the other gateway family schedules with, so an expression means the
//! same on both: Vixie-cron fields (day-of-month OR day-of-week), `L`, `#`, `W`, an optional
//! seconds field first, and daylight-saving changes handled as OCPS says (a time skipped by a
//! spring-forward runs right after the gap, a time repeated in the fall runs once).

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use gateway_proto::cron::Schedule;

use super::zone::Zone;

/// Shortest interval an `every` job may have.
pub const MIN_EVERY_MS: u64 = 1_000;

/// A schedule checked and ready to compute with.
#[derive(Debug, Clone)]
pub enum Parsed {
    At(u64),
    Every { every_ms: u64, anchor_ms: u64 },
    Cron { cron: Box<Cron>, tz: Zone },
}

pub use gateway_proto::cron::parse_duration;

/// A one-shot time: RFC 3339, or `+<duration>` from `now_ms`.
pub fn parse_at(text: &str, now_ms: u64) -> Result<u64, String> {
    if let Some(d) = text.trim().strip_prefix('+') {
        return Ok(now_ms + parse_duration(d)?);
    }
    let t = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
        format!(
            "{} is not a time: give RFC 3339 (2026-12-24T18:00:00+01:00) or +20m",
            gateway_proto::quote::short(text)
        )
    })?;
    u64::try_from(t.timestamp_millis()).map_err(|_| "the time is before 1970".to_owned())
}

/// An RFC 3339 UTC form of a Unix time in milliseconds.
pub fn rfc3339(ms: u64) -> String {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) && !expr.trim_start().starts_with('@') {
        return Err(format!(
            "cron expression {} has {fields} fields: give 5 (minute hour day month weekday) or 6 (seconds first)",
            gateway_proto::quote::short(expr)
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("cron expression {} does not parse: {e}", gateway_proto::quote::short(expr)))
}

fn parse_tz(tz: Option<&str>) -> Result<Zone, String> {
    tz.map_or(Ok(Zone::utc()), Zone::named)
}

impl Parsed {
    /// Checks a stored or given schedule; `created_ms` anchors an interval without an anchor.
    pub fn new(schedule: &Schedule, created_ms: u64) -> Result<Parsed, String> {
        match schedule {
            Schedule::At { at } => parse_at(at, created_ms).map(Parsed::At),
            Schedule::Every { every_ms, anchor_ms } => {
                if *every_ms < MIN_EVERY_MS {
                    return Err(format!("every {every_ms} ms is too short: at least 1s"));
                }
                Ok(Parsed::Every { every_ms: *every_ms, anchor_ms: anchor_ms.unwrap_or(created_ms) })
            }
            Schedule::Cron { expr, tz } => {
                Ok(Parsed::Cron { cron: Box::new(parse_cron(expr)?), tz: parse_tz(tz.as_deref())? })
            }
        }
    }

    /// The first run time strictly after `after_ms`; None when there is none (a one-shot whose
    /// time has passed, an expression that never matches again).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Parsed::At(at) => (*at > after_ms).then_some(*at),
            Parsed::Every { every_ms, anchor_ms } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let slots = (after_ms - anchor_ms) / every_ms + 1;
                Some(anchor_ms + slots * every_ms)
            }
            Parsed::Cron { cron, tz } => {
                let start = tz.timestamp_millis_opt(after_ms as i64).single()?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// Whether the job can run more than once.
    pub fn recurring(&self) -> bool {
        !matches!(self, Parsed::At(_))
    }
}

/// A schedule as given, with a relative one-shot time made absolute (what is stored).
pub fn absolute(schedule: &Schedule, now_ms: u64) -> Result<Schedule, String> {
    Ok(match schedule {
        Schedule::At { at } => Schedule::At { at: rfc3339(parse_at(at, now_ms)?) },
        Schedule::Every { every_ms, anchor_ms } => {
            Schedule::Every { every_ms: *every_ms, anchor_ms: Some(anchor_ms.unwrap_or(now_ms)) }
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc: &str) -> u64 {
        DateTime::parse_from_rfc3339(rfc).unwrap().timestamp_millis() as u64
    }

    fn cron(expr: &str, tz: &str) -> Parsed {
        Parsed::new(&Schedule::Cron { expr: expr.into(), tz: Some(tz.into()) }, 0).unwrap()
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        for bad in ["", "5", "m", "5 minutes", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_one_shot_time_is_absolute_or_relative_to_now() {
        let now = ms("2026-12-05T10:00:00Z");
        assert_eq!(parse_at("+20m", now), Ok(now + 1_200_000));
        assert_eq!(parse_at("2026-12-05T11:00:00+01:00", now), Ok(now));
        assert!(parse_at("tomorrow", now).unwrap_err().contains("RFC 3339"));
        let at = Parsed::new(&Schedule::At { at: "+2s".into() }, now).unwrap();
        assert_eq!(at.next_after(now), Some(now + 2_000));
        assert_eq!(at.next_after(now + 2_000), None, "a one-shot runs once");
    }

    #[test]
    fn intervals_keep_to_their_anchor() {
        let every = Parsed::Every { every_ms: 60_000, anchor_ms: 1_000 };
        assert_eq!(every.next_after(0), Some(1_000));
        assert_eq!(every.next_after(1_000), Some(61_000));
        assert_eq!(every.next_after(60_999), Some(61_000));
        assert_eq!(
            every.next_after(3_600_000),
            Some(3_601_000),
            "after downtime: the next slot, not each missed one"
        );
        assert!(Parsed::new(&Schedule::Every { every_ms: 999, anchor_ms: None }, 0).is_err());
    }

    #[test]
    fn cron_takes_an_optional_seconds_field() {
        let every_10s = cron("*/10 * * * * *", "UTC");
        let t = ms("2026-12-05T10:00:01Z");
        assert_eq!(every_10s.next_after(t), Some(ms("2026-12-05T10:00:10Z")));
        let five = cron("30 9 * * 1-5", "UTC");
        assert_eq!(
            five.next_after(ms("2026-12-05T10:00:00Z")),
            Some(ms("2026-12-07T09:30:00Z")),
            "Saturday to Monday"
        );
    }

    #[test]
    fn cron_knows_the_last_day_of_the_month() {
        let last = cron("0 18 L * *", "UTC");
        assert_eq!(last.next_after(ms("2027-02-01T00:00:00Z")), Some(ms("2027-02-28T18:00:00Z")));
        assert_eq!(
            last.next_after(ms("2028-02-01T00:00:00Z")),
            Some(ms("2028-02-29T18:00:00Z")),
            "leap year"
        );
    }

    #[test]
    fn cron_follows_the_time_zone_across_daylight_saving() {
        let paris_7am = cron("0 7 * * *", "Europe/Paris");
        // Winter: 07:00 CET is 06:00 UTC; summer: 07:00 CEST is 05:00 UTC.
        assert_eq!(paris_7am.next_after(ms("2027-03-27T12:00:00Z")), Some(ms("2027-03-28T05:00:00Z")));
        assert_eq!(paris_7am.next_after(ms("2027-03-26T12:00:00Z")), Some(ms("2027-03-27T06:00:00Z")));
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_once_after_the_gap() {
        // 2027-03-14 in New York: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let at_0230 = cron("30 2 * * *", "America/New_York");
        let fired = at_0230.next_after(ms("2027-03-14T05:00:00Z")).unwrap();
        assert_eq!(fired, ms("2027-03-14T07:00:00Z"), "03:00 EDT, right after the gap");
        assert_eq!(at_0230.next_after(fired), Some(ms("2027-03-15T06:30:00Z")));
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once() {
        // 2027-11-07 in New York: 01:30 happens twice (EDT, then EST).
        let at_0130 = cron("30 1 * * *", "America/New_York");
        let first = at_0130.next_after(ms("2027-11-07T04:00:00Z")).unwrap();
        assert_eq!(first, ms("2027-11-07T05:30:00Z"), "the first 01:30 (EDT)");
        assert_eq!(at_0130.next_after(first), Some(ms("2027-11-08T06:30:00Z")), "not again an hour later");
    }

    #[test]
    fn bad_expressions_and_zones_say_what_to_write() {
        let e = Parsed::new(&Schedule::Cron { expr: "* * *".into(), tz: None }, 0).unwrap_err();
        assert!(e.contains("3 fields"), "{e}");
        let e = Parsed::new(&Schedule::Cron { expr: "61 * * * *".into(), tz: None }, 0).unwrap_err();
        assert!(e.contains("does not parse"), "{e}");
        let e = Parsed::new(&Schedule::Cron { expr: "0 7 * * *".into(), tz: Some("Mars/Olympus".into()) }, 0)
            .unwrap_err();
        assert!(e.contains("IANA"), "{e}");
    }
}
