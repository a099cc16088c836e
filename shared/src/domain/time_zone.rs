//! A tenant's IANA time zone (`users.time_zone`), validated against the tz database that
//! `tzdb` compiles in (read with `tz-rs`).
//!
//! Not chrono-tz: its compiled-in database stores every transition with a pointer to its
//! abbreviation (data plus a load-time relocation each); tzdb's tables made the meetings
//! binary 1.4 MB smaller (docs/benchmarks.md, "Under 10 MB").

use chrono::{DateTime, FixedOffset, NaiveDateTime, Timelike, Utc};
use tz::{TimeZoneRef, datetime::FoundDateTimeKind};

/// How far ahead a meeting may be booked or moved: far enough for any real plan, and far
/// from the year 9999 past which Google cannot read the event's end.
pub const MEETING_MAX_DAYS_AHEAD: i64 = 3_660;

/// A valid IANA zone name (`Europe/Madrid`, `America/New_York`, `UTC`). It holds the name
/// only and looks the zone's rules up when a time is converted, so a function that only
/// validates names (agents' `PATCH /me`) does not link the database's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantTimeZone(&'static str);

impl Default for TenantTimeZone {
    fn default() -> Self {
        Self("UTC")
    }
}

impl TenantTimeZone {
    /// Parses a zone name, exactly as the database spells it (zones and their links, such
    /// as `US/Eastern`); the message says what is accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        tzdb::TZ_NAMES
            .iter()
            // "Factory" is tzdb's placeholder for an unset zone, not a place.
            .find(|name| **name == raw && **name != "Factory")
            .map(|name| Self(name))
            .ok_or_else(|| {
                "must be an IANA time zone name such as `Europe/Madrid` or `UTC`".to_owned()
            })
    }

    /// The zone's name.
    pub fn name(&self) -> &'static str {
        self.0
    }

    /// The zone's rules (every name of `tzdb::TZ_NAMES` has them; UTC otherwise).
    fn zone(&self) -> TimeZoneRef<'static> {
        tzdb::tz_by_name(self.0).unwrap_or_else(TimeZoneRef::utc)
    }

    /// The zone's offset from UTC at an instant (UTC should the database have none for it,
    /// which a valid zone does not).
    pub fn offset_at(&self, instant: DateTime<Utc>) -> FixedOffset {
        self.zone()
            .find_local_time_type(instant.timestamp())
            .ok()
            .and_then(|local| FixedOffset::east_opt(local.ut_offset()))
            .unwrap_or(FixedOffset::east_opt(0).expect("zero is a valid offset"))
    }

    /// An instant on this zone's wall clock, with the offset in force then.
    pub fn local(&self, instant: DateTime<Utc>) -> DateTime<FixedOffset> {
        instant.with_timezone(&self.offset_at(instant))
    }

    /// A wall-clock time read in this zone; `None` when the clock skips it (a DST gap). An
    /// ambiguous time (the hour repeated when clocks go back) is the earlier one.
    pub fn localize(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        use chrono::Datelike;
        let found = tz::DateTime::find(
            local.year(),
            u8::try_from(local.month()).ok()?,
            u8::try_from(local.day()).ok()?,
            u8::try_from(local.hour()).ok()?,
            u8::try_from(local.minute()).ok()?,
            u8::try_from(local.second()).ok()?,
            local.nanosecond(),
            self.zone(),
        )
        .ok()?;
        found
            .into_inner()
            .into_iter()
            .filter_map(|kind| match kind {
                FoundDateTimeKind::Normal(found) => Some(found.unix_time()),
                FoundDateTimeKind::Skipped { .. } => None,
            })
            .min()
            .and_then(|seconds| DateTime::from_timestamp(seconds, local.nanosecond()))
    }

    /// An instant as RFC 3339 with this zone's offset (`2030-01-02T16:00:00+01:00`).
    pub fn format(&self, instant: DateTime<Utc>) -> String {
        self.local(instant)
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
        // Exact names only, as chrono-tz took them: no other case, no placeholder.
        assert!(TenantTimeZone::parse("europe/madrid").is_err());
        assert!(TenantTimeZone::parse("Factory").is_err());
        assert_eq!(
            TenantTimeZone::parse(" US/Eastern ").map(|z| z.name()),
            Ok("US/Eastern")
        );
        assert_eq!(
            TenantTimeZone::parse("UTC").map(|z| z.name()),
            Ok(TenantTimeZone::default().name())
        );
    }

    #[test]
    fn every_accepted_name_has_its_rules() {
        for name in tzdb::TZ_NAMES.iter().filter(|name| **name != "Factory") {
            let zone = TenantTimeZone::parse(name).expect("an accepted name");
            assert!(tzdb::tz_by_name(zone.name()).is_some(), "{name}");
        }
    }

    #[test]
    fn offsets_follow_the_zones_rules_including_years_past_its_listed_transitions() {
        let new_york = TenantTimeZone::parse("America/New_York").expect("zone");
        let at = |raw: &str| raw.parse::<DateTime<Utc>>().expect("utc");
        assert_eq!(
            new_york.format(at("2030-01-15T17:00:00Z")),
            "2030-01-15T12:00:00-05:00"
        );
        assert_eq!(
            new_york.format(at("2030-07-15T16:00:00Z")),
            "2030-07-15T12:00:00-04:00"
        );
        // Far beyond the last transition the database lists (the rule goes on).
        assert_eq!(
            new_york.format(at("2060-07-15T16:00:00Z")),
            "2060-07-15T12:00:00-04:00"
        );
        let kolkata = TenantTimeZone::parse("Asia/Kolkata").expect("zone");
        assert_eq!(
            kolkata.format(at("2030-01-15T12:00:00Z")),
            "2030-01-15T17:30:00+05:30"
        );
        assert_eq!(
            TenantTimeZone::default().format(at("2030-01-15T12:00:00Z")),
            "2030-01-15T12:00:00+00:00"
        );
    }

    #[test]
    fn a_repeated_wall_clock_time_is_the_earlier_instant() {
        let madrid = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        // Clocks go back from 03:00 to 02:00 on 2030-10-27: 02:30 happens twice.
        let local =
            NaiveDateTime::parse_from_str("2030-10-27T02:30", "%Y-%m-%dT%H:%M").expect("local");
        assert_eq!(
            madrid.localize(local),
            Some("2030-10-27T00:30:00Z".parse().expect("utc"))
        );
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
