//! The one send-and-record path: a stored agent message is sent on the customer's channel
//! and its outcome is recorded, in one function ([`send_and_record`]) that the AI worker
//! and a person's reply (and, next, template sends) all call, so they cannot disagree.
//!
//! - WhatsApp goes to the Cloud API, Instagram to the host its connection uses, webchat is
//!   stored for the widget to poll (nothing leaves the system). Each platform is matched
//!   explicitly.
//! - Sent: the message becomes `sent` with Meta's id, its error fields are cleared, and a
//!   `message_delivery_status` row (`pending` until status webhooks arrive) is written.
//! - A permanent failure ([`SendFailure::Permanent`] in `meta::errors`): `failed`, Meta's
//!   code, class `permanent`, a `failed` delivery-status row with the reason.
//! - A retryable failure: the message stays `pending`, with Meta's code, class `retryable`
//!   and the reason on its delivery-status row. The caller owns the retry: the worker hands
//!   the job back to SQS; the API answers 503 and the message waits, `pending`, for the
//!   next attempt.
//!
//! The message row is locked (`FOR UPDATE`) for the whole call and a message is sent only
//! while `pending`, so two callers of the same message send it once.

use secrecy::SecretString;

use crate::{
    crypto::{SealingKey, SecretKind},
    db::{DbError, PooledClient, conversations as convo},
    domain::{InstagramApi, MessageId, MessageStatus, Platform, UserId, customer_key},
    meta::{
        errors::SendFailure,
        graph::{Graph, GraphError, MessageContent, Sent, instagram::InstagramContent},
    },
};

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub platform: Platform,
    /// The tenant: only its messages are sent and recorded (and its contact counted).
    pub user_id: &'a UserId,
    /// The channel's provider id (`phone_numbers.meta_phone_number_id`).
    pub channel_key: &'a str,
    pub sealed_access_token: Option<&'a str>,
    pub instagram_api: Option<InstagramApi>,
    /// The customer: WhatsApp number (with or without `+`), Instagram-scoped id, visitor id.
    pub customer: &'a str,
}

/// What to send for a stored message.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The message's own stored text (AI and person replies).
    StoredText,
    /// WhatsApp content (a template, interactive, media): refused for good on other
    /// platforms.
    WhatsApp(&'a MessageContent),
}

/// What [`send_and_record`] did; the rows already say the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Meta accepted it (or, for webchat, it is stored for the widget): now `sent`.
    Sent {
        platform_message_id: String,
        /// WhatsApp's `message_status` (`accepted`, …), when Meta gave one.
        message_status: Option<String>,
    },
    /// It may pass later: still `pending`, with the code and reason recorded.
    Retryable {
        code: Option<i64>,
        reason: String,
        /// The HTTP status Meta answered, when it answered.
        http_status: Option<u16>,
    },
    /// It can never be delivered as it is: now `failed`.
    Failed { code: Option<i64>, reason: String },
    /// It was not `pending` (an earlier attempt finished it): nothing was sent.
    AlreadyFinished { status: MessageStatus },
    /// No such message.
    Missing,
}

/// Sends the stored agent message `message_id` to `destination` and records the outcome
/// (see the module documentation). Errors only when the database fails; then nothing was
/// recorded, and the message is still `pending` unless the send had happened.
/// A message of another tenant is [`SendOutcome::Missing`].
#[tracing::instrument(skip_all, fields(message.id = %message_id, platform = %destination.platform))]
pub async fn send_and_record(
    client: &mut PooledClient,
    graph: &Graph,
    key: &SealingKey,
    destination: Destination<'_>,
    message_id: &MessageId,
    payload: Payload<'_>,
) -> Result<SendOutcome, DbError> {
    let tx = client.transaction().await?;
    let Some(message) = convo::lock_outgoing(&tx, destination.user_id, message_id).await? else {
        return Ok(SendOutcome::Missing);
    };
    if message.status != MessageStatus::Pending {
        return Ok(SendOutcome::AlreadyFinished {
            status: message.status,
        });
    }
    let sent = send(graph, key, destination, message_id, &message.text, payload).await;
    let outcome = match sent {
        Ok(sent) => {
            let customer = crate::domain::CustomerIdentity::of_conversation(
                destination.platform,
                &customer_key(destination.platform, destination.customer),
            );
            convo::mark_sent(
                &tx,
                destination.user_id,
                message_id,
                &sent.platform_message_id,
                &customer,
            )
            .await?;
            SendOutcome::Sent {
                platform_message_id: sent.platform_message_id,
                message_status: sent.message_status,
            }
        }
        Err(error) => {
            let class = error.send_failure();
            tracing::warn!(
                meta.code = error.code,
                meta.subcode = error.subcode,
                meta.fbtrace_id = error.fbtrace_id.as_deref(),
                http.status = error.status,
                class = %class,
                "Meta did not take the message"
            );
            convo::mark_send_failure(
                &tx,
                destination.user_id,
                message_id,
                class,
                error.code_text(),
                &error.message,
            )
            .await?;
            match class {
                SendFailure::Retryable => SendOutcome::Retryable {
                    code: error.code,
                    reason: error.message,
                    http_status: error.status,
                },
                SendFailure::Permanent => SendOutcome::Failed {
                    code: error.code,
                    reason: error.message,
                },
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// The send itself, by platform.
async fn send(
    graph: &Graph,
    key: &SealingKey,
    destination: Destination<'_>,
    message_id: &MessageId,
    text: &str,
    payload: Payload<'_>,
) -> Result<Sent, GraphError> {
    let token = || {
        destination
            .sealed_access_token
            .and_then(|sealed| key.open(SecretKind::ChannelAccessToken, sealed).ok())
            .map(SecretString::from)
    };
    let no_token =
        || GraphError::not_sent("the channel's access token is missing or cannot be opened");
    match destination.platform {
        // The widget polls for stored messages: its own id stands in for a platform id.
        Platform::Webchat => Ok(Sent {
            platform_message_id: message_id.to_string(),
            message_status: None,
        }),
        Platform::WhatsApp => {
            let token = token().ok_or_else(no_token)?;
            let text_content;
            let content = match payload {
                Payload::StoredText => {
                    text_content = MessageContent::text(text);
                    &text_content
                }
                Payload::WhatsApp(content) => content,
            };
            graph
                .send_whatsapp(
                    destination.channel_key,
                    &token,
                    destination.customer,
                    content,
                )
                .await
        }
        Platform::Instagram => {
            let token = token().ok_or_else(no_token)?;
            let content = match payload {
                Payload::StoredText => InstagramContent::Text {
                    text: text.to_owned(),
                },
                Payload::WhatsApp(_) => {
                    return Err(GraphError::not_sent(
                        "WhatsApp content cannot be sent on Instagram",
                    ));
                }
            };
            let api = destination
                .instagram_api
                .unwrap_or(InstagramApi::InstagramLogin);
            graph
                .send_instagram(
                    api,
                    destination.channel_key,
                    &token,
                    destination.customer,
                    &content,
                )
                .await
        }
    }
}
