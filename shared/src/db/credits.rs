//! `credits` and `credit_grants`: the tenant's balance, what moves it and every top-up.
//!
//! - A grant is recorded in `credit_grants` and added to the balance in one transaction. It
//!   may carry an idempotency key, so an operator's retry is applied once.
//! - An AI reply takes one credit ([`take_credit`]) and a reply OpenAI refused for good gives
//!   it back ([`refund_credit`]), each at most once per inbound message: the mark on the inbox
//!   row and the balance move in the caller's transaction.
//!
//! Two statements on `credits` live elsewhere, on purpose: `users::provision` creates the
//! balance row in the same statement as the user (so two concurrent first calls cannot
//! leave a user without one), and `users::account` reads the balance with the account.

use chrono::{DateTime, Utc};

use super::{DbError, Transaction, user_column};
use crate::domain::{CreditGrantId, UserId};

/// Takes one credit for an inbound message's reply, at most once per message and never
/// below zero: one conditional UPDATE on the balance, in the same transaction as the mark
/// on the tenant's inbox row. `false` when the tenant has no credit left (or no such inbox
/// row).
pub async fn take_credit(
    tx: &Transaction<'_>,
    user: &UserId,
    platform_message_id: &str,
) -> Result<bool, DbError> {
    let moved = mark_then_move(
        tx,
        user,
        platform_message_id,
        "UPDATE inbound_messages SET credit_taken_at = CURRENT_TIMESTAMP
         WHERE platform_message_id = $1 AND user_id = $2 AND credit_taken_at IS NULL",
        "UPDATE credits SET remaining_credits = remaining_credits - 1, total_used = total_used + 1,
             last_updated = CURRENT_TIMESTAMP
         WHERE user_id = $1 AND remaining_credits > 0",
    )
    .await?;
    if let Some(charged) = moved {
        return Ok(charged == 1);
    }
    // Taken by an earlier attempt of this job, if the row is the tenant's at all.
    let row = tx
        .query_opt(
            "SELECT 1 FROM inbound_messages WHERE platform_message_id = $1 AND user_id = $2",
            &[&platform_message_id, &user.as_str()],
        )
        .await?;
    Ok(row.is_some())
}

/// Gives back the credit an inbound message's reply took, at most once: the mark
/// (`credit_refunded_at`) and the balance move in the caller's transaction, and only when a
/// credit was taken and not yet refunded. `true` when this call refunded it.
pub async fn refund_credit(
    tx: &Transaction<'_>,
    user: &UserId,
    platform_message_id: &str,
) -> Result<bool, DbError> {
    let moved = mark_then_move(
        tx,
        user,
        platform_message_id,
        "UPDATE inbound_messages SET credit_refunded_at = CURRENT_TIMESTAMP
         WHERE platform_message_id = $1 AND user_id = $2 AND credit_taken_at IS NOT NULL
           AND credit_refunded_at IS NULL",
        "UPDATE credits SET remaining_credits = remaining_credits + 1,
             total_used = GREATEST(total_used - 1, 0), last_updated = CURRENT_TIMESTAMP
         WHERE user_id = $1",
    )
    .await?;
    Ok(moved.is_some())
}

/// Marks the tenant's inbox row (`mark`: `$1` the provider id, `$2` the tenant) and, only
/// when the mark was set now, moves the balance (`balance`: `$1` the tenant). `None` when
/// the mark was set before (or the row is not the tenant's); else the rows the balance
/// statement changed.
async fn mark_then_move(
    tx: &Transaction<'_>,
    user: &UserId,
    platform_message_id: &str,
    mark: &str,
    balance: &str,
) -> Result<Option<u64>, DbError> {
    let marked = tx
        .execute(mark, &[&platform_message_id, &user.as_str()])
        .await?;
    if marked == 0 {
        return Ok(None);
    }
    Ok(Some(tx.execute(balance, &[&user.as_str()]).await?))
}

/// A recorded grant with the balance after it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub grant_id: CreditGrantId,
    pub user_id: UserId,
    pub amount: i32,
    pub reason: String,
    pub granted_by: String,
    pub created_at: DateTime<Utc>,
    pub remaining_credits: i32,
}

/// A grant to apply.
#[derive(Debug, Clone, Copy)]
pub struct NewGrant<'a> {
    pub user: &'a UserId,
    /// Positive.
    pub amount: i32,
    pub reason: &'a str,
    pub granted_by: &'a str,
    /// The operator's `Idempotency-Key`, already validated (1–255 visible ASCII).
    pub idempotency_key: Option<&'a str>,
}

/// What a grant did. Only `Granted` wrote anything; the caller commits only then.
#[derive(Debug, Clone)]
pub enum GrantOutcome {
    /// Applied now.
    Granted(Grant),
    /// The key was used before for this very grant: the first grant, applied once.
    Replayed(Grant),
    /// The key was used before for a different grant (another tenant, amount or reason).
    KeyReused,
    /// No such tenant.
    NoSuchTenant,
    /// The balance would pass PostgreSQL's INTEGER maximum; nothing was written.
    Overflow { remaining_credits: i32 },
}

const GRANT_COLUMNS: &str =
    "grant_id, user_id, amount, reason, granted_by, created_at, balance_after";

/// Adds credits to an existing tenant.
///
/// The balance row is locked first, so grants of one tenant are serialised and the overflow
/// check sees the balance it changes. With an idempotency key the grant is inserted with
/// `ON CONFLICT DO NOTHING` on the key's unique index: of two concurrent identical requests
/// the second waits for the first to commit, inserts nothing and answers the first's grant.
pub async fn grant(tx: &Transaction<'_>, new: NewGrant<'_>) -> Result<GrantOutcome, DbError> {
    if let Some(key) = new.idempotency_key {
        if let Some(outcome) = earlier_grant(tx, key, &new).await? {
            return Ok(outcome);
        }
    }
    let user = new.user.as_str();
    let exists = tx
        .query_opt("SELECT 1 FROM users WHERE user_id = $1", &[&user])
        .await?;
    if exists.is_none() {
        return Ok(GrantOutcome::NoSuchTenant);
    }
    tx.execute(
        "INSERT INTO credits (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
        &[&user],
    )
    .await?;
    let remaining: i32 = tx
        .query_one(
            "SELECT remaining_credits FROM credits WHERE user_id = $1 FOR UPDATE",
            &[&user],
        )
        .await?
        .try_get("remaining_credits")?;
    let Some(balance_after) = remaining.checked_add(new.amount) else {
        return Ok(GrantOutcome::Overflow {
            remaining_credits: remaining,
        });
    };
    let grant_id = CreditGrantId::generate();
    let inserted = tx
        .query_opt(
            &format!(
                "INSERT INTO credit_grants
                     (grant_id, user_id, amount, reason, granted_by, idempotency_key, balance_after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                 RETURNING {GRANT_COLUMNS}"
            ),
            &[
                &grant_id.as_str(),
                &user,
                &new.amount,
                &new.reason,
                &new.granted_by,
                &new.idempotency_key,
                &balance_after,
            ],
        )
        .await?;
    let Some(row) = inserted else {
        // A concurrent request with the same key committed after our first look.
        let key = new.idempotency_key.unwrap_or_default();
        return Ok(earlier_grant(tx, key, &new)
            .await?
            .unwrap_or(GrantOutcome::KeyReused));
    };
    tx.execute(
        "UPDATE credits SET remaining_credits = $2, last_updated = CURRENT_TIMESTAMP
         WHERE user_id = $1",
        &[&user, &balance_after],
    )
    .await?;
    Ok(GrantOutcome::Granted(grant_from_row(&row, balance_after)?))
}

/// The earlier grant with this key, as a replay when it is the same grant.
async fn earlier_grant(
    tx: &Transaction<'_>,
    key: &str,
    new: &NewGrant<'_>,
) -> Result<Option<GrantOutcome>, DbError> {
    let Some(row) = tx
        .query_opt(
            &format!("SELECT {GRANT_COLUMNS} FROM credit_grants WHERE idempotency_key = $1"),
            &[&key],
        )
        .await?
    else {
        return Ok(None);
    };
    let balance_after: Option<i32> = row.try_get("balance_after")?;
    let earlier = grant_from_row(&row, balance_after.unwrap_or_default())?;
    let same = earlier.user_id == *new.user
        && earlier.amount == new.amount
        && earlier.reason == new.reason;
    Ok(Some(if same {
        GrantOutcome::Replayed(earlier)
    } else {
        GrantOutcome::KeyReused
    }))
}

fn grant_from_row(row: &tokio_postgres::Row, remaining_credits: i32) -> Result<Grant, DbError> {
    Ok(Grant {
        grant_id: CreditGrantId::from_trusted(row.try_get("grant_id")?),
        user_id: user_column(row, "user_id")?,
        amount: row.try_get("amount")?,
        reason: row.try_get("reason")?,
        granted_by: row.try_get("granted_by")?,
        created_at: row.try_get("created_at")?,
        remaining_credits,
    })
}
