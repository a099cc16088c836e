//! How every Graph call is made: the base URLs (with the API version), the timeout, the
//! token (a [`SecretString`], sent only as a header and never logged), and Meta's error
//! body read into the one error type, [`GraphError`]. An error body that is not Graph's JSON
//! (a gateway's HTML page, a plain-text 502) is kept as text, not dropped.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};

use super::Graph;
use crate::meta::errors::{CheckFailure, SendFailure, classify, classify_check};

/// The Graph API version every default base URL names.
pub const GRAPH_API_VERSION: &str = "v21.0";

/// Base URLs and timeout of the Graph API.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `META_GRAPH_BASE_URL` (default `https://graph.facebook.com/v21.0`): WhatsApp and
    /// Instagram accounts connected through a Facebook Page.
    pub facebook_base_url: String,
    /// `INSTAGRAM_GRAPH_BASE_URL` (default `https://graph.instagram.com/v21.0`): Instagram
    /// accounts connected with Instagram Login.
    pub instagram_base_url: String,
    /// Per-request timeout (the whole request, body included).
    pub timeout: Duration,
}

impl GraphConfig {
    /// Reads `META_GRAPH_BASE_URL` and `INSTAGRAM_GRAPH_BASE_URL`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            facebook_base_url: crate::config::optional_var("META_GRAPH_BASE_URL")?
                .unwrap_or_else(|| format!("https://graph.facebook.com/{GRAPH_API_VERSION}")),
            instagram_base_url: crate::config::optional_var("INSTAGRAM_GRAPH_BASE_URL")?
                .unwrap_or_else(|| format!("https://graph.instagram.com/{GRAPH_API_VERSION}")),
            // Under the database's idle-in-transaction timeout (15 s): a send runs inside the
            // transaction that locks its message, which must outlive the call.
            timeout: Duration::from_secs(10),
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

/// Graph's error document: `{"error": {"message", "type", "code", "error_subcode",
/// "error_data": {"details"}, "fbtrace_id"}}`.
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
    pub error_data: Option<GraphErrorData>,
    pub fbtrace_id: Option<String>,
}

/// `error.error_data` (the Cloud API puts its human-readable detail there).
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorData {
    pub details: Option<String>,
}

/// Longest text kept of an error body that is not Graph's JSON.
const RAW_BODY_MAX_CHARS: usize = 500;

/// Any Graph call that did not succeed: no answer, an answer we cannot read, or Meta's
/// error. What to do about it comes from the one table in `meta::errors`
/// ([`GraphError::send_failure`], [`GraphError::check_failure`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Graph API error (HTTP {status:?}, code {code:?}): {message}")]
pub struct GraphError {
    /// The HTTP status, or `None` when no answer came (timeout, connection refused).
    pub status: Option<u16>,
    /// Meta's `error.code`.
    pub code: Option<i64>,
    /// Meta's `error.error_subcode`.
    pub subcode: Option<i64>,
    /// Meta's `error.type` (`OAuthException`, …).
    pub error_type: Option<String>,
    /// Meta's `error.error_data.details`, else `error.message`; for an answer that is not
    /// Graph's JSON, the status and the start of the body; else what went wrong on the way.
    pub message: String,
    /// Meta's `error.fbtrace_id`, for Meta's support.
    pub fbtrace_id: Option<String>,
    /// The body as text when it was not Graph's error JSON (at most 500 characters).
    pub raw_body: Option<String>,
    /// Where the failure came from.
    pub origin: ErrorOrigin,
}

/// Where a [`GraphError`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOrigin {
    /// Meta answered with an error status (its JSON error, or a body kept as text).
    Meta,
    /// No answer came (timeout, connection refused): Meta may or may not have acted.
    NoAnswer,
    /// A 2xx whose body could not be read as the expected answer.
    UnreadableAnswer,
    /// Nothing was sent: the request could not be made as it is (no token, content the
    /// platform does not take). No retry can change that.
    NotSent,
}

impl GraphError {
    /// No answer came at all.
    pub(crate) fn transport(error: &reqwest::Error) -> Self {
        Self::local(
            ErrorOrigin::NoAnswer,
            None,
            format!("Meta could not be reached: {error}"),
        )
    }

    /// A 2xx answer that does not say what it should.
    pub(crate) fn unreadable(status: u16, message: String) -> Self {
        Self::local(ErrorOrigin::UnreadableAnswer, Some(status), message)
    }

    /// A request that could not be made as it is; nothing was sent.
    pub fn not_sent(message: impl Into<String>) -> Self {
        Self::local(ErrorOrigin::NotSent, None, message.into())
    }

    fn local(origin: ErrorOrigin, status: Option<u16>, message: String) -> Self {
        Self {
            status,
            code: None,
            subcode: None,
            error_type: None,
            message,
            fbtrace_id: None,
            raw_body: None,
            origin,
        }
    }

    /// Reads a non-2xx answer: Graph's error JSON when it is one, else its text.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<GraphErrorBody>(body) {
            Ok(GraphErrorBody { error }) => Self {
                status: Some(status),
                code: error.code,
                subcode: error.error_subcode,
                error_type: error.kind,
                message: error
                    .error_data
                    .and_then(|data| data.details)
                    .or(error.message)
                    .unwrap_or_else(|| format!("HTTP {status} without an error message")),
                fbtrace_id: error.fbtrace_id,
                raw_body: None,
                origin: ErrorOrigin::Meta,
            },
            Err(_) => {
                let text: String = String::from_utf8_lossy(body)
                    .chars()
                    .take(RAW_BODY_MAX_CHARS)
                    .collect();
                let shown = if text.trim().is_empty() {
                    "an empty body".to_owned()
                } else {
                    text.trim().to_owned()
                };
                Self {
                    raw_body: Some(text),
                    ..Self::local(
                        ErrorOrigin::Meta,
                        Some(status),
                        format!("HTTP {status}: {shown}"),
                    )
                }
            }
        }
    }

    /// Whether a send that failed this way may pass later (the one table in
    /// `meta::errors`). No answer, or an answer we could not read, is retryable; a request
    /// that could not be made is not.
    pub fn send_failure(&self) -> SendFailure {
        match (self.origin, self.status) {
            (ErrorOrigin::Meta, Some(status)) => classify(status, self.code),
            (ErrorOrigin::NotSent, _) => SendFailure::Permanent,
            _ => SendFailure::Retryable,
        }
    }

    /// What a failed account check says about a channel being connected.
    pub fn check_failure(&self) -> CheckFailure {
        match (self.origin, self.status) {
            (ErrorOrigin::Meta, Some(status)) => classify_check(status, self.code),
            (ErrorOrigin::NotSent, _) => CheckFailure::Refused,
            _ => CheckFailure::Unavailable,
        }
    }

    /// A call Meta answered `{"success": false}`: refused.
    pub(crate) fn unsuccessful() -> Self {
        Self::local(
            ErrorOrigin::Meta,
            Some(200),
            "Meta answered success: false".to_owned(),
        )
    }

    /// Meta's code as stored in `error_code` columns.
    pub fn code_text(&self) -> Option<String> {
        self.code.map(|code| code.to_string())
    }
}

/// `{"success": true}`, Graph's answer to an edge write or a delete.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Success {
    pub(crate) success: bool,
}

impl Graph {
    /// `{facebook_base_url}/{path}`.
    pub(crate) fn facebook_url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.config.facebook_base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// A request with the token as `Authorization: Bearer`.
    pub(crate) fn authorized(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token.expose_secret())
    }

    /// Sends `request` with the configured timeout and reads a 2xx answer as `T`; anything
    /// else becomes a [`GraphError`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GraphError> {
        let response = request
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| GraphError::transport(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| GraphError::transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(GraphError::from_response(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            GraphError::unreadable(status, format!("Meta's answer could not be read: {e}"))
        })
    }
}
