//! Credit grants: every top-up is recorded in `credit_grants` and added to the balance in one
//! transaction.

use chrono::{DateTime, Utc};

use super::{DbError, Transaction};
use crate::domain::UserId;

/// A recorded grant with the balance after it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub grant_id: String,
    pub user_id: String,
    pub amount: i32,
    pub reason: String,
    pub granted_by: String,
    pub created_at: DateTime<Utc>,
    pub remaining_credits: i32,
}

/// Adds `amount` credits to an existing tenant; `None` when there is no such tenant.
pub async fn grant(
    tx: &Transaction<'_>,
    user: &UserId,
    amount: i32,
    reason: &str,
    granted_by: &str,
) -> Result<Option<Grant>, DbError> {
    let exists = tx
        .query_opt("SELECT 1 FROM users WHERE user_id = $1", &[&user.as_str()])
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let grant_id = format!("grant_{}", ulid::Ulid::new().to_string().to_lowercase());
    let row = tx
        .query_one(
            "INSERT INTO credit_grants (grant_id, user_id, amount, reason, granted_by)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING grant_id, user_id, amount, reason, granted_by, created_at",
            &[&grant_id, &user.as_str(), &amount, &reason, &granted_by],
        )
        .await?;
    let balance = tx
        .query_one(
            "INSERT INTO credits (user_id, remaining_credits) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET remaining_credits = credits.remaining_credits + EXCLUDED.remaining_credits,
                 last_updated = CURRENT_TIMESTAMP
             RETURNING remaining_credits",
            &[&user.as_str(), &amount],
        )
        .await?;
    Ok(Some(Grant {
        grant_id: row.try_get("grant_id")?,
        user_id: row.try_get("user_id")?,
        amount: row.try_get("amount")?,
        reason: row.try_get("reason")?,
        granted_by: row.try_get("granted_by")?,
        created_at: row.try_get("created_at")?,
        remaining_credits: balance.try_get("remaining_credits")?,
    }))
}
