use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::api::openapi::responses::{
    BearerErrors, JsonBodyErrors, ListErrors, PathErrors, QueryErrors,
};
use shared::{
    api::{ApiError, ApiState, Json, Page, Paging, Problem, Query, Tenant},
    crypto::SealingKey,
    db::{
        PooledClient,
        conversation_views::{
            self, ConversationFilter, ConversationKey, ConversationView, MessageView,
        },
        conversations as convo,
    },
    domain::{
        AgentId, ConversationId, ConversationOwner, DeliveryStatus, MessageAuthor, MessageId,
        MessageSender, MessageStatus, Platform, ReplyBlockedReason, TakeoverReason,
    },
    meta::graph::Graph,
    outbound::{Destination, Payload, SendOutcome, send_and_record},
};
use utoipa::{IntoParams, ToSchema};

/// A conversation, with who owns it and whether a free-form reply is possible.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    conversation_id: String,
    agent_id: String,
    phone_number_id: String,
    platform: Platform,
    customer_phone: String,
    customer_name: Option<String>,
    is_active: bool,
    /// `ai` answers automatically; `human` means a person has taken over.
    owner: ConversationOwner,
    owner_changed_at: Option<DateTime<Utc>>,
    handoff_reason: Option<String>,
    /// Why the AI last did not answer, if it did not.
    reply_blocked_reason: Option<ReplyBlockedReason>,
    created_at: DateTime<Utc>,
    last_message_at: DateTime<Utc>,
    /// WhatsApp only: free-form replies are possible until then; after it, only templates.
    window_open_until: Option<DateTime<Utc>>,
    last_message: Option<LastMessageResponse>,
}

/// The newest message.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastMessageResponse {
    text: String,
    sender: MessageSender,
    timestamp: DateTime<Utc>,
}

impl From<ConversationView> for ConversationResponse {
    fn from(view: ConversationView) -> Self {
        let window_open_until = view.window_open_until();
        Self {
            conversation_id: view.conversation_id.into(),
            agent_id: view.agent_id.into(),
            phone_number_id: view.phone_number_id.into(),
            platform: view.platform,
            customer_phone: view.customer_phone,
            customer_name: view.customer_name,
            is_active: view.is_active,
            owner: view.owner,
            owner_changed_at: view.owner_changed_at,
            handoff_reason: view.handoff_reason,
            reply_blocked_reason: view.reply_blocked_reason,
            created_at: view.created_at,
            last_message_at: view.last_message_at,
            window_open_until,
            last_message: view.last_message.map(|m| LastMessageResponse {
                text: m.text,
                sender: m.sender,
                timestamp: m.timestamp,
            }),
        }
    }
}

/// A message with its delivery status.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    message_id: String,
    sequence_no: i32,
    /// `user` (the customer) or `agent`.
    sender: MessageSender,
    /// `customer`, `ai` or `human` (a person's reply).
    author: Option<MessageAuthor>,
    text: String,
    message_type: String,
    /// Media ids, button payloads, context and the like.
    metadata: Value,
    timestamp: DateTime<Utc>,
    /// `pending`, `sent` (accepted by the provider) or `failed`.
    status: MessageStatus,
    /// From Meta's status webhooks: `pending`, `sent`, `delivered`, `read`, `failed`.
    delivery_status: Option<DeliveryStatus>,
    error_code: Option<String>,
}

impl From<MessageView> for MessageResponse {
    fn from(m: MessageView) -> Self {
        Self {
            message_id: m.message_id.into(),
            sequence_no: m.sequence_no,
            sender: m.sender,
            author: m.author,
            text: m.text,
            message_type: m.message_type,
            metadata: m.metadata,
            timestamp: m.timestamp,
            status: m.status,
            delivery_status: m.delivery_status,
            error_code: m.error_code,
        }
    }
}

/// Filters and paging for the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListConversations {
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    agent_id: Option<String>,
    is_active: Option<bool>,
    owner: Option<ConversationOwner>,
    /// E.164 for WhatsApp (`+14155550123`), the platform's id elsewhere.
    customer_phone: Option<String>,
}

/// Paging for messages: by sequence number.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessages {
    /// Only messages after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    after: Option<i32>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Taking a conversation over.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeoverRequest {
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// A person's reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    #[schema(min_length = 1, max_length = 4096)]
    text: String,
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse(raw).ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such conversation".to_owned())
}

/// One of the tenant's conversations, on the request's connection.
async fn load(
    client: &PooledClient,
    tenant: &Tenant,
    raw_id: &str,
) -> Result<ConversationView, ApiError> {
    let id = conversation_id(raw_id)?;
    conversation_views::get(client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)
}

/// The tenant's conversations, newest activity first.
#[utoipa::path(
    get, path = "/conversations", tag = "conversations",
    params(ListConversations),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<ConversationResponse>),
    )
)]
pub async fn list_conversations(
    State(state): State<ApiState>,
    tenant: Tenant,
    Query(query): Query<ListConversations>,
) -> Result<axum::Json<Page<ConversationResponse>>, ApiError> {
    let paging = Paging::keyed(
        &state.sealing_key,
        "conversations",
        query.limit,
        query.cursor.as_deref(),
        ConversationKey::parse,
    )?;
    // An agent id that is not one names no agent of the tenant: an empty list, as before.
    let agent_id = match query.agent_id.as_deref().map(AgentId::parse) {
        Some(None) => {
            return Ok(axum::Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        parsed => parsed.flatten(),
    };
    let filter = ConversationFilter {
        agent_id,
        is_active: query.is_active,
        owner: query.owner,
        customer_phone: query.customer_phone,
    };
    let client = state.pool.get().await?;
    let rows =
        conversation_views::list(&client, &tenant.user_id, &filter, paging.request()).await?;
    Ok(axum::Json(paging.page(rows, ConversationView::cursor_key)))
}

/// One conversation, with its owner, window and last message.
#[utoipa::path(
    get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "`conv_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ConversationResponse),
    )
)]
pub async fn get_conversation(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ConversationResponse>, ApiError> {
    let client = state.pool.get().await?;
    Ok(axum::Json(load(&client, &tenant, &id).await?.into()))
}

/// A conversation's messages by sequence number, with delivery statuses.
#[utoipa::path(
    get, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "`conv_…`"), ListMessages),
    responses(
        BearerErrors, QueryErrors, PathErrors,
        (status = 200, body = Vec<MessageResponse>),
    )
)]
pub async fn list_messages(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(query): Query<ListMessages>,
) -> Result<axum::Json<Vec<MessageResponse>>, ApiError> {
    let id = conversation_id(&id)?;
    // Paged by sequence number (`after`), not by cursor: only the limit is checked here.
    let limit = Paging::new(&state.sealing_key, "messages", query.limit, None)?.limit();
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must be 0 or more"));
    }
    let client = state.pool.get().await?;
    let messages =
        conversation_views::messages(&client, &tenant.user_id, &id, after, i64::from(limit))
            .await?
            .ok_or_else(not_found)?;
    Ok(axum::Json(messages.into_iter().map(Into::into).collect()))
}

/// A person takes the conversation over: the AI stops answering (inbound messages are still
/// stored and shown, no credit is taken) until it is handed back.
#[utoipa::path(
    post, path = "/conversations/{id}/takeover", tag = "conversations",
    params(("id" = String, Path, description = "`conv_…`")),
    request_body(content = Option<TakeoverRequest>),
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = ConversationResponse),
    )
)]
pub async fn takeover(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<ConversationResponse>, ApiError> {
    // The body is optional: an empty one is a takeover without a reason. One that is sent
    // is JSON, like every other body of the API.
    let request: TakeoverRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TakeoverRequest::default()
    } else if !shared::api::is_json(&headers) {
        return Err(ApiError::not_json());
    } else {
        shared::api::from_json_slice(&body)?
    };
    // An empty reason is no reason; control characters (NUL was the API fuzzer's 500) are
    // not something a person typed.
    let reason = request
        .reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| TakeoverReason::parse(&r))
        .transpose()
        .map_err(|message| ApiError::invalid("reason", message))?;
    set_owner(
        &state,
        &tenant,
        &id,
        ConversationOwner::Human,
        Some(
            reason
                .as_ref()
                .map_or("taken over from the dashboard", TakeoverReason::as_str),
        ),
    )
    .await
}

/// Hands the conversation back to the AI.
#[utoipa::path(
    post, path = "/conversations/{id}/handback", tag = "conversations",
    params(("id" = String, Path, description = "`conv_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ConversationResponse),
    )
)]
pub async fn handback(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ConversationResponse>, ApiError> {
    set_owner(&state, &tenant, &id, ConversationOwner::Ai, None).await
}

async fn set_owner(
    state: &ApiState,
    tenant: &Tenant,
    raw_id: &str,
    owner: ConversationOwner,
    reason: Option<&str>,
) -> Result<axum::Json<ConversationResponse>, ApiError> {
    let client = state.pool.get().await?;
    let view = load(&client, tenant, raw_id).await?;
    if !convo::set_owner(
        &client,
        &tenant.user_id,
        &view.conversation_id,
        owner,
        reason,
    )
    .await?
    {
        return Err(not_found());
    }
    tracing::info!(conversation.id = %view.conversation_id, owner = %owner, "conversation owner changed");
    let view = conversation_views::get(&client, &tenant.user_id, &view.conversation_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(view.into()))
}

/// A person's reply, sent through the conversation's channel. It takes the conversation
/// over. On WhatsApp, outside the 24-hour window since the customer's last message, it is
/// refused with 409: only an approved template may be sent then.
#[utoipa::path(
    post, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "`conv_…`")),
    request_body = SendMessageRequest,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 201, body = MessageResponse),
        (status = 409, description = "Outside WhatsApp's 24-hour window: send a template", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta refused the message for good: it is marked failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Meta could not take the message now (rate limit, outage): it is kept pending", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn send_message(
    State(state): State<ApiState>,
    State(graph): State<Graph>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<SendMessageRequest>,
) -> Result<(StatusCode, axum::Json<MessageResponse>), ApiError> {
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(ApiError::invalid("text", "must be 1 to 4096 characters"));
    }
    let mut client = state.pool.get().await?;
    let view = load(&client, &tenant, &id).await?;
    if !view.window_is_open(Utc::now()) {
        return Err(outside_window());
    }
    convo::set_owner(
        &client,
        &tenant.user_id,
        &view.conversation_id,
        ConversationOwner::Human,
        Some("a person replied"),
    )
    .await?;
    let tx = client.transaction().await?;
    let message_id = convo::insert_agent_message(
        &tx,
        &tenant.user_id,
        &view.conversation_id,
        text,
        MessageAuthor::Human,
        None,
    )
    .await?
    .ok_or_else(not_found)?;
    tx.commit().await?;

    send_stored(
        &graph,
        &state.sealing_key,
        &mut client,
        &tenant,
        &view,
        &message_id,
    )
    .await?;
    let message = conversation_views::message(&client, &message_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((StatusCode::CREATED, axum::Json(message.into())))
}

/// Sends a stored agent message again: one that a retryable Meta failure left `pending`
/// (the answer was 503). It goes through the same send-and-record path, so it is sent at
/// most once even when retried twice at the same time. A message that is no longer
/// `pending` is a 409.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/resend", tag = "conversations",
    params(
        ("id" = String, Path, description = "`conv_…`"),
        ("message_id" = String, Path, description = "`msg_…`: an agent message of the conversation"),
    ),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = MessageResponse),
        (status = 409, description = "Already sent or failed, or outside WhatsApp's 24-hour window", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta refused the message for good: it is marked failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Meta could not take the message now: it is kept pending", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_message(
    State(state): State<ApiState>,
    State(graph): State<Graph>,
    tenant: Tenant,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<axum::Json<MessageResponse>, ApiError> {
    let mut client = state.pool.get().await?;
    let view = load(&client, &tenant, &id).await?;
    let no_message = || ApiError::NotFound("no such message in this conversation".to_owned());
    let message_id = MessageId::parse(&message_id).ok_or_else(no_message)?;
    let message = convo::agent_message_in(&client, &view.conversation_id, &message_id)
        .await?
        .ok_or_else(no_message)?;
    if message.status != MessageStatus::Pending {
        return Err(ApiError::Conflict(format!(
            "the message is already {}: only a pending message can be sent again",
            message.status
        )));
    }
    if !view.window_is_open(Utc::now()) {
        return Err(outside_window());
    }
    send_stored(
        &graph,
        &state.sealing_key,
        &mut client,
        &tenant,
        &view,
        &message.message_id,
    )
    .await?;
    let message = conversation_views::message(&client, &message.message_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(message.into()))
}

fn outside_window() -> ApiError {
    ApiError::Conflict(
        "the customer's last message is more than 24 hours old: WhatsApp only allows an approved \
         template message outside the customer-service window"
            .to_owned(),
    )
}

/// Sends a stored agent message through the one send-and-record path, shared with the AI
/// worker (the rows say the same thing whichever of them sent), and answers Meta's refusal
/// with 502 (marked failed) and a retryable failure with 503 (kept pending).
async fn send_stored(
    graph: &Graph,
    sealing_key: &SealingKey,
    client: &mut PooledClient,
    tenant: &Tenant,
    view: &ConversationView,
    message_id: &MessageId,
) -> Result<(), ApiError> {
    let destination = Destination {
        platform: view.platform,
        user_id: &tenant.user_id,
        channel_key: &view.meta_phone_number_id,
        sealed_access_token: view.sealed_access_token.as_deref(),
        instagram_api: view.instagram_api,
        customer: &view.customer_phone,
    };
    let outcome = send_and_record(
        client,
        graph,
        sealing_key,
        destination,
        message_id,
        Payload::StoredText,
    )
    .await?;
    match outcome {
        SendOutcome::Sent { .. } | SendOutcome::AlreadyFinished { .. } | SendOutcome::Missing => {
            Ok(())
        }
        SendOutcome::Failed { reason, .. } => Err(ApiError::BadGateway(format!(
            "Meta refused the message ({reason}); it is marked failed"
        ))),
        SendOutcome::Retryable {
            code,
            reason,
            http_status,
        } => Err(ApiError::Unavailable(
            format!(
                "Meta could not take message {message_id} now (HTTP {http_status:?}, code \
                 {code:?}: {reason}); it is kept pending, resend it with \
                 POST /conversations/{{id}}/messages/{{message_id}}/resend"
            )
            .into(),
        )),
    }
}
