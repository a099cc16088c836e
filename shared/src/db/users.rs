//! `users` and `credits`: the tenant's account.

use chrono::{DateTime, Utc};

use super::{DbError, GenericClient, user_column};
use crate::domain::{CompanyName, TenantTimeZone, UserId, WorkingHours};

/// A tenant's account with its credit balance.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: UserId,
    pub email: String,
    pub company_name: Option<String>,
    /// IANA zone name (`users.time_zone`, default `UTC`).
    pub time_zone: String,
    /// When the agent may book meetings; `None`: not configured.
    pub working_hours: Option<WorkingHours>,
    pub remaining_credits: i32,
    pub total_used: i32,
    pub created_at: DateTime<Utc>,
}

/// What provisioning found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The tenant was created now, with its credits row.
    Created,
    /// The tenant already existed.
    Existing,
    /// Another tenant already has this email address.
    EmailTaken,
}

/// Creates the `users` row and its `credits` row on a tenant's first authenticated call.
///
/// Concurrent first calls are safe: the insert is `ON CONFLICT DO NOTHING` with no conflict
/// target, so a racing insert of the same tenant (which collides on both the key and the
/// email) is skipped instead of failing, and the credits row is created in the same
/// statement as the user, only by the call that created the user.
pub async fn provision(
    client: &impl GenericClient,
    user: &UserId,
    email: &str,
) -> Result<Provisioned, DbError> {
    let created = client
        .execute(
            "WITH new_user AS (
                 INSERT INTO users (user_id, email) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING
                 RETURNING user_id
             )
             INSERT INTO credits (user_id)
             SELECT user_id FROM new_user
             ON CONFLICT (user_id) DO NOTHING",
            &[&user.as_str(), &email],
        )
        .await?;
    if created > 0 {
        return Ok(Provisioned::Created);
    }
    Ok(if exists(client, user).await? {
        Provisioned::Existing
    } else {
        Provisioned::EmailTaken
    })
}

/// Whether the tenant's row exists.
pub async fn exists(client: &impl GenericClient, user: &UserId) -> Result<bool, DbError> {
    let row = client
        .query_opt("SELECT 1 FROM users WHERE user_id = $1", &[&user.as_str()])
        .await?;
    Ok(row.is_some())
}

const ACCOUNT_QUERY: &str = "SELECT u.user_id, u.email, u.company_name, u.time_zone, u.created_at,
        u.working_hours_start, u.working_hours_end, u.working_days,
        COALESCE(c.remaining_credits, 0) AS remaining_credits,
        COALESCE(c.total_used, 0) AS total_used
 FROM users u LEFT JOIN credits c ON c.user_id = u.user_id
 WHERE u.user_id = $1";

/// The tenant's account.
pub async fn account(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<Option<Account>, DbError> {
    client
        .query_opt(ACCOUNT_QUERY, &[&user.as_str()])
        .await?
        .map(|row| account_from_row(&row))
        .transpose()
}

/// Sets (or clears, with `None`) the company name; returns the updated account.
pub async fn set_company_name(
    client: &impl GenericClient,
    user: &UserId,
    company_name: Option<&CompanyName>,
) -> Result<Option<Account>, DbError> {
    let updated = client
        .execute(
            "UPDATE users SET company_name = $2 WHERE user_id = $1",
            &[&user.as_str(), &company_name.map(CompanyName::as_str)],
        )
        .await?;
    if updated == 0 {
        return Ok(None);
    }
    account(client, user).await
}

/// Sets the tenant's time zone; returns the updated account.
pub async fn set_time_zone(
    client: &impl GenericClient,
    user: &UserId,
    zone: crate::domain::TenantTimeZone,
) -> Result<Option<Account>, DbError> {
    let updated = client
        .execute(
            "UPDATE users SET time_zone = $2 WHERE user_id = $1",
            &[&user.as_str(), &zone.name()],
        )
        .await?;
    if updated == 0 {
        return Ok(None);
    }
    account(client, user).await
}

fn account_from_row(row: &tokio_postgres::Row) -> Result<Account, DbError> {
    Ok(Account {
        user_id: user_column(row, "user_id")?,
        email: row.try_get("email")?,
        company_name: row.try_get("company_name")?,
        time_zone: row.try_get("time_zone")?,
        working_hours: working_hours_from_row(row)?,
        remaining_credits: row.try_get("remaining_credits")?,
        total_used: row.try_get("total_used")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The tenant's time zone (`UTC` when the tenant has none, or an unknown name was stored).
pub async fn time_zone(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<TenantTimeZone, DbError> {
    Ok(booking_settings(client, user).await?.0)
}

fn working_hours_from_row(row: &tokio_postgres::Row) -> Result<Option<WorkingHours>, DbError> {
    let start: Option<chrono::NaiveTime> = row.try_get("working_hours_start")?;
    let end: Option<chrono::NaiveTime> = row.try_get("working_hours_end")?;
    let days: Option<Vec<i16>> = row.try_get("working_days")?;
    Ok(match (start, end, days) {
        (Some(start), Some(end), Some(days)) => {
            let days: Vec<u8> = days.iter().filter_map(|d| u8::try_from(*d).ok()).collect();
            Some(WorkingHours::from_trusted(start, end, &days))
        }
        _ => None,
    })
}

/// Sets (or clears, with `None`) the tenant's working hours.
pub async fn set_working_hours(
    client: &impl GenericClient,
    user: &UserId,
    hours: Option<&WorkingHours>,
) -> Result<(), DbError> {
    let days: Option<Vec<i16>> =
        hours.map(|h| h.day_numbers().into_iter().map(i16::from).collect());
    client
        .execute(
            "UPDATE users SET working_hours_start = $2, working_hours_end = $3, working_days = $4
             WHERE user_id = $1",
            &[
                &user.as_str(),
                &hours.map(WorkingHours::start),
                &hours.map(WorkingHours::end),
                &days,
            ],
        )
        .await?;
    Ok(())
}

/// What the booking tools read times in and offer slots within: the tenant's zone (`UTC`
/// when none or an unknown name is stored) and its working hours, if configured.
pub async fn booking_settings(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<(TenantTimeZone, Option<WorkingHours>), DbError> {
    let row = client
        .query_opt(
            "SELECT time_zone, working_hours_start, working_hours_end, working_days
             FROM users WHERE user_id = $1",
            &[&user.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok((TenantTimeZone::default(), None));
    };
    let name: Option<String> = row.try_get("time_zone")?;
    let zone = name
        .and_then(|n| TenantTimeZone::parse(&n).ok())
        .unwrap_or_default();
    Ok((zone, working_hours_from_row(&row)?))
}
