//! The webhook's inbox (`inbound_messages`) and the routing of provider ids to channels.
//! Routing is one place a query is not scoped by a tenant from a token: the tenant *is* the
//! owner of the channel the provider id names. Reading an inbox row by the reply job's key
//! ([`get`]) is the other: the row names its tenant, and every write after it is scoped to
//! that tenant.

use super::{DbError, GenericClient, enum_column, user_column};
use crate::domain::{
    InboundMessage, InboundOutcome, InboundState, MessageId, PhoneNumberId, Platform, UserId,
};

/// An inbox row, as the worker reads it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub platform_message_id: String,
    pub user_id: UserId,
    pub phone_number_id: PhoneNumberId,
    pub customer_id: String,
    pub customer_name: Option<String>,
    pub text: String,
    pub state: InboundState,
    pub credit_taken: bool,
    pub reply_message_id: Option<MessageId>,
}

/// Reads an inbox row by its provider id (the reply job's key).
pub async fn get(
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
            user_id: user_column(&row, "user_id")?,
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
            customer_id: row.try_get("customer_id")?,
            customer_name: row.try_get("customer_name")?,
            text: row.try_get("text")?,
            state: enum_column(&row, "state")?,
            credit_taken: row.try_get("credit_taken")?,
            reply_message_id: row
                .try_get::<_, Option<String>>("reply_message_id")?
                .map(MessageId::from_trusted),
        })
    })
    .transpose()
}

/// Marks one of the tenant's inbox rows finished with `outcome` (idempotent).
pub async fn finish(
    client: &impl GenericClient,
    user: &UserId,
    platform_message_id: &str,
    outcome: InboundOutcome,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages SET state = 'done', outcome = $3, attempts = attempts + 1
             WHERE platform_message_id = $1 AND user_id = $2 AND state <> 'done'",
            &[&platform_message_id, &user.as_str(), &outcome.as_str()],
        )
        .await?;
    Ok(())
}

/// Marks one of the tenant's inbox rows finished for good with a failure `outcome` and its
/// reason (idempotent), so it is never retried and never blocks the customer's later
/// messages.
pub async fn finish_failed(
    client: &impl GenericClient,
    user: &UserId,
    platform_message_id: &str,
    outcome: InboundOutcome,
    reason: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages
                SET state = 'done', outcome = $3, failure_reason = $4, attempts = attempts + 1
              WHERE platform_message_id = $1 AND user_id = $2 AND state <> 'done'",
            &[
                &platform_message_id,
                &user.as_str(),
                &outcome.as_str(),
                &reason,
            ],
        )
        .await?;
    Ok(())
}

/// A channel found by its provider id, with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRoute {
    pub phone_number_id: PhoneNumberId,
    pub user_id: UserId,
    pub platform: Platform,
}

/// Finds the channel a webhook event is for.
pub async fn route(
    client: &impl GenericClient,
    platform: Platform,
    channel_key: &str,
) -> Result<Option<ChannelRoute>, DbError> {
    let row = client
        .query_opt(
            "SELECT id, user_id FROM phone_numbers WHERE platform = $1 AND meta_phone_number_id = $2",
            &[&platform.as_str(), &channel_key],
        )
        .await?;
    row.map(|row| {
        Ok(ChannelRoute {
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("id")?),
            user_id: user_column(&row, "user_id")?,
            platform,
        })
    })
    .transpose()
}

/// What recording an inbound message found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First delivery: the row was written now; publish its reply job.
    New,
    /// Seen before, but its reply job was never published (the queue failed, or the
    /// function died in between): publish it now.
    Unpublished,
    /// Seen before and its job was published (or it is done): nothing to do. SQS redelivers
    /// a job whose worker failed; the webhook does not publish it twice.
    AlreadyQueued,
}

/// Writes the inbox row of a message, once per provider message id.
pub async fn record(
    client: &impl GenericClient,
    channel: &ChannelRoute,
    message: &InboundMessage,
) -> Result<Recorded, DbError> {
    let inserted = client
        .execute(
            "INSERT INTO inbound_messages
                 (platform_message_id, user_id, phone_number_id, customer_id, customer_name,
                  message_type, text, metadata, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (platform_message_id) DO NOTHING",
            &[
                &message.platform_message_id,
                &channel.user_id.as_str(),
                &channel.phone_number_id.as_str(),
                &message.customer_id,
                &message.customer_name,
                &message.message_type,
                &message.text,
                &message.metadata,
                &message.sent_at,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(Recorded::New);
    }
    // Scoped to the channel: a provider id another channel already used is not ours to touch.
    let row = client
        .query_opt(
            "SELECT state FROM inbound_messages WHERE platform_message_id = $1 AND phone_number_id = $2",
            &[&message.platform_message_id, &channel.phone_number_id.as_str()],
        )
        .await?;
    Ok(match row {
        Some(row) if enum_column::<InboundState>(&row, "state")? == InboundState::Received => {
            Recorded::Unpublished
        }
        _ => Recorded::AlreadyQueued,
    })
}

/// Notes that the reply job of a message on `channel` was published (unless the worker
/// already finished it).
pub async fn mark_enqueued(
    client: &impl GenericClient,
    channel: &ChannelRoute,
    platform_message_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages SET state = 'enqueued'
             WHERE platform_message_id = $1 AND user_id = $2 AND phone_number_id = $3
               AND state = 'received'",
            &[
                &platform_message_id,
                &channel.user_id.as_str(),
                &channel.phone_number_id.as_str(),
            ],
        )
        .await?;
    Ok(())
}
