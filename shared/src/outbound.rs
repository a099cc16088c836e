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
use tracing::Instrument;

use crate::{
    crypto::{SealingKey, SecretKind},
    db::{DbError, PooledClient, Transaction, conversations as convo},
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
        /// When Meta's answer came.
        accepted_at: chrono::DateTime<chrono::Utc>,
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
    let outgoing = Outgoing {
        destination,
        message_id,
        payload,
        not_before: None,
    };
    let outcome = send_many(&tx, graph, key, &[outgoing]).await?.pop();
    tx.commit().await?;
    Ok(outcome.unwrap_or(SendOutcome::Missing))
}

/// One message of a [`send_many`] batch.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub destination: Destination<'a>,
    pub message_id: &'a MessageId,
    pub payload: Payload<'a>,
    /// Not sent before this instant (its send slot).
    pub not_before: Option<tokio::time::Instant>,
}

/// [`send_and_record`] for many messages, in the caller's transaction (the caller commits,
/// after recording its own rows in the same transaction): every message is locked (in id
/// order), each still `pending` one is sent at its `not_before`, concurrently, and the sent
/// ones are recorded in bulk. The answer is in `sends` order.
pub async fn send_many(
    tx: &Transaction<'_>,
    graph: &Graph,
    key: &SealingKey,
    sends: &[Outgoing<'_>],
) -> Result<Vec<SendOutcome>, DbError> {
    let wanted: Vec<(&MessageId, &UserId)> = sends
        .iter()
        .map(|s| (s.message_id, s.destination.user_id))
        .collect();
    let locked = convo::lock_outgoing_many(tx, &wanted).await?;
    let text_of = |id: &MessageId| {
        locked
            .iter()
            .find(|m| &m.message_id == id)
            .map(|m| (m.status, m.text.as_str()))
    };
    let attempts = sends.iter().map(|s| async move {
        match text_of(s.message_id) {
            None => None,
            Some((status, _)) if status != MessageStatus::Pending => None,
            Some((_, text)) => {
                if let Some(at) = s.not_before {
                    tokio::time::sleep_until(at).await;
                }
                let sent = send(graph, key, s.destination, s.message_id, text, s.payload)
                    .instrument(tracing::info_span!("send", message.id = %s.message_id))
                    .await;
                Some(sent.map(|sent| (sent, chrono::Utc::now())))
            }
        }
    });
    let results = futures_util::future::join_all(attempts).await;

    let mut outcomes = Vec::with_capacity(sends.len());
    for (s, result) in sends.iter().zip(results) {
        let outcome = match (text_of(s.message_id), result) {
            (None, _) => SendOutcome::Missing,
            (Some((status, _)), None) => SendOutcome::AlreadyFinished { status },
            (Some(_), Some(Ok((sent, accepted_at)))) => SendOutcome::Sent {
                platform_message_id: sent.platform_message_id,
                message_status: sent.message_status,
                accepted_at,
            },
            (Some(_), Some(Err(error))) => {
                let class = error.send_failure();
                tracing::warn!(
                    message.id = %s.message_id,
                    meta.code = error.code,
                    meta.subcode = error.subcode,
                    meta.fbtrace_id = error.fbtrace_id.as_deref(),
                    http.status = error.status,
                    class = %class,
                    "Meta did not take the message"
                );
                convo::mark_send_failure(
                    tx,
                    s.destination.user_id,
                    s.message_id,
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
        outcomes.push(outcome);
    }
    let sent: Vec<convo::SentMessage<'_>> = sends
        .iter()
        .zip(&outcomes)
        .filter_map(|(s, outcome)| match outcome {
            SendOutcome::Sent {
                platform_message_id,
                ..
            } => Some(convo::SentMessage {
                user: s.destination.user_id,
                message_id: s.message_id,
                platform_message_id,
                customer: crate::domain::CustomerIdentity::of_conversation(
                    s.destination.platform,
                    &customer_key(s.destination.platform, s.destination.customer),
                ),
            }),
            _ => None,
        })
        .collect();
    convo::mark_sent_many(tx, &sent).await?;
    Ok(outcomes)
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
