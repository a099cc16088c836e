//! Delivery statuses from Meta's webhooks, applied to `message_delivery_status`,
//! `template_sends`, `campaign_recipients` and the campaign counters. Statuses never move
//! backwards (`delivery_status_advances` in SQL): a late `delivered` after `read` changes
//! nothing, and a status for an id we do not know is acknowledged without effect.
//!
//! A status moves only what was sent on the channel that reports it (the `metadata.
//! phone_number_id` of the webhook): a tenant's other channels are never touched, even if
//! an id matched there.

use super::{DbError, Transaction, inbound::ChannelRoute};
use crate::{domain::DeliveryStatus, meta::webhook::StatusUpdate};

/// What a status changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOutcome {
    /// A conversation message's delivery status moved forward.
    pub message_updated: bool,
    /// A template send (and its campaign recipient, if any) moved forward.
    pub template_send_updated: bool,
}

/// Applies one status, to messages and template sends of `channel` only (and so of its
/// tenant only).
pub async fn apply(
    tx: &Transaction<'_>,
    channel: &ChannelRoute,
    update: &StatusUpdate,
) -> Result<StatusOutcome, DbError> {
    let tenant = channel.user_id.as_str();
    let channel_id = channel.phone_number_id.as_str();
    let error_text = (!update.errors.is_empty()).then(|| {
        update
            .errors
            .iter()
            .map(|e| e.describe())
            .collect::<Vec<_>>()
            .join("; ")
    });
    let error_code = update.errors.first().map(|e| e.code.to_string());
    let status = update.status.as_str();

    let message_rows = tx
        .query(
            "UPDATE message_delivery_status d
             SET status = $2, error_message = COALESCE($3, d.error_message), updated_at = CURRENT_TIMESTAMP
             FROM messages m
             JOIN conversations c ON c.conversation_id = m.conversation_id
             JOIN agents a ON a.agent_id = c.agent_id
             WHERE d.platform_message_id = $1 AND m.message_id = d.message_id AND a.user_id = $4
               AND a.phone_number_id = $5
               AND delivery_status_advances(d.status, $2)
             RETURNING d.message_id",
            &[&update.platform_message_id, &status, &error_text, &tenant, &channel_id],
        )
        .await?;
    if update.status == DeliveryStatus::Failed {
        for row in &message_rows {
            let message_id: String = row.try_get("message_id")?;
            tx.execute(
                "UPDATE messages SET status = 'failed', error_code = $2 WHERE message_id = $1",
                &[&message_id, &error_code],
            )
            .await?;
        }
    }

    let upper = status.to_ascii_uppercase();
    let send = tx
        .query_opt(
            "SELECT ts.send_id, ts.status FROM template_sends ts
             JOIN templates t ON t.template_id = ts.template_id
             WHERE ts.platform_message_id = $1 AND t.user_id = $2 AND t.phone_number_id = $3
             FOR UPDATE OF ts",
            &[&update.platform_message_id, &tenant, &channel_id],
        )
        .await?;
    let mut template_send_updated = false;
    if let Some(send) = send {
        let send_id: String = send.try_get("send_id")?;
        let changed = tx
            .execute(
                "UPDATE template_sends SET status = $2,
                     sent_at = CASE WHEN $2 IN ('SENT', 'DELIVERED', 'READ') THEN COALESCE(sent_at, $3) ELSE sent_at END,
                     delivered_at = CASE WHEN $2 IN ('DELIVERED', 'READ') THEN COALESCE(delivered_at, $3) ELSE delivered_at END,
                     read_at = CASE WHEN $2 = 'READ' THEN COALESCE(read_at, $3) ELSE read_at END,
                     error_code = COALESCE($4, error_code),
                     error_message = COALESCE($5, error_message)
                 WHERE send_id = $1 AND delivery_status_advances(status, $2)",
                &[&send_id, &upper, &update.timestamp, &error_code, &error_text],
            )
            .await?;
        template_send_updated = changed == 1;
        if template_send_updated {
            advance_recipient(tx, &send_id, &upper, update, error_text.as_deref()).await?;
        }
    }
    Ok(StatusOutcome {
        message_updated: !message_rows.is_empty(),
        template_send_updated,
    })
}

/// Moves the campaign recipient of a template send forward and counts the move in its
/// campaign: a jump from SENT to READ counts as delivered and read.
async fn advance_recipient(
    tx: &Transaction<'_>,
    send_id: &str,
    status: &str,
    update: &StatusUpdate,
    error_text: Option<&str>,
) -> Result<(), DbError> {
    let Some(recipient) = tx
        .query_opt(
            "SELECT recipient_id, campaign_id, status FROM campaign_recipients
             WHERE template_send_id = $1 FOR UPDATE",
            &[&send_id],
        )
        .await?
    else {
        return Ok(());
    };
    let recipient_id: String = recipient.try_get("recipient_id")?;
    let campaign_id: String = recipient.try_get("campaign_id")?;
    let previous: String = recipient.try_get("status")?;
    let changed = tx
        .execute(
            "UPDATE campaign_recipients SET status = $2,
                 sent_at = CASE WHEN $2 IN ('SENT', 'DELIVERED', 'READ') THEN COALESCE(sent_at, $3) ELSE sent_at END,
                 delivered_at = CASE WHEN $2 IN ('DELIVERED', 'READ') THEN COALESCE(delivered_at, $3) ELSE delivered_at END,
                 read_at = CASE WHEN $2 = 'READ' THEN COALESCE(read_at, $3) ELSE read_at END,
                 error_message = COALESCE($4, error_message)
             WHERE recipient_id = $1 AND delivery_status_advances(status, $2)",
            &[&recipient_id, &status, &update.timestamp, &error_text],
        )
        .await?;
    if changed == 0 {
        return Ok(());
    }
    let rank = |s: &str| match s {
        "SENT" => 1,
        "DELIVERED" => 2,
        "READ" => 3,
        _ => 0,
    };
    let (before, after) = (rank(&previous), rank(status));
    let reached = |level: i32| i32::from(before < level && after >= level);
    tx.execute(
        "UPDATE campaigns SET
             sent_count = sent_count + $2,
             delivered_count = delivered_count + $3,
             read_count = read_count + $4,
             failed_count = failed_count + $5
         WHERE campaign_id = $1",
        &[
            &campaign_id,
            &reached(1),
            &reached(2),
            &reached(3),
            &i32::from(status == "FAILED"),
        ],
    )
    .await?;
    Ok(())
}
