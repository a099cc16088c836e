//! Sending a text to a customer on whichever channel they wrote on: the one place that knows
//! WhatsApp goes to the Cloud API, Instagram to the host its connection uses, and webchat is
//! stored for the widget to poll. The worker (AI replies) and the API (a person's replies)
//! both send through here.

use crate::{
    crypto::{SealingKey, SecretKind},
    domain::{InstagramApi, Platform},
    meta::{
        errors::SendFailure,
        graph::{Graph, SendError, Sent},
    },
};

/// Where a text goes.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub platform: Platform,
    /// The channel's provider id (`phone_numbers.meta_phone_number_id`).
    pub channel_key: &'a str,
    pub sealed_access_token: Option<&'a str>,
    pub instagram_api: Option<InstagramApi>,
    /// The customer: WhatsApp number (with or without `+`), Instagram-scoped id, visitor id.
    pub customer: &'a str,
}

/// Sends `text`. For webchat nothing leaves the system: the message is already stored and
/// the widget polls for it, so its own id stands in for the platform id.
pub async fn send_text(
    graph: &Graph,
    key: &SealingKey,
    destination: Destination<'_>,
    message_id: &str,
    text: &str,
) -> Result<Sent, SendError> {
    if destination.platform == Platform::Webchat {
        return Ok(Sent {
            platform_message_id: message_id.to_owned(),
            message_status: None,
        });
    }
    let token = destination
        .sealed_access_token
        .and_then(|sealed| key.open(SecretKind::ChannelAccessToken, sealed).ok())
        .ok_or_else(|| SendError {
            kind: SendFailure::Permanent,
            code: None,
            message: "the channel's access token is missing or cannot be opened".to_owned(),
        })?;
    match destination.platform {
        Platform::Instagram => {
            let api = destination
                .instagram_api
                .unwrap_or(InstagramApi::InstagramLogin);
            graph
                .send_instagram_text(
                    api,
                    destination.channel_key,
                    &token,
                    destination.customer,
                    text,
                )
                .await
        }
        _ => {
            let to = destination.customer.trim_start_matches('+');
            graph
                .send_whatsapp_text(destination.channel_key, &token, to, text)
                .await
        }
    }
}
