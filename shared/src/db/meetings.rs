//! `meetings`: the Google Meet meetings the agent booked, and the booking's idempotency
//! (our row, keyed by the deterministic event id, is written before Google is called).

use chrono::{DateTime, Utc};

use super::{DbError, GenericClient, PageRequest, enum_column};
use crate::domain::{ConversationId, MeetingId, MeetingStatus, UserId};

/// A meeting row.
#[derive(Debug, Clone)]
pub struct Meeting {
    pub meeting_id: MeetingId,
    pub conversation_id: ConversationId,
    pub google_event_id: String,
    pub title: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub participants: Vec<String>,
    pub meeting_time: DateTime<Utc>,
    pub duration_minutes: i32,
    pub timezone: Option<String>,
    pub meet_link: Option<String>,
    pub notes: Option<String>,
    pub status: MeetingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Meeting {
    /// When the meeting ends.
    pub fn end_time(&self) -> DateTime<Utc> {
        self.meeting_time + chrono::Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The keyset key of the list (newest first).
    pub fn cursor_key(&self) -> String {
        self.meeting_id.as_str().to_owned()
    }
}

const COLUMNS: &str = "meeting_id, conversation_id, google_event_id, title, customer_name,
    customer_email, customer_phone, participants, meeting_time, duration_minutes, timezone,
    meet_link, notes, status, created_at, updated_at";

fn from_row(row: &tokio_postgres::Row) -> Result<Meeting, DbError> {
    Ok(Meeting {
        meeting_id: MeetingId::from_trusted(row.try_get("meeting_id")?),
        conversation_id: ConversationId::from_trusted(row.try_get("conversation_id")?),
        google_event_id: row.try_get("google_event_id")?,
        title: row.try_get("title")?,
        customer_name: row.try_get("customer_name")?,
        customer_email: row.try_get("customer_email")?,
        customer_phone: row.try_get("customer_phone")?,
        participants: row.try_get("participants")?,
        meeting_time: row.try_get("meeting_time")?,
        duration_minutes: row.try_get("duration_minutes")?,
        timezone: row.try_get("timezone")?,
        meet_link: row.try_get("meet_link")?,
        notes: row.try_get("notes")?,
        status: enum_column(row, "status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A booking about to be sent to Google.
#[derive(Debug, Clone)]
pub struct NewMeeting<'a> {
    pub conversation_id: &'a ConversationId,
    pub google_event_id: &'a str,
    pub title: &'a str,
    pub customer_name: Option<&'a str>,
    pub customer_email: &'a str,
    pub customer_phone: Option<&'a str>,
    pub participants: &'a [String],
    pub meeting_time: DateTime<Utc>,
    pub duration_minutes: i32,
    pub timezone: &'a str,
    pub notes: Option<&'a str>,
}

/// Whether the booking row was written now or existed already (a retried job).
#[derive(Debug, Clone)]
pub enum Booked {
    New(Meeting),
    Existing(Meeting),
}

/// How many meetings of the conversation at this start were cancelled: the generation of
/// the next booking's event id (a cancelled event keeps its id at Google).
pub async fn cancelled_at(
    client: &impl GenericClient,
    user: &UserId,
    conversation: &ConversationId,
    start: DateTime<Utc>,
) -> Result<i64, DbError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM meetings
             WHERE user_id = $1 AND conversation_id = $2 AND meeting_time = $3
               AND status = 'cancelled'",
            &[&user.as_str(), &conversation.as_str(), &start],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// How many meetings of the conversation are still ahead (booking or scheduled, starting
/// after `now`): the booking tool's cap per conversation.
pub async fn upcoming_in_conversation(
    client: &impl GenericClient,
    user: &UserId,
    conversation: &ConversationId,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM meetings
             WHERE user_id = $1 AND conversation_id = $2 AND meeting_time > $3
               AND status IN ('booking', 'scheduled')",
            &[&user.as_str(), &conversation.as_str(), &now],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Writes the `booking` row, or returns the row a previous attempt wrote for the same
/// event id.
pub async fn insert_booking(
    client: &impl GenericClient,
    user: &UserId,
    new: &NewMeeting<'_>,
) -> Result<Booked, DbError> {
    let id = MeetingId::generate();
    let inserted = client
        .query_opt(
            &format!(
                "INSERT INTO meetings (meeting_id, user_id, conversation_id, google_event_id,
                     title, customer_name, customer_email, customer_phone, participants,
                     meeting_time, duration_minutes, timezone, notes, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'booking')
                 ON CONFLICT (user_id, google_event_id) DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            &[
                &id.as_str(),
                &user.as_str(),
                &new.conversation_id.as_str(),
                &new.google_event_id,
                &new.title,
                &new.customer_name,
                &new.customer_email,
                &new.customer_phone,
                &new.participants,
                &new.meeting_time,
                &new.duration_minutes,
                &new.timezone,
                &new.notes,
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(Booked::New(from_row(&row)?));
    }
    let row = client
        .query_one(
            &format!("SELECT {COLUMNS} FROM meetings WHERE user_id = $1 AND google_event_id = $2"),
            &[&user.as_str(), &new.google_event_id],
        )
        .await?;
    Ok(Booked::Existing(from_row(&row)?))
}

/// Google has the event: `scheduled`, with the Meet link when it is ready.
pub async fn mark_scheduled(
    client: &impl GenericClient,
    meeting: &MeetingId,
    meet_link: Option<&str>,
) -> Result<Meeting, DbError> {
    let row = client
        .query_one(
            &format!(
                "UPDATE meetings SET status = 'scheduled', meet_link = COALESCE($2, meet_link)
                 WHERE meeting_id = $1 RETURNING {COLUMNS}"
            ),
            &[&meeting.as_str(), &meet_link],
        )
        .await?;
    from_row(&row)
}

/// Removes a `booking` row Google refused (the slot was taken, the request was invalid), so
/// nothing claims an event that does not exist.
pub async fn drop_booking(client: &impl GenericClient, meeting: &MeetingId) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM meetings WHERE meeting_id = $1 AND status = 'booking'",
            &[&meeting.as_str()],
        )
        .await?;
    Ok(())
}

/// Fills the latest extraction's `demo_book_datetime` of the conversation when it is empty.
pub async fn fill_demo_time(
    client: &impl GenericClient,
    user: &UserId,
    conversation: &ConversationId,
    start: DateTime<Utc>,
) -> Result<bool, DbError> {
    let updated = client
        .execute(
            "UPDATE extractions SET demo_book_datetime = $3, updated_at = now()
             WHERE user_id = $1 AND conversation_id = $2 AND is_latest
               AND demo_book_datetime IS NULL",
            &[&user.as_str(), &conversation.as_str(), &start],
        )
        .await?;
    Ok(updated > 0)
}

/// The list's filters.
#[derive(Debug, Clone, Default)]
pub struct MeetingFilter {
    pub status: Option<MeetingStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub conversation_id: Option<String>,
}

/// The tenant's meetings, newest booking first.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &MeetingFilter,
    page: &PageRequest,
) -> Result<Vec<Meeting>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM meetings
                 WHERE user_id = $1
                   AND ($2::text IS NULL OR status = $2)
                   AND ($3::timestamptz IS NULL OR meeting_time >= $3)
                   AND ($4::timestamptz IS NULL OR meeting_time < $4)
                   AND ($5::text IS NULL OR conversation_id = $5)
                   AND ($6::text IS NULL OR meeting_id < $6)
                 ORDER BY meeting_id DESC
                 LIMIT $7"
            ),
            &[
                &user.as_str(),
                &filter.status.map(MeetingStatus::as_str),
                &filter.from,
                &filter.to,
                &filter.conversation_id,
                &page.before,
                &page.fetch,
            ],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// One of the tenant's meetings.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &MeetingId,
) -> Result<Option<Meeting>, DbError> {
    one(client, user, id, "").await
}

/// The same, locked for a change (cancel, reschedule) in the caller's transaction.
pub async fn get_for_update(
    client: &impl GenericClient,
    user: &UserId,
    id: &MeetingId,
) -> Result<Option<Meeting>, DbError> {
    one(client, user, id, " FOR UPDATE").await
}

async fn one(
    client: &impl GenericClient,
    user: &UserId,
    id: &MeetingId,
    lock: &str,
) -> Result<Option<Meeting>, DbError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM meetings WHERE user_id = $1 AND meeting_id = $2{lock}"),
            &[&user.as_str(), &id.as_str()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// `scheduled` → `cancelled`; `None` when it was not scheduled.
pub async fn cancel(
    client: &impl GenericClient,
    user: &UserId,
    id: &MeetingId,
) -> Result<Option<Meeting>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE meetings SET status = 'cancelled'
                 WHERE user_id = $1 AND meeting_id = $2 AND status = 'scheduled'
                 RETURNING {COLUMNS}"
            ),
            &[&user.as_str(), &id.as_str()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves a scheduled meeting.
pub async fn reschedule(
    client: &impl GenericClient,
    user: &UserId,
    id: &MeetingId,
    start: DateTime<Utc>,
    meet_link: Option<&str>,
) -> Result<Option<Meeting>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE meetings SET meeting_time = $3, meet_link = COALESCE($4, meet_link)
                 WHERE user_id = $1 AND meeting_id = $2 AND status = 'scheduled'
                 RETURNING {COLUMNS}"
            ),
            &[&user.as_str(), &id.as_str(), &start, &meet_link],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The sweep: every scheduled meeting whose end has passed becomes `completed`. Returns how
/// many did.
pub async fn complete_ended(
    client: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE meetings SET status = 'completed'
             WHERE status = 'scheduled'
               AND meeting_time < $1
               AND meeting_time + make_interval(mins => duration_minutes) <= $1",
            &[&now],
        )
        .await?)
}

/// The tenant's meeting with this Google event id.
pub async fn by_event_id(
    client: &impl GenericClient,
    user: &UserId,
    google_event_id: &str,
) -> Result<Option<Meeting>, DbError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM meetings WHERE user_id = $1 AND google_event_id = $2"),
            &[&user.as_str(), &google_event_id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}
