//! Domain events for campaign triggers: the job that carries one event on the events queue,
//! and the sweep that publishes the outbox (`domain_events`) and announces quiet
//! conversations. The same [`sweep`] runs in Lambda (the `events` function, on a schedule)
//! and in devstack (a loop), so both publish the same way.
//!
//! Exactly once per real change: an event row is written in the transaction of the change
//! ([`crate::db::events::record`]); the publisher locks unpublished rows (`FOR UPDATE SKIP
//! LOCKED`, so concurrent sweeps never take the same row), publishes each, and marks them
//! published in the same transaction. A crash between the publish and the commit publishes
//! again on the next sweep: the events queue is FIFO with the event id as deduplication id,
//! so SQS drops that second copy (within its five-minute window), and consumers dedupe on
//! `event_id` beyond it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    db::{self, DbError, Pool, events::DomainEvent},
    domain::TriggerEvent,
    jobs::{Job, Queue, QueueError, QueueSpec},
};

/// One domain event on the events queue: published by the sweep, consumed by campaigns'
/// event triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum EventJob {
    /// The first version.
    #[serde(rename = "1")]
    V1 {
        /// `evt_…`: consumers dedupe on it.
        event_id: String,
        /// The tenant.
        user_id: String,
        event_type: TriggerEvent,
        /// The contact the event is about, if it is about one (`null` for an import's
        /// `TAG_ADDED`: see `contact_ids`).
        contact_id: Option<String>,
        /// The contacts an import's `TAG_ADDED` is about: 1 to 200 contacts that each gained
        /// the tag (`payload.tag`), `contact_id` then `null`. Absent (empty) for every other
        /// event. [`EventJob::contacts`] gives every contact of any event.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        contact_ids: Vec<String>,
        conversation_id: Option<String>,
        payload: Value,
        created_at: DateTime<Utc>,
    },
}

impl EventJob {
    /// The job of a stored event.
    pub fn from_stored(event: &db::events::StoredEvent) -> Self {
        Self::V1 {
            event_id: event.event_id.to_string(),
            user_id: event.user_id.clone(),
            event_type: event.event_type,
            contact_id: event.contact_id.clone(),
            contact_ids: event.contact_ids.clone(),
            conversation_id: event.conversation_id.clone(),
            payload: event.payload.clone(),
            created_at: event.created_at,
        }
    }

    /// Every contact the event is about: `contact_ids` (an import's `TAG_ADDED`, up to 200),
    /// else `contact_id`, else none. A consumer acting per contact iterates this.
    pub fn contacts(&self) -> impl Iterator<Item = &str> {
        match self {
            Self::V1 {
                contact_id,
                contact_ids,
                ..
            } => contact_ids
                .iter()
                .map(String::as_str)
                .chain(contact_id.as_deref()),
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> &str {
        match self {
            Self::V1 { event_id, .. } => event_id,
        }
    }
}

impl Job for EventJob {
    const QUEUE: QueueSpec = QueueSpec {
        name: "events",
        url_var: "EVENTS_QUEUE_URL",
        fifo: true,
    };

    fn version(&self) -> &'static str {
        match self {
            Self::V1 { .. } => "1",
        }
    }

    /// Events of one contact (else one conversation, else one tenant: an import's
    /// `TAG_ADDED` of many contacts) in order; others in parallel.
    fn group_id(&self) -> Option<String> {
        match self {
            Self::V1 {
                user_id,
                contact_id,
                conversation_id,
                ..
            } => Some(crate::jobs::short_hash(&format!(
                "{user_id}:{}",
                contact_id
                    .as_deref()
                    .or(conversation_id.as_deref())
                    .unwrap_or("")
            ))),
        }
    }

    /// The event id: a second publish of the same event is dropped by SQS.
    fn deduplication_id(&self) -> Option<String> {
        Some(self.event_id().to_owned())
    }
}

/// The events queue.
pub type EventQueue = Queue<EventJob>;

/// Settings of the sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    /// A conversation quiet this long has ended (`CONVERSATION_ENDED_AFTER_SECS`, default
    /// 30 minutes).
    pub conversation_ended_after: Duration,
    /// Rows per transaction.
    pub batch: i64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            conversation_ended_after: Duration::from_secs(30 * 60),
            batch: 100,
        }
    }
}

impl SweepConfig {
    /// From `CONVERSATION_ENDED_AFTER_SECS` (default 1800).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let secs = match std::env::var("CONVERSATION_ENDED_AFTER_SECS") {
            Ok(raw) => raw.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                crate::config::ConfigError::Invalid {
                    name: "CONVERSATION_ENDED_AFTER_SECS",
                    reason: "must be a positive number of seconds".to_owned(),
                }
            })?,
            Err(_) => 30 * 60,
        };
        Ok(Self {
            conversation_ended_after: Duration::from_secs(secs),
            ..Self::default()
        })
    }
}

/// The sweep failed; the next one carries on where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// `CONVERSATION_ENDED` events recorded.
    pub conversations_ended: usize,
    /// Events published to the queue.
    pub published: usize,
}

/// One sweep: announces conversations that went quiet, then publishes every unpublished
/// event. Run periodically (Lambda: EventBridge Scheduler; devstack: a loop).
pub async fn sweep(
    pool: &Pool,
    queue: &EventQueue,
    config: SweepConfig,
) -> Result<SweepReport, SweepError> {
    let conversations_ended = end_quiet_conversations(pool, config).await?;
    let published = publish_pending(pool, queue, config.batch).await?;
    Ok(SweepReport {
        conversations_ended,
        published,
    })
}

/// Records `CONVERSATION_ENDED` for every active conversation quiet longer than the
/// threshold and not yet announced for its last message: once per quiet period.
pub async fn end_quiet_conversations(pool: &Pool, config: SweepConfig) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let mut total = 0;
    loop {
        let tx = client.transaction().await?;
        let quiet = db::events::lock_quiet_conversations(
            &tx,
            config.conversation_ended_after,
            config.batch,
        )
        .await?;
        for conversation in &quiet {
            let contact =
                db::contacts::find_for_customer(&tx, &conversation.user_id, &conversation.customer)
                    .await?;
            let event = DomainEvent::conversation_ended(
                &conversation.conversation_id,
                contact.as_ref(),
                conversation.last_message_at,
            );
            if db::events::record(&tx, &conversation.user_id, &event)
                .await?
                .is_some()
            {
                total += 1;
            }
            db::events::mark_conversation_announced(
                &tx,
                &conversation.conversation_id,
                conversation.last_message_at,
            )
            .await?;
        }
        tx.commit().await?;
        if quiet.len() < usize::try_from(config.batch).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

/// Publishes unpublished events, oldest first, `batch` per transaction, until none is left.
/// A publish failure stops the sweep after marking what was published.
pub async fn publish_pending(
    pool: &Pool,
    queue: &EventQueue,
    batch: i64,
) -> Result<usize, SweepError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let mut total = 0;
    loop {
        let tx = client.transaction().await.map_err(DbError::from)?;
        let events = db::events::lock_unpublished(&tx, batch).await?;
        let mut published = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in &events {
            match queue.publish(&EventJob::from_stored(event)).await {
                Ok(()) => published.push(event.event_id.to_string()),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        db::events::mark_published(&tx, &published).await?;
        tx.commit().await.map_err(DbError::from)?;
        total += published.len();
        if let Some(error) = failure {
            tracing::warn!(published = total, error = %error, "event publishing stopped");
            return Err(error.into());
        }
        if events.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}
