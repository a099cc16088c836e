//! A tenant's stored connection: tokens sealed and bound to the tenant's row, a fresh
//! access token on demand (refreshed shortly before expiry and stored back atomically), and
//! `invalid_grant` turned into `reconnect_needed`.

use chrono::{Duration, Utc};

use super::{Google, GoogleError, GrantedTokens};
use crate::{
    crypto::{SealingKey, SecretKind},
    db::{
        GenericClient,
        google_tokens::{self, NewConnection, StoredConnection},
    },
    domain::{GoogleHealth, UserId},
};

/// A token this close to its expiry is refreshed first.
pub const REFRESH_MARGIN: Duration = Duration::seconds(120);

fn seal(
    key: &SealingKey,
    kind: SecretKind,
    user: &UserId,
    token: &str,
) -> Result<String, GoogleError> {
    key.seal_for_row(kind, user.as_str(), token)
        .map_err(|_| GoogleError::Sealing)
}

fn open(
    key: &SealingKey,
    kind: SecretKind,
    user: &UserId,
    sealed: &str,
) -> Result<String, GoogleError> {
    key.open_for_row(kind, user.as_str(), sealed)
        .map_err(|_| GoogleError::Sealing)
}

/// Stores the tokens a consent granted, sealed for the tenant's row.
pub async fn store_consent(
    client: &impl GenericClient,
    key: &SealingKey,
    user: &UserId,
    tokens: &GrantedTokens,
    refresh_token: &str,
    scope: &str,
) -> Result<StoredConnection, GoogleError> {
    let access = seal(
        key,
        SecretKind::GoogleAccessToken,
        user,
        &tokens.access_token,
    )?;
    let refresh = seal(key, SecretKind::GoogleRefreshToken, user, refresh_token)?;
    Ok(google_tokens::upsert(
        client,
        user,
        &NewConnection {
            sealed_access_token: &access,
            sealed_refresh_token: &refresh,
            token_expiry: tokens.expires_at,
            scope,
            google_email: tokens.email.as_deref(),
        },
    )
    .await?)
}

/// The stored refresh token in the clear (to revoke it).
pub fn refresh_token_of(
    key: &SealingKey,
    user: &UserId,
    stored: &StoredConnection,
) -> Result<String, GoogleError> {
    open(
        key,
        SecretKind::GoogleRefreshToken,
        user,
        &stored.sealed_refresh_token,
    )
}

/// An access token for the tenant's calendar, refreshed first when it expires within
/// [`REFRESH_MARGIN`].
///
/// Two workers refreshing at once both ask Google, but only the first to write stores its
/// pair (a conditional UPDATE on the version it read); the other reads and uses the stored
/// one, so the row always holds one consistent pair. `invalid_grant` marks the connection
/// `reconnect_needed` and answers [`GoogleError::ReconnectNeeded`].
pub async fn access_token(
    client: &impl GenericClient,
    google: &Google,
    key: &SealingKey,
    user: &UserId,
) -> Result<String, GoogleError> {
    let stored = google_tokens::get(client, user)
        .await?
        .ok_or(GoogleError::NotConnected)?;
    if stored.health == GoogleHealth::ReconnectNeeded {
        return Err(GoogleError::ReconnectNeeded);
    }
    if stored.token_expiry > Utc::now() + REFRESH_MARGIN {
        return open(
            key,
            SecretKind::GoogleAccessToken,
            user,
            &stored.sealed_access_token,
        );
    }
    let refresh_token = refresh_token_of(key, user, &stored)?;
    let granted = match google.refresh(&refresh_token).await {
        Ok(granted) => granted,
        Err(GoogleError::ReconnectNeeded) => {
            let marked =
                google_tokens::mark_reconnect_needed(client, user, &stored.sealed_access_token)
                    .await?;
            tracing::warn!(marked, "Google refused the refresh token; reconnect needed");
            return Err(GoogleError::ReconnectNeeded);
        }
        Err(error) => return Err(error),
    };
    let sealed_access = seal(
        key,
        SecretKind::GoogleAccessToken,
        user,
        &granted.access_token,
    )?;
    let sealed_refresh = match &granted.refresh_token {
        Some(rotated) => seal(key, SecretKind::GoogleRefreshToken, user, rotated)?,
        None => stored.sealed_refresh_token.clone(),
    };
    let stored_ours = google_tokens::store_refreshed(
        client,
        user,
        &stored.sealed_access_token,
        &sealed_access,
        &sealed_refresh,
        granted.expires_at,
    )
    .await?;
    if stored_ours {
        tracing::info!("Google access token refreshed");
        return Ok(granted.access_token);
    }
    // Another refresh (or a reconnect) won: use what it stored.
    let current = google_tokens::get(client, user)
        .await?
        .ok_or(GoogleError::NotConnected)?;
    if current.health == GoogleHealth::ReconnectNeeded {
        return Err(GoogleError::ReconnectNeeded);
    }
    open(
        key,
        SecretKind::GoogleAccessToken,
        user,
        &current.sealed_access_token,
    )
}
