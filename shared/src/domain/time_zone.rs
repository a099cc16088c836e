//! A tenant's IANA time zone (`users.time_zone`), validated against the tz database that
//! `chrono-tz` compiles in.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far ahead a meeting may be booked or moved: far enough for any real plan, and far
/// from the year 9999 past which Google cannot read the event's end.
pub const MEETING_MAX_DAYS_AHEAD: i64 = 3_660;

/// A valid IANA zone name (`Europe/Madrid`, `America/New_York`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantTimeZone(Tz);

impl Default for TenantTimeZone {
    fn default() -> Self {
        Self(Tz::UTC)
    }
}

impl TenantTimeZone {
    /// Parses a zone name; the message says what is accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.trim().parse::<Tz>().map(Self).map_err(|_| {
            "must be an IANA time zone name such as `Europe/Madrid` or `UTC`".to_owned()
        })
    }

    /// The zone's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The zone.
    pub fn tz(&self) -> Tz {
        self.0
    }

    /// A wall-clock time read in this zone; `None` when the clock skips it (a DST gap). An
    /// ambiguous time (the hour repeated when clocks go back) is the earlier one.
    pub fn localize(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        self.0
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// An instant as RFC 3339 with this zone's offset (`2030-01-02T16:00:00+01:00`).
    pub fn format(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.0)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }
}

/// Reads a time given as ISO-8601 with an offset (`2030-01-02T15:00:00+01:00`, `…Z`) or as a
/// wall-clock time without one (`2030-01-02T15:00`, read in `zone`).
pub fn parse_instant(raw: &str, zone: TenantTimeZone) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(raw) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(raw, format) {
            return zone.localize(local).ok_or_else(|| {
                format!("{raw} does not exist in {} (clocks skip it)", zone.name())
            });
        }
    }
    Err("must be an ISO-8601 date and time such as 2030-01-02T15:00:00+01:00".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_iana_names() {
        assert_eq!(
            TenantTimeZone::parse("Europe/Madrid").map(|z| z.name()),
            Ok("Europe/Madrid")
        );
        assert!(TenantTimeZone::parse("Mars/Olympus").is_err());
        assert!(TenantTimeZone::parse("").is_err());
        assert!(TenantTimeZone::parse("+01:00").is_err());
    }

    #[test]
    fn times_with_an_offset_keep_it_and_times_without_one_are_read_in_the_zone() {
        let madrid = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        let expected = "2030-01-02T14:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("utc");
        assert_eq!(
            parse_instant("2030-01-02T15:00:00+01:00", madrid),
            Ok(expected)
        );
        assert_eq!(parse_instant("2030-01-02T14:00:00Z", madrid), Ok(expected));
        assert_eq!(parse_instant("2030-01-02T15:00", madrid), Ok(expected));
        assert!(parse_instant("tomorrow at 3", madrid).is_err());
        // 02:30 on the last Sunday of March does not exist in Madrid.
        assert!(parse_instant("2030-03-31T02:30", madrid).is_err());
        assert_eq!(madrid.format(expected), "2030-01-02T15:00:00+01:00");
    }
}
