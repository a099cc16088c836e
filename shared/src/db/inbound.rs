//! The webhook's inbox (`inbound_messages`) and the routing of provider ids to channels.
//! Routing is the one place a query is not scoped by a tenant from a token: the tenant *is*
//! the owner of the channel the provider id names.

use super::{DbError, GenericClient, enum_column};
use crate::{
    domain::{InboundState, PhoneNumberId, Platform, UserId},
    meta::webhook::InboundMessage,
};

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
        let user_id: String = row.try_get("user_id")?;
        Ok(ChannelRoute {
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("id")?),
            user_id: UserId::parse(&user_id).ok_or(DbError::Corrupt {
                column: "phone_numbers.user_id",
                detail: "not a valid user id".to_owned(),
            })?,
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

/// Notes that the reply job was published (unless the worker already finished it).
pub async fn mark_enqueued(
    client: &impl GenericClient,
    platform_message_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE inbound_messages SET state = 'enqueued'
             WHERE platform_message_id = $1 AND state = 'received'",
            &[&platform_message_id],
        )
        .await?;
    Ok(())
}
