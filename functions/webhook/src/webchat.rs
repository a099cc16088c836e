//! The website chat widget's endpoints: public and unauthenticated, scoped to a `webchat`
//! channel by its public widget key (`meta_phone_number_id`). A visitor's message goes
//! through the same inbox and reply queue as a WhatsApp message; the widget polls for the
//! conversation's messages after the last sequence number it has.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{
    api::{ApiError, FieldErrors, Query},
    db::{self, conversation_views, inbound::Recorded},
    domain::Platform,
    jobs::ReplyJob,
    meta::webhook::InboundMessage,
};

use crate::WebhookState;

/// The longest message a visitor may send.
pub const MAX_TEXT_CHARS: usize = 2000;

/// A visitor's message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The widget's id for this visitor (kept in the browser).
    visitor_id: String,
    text: String,
}

/// The stored message, before the AI answers.
#[derive(Debug, Serialize)]
pub struct AcceptedMessage {
    message_id: String,
    visitor_id: String,
    text: String,
    received_at: DateTime<Utc>,
    status: &'static str,
}

/// What the widget polls with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    visitor_id: String,
    /// The last sequence number the widget has (default 0).
    after: Option<i32>,
}

fn check_visitor(errors: &mut FieldErrors, visitor_id: &str) {
    let valid = !visitor_id.is_empty()
        && visitor_id.len() <= 100
        && visitor_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        errors.push("visitor_id", "must be 1 to 100 letters, digits, `-` or `_`");
    }
}

async fn channel(
    state: &WebhookState,
    widget_key: &str,
) -> Result<db::inbound::ChannelRoute, ApiError> {
    let client = state.pool.get().await?;
    db::inbound::route(&client, Platform::Webchat, widget_key)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such chat widget".to_owned()))
}

/// `POST /webchat/{widget_key}/messages`: stores the visitor's message and queues the reply.
pub async fn post_message(
    State(state): State<WebhookState>,
    Path(widget_key): Path<String>,
    shared::api::Json(body): shared::api::Json<PostMessage>,
) -> Result<(StatusCode, Json<AcceptedMessage>), ApiError> {
    let mut errors = FieldErrors::default();
    check_visitor(&mut errors, &body.visitor_id);
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        errors.push("text", format!("must be 1 to {MAX_TEXT_CHARS} characters"));
    }
    errors.into_result()?;
    let channel = channel(&state, &widget_key).await?;
    let client = state.pool.get().await?;
    let recent = db::inbound::sent_in_last_minute(&client, &channel, &body.visitor_id).await?;
    if recent >= i64::from(state.webchat_rate_per_minute) {
        return Err(ApiError::TooManyRequests(format!(
            "at most {} messages a minute per visitor; wait a moment",
            state.webchat_rate_per_minute
        )));
    }
    let received_at = Utc::now();
    let message = InboundMessage {
        platform: Platform::Webchat,
        channel_key: widget_key,
        platform_message_id: format!("wc_{}", ulid::Ulid::new().to_string().to_lowercase()),
        customer_id: body.visitor_id.clone(),
        customer_name: None,
        sent_at: received_at,
        message_type: "text".to_owned(),
        text: text.to_owned(),
        metadata: json!({}),
    };
    if db::inbound::record(&client, &channel, &message).await? == Recorded::New {
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
        db::inbound::mark_enqueued(&client, &message.platform_message_id).await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedMessage {
            message_id: message.platform_message_id,
            visitor_id: body.visitor_id,
            text: message.text,
            received_at,
            status: "received",
        }),
    ))
}

/// `GET /webchat/{widget_key}/messages?visitor_id=…&after=…`: the visitor's active
/// conversation's messages after a sequence number (an empty list before the first reply).
pub async fn poll_messages(
    State(state): State<WebhookState>,
    Path(widget_key): Path<String>,
    Query(query): Query<Poll>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::default();
    check_visitor(&mut errors, &query.visitor_id);
    let after = query.after.unwrap_or(0);
    if after < 0 {
        errors.push("after", "must be 0 or more");
    }
    errors.into_result()?;
    let channel = channel(&state, &widget_key).await?;
    let client = state.pool.get().await?;
    let conversation = conversation_views::active_conversation_id(
        &client,
        channel.phone_number_id.as_str(),
        &query.visitor_id,
    )
    .await?;
    let messages = match conversation {
        Some(id) => conversation_views::messages_after(&client, &id, after, 200).await?,
        None => Vec::new(),
    };
    let items: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            json!({
                "sequence_no": m.sequence_no,
                "sender": if m.sender == "user" { "visitor" } else { "agent" },
                "text": m.text,
                "timestamp": m.timestamp,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
