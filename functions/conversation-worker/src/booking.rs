//! The booking tools: free slots from Google's free/busy, and an idempotent booking of a
//! Google Meet meeting.
//!
//! A booking is keyed by a deterministic event id (base32hex of the conversation, the start
//! and how many meetings at that start were cancelled before). Our `meetings` row is written
//! with it before Google is called, so a job delivered twice, or retried after a crash at
//! any point, finds the row and never creates a second event: a `scheduled` row is answered
//! as is; a `booking` row is sent again with the same id, and Google's 409 for that id
//! means the first insert got through. Google does not promise to detect duplicates, so the
//! row, not the 409, is what makes this safe.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use shared::{
    db::{GenericClient, google_tokens, meetings as meeting_rows},
    domain::{ConversationId, MeetingStatus, TenantTimeZone, UserId, WorkingHours},
    google::{
        BusyPeriod, ConferenceStatus, EventAttendee, EventDateTime, Google, GoogleError, NewEvent,
        calendar::NewConferenceData, connection, event_id,
    },
    jobs::JobError,
};

use crate::{
    WorkerState,
    tools::{AvailabilityQuery, BookingRequest},
};

/// Upcoming meetings one conversation may hold: a customer (or a prompt injected through
/// the chat) cannot turn the tenant's calendar into an invitation sender.
pub const MAX_UPCOMING_PER_CONVERSATION: i64 = 2;
/// Slots offered in one answer.
const MAX_SLOTS: usize = 8;
/// Slots start on these boundaries.
const SLOT_STEP_MINUTES: i64 = 30;
/// Without configured working hours, slots are offered between these local hours.
const DAY_START_HOUR: u32 = 9;
const DAY_END_HOUR: u32 = 18;

/// Where the booking happens.
pub struct BookingContext<'a> {
    pub user: &'a UserId,
    pub conversation_id: &'a ConversationId,
    pub customer_phone: &'a str,
    pub zone: TenantTimeZone,
    /// The tenant's working hours, when configured: slots are offered only inside them.
    pub hours: Option<WorkingHours>,
}

fn calendar_unavailable() -> Value {
    json!({
        "status": "calendar_unavailable",
        "instructions": "The calendar cannot be reached right now. Do not promise a time: tell the customer politely that a colleague will confirm the meeting time with them shortly."
    })
}

/// A Google failure as the tool's answer, or as a job error to retry later.
fn answer_error(error: GoogleError) -> Result<Value, JobError> {
    match error {
        GoogleError::ReconnectNeeded | GoogleError::NotConnected => Ok(calendar_unavailable()),
        GoogleError::Unavailable(reason) => Err(JobError::retryable(format!("Google: {reason}"))),
        GoogleError::Db(error) => Err(error.into()),
        GoogleError::Rejected(reason) => Ok(json!({ "status": "error", "error": reason })),
        other => Ok(json!({ "status": "error", "error": other.to_string() })),
    }
}

/// Free slots of `duration` inside the window, on half-hour boundaries, none overlapping a
/// busy period: inside the tenant's working hours when configured, else between 09:00 and
/// 18:00 in the tenant's zone on any day.
pub fn free_slots(
    busy: &[BusyPeriod],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration: Duration,
    zone: TenantTimeZone,
    hours: Option<&WorkingHours>,
) -> Vec<DateTime<Utc>> {
    let unset = WorkingHours::every_day(DAY_START_HOUR, DAY_END_HOUR);
    let hours = hours.unwrap_or(&unset);
    let step = Duration::minutes(SLOT_STEP_MINUTES);
    let mut start = match from.duration_trunc(step) {
        Ok(t) if t < from => t + step,
        Ok(t) => t,
        Err(_) => from,
    };
    let mut slots = Vec::new();
    while start + duration <= to && slots.len() < MAX_SLOTS {
        let end = start + duration;
        let in_day = hours.contains(start, end, zone);
        let clashes = busy.iter().any(|b| b.start < end && b.end > start);
        if in_day && !clashes {
            slots.push(start);
        }
        start += step;
    }
    slots
}

/// `check_availability`.
pub async fn check_availability(
    state: &WorkerState,
    google: &Google,
    client: &impl GenericClient,
    context: &BookingContext<'_>,
    query: &AvailabilityQuery,
) -> Result<Value, JobError> {
    let token =
        match connection::access_token(client, google, &state.sealing_key, context.user).await {
            Ok(token) => token,
            Err(error) => return answer_error(error),
        };
    let busy = match google.free_busy(&token, query.from, query.to).await {
        Ok(busy) => busy,
        Err(error) => return answer_error(error),
    };
    let slots = free_slots(
        &busy,
        query.from,
        query.to,
        query.duration,
        context.zone,
        context.hours.as_ref(),
    );
    Ok(json!({
        "status": "ok",
        "time_zone": context.zone.name(),
        "duration_minutes": query.duration.num_minutes(),
        "free_slots": slots.iter().map(|s| context.zone.format(*s)).collect::<Vec<_>>(),
    }))
}

/// `book_meeting`.
pub async fn book_meeting(
    state: &WorkerState,
    google: &Google,
    client: &impl GenericClient,
    context: &BookingContext<'_>,
    request: &BookingRequest,
) -> Result<Value, JobError> {
    let start = request.start;
    let end = start + request.duration;
    let generation =
        meeting_rows::cancelled_at(client, context.user, context.conversation_id, start).await?;
    let start_key = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event_id = event_id::for_booking(context.conversation_id.as_str(), &start_key, generation);

    // A previous attempt may have booked it already: answered without asking Google.
    let existing = find_existing(client, context.user, &event_id).await?;
    if let Some(meeting) = existing
        .as_ref()
        .filter(|m| m.status != MeetingStatus::Booking)
    {
        tracing::info!(meeting.id = %meeting.meeting_id, "meeting booked by an earlier attempt");
        return Ok(booked_answer(context, meeting));
    }
    if existing.is_none() {
        let upcoming = meeting_rows::upcoming_in_conversation(
            client,
            context.user,
            context.conversation_id,
            chrono::Utc::now(),
        )
        .await?;
        if upcoming >= MAX_UPCOMING_PER_CONVERSATION {
            tracing::warn!(
                upcoming,
                "booking refused: the conversation's meetings are at their cap"
            );
            return Ok(json!({
                "status": "too_many_meetings",
                "upcoming_meetings": upcoming,
                "instructions": "This customer already has the most upcoming meetings one conversation may book. Do not book another: offer to keep one of them, or tell the customer a colleague will arrange anything further."
            }));
        }
    }
    let token =
        match connection::access_token(client, google, &state.sealing_key, context.user).await {
            Ok(token) => token,
            Err(error) => return answer_error(error),
        };
    let google_email = google_tokens::get(client, context.user)
        .await?
        .and_then(|c| c.google_email);
    let mut participants = vec![request.attendee_email.clone()];
    participants.extend(google_email);

    let new = meeting_rows::NewMeeting {
        conversation_id: context.conversation_id,
        google_event_id: &event_id,
        title: &request.title,
        customer_name: request.attendee_name.as_deref(),
        customer_email: &request.attendee_email,
        customer_phone: Some(context.customer_phone),
        participants: &participants,
        meeting_time: start,
        duration_minutes: i32::try_from(request.duration.num_minutes()).unwrap_or(30),
        timezone: context.zone.name(),
        notes: request.notes.as_deref(),
    };
    // The event, when free/busy shows that a concurrent attempt of this very booking made it.
    let mut ours_at_google = None;
    let meeting = match existing {
        // A `booking` row: an earlier attempt wrote it and may or may not have reached
        // Google; the insert below, with the same id, settles it.
        Some(meeting) => meeting,
        None => {
            // Taken in the meantime? Then offer others.
            let busy = match google.free_busy(&token, start, end).await {
                Ok(busy) => busy,
                Err(error) => return answer_error(error),
            };
            if busy.iter().any(|b| b.start < end && b.end > start) {
                // Busy because another attempt of this same booking (same event id) got
                // there first? Then it is ours, not taken.
                match google.get_event(&token, &event_id).await {
                    Ok(event) if event.status.as_deref() != Some("cancelled") => {
                        ours_at_google = Some(event);
                    }
                    Ok(_) | Err(GoogleError::NotFound) => {
                        return slot_taken(google, &token, context, start, request.duration).await;
                    }
                    Err(error) => return answer_error(error),
                }
            }
            match meeting_rows::insert_booking(client, context.user, &new).await? {
                meeting_rows::Booked::New(meeting) => meeting,
                meeting_rows::Booked::Existing(meeting)
                    if meeting.status != MeetingStatus::Booking =>
                {
                    return Ok(booked_answer(context, &meeting));
                }
                meeting_rows::Booked::Existing(meeting) => meeting,
            }
        }
    };

    let event = NewEvent {
        id: event_id.clone(),
        summary: request.title.clone(),
        description: request.notes.clone(),
        start: at(start, context.zone),
        end: at(end, context.zone),
        attendees: vec![EventAttendee {
            email: request.attendee_email.clone(),
            display_name: request.attendee_name.clone(),
        }],
        conference_data: NewConferenceData::meet(&event_id),
    };
    let inserted = match ours_at_google {
        Some(event) => Ok(event),
        None => google.insert_event(&token, &event).await,
    };
    let inserted = match inserted {
        Ok(inserted) => inserted,
        // Our earlier attempt's insert got through: the event is ours.
        Err(GoogleError::Duplicate) => match google.get_event(&token, &event_id).await {
            Ok(event) => event,
            Err(error) => return answer_error(error),
        },
        Err(error @ GoogleError::Unavailable(_)) => return answer_error(error),
        Err(error) => {
            // Refused: nothing exists at Google, so the row must not claim it.
            meeting_rows::drop_booking(client, &meeting.meeting_id).await?;
            return answer_error(error);
        }
    };
    let link = wait_for_meet_link(google, &token, inserted).await;
    let meeting =
        meeting_rows::mark_scheduled(client, &meeting.meeting_id, link.as_deref()).await?;
    meeting_rows::fill_demo_time(client, context.user, context.conversation_id, start).await?;
    tracing::info!(meeting.id = %meeting.meeting_id, meet_link = link.is_some(), "meeting booked");
    Ok(booked_answer(context, &meeting))
}

async fn find_existing(
    client: &impl GenericClient,
    user: &UserId,
    event_id: &str,
) -> Result<Option<meeting_rows::Meeting>, JobError> {
    Ok(meeting_rows::by_event_id(client, user, event_id).await?)
}

fn at(instant: DateTime<Utc>, zone: TenantTimeZone) -> EventDateTime {
    EventDateTime {
        date_time: zone.local(instant),
        time_zone: Some(zone.name().to_owned()),
    }
}

/// Google creates the Meet link asynchronously: read the event back until its create
/// request is `success` (or `failure`), a bounded number of times.
async fn wait_for_meet_link(
    google: &Google,
    token: &str,
    mut event: shared::google::Event,
) -> Option<String> {
    let config = google.config();
    for _ in 0..config.meet_poll_attempts {
        match event.conference() {
            ConferenceStatus::Ready(link) => return Some(link),
            ConferenceStatus::Failed => return None,
            ConferenceStatus::Pending => {}
        }
        tokio::time::sleep(config.meet_poll_interval).await;
        match google.get_event(token, &event.id).await {
            Ok(read) => event = read,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the event back for its Meet link");
                return None;
            }
        }
    }
    match event.conference() {
        ConferenceStatus::Ready(link) => Some(link),
        _ => None,
    }
}

async fn slot_taken(
    google: &Google,
    token: &str,
    context: &BookingContext<'_>,
    start: DateTime<Utc>,
    duration: Duration,
) -> Result<Value, JobError> {
    let from = start.max(Utc::now());
    let to = from + Duration::days(3);
    let busy = match google.free_busy(token, from, to).await {
        Ok(busy) => busy,
        Err(error) => return answer_error(error),
    };
    let slots = free_slots(
        &busy,
        from,
        to,
        duration,
        context.zone,
        context.hours.as_ref(),
    );
    tracing::info!("the slot was taken; offering others");
    Ok(json!({
        "status": "slot_taken",
        "message": "That time is no longer free. Offer the customer one of the free slots instead.",
        "time_zone": context.zone.name(),
        "free_slots": slots.iter().map(|s| context.zone.format(*s)).collect::<Vec<_>>(),
    }))
}

fn booked_answer(context: &BookingContext<'_>, meeting: &meeting_rows::Meeting) -> Value {
    json!({
        "status": "booked",
        "meeting_id": meeting.meeting_id.as_str(),
        "start": context.zone.format(meeting.meeting_time),
        "time_zone": context.zone.name(),
        "duration_minutes": meeting.duration_minutes,
        "title": meeting.title,
        "attendee_email": meeting.customer_email,
        "meet_link": meeting.meet_link,
        "instructions": "Confirm the time and the Google Meet link to the customer; the calendar invitation is on its way to their email."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().expect("time")
    }

    #[test]
    fn free_slots_skip_busy_periods_and_stay_inside_the_working_day() {
        let zone = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        let busy = [BusyPeriod {
            start: t("2030-01-02T09:00:00Z"),
            end: t("2030-01-02T10:00:00Z"),
        }];
        // 08:10 to 12:00 Madrid (UTC+1) = 07:10 to 11:00 UTC.
        let slots = free_slots(
            &busy,
            t("2030-01-02T07:10:00Z"),
            t("2030-01-02T11:00:00Z"),
            Duration::minutes(30),
            zone,
            None,
        );
        assert_eq!(
            slots,
            vec![
                t("2030-01-02T08:00:00Z"), // 09:00 Madrid
                t("2030-01-02T08:30:00Z"),
                t("2030-01-02T10:00:00Z"), // after the busy hour
                t("2030-01-02T10:30:00Z"),
            ]
        );
        // Evening: nothing after 18:00 Madrid.
        assert!(
            free_slots(
                &[],
                t("2030-01-02T17:00:00Z"),
                t("2030-01-02T22:00:00Z"),
                Duration::minutes(30),
                zone,
                None,
            )
            .is_empty()
        );
    }

    #[test]
    fn with_working_hours_slots_stay_inside_them_and_skip_closed_days() {
        let zone = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        let hours = WorkingHours::parse("10:00", "12:00", &[1, 3]).expect("hours");
        // Tuesday 2030-01-01 07:00 UTC to Wednesday 2030-01-02 13:00 UTC (14:00 Madrid).
        let slots = free_slots(
            &[],
            t("2030-01-01T07:00:00Z"),
            t("2030-01-02T13:00:00Z"),
            Duration::minutes(60),
            zone,
            Some(&hours),
        );
        assert_eq!(
            slots,
            vec![
                t("2030-01-02T09:00:00Z"), // Wednesday 10:00 Madrid
                t("2030-01-02T09:30:00Z"),
                t("2030-01-02T10:00:00Z"), // 11:00-12:00, the last that fits
            ]
        );
    }
}
