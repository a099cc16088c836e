//! A tenant's working hours (`users.working_hours_start`, `working_hours_end`,
//! `working_days`): when the agent may book meetings, read in the tenant's time zone.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};

use super::TenantTimeZone;

/// Days (ISO numbers, Monday = 1) and a local time range, `start` < `end`, on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    start: NaiveTime,
    end: NaiveTime,
    /// Sorted, without repeats, at least one.
    days: Vec<Weekday>,
}

/// Why working hours were refused: the field (`start`, `end`, `days`) and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct InvalidWorkingHours {
    pub field: &'static str,
    pub message: String,
}

impl WorkingHours {
    /// Reads `HH:MM` times and ISO day numbers (1 = Monday … 7 = Sunday).
    pub fn parse(start: &str, end: &str, days: &[i64]) -> Result<Self, InvalidWorkingHours> {
        let time = |field: &'static str, raw: &str| {
            NaiveTime::parse_from_str(raw.trim(), "%H:%M").map_err(|_| InvalidWorkingHours {
                field,
                message: "must be a time of day as HH:MM (24-hour clock), e.g. 09:00".to_owned(),
            })
        };
        let (start, end) = (time("start", start)?, time("end", end)?);
        if start >= end {
            return Err(InvalidWorkingHours {
                field: "end",
                message: "must be after start (working hours stay within one day)".to_owned(),
            });
        }
        let mut numbers = Vec::with_capacity(days.len());
        for &day in days {
            let day = u8::try_from(day)
                .ok()
                .filter(|d| (1..=7).contains(d))
                .ok_or_else(|| InvalidWorkingHours {
                    field: "days",
                    message: "must hold ISO weekday numbers, 1 (Monday) to 7 (Sunday)".to_owned(),
                })?;
            numbers.push(day);
        }
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            return Err(InvalidWorkingHours {
                field: "days",
                message: "must name at least one day".to_owned(),
            });
        }
        Ok(Self::from_trusted(start, end, &numbers))
    }

    /// From stored columns (the CHECK constraint holds them to the same rules).
    pub fn from_trusted(start: NaiveTime, end: NaiveTime, days: &[u8]) -> Self {
        let mut days: Vec<Weekday> = days
            .iter()
            .filter_map(|&d| Weekday::try_from(d.wrapping_sub(1)).ok())
            .collect();
        days.sort_by_key(Weekday::number_from_monday);
        days.dedup();
        Self { start, end, days }
    }

    /// Every day between two whole hours: the slots offered when a tenant set no hours.
    pub fn every_day(start_hour: u32, end_hour: u32) -> Self {
        let at = |hour| NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN);
        Self::from_trusted(at(start_hour), at(end_hour), &[1, 2, 3, 4, 5, 6, 7])
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// ISO day numbers, Monday = 1, sorted.
    pub fn day_numbers(&self) -> Vec<u8> {
        self.days
            .iter()
            .filter_map(|d| u8::try_from(d.number_from_monday()).ok())
            .collect()
    }

    /// Whether a meeting from `start` to `end` lies inside these hours, in `zone`: on a
    /// working day, starting at or after the opening and ending by the closing, same day.
    pub fn contains(&self, start: DateTime<Utc>, end: DateTime<Utc>, zone: TenantTimeZone) -> bool {
        let (local_start, local_end) = (zone.local(start), zone.local(end));
        local_start.date_naive() == local_end.date_naive()
            && self.days.contains(&local_start.weekday())
            && local_start.time() >= self.start
            && local_end.time() <= self.end
    }

    /// "Mon, Tue, Wed, Thu, Fri 09:00-17:30", for the model and the customer.
    pub fn describe(&self) -> String {
        let days: Vec<String> = self.days.iter().map(ToString::to_string).collect();
        format!(
            "{} {:02}:{:02}-{:02}:{:02}",
            days.join(", "),
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madrid() -> TenantTimeZone {
        TenantTimeZone::parse("Europe/Madrid").expect("zone")
    }

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().expect("instant")
    }

    #[test]
    fn bad_working_hours_name_the_field_at_fault() {
        for (start, end, days, field) in [
            ("9am", "17:00", vec![1], "start"),
            ("09:00", "25:00", vec![1], "end"),
            ("18:00", "09:00", vec![1], "end"),
            ("09:00", "09:00", vec![1], "end"),
            ("09:00", "17:00", vec![], "days"),
            ("09:00", "17:00", vec![0], "days"),
            ("09:00", "17:00", vec![8], "days"),
            ("09:00", "17:00", vec![-1], "days"),
        ] {
            let refused = WorkingHours::parse(start, end, &days).expect_err(start);
            assert_eq!(refused.field, field, "{start}-{end} {days:?}");
        }
    }

    #[test]
    fn days_are_sorted_and_deduplicated() {
        let hours = WorkingHours::parse("09:00", "17:30", &[5, 1, 3, 1]).expect("valid");
        assert_eq!(hours.day_numbers(), vec![1, 3, 5]);
        assert_eq!(hours.describe(), "Mon, Wed, Fri 09:00-17:30");
    }

    #[test]
    fn a_meeting_is_inside_only_on_a_working_day_between_opening_and_closing_local_time() {
        let hours = WorkingHours::parse("09:00", "17:30", &[1, 2, 3, 4, 5]).expect("valid");
        let zone = madrid();
        // 2030-01-07 is a Monday; Madrid is UTC+1 in January.
        let inside = [("2030-01-07T08:00:00Z", 30), ("2030-01-07T16:00:00Z", 30)];
        for (start, minutes) in inside {
            let start = t(start);
            assert!(hours.contains(start, start + chrono::Duration::minutes(minutes), zone));
        }
        let outside = [
            ("2030-01-07T07:30:00Z", 30), // 08:30 local
            ("2030-01-07T16:15:00Z", 30), // ends 17:45 local
            ("2030-01-12T10:00:00Z", 30), // a Saturday
            ("2030-01-07T22:45:00Z", 30), // crosses midnight
        ];
        for (start, minutes) in outside {
            let start = t(start);
            assert!(
                !hours.contains(start, start + chrono::Duration::minutes(minutes), zone),
                "{start}"
            );
        }
    }

    #[test]
    fn stored_days_round_trip() {
        let hours = WorkingHours::parse("08:00", "12:00", &[6, 7]).expect("valid");
        let stored = WorkingHours::from_trusted(hours.start(), hours.end(), &hours.day_numbers());
        assert_eq!(stored, hours);
    }
}
