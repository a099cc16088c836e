//! `/integrations/google`: connecting a tenant's Google Calendar.

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{
        ApiError, Json, Problem, Tenant,
        openapi::responses::{BearerErrors, JsonBodyErrors},
    },
    db::google_tokens::{self, StoredConnection},
    domain::GoogleHealth,
    google::{
        GoogleError,
        connection::{self, refresh_token_of},
        oauth::missing_scopes,
        state::{self, StateError},
    },
};
use utoipa::ToSchema;

use crate::{MeetingsState, google_error};

/// Where to send the tenant to give consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeUrlResponse {
    /// Google's consent page (offline access, `prompt=consent`, PKCE, our `state`).
    url: String,
    /// The signed state in the URL, valid once, until `expires_at`.
    state: String,
    expires_at: DateTime<Utc>,
}

/// What Google handed back to the redirect URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    #[schema(min_length = 1, max_length = 2048)]
    code: String,
    #[schema(min_length = 1, max_length = 512)]
    state: String,
}

/// The tenant's Google connection. Tokens are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResponse {
    connected: bool,
    /// The Google account the calendar belongs to.
    google_email: Option<String>,
    scopes: Vec<String>,
    /// When the current access token expires (it is refreshed before).
    token_expiry: Option<DateTime<Utc>>,
    /// `ok`, or `reconnect_needed` once Google refused the refresh token: ask the tenant to
    /// connect again.
    health: Option<GoogleHealth>,
    connected_at: Option<DateTime<Utc>>,
}

impl ConnectionResponse {
    fn disconnected() -> Self {
        Self {
            connected: false,
            google_email: None,
            scopes: Vec::new(),
            token_expiry: None,
            health: None,
            connected_at: None,
        }
    }
}

impl From<StoredConnection> for ConnectionResponse {
    fn from(stored: StoredConnection) -> Self {
        Self {
            connected: true,
            google_email: stored.google_email,
            scopes: stored.scope.split_whitespace().map(str::to_owned).collect(),
            token_expiry: Some(stored.token_expiry),
            health: Some(stored.health),
            connected_at: Some(stored.created_at),
        }
    }
}

/// Starts a connection: Google's consent URL with a `state` signed for this tenant, valid
/// for ten minutes and usable once.
#[utoipa::path(
    get, path = "/integrations/google/authorize-url", tag = "integrations",
    responses(BearerErrors, (status = 200, body = AuthorizeUrlResponse))
)]
pub async fn authorize_url(
    State(state): State<MeetingsState>,
    tenant: Tenant,
) -> Result<axum::Json<AuthorizeUrlResponse>, ApiError> {
    let (state_id, signed, expires_at) =
        state::issue(&state.api.sealing_key, &tenant.user_id, Utc::now());
    let consent = state.google()?.consent_url(&signed).map_err(google_error)?;
    let client = state.pool().get().await?;
    google_tokens::insert_state(
        &client,
        &tenant.user_id,
        &state_id,
        &consent.pkce_verifier,
        expires_at,
    )
    .await?;
    Ok(axum::Json(AuthorizeUrlResponse {
        url: consent.url,
        state: signed,
        expires_at,
    }))
}

/// Finishes a connection: exchanges Google's `code` and stores the tokens sealed. A bad,
/// expired or already used `state` is a 400 and nothing is stored; a consent without the
/// calendar scopes is a 422 naming the missing ones.
#[utoipa::path(
    post, path = "/integrations/google/callback", tag = "integrations",
    request_body = CallbackRequest,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 200, body = ConnectionResponse),
        (status = 502, description = "Google refused the exchange", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn callback(
    State(state): State<MeetingsState>,
    tenant: Tenant,
    Json(body): Json<CallbackRequest>,
) -> Result<axum::Json<ConnectionResponse>, ApiError> {
    let bad_state = |message: &str| ApiError::BadRequest {
        detail: format!("state {message}"),
        errors: vec![shared::api::FieldError::new("state", message)],
    };
    if body.code.trim().is_empty() || body.code.len() > 2048 || body.code.contains('\0') {
        return Err(ApiError::invalid(
            "code",
            "must be the code Google sent back",
        ));
    }
    let state_id = state::verify(
        &state.api.sealing_key,
        &tenant.user_id,
        &body.state,
        Utc::now(),
    )
    .map_err(|e: StateError| bad_state(&e.to_string()))?;
    let client = state.pool().get().await?;
    let verifier = google_tokens::take_state(&client, &tenant.user_id, &state_id)
        .await?
        .ok_or_else(|| bad_state("was used already or has expired: start the connection again"))?;
    let google = state.google()?;
    let granted = match google.exchange_code(body.code.trim(), &verifier).await {
        Ok(granted) => granted,
        Err(GoogleError::ReconnectNeeded) => {
            return Err(ApiError::BadRequest {
                detail: "Google refused the code (invalid_grant): start the connection again"
                    .to_owned(),
                errors: vec![shared::api::FieldError::new(
                    "code",
                    "is invalid, expired or was used already",
                )],
            });
        }
        Err(error) => return Err(google_error(error)),
    };
    let scopes = granted.scopes.clone().unwrap_or_default();
    let missing = missing_scopes(&scopes);
    if !missing.is_empty() {
        return Err(ApiError::invalid(
            "scope",
            format!(
                "the consent did not grant {}: connect again and allow calendar access",
                missing.join(", ")
            ),
        ));
    }
    let Some(refresh_token) = granted.refresh_token.clone() else {
        return Err(ApiError::BadGateway(
            "Google sent no refresh token: connect again".to_owned(),
        ));
    };
    let stored = connection::store_consent(
        &client,
        &state.api.sealing_key,
        &tenant.user_id,
        &granted,
        &refresh_token,
        &scopes.join(" "),
    )
    .await
    .map_err(google_error)?;
    tracing::info!(tenant.id = %tenant.user_id, "Google Calendar connected");
    Ok(axum::Json(stored.into()))
}

/// Whether Google Calendar is connected, with the account, scopes, expiry and health.
#[utoipa::path(
    get, path = "/integrations/google", tag = "integrations",
    responses(BearerErrors, (status = 200, body = ConnectionResponse))
)]
pub async fn get_connection(
    State(state): State<MeetingsState>,
    tenant: Tenant,
) -> Result<axum::Json<ConnectionResponse>, ApiError> {
    let client = state.pool().get().await?;
    Ok(axum::Json(
        google_tokens::get(&client, &tenant.user_id)
            .await?
            .map_or_else(ConnectionResponse::disconnected, Into::into),
    ))
}

/// Disconnects: revokes the grant at Google, then deletes the stored tokens. When Google
/// cannot be reached the connection is kept (503) so the revocation can be retried.
#[utoipa::path(
    delete, path = "/integrations/google", tag = "integrations",
    responses(
        BearerErrors,
        (status = 204, description = "Revoked and deleted"),
        (status = 404, description = "Not connected", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_connection(
    State(state): State<MeetingsState>,
    tenant: Tenant,
) -> Result<StatusCode, ApiError> {
    let mut client = state.pool().get().await?;
    let tx = client.transaction().await?;
    let stored = google_tokens::delete(&tx, &tenant.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Google Calendar is not connected".to_owned()))?;
    match refresh_token_of(&state.api.sealing_key, &tenant.user_id, &stored) {
        Ok(refresh_token) => match state.google()?.revoke(&refresh_token).await {
            Ok(()) => {}
            Err(GoogleError::Unavailable(reason)) => {
                return Err(ApiError::Unavailable(
                    format!("Google could not revoke the connection now ({reason}); nothing was deleted, try again").into(),
                ));
            }
            Err(error) => {
                tracing::warn!(error = %error, "Google refused the revocation; deleting anyway")
            }
        },
        Err(error) => {
            tracing::warn!(error = %error, "stored token unreadable; deleting without revoking")
        }
    }
    tx.commit().await?;
    tracing::info!(tenant.id = %tenant.user_id, "Google Calendar disconnected");
    Ok(StatusCode::NO_CONTENT)
}
