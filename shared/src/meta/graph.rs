//! The Graph API client: sending messages on WhatsApp (Cloud API) and Instagram, and the
//! account checks a channel passes before it is connected (whose number it is, whose
//! account, and subscribing our app to the WABA's webhooks). Reached only over HTTP; tests
//! and devstack point the base URLs at a fake.

use std::time::Duration;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::errors::{CheckFailure, SendFailure, classify, classify_check};
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

/// An account check Meta refused or could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Graph check failed ({failure:?}): {code:?} {message}")]
pub struct CheckError {
    pub failure: CheckFailure,
    /// Meta's `error.code`, when it gave one.
    pub code: Option<i64>,
    /// Meta's `error.error_subcode`.
    pub subcode: Option<i64>,
    /// Meta's `error.message` (or what went wrong on the way).
    pub message: String,
    /// Meta's `error.fbtrace_id`, for Meta's support.
    pub fbtrace_id: Option<String>,
}

/// Graph's error document: `{"error": {"message", "type", "code", "error_subcode",
/// "fbtrace_id"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorBody {
    pub error: GraphErrorDetail,
}

/// The `error` object of a Graph error document.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorDetail {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<i64>,
    pub error_subcode: Option<i64>,
    pub fbtrace_id: Option<String>,
}

/// A phone number of a WhatsApp Business Account (`GET /{waba_id}/phone_numbers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BusinessPhoneNumber {
    /// The Cloud API phone-number id (what webhooks and sends name).
    pub id: String,
    /// E.g. `+1 555-555-5555`.
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
}

/// One page of a Graph list.
#[derive(Debug, Clone, Deserialize)]
struct GraphPage<T> {
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Clone, Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    /// Present only when there is a next page.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// An Instagram professional account (`GET /{ig_user_id}?fields=id,username`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstagramAccount {
    pub id: String,
    pub username: Option<String>,
}

/// `{"success": true}`, Graph's answer to an edge write such as `subscribed_apps`.
#[derive(Debug, Clone, Deserialize)]
struct Success {
    success: bool,
}

/// Numbers asked for per page of a WABA's phone numbers, and pages read at most: a WABA
/// holds a handful of numbers (Meta's limit is in the tens), so 10 pages is generous.
const PHONE_NUMBERS_PAGE: &str = "100";
const MAX_PAGES: usize = 10;

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
        let url = format!(
            "{}/{account_id}/messages",
            self.base(api).trim_end_matches('/')
        );
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

    /// Finds `phone_number_id` among the numbers of the WhatsApp Business Account
    /// `waba_id`, reading them with `token`: `None` when the WABA has no such number. Proves
    /// both that the token may read the WABA and that the number is the WABA's.
    pub async fn find_waba_phone_number(
        &self,
        waba_id: &str,
        phone_number_id: &str,
        token: &str,
    ) -> Result<Option<BusinessPhoneNumber>, CheckError> {
        let url = format!(
            "{}/{waba_id}/phone_numbers",
            self.config.facebook_base_url.trim_end_matches('/')
        );
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("fields", "id,display_phone_number,verified_name"),
                ("limit", PHONE_NUMBERS_PAGE),
            ];
            if let Some(cursor) = after.as_deref() {
                query.push(("after", cursor));
            }
            let page: GraphPage<BusinessPhoneNumber> = self.get(&url, &query, token).await?;
            if let Some(found) = page.data.into_iter().find(|n| n.id == phone_number_id) {
                return Ok(Some(found));
            }
            after = page
                .paging
                .filter(|paging| paging.next.is_some())
                .and_then(|paging| paging.cursors)
                .and_then(|cursors| cursors.after);
            if after.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// Reads the Instagram account `account_id` with `token` (on the host its `api` uses).
    pub async fn instagram_account(
        &self,
        api: InstagramApi,
        account_id: &str,
        token: &str,
    ) -> Result<InstagramAccount, CheckError> {
        let url = format!("{}/{account_id}", self.base(api).trim_end_matches('/'));
        self.get(&url, &[("fields", "id,username")], token).await
    }

    /// Subscribes our app to the webhooks of the WhatsApp Business Account `waba_id`
    /// (`POST /{waba_id}/subscribed_apps`), so its numbers' messages reach our webhook
    /// without a step in Meta's dashboard. Subscribing twice is harmless.
    pub async fn subscribe_app_to_waba(
        &self,
        waba_id: &str,
        token: &str,
    ) -> Result<(), CheckError> {
        let url = format!(
            "{}/{waba_id}/subscribed_apps",
            self.config.facebook_base_url.trim_end_matches('/')
        );
        let request = self.http.post(&url).bearer_auth(token);
        let answer: Success = self.check_call(request).await?;
        if answer.success {
            Ok(())
        } else {
            Err(CheckError {
                failure: CheckFailure::Refused,
                code: None,
                subcode: None,
                message: "Meta answered success: false".to_owned(),
                fbtrace_id: None,
            })
        }
    }

    fn base(&self, api: InstagramApi) -> &str {
        match api {
            InstagramApi::InstagramLogin => &self.config.instagram_base_url,
            InstagramApi::FacebookPage => &self.config.facebook_base_url,
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> Result<T, CheckError> {
        let request = self.http.get(url).query(query).bearer_auth(token);
        self.check_call(request).await
    }

    async fn check_call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CheckError> {
        let unavailable = |message: String| CheckError {
            failure: CheckFailure::Unavailable,
            code: None,
            subcode: None,
            message,
            fbtrace_id: None,
        };
        let response = request
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| unavailable(format!("Meta's answer could not be read: {e}")));
        }
        let detail = serde_json::from_slice::<GraphErrorBody>(&bytes)
            .ok()
            .map(|body| body.error);
        let code = detail.as_ref().and_then(|d| d.code);
        Err(CheckError {
            failure: classify_check(status, code),
            code,
            subcode: detail.as_ref().and_then(|d| d.error_subcode),
            message: detail
                .as_ref()
                .and_then(|d| d.message.clone())
                .unwrap_or_else(|| format!("HTTP {status} without a Graph error")),
            fbtrace_id: detail.and_then(|d| d.fbtrace_id),
        })
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
