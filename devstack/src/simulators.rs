//! Provider simulators for local runs: a Meta Graph API that accepts sends, keeps every
//! request for inspection and posts signed status webhooks back, and an OpenAI that answers
//! deterministically. They answer like the real services, so the real clients talk to them.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde_json::{Value, json};
use shared::meta::signature;

/// Shared state of the simulators.
#[derive(Debug, Clone)]
pub struct Simulators {
    requests: Arc<Mutex<Vec<Value>>>,
    counter: Arc<AtomicUsize>,
    /// Where status webhooks go (devstack's own `/webhook`), and the secret they are signed with.
    webhook_url: String,
    app_secret: String,
    http: reqwest::Client,
    /// Delay before each status webhook, as Meta's are not instant.
    pub status_delay: Duration,
}

impl Simulators {
    /// Simulators that post status webhooks to `webhook_url`, signed with `app_secret`.
    pub fn new(webhook_url: String, app_secret: String, http: reqwest::Client) -> Self {
        Self {
            requests: Arc::default(),
            counter: Arc::default(),
            webhook_url,
            app_secret,
            http,
            status_delay: Duration::from_millis(50),
        }
    }

    /// The routes, mounted under `/_sim`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/_sim/meta/requests", get(meta_requests))
            .route("/_sim/meta/{account}/messages", post(meta_send))
            .route("/_sim/openai/conversations", post(openai_conversation))
            .route("/_sim/openai/responses", post(openai_response))
            .with_state(self)
    }
}

/// `?after=N` returns only the requests after the first N (cheap polling).
#[derive(Debug, serde::Deserialize)]
struct After {
    after: Option<usize>,
}

async fn meta_requests(State(sim): State<Simulators>, Query(query): Query<After>) -> Json<Value> {
    let skip = query.after.unwrap_or(0);
    let requests = sim
        .requests
        .lock()
        .map(|r| r.iter().skip(skip).cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(requests))
}

async fn meta_send(
    State(sim): State<Simulators>,
    Path(account): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    let wamid = format!("wamid.SIM{n:08}");
    if let Ok(mut requests) = sim.requests.lock() {
        requests.push(json!({ "account": account, "body": body, "id": wamid }));
    }
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let is_whatsapp = body["messaging_product"] == "whatsapp";
    if is_whatsapp {
        let background = sim.clone();
        let (status_account, status_wamid, status_to) =
            (account.clone(), wamid.clone(), to.clone());
        tokio::spawn(async move {
            for status in ["sent", "delivered", "read"] {
                tokio::time::sleep(background.status_delay).await;
                background
                    .post_status(&status_account, &status_wamid, &status_to, status)
                    .await;
            }
        });
        Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": wamid, "message_status": "accepted" }],
        }))
    } else {
        Json(json!({ "recipient_id": body["recipient"]["id"], "message_id": wamid }))
    }
}

impl Simulators {
    async fn post_status(&self, account: &str, wamid: &str, to: &str, status: &str) {
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "0", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550000000", "phone_number_id": account },
                "statuses": [{ "id": wamid, "status": status, "timestamp": chrono::Utc::now().timestamp().to_string(), "recipient_id": to }]
            }}]}]
        })
        .to_string();
        let signature = signature::sign(self.app_secret.as_bytes(), payload.as_bytes());
        let sent = self
            .http
            .post(&self.webhook_url)
            .header("content-type", "application/json")
            .header(signature::SIGNATURE_HEADER, signature)
            .body(payload)
            .send()
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "simulated status webhook failed");
        }
    }
}

async fn openai_conversation(State(sim): State<Simulators>) -> Json<Value> {
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "id": format!("conv_sim{n:08}"), "object": "conversation" }))
}

/// Deterministic: "Thanks for your message: <text>", or a `handoff_to_human` call when the
/// customer asks for a human; after the tool result, a hand-over sentence.
async fn openai_response(Json(body): Json<Value>) -> Json<Value> {
    let first = &body["input"][0];
    let output = if first["type"] == "function_call_output" {
        json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "I'm handing you over to a colleague, who will reply here shortly." }] }])
    } else {
        let text = first["content"].as_str().unwrap_or_default();
        if text.to_lowercase().contains("human") || text.to_lowercase().contains("person") {
            json!([{ "type": "function_call", "call_id": "call_sim", "name": "handoff_to_human", "arguments": "{\"reason\":\"the customer asked for a person\"}" }])
        } else {
            json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": format!("Thanks for your message: {text}") }] }])
        }
    };
    Json(json!({ "id": "resp_sim", "object": "response", "status": "completed", "output": output }))
}
