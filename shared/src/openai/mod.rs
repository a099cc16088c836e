//! OpenAI: the Conversations API (one OpenAI conversation per customer conversation) and the
//! Responses API with the agent's stored prompt. Reached only over HTTP through [`OpenAi`];
//! tests and devstack point `OPENAI_BASE_URL` at a fake.

pub mod extraction;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where and how to reach OpenAI.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`).
    pub base_url: String,
    /// `OPENAI_API_KEY`.
    pub api_key: SecretString,
    /// `OPENAI_TIMEOUT_SECS` (default 15): one call's whole time. A reply job makes up to
    /// four calls, and the worker's deadline margin is sized on it (docs/architecture.md).
    pub timeout: Duration,
}

impl OpenAiConfig {
    /// Reads `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `OPENAI_TIMEOUT_SECS`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            base_url: crate::config::optional_var("OPENAI_BASE_URL")?
                .unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
            api_key: SecretString::from(crate::config::required_var("OPENAI_API_KEY")?),
            timeout: Duration::from_secs(crate::config::parsed_var("OPENAI_TIMEOUT_SECS", 15)?),
        })
    }
}

/// A failed call, classified for retrying.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// 429, 5xx, 401/403, timeouts, connection failures: try again later. See [`classify`].
    #[error("OpenAI is unavailable or rate limited: {0}")]
    Retryable(String),
    /// Any other 4xx (bad prompt id, bad request): retrying will not help. See [`classify`].
    #[error("OpenAI refused the request: {0}")]
    Permanent(String),
}

/// A function the model asked us to call.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
}

/// What one response contained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelTurn {
    /// The assistant's text (all `output_text` parts of `message` items, joined).
    pub text: String,
    /// Function calls to execute before the model can finish.
    pub function_calls: Vec<FunctionCall>,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    config: OpenAiConfig,
}

impl OpenAi {
    /// A client on a shared reqwest client.
    pub fn new(http: reqwest::Client, config: OpenAiConfig) -> Self {
        Self { http, config }
    }

    /// Creates an OpenAI conversation and returns its id.
    pub async fn create_conversation(&self, metadata: &Value) -> Result<String, OpenAiError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let created: Created = self
            .post("/conversations", &json!({ "metadata": metadata }))
            .await?;
        Ok(created.id)
    }

    /// Calls the Responses API with the stored prompt, in the given conversation (never
    /// together with `previous_response_id`), with `input` items and our `tools`.
    pub async fn respond(
        &self,
        prompt_id: &str,
        variables: &Value,
        conversation_id: &str,
        input: Vec<Value>,
        tools: &Value,
    ) -> Result<ModelTurn, OpenAiError> {
        let body = json!({
            "prompt": { "id": prompt_id, "variables": variables },
            "conversation": conversation_id,
            "input": input,
            "tools": tools,
        });
        let response: Value = self.post("/responses", &body).await?;
        Ok(parse_turn(&response))
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, OpenAiError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.api_key.expose_secret())
            .timeout(self.config.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| OpenAiError::Retryable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| OpenAiError::Retryable(format!("unreadable response: {e}")));
        }
        let text = response.text().await.unwrap_or_default();
        Err(classify(status.as_u16(), &text))
    }
}

/// Classifies a failed call by HTTP status, with OpenAI's error `type`, `code` and
/// `message` (`{"error": {...}}`) in the text.
///
/// - 408, 409 (another request is using the conversation), 429 and 5xx: retryable.
/// - 401 and 403 (a revoked key, an unpaid account, a region block): retryable. They are an
///   operator's problem, not the message's: once the key is fixed every waiting message
///   should be answered, so they back off and end in the DLQ, from where they can be
///   redriven, instead of failing every customer's message for good.
/// - Any other 4xx (400 `invalid_request_error`, 404 unknown prompt or conversation, 422):
///   permanent: this request will never succeed.
pub fn classify(status: u16, body: &str) -> OpenAiError {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let field = |name: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let kind = [field("type"), field("code")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/");
    let detail = field("message").unwrap_or_else(|| body.to_owned());
    let mut message = if kind.is_empty() {
        format!("{status}: {detail}")
    } else {
        format!("{status} {kind}: {detail}")
    };
    if let Some((cut, _)) = message.char_indices().nth(300) {
        message.truncate(cut);
    }
    match status {
        408 | 409 | 429 | 401 | 403 | 500..=599 => OpenAiError::Retryable(message),
        _ => OpenAiError::Permanent(message),
    }
}

/// Walks a response's `output` items: `message` items give text through their
/// `output_text` parts; `function_call` items are calls to execute.
pub fn parse_turn(response: &Value) -> ModelTurn {
    let mut turn = ModelTurn::default();
    for item in response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if part.get("type").and_then(Value::as_str) == Some("output_text") {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            if !turn.text.is_empty() {
                                turn.text.push('\n');
                            }
                            turn.text.push_str(text);
                        }
                    }
                }
            }
            Some("function_call") => {
                let arguments = item
                    .get("arguments")
                    .and_then(Value::as_str)
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or(Value::Null);
                turn.function_calls.push(FunctionCall {
                    call_id: item
                        .get("call_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name: item
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments,
                });
            }
            _ => {}
        }
    }
    turn
}

/// The tools every agent gets.
pub fn agent_tools() -> Value {
    json!([{
        "type": "function",
        "name": HANDOFF_TOOL,
        "description": "Hand the conversation over to a human colleague when the customer asks for a person, or when you cannot help.",
        "parameters": {
            "type": "object",
            "properties": { "reason": { "type": "string", "description": "Why a person should take over" } },
            "required": ["reason"],
            "additionalProperties": false
        },
        "strict": true
    }])
}

/// The name of the hand-over tool.
pub const HANDOFF_TOOL: &str = "handoff_to_human";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_from_output_text_parts_and_calls_from_function_call_items() {
        let response = json!({
            "output": [
                { "type": "reasoning", "summary": [] },
                { "type": "message", "role": "assistant", "content": [
                    { "type": "output_text", "text": "Hello", "annotations": [] },
                    { "type": "refusal", "refusal": "no" },
                    { "type": "output_text", "text": "there" }
                ]},
                { "type": "function_call", "call_id": "call_1", "name": "handoff_to_human", "arguments": "{\"reason\":\"wants a person\"}" }
            ]
        });
        let turn = parse_turn(&response);
        assert_eq!(turn.text, "Hello\nthere");
        assert_eq!(turn.function_calls.len(), 1);
        assert_eq!(turn.function_calls[0].arguments["reason"], "wants a person");
    }

    #[test]
    fn errors_are_classified_by_status_and_keep_openais_reason() {
        let body = r#"{"error":{"message":"Prompt 'pmpt_x' not found.","type":"invalid_request_error","param":"prompt","code":null}}"#;
        let cases = [
            (400, true),
            (404, true),
            (422, true),
            (401, false),
            (403, false),
            (408, false),
            (409, false),
            (429, false),
            (500, false),
            (503, false),
        ];
        for (status, permanent) in cases {
            let error = classify(status, body);
            assert_eq!(
                matches!(error, OpenAiError::Permanent(_)),
                permanent,
                "status {status}: {error}"
            );
        }
        let OpenAiError::Permanent(reason) = classify(400, body) else {
            panic!("400 is permanent");
        };
        assert_eq!(
            reason,
            "400 invalid_request_error: Prompt 'pmpt_x' not found."
        );
    }

    #[test]
    fn an_error_reason_is_capped_and_survives_a_body_that_is_not_json() {
        let OpenAiError::Permanent(reason) = classify(400, &"é".repeat(1000)) else {
            panic!("400 is permanent");
        };
        assert_eq!(reason.chars().count(), 300);
    }
}
