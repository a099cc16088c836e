//! The website chat widget's endpoints, called from visitors' browsers on tenants' sites.
//!
//! A widget first asks for a visitor session (`POST /webchat/{widget_key}/sessions`): the
//! server generates the visitor's identity and a bearer token (256 random bits, stored only
//! as a SHA-256, bound to the widget, expiring). Posting and polling messages need that
//! token, so a visitor's transcript can only be read, and written, by whoever holds it.
//!
//! Every request is counted against fixed-window limits in PostgreSQL (one atomic statement
//! per limit, so concurrent requests cannot slip past): per visitor, per client IP, per
//! widget, and a per-tenant daily cap of AI replies from the channel's settings. A visitor's
//! message goes through the same inbox and reply queue as a WhatsApp message.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::{
    api::{
        ApiError, ClientIp, FieldErrors, Json, Problem, Query, openapi::responses::ServerErrors,
    },
    db::{
        self, Pool, conversation_views,
        inbound::Recorded,
        rate_limits::{self, Exceeded, Limit},
        webchat::VisitorSession,
    },
    domain::{
        AllowedOrigins, InboundMessage, LimitScope, MessageSender, Platform, VisitorId,
        VisitorToken, WidgetColor,
    },
    jobs::ReplyJob,
};
use utoipa::{IntoParams, ToSchema};

use crate::WebhookState;

/// The longest message a visitor may send.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The name of the visitor-token security scheme in the OpenAPI document.
pub const VISITOR_TOKEN: &str = "visitor_token";
/// Messages a poll returns at most.
const POLL_PAGE: i64 = 200;
/// Expired sessions and ended counter windows deleted per new session.
const PRUNE_BATCH: i64 = 500;

/// The webchat's limits (per minute unless named otherwise), from the environment. The
/// per-tenant daily AI-reply cap is a channel setting instead (`daily_ai_reply_cap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebchatLimits {
    /// `WEBCHAT_VISITOR_MESSAGES_PER_MINUTE` (default 10).
    pub visitor_messages_per_minute: i32,
    /// `WEBCHAT_IP_MESSAGES_PER_MINUTE` (default 20).
    pub ip_messages_per_minute: i32,
    /// `WEBCHAT_WIDGET_MESSAGES_PER_MINUTE` (default 120).
    pub widget_messages_per_minute: i32,
    /// `WEBCHAT_IP_SESSIONS_PER_MINUTE` (default 10).
    pub ip_sessions_per_minute: i32,
    /// `WEBCHAT_VISITOR_POLLS_PER_MINUTE` (default 60: one poll a second).
    pub visitor_polls_per_minute: i32,
    /// `WEBCHAT_IP_POLLS_PER_MINUTE` (default 600: many visitors behind one NAT).
    pub ip_polls_per_minute: i32,
    /// `WEBCHAT_SESSION_TTL_HOURS` (default 24): how long a visitor token is valid.
    pub session_ttl_hours: i32,
}

impl Default for WebchatLimits {
    /// The documented defaults (README "Configuration").
    fn default() -> Self {
        Self {
            visitor_messages_per_minute: 10,
            ip_messages_per_minute: 20,
            widget_messages_per_minute: 120,
            ip_sessions_per_minute: 10,
            visitor_polls_per_minute: 60,
            ip_polls_per_minute: 600,
            session_ttl_hours: 24,
        }
    }
}

impl WebchatLimits {
    /// Reads the `WEBCHAT_*` variables; each falls back to its default and must be 1 or more.
    pub fn from_env() -> Result<Self, shared::config::ConfigError> {
        fn positive(name: &'static str, default: i32) -> Result<i32, shared::config::ConfigError> {
            let value = shared::config::parsed_var(name, default)?;
            if value < 1 {
                return Err(shared::config::ConfigError::Invalid {
                    name,
                    reason: "must be 1 or more".to_owned(),
                });
            }
            Ok(value)
        }
        let d = Self::default();
        Ok(Self {
            visitor_messages_per_minute: positive(
                "WEBCHAT_VISITOR_MESSAGES_PER_MINUTE",
                d.visitor_messages_per_minute,
            )?,
            ip_messages_per_minute: positive(
                "WEBCHAT_IP_MESSAGES_PER_MINUTE",
                d.ip_messages_per_minute,
            )?,
            widget_messages_per_minute: positive(
                "WEBCHAT_WIDGET_MESSAGES_PER_MINUTE",
                d.widget_messages_per_minute,
            )?,
            ip_sessions_per_minute: positive(
                "WEBCHAT_IP_SESSIONS_PER_MINUTE",
                d.ip_sessions_per_minute,
            )?,
            visitor_polls_per_minute: positive(
                "WEBCHAT_VISITOR_POLLS_PER_MINUTE",
                d.visitor_polls_per_minute,
            )?,
            ip_polls_per_minute: positive("WEBCHAT_IP_POLLS_PER_MINUTE", d.ip_polls_per_minute)?,
            session_ttl_hours: positive("WEBCHAT_SESSION_TTL_HOURS", d.session_ttl_hours)?,
        })
    }
}

fn per_minute(scope: LimitScope, key: impl Into<String>, max: i32) -> Limit {
    Limit {
        scope,
        key: key.into(),
        max,
        window_secs: 60,
    }
}

fn too_many(exceeded: Exceeded) -> ApiError {
    let max = exceeded.limit.max;
    let what = match exceeded.limit.scope {
        LimitScope::VisitorMessages => format!("at most {max} messages a minute per visitor"),
        LimitScope::IpMessages => format!("at most {max} messages a minute from one address"),
        LimitScope::WidgetMessages => format!("at most {max} messages a minute on this widget"),
        LimitScope::TenantDailyReplies => {
            format!("this chat answers at most {max} messages a day; it is back at 00:00 UTC")
        }
        LimitScope::IpSessions => format!("at most {max} new sessions a minute from one address"),
        LimitScope::VisitorPolls => format!("at most {max} polls a minute per visitor"),
        LimitScope::IpPolls => format!("at most {max} polls a minute from one address"),
    };
    tracing::info!(scope = %exceeded.limit.scope, retry_after_secs = exceeded.retry_after_secs, "webchat limit reached");
    ApiError::TooManyRequests {
        detail: format!("{what}; retry after {} seconds", exceeded.retry_after_secs),
        retry_after_secs: exceeded.retry_after_secs,
    }
}

/// The visitor a request's `Authorization: Bearer <visitor_token>` belongs to, on the
/// widget of the path. A missing, malformed, unknown or expired token, or one issued by
/// another widget, is 401 before anything else runs.
#[derive(Debug)]
pub struct Visitor(pub VisitorSession);

fn unauthorized() -> ApiError {
    ApiError::Unauthorized(
        "missing, invalid or expired visitor token; create a session with \
         POST /webchat/{widget_key}/sessions and send it as `Authorization: Bearer <visitor_token>`"
            .to_owned(),
    )
}

impl FromRequestParts<WebhookState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebhookState,
    ) -> Result<Self, Self::Rejection> {
        let token = shared::api::auth::bearer_token(&parts.headers)
            .and_then(VisitorToken::parse)
            .ok_or_else(unauthorized)?;
        let Path(widget_key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| unauthorized())?;
        let client = state.pool.get().await?;
        let session = db::webchat::session(&client, &widget_key, &token)
            .await?
            .ok_or_else(unauthorized)?;
        tracing::Span::current().record("tenant.id", session.widget.route.user_id.as_str());
        Ok(Self(session))
    }
}

/// A new visitor session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The visitor's bearer token for this widget's message routes (`vt_…`). Shown once;
    /// keep it in the browser (e.g. `localStorage`) for as long as it is valid.
    visitor_token: String,
    /// When the token stops working; then create a new session.
    expires_at: DateTime<Utc>,
}

/// A visitor's message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// 1 to 2,000 characters (trimmed).
    #[schema(min_length = 1, max_length = 2000)]
    text: String,
}

/// The stored message, before the AI answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedMessage {
    /// `wc_…`
    message_id: String,
    /// The text as stored (trimmed).
    text: String,
    received_at: DateTime<Utc>,
    /// Always `received`: the reply comes later; poll for it.
    status: String,
}

/// What the widget polls with.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Poll {
    /// The last sequence number the widget has (default 0: everything).
    #[param(minimum = 0)]
    after: Option<i32>,
}

/// Who wrote a message, as the widget shows it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WidgetSender {
    Visitor,
    Agent,
}

/// One message of the visitor's conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetMessage {
    sequence_no: i32,
    sender: WidgetSender,
    text: String,
    timestamp: DateTime<Utc>,
}

/// The visitor's messages after `after`, oldest first (at most 200).
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetMessages {
    items: Vec<WidgetMessage>,
}

/// Starts a visitor session on a widget.
///
/// Public: no credentials. The server generates the visitor's identity; the returned token
/// is what the message routes require. Limited per client address (default 10 a minute).
#[utoipa::path(
    post, path = "/webchat/{widget_key}/sessions", tag = "webchat",
    security(()),
    params(("widget_key" = String, Path, description = "The widget key of a webchat channel (`wk_…`)")),
    responses(
        (status = 201, body = SessionCreated),
        (status = 404, description = "No widget has this key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many new sessions from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until the limit's window ends"))),
    ),
)]
pub async fn create_session(
    State(state): State<WebhookState>,
    Path(widget_key): Path<String>,
    client_ip: ClientIp,
) -> Result<(StatusCode, axum::Json<SessionCreated>), ApiError> {
    let client = state.pool.get().await?;
    let widget = db::webchat::widget(&client, &widget_key)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such chat widget".to_owned()))?;
    tracing::Span::current().record("tenant.id", widget.route.user_id.as_str());
    let limit = per_minute(
        LimitScope::IpSessions,
        client_ip.limit_key(),
        state.webchat.ip_sessions_per_minute,
    );
    if let Some(exceeded) = rate_limits::hit(&client, &limit).await? {
        return Err(too_many(exceeded));
    }
    let visitor = VisitorId::generate();
    let token = VisitorToken::generate();
    let expires_at = db::webchat::create_session(
        &client,
        &widget.route.phone_number_id,
        &visitor,
        &token,
        client_ip.address().as_deref(),
        i64::from(state.webchat.session_ttl_hours) * 3600,
    )
    .await?;
    // Housekeeping in small batches; a failure here must not fail the visitor's request.
    let pruned = async {
        let sessions = db::webchat::prune_sessions(&client, PRUNE_BATCH).await?;
        let counters = rate_limits::prune(&client, PRUNE_BATCH).await?;
        Ok::<_, db::DbError>((sessions, counters))
    }
    .await;
    if let Err(error) = pruned {
        tracing::warn!(error = %shared::api::error_chain(&error), "pruning webchat rows failed");
    }
    tracing::info!(channel.id = %widget.route.phone_number_id, visitor.id = %visitor, "webchat session created");
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionCreated {
            visitor_token: token.expose().to_owned(),
            expires_at,
        }),
    ))
}

/// A visitor sends a message; the AI's reply arrives by polling.
///
/// Limits (each answers 429 with `Retry-After`): per visitor (default 10 a minute), per
/// client address (20 a minute), per widget (120 a minute), and the tenant's daily AI-reply
/// cap (the channel's `daily_ai_reply_cap`, default 500 a UTC day).
#[utoipa::path(
    post, path = "/webchat/{widget_key}/messages", tag = "webchat",
    security(("visitor_token" = [])),
    params(("widget_key" = String, Path, description = "The widget key of a webchat channel (`wk_…`)")),
    request_body = PostMessage,
    responses(
        (status = 202, description = "Stored and queued for the AI's reply", body = AcceptedMessage),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No visitor token, or one that is invalid, expired or another widget's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing, unknown or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A limit was reached; see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until the limit's window ends"))),
    ),
)]
pub async fn post_message(
    State(state): State<WebhookState>,
    Visitor(session): Visitor,
    client_ip: ClientIp,
    Json(body): Json<PostMessage>,
) -> Result<(StatusCode, axum::Json<AcceptedMessage>), ApiError> {
    let mut errors = FieldErrors::default();
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        errors.push("text", format!("must be 1 to {MAX_TEXT_CHARS} characters"));
    }
    errors.into_result()?;
    let widget = &session.widget;
    let channel = &widget.route;
    let limits = &state.webchat;
    // Narrowest first: a visitor refused by its own limit uses nothing of the wider ones.
    let checks = [
        per_minute(
            LimitScope::VisitorMessages,
            session.visitor_id.as_str(),
            limits.visitor_messages_per_minute,
        ),
        per_minute(
            LimitScope::IpMessages,
            client_ip.limit_key(),
            limits.ip_messages_per_minute,
        ),
        per_minute(
            LimitScope::WidgetMessages,
            channel.phone_number_id.as_str(),
            limits.widget_messages_per_minute,
        ),
        Limit {
            scope: LimitScope::TenantDailyReplies,
            key: channel.user_id.as_str().to_owned(),
            max: widget.daily_reply_cap.get(),
            window_secs: 86_400,
        },
    ];
    let client = state.pool.get().await?;
    if let Some(exceeded) = rate_limits::hit_all(&client, &checks).await? {
        return Err(too_many(exceeded));
    }
    let received_at = Utc::now();
    let message = InboundMessage {
        platform: Platform::Webchat,
        channel_key: widget.widget_key.clone(),
        platform_message_id: format!("wc_{}", ulid::Ulid::new().to_string().to_lowercase()),
        customer_id: session.visitor_id.as_str().to_owned(),
        customer_name: None,
        sent_at: received_at,
        message_type: "text".to_owned(),
        text: text.to_owned(),
        metadata: json!({}),
    };
    if db::inbound::record(&client, channel, &message).await? == Recorded::New {
        let job = ReplyJob::new(
            &message.platform_message_id,
            channel.phone_number_id.as_str(),
            &message.customer_id,
        );
        state
            .queue
            .publish(&job)
            .await
            .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
        db::inbound::mark_enqueued(&client, channel, &message.platform_message_id).await?;
    }
    tracing::info!(channel.id = %channel.phone_number_id, visitor.id = %session.visitor_id, "webchat message enqueued");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AcceptedMessage {
            message_id: message.platform_message_id,
            text: message.text,
            received_at,
            status: "received".to_owned(),
        }),
    ))
}

/// The visitor's conversation after a sequence number (an empty list before the first
/// message). Only the token's own visitor's messages are ever returned.
///
/// Limited per visitor (default 60 a minute) and per client address (600 a minute).
#[utoipa::path(
    get, path = "/webchat/{widget_key}/messages", tag = "webchat",
    security(("visitor_token" = [])),
    params(
        ("widget_key" = String, Path, description = "The widget key of a webchat channel (`wk_…`)"),
        Poll,
    ),
    responses(
        (status = 200, body = WidgetMessages),
        (status = 401, description = "No visitor token, or one that is invalid, expired or another widget's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Polling too often; see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until the limit's window ends"))),
    ),
)]
pub async fn poll_messages(
    State(state): State<WebhookState>,
    Visitor(session): Visitor,
    client_ip: ClientIp,
    Query(query): Query<Poll>,
) -> Result<axum::Json<WidgetMessages>, ApiError> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must be 0 or more"));
    }
    let checks = [
        per_minute(
            LimitScope::VisitorPolls,
            session.visitor_id.as_str(),
            state.webchat.visitor_polls_per_minute,
        ),
        per_minute(
            LimitScope::IpPolls,
            client_ip.limit_key(),
            state.webchat.ip_polls_per_minute,
        ),
    ];
    let client = state.pool.get().await?;
    if let Some(exceeded) = rate_limits::hit_all(&client, &checks).await? {
        return Err(too_many(exceeded));
    }
    let conversation = conversation_views::active_conversation_id(
        &client,
        &session.widget.route.phone_number_id,
        session.visitor_id.as_str(),
    )
    .await?;
    let messages = match conversation {
        Some(id) => conversation_views::messages_after(&client, &id, after, POLL_PAGE).await?,
        None => Vec::new(),
    };
    let items = messages
        .into_iter()
        .map(|m| WidgetMessage {
            sequence_no: m.sequence_no,
            sender: match m.sender {
                MessageSender::User => WidgetSender::Visitor,
                MessageSender::Agent => WidgetSender::Agent,
            },
            text: m.text,
            timestamp: m.timestamp,
        })
        .collect();
    Ok(axum::Json(WidgetMessages { items }))
}

/// The origin of the page a request comes from: its `Origin` header, else the origin
/// (`scheme://host[:port]`) of its `Referer`, in lower case. `None` when neither says.
fn page_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(origin.trim().to_ascii_lowercase());
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?.trim();
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// Refuses a request whose page (`Origin`, else `Referer`) is not among the widget's allowed
/// origins. A request that names no page (a direct fetch, a `no-referrer` page) passes: the
/// browser's CORS check on the message routes is what keeps other sites out.
fn check_page_origin(headers: &HeaderMap, allowed: &AllowedOrigins) -> Result<(), ApiError> {
    match page_origin(headers) {
        Some(origin) if !allowed.allows(&origin) => Err(ApiError::Forbidden(format!(
            "this chat widget is not enabled on {origin}: add the site to the channel's \
             allowed_origins (PATCH /phone-numbers/{{id}})"
        ))),
        _ => Ok(()),
    }
}

/// Loading the widget (script, config) counts against the address's poll limit: one page
/// view costs two requests, and nothing else throttles them.
async fn hit_load_limit(
    client: &impl db::GenericClient,
    state: &WebhookState,
    client_ip: &ClientIp,
) -> Result<(), ApiError> {
    let limit = per_minute(
        LimitScope::IpPolls,
        client_ip.limit_key(),
        state.webchat.ip_polls_per_minute,
    );
    match rate_limits::hit(client, &limit).await? {
        Some(exceeded) => Err(too_many(exceeded)),
        None => Ok(()),
    }
}

fn no_widget() -> ApiError {
    ApiError::NotFound("no such chat widget".to_owned())
}

/// What the widget shows before the first message.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConfig {
    /// The panel's heading: the channel's `widget_title`, else its display name, else
    /// "Chat with us".
    #[schema(min_length = 1, max_length = 255)]
    title: String,
    /// The first message shown, when the channel sets `widget_greeting`.
    #[schema(max_length = 500)]
    greeting: Option<String>,
    /// The accent colour, `#rrggbb` (the channel's `widget_color`, or the default).
    #[schema(pattern = "^#[0-9a-f]{6}$")]
    color: String,
    /// The name of the agent linked to the channel; `null` when none is linked.
    agent_name: Option<String>,
    /// The longest message a visitor may send, in characters.
    max_message_chars: usize,
    /// The current script's version (the `v` of `widget.js?v=`).
    script_version: String,
}

/// A widget's look and names, for its script (public, no credentials).
///
/// Answers 403 when the request's page (`Origin`, else `Referer`) is not one of the
/// channel's `allowed_origins`. Counted against the address's poll limit (default 600 a
/// minute).
#[utoipa::path(
    get, path = "/webchat/{widget_key}/config", tag = "webchat",
    security(()),
    params(("widget_key" = String, Path, description = "The widget key of a webchat channel (`wk_…`)")),
    responses(
        ServerErrors,
        (status = 200, body = WidgetConfig),
        (status = 403, description = "The requesting page's origin is not among the channel's `allowed_origins`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No widget has this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The widget key holds a NUL (`%00`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until the limit's window ends"))),
    ),
)]
pub async fn widget_config(
    State(state): State<WebhookState>,
    Path(widget_key): Path<String>,
    client_ip: ClientIp,
    headers: HeaderMap,
) -> Result<axum::Json<WidgetConfig>, ApiError> {
    let client = state.pool.get().await?;
    let config = db::webchat::widget_config(&client, &widget_key)
        .await?
        .ok_or_else(no_widget)?;
    tracing::Span::current().record("tenant.id", config.widget.route.user_id.as_str());
    check_page_origin(&headers, &config.widget.allowed_origins)?;
    hit_load_limit(&client, &state, &client_ip).await?;
    let look = config.appearance;
    Ok(axum::Json(WidgetConfig {
        title: look
            .title
            .map(|t| t.as_str().to_owned())
            .or(config.display_name)
            .unwrap_or_else(|| "Chat with us".to_owned()),
        greeting: look.greeting.map(|g| g.as_str().to_owned()),
        color: look.color.map_or_else(
            || WidgetColor::DEFAULT.to_owned(),
            |c| c.as_str().to_owned(),
        ),
        agent_name: config.agent_name,
        max_message_chars: MAX_TEXT_CHARS,
        script_version: shared::webchat_widget::version().to_owned(),
    }))
}

/// The script's query: its version.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScriptVersion {
    /// The script's version (`script_version`, also in the channel's `widget_script_path`).
    /// The current one is cached for a year; any other (or none) for five minutes, so a
    /// page with an old version soon runs the current script.
    #[param(max_length = 64)]
    v: Option<String>,
}

/// A year: the current version's URL never changes content.
const SCRIPT_CACHE_CURRENT: &str = "public, max-age=31536000, immutable";
/// Five minutes: an unversioned or outdated URL follows new releases soon.
const SCRIPT_CACHE_OTHER: &str = "public, max-age=300";

/// The widget's script, which a tenant's site embeds with one tag:
/// `<script src="…/webchat/{widget_key}/widget.js?v=…" async crossorigin="anonymous">`.
///
/// Plain JavaScript, no dependencies; it reads its widget key from its own URL. Served for
/// the channel's `allowed_origins` only: 403 when the page (`Origin`, else `Referer`) is
/// another site; with `crossorigin="anonymous"` the browser also refuses to run it without
/// the CORS header, which only allowed origins get. Counted against the address's poll
/// limit (default 600 a minute).
#[utoipa::path(
    get, path = "/webchat/{widget_key}/widget.js", tag = "webchat",
    security(()),
    params(
        ("widget_key" = String, Path, description = "The widget key of a webchat channel (`wk_…`)"),
        ScriptVersion,
    ),
    responses(
        ServerErrors,
        (status = 200, description = "The script", body = String, content_type = "text/javascript",
            headers(("Cache-Control" = String, description = "A year (`immutable`) for the current `v`, five minutes otherwise"))),
        (status = 403, description = "The requesting page's origin is not among the channel's `allowed_origins`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No widget has this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The widget key or `v` holds a NUL (`%00`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds until the limit's window ends"))),
    ),
)]
pub async fn widget_script(
    State(state): State<WebhookState>,
    Path(widget_key): Path<String>,
    client_ip: ClientIp,
    headers: HeaderMap,
    Query(query): Query<ScriptVersion>,
) -> Result<Response, ApiError> {
    let client = state.pool.get().await?;
    let widget = db::webchat::widget(&client, &widget_key)
        .await?
        .ok_or_else(no_widget)?;
    tracing::Span::current().record("tenant.id", widget.route.user_id.as_str());
    check_page_origin(&headers, &widget.allowed_origins)?;
    hit_load_limit(&client, &state, &client_ip).await?;
    let current = query.v.as_deref() == Some(shared::webchat_widget::version());
    let cache = if current {
        SCRIPT_CACHE_CURRENT
    } else {
        SCRIPT_CACHE_OTHER
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Embeddable by pages that require CORP (Cross-Origin-Embedder-Policy).
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        shared::webchat_widget::SCRIPT,
    )
        .into_response())
}

/// Whether a page on `origin` may read the widget's responses: the channel's allowed
/// origins decide (`*` allows any). A database failure allows nothing. An unknown widget
/// key allows any page to read its 404 (nothing else can be answered for it), so a widget
/// whose channel was deleted can tell its visitor so instead of looking offline.
pub(crate) async fn origin_allowed(pool: &Pool, path: &str, origin: &HeaderValue) -> bool {
    let Some(widget_key) = path
        .strip_prefix("/webchat/")
        .and_then(|rest| rest.split('/').next())
        .filter(|key| !key.is_empty())
    else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let found = async {
        let client = pool.get().await.map_err(db::DbError::from)?;
        db::webchat::widget(&client, widget_key).await
    }
    .await;
    match found {
        Ok(Some(widget)) => widget.allowed_origins.allows(origin),
        Ok(None) => true,
        Err(error) => {
            tracing::warn!(error = %shared::api::error_chain(&error), "CORS origin check failed; not allowed");
            false
        }
    }
}
