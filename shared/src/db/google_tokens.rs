//! `google_calendar_tokens` (a tenant's Google connection, tokens sealed and bound to the
//! row) and `google_oauth_states` (consents in progress, single use).

use chrono::{DateTime, Utc};

use super::{DbError, GenericClient, enum_column};
use crate::domain::{GoogleHealth, UserId};

/// A stored connection. The token columns are sealed; only `shared::google::connection`
/// opens them.
#[derive(Debug, Clone)]
pub struct StoredConnection {
    pub sealed_access_token: String,
    pub sealed_refresh_token: String,
    pub token_expiry: DateTime<Utc>,
    pub scope: String,
    pub google_email: Option<String>,
    pub health: GoogleHealth,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "access_token, refresh_token, token_expiry, scope, google_email, health,
    created_at, updated_at";

fn from_row(row: &tokio_postgres::Row) -> Result<StoredConnection, DbError> {
    Ok(StoredConnection {
        sealed_access_token: row.try_get("access_token")?,
        sealed_refresh_token: row.try_get("refresh_token")?,
        token_expiry: row.try_get("token_expiry")?,
        scope: row.try_get("scope")?,
        google_email: row.try_get("google_email")?,
        health: enum_column(row, "health")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The tenant's connection, if any.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<Option<StoredConnection>, DbError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM google_calendar_tokens WHERE user_id = $1"),
            &[&user.as_str()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// What a consent stores (tokens already sealed for the row).
#[derive(Debug, Clone)]
pub struct NewConnection<'a> {
    pub sealed_access_token: &'a str,
    pub sealed_refresh_token: &'a str,
    pub token_expiry: DateTime<Utc>,
    pub scope: &'a str,
    pub google_email: Option<&'a str>,
}

/// Stores a consent's tokens, replacing an earlier connection (a reconnect), healthy again.
pub async fn upsert(
    client: &impl GenericClient,
    user: &UserId,
    new: &NewConnection<'_>,
) -> Result<StoredConnection, DbError> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO google_calendar_tokens
                     (user_id, access_token, refresh_token, token_expiry, scope, google_email, health)
                 VALUES ($1, $2, $3, $4, $5, $6, 'ok')
                 ON CONFLICT (user_id) DO UPDATE SET
                     access_token = EXCLUDED.access_token,
                     refresh_token = EXCLUDED.refresh_token,
                     token_expiry = EXCLUDED.token_expiry,
                     scope = EXCLUDED.scope,
                     google_email = EXCLUDED.google_email,
                     health = 'ok'
                 RETURNING {COLUMNS}"
            ),
            &[
                &user.as_str(),
                &new.sealed_access_token,
                &new.sealed_refresh_token,
                &new.token_expiry,
                &new.scope,
                &new.google_email,
            ],
        )
        .await?;
    from_row(&row)
}

/// Stores a refreshed pair, only if the row still holds the access token the refresh
/// started from (`expected_access_token`, sealed: every sealing differs, so it identifies
/// one version of the row). Of two concurrent refreshes exactly one stores its pair; the
/// other sees `false` and reads the stored one. Access token, refresh token and expiry are
/// written in one statement, so the row never holds a mixed pair.
pub async fn store_refreshed(
    client: &impl GenericClient,
    user: &UserId,
    expected_access_token: &str,
    sealed_access_token: &str,
    sealed_refresh_token: &str,
    token_expiry: DateTime<Utc>,
) -> Result<bool, DbError> {
    let updated = client
        .execute(
            "UPDATE google_calendar_tokens
             SET access_token = $3, refresh_token = $4, token_expiry = $5
             WHERE user_id = $1 AND access_token = $2 AND health = 'ok'",
            &[
                &user.as_str(),
                &expected_access_token,
                &sealed_access_token,
                &sealed_refresh_token,
                &token_expiry,
            ],
        )
        .await?;
    Ok(updated == 1)
}

/// Marks the connection `reconnect_needed` (Google refused its refresh token), unless it
/// changed since `expected_access_token` was read (a reconnect or a refresh won).
pub async fn mark_reconnect_needed(
    client: &impl GenericClient,
    user: &UserId,
    expected_access_token: &str,
) -> Result<bool, DbError> {
    let updated = client
        .execute(
            "UPDATE google_calendar_tokens SET health = 'reconnect_needed'
             WHERE user_id = $1 AND access_token = $2",
            &[&user.as_str(), &expected_access_token],
        )
        .await?;
    Ok(updated == 1)
}

/// Deletes the connection and returns what it held (to revoke it at Google).
pub async fn delete(
    client: &impl GenericClient,
    user: &UserId,
) -> Result<Option<StoredConnection>, DbError> {
    let row = client
        .query_opt(
            &format!("DELETE FROM google_calendar_tokens WHERE user_id = $1 RETURNING {COLUMNS}"),
            &[&user.as_str()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Records a consent in progress (and sweeps the tenant's expired ones).
pub async fn insert_state(
    client: &impl GenericClient,
    user: &UserId,
    state_id: &str,
    pkce_verifier: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM google_oauth_states WHERE user_id = $1 AND expires_at <= now()",
            &[&user.as_str()],
        )
        .await?;
    client
        .execute(
            "INSERT INTO google_oauth_states (state_id, user_id, pkce_verifier, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[&state_id, &user.as_str(), &pkce_verifier, &expires_at],
        )
        .await?;
    Ok(())
}

/// Takes (deletes) a consent's row: its PKCE verifier, or `None` when the state was used
/// already, expired, or belongs to another tenant. Only one of two concurrent callbacks with
/// the same state gets it.
pub async fn take_state(
    client: &impl GenericClient,
    user: &UserId,
    state_id: &str,
) -> Result<Option<String>, DbError> {
    let row = client
        .query_opt(
            "DELETE FROM google_oauth_states
             WHERE state_id = $1 AND user_id = $2
             RETURNING pkce_verifier, expires_at > now() AS live",
            &[&state_id, &user.as_str()],
        )
        .await?;
    Ok(match row {
        Some(row) if row.try_get::<_, bool>("live")? => Some(row.try_get("pkce_verifier")?),
        _ => None,
    })
}
