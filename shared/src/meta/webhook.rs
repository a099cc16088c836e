//! Meta webhook payloads (WhatsApp Cloud API and Instagram messaging), parsed into the few
//! events the system acts on. Parsing is forgiving by design: Meta adds fields and message
//! types over time, and one entry we cannot read must not drop the others, so every entry,
//! change and message is read on its own and anything unknown becomes [`Event::Ignored`].
//!
//! Parsing is also where the payload meets the schema: an identifier that holds a NUL or is
//! longer than the column that will hold it makes its event [`Event::Unusable`] (logged and
//! acknowledged; a redelivery would be the same), and texts, names and metadata are cleaned
//! (U+0000, which PostgreSQL cannot store, becomes U+FFFD; a name or message type longer than
//! its column is cut), so an authenticated delivery never fails on its content.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{
    CUSTOMER_ID_MAX_CHARS, CUSTOMER_NAME_MAX_CHARS, DeliveryStatus, InboundMessage,
    MESSAGE_TYPE_MAX_CHARS, MetaChannelId, PROVIDER_MESSAGE_ID_MAX_CHARS, Platform, StatusError,
    StatusUpdate, contains_nul, customer_key, replace_nul, truncate_chars,
};

/// One thing a webhook delivery told us.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A customer wrote to a channel.
    Inbound(InboundMessage),
    /// A message we sent changed status.
    Status(StatusUpdate),
    /// A template of a WhatsApp Business Account changed: status, quality or category.
    Template(TemplateUpdate),
    /// Something we acknowledge and do not act on, with why (for the log).
    Ignored(String),
    /// An event we would act on but cannot store (an identifier with a NUL, or longer than
    /// its column), with why (for a warning). Acknowledged: a redelivery would be the same.
    Unusable(String),
}

/// A template event of a WABA (`message_template_status_update`,
/// `message_template_quality_update`, `template_category_update`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateUpdate {
    /// The WABA the entry is for (`entry.id`): templates are matched within it only.
    pub waba_id: String,
    /// `message_template_id`, a JSON number in Meta's payloads (a string accepted too).
    pub meta_template_id: String,
    /// `message_template_language` as sent (`en-US` in some payloads, `en_US` in others):
    /// kept for the log, never used to match.
    pub language: Option<String>,
    /// `entry.time`: orders events that arrive out of order.
    pub at: DateTime<Utc>,
    pub kind: TemplateUpdateKind,
}

/// What changed about a template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateUpdateKind {
    /// `event` (APPROVED, REJECTED, PAUSED, … or one not known yet), `reason` (`null` and
    /// `"NONE"` included), and the whole value (`rejection_info`, `other_info`,
    /// `disable_info`).
    Status {
        event: String,
        reason: Option<String>,
        details: Value,
    },
    /// `new_quality_score`: GREEN, YELLOW, RED, UNKNOWN.
    Quality { score: String },
    /// A category notice (`correct_category`, applied in 24 hours) or change
    /// (`previous_category` → `new_category`), as sent.
    Category {
        new_category: Option<String>,
        is_change: bool,
        details: Value,
    },
}

/// The body is JSON but not a webhook envelope at all.
#[derive(Debug, thiserror::Error)]
#[error("not a webhook envelope: {0}")]
pub struct EnvelopeError(String);

#[derive(Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Value>,
}

/// Parses a (signature-checked) webhook body into events, entry by entry.
pub fn parse(body: &Value) -> Result<Vec<Event>, EnvelopeError> {
    let envelope = Envelope::deserialize(body).map_err(|e| EnvelopeError(e.to_string()))?;
    let mut events = Vec::new();
    match envelope.object.as_str() {
        "whatsapp_business_account" => {
            for entry in &envelope.entry {
                whatsapp_entry(entry, &mut events);
            }
        }
        "instagram" | "page" => {
            for entry in &envelope.entry {
                instagram_entry(entry, &mut events);
            }
        }
        other => events.push(Event::Ignored(format!("object `{other}`"))),
    }
    Ok(events)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn unix_seconds(raw: Option<&Value>) -> DateTime<Utc> {
    let seconds = match raw {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    seconds
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now)
}

fn whatsapp_entry(entry: &Value, events: &mut Vec<Event>) {
    let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
        events.push(Event::Ignored("entry without changes".to_owned()));
        return;
    };
    for change in changes {
        let field = change
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if matches!(
            field,
            "message_template_status_update"
                | "message_template_quality_update"
                | "template_category_update"
        ) {
            events.push(template_change(
                entry,
                field,
                change.get("value").unwrap_or(&Value::Null),
            ));
            continue;
        }
        if field != "messages" {
            events.push(Event::Ignored(format!("whatsapp field `{field}`")));
            continue;
        }
        let value = change.get("value").unwrap_or(&Value::Null);
        let Some(channel_key) = str_at(value, "/metadata/phone_number_id") else {
            events.push(Event::Ignored(
                "messages change without metadata.phone_number_id".to_owned(),
            ));
            continue;
        };
        if let Err(reason) = check_id(channel_key, MetaChannelId::MAX_CHARS, "phone_number_id") {
            events.push(Event::Unusable(reason));
            continue;
        }
        let names: Vec<(String, String)> = value
            .get("contacts")
            .and_then(Value::as_array)
            .map(|contacts| {
                contacts
                    .iter()
                    .filter_map(|c| {
                        Some((
                            c.get("wa_id")?.as_str()?.to_owned(),
                            str_at(c, "/profile/name")?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for message in value
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            events.push(match whatsapp_message(channel_key, message, &names) {
                Some(inbound) => checked_inbound(inbound),
                None => Event::Ignored("whatsapp message without id or sender".to_owned()),
            });
        }
        for status in value
            .get("statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            events.push(whatsapp_status(channel_key, status));
        }
    }
}

fn whatsapp_message(
    channel_key: &str,
    message: &Value,
    names: &[(String, String)],
) -> Option<InboundMessage> {
    let id = message.get("id")?.as_str()?.to_owned();
    let from = message.get("from")?.as_str()?.to_owned();
    let message_type = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let body = message.get(&message_type).unwrap_or(&Value::Null);
    let mut metadata = json!({});
    let text = match message_type.as_str() {
        "text" => body
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "interactive" => {
            let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
            let reply = body.get(kind).unwrap_or(&Value::Null);
            metadata["interactive"] = json!({
                "type": kind,
                "id": reply.get("id"),
                "title": reply.get("title"),
                "description": reply.get("description"),
            });
            reply
                .get("title")
                .and_then(Value::as_str)
                .map_or_else(|| format!("[{kind}]"), str::to_owned)
        }
        "button" => {
            metadata["button"] =
                json!({ "payload": body.get("payload"), "text": body.get("text") });
            body.get("text")
                .and_then(Value::as_str)
                .unwrap_or("[button]")
                .to_owned()
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            metadata["media"] = json!({
                "id": body.get("id"),
                "mime_type": body.get("mime_type"),
                "sha256": body.get("sha256"),
                "caption": body.get("caption"),
                "filename": body.get("filename"),
                "voice": body.get("voice"),
                "animated": body.get("animated"),
            });
            let label = match body.get("filename").and_then(Value::as_str) {
                Some(filename) => format!("[{message_type}: {filename}]"),
                None => format!("[{message_type}]"),
            };
            match body.get("caption").and_then(Value::as_str) {
                Some(caption) if !caption.is_empty() => format!("{label} {caption}"),
                _ => label,
            }
        }
        "location" => {
            metadata["location"] = body.clone();
            let lat = body
                .get("latitude")
                .and_then(Value::as_f64)
                .unwrap_or_default();
            let long = body
                .get("longitude")
                .and_then(Value::as_f64)
                .unwrap_or_default();
            match body.get("name").and_then(Value::as_str) {
                Some(name) => format!("[location: {name} ({lat}, {long})]"),
                None => format!("[location: {lat}, {long}]"),
            }
        }
        "contacts" => {
            metadata["contacts"] = message.get("contacts").cloned().unwrap_or(Value::Null);
            let names: Vec<&str> = message
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| str_at(c, "/name/formatted_name"))
                .collect();
            format!("[contacts: {}]", names.join(", "))
        }
        "reaction" => {
            metadata["reaction"] =
                json!({ "message_id": body.get("message_id"), "emoji": body.get("emoji") });
            match body.get("emoji").and_then(Value::as_str) {
                Some(emoji) if !emoji.is_empty() => format!("[reaction: {emoji}]"),
                _ => "[reaction removed]".to_owned(),
            }
        }
        "system" => {
            metadata["system"] = body.clone();
            body.get("body")
                .and_then(Value::as_str)
                .unwrap_or("[system]")
                .to_owned()
        }
        "order" => {
            metadata["order"] = body.clone();
            "[order]".to_owned()
        }
        other => {
            metadata["errors"] = message.get("errors").cloned().unwrap_or(Value::Null);
            format!("[unsupported message: {other}]")
        }
    };
    if let Some(context) = message.get("context") {
        metadata["context"] = context.clone();
    }
    if let Some(referral) = message.get("referral") {
        metadata["referral"] = referral.clone();
    }
    let customer_name = names
        .iter()
        .find(|(wa_id, _)| *wa_id == from)
        .map(|(_, name)| name.clone());
    Some(InboundMessage {
        platform: Platform::WhatsApp,
        channel_key: channel_key.to_owned(),
        platform_message_id: id,
        customer_id: from,
        customer_name,
        sent_at: unix_seconds(message.get("timestamp")),
        message_type,
        text,
        metadata,
    })
}

/// A template change of the WABA `entry.id`.
fn template_change(entry: &Value, field: &str, value: &Value) -> Event {
    let waba_id = match entry.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Event::Ignored(format!("{field} without the WABA's id")),
    };
    let meta_template_id = match value.get("message_template_id") {
        Some(Value::Number(id)) => id.to_string(),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Event::Ignored(format!("{field} without message_template_id")),
    };
    if contains_nul(&waba_id) || contains_nul(&meta_template_id) {
        return Event::Unusable(format!("{field} with a NUL in an id"));
    }
    // Meta's texts may carry anything; PostgreSQL's JSONB refuses U+0000.
    let mut details = value.clone();
    clean_json(&mut details);
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(|s| replace_nul(s).into_owned())
    };
    // Meta's own reference once listed the quality update under the status field: the
    // payload's shape decides.
    let kind = if let Some(score) = text("new_quality_score") {
        TemplateUpdateKind::Quality { score }
    } else if field == "template_category_update" {
        let is_change =
            value.get("previous_category").is_some() && value.get("new_category").is_some();
        TemplateUpdateKind::Category {
            new_category: text("new_category"),
            is_change,
            details,
        }
    } else if let Some(event) = text("event") {
        TemplateUpdateKind::Status {
            event,
            reason: text("reason"),
            details,
        }
    } else {
        return Event::Ignored(format!("{field} without an event"));
    };
    Event::Template(TemplateUpdate {
        waba_id,
        meta_template_id,
        language: text("message_template_language"),
        at: unix_seconds(entry.get("time")),
        kind,
    })
}

fn whatsapp_status(channel_key: &str, status: &Value) -> Event {
    let Some(id) = status.get("id").and_then(Value::as_str) else {
        return Event::Ignored("status without id".to_owned());
    };
    if let Err(reason) = check_id(id, PROVIDER_MESSAGE_ID_MAX_CHARS, "status id") {
        return Event::Unusable(reason);
    }
    let delivery = match status.get("status").and_then(Value::as_str) {
        Some("sent") => DeliveryStatus::Sent,
        Some("delivered") => DeliveryStatus::Delivered,
        Some("read") => DeliveryStatus::Read,
        Some("failed") => DeliveryStatus::Failed,
        other => return Event::Ignored(format!("status `{}`", other.unwrap_or_default())),
    };
    let errors = status
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| StatusError {
            code: e.get("code").and_then(Value::as_i64).unwrap_or_default(),
            title: replace_nul(e.get("title").and_then(Value::as_str).unwrap_or_default())
                .into_owned(),
            details: str_at(e, "/error_data/details")
                .or_else(|| e.get("message").and_then(Value::as_str))
                .map(|details| replace_nul(details).into_owned()),
        })
        .collect();
    Event::Status(StatusUpdate {
        channel_key: channel_key.to_owned(),
        platform_message_id: id.to_owned(),
        status: delivery,
        timestamp: unix_seconds(status.get("timestamp")),
        recipient_id: status
            .get("recipient_id")
            .and_then(Value::as_str)
            .map(|recipient| replace_nul(recipient).into_owned()),
        errors,
    })
}

fn instagram_entry(entry: &Value, events: &mut Vec<Event>) {
    let Some(messaging) = entry.get("messaging").and_then(Value::as_array) else {
        events.push(Event::Ignored(
            "instagram entry without messaging".to_owned(),
        ));
        return;
    };
    for item in messaging {
        events.push(instagram_messaging(item));
    }
}

fn instagram_messaging(item: &Value) -> Event {
    let (Some(sender), Some(recipient)) =
        (str_at(item, "/sender/id"), str_at(item, "/recipient/id"))
    else {
        return Event::Ignored("instagram event without sender or recipient".to_owned());
    };
    let Some(message) = item.get("message") else {
        return Event::Ignored(
            "instagram event other than a message (read, reaction, postback)".to_owned(),
        );
    };
    // Our own messages come back as echoes: we stored them when we sent them.
    if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
        return Event::Ignored("instagram echo of our own message".to_owned());
    }
    // The customer unsent a message: acknowledged; the stored copy stays as history.
    if message.get("is_deleted").and_then(Value::as_bool) == Some(true) {
        return Event::Ignored("instagram message deleted by the customer".to_owned());
    }
    let Some(mid) = message.get("mid").and_then(Value::as_str) else {
        return Event::Ignored("instagram message without mid".to_owned());
    };
    let attachments: Vec<&Value> = message
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut metadata = json!({});
    let text = match message.get("text").and_then(Value::as_str) {
        Some(text) => text.to_owned(),
        None => attachments
            .iter()
            .map(|a| {
                format!(
                    "[{}]",
                    a.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("attachment")
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    if !attachments.is_empty() {
        metadata["attachments"] = Value::Array(attachments.iter().map(|a| (*a).clone()).collect());
    }
    if let Some(reply_to) = message.get("reply_to") {
        metadata["context"] = reply_to.clone();
    }
    let timestamp_ms = item
        .get("timestamp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let message_type = if message.get("text").is_some() {
        "text"
    } else {
        "attachment"
    };
    checked_inbound(InboundMessage {
        platform: Platform::Instagram,
        channel_key: recipient.to_owned(),
        platform_message_id: mid.to_owned(),
        customer_id: sender.to_owned(),
        customer_name: None,
        sent_at: Utc
            .timestamp_millis_opt(timestamp_ms)
            .single()
            .unwrap_or_else(Utc::now),
        message_type: message_type.to_owned(),
        text,
        metadata,
    })
}

/// Why an identifier cannot be stored, if it cannot.
fn check_id(id: &str, max_chars: usize, what: &str) -> Result<(), String> {
    if contains_nul(id) {
        return Err(format!("{what} contains a NUL character"));
    }
    let chars = id.chars().count();
    if chars > max_chars {
        return Err(format!(
            "{what} is {chars} characters long, more than the {max_chars} stored"
        ));
    }
    Ok(())
}

/// An inbound message as the inbox can store it: its identifiers fit their columns (else it
/// is [`Event::Unusable`]), its texts hold no NUL, its name and type fit their columns.
fn checked_inbound(mut message: InboundMessage) -> Event {
    let checked = check_id(&message.channel_key, MetaChannelId::MAX_CHARS, "channel id")
        .and_then(|()| {
            check_id(
                &message.platform_message_id,
                PROVIDER_MESSAGE_ID_MAX_CHARS,
                "message id",
            )
        })
        .and_then(|()| {
            check_id(
                &customer_key(message.platform, &message.customer_id),
                CUSTOMER_ID_MAX_CHARS,
                "customer id",
            )
        });
    if let Err(reason) = checked {
        return Event::Unusable(format!("{} message: {reason}", message.platform));
    }
    message.text = replace_nul(&message.text).into_owned();
    message.customer_name = message
        .customer_name
        .map(|name| truncate_chars(&replace_nul(&name), CUSTOMER_NAME_MAX_CHARS).to_owned());
    message.message_type =
        truncate_chars(&replace_nul(&message.message_type), MESSAGE_TYPE_MAX_CHARS).to_owned();
    clean_json(&mut message.metadata);
    Event::Inbound(message)
}

/// Replaces NUL in every string and key of a JSON value (`jsonb` cannot hold U+0000).
fn clean_json(value: &mut Value) {
    match value {
        Value::String(text) if contains_nul(text) => *text = replace_nul(text).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) if map.keys().any(|key| contains_nul(key)) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(key, mut value)| {
                    clean_json(&mut value);
                    (replace_nul(&key).into_owned(), value)
                })
                .collect();
        }
        Value::Object(map) => map.values_mut().for_each(clean_json),
        _ => {}
    }
}
