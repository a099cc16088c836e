//! The schedule port: one-time schedules that start a campaign at its time. A campaign with
//! a SCHEDULED trigger gets one EventBridge Scheduler schedule, created when it is scheduled,
//! updated when it is rescheduled and deleted when it is cancelled; at its time the schedule
//! sends the campaign-start job (its `input`) to the `campaign-start` SQS queue.
//!
//! - A [`OneTimeSchedule`] is the value: a name, a local wall time with its IANA time zone
//!   (EventBridge evaluates `at(yyyy-mm-ddThh:mm:ss)` in `ScheduleExpressionTimezone`), the
//!   SQS message body and, for a FIFO queue, its message group.
//! - A [`CampaignScheduler`] holds them: in EventBridge Scheduler ([`SdkScheduler`]) in AWS,
//!   in memory ([`LocalScheduler`]) in devstack and tests, which fires nothing by itself:
//!   devstack asks it for what is [`due`](LocalScheduler::due) and publishes those inputs to
//!   its in-process campaign-start queue.
//!
//! **Daylight saving time.** AWS documents that EventBridge Scheduler skips an invocation
//! whose local time does not exist (the hour the clocks skip in spring) and invokes only once
//! at a local time that happens twice (the hour repeated in autumn). A skipped start would
//! leave a campaign SCHEDULED forever, so both adapters refuse a wall time in a gap
//! ([`SchedulerError::NonexistentLocalTime`]): the API answers the person who chose it. An
//! ambiguous time fires once; AWS does not say at which of the two instants, and
//! [`OneTimeSchedule::fires_at`] (the local adapter's clock) takes the earlier, the first time
//! the clock shows it.
//!
//! **What the port does not decide.** A schedule firing for a campaign that is no longer
//! SCHEDULED (cancelled or rescheduled while the job was in flight, or a delete that lost a
//! race with the invocation) must do nothing: the campaign-start consumer checks the
//! campaign's state, the port does not. Nor does it check that the time is in the future:
//! the API validates what a person asks for.

mod local;
mod sdk;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

pub use local::LocalScheduler;
pub use sdk::{
    MAXIMUM_EVENT_AGE_SECONDS, MAXIMUM_RETRY_ATTEMPTS, SchedulerConfig, SdkScheduler,
    client_from_env,
};

/// The longest schedule name EventBridge Scheduler accepts.
pub const MAX_NAME_LEN: usize = 64;

/// The longest SQS message group id.
const MAX_MESSAGE_GROUP_ID_LEN: usize = 128;

/// The format of the date and time inside `at(...)`.
const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// One one-time schedule: at `at` (a wall time in `time_zone`), send `input` to the
/// campaign-start queue, in `message_group_id` when that queue is FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeSchedule {
    /// Unique within the schedule group: 1 to 64 of `[0-9a-zA-Z-_.]`
    /// (`campaign-cmp_01j…`, see [`OneTimeSchedule::campaign_name`]).
    pub name: String,
    /// The local wall time, whole seconds (EventBridge fires within the minute after it).
    pub at: NaiveDateTime,
    /// The IANA zone `at` is read in (`Europe/Madrid`).
    pub time_zone: String,
    /// The SQS message body: the campaign-start job, JSON.
    pub input: String,
    /// The SQS message group, required by a FIFO target queue.
    pub message_group_id: Option<String>,
}

impl OneTimeSchedule {
    /// A schedule, validated: the name's length and characters, the time zone, a non-empty
    /// input, a wall time that exists in its zone. Sub-second precision is dropped (the
    /// expression has whole seconds).
    pub fn new(
        name: impl Into<String>,
        at: NaiveDateTime,
        time_zone: impl Into<String>,
        input: impl Into<String>,
    ) -> Result<Self, SchedulerError> {
        let schedule = Self {
            name: name.into(),
            at: at.with_nanosecond(0).unwrap_or(at),
            time_zone: time_zone.into(),
            input: input.into(),
            message_group_id: None,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// The same schedule with the SQS message group of a FIFO target.
    pub fn with_message_group(
        mut self,
        message_group_id: impl Into<String>,
    ) -> Result<Self, SchedulerError> {
        self.message_group_id = Some(message_group_id.into());
        self.validate()?;
        Ok(self)
    }

    /// The schedule name of a campaign: `campaign-` and its id (`campaign-cmp_01j…`).
    pub fn campaign_name(campaign_id: &str) -> Result<String, SchedulerError> {
        let name = format!("campaign-{campaign_id}");
        validate_name(&name)?;
        Ok(name)
    }

    /// `at(yyyy-mm-ddThh:mm:ss)`: the schedule expression of this schedule.
    pub fn expression(&self) -> String {
        at_expression(self.at)
    }

    /// The instant the schedule fires, in UTC: `at` read in `time_zone`. An ambiguous wall
    /// time (autumn's repeated hour) fires at the earlier instant; one in a gap (spring's
    /// skipped hour) is an error, as EventBridge would never fire it.
    pub fn fires_at(&self) -> Result<DateTime<Utc>, SchedulerError> {
        // An ambiguous wall time is the earlier instant; one in a gap does not exist.
        let zone = parse_time_zone(&self.time_zone)?;
        zone.localize(self.at)
            .ok_or_else(|| SchedulerError::NonexistentLocalTime {
                at: self.at,
                time_zone: self.time_zone.clone(),
            })
    }

    /// Checks what EventBridge Scheduler and SQS would refuse, and a wall time that does not
    /// exist in its zone (which EventBridge would accept and never fire).
    pub fn validate(&self) -> Result<(), SchedulerError> {
        validate_name(&self.name)?;
        if self.input.is_empty() {
            return Err(SchedulerError::InvalidSchedule(format!(
                "schedule {}: the input (the SQS message body) is empty",
                self.name
            )));
        }
        if let Some(group) = &self.message_group_id {
            let valid_characters = group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation());
            if group.is_empty() || group.len() > MAX_MESSAGE_GROUP_ID_LEN || !valid_characters {
                return Err(SchedulerError::InvalidSchedule(format!(
                    "schedule {}: the message group id must be 1 to 128 ASCII letters, digits \
                     or punctuation",
                    self.name
                )));
            }
        }
        self.fires_at().map(|_| ())
    }
}

/// `at(yyyy-mm-ddThh:mm:ss)` for a wall time (sub-seconds dropped).
pub fn at_expression(at: NaiveDateTime) -> String {
    format!("at({})", at.format(AT_FORMAT))
}

/// The wall time of an `at(yyyy-mm-ddThh:mm:ss)` expression; `None` for anything else
/// (`rate(...)`, `cron(...)`, a malformed time).
pub fn parse_at_expression(expression: &str) -> Option<NaiveDateTime> {
    let inner = expression.trim().strip_prefix("at(")?.strip_suffix(')')?;
    NaiveDateTime::parse_from_str(inner, AT_FORMAT).ok()
}

fn validate_name(name: &str) -> Result<(), SchedulerError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 64 characters"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(SchedulerError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

fn parse_time_zone(time_zone: &str) -> Result<crate::domain::TenantTimeZone, SchedulerError> {
    crate::domain::TenantTimeZone::parse(time_zone)
        .map_err(|_| SchedulerError::UnknownTimeZone(time_zone.to_owned()))
}

/// A schedule as the scheduler holds it ([`CampaignScheduler::get`]): what was sent, as
/// EventBridge echoes it. Fields the local adapter has no counterpart for are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    /// The schedule's name.
    pub name: String,
    /// Its schedule group (`None` locally).
    pub group_name: Option<String>,
    /// `at(yyyy-mm-ddThh:mm:ss)` (see [`StoredSchedule::at`]).
    pub expression: String,
    /// The zone the expression is read in (EventBridge's default is `UTC`).
    pub time_zone: String,
    /// The target's input: the SQS message body.
    pub input: Option<String>,
    /// The target's `SqsParameters.MessageGroupId`.
    pub message_group_id: Option<String>,
    /// The target: the campaign-start queue's ARN (`None` locally).
    pub target_arn: Option<String>,
    /// The role EventBridge Scheduler assumes to send (`None` locally).
    pub role_arn: Option<String>,
    /// `DELETE`: the schedule deletes itself after it invoked its target.
    pub action_after_completion: Option<String>,
    /// `OFF`: no flexible time window.
    pub flexible_time_window: Option<String>,
    /// `ENABLED` or `DISABLED`.
    pub state: Option<String>,
    /// The retry policy's maximum retry attempts.
    pub maximum_retry_attempts: Option<i32>,
    /// The retry policy's maximum event age, in seconds.
    pub maximum_event_age_seconds: Option<i32>,
    /// The dead-letter queue of failed invocations.
    pub dead_letter_arn: Option<String>,
}

impl StoredSchedule {
    /// The wall time of its `at(...)` expression; `None` for another kind of expression.
    pub fn at(&self) -> Option<NaiveDateTime> {
        parse_at_expression(&self.expression)
    }

    /// The schedule as a [`OneTimeSchedule`], for reconciliation; `None` when it is not a
    /// one-time schedule with an input.
    pub fn to_one_time(&self) -> Option<OneTimeSchedule> {
        Some(OneTimeSchedule {
            name: self.name.clone(),
            at: self.at()?,
            time_zone: self.time_zone.clone(),
            input: self.input.clone()?,
            message_group_id: self.message_group_id.clone(),
        })
    }
}

/// A schedule could not be written, read or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The name is not a valid schedule name.
    #[error("invalid schedule name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// The time zone is not an IANA zone.
    #[error("unknown time zone {0:?} (an IANA name such as Europe/Madrid is expected)")]
    UnknownTimeZone(String),
    /// The wall time falls in a daylight-saving gap: the clocks skip it, and EventBridge
    /// Scheduler skips an invocation at a time that does not exist.
    #[error("{at} does not exist in {time_zone} (the clocks skip it for daylight saving time)")]
    NonexistentLocalTime {
        at: NaiveDateTime,
        time_zone: String,
    },
    /// Something else EventBridge or SQS would refuse (an empty input, a FIFO target without
    /// a message group, …).
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// EventBridge Scheduler failed or refused the call. The SDK client retries only when
    /// its configuration says so: `shared::aws::sdk_config` sets no retry configuration, so
    /// a caller retries (the API answers 5xx).
    #[error("EventBridge Scheduler {operation} failed: {message}")]
    Service {
        operation: &'static str,
        message: String,
    },
    /// The local scheduler was told to fail ([`LocalScheduler::fail_next`]).
    #[error("local scheduler told to fail")]
    LocalFailure,
}

/// Where campaign schedules live: EventBridge Scheduler in AWS, memory in devstack and tests.
#[derive(Debug, Clone)]
pub enum CampaignScheduler {
    /// In memory; devstack fires what is due.
    Local(LocalScheduler),
    /// EventBridge Scheduler.
    Sdk(SdkScheduler),
}

impl CampaignScheduler {
    /// Creates the schedule, or replaces it when one of that name exists (a reschedule).
    pub async fn upsert(&self, schedule: &OneTimeSchedule) -> Result<(), SchedulerError> {
        match self {
            Self::Local(scheduler) => scheduler.upsert(schedule),
            Self::Sdk(scheduler) => scheduler.upsert(schedule).await,
        }
    }

    /// Deletes the schedule; one that does not exist (already fired, or never created) is
    /// not an error.
    pub async fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        match self {
            Self::Local(scheduler) => scheduler.delete(name),
            Self::Sdk(scheduler) => scheduler.delete(name).await,
        }
    }

    /// The schedule of that name, if there is one.
    pub async fn get(&self, name: &str) -> Result<Option<StoredSchedule>, SchedulerError> {
        match self {
            Self::Local(scheduler) => Ok(scheduler.get(name).map(|s| StoredSchedule::local(&s))),
            Self::Sdk(scheduler) => scheduler.get(name).await,
        }
    }
}

/// The campaign scheduler of a deployed function: EventBridge Scheduler, configured by
/// `CAMPAIGN_SCHEDULE_GROUP`, `CAMPAIGN_START_QUEUE_ARN`, `SCHEDULER_ROLE_ARN` and
/// `SCHEDULER_DLQ_ARN` (optional); see [`SchedulerConfig::from_env`].
pub async fn from_env() -> Result<CampaignScheduler, crate::config::ConfigError> {
    Ok(CampaignScheduler::Sdk(SdkScheduler::new(
        client_from_env().await?,
        SchedulerConfig::from_env()?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_opt(h, min, 0))
            .expect("a valid date")
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        wall(y, m, d, h, min).and_utc()
    }

    #[test]
    fn the_expression_is_at_with_whole_seconds() {
        let at = wall(2025, 1, 15, 9, 5)
            .with_nanosecond(123_000_000)
            .expect("nanos");
        assert_eq!(at_expression(at), "at(2025-01-15T09:05:00)");

        let schedule =
            OneTimeSchedule::new("campaign-x", at, "Europe/Madrid", "{}").expect("valid");
        assert_eq!(schedule.expression(), "at(2025-01-15T09:05:00)");
        assert_eq!(schedule.at.nanosecond(), 0);
        assert_eq!(
            parse_at_expression(&schedule.expression()),
            Some(schedule.at)
        );
    }

    #[test]
    fn only_at_expressions_parse() {
        assert_eq!(parse_at_expression("rate(5 minutes)"), None);
        assert_eq!(parse_at_expression("cron(0 9 * * ? *)"), None);
        assert_eq!(parse_at_expression("at(2025-13-01T09:00:00)"), None);
        assert_eq!(
            parse_at_expression("at(2025-03-01T09:00:00)"),
            Some(wall(2025, 3, 1, 9, 0))
        );
    }

    #[test]
    fn names_follow_eventbridge_rules() {
        let campaign = OneTimeSchedule::campaign_name("cmp_01jabcdefghjkmnpqrstvwxyz0")
            .expect("a campaign id fits");
        assert_eq!(campaign, "campaign-cmp_01jabcdefghjkmnpqrstvwxyz0");

        let at = wall(2025, 1, 15, 9, 0);
        for bad in ["", "has space", "slash/name", "ñ", &"x".repeat(65)] {
            assert!(
                matches!(
                    OneTimeSchedule::new(bad, at, "UTC", "{}"),
                    Err(SchedulerError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(OneTimeSchedule::new("a-b_c.D9", at, "UTC", "{}").is_ok());
        assert!(OneTimeSchedule::new("x".repeat(64), at, "UTC", "{}").is_ok());
        assert!(OneTimeSchedule::campaign_name(&"c".repeat(60)).is_err());
    }

    #[test]
    fn time_zone_input_and_group_are_checked() {
        let at = wall(2025, 1, 15, 9, 0);
        assert!(matches!(
            OneTimeSchedule::new("s", at, "Mars/Olympus", "{}"),
            Err(SchedulerError::UnknownTimeZone(_))
        ));
        assert!(matches!(
            OneTimeSchedule::new("s", at, "UTC", ""),
            Err(SchedulerError::InvalidSchedule(_))
        ));
        let schedule = OneTimeSchedule::new("s", at, "UTC", "{}").expect("valid");
        assert!(schedule.clone().with_message_group("").is_err());
        assert!(
            schedule
                .clone()
                .with_message_group("g".repeat(129))
                .is_err()
        );
        assert!(schedule.clone().with_message_group("grüppe").is_err());
        assert_eq!(
            schedule
                .with_message_group("cmp_01j")
                .expect("valid")
                .message_group_id
                .as_deref(),
            Some("cmp_01j")
        );
    }

    #[test]
    fn a_wall_time_fires_at_its_zones_instant_summer_and_winter() {
        let fires = |at, zone: &str| {
            OneTimeSchedule::new("s", at, zone, "{}")
                .and_then(|s| s.fires_at())
                .expect("valid")
        };
        // Madrid: UTC+1 in winter, UTC+2 in summer.
        assert_eq!(
            fires(wall(2025, 1, 15, 9, 0), "Europe/Madrid"),
            utc(2025, 1, 15, 8, 0)
        );
        assert_eq!(
            fires(wall(2025, 7, 15, 9, 0), "Europe/Madrid"),
            utc(2025, 7, 15, 7, 0)
        );
        assert_eq!(
            fires(wall(2025, 1, 15, 9, 0), "America/New_York"),
            utc(2025, 1, 15, 14, 0)
        );
        assert_eq!(
            fires(wall(2025, 1, 15, 9, 0), "UTC"),
            utc(2025, 1, 15, 9, 0)
        );
    }

    #[test]
    fn a_wall_time_the_clocks_skip_is_refused() {
        // Madrid skips 02:00–03:00 on 30 March 2025.
        let error = OneTimeSchedule::new("s", wall(2025, 3, 30, 2, 30), "Europe/Madrid", "{}")
            .expect_err("in the gap");
        assert!(
            matches!(error, SchedulerError::NonexistentLocalTime { .. }),
            "{error}"
        );
        assert!(OneTimeSchedule::new("s", wall(2025, 3, 30, 3, 0), "Europe/Madrid", "{}").is_ok());
    }

    #[test]
    fn a_repeated_wall_time_fires_at_the_earlier_instant() {
        // Madrid repeats 02:00–03:00 on 26 October 2025: 02:30 is 00:30Z, then 01:30Z.
        let schedule = OneTimeSchedule::new("s", wall(2025, 10, 26, 2, 30), "Europe/Madrid", "{}")
            .expect("ambiguous is accepted");
        assert_eq!(
            schedule.fires_at().expect("fires"),
            utc(2025, 10, 26, 0, 30)
        );
    }

    #[test]
    fn a_stored_schedule_converts_back() {
        let schedule = OneTimeSchedule::new("s", wall(2025, 1, 15, 9, 0), "Europe/Madrid", "{}")
            .and_then(|s| s.with_message_group("g"))
            .expect("valid");
        let stored = StoredSchedule::local(&schedule);
        assert_eq!(stored.at(), Some(schedule.at));
        assert_eq!(stored.to_one_time(), Some(schedule));
    }
}
