//! Provider simulators for local runs: a Meta Graph API that accepts sends, keeps every
//! request for inspection and posts signed status webhooks back, and an OpenAI that answers
//! deterministically. They answer like the real services, so the real clients talk to them.
//!
//! The Meta simulator's accounts follow fixed rules, so any id can be used without set-up:
//!
//! - A WhatsApp Business Account `W` (any decimal id) has ten phone numbers: `W0` to `W9`
//!   (its id followed by one digit). `106540352242922` is a number of WABA
//!   `10654035224292`; `GET /{W}/phone_numbers` lists them (paged by `limit` / `after`).
//! - Every decimal id is an Instagram account any valid token may read.
//! - A token that starts with `invalid` is refused with Graph error 190 (invalid OAuth
//!   access token) on every call, sends included.
//! - `POST /{W}/subscribed_apps` answers `{"success": true}`; `GET /_sim/meta/subscriptions`
//!   lists the WABAs subscribed so far.
//! - Message templates, their uploads, sends and reviews: [`meta_templates`].
//! - WhatsApp sends meet Cloud API's limits: at most 80 per second per number (130429), one
//!   per 6 s to the same recipient (131056); chosen recipients get one of Meta's errors
//!   (131049, 131026, …, at once or in a `failed` status webhook) or a held answer; every
//!   send is counted (per number, per recipient, duplicate template sends). Configured at
//!   `POST /_sim/meta/behaviour`, counted at `GET /_sim/meta/stats`: [`meta_limits`].
//! - Sends get signed `sent`, `delivered` and `read` status webhooks, each `status_delay_ms`
//!   (50 ms) after the last; `{"status_webhooks": false}` turns them off.

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
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use shared::meta::signature;

pub mod extraction;
pub mod google;
pub mod meta_limits;
pub mod meta_templates;

pub use meta_limits::{
    MetaBehaviour, MetaBehaviourUpdate, MetaDefaults, MetaStats, RecipientBehaviour,
};

/// Shared state of the simulators.
#[derive(Debug, Clone)]
pub struct Simulators {
    requests: Arc<Mutex<Vec<Value>>>,
    subscriptions: Arc<Mutex<Vec<String>>>,
    counter: Arc<AtomicUsize>,
    templates: meta_templates::TemplateStore,
    /// Where status webhooks go (devstack's own `/webhook`), and the secret they are signed with.
    webhook_url: String,
    app_secret: String,
    http: reqwest::Client,
    /// Send limits, chosen failures, counts, and the status webhooks' delay (`meta_limits`).
    limits: meta_limits::MetaLimits,
    /// OpenAI's extraction answers (`extraction`).
    pub extraction: extraction::ExtractionSim,
}

/// Microseconds since the Unix epoch: where this run's ids start.
fn clock_start() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            usize::try_from(elapsed.as_micros()).unwrap_or(usize::MAX / 2)
        })
}

impl Simulators {
    /// Simulators that post status webhooks to `webhook_url`, signed with `app_secret`.
    pub fn new(webhook_url: String, app_secret: String, http: reqwest::Client) -> Self {
        Self {
            requests: Arc::default(),
            subscriptions: Arc::default(),
            // Ids (wamids, template ids, conversation ids) continue from the clock, not from
            // zero: devstack keeps its database between runs, and a wamid it stored before a
            // restart must never be answered again.
            counter: Arc::new(AtomicUsize::new(clock_start())),
            templates: meta_templates::TemplateStore::default(),
            webhook_url,
            app_secret,
            http,
            limits: meta_limits::MetaLimits::default(),
            extraction: extraction::ExtractionSim::default(),
        }
    }

    /// The routes, mounted under `/_sim`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/_sim/meta/requests", get(meta_requests))
            .route("/_sim/meta/subscriptions", get(meta_subscriptions))
            .route("/_sim/meta/{account}/messages", post(meta_send))
            .route("/_sim/meta/{waba}/phone_numbers", get(meta_phone_numbers))
            .route("/_sim/meta/{waba}/subscribed_apps", post(meta_subscribe))
            .route(
                "/_sim/meta/{id}",
                get(meta_node).post(meta_templates::post_node),
            )
            .merge(meta_templates::router())
            .merge(meta_limits::router())
            .route("/_sim/openai/conversations", post(openai_conversation))
            .route("/_sim/openai/responses", post(openai_response))
            .route(
                "/_sim/openai/extraction/fail-next",
                post(extraction::fail_next),
            )
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

/// Graph's error document, with the status Graph answers it with.
fn graph_error(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AsimFbTrace0000",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// Refuses a missing token, and every token that starts with `invalid`, with error 190.
fn refuse_token(headers: &HeaderMap) -> Option<Response> {
    let token = shared::api::auth::bearer_token(headers).unwrap_or_default();
    (token.is_empty() || token.starts_with("invalid")).then(|| {
        graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        )
    })
}

/// Graph's answer for an id that names nothing (or nothing this token may see).
fn no_such_object(id: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due \
             to missing permissions, or does not support this operation."
        ),
    )
}

fn is_graph_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 30 && id.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /{waba}/phone_numbers`: the WABA's ten numbers, `W0` to `W9`, paged like Graph.
async fn meta_phone_numbers(
    headers: HeaderMap,
    Path(waba): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    if !is_graph_id(&waba) {
        return no_such_object(&waba);
    }
    let limit = page.limit.unwrap_or(25).clamp(1, 100);
    let start = page
        .after
        .as_deref()
        .and_then(|cursor| cursor.strip_prefix("sim-after-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + limit).min(10);
    let data: Vec<Value> = (start..end)
        .map(|digit| {
            json!({
                "id": format!("{waba}{digit}"),
                "display_phone_number": format!("+1 555-010-000{digit}"),
                "verified_name": format!("Simulated business {waba}"),
                "quality_rating": "GREEN",
                "code_verification_status": "VERIFIED",
            })
        })
        .collect();
    let mut paging = json!({ "cursors": {
        "before": format!("sim-after-{start}"),
        "after": format!("sim-after-{end}"),
    }});
    if end < 10 {
        paging["next"] = format!("/{waba}/phone_numbers?after=sim-after-{end}").into();
    }
    Json(json!({ "data": data, "paging": paging })).into_response()
}

/// `POST /{waba}/subscribed_apps`: subscribes the app to the WABA's webhooks.
async fn meta_subscribe(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(waba): Path<String>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    if !is_graph_id(&waba) {
        return no_such_object(&waba);
    }
    if let Ok(mut subscriptions) = sim.subscriptions.lock() {
        subscriptions.push(waba);
    }
    Json(json!({ "success": true })).into_response()
}

/// The WABAs subscribed so far (a simulator-only inspection route).
async fn meta_subscriptions(State(sim): State<Simulators>) -> Json<Value> {
    let subscribed = sim
        .subscriptions
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    Json(json!(subscribed))
}

/// `GET /{id}?fields=id,username`: any decimal id is an Instagram account.
async fn meta_node(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    if let Some(template) = meta_templates::template_node(&sim, &id) {
        return template;
    }
    if !is_graph_id(&id) {
        return no_such_object(&id);
    }
    Json(json!({ "id": id, "username": format!("sim_{id}") })).into_response()
}

/// `POST /{phone_number_id}/messages`. A WhatsApp send passes the gates of [`meta_limits`]
/// (throughput, the recipient's chosen behaviour, the template checks, pair rate) before it
/// is accepted; an Instagram send (`/{ig_id}/messages`) is accepted as it is.
async fn meta_send(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(account): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    let is_whatsapp = body["messaging_product"] == "whatsapp";
    let input = body["to"].as_str().unwrap_or_default().to_owned();
    let to = meta_limits::normalise_recipient(&input);
    let mut chosen = None;
    if is_whatsapp {
        if let Err(refused) = sim.limits.take_throughput(&account) {
            return sim.refuse_send(&account, body, refused);
        }
        chosen = sim.limits.chosen(&to);
        let answered_error = chosen
            .as_ref()
            .filter(|behaviour| !behaviour.asynchronous)
            .and_then(|behaviour| behaviour.error)
            .and_then(meta_limits::cloud_api_error);
        if let Some(error) = answered_error {
            sim.limits.count_failed(&account);
            return sim.refuse_send(&account, body, error);
        }
    }
    if let Some(refused) = meta_templates::check_send(&sim, &account, &body) {
        sim.record(json!({ "account": account, "body": body, "refused": true }));
        return refused;
    }
    if is_whatsapp {
        let template = (body["type"] == "template").then(|| {
            format!(
                "{}/{}",
                body["template"]["name"].as_str().unwrap_or_default(),
                body["template"]["language"]["code"]
                    .as_str()
                    .unwrap_or_default()
            )
        });
        if let Err(refused) = sim
            .limits
            .admit(&account, &to, template.as_deref(), chosen.as_ref())
        {
            return sim.refuse_send(&account, body, refused);
        }
    }
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    let wamid = format!("wamid.SIM{n:08}");
    if !is_whatsapp {
        let recipient = body["recipient"]["id"].clone();
        sim.record(json!({ "account": account, "body": body, "id": wamid }));
        return Json(json!({ "recipient_id": recipient, "message_id": wamid })).into_response();
    }
    sim.record(json!({ "account": account, "body": body, "id": wamid }));
    let chosen = chosen.unwrap_or_default();
    let failure = chosen
        .error
        .filter(|_| chosen.asynchronous)
        .and_then(meta_limits::cloud_api_error);
    if let Some(delay) = sim.limits.status_delay() {
        let background = sim.clone();
        let (status_account, status_wamid, status_to) =
            (account.clone(), wamid.clone(), to.clone());
        tokio::spawn(async move {
            if let Some(failure) = failure {
                tokio::time::sleep(delay).await;
                background
                    .post_status(
                        &status_account,
                        &status_wamid,
                        &status_to,
                        "failed",
                        Some(failure.webhook_error()),
                    )
                    .await;
                return;
            }
            for status in ["sent", "delivered", "read"] {
                tokio::time::sleep(delay).await;
                background
                    .post_status(&status_account, &status_wamid, &status_to, status, None)
                    .await;
            }
        });
    }
    if let Some(hold) = chosen.timeout_ms {
        // Meta took the message; the client just does not hear so in time.
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": input, "wa_id": to }],
        "messages": [{ "id": wamid, "message_status": "accepted" }],
    }))
    .into_response()
}

impl Simulators {
    /// Keeps a refused send for `GET /_sim/meta/requests` and answers Meta's error.
    fn refuse_send(
        &self,
        account: &str,
        body: Value,
        error: &meta_limits::CloudApiError,
    ) -> Response {
        self.record(
            json!({ "account": account, "body": body, "refused": true, "error": error.code }),
        );
        error.response()
    }
}

impl Simulators {
    async fn post_status(
        &self,
        account: &str,
        wamid: &str,
        to: &str,
        status: &str,
        error: Option<Value>,
    ) {
        let mut status = json!({
            "id": wamid,
            "status": status,
            "timestamp": chrono::Utc::now().timestamp().to_string(),
            "recipient_id": to,
        });
        if let Some(error) = error {
            status["errors"] = json!([error]);
        }
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "0", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550000000", "phone_number_id": account },
                "statuses": [status]
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

/// Deterministic: "Thanks for your message: <text>", a `handoff_to_human` call when the
/// customer asks for a human, and the booking tools (see `google`); after a tool result,
/// a sentence about it. Extraction requests get the extraction simulator's answer.
async fn openai_response(State(sim): State<Simulators>, Json(body): Json<Value>) -> Json<Value> {
    if let Some(extraction) = sim.extraction.answer(&body) {
        return Json(extraction);
    }
    let first = &body["input"][0];
    let output = if first["type"] == "function_call_output" {
        // The booking tools' results (simulators/google.rs), else the hand-over.
        let text = google::tool_result_text(first["output"].as_str().unwrap_or_default())
            .unwrap_or_else(|| {
                "I'm handing you over to a colleague, who will reply here shortly.".to_owned()
            });
        json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": text }] }])
    } else {
        let text = first["content"].as_str().unwrap_or_default();
        if let Some(call) = google::booking_call(text) {
            json!([call])
        } else if text.to_lowercase().contains("human") || text.to_lowercase().contains("person") {
            json!([{ "type": "function_call", "call_id": "call_sim", "name": "handoff_to_human", "arguments": "{\"reason\":\"the customer asked for a person\"}" }])
        } else {
            json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": format!("Thanks for your message: {text}") }] }])
        }
    };
    Json(json!({ "id": "resp_sim", "object": "response", "status": "completed", "output": output }))
}
