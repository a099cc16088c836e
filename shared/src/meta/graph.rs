//! The Graph API client: sending messages on WhatsApp (Cloud API) and Instagram. Reached
//! only over HTTP; tests and devstack point the base URLs at a fake.

use std::time::Duration;

use serde_json::{Value, json};

use super::errors::{SendFailure, classify};
use crate::domain::InstagramApi;

/// Base URLs of the Graph API.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `META_GRAPH_BASE_URL` (default `https://graph.facebook.com/v21.0`): WhatsApp and
    /// Instagram accounts connected through a Facebook Page.
    pub facebook_base_url: String,
    /// `INSTAGRAM_GRAPH_BASE_URL` (default `https://graph.instagram.com/v21.0`): Instagram
    /// accounts connected with Instagram Login.
    pub instagram_base_url: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl GraphConfig {
    /// Reads `META_GRAPH_BASE_URL` and `INSTAGRAM_GRAPH_BASE_URL`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            facebook_base_url: crate::config::optional_var("META_GRAPH_BASE_URL")?
                .unwrap_or_else(|| "https://graph.facebook.com/v21.0".to_owned()),
            instagram_base_url: crate::config::optional_var("INSTAGRAM_GRAPH_BASE_URL")?
                .unwrap_or_else(|| "https://graph.instagram.com/v21.0".to_owned()),
            timeout: Duration::from_secs(15),
        })
    }

    /// Both APIs at one base URL (a local fake).
    pub fn for_base_url(base_url: &str) -> Self {
        Self {
            facebook_base_url: base_url.to_owned(),
            instagram_base_url: base_url.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A send Meta refused or could not take.
#[derive(Debug, Clone, thiserror::Error)]
#[error("send failed ({kind:?}): {code:?} {message}")]
pub struct SendError {
    pub kind: SendFailure,
    /// Meta's `error.code`, when it gave one.
    pub code: Option<i64>,
    pub message: String,
}

/// A message Meta accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `wamid.…` / Instagram `mid`: matches later status webhooks.
    pub platform_message_id: String,
    /// WhatsApp's `message_status` (`accepted`, `held_for_quality_assessment`, `paused`):
    /// accepted is not delivered; delivery comes from status webhooks.
    pub message_status: Option<String>,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Graph {
    http: reqwest::Client,
    config: GraphConfig,
}

impl Graph {
    /// A client on a shared reqwest client.
    pub fn new(http: reqwest::Client, config: GraphConfig) -> Self {
        Self { http, config }
    }

    /// Sends a WhatsApp text message from the Cloud API number `phone_number_id` to `to`
    /// (digits, no `+`).
    pub async fn send_whatsapp_text(
        &self,
        phone_number_id: &str,
        token: &str,
        to: &str,
        text: &str,
    ) -> Result<Sent, SendError> {
        let url = format!(
            "{}/{phone_number_id}/messages",
            self.config.facebook_base_url.trim_end_matches('/')
        );
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": false, "body": text },
        });
        let response = self.post(&url, token, &body).await?;
        let message = response.pointer("/messages/0");
        let id = message.and_then(|m| m.get("id")).and_then(Value::as_str);
        match id {
            Some(id) => Ok(Sent {
                platform_message_id: id.to_owned(),
                message_status: message
                    .and_then(|m| m.get("message_status"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }),
            None => Err(SendError {
                kind: SendFailure::Retryable,
                code: None,
                message: "Meta accepted the send but returned no message id".to_owned(),
            }),
        }
    }

    /// Sends an Instagram text message from the account `account_id` to the
    /// Instagram-scoped `recipient_id`.
    pub async fn send_instagram_text(
        &self,
        api: InstagramApi,
        account_id: &str,
        token: &str,
        recipient_id: &str,
        text: &str,
    ) -> Result<Sent, SendError> {
        let base = match api {
            InstagramApi::InstagramLogin => &self.config.instagram_base_url,
            InstagramApi::FacebookPage => &self.config.facebook_base_url,
        };
        let url = format!("{}/{account_id}/messages", base.trim_end_matches('/'));
        let body = json!({ "recipient": { "id": recipient_id }, "message": { "text": text } });
        let response = self.post(&url, token, &body).await?;
        match response.get("message_id").and_then(Value::as_str) {
            Some(id) => Ok(Sent {
                platform_message_id: id.to_owned(),
                message_status: None,
            }),
            None => Err(SendError {
                kind: SendFailure::Retryable,
                code: None,
                message: "Meta accepted the send but returned no message id".to_owned(),
            }),
        }
    }

    async fn post(&self, url: &str, token: &str, body: &Value) -> Result<Value, SendError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .timeout(self.config.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| SendError {
                kind: SendFailure::Retryable,
                code: None,
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let payload: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(payload);
        }
        let code = payload.pointer("/error/code").and_then(Value::as_i64);
        let message = payload
            .pointer("/error/error_data/details")
            .or_else(|| payload.pointer("/error/message"))
            .and_then(Value::as_str)
            .unwrap_or("no error message")
            .to_owned();
        Err(SendError {
            kind: classify(status, code),
            code,
            message,
        })
    }
}
