//! The agent's tool registry: which functions the model is offered in a conversation, their
//! JSON schemas, and their arguments parsed into typed, validated values before anything
//! runs. A call with bad arguments is answered to the model with what was wrong (it can ask
//! the customer and try again); it never fails the job.
//!
//! - `handoff_to_human` is always offered;
//! - `check_availability` and `book_meeting` only when the tenant connected Google Calendar
//!   (see [`crate::booking`]).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    domain::{MEETING_MAX_DAYS_AHEAD, TenantTimeZone, WorkingHours, parse_instant},
    openai::{FunctionCall, HANDOFF_TOOL, agent_tools},
};

/// The name of the free-slots tool.
pub const CHECK_AVAILABILITY_TOOL: &str = "check_availability";
/// The name of the booking tool.
pub const BOOK_MEETING_TOOL: &str = "book_meeting";

/// Meeting lengths accepted, in minutes.
pub const DURATION_MINUTES: std::ops::RangeInclusive<i64> = 15..=120;
/// The length when the model gives none.
pub const DEFAULT_DURATION_MINUTES: i64 = 30;
/// The widest window one availability question may cover.
pub const MAX_AVAILABILITY_WINDOW: Duration = Duration::days(14);

/// The tools of one conversation.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The tenant's zone when Google Calendar is connected (the booking tools are offered).
    calendar: Option<TenantTimeZone>,
    /// The tenant's working hours, when configured: meetings are booked only inside them.
    hours: Option<WorkingHours>,
}

/// A call, with its arguments validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCall {
    Handoff { reason: String },
    CheckAvailability(AvailabilityQuery),
    BookMeeting(BookingRequest),
}

/// `check_availability`, validated: a window in the future, a duration in range.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub duration: Duration,
}

/// `book_meeting`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRequest {
    pub start: DateTime<Utc>,
    pub duration: Duration,
    pub title: String,
    pub attendee_name: Option<String>,
    pub attendee_email: String,
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoffArgs {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityArgs {
    from: String,
    to: String,
    duration_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookingArgs {
    start: String,
    duration_minutes: Option<i64>,
    title: Option<String>,
    attendee_name: Option<String>,
    attendee_email: String,
    notes: Option<String>,
}

impl Registry {
    /// The handover tool only.
    pub fn basic() -> Self {
        Self {
            calendar: None,
            hours: None,
        }
    }

    /// The handover tool and the booking tools, with times read in `zone` and meetings
    /// inside `hours` when given.
    pub fn with_calendar(zone: TenantTimeZone, hours: Option<WorkingHours>) -> Self {
        Self {
            calendar: Some(zone),
            hours,
        }
    }

    /// The tenant's working hours, when configured and the booking tools are offered.
    pub fn working_hours(&self) -> Option<&WorkingHours> {
        self.hours.as_ref()
    }

    /// The tenant's zone, when the booking tools are offered.
    pub fn calendar_zone(&self) -> Option<TenantTimeZone> {
        self.calendar
    }

    /// The `tools` array for the Responses API.
    pub fn definitions(&self) -> Value {
        let mut tools = match agent_tools() {
            Value::Array(tools) => tools,
            other => vec![other],
        };
        if let Some(zone) = self.calendar {
            let zone = zone.name();
            let within = self
                .hours
                .as_ref()
                .map(|h| format!(" Meetings can only be booked within the company's working hours: {} ({zone}).", h.describe()))
                .unwrap_or_default();
            let time = |what: &str| {
                json!({
                    "type": "string",
                    "description": format!("{what}: ISO-8601, e.g. 2030-01-02T15:00:00+01:00; without an offset it is read in {zone}")
                })
            };
            tools.push(json!({
                "type": "function",
                "name": CHECK_AVAILABILITY_TOOL,
                "description": format!("Find free meeting slots in the company's calendar between two times. Slots are answered in {zone}.{within}"),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "from": time("Start of the window"),
                        "to": time("End of the window (at most 14 days after the start)"),
                        "duration_minutes": { "type": ["integer", "null"], "description": "Meeting length, 15 to 120 minutes (default 30)" }
                    },
                    "required": ["from", "to", "duration_minutes"],
                    "additionalProperties": false
                },
                "strict": true
            }));
            tools.push(json!({
                "type": "function",
                "name": BOOK_MEETING_TOOL,
                "description": format!("Book a Google Meet meeting with the customer once they agreed to a time and gave their email. Both sides get a calendar invitation.{within}"),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "start": time("Meeting start"),
                        "duration_minutes": { "type": ["integer", "null"], "description": "Meeting length, 15 to 120 minutes (default 30)" },
                        "title": { "type": ["string", "null"], "description": "Meeting title (default: Demo)" },
                        "attendee_name": { "type": ["string", "null"], "description": "The customer's name" },
                        "attendee_email": { "type": "string", "description": "The customer's email, for the invitation" },
                        "notes": { "type": ["string", "null"], "description": "What the customer wants to discuss" }
                    },
                    "required": ["start", "duration_minutes", "title", "attendee_name", "attendee_email", "notes"],
                    "additionalProperties": false
                },
                "strict": true
            }));
        }
        Value::Array(tools)
    }

    /// Parses and validates a call; the error is the sentence to answer the model with.
    pub fn parse(&self, call: &FunctionCall, now: DateTime<Utc>) -> Result<ToolCall, String> {
        let arguments = if call.arguments.is_null() {
            json!({})
        } else {
            call.arguments.clone()
        };
        match (call.name.as_str(), self.calendar) {
            (HANDOFF_TOOL, _) => {
                let args: HandoffArgs = from_value(arguments)?;
                let reason = args
                    .reason
                    .map(|r| {
                        r.trim()
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(500)
                            .collect::<String>()
                    })
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "requested by the AI".to_owned());
                Ok(ToolCall::Handoff { reason })
            }
            (CHECK_AVAILABILITY_TOOL, Some(zone)) => {
                let args: AvailabilityArgs = from_value(arguments)?;
                let from = parse_instant(&args.from, zone).map_err(|m| format!("from {m}"))?;
                let to = parse_instant(&args.to, zone).map_err(|m| format!("to {m}"))?;
                let duration = duration(args.duration_minutes)?;
                if to <= now {
                    return Err("to must be in the future".to_owned());
                }
                let from = from.max(now);
                if to <= from {
                    return Err("to must be after from".to_owned());
                }
                if to - from > MAX_AVAILABILITY_WINDOW {
                    return Err("the window may span at most 14 days".to_owned());
                }
                Ok(ToolCall::CheckAvailability(AvailabilityQuery {
                    from,
                    to,
                    duration,
                }))
            }
            (BOOK_MEETING_TOOL, Some(zone)) => {
                let args: BookingArgs = from_value(arguments)?;
                let start = parse_instant(&args.start, zone).map_err(|m| format!("start {m}"))?;
                if start <= now {
                    return Err("start must be in the future".to_owned());
                }
                if start > now + Duration::days(MEETING_MAX_DAYS_AHEAD) {
                    return Err(format!(
                        "start must be within {MEETING_MAX_DAYS_AHEAD} days from now"
                    ));
                }
                let duration = duration(args.duration_minutes)?;
                if let Some(hours) = &self.hours
                    && !hours.contains(start, start + duration, zone)
                {
                    return Err(format!(
                        "{} is outside the company's working hours ({} {}): offer the customer a time inside them (check_availability lists free ones)",
                        zone.format(start),
                        hours.describe(),
                        zone.name()
                    ));
                }
                let attendee_email = email(&args.attendee_email)?;
                let title = text(args.title, 255, "title")?.unwrap_or_else(|| "Demo".to_owned());
                Ok(ToolCall::BookMeeting(BookingRequest {
                    start,
                    duration,
                    title,
                    attendee_name: text(args.attendee_name, 255, "attendee_name")?,
                    attendee_email,
                    notes: text(args.notes, 2000, "notes")?,
                }))
            }
            (name, _) => Err(format!("unknown tool {name}")),
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid arguments: {e}"))
}

fn duration(minutes: Option<i64>) -> Result<Duration, String> {
    let minutes = minutes.unwrap_or(DEFAULT_DURATION_MINUTES);
    if !DURATION_MINUTES.contains(&minutes) {
        return Err("duration_minutes must be between 15 and 120".to_owned());
    }
    Ok(Duration::minutes(minutes))
}

/// Optional text: trimmed, empty is none, control characters refused, at most `max` chars.
fn text(value: Option<String>, max: usize, field: &str) -> Result<Option<String>, String> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(format!("{field} must not contain control characters"));
    }
    if value.chars().count() > max {
        return Err(format!("{field} must be at most {max} characters"));
    }
    Ok(Some(value))
}

/// An address Google will accept as an attendee: one `@`, a local part, a dotted domain, no
/// spaces or control characters, at most 254 characters.
fn email(raw: &str) -> Result<String, String> {
    let email = raw.trim();
    let refused = || {
        format!(
            "attendee_email `{}` is not a valid email address",
            email.chars().take(80).collect::<String>()
        )
    };
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refused());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(refused());
    };
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if local.is_empty()
        || local.len() > 64
        || !domain.contains('.')
        || !labels_ok
        || local.contains('@')
    {
        return Err(refused());
    }
    Ok(email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: Value) -> FunctionCall {
        FunctionCall {
            call_id: "call_1".to_owned(),
            name: name.to_owned(),
            arguments,
        }
    }

    fn now() -> DateTime<Utc> {
        "2030-01-01T10:00:00Z".parse().expect("time")
    }

    fn madrid() -> Registry {
        Registry::with_calendar(TenantTimeZone::parse("Europe/Madrid").expect("zone"), None)
    }

    #[test]
    fn with_working_hours_a_booking_outside_them_is_refused_saying_when_they_are() {
        let zone = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        let hours = WorkingHours::parse("09:00", "17:00", &[1, 2, 3, 4, 5]).expect("hours");
        let registry = Registry::with_calendar(zone, Some(hours));
        let book = |start: &str, minutes: i64| {
            call(
                BOOK_MEETING_TOOL,
                json!({ "start": start, "duration_minutes": minutes, "title": null,
                        "attendee_name": null, "attendee_email": "a@b.example", "notes": null }),
            )
        };
        // 2030-01-05 is a Saturday; 2030-01-07 a Monday.
        for (start, minutes) in [
            ("2030-01-05T10:00:00+01:00", 30),
            ("2030-01-07T08:30:00+01:00", 30),
            ("2030-01-07T16:45:00+01:00", 30),
        ] {
            let refused = registry
                .parse(&book(start, minutes), now())
                .expect_err(start);
            assert!(
                refused.contains("outside the company's working hours (Mon, Tue, Wed, Thu, Fri 09:00-17:00 Europe/Madrid)"),
                "{refused}"
            );
        }
        assert!(matches!(
            registry.parse(&book("2030-01-07T16:30:00+01:00", 30), now()),
            Ok(ToolCall::BookMeeting(_))
        ));
        let described = registry.definitions().to_string();
        assert!(
            described
                .contains("working hours: Mon, Tue, Wed, Thu, Fri 09:00-17:00 (Europe/Madrid)")
        );
        // Without configured hours, any future time is accepted.
        assert!(matches!(
            madrid().parse(&book("2030-01-05T10:00:00+01:00", 30), now()),
            Ok(ToolCall::BookMeeting(_))
        ));
    }

    #[test]
    fn the_booking_tools_are_offered_only_with_a_calendar() {
        let names = |registry: &Registry| -> Vec<String> {
            registry
                .definitions()
                .as_array()
                .expect("array")
                .iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(names(&Registry::basic()), vec![HANDOFF_TOOL]);
        assert_eq!(
            names(&madrid()),
            vec![HANDOFF_TOOL, CHECK_AVAILABILITY_TOOL, BOOK_MEETING_TOOL]
        );
        let refused = Registry::basic().parse(&call(BOOK_MEETING_TOOL, json!({})), now());
        assert_eq!(refused, Err("unknown tool book_meeting".to_owned()));
    }

    #[test]
    fn a_booking_reads_times_in_the_tenants_zone_and_defaults_to_thirty_minutes() {
        let parsed = madrid().parse(
            &call(BOOK_MEETING_TOOL, json!({ "start": "2030-01-02T15:00", "duration_minutes": null, "title": null, "attendee_name": "Sheena", "attendee_email": " sheena@customer.test ", "notes": null })),
            now(),
        );
        assert_eq!(
            parsed,
            Ok(ToolCall::BookMeeting(BookingRequest {
                start: "2030-01-02T14:00:00Z".parse().expect("time"),
                duration: Duration::minutes(30),
                title: "Demo".to_owned(),
                attendee_name: Some("Sheena".to_owned()),
                attendee_email: "sheena@customer.test".to_owned(),
                notes: None,
            }))
        );
    }

    #[test]
    fn bad_booking_arguments_are_answered_with_what_is_wrong() {
        let base = json!({ "start": "2030-01-02T15:00:00+01:00", "duration_minutes": 30, "title": null, "attendee_name": null, "attendee_email": "a@b.test", "notes": null });
        let with = |field: &str, value: Value| {
            let mut args = base.clone();
            args[field] = value;
            args
        };
        let cases = [
            (
                with("start", json!("2029-12-31T10:00:00Z")),
                "in the future",
            ),
            (with("start", json!("tomorrow")), "ISO-8601"),
            (with("duration_minutes", json!(10)), "between 15 and 120"),
            (with("duration_minutes", json!(121)), "between 15 and 120"),
            (
                with("attendee_email", json!("not-an-email")),
                "not a valid email",
            ),
            (
                with("attendee_email", json!("a b@c.test")),
                "not a valid email",
            ),
            (
                with("attendee_email", json!("a@localhost")),
                "not a valid email",
            ),
            (
                with("attendee_email", json!("a@b.test\u{0}")),
                "not a valid email",
            ),
            (with("title", json!("x".repeat(256))), "at most 255"),
            (with("notes", json!("a\u{0}b")), "control characters"),
            (with("surprise", json!(1)), "unknown field"),
        ];
        for (args, expected) in cases {
            let error = madrid()
                .parse(&call(BOOK_MEETING_TOOL, args.clone()), now())
                .expect_err("refused");
            assert!(error.contains(expected), "{args}: {error}");
        }
    }

    #[test]
    fn an_availability_window_starts_no_earlier_than_now_and_spans_at_most_two_weeks() {
        let parsed = madrid().parse(
            &call(CHECK_AVAILABILITY_TOOL, json!({ "from": "2029-12-31T00:00:00Z", "to": "2030-01-03T00:00:00Z", "duration_minutes": 45 })),
            now(),
        );
        assert_eq!(
            parsed,
            Ok(ToolCall::CheckAvailability(AvailabilityQuery {
                from: now(),
                to: "2030-01-03T00:00:00Z".parse().expect("time"),
                duration: Duration::minutes(45),
            }))
        );
        let too_wide = madrid().parse(
            &call(CHECK_AVAILABILITY_TOOL, json!({ "from": "2030-01-02T00:00:00Z", "to": "2030-01-20T00:00:00Z", "duration_minutes": null })),
            now(),
        );
        assert!(too_wide.expect_err("refused").contains("14 days"));
    }
}
