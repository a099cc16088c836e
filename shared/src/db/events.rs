//! `domain_events`: the outbox of domain events for campaign triggers and the dashboard's
//! activity feed. An event is recorded with [`record`] in the same transaction as the change
//! it reports, so it exists exactly when the change does; `shared::events` publishes
//! unpublished rows to the events queue.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{DbError, GenericClient, PageRequest, Transaction, enum_column};
use crate::domain::{ContactId, ConversationId, EventId, LeadStatus, Tag, TriggerEvent, UserId};

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    pub event_type: TriggerEvent,
    pub contact_id: Option<ContactId>,
    pub conversation_id: Option<ConversationId>,
    /// Event-specific data (the tag, the lead status and score, the extraction).
    pub payload: Value,
    /// Names the real change the event reports, when the same change may be recorded twice
    /// (a redelivered job): a second record with the same key writes nothing.
    pub dedup_key: Option<String>,
}

impl DomainEvent {
    /// `NEW_EXTRACTION`: a conversation was scored. Recorded once per extraction.
    pub fn new_extraction(
        extraction_id: uuid::Uuid,
        conversation_id: &ConversationId,
        contact_id: Option<&ContactId>,
        lead_status: Option<LeadStatus>,
        total_score: Option<i32>,
    ) -> Self {
        Self {
            event_type: TriggerEvent::NewExtraction,
            contact_id: contact_id.cloned(),
            conversation_id: Some(conversation_id.clone()),
            payload: json!({
                "extraction_id": extraction_id,
                "lead_status_tag": lead_status,
                "total_score": total_score,
            }),
            dedup_key: Some(format!("NEW_EXTRACTION:{extraction_id}")),
        }
    }

    /// `LEAD_HOT` / `LEAD_WARM` when a lead *enters* that status: `previous` is the status
    /// of the conversation's previous latest extraction (`None` for its first). `None` when
    /// the status did not change (Hot → Hot) or is Cold.
    pub fn lead_status_entered(
        previous: Option<LeadStatus>,
        current: LeadStatus,
        extraction_id: uuid::Uuid,
        conversation_id: &ConversationId,
        contact_id: Option<&ContactId>,
        total_score: Option<i32>,
    ) -> Option<Self> {
        if previous == Some(current) {
            return None;
        }
        let event_type = match current {
            LeadStatus::Hot => TriggerEvent::LeadHot,
            LeadStatus::Warm => TriggerEvent::LeadWarm,
            LeadStatus::Cold => return None,
        };
        Some(Self {
            event_type,
            contact_id: contact_id.cloned(),
            conversation_id: Some(conversation_id.clone()),
            payload: json!({
                "extraction_id": extraction_id,
                "previous_lead_status_tag": previous,
                "lead_status_tag": current,
                "total_score": total_score,
            }),
            dedup_key: Some(format!("{}:{extraction_id}", event_type.as_str())),
        })
    }

    /// `TAG_ADDED`: a tag the contact did not have was added. Removing and adding it again
    /// is a new change and a new event, so there is no dedup key; callers record it only
    /// for tags their statement actually added.
    pub fn tag_added(contact_id: &ContactId, tag: &Tag) -> Self {
        Self {
            event_type: TriggerEvent::TagAdded,
            contact_id: Some(contact_id.clone()),
            conversation_id: None,
            payload: json!({ "tag": tag.as_str() }),
            dedup_key: None,
        }
    }

    /// `CONVERSATION_ENDED`: the conversation has been quiet since `last_message_at`. Once
    /// per quiet period: the key is the conversation and its last message's time.
    pub fn conversation_ended(
        conversation_id: &ConversationId,
        contact_id: Option<&ContactId>,
        last_message_at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_type: TriggerEvent::ConversationEnded,
            contact_id: contact_id.cloned(),
            conversation_id: Some(conversation_id.clone()),
            payload: json!({ "last_message_at": last_message_at }),
            dedup_key: Some(format!(
                "CONVERSATION_ENDED:{conversation_id}:{}",
                last_message_at.timestamp_micros()
            )),
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event_id: EventId,
    pub user_id: String,
    pub event_type: TriggerEvent,
    /// The contact the event is about, if it is about one.
    pub contact_id: Option<String>,
    /// The contacts an import's `TAG_ADDED` is about (1 to
    /// [`super::contacts::IMPORT_EVENT_CONTACTS`], all of which gained the tag), with
    /// `contact_id` `None`; empty for every other event. [`StoredEvent::contacts`] gives
    /// either.
    pub contact_ids: Vec<String>,
    pub conversation_id: Option<String>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

const EVENT_COLUMNS: &str =
    "event_id, user_id, event_type, contact_id, COALESCE(contact_ids, '{}') AS contact_ids,
    conversation_id, payload, created_at, published_at";

impl StoredEvent {
    /// Every contact the event is about: `contact_ids`, else `contact_id`, else none.
    pub fn contacts(&self) -> impl Iterator<Item = &str> {
        self.contact_ids
            .iter()
            .map(String::as_str)
            .chain(self.contact_id.as_deref())
    }

    fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        Ok(Self {
            event_id: EventId::from_trusted(row.try_get("event_id")?),
            user_id: row.try_get("user_id")?,
            event_type: enum_column(row, "event_type")?,
            contact_id: row.try_get("contact_id")?,
            contact_ids: row.try_get("contact_ids")?,
            conversation_id: row.try_get("conversation_id")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
            published_at: row.try_get("published_at")?,
        })
    }
}

/// Records an event in the caller's transaction (pass the transaction that makes the
/// change). Returns its id, or `None` when an event with the same dedup key exists (the
/// change was already reported).
pub async fn record(
    client: &impl GenericClient,
    user: &UserId,
    event: &DomainEvent,
) -> Result<Option<EventId>, DbError> {
    let event_id = EventId::generate();
    let inserted = client
        .execute(
            "INSERT INTO domain_events (event_id, user_id, event_type, contact_id, conversation_id, payload, dedup_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
            &[
                &event_id.as_str(),
                &user.as_str(),
                &event.event_type.as_str(),
                &event.contact_id.as_ref().map(ContactId::as_str),
                &event.conversation_id.as_ref().map(ConversationId::as_str),
                &event.payload,
                &event.dedup_key,
            ],
        )
        .await?;
    Ok((inserted == 1).then_some(event_id))
}

/// `TAG_ADDED` for many contacts at once (a bulk tag change, a created contact's tags): one
/// row per `(contact, tag)` pair given, in one statement. Pass only pairs whose tag was
/// added. (An import records its own, with up to
/// [`super::contacts::IMPORT_EVENT_CONTACTS`] contacts per event: `db::contacts::import`.)
pub async fn record_tags_added(
    client: &impl GenericClient,
    user: &UserId,
    added: &[(ContactId, String)],
) -> Result<u64, DbError> {
    if added.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = added.iter().map(|_| EventId::generate().into()).collect();
    let contacts: Vec<&str> = added.iter().map(|(c, _)| c.as_str()).collect();
    let tags: Vec<&str> = added.iter().map(|(_, t)| t.as_str()).collect();
    let inserted = client
        .execute(
            "INSERT INTO domain_events (event_id, user_id, event_type, contact_id, payload)
             SELECT e, $1, 'TAG_ADDED', c, jsonb_build_object('tag', t)
             FROM unnest($2::text[], $3::text[], $4::text[]) AS u(e, c, t)",
            &[&user.as_str(), &ids, &contacts, &tags],
        )
        .await?;
    Ok(inserted)
}

/// Filters of `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<TriggerEvent>,
    pub contact_id: Option<ContactId>,
    pub conversation_id: Option<ConversationId>,
}

/// The tenant's events, newest first, one keyset page.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &EventFilter,
    page: &PageRequest,
) -> Result<Vec<StoredEvent>, DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM domain_events
         WHERE user_id = $1
           AND ($2::text IS NULL OR event_id < $2)
           AND ($3::text IS NULL OR event_type = $3)
           AND ($4::text IS NULL OR contact_id = $4 OR contact_ids @> ARRAY[$4::text])
           AND ($5::text IS NULL OR conversation_id = $5)
         ORDER BY event_id DESC
         LIMIT $6"
    );
    let rows = client
        .query(
            &sql,
            &[
                &user.as_str(),
                &page.before,
                &filter.event_type.map(TriggerEvent::as_str),
                &filter.contact_id.as_ref().map(ContactId::as_str),
                &filter.conversation_id.as_ref().map(ConversationId::as_str),
                &page.fetch,
            ],
        )
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Locks up to `max` unpublished events, oldest first, skipping rows another publisher
/// holds (in the caller's transaction; mark them with [`mark_published`] before it ends).
pub async fn lock_unpublished(tx: &Transaction<'_>, max: i64) -> Result<Vec<StoredEvent>, DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM domain_events WHERE published_at IS NULL
         ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    let rows = tx.query(&sql, &[&max]).await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Marks events published.
pub async fn mark_published(tx: &Transaction<'_>, event_ids: &[String]) -> Result<u64, DbError> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    Ok(tx
        .execute(
            "UPDATE domain_events SET published_at = CURRENT_TIMESTAMP
             WHERE event_id = ANY($1) AND published_at IS NULL",
            &[&event_ids],
        )
        .await?)
}

/// An active conversation quiet since `last_message_at` and not yet announced for it.
#[derive(Debug, Clone)]
pub struct QuietConversation {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub customer: crate::domain::CustomerIdentity,
    pub last_message_at: DateTime<Utc>,
}

/// Locks up to `max` active conversations whose last message is older than `quiet_for`
/// and that were not announced as ended for that message (through the partial index
/// `conversations_quiet_unannounced_idx`), skipping rows locked elsewhere.
pub async fn lock_quiet_conversations(
    tx: &Transaction<'_>,
    quiet_for: std::time::Duration,
    max: i64,
) -> Result<Vec<QuietConversation>, DbError> {
    let seconds = quiet_for.as_secs_f64();
    let rows = tx
        .query(
            "SELECT c.conversation_id, c.customer_phone, c.last_message_at, a.user_id, p.platform
             FROM conversations c
             JOIN agents a ON a.agent_id = c.agent_id
             JOIN phone_numbers p ON p.id = a.phone_number_id
             WHERE c.is_active AND c.ended_event_for IS DISTINCT FROM c.last_message_at
               AND c.last_message_at < CURRENT_TIMESTAMP - make_interval(secs => $1)
             ORDER BY c.last_message_at
             LIMIT $2
             FOR UPDATE OF c SKIP LOCKED",
            &[&seconds, &max],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let user_id: String = row.try_get("user_id")?;
            let customer_phone: String = row.try_get("customer_phone")?;
            Ok(QuietConversation {
                conversation_id: ConversationId::from_trusted(row.try_get("conversation_id")?),
                user_id: UserId::parse(&user_id).ok_or(DbError::Corrupt {
                    column: "user_id",
                    detail: "not a user id".to_owned(),
                })?,
                customer: crate::domain::CustomerIdentity::of_conversation(
                    enum_column(row, "platform")?,
                    &customer_phone,
                ),
                last_message_at: row.try_get("last_message_at")?,
            })
        })
        .collect()
}

/// Remembers that the conversation was announced as ended for its message at `at`.
pub async fn mark_conversation_announced(
    tx: &Transaction<'_>,
    conversation_id: &ConversationId,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE conversations SET ended_event_for = $2 WHERE conversation_id = $1",
        &[&conversation_id.as_str(), &at],
    )
    .await?;
    Ok(())
}
