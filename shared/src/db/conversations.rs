//! Conversations and their messages, as the conversation worker moves an inbound message
//! from the inbox to a reply and a person's reply is stored and sent. Every step is
//! conditional, so a job that runs twice (SQS delivers at least once) takes effect once.
//!
//! Every statement is scoped to the tenant: `conversations` has no `user_id` column, so a
//! conversation is the tenant's when its agent is (`agents.user_id`), and a message when its
//! conversation is. Another tenant's id changes nothing and reads as missing.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DbError, GenericClient, Transaction, enum_column, optional_enum_column};
use crate::domain::{
    AgentId, ConversationId, ConversationOwner, CustomerIdentity, InboundOutcome, InstagramApi,
    MessageAuthor, MessageId, MessageStatus, PhoneNumberId, Platform, PromptId, ReplyBlockedReason,
    SendFailure, UserId, contains_nul, customer_key, replace_nul,
};

/// A channel with what the worker needs to answer on it.
#[derive(Debug, Clone)]
pub struct ReplyChannel {
    pub platform: Platform,
    pub meta_phone_number_id: String,
    pub sealed_access_token: Option<String>,
    pub instagram_api: Option<InstagramApi>,
    /// The linked agent and its stored prompt.
    pub agent: Option<(AgentId, PromptId)>,
}

/// One of the tenant's channels, with its agent (the channel of an inbox row).
pub async fn reply_channel(
    client: &impl GenericClient,
    user: &UserId,
    phone_number_id: &PhoneNumberId,
) -> Result<Option<ReplyChannel>, DbError> {
    let row = client
        .query_opt(
            "SELECT p.platform, p.meta_phone_number_id, p.access_token, p.instagram_api, a.agent_id, a.prompt_id
             FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.id
             WHERE p.id = $1 AND p.user_id = $2",
            &[&phone_number_id.as_str(), &user.as_str()],
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
            agent: agent_id
                .map(AgentId::from_trusted)
                .zip(prompt_id.map(PromptId::from_trusted)),
        })
    })
    .transpose()
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

/// Who a customer's messages are stored for: the tenant's agent on one of its channels.
#[derive(Debug, Clone, Copy)]
pub struct Customer<'a> {
    pub user: &'a UserId,
    pub agent_id: &'a AgentId,
    pub phone_number_id: &'a PhoneNumberId,
    pub platform: Platform,
    /// As the provider names the customer (`wa_id`, Instagram-scoped id, visitor id).
    pub customer_id: &'a str,
}

/// Finds or creates the customer's active conversation with the agent, locks it, and moves
/// every not-yet-stored inbox row of this customer on this channel into it as messages, in
/// the order of the provider's timestamps, with gap-free sequence numbers.
///
/// Each row is stored under its own savepoint: a row the database refuses for its data (a
/// value too long, a duplicate provider id, text it cannot hold) is rolled back alone and
/// finished as `store_failed` with the database's reason, and the others are stored, so one
/// bad message never blocks the customer's later ones. Any other error (the connection, a
/// serialization failure) fails the whole call, to be retried. An agent that is not the
/// tenant's is refused as a foreign-key violation, writing nothing.
pub async fn store_inbound(
    tx: &Transaction<'_>,
    who: Customer<'_>,
) -> Result<StoredInbound, DbError> {
    let customer = customer_key(who.platform, who.customer_id);
    let (user, agent_id) = (who.user.as_str(), who.agent_id.as_str());
    let new_id = ConversationId::generate();
    tx.execute(
        "INSERT INTO conversations (conversation_id, agent_id, customer_phone)
         SELECT $1, agent_id, $3 FROM agents WHERE agent_id = $2 AND user_id = $4
         ON CONFLICT (agent_id, customer_phone) WHERE is_active DO NOTHING",
        &[&new_id.as_str(), &agent_id, &customer, &user],
    )
    .await?;
    let Some(conversation) = tx
        .query_opt(
            "SELECT c.conversation_id, c.owner, c.openai_conversation_id, c.customer_name, c.last_customer_message_at,
                    (SELECT COALESCE(max(sequence_no), 0) FROM messages m WHERE m.conversation_id = c.conversation_id) AS last_sequence
             FROM conversations c JOIN agents a ON a.agent_id = c.agent_id
             WHERE c.agent_id = $1 AND c.customer_phone = $2 AND c.is_active AND a.user_id = $3
             FOR UPDATE OF c",
            &[&agent_id, &customer, &user],
        )
        .await?
    else {
        return Err(DbError::ForeignKeyViolation {
            constraint: "conversations_agent_id_fkey (agent of another tenant)".to_owned(),
        });
    };
    let conversation_id = ConversationId::from_trusted(conversation.try_get("conversation_id")?);
    let mut sequence: i32 = conversation.try_get("last_sequence")?;
    let pending = tx
        .query(
            "SELECT platform_message_id, message_type, text, metadata, sent_at, customer_name
             FROM inbound_messages
             WHERE phone_number_id = $1 AND customer_id = $2 AND user_id = $3 AND message_id IS NULL
               AND outcome IS DISTINCT FROM 'store_failed'
             ORDER BY sent_at, received_at, platform_message_id
             FOR UPDATE",
            &[&who.phone_number_id.as_str(), &who.customer_id, &user],
        )
        .await?;
    let mut latest: Option<DateTime<Utc>> = None;
    let mut name: Option<String> = None;
    let mut stored = 0i32;
    let mut failed = Vec::new();
    for row in &pending {
        let platform_message_id: String = row.try_get("platform_message_id")?;
        tx.batch_execute("SAVEPOINT store_inbound_row").await?;
        match store_row(tx, who.user, &conversation_id, sequence + 1, row).await {
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
                super::inbound::finish_failed(
                    tx,
                    who.user,
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
            "UPDATE conversations c SET
                 last_message_at = GREATEST(c.last_message_at, COALESCE($2, c.last_message_at)),
                 last_customer_message_at = GREATEST(c.last_customer_message_at, $2),
                 customer_name = COALESCE(c.customer_name, $3)
             FROM agents a
             WHERE c.conversation_id = $1 AND a.agent_id = c.agent_id AND a.user_id = $4
             RETURNING c.customer_name, c.last_customer_message_at",
            &[&conversation_id.as_str(), &latest, &name, &user],
        )
        .await?;
    if stored > 0 {
        let identity = CustomerIdentity::of_conversation(who.platform, &customer);
        super::contacts::count_received(tx, who.user, &identity, stored, name.as_deref()).await?;
    }
    Ok(StoredInbound {
        conversation: ActiveConversation {
            conversation_id,
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
    user: &UserId,
    conversation_id: &ConversationId,
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
        &[&message_id.as_str(), &conversation_id.as_str(), &text, &sent_at, &sequence, &platform_message_id, &message_type, &metadata],
    )
    .await?;
    tx.execute(
        "UPDATE inbound_messages SET message_id = $2 WHERE platform_message_id = $1 AND user_id = $3",
        &[&platform_message_id, &message_id.as_str(), &user.as_str()],
    )
    .await?;
    Ok(sent_at)
}

/// The `WHERE` of an update of one of the tenant's conversations (`conversations c`, with
/// `FROM agents a`): `$1` is the conversation, `$2` the tenant.
const TENANT_CONVERSATION: &str =
    "c.conversation_id = $1 AND a.agent_id = c.agent_id AND a.user_id = $2";

/// Records why the AI did not answer, for the dashboard (cleared by the next AI reply).
/// `reply_blocked_at` says since when: a repeated reason keeps its first time.
pub async fn block_replies(
    client: &impl GenericClient,
    user: &UserId,
    conversation_id: &ConversationId,
    reason: Option<ReplyBlockedReason>,
) -> Result<(), DbError> {
    client
        .execute(
            &format!(
                "UPDATE conversations c SET reply_blocked_reason = $3::varchar,
                     reply_blocked_at = CASE WHEN $3::varchar IS NULL THEN NULL ELSE CURRENT_TIMESTAMP END
                 FROM agents a
                 -- Every AI reply clears the reason; only write when there is one to clear.
                 WHERE {TENANT_CONVERSATION} AND c.reply_blocked_reason IS DISTINCT FROM $3::varchar"
            ),
            &[
                &conversation_id.as_str(),
                &user.as_str(),
                &reason.map(ReplyBlockedReason::as_str),
            ],
        )
        .await?;
    Ok(())
}

/// Stores the OpenAI conversation id the first reply created.
pub async fn set_openai_conversation(
    client: &impl GenericClient,
    user: &UserId,
    conversation_id: &ConversationId,
    openai_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            &format!(
                "UPDATE conversations c SET openai_conversation_id = $3 FROM agents a
                 WHERE {TENANT_CONVERSATION} AND c.openai_conversation_id IS NULL"
            ),
            &[&conversation_id.as_str(), &user.as_str(), &openai_id],
        )
        .await?;
    Ok(())
}

/// Gives one of the tenant's conversations to a person (or back to the AI); `false` when
/// the tenant has no such conversation (nothing changed).
pub async fn set_owner(
    client: &impl GenericClient,
    user: &UserId,
    conversation_id: &ConversationId,
    owner: ConversationOwner,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let updated = client
        .execute(
            &format!(
                "UPDATE conversations c
                 SET owner = $3, owner_changed_at = CURRENT_TIMESTAMP, handoff_reason = $4
                 FROM agents a WHERE {TENANT_CONVERSATION}"
            ),
            &[
                &conversation_id.as_str(),
                &user.as_str(),
                &owner.as_str(),
                &reason.map(replace_nul),
            ],
        )
        .await?;
    Ok(updated == 1)
}

/// Stores an agent message as `pending` with the next sequence number in one of the
/// tenant's conversations, linked to the inbound message it answers (if any). Returns its
/// id; `None` when the tenant has no such conversation (nothing is written).
pub async fn insert_agent_message(
    tx: &Transaction<'_>,
    user: &UserId,
    conversation_id: &ConversationId,
    text: &str,
    author: MessageAuthor,
    answering: Option<&str>,
) -> Result<Option<MessageId>, DbError> {
    let owned = tx
        .query_opt(
            "SELECT 1 FROM conversations c JOIN agents a ON a.agent_id = c.agent_id
             WHERE c.conversation_id = $1 AND a.user_id = $2
             FOR UPDATE OF c",
            &[&conversation_id.as_str(), &user.as_str()],
        )
        .await?;
    if owned.is_none() {
        return Ok(None);
    }
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
    // The conversation was locked above as the tenant's.
    tx.execute(
        "UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP WHERE conversation_id = $1",
        &[&conversation_id.as_str()],
    )
    .await?;
    if let Some(platform_message_id) = answering {
        tx.execute(
            "UPDATE inbound_messages SET reply_message_id = $2 WHERE platform_message_id = $1 AND user_id = $3",
            &[&platform_message_id, &message_id.as_str(), &user.as_str()],
        )
        .await?;
    }
    Ok(Some(message_id))
}

/// An agent message waiting to be sent.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub message_id: MessageId,
    pub text: String,
    pub status: MessageStatus,
}

impl OutgoingMessage {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        Ok(Self {
            message_id: MessageId::from_trusted(row.try_get("message_id")?),
            text: row.try_get("text")?,
            status: enum_column(row, "status")?,
        })
    }
}

/// The `FROM` and `WHERE` of a statement on one of the tenant's messages (`messages m`):
/// `$1` is the message, `$2` the tenant.
const TENANT_MESSAGE: &str = "conversations c, agents a
     WHERE m.message_id = $1 AND c.conversation_id = m.conversation_id
       AND a.agent_id = c.agent_id AND a.user_id = $2";

/// An agent message of `conversation_id` (`None` for another conversation's message, a
/// customer's message or no message at all). The caller has read the conversation as the
/// tenant's.
pub async fn agent_message_in(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    message_id: &MessageId,
) -> Result<Option<OutgoingMessage>, DbError> {
    let row = client
        .query_opt(
            "SELECT message_id, text, status FROM messages
             WHERE message_id = $1 AND conversation_id = $2 AND sender = 'agent'",
            &[&message_id.as_str(), &conversation_id.as_str()],
        )
        .await?;
    row.as_ref().map(OutgoingMessage::from_row).transpose()
}

/// Locks many messages for sending (in the caller's transaction, in id order so concurrent
/// callers cannot deadlock) and reads them: `(message id, tenant)` pairs; a message of
/// another tenant is left out of the answer.
pub async fn lock_outgoing_many(
    tx: &Transaction<'_>,
    messages: &[(&MessageId, &UserId)],
) -> Result<Vec<OutgoingMessage>, DbError> {
    let ids: Vec<&str> = messages.iter().map(|(m, _)| m.as_str()).collect();
    let users: Vec<&str> = messages.iter().map(|(_, u)| u.as_str()).collect();
    super::query_cached(
        tx,
        "SELECT m.message_id, m.text, m.status FROM messages m
           JOIN unnest($1::text[], $2::text[]) AS u(id, uid) ON m.message_id = u.id
           JOIN conversations c ON c.conversation_id = m.conversation_id
           JOIN agents a ON a.agent_id = c.agent_id AND a.user_id = u.uid
         ORDER BY m.message_id
         FOR UPDATE OF m",
        &[&ids, &users],
    )
    .await?
    .iter()
    .map(OutgoingMessage::from_row)
    .collect()
}

/// A message Meta accepted ([`mark_sent_many`]).
#[derive(Debug, Clone)]
pub struct SentMessage<'a> {
    /// The tenant: only its message is recorded (and its contact counted).
    pub user: &'a UserId,
    pub message_id: &'a MessageId,
    pub platform_message_id: &'a str,
    /// Whose contact counts the message.
    pub customer: CustomerIdentity,
}

/// Records that Meta accepted messages of their tenants: each `sent`, with its platform
/// id, a delivery-status row (`pending` until status webhooks arrive), and its contact's
/// counters; four statements whatever their number. Only messages still `pending` move
/// (and count).
pub async fn mark_sent_many(tx: &Transaction<'_>, sent: &[SentMessage<'_>]) -> Result<(), DbError> {
    if sent.is_empty() {
        return Ok(());
    }
    // The send has happened: an id we cannot store must not fail the recording (the job
    // would be retried and send again), so it is recorded as unknown instead: one too long
    // or holding a NUL, or one another message already holds (ids are unique; Meta's are
    // globally, a simulator's restarted counter's are not), here or in this batch.
    let mut seen = std::collections::HashSet::new();
    let platform_ids: Vec<Option<&str>> = sent
        .iter()
        .map(|s| {
            let id = storable_platform_id(s.platform_message_id)?;
            if seen.insert(id) {
                Some(id)
            } else {
                warn_id_taken(s.message_id.as_str());
                None
            }
        })
        .collect();
    let message_ids: Vec<&str> = sent.iter().map(|s| s.message_id.as_str()).collect();
    let users: Vec<&str> = sent.iter().map(|s| s.user.as_str()).collect();
    let updated = super::query_cached(
        tx,
        "UPDATE messages m SET status = 'sent', error_code = NULL, send_failure = NULL,
                 platform_message_id = CASE WHEN EXISTS (
                     SELECT 1 FROM messages o
                      WHERE o.platform_message_id = u.p AND o.message_id <> m.message_id)
                     THEN NULL ELSE u.p END
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, uid, p),
                  conversations c, agents a
             WHERE m.message_id = u.id AND c.conversation_id = m.conversation_id
               AND a.agent_id = c.agent_id AND a.user_id = u.uid AND m.status = 'pending'
             RETURNING m.message_id, m.platform_message_id",
        &[&message_ids, &users, &platform_ids],
    )
    .await?;
    let mut stored_ids = Vec::with_capacity(updated.len());
    let mut stored_platform_ids: Vec<Option<String>> = Vec::with_capacity(updated.len());
    for row in &updated {
        let message_id: String = row.try_get("message_id")?;
        let stored: Option<String> = row.try_get("platform_message_id")?;
        let given = sent
            .iter()
            .zip(&platform_ids)
            .any(|(s, id)| s.message_id.as_str() == message_id && id.is_some());
        if stored.is_none() && given {
            warn_id_taken(&message_id);
        }
        stored_ids.push(message_id);
        stored_platform_ids.push(stored);
    }
    if stored_ids.is_empty() {
        return Ok(());
    }
    super::execute_cached(
        tx,
        "INSERT INTO message_delivery_status (message_id, platform_message_id, status)
         SELECT id, p, 'pending' FROM unnest($1::text[], $2::text[]) AS u(id, p)
         ON CONFLICT (message_id) DO UPDATE
             SET platform_message_id = EXCLUDED.platform_message_id, error_message = NULL,
                 updated_at = CURRENT_TIMESTAMP",
        &[&stored_ids, &stored_platform_ids],
    )
    .await?;
    let counted: Vec<(&UserId, &CustomerIdentity)> = sent
        .iter()
        .filter(|s| stored_ids.iter().any(|id| id == s.message_id.as_str()))
        .map(|s| (s.user, &s.customer))
        .collect();
    super::contacts::count_sent_many(tx, &counted).await
}

fn warn_id_taken(message_id: &str) {
    tracing::warn!(
        message.id = %message_id,
        "the provider's id of a sent message is already another message's; recorded without it"
    );
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

/// Records a failed send of one of the tenant's messages with Meta's code and its class.
/// `permanent`: the message becomes `failed`, and so does its delivery-status row, with the
/// reason. `retryable`: the message stays `pending` (a later attempt sends it or fails it for
/// good) and its delivery-status row, still `pending`, says why. Only a message still
/// `pending` is touched.
pub async fn mark_send_failure(
    client: &impl GenericClient,
    user: &UserId,
    message_id: &MessageId,
    class: SendFailure,
    code: Option<String>,
    error: &str,
) -> Result<(), DbError> {
    let status = match class {
        SendFailure::Permanent => MessageStatus::Failed,
        SendFailure::Retryable => MessageStatus::Pending,
    };
    let updated = super::execute_cached(
        client,
        &format!(
            "UPDATE messages m SET status = $3, error_code = $4, send_failure = $5
                 FROM {TENANT_MESSAGE} AND m.status = 'pending'"
        ),
        &[
            &message_id.as_str(),
            &user.as_str(),
            &status.as_str(),
            &code,
            &class.as_str(),
        ],
    )
    .await?;
    if updated == 0 {
        return Ok(());
    }
    super::execute_cached(client, "INSERT INTO message_delivery_status (message_id, status, error_message) VALUES ($1, $2, $3)
             ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status,
                 error_message = EXCLUDED.error_message, updated_at = CURRENT_TIMESTAMP",
            &[&message_id.as_str(), &status.as_str(), &replace_nul(error)],
        )
        .await?;
    Ok(())
}
