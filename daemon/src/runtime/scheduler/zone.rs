//! IANA time zones for the cron maths: `croner` computes in any `chrono::TimeZone`, and this one
//! reads its rules through `jiff` from the system's tz database (`/usr/share/zoneinfo`, the
//! `tzdata` package, kept current by the OS). A table of every zone compiled into the binary
//! as Rust data (chrono-tz) added about 2 MB to every process's resident memory in relocated
//! pointer tables; this reads a zone's file when a job first uses it.

use std::fmt;

use chrono::{Datelike, FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use jiff::tz::AmbiguousOffset;

/// Where the system keeps its tz database (jiff also honours `TZDIR`).
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A time zone by its IANA name.
#[derive(Clone)]
pub struct Zone(jiff::tz::TimeZone);

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.0.iana_name().unwrap_or("?"))
    }
}

/// The offset in effect at some instant of a zone, carrying its zone (chrono rebuilds a
/// `DateTime`'s zone from its offset).
#[derive(Clone, Debug)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl Zone {
    pub fn utc() -> Self {
        Zone(jiff::tz::TimeZone::UTC)
    }

    /// The zone named `name` (`Europe/Paris`), or why not.
    pub fn named(name: &str) -> Result<Self, String> {
        jiff::tz::TimeZone::get(name).map(Zone).map_err(|_| {
            if !std::path::Path::new(ZONEINFO).is_dir() {
                return format!(
                    "time zone {}: this host has no tz database ({ZONEINFO}): install the tzdata package, or use UTC",
                    gateway_proto::quote::short(name)
                );
            }
            format!(
                "time zone {} is not an IANA zone name: e.g. Europe/Paris, America/New_York, UTC",
                gateway_proto::quote::short(name)
            )
        })
    }

    fn offset(&self, o: jiff::tz::Offset) -> ZoneOffset {
        let fixed =
            FixedOffset::east_opt(o.seconds()).unwrap_or(FixedOffset::east_opt(0).expect("0 is valid"));
        ZoneOffset { zone: self.clone(), fixed }
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        offset.zone.clone()
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(chrono::NaiveTime::MIN))
    }

    /// One offset, two in a fall-back fold (earlier first), none in a spring-forward gap.
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let civil = jiff::civil::DateTime::new(
            local.year() as i16,
            local.month() as i8,
            local.day() as i8,
            local.hour() as i8,
            local.minute() as i8,
            local.second() as i8,
            local.nanosecond().min(999_999_999) as i32,
        );
        let Ok(civil) = civil else { return MappedLocalTime::None };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => MappedLocalTime::Single(self.offset(offset)),
            AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.offset(before), self.offset(after))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let at =
            jiff::Timestamp::from_second(utc.and_utc().timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        self.offset(self.0.to_offset(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_zone_rules() {
        let paris = Zone::named("Europe/Paris").unwrap();
        let winter = NaiveDate::from_ymd_opt(2027, 1, 15).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let summer = NaiveDate::from_ymd_opt(2027, 7, 15).unwrap().and_hms_opt(12, 0, 0).unwrap();
        assert_eq!(paris.offset_from_utc_datetime(&winter).fixed.local_minus_utc(), 3600);
        assert_eq!(paris.offset_from_utc_datetime(&summer).fixed.local_minus_utc(), 7200);
        // 02:30 on the last Sunday of March does not exist in Paris; 02:30 in October twice.
        let gap = NaiveDate::from_ymd_opt(2027, 3, 28).unwrap().and_hms_opt(2, 30, 0).unwrap();
        assert!(matches!(paris.offset_from_local_datetime(&gap), MappedLocalTime::None));
        let fold = NaiveDate::from_ymd_opt(2027, 10, 31).unwrap().and_hms_opt(2, 30, 0).unwrap();
        match paris.offset_from_local_datetime(&fold) {
            MappedLocalTime::Ambiguous(a, b) => {
                assert_eq!((a.fixed.local_minus_utc(), b.fixed.local_minus_utc()), (7200, 3600));
            }
            other => panic!("{other:?}"),
        }
        assert!(Zone::named("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
