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

use tokio_postgres::types::ToSql;

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

/// The start of a status update of a template send or a campaign recipient (the row is `x`):
/// the status (`$2`), and the timestamps of every step it reaches (`sent_at`,
/// `delivered_at`, `read_at`, each set once, to `$3`, when `$4`, `$5`, `$6` say it reaches
/// them). `$1` is the row's id; the statement goes on from `$7`.
const SET_STATUS_AND_STEPS: &str = "SET status = $2,
     sent_at = CASE WHEN $4 THEN COALESCE(x.sent_at, $3) ELSE x.sent_at END,
     delivered_at = CASE WHEN $5 THEN COALESCE(x.delivered_at, $3) ELSE x.delivered_at END,
     read_at = CASE WHEN $6 THEN COALESCE(x.read_at, $3) ELSE x.read_at END";

/// Runs a statement that starts with [`SET_STATUS_AND_STEPS`] for the row `id` moving to
/// `status` at `update`'s time, with `rest` as `$7`, `$8`, …; returns the rows changed.
async fn set_status_and_steps(
    tx: &Transaction<'_>,
    statement: &str,
    id: &str,
    status: impl DeliveryOrdered,
    update: &StatusUpdate,
    rest: &[&(dyn ToSql + Sync)],
) -> Result<u64, DbError> {
    let steps = [
        DeliveryStep::Sent,
        DeliveryStep::Delivered,
        DeliveryStep::Read,
    ];
    let [sent, delivered, read] =
        steps.map(|level| DeliveryStep::reaches(None, status.step(), level));
    let status = status.status_str();
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&id, &status, &update.timestamp, &sent, &delivered, &read];
    params.extend_from_slice(rest);
    super::execute_cached(tx, statement, &params).await
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

    let message_rows = super::query_cached(tx, "UPDATE message_delivery_status d
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
            super::execute_cached(
                tx,
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
    let send = super::query_opt_cached(
        tx,
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
        let changed = set_status_and_steps(
            tx,
            &format!(
                "UPDATE template_sends x {SET_STATUS_AND_STEPS},
                     error_message = COALESCE($7, x.error_message),
                     error_code = COALESCE($9, x.error_code)
                 FROM templates t
                 WHERE x.send_id = $1 AND t.template_id = x.template_id AND t.user_id = $8
                   AND delivery_status_advances(x.status, $2)"
            ),
            send_id.as_str(),
            send_status,
            update,
            &[&error_text, &tenant, &error_code],
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
/// campaign's counter shard (`db::campaigns::count_move`): a jump from SENT to READ counts
/// as delivered and read.
async fn advance_recipient(
    tx: &Transaction<'_>,
    channel: &ChannelRoute,
    send_id: &TemplateSendId,
    update: &StatusUpdate,
    error_text: Option<&str>,
) -> Result<(), DbError> {
    let tenant = channel.user_id.as_str();
    let Some(recipient) = super::query_opt_cached(
        tx,
        // The send's recipient first, by its own index, then the tenant check: with
        // statistics still counting a fresh campaign as small, a join let the planner
        // walk the whole campaign's recipients instead.
        "WITH r AS MATERIALIZED (
             SELECT recipient_id, campaign_id, status FROM campaign_recipients
             WHERE template_send_id = $1 FOR UPDATE)
         SELECT r.recipient_id, r.campaign_id, r.status FROM r
           JOIN campaigns cm ON cm.campaign_id = r.campaign_id
         WHERE cm.user_id = $2",
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
    let changed = set_status_and_steps(
        tx,
        &format!(
            "UPDATE campaign_recipients x {SET_STATUS_AND_STEPS},
                 error_message = COALESCE($7, x.error_message)
             FROM campaigns cm
             WHERE x.recipient_id = $1 AND cm.campaign_id = x.campaign_id AND cm.user_id = $8
               AND delivery_status_advances(x.status, $2)"
        ),
        recipient_id.as_str(),
        status,
        update,
        &[&error_text, &tenant],
    )
    .await?;
    if changed == 0 {
        return Ok(());
    }
    super::campaigns::count_move(tx, &campaign_id, &recipient_id, previous, status).await?;
    Ok(())
}
