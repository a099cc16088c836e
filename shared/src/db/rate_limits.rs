//! `rate_limit_counters`: fixed-window counters for rate limits that hold across Lambda
//! execution environments.
//!
//! A hit is one statement, `INSERT … ON CONFLICT DO UPDATE SET count = count + 1 WHERE
//! count < max RETURNING count`: PostgreSQL serialises concurrent hits of one window on its
//! row, so of 30 simultaneous requests against a limit of 10 exactly 10 are counted and the
//! other 20 get no row back. There is no read-then-write step to race, and a refused hit is
//! not counted. Windows are aligned to the Unix epoch (a daily window
//! starts at 00:00 UTC). Rows whose window has ended are deleted in small batches by
//! [`prune`].

use super::{DbError, GenericClient};
use crate::domain::LimitScope;

/// One limit to enforce: at most `max` hits per `window_secs` for `key` in `scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: LimitScope,
    pub key: String,
    pub max: i32,
    pub window_secs: i32,
}

/// A limit that was reached, and when its window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    /// Seconds until the window ends (at least 1).
    pub retry_after_secs: u32,
}

/// Counts one hit against a limit; `Some` when it is over the limit. A refused hit is not
/// counted (the update only runs below the limit), so a flood of refused requests cannot
/// keep a window full: raising a limit (a tenant raising its daily cap) takes effect at once.
pub async fn hit(client: &impl GenericClient, limit: &Limit) -> Result<Option<Exceeded>, DbError> {
    let counted = client
        .query_opt(
            "INSERT INTO rate_limit_counters AS c (scope, key, window_start, expires_at, count)
             SELECT $1, $2, w.start, w.start + make_interval(secs => $3::int), 1
             FROM (SELECT to_timestamp((floor(extract(epoch FROM now()) / $3::int) * $3::int)::float8) AS start) w
             WHERE $4::int > 0
             ON CONFLICT (scope, key, window_start) DO UPDATE SET count = c.count + 1
                 WHERE c.count < $4::int
             RETURNING c.count",
            &[&limit.scope.as_str(), &limit.key, &limit.window_secs, &limit.max],
        )
        .await?;
    if counted.is_some() {
        return Ok(None);
    }
    // Refused: the window's row is full (or the limit is zero). Its end is the wait.
    let retry_after: i32 = client
        .query_opt(
            "SELECT GREATEST(1, ceil(extract(epoch FROM (expires_at - now()))))::int
               FROM rate_limit_counters
              WHERE scope = $1 AND key = $2
                AND window_start = to_timestamp((floor(extract(epoch FROM now()) / $3::int) * $3::int)::float8)",
            &[&limit.scope.as_str(), &limit.key, &limit.window_secs],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(limit.window_secs);
    Ok(Some(Exceeded {
        limit: limit.clone(),
        retry_after_secs: u32::try_from(retry_after).unwrap_or(1),
    }))
}

/// Counts a hit against each limit in order and stops at the first one that is exceeded, so
/// a request refused by a narrow limit (one visitor) uses up nothing of the wider ones (the
/// whole widget, the tenant's day), and a flooding client cannot exhaust them for others.
pub async fn hit_all(
    client: &impl GenericClient,
    limits: &[Limit],
) -> Result<Option<Exceeded>, DbError> {
    for limit in limits {
        if let Some(exceeded) = hit(client, limit).await? {
            return Ok(Some(exceeded));
        }
    }
    Ok(None)
}

/// Deletes up to `batch` counters whose window has ended; rows another call is deleting are
/// skipped, so concurrent prunes never wait on each other.
pub async fn prune(client: &impl GenericClient, batch: i64) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "DELETE FROM rate_limit_counters WHERE ctid IN (
                 SELECT ctid FROM rate_limit_counters WHERE expires_at < now()
                 LIMIT $1 FOR UPDATE SKIP LOCKED)",
            &[&batch],
        )
        .await?)
}
