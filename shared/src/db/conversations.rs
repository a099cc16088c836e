//! Conversations and their messages, as the conversation worker moves an inbound message
//! from the inbox to a reply. Every step is conditional, so a job that runs twice (SQS
//! delivers at least once) takes effect once.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DbError, GenericClient, Transaction, enum_column, optional_enum_column};
use crate::domain::{
    ConversationId, ConversationOwner, CustomerIdentity, InboundOutcome, InboundState,
    InstagramApi, MessageAuthor, MessageId, MessageStatus, Platform, ReplyBlockedReason,
    SendFailure, contains_nul, replace_nul,
};

/// An inbox row, as the worker reads it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub platform_message_id: String,
    pub user_id: String,
    pub phone_number_id: String,
    pub customer_id: String,
    pub customer_name: Option<String>,
    pub text: String,
    pub state: InboundState,
    pub credit_taken: bool,
    pub reply_message_id: Option<String>,
}

/// Reads an inbox row.
pub async fn inbound(
    client: &impl GenericClient,
    platform_message_id: &str,
) -> Result<Option<Inbound>, DbError> {
    let row = client
        .query_opt(
            "SELECT platform_message_id, user_id, phone_number_id, customer_id, customer_name, text, state,
                    credit_taken_at IS NOT NULL AS credit_taken, reply_message_id
             FROM inbound_messages WHERE platform_message_id = $1",
            &[&platform_message_id],
        )
        .await?;
    row.map(|row| {
        Ok(Inbound {
            platform_message_id: row.try_get("platform_message_id")?,
            user_id: row.try_get("user_id")?,
            phone_number_id: row.try_get("phone_number_id")?,
            customer_id: row.try_get("customer_id")?,
            customer_name: row.try_get("customer_name")?,
            text: row.try_get("text")?,
            state: enum_column(&row, "state")?,
            credit_taken: row.try_get("credit_taken")?,
            reply_message_id: row.try_get("reply_message_id")?,
        })
    })
    .transpose()
}

/// A channel with what the worker needs to answer on it.
#[derive(Debug, Clone)]
pub struct ReplyChannel {
    pub platform: Platform,
    pub meta_phone_number_id: String,
    pub sealed_access_token: Option<String>,
    pub instagram_api: Option<InstagramApi>,
    /// The linked agent: `(agent_id, prompt_id)`.
    pub agent: Option<(String, String)>,
}

/// The channel of an inbox row, with its agent.
pub async fn reply_channel(
    client: &impl GenericClient,
    phone_number_id: &str,
) -> Result<Option<ReplyChannel>, DbError> {
    let row = client
        .query_opt(
            "SELECT p.platform, p.meta_phone_number_id, p.access_token, p.instagram_api, a.agent_id, a.prompt_id
             FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.id
             WHERE p.id = $1",
            &[&phone_number_id],
        )
        .await?;
    row.map(|row| {
        let agent_id: Option<String> = row.try_get("agent_id")?;
        let prompt_id: Option<String> = row.try_get("prompt_id")?;
        Ok(ReplyChannel {
            platform: enum_column(&row, "platform")?,
            meta_phone_number_id: row.try_get("meta_phone_number_id")?,
            sealed_access_token: row.try_get("access_token")?,
            instagram_api: optional_enum_column(&row, "instagram_api")?,
            agent: agent_id.zip(prompt_id),
        })
    })
    .transpose()
}

/// How a customer is keyed in `conversations.customer_phone`: E.164 for WhatsApp (`wa_id`
/// has no `+`), the platform's id elsewhere. Contacts find it through
/// [`CustomerIdentity::of_conversation`].
pub fn customer_key(platform: Platform, customer_id: &str) -> String {
    match platform {
        Platform::WhatsApp if !customer_id.starts_with('+') => format!("+{customer_id}"),
        _ => customer_id.to_owned(),
    }
}

/// The conversation a reply belongs to.
#[derive(Debug, Clone)]
pub struct ActiveConversation {
    pub conversation_id: ConversationId,
    pub owner: ConversationOwner,
    pub openai_conversation_id: Option<String>,
    pub customer_name: Option<String>,
    pub last_customer_message_at: Option<DateTime<Utc>>,
}

/// What [`store_inbound`] did.
#[derive(Debug, Clone)]
pub struct StoredInbound {
    /// The customer's active conversation, which now holds their pending messages.
    pub conversation: ActiveConversation,
    /// Inbox rows that could not be stored (finished as `store_failed` with their reason).
    pub failed: Vec<String>,
}

/// Finds or creates the customer's active conversation with `agent_id`, locks it, and moves
/// every not-yet-stored inbox row of this customer on this channel into it as messages, in
/// the order of the provider's timestamps, with gap-free sequence numbers.
///
/// Each row is stored under its own savepoint: a row the database refuses for its data (a
/// value too long, a duplicate provider id, text it cannot hold) is rolled back alone and
/// finished as `store_failed` with the database's reason, and the others are stored, so one
/// bad message never blocks the customer's later ones. Any other error (the connection, a
/// serialization failure) fails the whole call, to be retried.
pub async fn store_inbound(
    tx: &Transaction<'_>,
    agent_id: &str,
    phone_number_id: &str,
    platform: Platform,
    customer_id: &str,
) -> Result<StoredInbound, DbError> {
    let customer = customer_key(platform, customer_id);
    let new_id = ConversationId::generate();
    tx.execute(
        "INSERT INTO conversations (conversation_id, agent_id, customer_phone)
         VALUES ($1, $2, $3)
         ON CONFLICT (agent_id, customer_phone) WHERE is_active DO NOTHING",
        &[&new_id.as_str(), &agent_id, &customer],
    )
    .await?;
    let conversation = tx
        .query_one(
            "SELECT conversation_id, owner, openai_conversation_id, customer_name, last_customer_message_at,
                    (SELECT COALESCE(max(sequence_no), 0) FROM messages m WHERE m.conversation_id = c.conversation_id) AS last_sequence
             FROM conversations c
             WHERE agent_id = $1 AND customer_phone = $2 AND is_active
             FOR UPDATE",
            &[&agent_id, &customer],
        )
        .await?;
    let conversation_id: String = conversation.try_get("conversation_id")?;
    let mut sequence: i32 = conversation.try_get("last_sequence")?;
    let pending = tx
        .query(
            "SELECT platform_message_id, message_type, text, metadata, sent_at, customer_name
             FROM inbound_messages
             WHERE phone_number_id = $1 AND customer_id = $2 AND message_id IS NULL
               AND outcome IS DISTINCT FROM 'store_failed'
             ORDER BY sent_at, received_at, platform_message_id
             FOR UPDATE",
            &[&phone_number_id, &customer_id],
        )
        .await?;
    let mut latest: Option<DateTime<Utc>> = None;
    let mut name: Option<String> = None;
    let mut stored = 0i32;
    let mut failed = Vec::new();
    for row in &pending {
        let platform_message_id: String = row.try_get("platform_message_id")?;
        tx.batch_execute("SAVEPOINT store_inbound_row").await?;
        match store_row(tx, &conversation_id, sequence + 1, row).await {
            Ok(sent_at) => {
                tx.batch_execute("RELEASE SAVEPOINT store_inbound_row")
                    .await?;
                sequence += 1;
                stored += 1;
                latest = latest.max(Some(sent_at));
                name = row.try_get::<_, Option<String>>("customer_name")?.or(name);
            }
            Err(error) if error.is_data_error() => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT store_inbound_row")
                    .await?;
                let reason = format!("could not be stored: {}", error.reason());
                tracing::warn!(inbound.id = %platform_message_id, reason = %reason, "inbound message finished as store_failed");
                finish_failed(
                    tx,
                    &platform_message_id,
                    InboundOutcome::StoreFailed,
                    &reason,
                )
                .await?;
                failed.push(platform_message_id);
            }
            Err(error) => return Err(error),
        }
    }
    let row = tx
        .query_one(
            "UPDATE conversations SET
                 last_message_at = GREATEST(last_message_at, COALESCE($2, last_message_at)),
                 last_customer_message_at = GREATEST(last_customer_message_at, $2),
                 customer_name = COALESCE(customer_name, $3)
             WHERE conversation_id = $1
             RETURNING customer_name, last_customer_message_at",
            &[&conversation_id, &latest, &name],
        )
        .await?;
    if stored > 0 {
        let identity = CustomerIdentity::of_conversation(platform, &customer);
        super::contacts::count_received(tx, agent_id, &identity, stored, name.as_deref()).await?;
    }
    Ok(StoredInbound {
        conversation: ActiveConversation {
            conversation_id: ConversationId::from_trusted(conversation_id),
            owner: enum_column(&conversation, "owner")?,
            openai_conversation_id: conversation.try_get("openai_conversation_id")?,
            customer_name: row.try_get("customer_name")?,
            last_customer_message_at: row.try_get("last_customer_message_at")?,
        },
        failed,
    })
}

/// Copies one inbox row into the conversation as message `sequence` and links it; returns
/// the provider's timestamp.
async fn store_row(
    tx: &Transaction<'_>,
    conversation_id: &str,
    sequence: i32,
    row: &tokio_postgres::Row,
) -> Result<DateTime<Utc>, DbError> {
    let message_id = MessageId::generate();
    let platform_message_id: String = row.try_get("platform_message_id")?;
    let message_type: String = row.try_get("message_type")?;
    let text: String = row.try_get("text")?;
    let metadata: Value = row.try_get("metadata")?;
    let sent_at: DateTime<Utc> = row.try_get("sent_at")?;
    tx.execute(
        "INSERT INTO messages (message_id, conversation_id, sender, text, \"timestamp\", status, sequence_no,
                               platform_message_id, message_type, metadata, author)
         VALUES ($1, $2, 'user', $3, $4, 'sent', $5, $6, $7, $8, 'customer')",
        &[&message_id.as_str(), &conversation_id, &text, &sent_at, &sequence, &platform_message_id, &message_type, &metadata],
    )
    .await?;
    tx.execute(
        "UPDATE inbound_messages SET message_id = $2 WHERE platform_message_id = $1",
        &[&platform_message_id, &message_id.as_str()],
    )
    .await?;
    Ok(sent_at)
}

/// Marks an inbox row finished with `outcome` (idempotent).
pub async fn finish(
    client: &impl GenericClient,
    platform_message_id: &str,
    outcome: InboundOutcome,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages SET state = 'done', outcome = $2, attempts = attempts + 1
             WHERE platform_message_id = $1 AND state <> 'done'",
            &[&platform_message_id, &outcome.as_str()],
        )
        .await?;
    Ok(())
}

/// Marks an inbox row finished for good with a failure `outcome` and its reason
/// (idempotent), so it is never retried and never blocks the customer's later messages.
pub async fn finish_failed(
    client: &impl GenericClient,
    platform_message_id: &str,
    outcome: InboundOutcome,
    reason: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages
                SET state = 'done', outcome = $2, failure_reason = $3, attempts = attempts + 1
              WHERE platform_message_id = $1 AND state <> 'done'",
            &[&platform_message_id, &outcome.as_str(), &reason],
        )
        .await?;
    Ok(())
}

/// Takes one credit for an inbound message's reply, at most once per message and never
/// below zero: one conditional UPDATE on the balance, in the same transaction as the mark
/// on the inbox row. `false` when the tenant has no credit left.
pub async fn take_credit(
    tx: &Transaction<'_>,
    user_id: &str,
    platform_message_id: &str,
) -> Result<bool, DbError> {
    let marked = tx
        .execute(
            "UPDATE inbound_messages SET credit_taken_at = CURRENT_TIMESTAMP
             WHERE platform_message_id = $1 AND credit_taken_at IS NULL",
            &[&platform_message_id],
        )
        .await?;
    if marked == 0 {
        return Ok(true); // taken by an earlier attempt of this job
    }
    let charged = tx
        .execute(
            "UPDATE credits SET remaining_credits = remaining_credits - 1, total_used = total_used + 1,
                 last_updated = CURRENT_TIMESTAMP
             WHERE user_id = $1 AND remaining_credits > 0",
            &[&user_id],
        )
        .await?;
    Ok(charged == 1)
}

/// Gives back the credit an inbound message's reply took, at most once: the mark
/// (`credit_refunded_at`) and the balance move in the caller's transaction, and only when a
/// credit was taken and not yet refunded. `true` when this call refunded it.
pub async fn refund_credit(
    tx: &Transaction<'_>,
    user_id: &str,
    platform_message_id: &str,
) -> Result<bool, DbError> {
    let marked = tx
        .execute(
            "UPDATE inbound_messages SET credit_refunded_at = CURRENT_TIMESTAMP
             WHERE platform_message_id = $1 AND credit_taken_at IS NOT NULL
               AND credit_refunded_at IS NULL",
            &[&platform_message_id],
        )
        .await?;
    if marked == 0 {
        return Ok(false);
    }
    tx.execute(
        "UPDATE credits SET remaining_credits = remaining_credits + 1,
             total_used = GREATEST(total_used - 1, 0), last_updated = CURRENT_TIMESTAMP
         WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    Ok(true)
}

/// Records why the AI did not answer, for the dashboard (cleared by the next AI reply).
/// `reply_blocked_at` says since when: a repeated reason keeps its first time.
pub async fn block_replies(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    reason: Option<ReplyBlockedReason>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE conversations SET reply_blocked_reason = $2::varchar,
                 reply_blocked_at = CASE WHEN $2::varchar IS NULL THEN NULL ELSE CURRENT_TIMESTAMP END
             -- Every AI reply clears the reason; only write when there is one to clear.
             WHERE conversation_id = $1 AND reply_blocked_reason IS DISTINCT FROM $2::varchar",
            &[&conversation_id.as_str(), &reason.map(ReplyBlockedReason::as_str)],
        )
        .await?;
    Ok(())
}

/// Stores the OpenAI conversation id the first reply created.
pub async fn set_openai_conversation(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    openai_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE conversations SET openai_conversation_id = $2 WHERE conversation_id = $1 AND openai_conversation_id IS NULL",
            &[&conversation_id.as_str(), &openai_id],
        )
        .await?;
    Ok(())
}

/// Gives the conversation to a person (or back to the AI).
pub async fn set_owner(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    owner: ConversationOwner,
    reason: Option<&str>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE conversations SET owner = $2, owner_changed_at = CURRENT_TIMESTAMP, handoff_reason = $3
             WHERE conversation_id = $1",
            &[&conversation_id.as_str(), &owner.as_str(), &reason.map(replace_nul)],
        )
        .await?;
    Ok(())
}

/// Stores an agent message as `pending` with the next sequence number, linked to the inbound
/// message it answers (if any). Returns its id.
pub async fn insert_agent_message(
    tx: &Transaction<'_>,
    conversation_id: &ConversationId,
    text: &str,
    author: MessageAuthor,
    answering: Option<&str>,
) -> Result<MessageId, DbError> {
    tx.query_one(
        "SELECT 1 FROM conversations WHERE conversation_id = $1 FOR UPDATE",
        &[&conversation_id.as_str()],
    )
    .await?;
    // The text comes from a model (or a person, through the API, which refuses NUL): what
    // PostgreSQL cannot hold is replaced rather than failing the reply for good.
    let text = replace_nul(text);
    let message_id = MessageId::generate();
    tx.execute(
        "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no, author)
         VALUES ($1, $2::text, 'agent', $3, 'pending',
                 (SELECT COALESCE(max(sequence_no), 0) + 1 FROM messages WHERE conversation_id = $2::text), $4)",
        &[&message_id.as_str(), &conversation_id.as_str(), &text, &author.as_str()],
    )
    .await?;
    tx.execute(
        "UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP WHERE conversation_id = $1",
        &[&conversation_id.as_str()],
    )
    .await?;
    if let Some(platform_message_id) = answering {
        tx.execute(
            "UPDATE inbound_messages SET reply_message_id = $2 WHERE platform_message_id = $1",
            &[&platform_message_id, &message_id.as_str()],
        )
        .await?;
    }
    Ok(message_id)
}

/// An agent message waiting to be sent.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub message_id: String,
    pub text: String,
    pub status: MessageStatus,
}

impl OutgoingMessage {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        Ok(Self {
            message_id: row.try_get("message_id")?,
            text: row.try_get("text")?,
            status: enum_column(row, "status")?,
        })
    }
}

/// Reads an agent message.
pub async fn outgoing(
    client: &impl GenericClient,
    message_id: &str,
) -> Result<Option<OutgoingMessage>, DbError> {
    let row = client
        .query_opt(
            "SELECT message_id, text, status FROM messages WHERE message_id = $1",
            &[&message_id],
        )
        .await?;
    row.as_ref().map(OutgoingMessage::from_row).transpose()
}

/// An agent message of `conversation_id` (`None` for another conversation's message, a
/// customer's message or no message at all).
pub async fn agent_message_in(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    message_id: &str,
) -> Result<Option<OutgoingMessage>, DbError> {
    let row = client
        .query_opt(
            "SELECT message_id, text, status FROM messages
             WHERE message_id = $1 AND conversation_id = $2 AND sender = 'agent'",
            &[&message_id, &conversation_id.as_str()],
        )
        .await?;
    row.as_ref().map(OutgoingMessage::from_row).transpose()
}

/// Records that Meta accepted a message: `sent`, its platform id, a delivery-status row
/// (`pending` until status webhooks arrive), and the contact's counters.
pub async fn mark_sent(
    tx: &Transaction<'_>,
    message_id: &str,
    platform_message_id: &str,
    user_id: &str,
    customer: &CustomerIdentity,
) -> Result<(), DbError> {
    // The send has happened: an id we cannot store must not fail the recording (the job
    // would be retried and send again), so it is recorded as unknown instead.
    let platform_message_id = storable_platform_id(platform_message_id);
    let updated = tx
        .execute(
            "UPDATE messages SET status = 'sent', platform_message_id = $2, error_code = NULL, send_failure = NULL
             WHERE message_id = $1 AND status = 'pending'",
            &[&message_id, &platform_message_id],
        )
        .await?;
    if updated == 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO message_delivery_status (message_id, platform_message_id, status) VALUES ($1, $2, 'pending')
         ON CONFLICT (message_id) DO UPDATE
             SET platform_message_id = EXCLUDED.platform_message_id, error_message = NULL,
                 updated_at = CURRENT_TIMESTAMP",
        &[&message_id, &platform_message_id],
    )
    .await?;
    super::contacts::count_sent(tx, user_id, customer).await
}

/// A provider's id for a message we sent, if the columns can hold it.
fn storable_platform_id(id: &str) -> Option<&str> {
    let storable =
        !contains_nul(id) && id.chars().count() <= crate::domain::PROVIDER_MESSAGE_ID_MAX_CHARS;
    if !storable {
        tracing::warn!(
            length = id.chars().count(),
            "the provider's id of a sent message cannot be stored; recorded without it"
        );
    }
    storable.then_some(id)
}

/// Records a failed send with Meta's code and its class. `permanent`: the message becomes
/// `failed`, and so does its delivery-status row, with the reason. `retryable`: the message
/// stays `pending` (a later attempt sends it or fails it for good) and its delivery-status
/// row, still `pending`, says why. Only a message still `pending` is touched.
pub async fn mark_send_failure(
    client: &impl GenericClient,
    message_id: &str,
    class: SendFailure,
    code: Option<String>,
    error: &str,
) -> Result<(), DbError> {
    let status = match class {
        SendFailure::Permanent => MessageStatus::Failed,
        SendFailure::Retryable => MessageStatus::Pending,
    };
    let updated = client
        .execute(
            "UPDATE messages SET status = $2, error_code = $3, send_failure = $4
             WHERE message_id = $1 AND status = 'pending'",
            &[&message_id, &status.as_str(), &code, &class.as_str()],
        )
        .await?;
    if updated == 0 {
        return Ok(());
    }
    client
        .execute(
            "INSERT INTO message_delivery_status (message_id, status, error_message) VALUES ($1, $2, $3)
             ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status,
                 error_message = EXCLUDED.error_message, updated_at = CURRENT_TIMESTAMP",
            &[&message_id, &status.as_str(), &replace_nul(error)],
        )
        .await?;
    Ok(())
}

/// Locks an agent message for sending (in the caller's transaction) and reads it: a second
/// sender of the same message waits here, then finds it no longer `pending`.
pub async fn lock_outgoing(
    tx: &Transaction<'_>,
    message_id: &str,
) -> Result<Option<OutgoingMessage>, DbError> {
    let row = tx
        .query_opt(
            "SELECT message_id, text, status FROM messages WHERE message_id = $1 FOR UPDATE",
            &[&message_id],
        )
        .await?;
    row.as_ref().map(OutgoingMessage::from_row).transpose()
}
