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

pub mod webchat;

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::DefaultBodyLimit,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    http::{HeaderValue, Method, header, request::Parts},
    response::{IntoResponse, Response},
    routing::options,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shared::{
    api::{ApiError, ApiRoutes, ClientIp, Problem, layers, openapi::responses::ServerErrors},
    api_routes,
    db::{self, DbError, Pool, inbound::Recorded},
    domain::{InboundMessage, StatusUpdate},
    jobs::{ReplyJob, ReplyQueue},
    meta::{
        signature,
        webhook::{self, Event},
    },
};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
pub use webchat::WebchatLimits;

/// Meta sends batches of up to a few megabytes.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What the webhook needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct WebhookState {
    pub pool: Pool,
    pub queue: ReplyQueue,
    pub secrets: Arc<WebhookSecrets>,
    /// The website chat's limits (`WEBCHAT_*`, see [`WebchatLimits`]).
    pub webchat: WebchatLimits,
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

/// The largest body the webchat routes accept.
pub const WEBCHAT_BODY_LIMIT: usize = 16 * 1024;

struct VisitorTokenScheme;

impl Modify for VisitorTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            webchat::VISITOR_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("visitor token")
                    .description(Some(
                        "The `visitor_token` of `POST /webchat/{widget_key}/sessions`: opaque, \
                         bound to that widget, valid until its `expires_at`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&VisitorTokenScheme),
    tags((
        name = "webchat",
        description = "Public: the website chat widget, called from visitors' browsers on the \
                       tenant's site (CORS: the channel's `allowed_origins`). The site embeds \
                       `widget.js`, which reads `config`, opens a visitor session, then posts \
                       and polls with the visitor token. No tenant credentials; every route \
                       is rate limited (429 with `Retry-After`)."
    ))
)]
struct WebchatDoc;

/// Every route of the function with its OpenAPI description: Meta's webhook and the
/// webchat (what devstack merges into the API document).
pub fn openapi_router() -> OpenApiRouter<WebhookState> {
    webchat_routes(OpenApiRouter::with_openapi(WebchatDoc::openapi()))
        .merge(meta_routes(OpenApiRouter::new()))
}

/// The webchat's routes, added to either kind of router ([`shared::api::routes`]).
fn webchat_routes<R: ApiRoutes<WebhookState>>(router: R) -> R {
    router
        .add(api_routes!(webchat::create_session))
        .add(api_routes!(webchat::post_message, webchat::poll_messages))
        .add(api_routes!(webchat::widget_config))
        .add(api_routes!(webchat::widget_script))
}

/// CORS for the webchat: the channel's allowed origins decide, looked up per request (so a
/// change through the API applies at once); other origins get no allow header. Preflights
/// are answered here, and `Retry-After` is readable by the widget's script.
fn webchat_cors(pool: Pool) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, parts: &Parts| {
                let pool = pool.clone();
                let path = parts.uri.path().to_owned();
                async move { webchat::origin_allowed(&pool, &path, &origin).await }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The webhook's and the webchat's routes, before the common layers. No OpenAPI description
/// is built: Lambda serves none.
pub fn app(state: WebhookState) -> Router {
    let cors = webchat_cors(state.pool.clone());
    // Preflights are answered by the CORS layer; these keep the method router from
    // answering 405 before the layer sees them.
    let preflight = || async { StatusCode::NO_CONTENT };
    let webchat = webchat_routes(Router::new())
        .route("/webchat/{widget_key}/sessions", options(preflight))
        .route("/webchat/{widget_key}/messages", options(preflight))
        .layer(DefaultBodyLimit::max(WEBCHAT_BODY_LIMIT))
        .layer(cors);
    let webhook = meta_routes(Router::new());
    Router::new()
        .merge(webhook)
        .merge(webchat)
        .with_state(state)
}

/// Meta's webhook routes (its own body limit, no CORS), added to either kind of router.
fn meta_routes<R: ApiRoutes<WebhookState>>(router: R) -> R {
    router.add(api_routes!(verify_subscription, receive))
}

/// The complete router Lambda runs.
pub fn router(state: WebhookState) -> Router {
    layers::finish(app(state), BODY_LIMIT)
}

/// The client address of a Lambda request: the function URL's (API Gateway v2 payload)
/// `requestContext.http.sourceIp`, or API Gateway v1's `identity.sourceIp`. Never a header.
pub fn lambda_client_ip(context: Option<&lambda_http::request::RequestContext>) -> ClientIp {
    use lambda_http::request::RequestContext;
    let raw = match context {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.as_deref(),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.as_deref(),
        _ => None,
    };
    ClientIp(raw.and_then(|ip| ip.parse::<IpAddr>().ok()))
}

/// What Lambda runs: [`router`], with each request's [`ClientIp`] taken from the Lambda
/// request context (devstack uses the socket address instead).
pub fn lambda_router(state: WebhookState) -> Router {
    router(state).layer(axum::middleware::map_request(
        |mut request: axum::extract::Request| async move {
            let ip = lambda_client_ip(
                request
                    .extensions()
                    .get::<lambda_http::request::RequestContext>(),
            );
            request.extensions_mut().insert(ip);
            request
        },
    ))
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

/// Meta's subscription check: with `hub.mode=subscribe` and the configured verify token,
/// the challenge is echoed as plain text; anything else is refused.
#[utoipa::path(
    get, path = "/webhook", tag = "webhook",
    security(()),
    params(
        ("hub.mode" = Option<String>, Query, description = "`subscribe`"),
        ("hub.verify_token" = Option<String>, Query, description = "META_VERIFY_TOKEN"),
        ("hub.challenge" = Option<String>, Query, description = "Echoed back on success"),
    ),
    responses(
        ServerErrors,
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 403, description = "Wrong mode or verify token, or no challenge", body = Problem, content_type = "application/problem+json"),
    ),
)]
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

/// Meta's event notifications (messages and delivery statuses), signed with the app secret
/// over the raw body. Each event is handled once, however often Meta delivers it.
#[utoipa::path(
    post, path = "/webhook", tag = "webhook",
    security(()),
    params(
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body with META_APP_SECRET"),
    ),
    request_body(content = Object, content_type = "application/json", description = "Meta's notification (`object`, `entry`); up to 4 MiB"),
    responses(
        ServerErrors,
        (status = 200, description = "Every event was handled (or ignored as irrelevant)"),
        (status = 400, description = "Signed, but not JSON or not a notification Meta sends", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid signature", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 4 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Some events failed transiently; Meta redelivers and nothing is done twice", body = Problem, content_type = "application/problem+json"),
    ),
)]
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
            Event::Template(update) => handle_template(&state, update).await,
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
    let mut client = state.pool.get().await.map_err(DbError::from)?;
    let Some(channel) = db::inbound::route(&client, message.platform, &message.channel_key).await?
    else {
        tracing::warn!(platform = %message.platform, "inbound message for an unknown channel");
        return Ok(());
    };
    if message.message_type == "button" {
        record_click(&mut client, &channel, message).await?;
    }
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
    db::inbound::mark_enqueued(&client, &channel, &message.platform_message_id).await?;
    tracing::info!(
        tenant.id = %channel.user_id,
        channel.id = %channel.phone_number_id,
        message.kind = %message.message_type,
        redelivery = recorded == Recorded::Unpublished,
        "inbound message enqueued"
    );
    Ok(())
}

/// A quick-reply click on a template send (`type: button` answering the send's `wamid` in
/// `context.id`): recorded once per inbound message id, before the message itself, so a
/// redelivery finds it. The message still goes to the conversation like any other.
async fn record_click(
    client: &mut shared::db::PooledClient,
    channel: &db::inbound::ChannelRoute,
    message: &InboundMessage,
) -> Result<(), EventError> {
    let metadata = &message.metadata;
    let Some(original) = metadata.pointer("/context/id").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let customer = shared::domain::customer_key(message.platform, &message.customer_id);
    let click = db::templates::Click {
        message_id: &message.platform_message_id,
        original_message_id: original,
        customer: &customer,
        payload: metadata.pointer("/button/payload").and_then(|v| v.as_str()),
        text: metadata.pointer("/button/text").and_then(|v| v.as_str()),
        clicked_at: message.sent_at,
    };
    // One transaction: the click row and the counters move together.
    let tx = client.transaction().await.map_err(DbError::from)?;
    let outcome =
        db::templates::record_click(&tx, &channel.phone_number_id, &channel.user_id, &click)
            .await?;
    tx.commit().await.map_err(DbError::from)?;
    tracing::info!(channel.id = %channel.phone_number_id, outcome = ?outcome, "template button click");
    Ok(())
}

/// A template's status, quality or category, applied to the template with Meta's id in the
/// WABA the entry names (never matched by name and language, never across WABAs). A later
/// event already applied wins over an earlier one that arrives late.
async fn handle_template(
    state: &WebhookState,
    update: &shared::meta::webhook::TemplateUpdate,
) -> Result<(), EventError> {
    use shared::{
        db::templates::{self as tpl, TemplateEvent},
        meta::webhook::TemplateUpdateKind,
        templates::status::{meaningful_reason, status_for_event},
    };
    let client = state.pool.get().await.map_err(DbError::from)?;
    let (kind, changed) = match &update.kind {
        TemplateUpdateKind::Status {
            event,
            reason,
            details,
        } => {
            let changed = tpl::apply_event(
                &client,
                &update.waba_id,
                &update.meta_template_id,
                &TemplateEvent {
                    event,
                    status: status_for_event(event),
                    reason: meaningful_reason(reason.as_deref()),
                    details,
                    at: update.at,
                },
            )
            .await?;
            let stopped = status_for_event(event).filter(|s| {
                matches!(
                    s,
                    shared::domain::TemplateStatus::Paused
                        | shared::domain::TemplateStatus::Disabled
                )
            });
            if let (Some(status), true) = (stopped, changed > 0) {
                // A template Meta paused or disabled cannot be sent: its running campaigns
                // pause with the reason, and resume once it is APPROVED again.
                let why = format!(
                    "Meta {} the template{}",
                    status.as_str().to_lowercase(),
                    reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                let paused = shared::db::campaigns::pause_for_meta_template(
                    &client,
                    &update.waba_id,
                    &update.meta_template_id,
                    &why,
                )
                .await?;
                if paused > 0 {
                    tracing::warn!(paused, template.meta_id = %update.meta_template_id, "campaigns paused: template {status}");
                }
            }
            ("status", changed)
        }
        TemplateUpdateKind::Quality { score } => {
            let changed = tpl::apply_quality(
                &client,
                &update.waba_id,
                &update.meta_template_id,
                score,
                update.at,
            )
            .await?;
            ("quality", changed)
        }
        TemplateUpdateKind::Category {
            new_category,
            is_change,
            details,
        } => {
            let category = new_category
                .as_deref()
                .filter(|_| *is_change)
                .and_then(|c| c.parse::<shared::domain::TemplateCategory>().ok());
            let changed = tpl::apply_category(
                &client,
                &update.waba_id,
                &update.meta_template_id,
                details,
                category,
                update.at,
            )
            .await?;
            ("category", changed)
        }
    };
    tracing::info!(
        meta.template_id = %update.meta_template_id,
        waba.id = %update.waba_id,
        kind,
        applied = changed > 0,
        "template update handled"
    );
    Ok(())
}

async fn handle_status(state: &WebhookState, update: &StatusUpdate) -> Result<(), EventError> {
    let client = state.pool.get().await.map_err(DbError::from)?;
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
    let outcome = db::delivery::apply(&client, &channel, update).await?;
    tracing::info!(
        channel.id = %channel.phone_number_id,
        status = %update.status,
        message_updated = outcome.message_updated,
        template_send_updated = outcome.template_send_updated,
        parked = outcome.parked,
        "status applied"
    );
    Ok(())
}
