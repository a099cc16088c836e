//! The `webhook` function, behind a Lambda function URL (`/webhook` in devstack).
//!
//! `GET` answers Meta's subscription check. `POST` checks `X-Hub-Signature-256` over the raw
//! body before anything else, then handles each event on its own: an inbound message is
//! written to the inbox once per provider id and its reply job published; a status moves a
//! sent message's delivery status forward. No AI call happens here: the webhook answers fast.
//!
//! Idempotency: Meta delivers at least once. A redelivered message finds its inbox row; if
//! its reply job was never published (the queue failed, or the function died between the
//! insert and the publish), it is published now, so no reply is lost. A job that was
//! published is not published again: SQS retries it if the worker fails.

mod webchat;

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::DefaultBodyLimit,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    http::{Method, header},
    response::{IntoResponse, Response},
    routing::get,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shared::{
    api::{ApiError, layers},
    db::{self, DbError, Pool, inbound::Recorded},
    jobs::{ReplyJob, ReplyQueue},
    meta::{
        signature,
        webhook::{self, Event, InboundMessage, StatusUpdate},
    },
};
use tower_http::cors::{Any, CorsLayer};

/// Meta sends batches of up to a few megabytes.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What the webhook needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct WebhookState {
    pub pool: Pool,
    pub queue: ReplyQueue,
    pub secrets: Arc<WebhookSecrets>,
    /// Messages a webchat visitor may send per minute (`WEBCHAT_RATE_PER_MINUTE`, default 10).
    pub webchat_rate_per_minute: u32,
}

/// `META_APP_SECRET` (signs POSTs) and `META_VERIFY_TOKEN` (the subscription check).
#[derive(Debug)]
pub struct WebhookSecrets {
    pub app_secret: SecretString,
    pub verify_token: SecretString,
}

impl WebhookSecrets {
    /// Reads `META_APP_SECRET` and `META_VERIFY_TOKEN`.
    pub fn from_env() -> Result<Self, shared::config::ConfigError> {
        Ok(Self {
            app_secret: SecretString::from(shared::config::required_var("META_APP_SECRET")?),
            verify_token: SecretString::from(shared::config::required_var("META_VERIFY_TOKEN")?),
        })
    }
}

/// The webhook's and the webchat's routes, before the common layers. The webchat is called
/// from browsers on tenants' sites, so it answers CORS for any origin; it carries no
/// credentials, so that is safe.
pub fn app(state: WebhookState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600));
    let webchat = Router::new()
        .route(
            "/webchat/{widget_key}/messages",
            get(webchat::poll_messages)
                .post(webchat::post_message)
                // Preflights are answered by the CORS layer; this keeps the method router
                // from answering 405 before the layer sees them.
                .options(|| async { StatusCode::NO_CONTENT }),
        )
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(cors);
    Router::new()
        .route("/webhook", get(verify_subscription).post(receive))
        .merge(webchat)
        .with_state(state)
}

/// The complete router Lambda runs.
pub fn router(state: WebhookState) -> Router {
    layers::finish(app(state), BODY_LIMIT)
}

#[derive(Debug, Deserialize)]
struct Subscription {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn verify_subscription(
    State(state): State<WebhookState>,
    query: Result<Query<Subscription>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let token_matches = query
        .verify_token
        .as_deref()
        .is_some_and(|token| shared::crypto::secrets_match(token, &state.secrets.verify_token));
    match (query.mode.as_deref(), token_matches, query.challenge) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        _ => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let header = headers
        .get(signature::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !signature::verify(
        state.secrets.app_secret.expose_secret().as_bytes(),
        &body,
        header,
    ) {
        return Err(ApiError::Unauthorized(
            "missing or invalid X-Hub-Signature-256".to_owned(),
        ));
    }
    // Not the API's `from_json_slice`, which refuses NUL: Meta's texts are cleaned instead
    // (`webhook::parse`), so an authenticated delivery is never refused for its content.
    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest {
            detail: "the body is not JSON".to_owned(),
            errors: vec![],
        })?;
    let events = webhook::parse(&payload).map_err(|e| ApiError::BadRequest {
        detail: e.to_string(),
        errors: vec![],
    })?;

    // Each event on its own: one failing event does not stop the others. A transient
    // failure answers 503 at the end so Meta redelivers; what was done is not redone. An
    // event the database refuses for its data would be refused again on every redelivery
    // (for seven days), so it is logged and acknowledged instead.
    let mut failed = 0usize;
    let mut skipped = 0usize;
    for event in &events {
        let outcome = match event {
            Event::Inbound(message) => handle_inbound(&state, message).await,
            Event::Status(update) => handle_status(&state, update).await,
            Event::Ignored(reason) => {
                tracing::info!(reason = %reason, "webhook event ignored");
                Ok(())
            }
            Event::Unusable(reason) => {
                skipped += 1;
                tracing::warn!(reason = %reason, "webhook event cannot be stored; skipped");
                Ok(())
            }
        };
        match outcome {
            Ok(()) => {}
            Err(error) if error.is_permanent() => {
                skipped += 1;
                tracing::error!(error = %shared::api::error_chain(&error), "webhook event refused by the database; skipped");
            }
            Err(error) => {
                failed += 1;
                tracing::error!(error = %shared::api::error_chain(&error), "webhook event failed; Meta will redeliver");
            }
        }
    }
    tracing::info!(
        events = events.len(),
        failed,
        skipped,
        "webhook delivery handled"
    );
    if failed > 0 {
        return Err(ApiError::Unavailable(
            "some events could not be handled".into(),
        ));
    }
    Ok(StatusCode::OK)
}

/// Why handling one event failed.
#[derive(Debug, thiserror::Error)]
enum EventError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] shared::jobs::QueueError),
}

impl EventError {
    /// A failure a redelivery of the same event would meet again.
    fn is_permanent(&self) -> bool {
        matches!(self, Self::Db(error) if error.is_data_error())
    }
}

async fn handle_inbound(state: &WebhookState, message: &InboundMessage) -> Result<(), EventError> {
    let client = state.pool.get().await.map_err(DbError::from)?;
    let Some(channel) = db::inbound::route(&client, message.platform, &message.channel_key).await?
    else {
        tracing::warn!(platform = %message.platform, "inbound message for an unknown channel");
        return Ok(());
    };
    let recorded = db::inbound::record(&client, &channel, message).await?;
    if recorded == Recorded::AlreadyQueued {
        tracing::info!(channel.id = %channel.phone_number_id, "redelivered message already queued");
        return Ok(());
    }
    let job = ReplyJob::new(
        &message.platform_message_id,
        channel.phone_number_id.as_str(),
        &message.customer_id,
    );
    state.queue.publish(&job).await?;
    db::inbound::mark_enqueued(&client, &message.platform_message_id).await?;
    tracing::info!(
        tenant.id = %channel.user_id,
        channel.id = %channel.phone_number_id,
        message.kind = %message.message_type,
        redelivery = recorded == Recorded::Unpublished,
        "inbound message enqueued"
    );
    Ok(())
}

async fn handle_status(state: &WebhookState, update: &StatusUpdate) -> Result<(), EventError> {
    let mut client = state.pool.get().await.map_err(DbError::from)?;
    let Some(channel) = db::inbound::route(
        &client,
        shared::domain::Platform::WhatsApp,
        &update.channel_key,
    )
    .await?
    else {
        tracing::warn!("status for an unknown channel");
        return Ok(());
    };
    let tx = client.transaction().await.map_err(DbError::from)?;
    let outcome = db::delivery::apply(&tx, &channel, update).await?;
    tx.commit().await.map_err(DbError::from)?;
    tracing::info!(
        channel.id = %channel.phone_number_id,
        status = %update.status,
        message_updated = outcome.message_updated,
        template_send_updated = outcome.template_send_updated,
        "status applied"
    );
    Ok(())
}
