//! `/meetings`: what the agent booked, and what the tenant does with it.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{
        ApiError, Cursors, Json, Page, PageParams, Problem, Query, Tenant,
        openapi::responses::{BearerErrors, JsonBodyErrors, ListErrors, PathErrors},
    },
    db::{
        DbError, Pool, conversation_views, conversations as convo,
        meetings::{self, Meeting, MeetingFilter},
        users,
    },
    domain::{
        MEETING_MAX_DAYS_AHEAD, MeetingId, MeetingStatus, MessageAuthor, TenantTimeZone,
        parse_instant,
    },
    google::{EventDateTime, connection},
    outbound::{Destination, Payload, SendOutcome, send_and_record},
};
use utoipa::{IntoParams, ToSchema};

use crate::{MeetingsState, google_error};

/// A meeting.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingResponse {
    meeting_id: String,
    conversation_id: String,
    google_event_id: String,
    title: String,
    customer_name: Option<String>,
    customer_email: Option<String>,
    customer_phone: Option<String>,
    /// Every invited email.
    participants: Vec<String>,
    /// The start, in UTC.
    start: DateTime<Utc>,
    /// The start with the meeting's time-zone offset.
    start_local: String,
    duration_minutes: i32,
    /// IANA zone the meeting was booked in.
    timezone: Option<String>,
    /// The Google Meet link.
    meet_link: Option<String>,
    notes: Option<String>,
    /// `booking` (Google is being asked), `scheduled`, `cancelled` or `completed`.
    status: MeetingStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Meeting> for MeetingResponse {
    fn from(m: Meeting) -> Self {
        let zone = m
            .timezone
            .as_deref()
            .and_then(|z| TenantTimeZone::parse(z).ok())
            .unwrap_or_default();
        Self {
            meeting_id: m.meeting_id.into(),
            conversation_id: m.conversation_id.into(),
            google_event_id: m.google_event_id,
            title: m.title,
            customer_name: m.customer_name,
            customer_email: m.customer_email,
            customer_phone: m.customer_phone,
            participants: m.participants,
            start: m.meeting_time,
            start_local: zone.format(m.meeting_time),
            duration_minutes: m.duration_minutes,
            timezone: m.timezone,
            meet_link: m.meet_link,
            notes: m.notes,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMeetings {
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    status: Option<MeetingStatus>,
    /// Meetings starting at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Meetings starting before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// `conv_…`
    conversation_id: Option<String>,
}

/// A new start time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// ISO-8601 with an offset, or a wall-clock time read in the meeting's time zone.
    #[schema(example = "2030-01-02T15:00:00+01:00")]
    start: String,
}

/// A cancelled meeting, and whether the customer was told in the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    #[serde(flatten)]
    meeting: MeetingResponse,
    /// A message went to the customer (only possible inside WhatsApp's 24-hour window).
    customer_notified: bool,
}

fn meeting_id(raw: &str) -> Result<MeetingId, ApiError> {
    MeetingId::parse(raw).ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such meeting".to_owned())
}

/// The tenant's meetings, newest booking first.
#[utoipa::path(
    get, path = "/meetings", tag = "meetings",
    params(ListMeetings),
    responses(BearerErrors, ListErrors, (status = 200, body = Page<MeetingResponse>))
)]
pub async fn list_meetings(
    State(state): State<MeetingsState>,
    tenant: Tenant,
    Query(query): Query<ListMeetings>,
) -> Result<axum::Json<Page<MeetingResponse>>, ApiError> {
    let cursors = Cursors::new(&state.api.sealing_key, "meetings");
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from >= to {
            return Err(ApiError::invalid("to", "must be after `from`"));
        }
    }
    let filter = MeetingFilter {
        status: query.status,
        from: query.from,
        to: query.to,
        conversation_id: query.conversation_id,
    };
    let client = state.pool().get().await?;
    let rows = meetings::list(&client, &tenant.user_id, &filter, &page).await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        Meeting::cursor_key,
        Into::into,
    )))
}

/// One meeting.
#[utoipa::path(
    get, path = "/meetings/{id}", tag = "meetings",
    params(("id" = String, Path, description = "`mtg_…`")),
    responses(BearerErrors, PathErrors, (status = 200, body = MeetingResponse))
)]
pub async fn get_meeting(
    State(state): State<MeetingsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<MeetingResponse>, ApiError> {
    let id = meeting_id(&id)?;
    let client = state.pool().get().await?;
    let meeting = meetings::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(meeting.into()))
}

fn not_scheduled(meeting: &Meeting) -> ApiError {
    ApiError::Conflict(format!(
        "the meeting is {}: only a scheduled meeting can be changed",
        meeting.status
    ))
}

/// Cancels the meeting at Google (the attendees are told: `sendUpdates=all`), marks it
/// `cancelled`, and tells the customer in the conversation when the channel allows it.
#[utoipa::path(
    post, path = "/meetings/{id}/cancel", tag = "meetings",
    params(("id" = String, Path, description = "`mtg_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = CancelResponse),
        (status = 409, description = "Not scheduled, or Google must be connected again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Google is unavailable: nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_meeting(
    State(state): State<MeetingsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CancelResponse>, ApiError> {
    let id = meeting_id(&id)?;
    let google = state.google()?;
    let mut client = state.pool().get().await?;
    let meeting = meetings::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if meeting.status != MeetingStatus::Scheduled {
        return Err(not_scheduled(&meeting));
    }
    // The token before the transaction: a refresh (or `reconnect_needed`) is stored even
    // when the cancellation then fails.
    let token = connection::access_token(&client, google, &state.api.sealing_key, &tenant.user_id)
        .await
        .map_err(google_error)?;
    // The row stays locked while Google is told, so two cancellations send one.
    let tx = client.transaction().await?;
    let meeting = meetings::get_for_update(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if meeting.status != MeetingStatus::Scheduled {
        return Err(not_scheduled(&meeting));
    }
    google
        .delete_event(&token, &meeting.google_event_id)
        .await
        .map_err(google_error)?;
    let cancelled = meetings::cancel(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(|| not_scheduled(&meeting))?;
    tx.commit().await?;
    tracing::info!(meeting.id = %id, "meeting cancelled");
    let customer_notified = notify_customer(&state, &mut client, &tenant, &cancelled).await?;
    Ok(axum::Json(CancelResponse {
        meeting: cancelled.into(),
        customer_notified,
    }))
}

/// Tells the customer the meeting was cancelled, through the conversation's channel, when a
/// free-form message is allowed (WhatsApp's 24-hour window). A send that fails is recorded
/// on the message (as every send is) and does not undo the cancellation.
async fn notify_customer(
    state: &MeetingsState,
    client: &mut shared::db::PooledClient,
    tenant: &Tenant,
    meeting: &Meeting,
) -> Result<bool, ApiError> {
    let Some(view) =
        conversation_views::get(&*client, &tenant.user_id, &meeting.conversation_id).await?
    else {
        return Ok(false);
    };
    if !view.window_is_open(Utc::now()) {
        return Ok(false);
    }
    let zone = meeting
        .timezone
        .as_deref()
        .and_then(|z| TenantTimeZone::parse(z).ok())
        .unwrap_or_default();
    let text = format!(
        "Your meeting \"{}\" on {} ({}) has been cancelled. Reply here if you would like a new time.",
        meeting.title,
        zone.format(meeting.meeting_time),
        zone.name()
    );
    let tx = client.transaction().await?;
    let Some(message_id) = convo::insert_agent_message(
        &tx,
        &tenant.user_id,
        &view.conversation_id,
        &text,
        MessageAuthor::Human,
        None,
    )
    .await?
    else {
        return Ok(false);
    };
    tx.commit().await?;
    let destination = Destination {
        platform: view.platform,
        user_id: &tenant.user_id,
        channel_key: &view.meta_phone_number_id,
        sealed_access_token: view.sealed_access_token.as_deref(),
        instagram_api: view.instagram_api,
        customer: &view.customer_phone,
    };
    let outcome = send_and_record(
        client,
        &state.graph,
        &state.api.sealing_key,
        destination,
        &message_id,
        Payload::StoredText,
    )
    .await?;
    Ok(matches!(
        outcome,
        SendOutcome::Sent { .. } | SendOutcome::AlreadyFinished { .. }
    ))
}

/// Moves the meeting (the attendees are told) and keeps its Meet link.
#[utoipa::path(
    post, path = "/meetings/{id}/reschedule", tag = "meetings",
    params(("id" = String, Path, description = "`mtg_…`")),
    request_body = RescheduleRequest,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = MeetingResponse),
        (status = 409, description = "Not scheduled, or Google must be connected again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Google is unavailable: nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reschedule_meeting(
    State(state): State<MeetingsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<RescheduleRequest>,
) -> Result<axum::Json<MeetingResponse>, ApiError> {
    let id = meeting_id(&id)?;
    let google = state.google()?;
    let mut client = state.pool().get().await?;
    let meeting = meetings::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    let zone = match meeting.timezone.as_deref().map(TenantTimeZone::parse) {
        Some(Ok(zone)) => zone,
        _ => users::time_zone(&client, &tenant.user_id).await?,
    };
    let start = parse_instant(&body.start, zone).map_err(|m| ApiError::invalid("start", m))?;
    if start <= Utc::now() {
        return Err(ApiError::invalid("start", "must be in the future"));
    }
    if start > Utc::now() + chrono::Duration::days(MEETING_MAX_DAYS_AHEAD) {
        return Err(ApiError::invalid(
            "start",
            format!("must be within {MEETING_MAX_DAYS_AHEAD} days from now"),
        ));
    }
    if meeting.status != MeetingStatus::Scheduled {
        return Err(not_scheduled(&meeting));
    }
    let token = connection::access_token(&client, google, &state.api.sealing_key, &tenant.user_id)
        .await
        .map_err(google_error)?;
    let tx = client.transaction().await?;
    let meeting = meetings::get_for_update(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if meeting.status != MeetingStatus::Scheduled {
        return Err(not_scheduled(&meeting));
    }
    let end = start + chrono::Duration::minutes(i64::from(meeting.duration_minutes));
    let at = |instant: DateTime<Utc>| EventDateTime {
        date_time: zone.local(instant),
        time_zone: Some(zone.name().to_owned()),
    };
    let moved = google
        .move_event(&token, &meeting.google_event_id, &at(start), &at(end))
        .await
        .map_err(google_error)?;
    let link = match moved.conference() {
        shared::google::ConferenceStatus::Ready(link) => Some(link),
        _ => None,
    };
    let updated = meetings::reschedule(&tx, &tenant.user_id, &id, start, link.as_deref())
        .await?
        .ok_or_else(|| not_scheduled(&meeting))?;
    tx.commit().await?;
    tracing::info!(meeting.id = %id, "meeting rescheduled");
    Ok(axum::Json(updated.into()))
}

/// The periodic sweep: scheduled meetings whose end has passed become `completed`.
pub async fn sweep_completed(pool: &Pool, now: DateTime<Utc>) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let completed = meetings::complete_ended(&client, now).await?;
    tracing::info!(completed, "completed meetings swept");
    Ok(completed)
}
