//! What customers and providers tell us, as the rest of the system sees it: a customer's
//! message ([`InboundMessage`], whatever platform it came from) and a delivery status of a
//! message we sent ([`StatusUpdate`]). The webhook (`meta::webhook`) and the website chat
//! build them; the inbox and the delivery statuses (`db::inbound`, `db::delivery`) store
//! them, so the database layer depends on no provider's payloads.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DeliveryStatus, Platform};

/// A customer's message, normalised across platforms and message types.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub platform: Platform,
    /// Routes to the channel: WhatsApp `metadata.phone_number_id`, Instagram recipient id,
    /// the widget key of a webchat.
    pub channel_key: String,
    /// `wamid.…`, Instagram `mid` or `wc_…`: the dedupe key.
    pub platform_message_id: String,
    /// WhatsApp `wa_id` (digits), Instagram-scoped sender id, or webchat visitor id.
    pub customer_id: String,
    /// The profile name WhatsApp sends along, when it does.
    pub customer_name: Option<String>,
    /// The provider's timestamp.
    pub sent_at: DateTime<Utc>,
    /// Meta's message type (`text`, `image`, `button`, `interactive`, …).
    pub message_type: String,
    /// What a person reads: the text, or a placeholder such as `[image] caption`.
    pub text: String,
    /// Everything else worth keeping (media ids, button payloads, context, referral, …).
    pub metadata: Value,
}

/// A delivery status of a message we sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub channel_key: String,
    /// The id the provider gave our message when it accepted it.
    pub platform_message_id: String,
    pub status: DeliveryStatus,
    pub timestamp: DateTime<Utc>,
    pub recipient_id: Option<String>,
    /// For `failed`: the provider's errors.
    pub errors: Vec<StatusError>,
}

/// One error of a failed status (serialized as kept with a parked status: `code`, `title`,
/// `details`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusError {
    pub code: i64,
    pub title: String,
    pub details: Option<String>,
}

impl StatusError {
    /// "131047: Re-engagement message (More than 24 hours …)".
    pub fn describe(&self) -> String {
        match &self.details {
            Some(details) => format!("{}: {} ({details})", self.code, self.title),
            None => format!("{}: {}", self.code, self.title),
        }
    }
}

impl StatusUpdate {
    /// Every error, described, joined by `; ` (`None` when there is none).
    pub fn error_text(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| {
            self.errors
                .iter()
                .map(StatusError::describe)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The first error's code, as text.
    pub fn error_code(&self) -> Option<String> {
        self.errors.first().map(|e| e.code.to_string())
    }
}

/// How a customer is keyed in `conversations.customer_phone` and `contacts.phone`: E.164 for
/// WhatsApp (`wa_id` has no `+`), the platform's id elsewhere.
pub fn customer_key(platform: Platform, customer_id: &str) -> String {
    match platform {
        Platform::WhatsApp if !customer_id.starts_with('+') => format!("+{customer_id}"),
        _ => customer_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whatsapp_customer_is_keyed_in_e164_and_others_as_given() {
        assert_eq!(
            customer_key(Platform::WhatsApp, "16505551234"),
            "+16505551234"
        );
        assert_eq!(
            customer_key(Platform::WhatsApp, "+16505551234"),
            "+16505551234"
        );
        assert_eq!(customer_key(Platform::Instagram, "1789"), "1789");
        assert_eq!(customer_key(Platform::Webchat, "vis_01"), "vis_01");
    }

    #[test]
    fn a_failed_status_describes_every_error() {
        let update = StatusUpdate {
            channel_key: "1".to_owned(),
            platform_message_id: "wamid.X".to_owned(),
            status: DeliveryStatus::Failed,
            timestamp: Utc::now(),
            recipient_id: None,
            errors: vec![
                StatusError {
                    code: 131047,
                    title: "Re-engagement message".to_owned(),
                    details: Some("More than 24 hours".to_owned()),
                },
                StatusError {
                    code: 131026,
                    title: "Undeliverable".to_owned(),
                    details: None,
                },
            ],
        };
        assert_eq!(
            update.error_text().as_deref(),
            Some("131047: Re-engagement message (More than 24 hours); 131026: Undeliverable")
        );
        assert_eq!(update.error_code().as_deref(), Some("131047"));
    }
}
