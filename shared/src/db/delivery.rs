//! Delivery statuses from Meta's webhooks, applied to `message_delivery_status`,
//! `template_sends`, `campaign_recipients` and the campaign counters. Statuses never move
//! backwards: a late `delivered` after `read` changes nothing, and a status for an id we do
//! not know yet waits for its send (`parked_statuses`). The order is [`DeliveryStep`]'s;
//! the conditional updates apply it in SQL (`delivery_status_advances`, which a test keeps
//! equal to it), so two concurrent statuses of one message cannot both win.
//!
//! A status moves only what was sent on the channel that reports it (the `metadata.
//! phone_number_id` of the webhook): a tenant's other channels are never touched, even if
//! an id matched there. Every statement filters by the channel's tenant.

use super::{DbError, GenericClient, campaigns, inbound::ChannelRoute};
use crate::domain::{
    DeliveryOrdered, DeliveryStatus, DeliveryStep, PhoneNumberId, Platform, RecipientStatus,
    StatusUpdate, TemplateSendStatus,
};

/// What a status changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOutcome {
    /// A conversation message's delivery status moved forward.
    pub message_updated: bool,
    /// A template send (and its campaign recipient, if any) moved forward.
    pub template_send_updated: bool,
    /// No send has this wamid yet: the status waits for it (`parked_statuses`).
    pub parked: bool,
}

/// One status, in one statement (its own atomic unit: no transaction needed around it):
/// - `msg`: the conversation message's delivery status moves forward, found by its wamid,
///   then checked against the tenant row by row (a scalar subquery: as a join, with
///   statistics that still counted fresh tables as small, the planner walked all the
///   tenant's conversations and messages instead, up to 0.28 s per status after a
///   20,000-send campaign: the slow benchmark runs); on `failed`, `failed_msg` marks the
///   message too;
/// - `ts`: the template send moves forward (no lock first: the conditional UPDATE is the
///   lock, and two statuses of one send queue on it);
/// - `r`: the send's campaign recipient, locked, by its own index first (with statistics
///   still counting a fresh campaign as small, a join let the planner walk the whole
///   campaign's recipients instead); locking returns its latest version, so `previous` is
///   the status the move really starts from, even right after a concurrent status;
/// - `moved`: the recipient moves forward, only if its send did;
/// - `counted`: the move counted on a counter shard, with the counts the caller computed
///   for each status the recipient may have come from (`$17`…`$21`, `$24`: a jump from
///   SENT to READ counts delivered and read once each);
/// - `parked`: a status for a wamid no table knows yet (its send is not recorded yet: see
///   V22) is kept, when `$23` says so, with its errors (`$22`), for [`apply_parked`].
///
/// `$3`…`$5` and `$9`…`$11` say which steps (sent, delivered, read) the template send and
/// the recipient reach, each timestamp set once to `$12`.
const APPLY: &str = "WITH msg AS (
         UPDATE message_delivery_status d
         SET status = $2, error_message = COALESCE($13, d.error_message), updated_at = CURRENT_TIMESTAMP
         WHERE d.platform_message_id = $1 AND delivery_status_advances(d.status, $2)
           -- A scalar subquery runs per row found (a join would be reordered).
           AND (SELECT a.user_id = $15 AND a.phone_number_id = $16
                FROM messages m
                JOIN conversations c ON c.conversation_id = m.conversation_id
                JOIN agents a ON a.agent_id = c.agent_id
                WHERE m.message_id = d.message_id)
         RETURNING d.message_id),
     failed_msg AS (
         UPDATE messages m SET status = 'failed', error_code = $14
         FROM msg WHERE $2 = 'failed' AND m.message_id = msg.message_id
         RETURNING m.message_id),
     ts AS (
         UPDATE template_sends x SET status = $6,
             sent_at = CASE WHEN $3 THEN COALESCE(x.sent_at, $12) ELSE x.sent_at END,
             delivered_at = CASE WHEN $4 THEN COALESCE(x.delivered_at, $12) ELSE x.delivered_at END,
             read_at = CASE WHEN $5 THEN COALESCE(x.read_at, $12) ELSE x.read_at END,
             error_message = COALESCE($13, x.error_message),
             error_code = COALESCE($14, x.error_code)
         FROM templates t
         WHERE x.platform_message_id = $1 AND t.template_id = x.template_id
           AND t.user_id = $15 AND t.phone_number_id = $16
           AND delivery_status_advances(x.status, $6)
         RETURNING x.send_id),
     r AS MATERIALIZED (
         SELECT recipient_id, campaign_id, status FROM campaign_recipients
         WHERE template_send_id IN (SELECT send_id FROM ts)
         FOR UPDATE),
     moved AS (
         UPDATE campaign_recipients x SET status = $7,
             sent_at = CASE WHEN $9 THEN COALESCE(x.sent_at, $12) ELSE x.sent_at END,
             delivered_at = CASE WHEN $10 THEN COALESCE(x.delivered_at, $12) ELSE x.delivered_at END,
             read_at = CASE WHEN $11 THEN COALESCE(x.read_at, $12) ELSE x.read_at END,
             error_message = COALESCE($13, x.error_message),
             error_code = COALESCE($14, x.error_code)
         FROM r JOIN campaigns cm ON cm.campaign_id = r.campaign_id
         WHERE x.recipient_id = r.recipient_id AND cm.user_id = $15
           AND delivery_status_advances(x.status, $7)
         RETURNING x.campaign_id, r.status AS previous),
     counted AS (
         INSERT INTO campaign_counters AS k
             (campaign_id, shard, sent, delivered, read, failed, skipped, failed_after_sent)
         SELECT moved.campaign_id, $8::smallint, n.sent, n.delivered, n.read, n.failed, 0,
                n.failed_after_sent
         FROM moved
         JOIN unnest($17::text[], $18::int[], $19::int[], $20::int[], $21::int[], $24::int[])
             AS n (previous, sent, delivered, read, failed, failed_after_sent)
             ON n.previous = moved.previous
         ON CONFLICT (campaign_id, shard) DO UPDATE SET
             sent = k.sent + EXCLUDED.sent, delivered = k.delivered + EXCLUDED.delivered,
             read = k.read + EXCLUDED.read, failed = k.failed + EXCLUDED.failed,
             failed_after_sent = k.failed_after_sent + EXCLUDED.failed_after_sent
         RETURNING 1),
     parked AS (
         INSERT INTO parked_statuses
             (platform_message_id, user_id, phone_number_id, status, occurred_at, errors)
         SELECT $1, $15, $16, $2, $12, $22::jsonb
         WHERE $23
           AND NOT EXISTS (SELECT 1 FROM message_delivery_status WHERE platform_message_id = $1)
           AND NOT EXISTS (SELECT 1 FROM template_sends WHERE platform_message_id = $1)
         RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM msg) AS message_updated,
            EXISTS (SELECT 1 FROM ts) AS template_send_updated,
            EXISTS (SELECT 1 FROM parked) AS parked";

/// Which of the steps sent, delivered and read a move to `status` reaches.
fn steps_reached(status: impl DeliveryOrdered) -> [bool; 3] {
    [
        DeliveryStep::Sent,
        DeliveryStep::Delivered,
        DeliveryStep::Read,
    ]
    .map(|level| DeliveryStep::reaches(None, status.step(), level))
}

/// Applies one status, to messages and template sends of `channel` only (and so of its
/// tenant only), in one statement ([`APPLY`]); a status for a wamid not recorded yet is
/// parked for [`apply_parked`].
pub async fn apply(
    client: &impl GenericClient,
    channel: &ChannelRoute,
    update: &StatusUpdate,
) -> Result<StatusOutcome, DbError> {
    apply_or_park(client, channel, update, true).await
}

async fn apply_or_park(
    client: &impl GenericClient,
    channel: &ChannelRoute,
    update: &StatusUpdate,
    park: bool,
) -> Result<StatusOutcome, DbError> {
    let send_status = TemplateSendStatus::from(update.status);
    let recipient_status = RecipientStatus::from(update.status);
    let [send_sent, send_delivered, send_read] = steps_reached(send_status);
    let [sent, delivered, read] = steps_reached(recipient_status);
    // What the recipient's move counts, for each status it may come from.
    let moves = campaigns::CountedMoves::to(recipient_status);
    let row = super::query_one_cached(
        client,
        APPLY,
        &[
            &update.platform_message_id,
            &update.status.as_str(),
            &send_sent,
            &send_delivered,
            &send_read,
            &send_status.as_str(),
            &recipient_status.as_str(),
            // Any shard counts (counters are read as sums); the id spreads the statuses.
            &campaigns::shard_of(&update.platform_message_id),
            &sent,
            &delivered,
            &read,
            &update.timestamp,
            &update.error_text(),
            &update.error_code(),
            &channel.user_id.as_str(),
            &channel.phone_number_id.as_str(),
            &moves.previous,
            &moves.sent,
            &moves.delivered,
            &moves.read,
            &moves.failed,
            &serde_json::to_value(&update.errors).unwrap_or_default(),
            &park,
            &moves.failed_after_sent,
        ],
    )
    .await?;
    Ok(StatusOutcome {
        message_updated: row.try_get("message_updated")?,
        template_send_updated: row.try_get("template_send_updated")?,
        parked: row.try_get("parked")?,
    })
}

/// How long a parked status waits for its send before the sweep forgets it.
pub const PARKED_STATUS_HOURS: i32 = 24;

/// Applies, in the order they happened, the statuses parked for `wamids` (their sends are
/// now recorded), and forgets them; how many were applied. One transaction: a status is
/// never both forgotten and unapplied.
pub async fn apply_parked(
    client: &mut super::PooledClient,
    wamids: &[&str],
) -> Result<usize, DbError> {
    if wamids.is_empty() {
        return Ok(0);
    }
    // Nearly always nothing waits: one probe, no transaction.
    let waiting: bool = super::query_one_cached(
        &*client,
        "SELECT EXISTS (SELECT 1 FROM parked_statuses WHERE platform_message_id = ANY($1))",
        &[&wamids],
    )
    .await?
    .try_get(0)?;
    if !waiting {
        return Ok(0);
    }
    let tx = client.transaction().await?;
    let rows = super::query_cached(
        &tx,
        "DELETE FROM parked_statuses WHERE platform_message_id = ANY($1)
         RETURNING platform_message_id, user_id, phone_number_id, status, occurred_at, errors, parked_id",
        &[&wamids],
    )
    .await?;
    let applied = apply_rows(&tx, rows).await?;
    tx.commit().await?;
    Ok(applied)
}

/// The sweep's part: applies up to `limit` parked statuses whose sends are recorded by
/// now (a send recorded while its status was being parked), and forgets those parked
/// longer than [`PARKED_STATUS_HOURS`] (a wamid we never sent). Returns (applied,
/// forgotten).
pub async fn sweep_parked(
    client: &mut super::PooledClient,
    limit: i64,
) -> Result<(usize, u64), DbError> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "DELETE FROM parked_statuses WHERE parked_id IN (
                 SELECT p.parked_id FROM parked_statuses p
                 WHERE EXISTS (SELECT 1 FROM message_delivery_status d
                               WHERE d.platform_message_id = p.platform_message_id)
                    OR EXISTS (SELECT 1 FROM template_sends ts
                               WHERE ts.platform_message_id = p.platform_message_id)
                 LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING platform_message_id, user_id, phone_number_id, status, occurred_at, errors, parked_id",
            &[&limit],
        )
        .await?;
    let applied = apply_rows(&tx, rows).await?;
    let forgotten = tx
        .execute(
            "DELETE FROM parked_statuses
             WHERE parked_at < now() - make_interval(hours => $1)",
            &[&PARKED_STATUS_HOURS],
        )
        .await?;
    tx.commit().await?;
    Ok((applied, forgotten))
}

/// Applies parked statuses (rows of `parked_statuses`) in the order they happened.
async fn apply_rows(
    tx: &super::Transaction<'_>,
    rows: Vec<tokio_postgres::Row>,
) -> Result<usize, DbError> {
    let mut parked = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        let Ok(status) = status.parse::<DeliveryStatus>() else {
            continue;
        };
        let route = ChannelRoute {
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
            user_id: super::user_column(&row, "user_id")?,
            platform: Platform::WhatsApp,
        };
        let update = StatusUpdate {
            channel_key: String::new(),
            platform_message_id: row.try_get("platform_message_id")?,
            status,
            timestamp: row.try_get("occurred_at")?,
            recipient_id: None,
            errors: serde_json::from_value(row.try_get("errors")?).unwrap_or_default(),
        };
        let order: i64 = row.try_get("parked_id")?;
        parked.push((update.timestamp, order, route, update));
    }
    parked.sort_by_key(|(at, order, _, _)| (*at, *order));
    for (_, _, route, update) in &parked {
        apply_or_park(tx, route, update, false).await?;
    }
    Ok(parked.len())
}
