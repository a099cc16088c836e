use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, path_regex},
};

/// OpenAI's Responses API, deterministic: answers "Echo: <text>", and calls
/// `handoff_to_human` when the text asks for a human; after the tool result it says a
/// colleague will reach out.
pub struct FakeModel;

impl Respond for FakeModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let first = &body["input"][0];
        let output = if first["type"] == "function_call_output" {
            json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "A colleague will reach out shortly." }] }])
        } else {
            let text = first["content"].as_str().unwrap_or_default();
            if text.to_lowercase().contains("human") {
                json!([{ "type": "function_call", "call_id": "call_1", "name": "handoff_to_human", "arguments": "{\"reason\":\"customer asked for a person\"}" }])
            } else {
                json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": format!("Echo: {text}") }] }])
            }
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({ "id": "resp_1", "object": "response", "output": output }))
    }
}

/// The Cloud API's send endpoint: accepts every message with a fresh `wamid`.
pub struct FakeSend(pub Arc<AtomicUsize>);

impl Respond for FakeSend {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": body["to"], "wa_id": body["to"] }],
            "messages": [{ "id": format!("wamid.OUT.{n}"), "message_status": "accepted" }],
        }))
    }
}

pub async fn mount_openai(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/conversations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "id": "conv_openai_1", "object": "conversation" })),
        )
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(FakeModel)
        .mount(server)
        .await;
}

pub async fn mount_meta(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/\d+/messages$"))
        .respond_with(FakeSend(Arc::new(AtomicUsize::new(0))))
        .mount(server)
        .await;
}

/// A Graph API error body.
pub fn meta_error(code: i64, title: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": { "message": title, "type": "OAuthException", "code": code, "error_data": { "messaging_product": "whatsapp", "details": title }, "fbtrace_id": "A1" }
    }))
}

/// The JSON bodies of the requests a fake received on a path.
pub async fn requests_to(server: &MockServer, suffix: &str) -> Vec<Value> {
    testkit::TestApp::json_bodies_to(server, suffix).await
}
