//! Delivery statuses from Meta's webhooks, applied to `message_delivery_status`,
//! `template_sends`, `campaign_recipients` and the campaign counters. Statuses never move
//! backwards: a late `delivered` after `read` changes nothing, and a status for an id we do
//! not know is acknowledged without effect. The order is [`DeliveryStep`]'s; the conditional
//! updates apply it in SQL (`delivery_status_advances`, which a test keeps equal to it), so
//! two concurrent statuses of one message cannot both win.
//!
//! A status moves only what was sent on the channel that reports it (the `metadata.
//! phone_number_id` of the webhook): a tenant's other channels are never touched, even if
//! an id matched there. Every statement filters by the channel's tenant.

use super::{DbError, Transaction, enum_column, inbound::ChannelRoute};
use crate::domain::{
    CampaignId, CampaignRecipientId, DeliveryOrdered, DeliveryStatus, DeliveryStep, MessageId,
    RecipientStatus, StatusUpdate, TemplateSendId, TemplateSendStatus,
};

/// What a status changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOutcome {
    /// A conversation message's delivery status moved forward.
    pub message_updated: bool,
    /// A template send (and its campaign recipient, if any) moved forward.
    pub template_send_updated: bool,
}

/// Which of the timestamps (`sent_at`, `delivered_at`, `read_at`) a status sets: those of
/// every step it reaches.
fn reached(step: Option<DeliveryStep>) -> [bool; 3] {
    [
        DeliveryStep::Sent,
        DeliveryStep::Delivered,
        DeliveryStep::Read,
    ]
    .map(|level| DeliveryStep::reaches(None, step, level))
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
    let error_text = update.error_text();
    let error_code = update.error_code();

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
            &[
                &update.platform_message_id,
                &update.status.as_str(),
                &error_text,
                &tenant,
                &channel_id,
            ],
        )
        .await?;
    if update.status == DeliveryStatus::Failed {
        for row in &message_rows {
            let message_id = MessageId::from_trusted(row.try_get("message_id")?);
            tx.execute(
                "UPDATE messages m SET status = 'failed', error_code = $2
                 FROM conversations c, agents a
                 WHERE m.message_id = $1 AND c.conversation_id = m.conversation_id
                   AND a.agent_id = c.agent_id AND a.user_id = $3",
                &[&message_id.as_str(), &error_code, &tenant],
            )
            .await?;
        }
    }

    let send_status = TemplateSendStatus::from(update.status);
    let send = tx
        .query_opt(
            "SELECT ts.send_id FROM template_sends ts
             JOIN templates t ON t.template_id = ts.template_id
             WHERE ts.platform_message_id = $1 AND t.user_id = $2 AND t.phone_number_id = $3
             FOR UPDATE OF ts",
            &[&update.platform_message_id, &tenant, &channel_id],
        )
        .await?;
    let mut template_send_updated = false;
    if let Some(send) = send {
        let send_id = TemplateSendId::from_trusted(send.try_get("send_id")?);
        let [sets_sent, sets_delivered, sets_read] = reached(send_status.step());
        let changed = tx
            .execute(
                "UPDATE template_sends ts SET status = $2,
                     sent_at = CASE WHEN $6 THEN COALESCE(ts.sent_at, $3) ELSE ts.sent_at END,
                     delivered_at = CASE WHEN $7 THEN COALESCE(ts.delivered_at, $3) ELSE ts.delivered_at END,
                     read_at = CASE WHEN $8 THEN COALESCE(ts.read_at, $3) ELSE ts.read_at END,
                     error_code = COALESCE($4, ts.error_code),
                     error_message = COALESCE($5, ts.error_message)
                 FROM templates t
                 WHERE ts.send_id = $1 AND t.template_id = ts.template_id AND t.user_id = $9
                   AND delivery_status_advances(ts.status, $2)",
                &[
                    &send_id.as_str(),
                    &send_status.as_str(),
                    &update.timestamp,
                    &error_code,
                    &error_text,
                    &sets_sent,
                    &sets_delivered,
                    &sets_read,
                    &tenant,
                ],
            )
            .await?;
        template_send_updated = changed == 1;
        if template_send_updated {
            advance_recipient(tx, channel, &send_id, update, error_text.as_deref()).await?;
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
    channel: &ChannelRoute,
    send_id: &TemplateSendId,
    update: &StatusUpdate,
    error_text: Option<&str>,
) -> Result<(), DbError> {
    let tenant = channel.user_id.as_str();
    let Some(recipient) = tx
        .query_opt(
            "SELECT r.recipient_id, r.campaign_id, r.status FROM campaign_recipients r
             JOIN campaigns cm ON cm.campaign_id = r.campaign_id
             WHERE r.template_send_id = $1 AND cm.user_id = $2
             FOR UPDATE OF r",
            &[&send_id.as_str(), &tenant],
        )
        .await?
    else {
        return Ok(());
    };
    let recipient_id = CampaignRecipientId::from_trusted(recipient.try_get("recipient_id")?);
    let campaign_id = CampaignId::from_trusted(recipient.try_get("campaign_id")?);
    let previous: RecipientStatus = enum_column(&recipient, "status")?;
    let status = RecipientStatus::from(update.status);
    let [sets_sent, sets_delivered, sets_read] = reached(status.step());
    let changed = tx
        .execute(
            "UPDATE campaign_recipients r SET status = $2,
                 sent_at = CASE WHEN $5 THEN COALESCE(r.sent_at, $3) ELSE r.sent_at END,
                 delivered_at = CASE WHEN $6 THEN COALESCE(r.delivered_at, $3) ELSE r.delivered_at END,
                 read_at = CASE WHEN $7 THEN COALESCE(r.read_at, $3) ELSE r.read_at END,
                 error_message = COALESCE($4, r.error_message)
             FROM campaigns cm
             WHERE r.recipient_id = $1 AND cm.campaign_id = r.campaign_id AND cm.user_id = $8
               AND delivery_status_advances(r.status, $2)",
            &[
                &recipient_id.as_str(),
                &status.as_str(),
                &update.timestamp,
                &error_text,
                &sets_sent,
                &sets_delivered,
                &sets_read,
                &tenant,
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(());
    }
    let (before, after) = (previous.step(), status.step());
    let counts = |level| i32::from(DeliveryStep::reaches(before, after, level));
    tx.execute(
        "UPDATE campaigns SET
             sent_count = sent_count + $2,
             delivered_count = delivered_count + $3,
             read_count = read_count + $4,
             failed_count = failed_count + $5
         WHERE campaign_id = $1 AND user_id = $6",
        &[
            &campaign_id.as_str(),
            &counts(DeliveryStep::Sent),
            &counts(DeliveryStep::Delivered),
            &counts(DeliveryStep::Read),
            &i32::from(status == RecipientStatus::Failed),
            &tenant,
        ],
    )
    .await?;
    Ok(())
}
