//! The Meta simulator's message templates: creation (checked as Meta checks it), the
//! resumable upload, deletion, status pulls, edits, template sends (Meta's 132000, 132001,
//! 132015, 132016), and a review route that approves or rejects a template by posting the
//! signed `message_template_status_update` webhook. Sample header media is served at
//! `/_sim/media/sample.jpg`, `sample.mp4` and `sample.pdf`.
//!
//! A phone number `W<d>` belongs to WABA `W` (the simulator's rule), so a send from a
//! number finds its WABA's templates.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use shared::meta::signature;

use super::{Simulators, graph_error, is_graph_id, refuse_token};

/// A template the simulator holds.
#[derive(Debug, Clone)]
struct SimTemplate {
    id: String,
    waba: String,
    name: String,
    language: String,
    category: String,
    status: String,
    components: Value,
}

/// The templates and upload sessions, shared by the handlers.
#[derive(Debug, Clone, Default)]
pub struct TemplateStore {
    templates: Arc<Mutex<HashMap<String, SimTemplate>>>,
    /// Upload session → handle, once the bytes arrived.
    handles: Arc<Mutex<Vec<String>>>,
}

impl TemplateStore {
    fn get(&self, id: &str) -> Option<SimTemplate> {
        self.templates.lock().ok()?.get(id).cloned()
    }

    fn find(&self, waba: &str, name: &str, language: &str) -> Option<SimTemplate> {
        self.templates
            .lock()
            .ok()?
            .values()
            .find(|t| t.waba == waba && t.name == name && t.language == language)
            .cloned()
    }

    fn set_status(&self, id: &str, status: &str) -> Option<SimTemplate> {
        let mut templates = self.templates.lock().ok()?;
        let template = templates.get_mut(id)?;
        template.status = status.to_owned();
        Some(template.clone())
    }
}

impl Simulators {
    /// Keeps a request for `GET /_sim/meta/requests`.
    pub(super) fn record(&self, request: Value) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
    }
}

/// `POST /{id}`: the bytes of an upload session (`upload:…`), or an edit of a template.
pub async fn post_node(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if id.starts_with("upload:") {
        return finish_upload(&sim, &headers, &body).await;
    }
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    sim.record(json!({ "edit_template": id, "body": value }));
    edit_template(&sim, &id, &value).unwrap_or_else(|| super::no_such_object(&id))
}

/// The template routes, merged into the simulators' router.
pub fn router() -> Router<Simulators> {
    Router::new()
        .route(
            "/_sim/meta/{waba}/message_templates",
            post(create_template).delete(delete_template),
        )
        .route("/_sim/meta/{app}/uploads", post(start_upload))
        .route("/_sim/meta/templates/{id}/review", post(review))
        .route("/_sim/media/{file}", get(sample_media))
}

fn invalid_parameter(subcode: i64, details: &str) -> Response {
    // Meta puts its human-readable detail in error_data.details.
    let error = json!({
        "error": {
            "message": "Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": subcode,
            "error_user_msg": details,
            "error_data": { "messaging_product": "whatsapp", "details": details },
            "fbtrace_id": "AsimFbTrace0000",
        }
    });
    (StatusCode::BAD_REQUEST, Json(error)).into_response()
}

/// The `{{…}}` placeholders of a text.
fn placeholder_count(text: &str) -> usize {
    text.matches("{{").count()
}

/// `POST /{waba}/message_templates`: checks what Meta checks, then holds the template as
/// `PENDING`.
async fn create_template(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(waba): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    if !is_graph_id(&waba) {
        return super::no_such_object(&waba);
    }
    sim.record(json!({ "waba": waba, "create_template": body }));
    let name = body["name"].as_str().unwrap_or_default();
    let language = body["language"].as_str().unwrap_or_default();
    let category = body["category"].as_str().unwrap_or_default();
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return invalid_parameter(
            2_388_042,
            "Template name must be lowercase letters, digits and underscores.",
        );
    }
    if language.is_empty() {
        return invalid_parameter(2_388_043, "Template language is required.");
    }
    if !matches!(category, "MARKETING" | "UTILITY" | "AUTHENTICATION") {
        return invalid_parameter(2_388_044, "Invalid template category.");
    }
    let components = body["components"].as_array().cloned().unwrap_or_default();
    let Some(body_component) = components.iter().find(|c| c["type"] == "BODY") else {
        return invalid_parameter(2_388_045, "A template needs a BODY component.");
    };
    if category != "AUTHENTICATION" {
        let text = body_component["text"].as_str().unwrap_or_default();
        let trimmed = text.trim();
        if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
            return invalid_parameter(
                2_388_299,
                "Variables can't be at the start or end of the template.",
            );
        }
        let count = placeholder_count(text);
        let examples = body_component["example"]["body_text"][0]
            .as_array()
            .map(Vec::len)
            .or_else(|| {
                body_component["example"]["body_text_named_params"]
                    .as_array()
                    .map(Vec::len)
            })
            .unwrap_or(0);
        if count != examples {
            return invalid_parameter(
                2_388_043,
                "The number of examples does not match the number of variables.",
            );
        }
    }
    if let Some(header) = components.iter().find(|c| c["type"] == "HEADER") {
        if matches!(
            header["format"].as_str(),
            Some("IMAGE" | "VIDEO" | "DOCUMENT")
        ) {
            let handle = header["example"]["header_handle"][0]
                .as_str()
                .unwrap_or_default();
            let known = sim
                .templates
                .handles
                .lock()
                .map(|h| h.iter().any(|known| known == handle))
                .unwrap_or(false);
            if !known {
                return invalid_parameter(
                    2_388_273,
                    "The media header's example handle is not a valid upload handle.",
                );
            }
        }
    }
    if sim.templates.find(&waba, name, language).is_some() {
        return invalid_parameter(
            2_388_024,
            "Message template already exists in this language.",
        );
    }
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    let id = format!("{}", 1_689_556_908_000_000_u64 + n as u64);
    let template = SimTemplate {
        id: id.clone(),
        waba,
        name: name.to_owned(),
        language: language.to_owned(),
        category: category.to_owned(),
        status: "PENDING".to_owned(),
        components: Value::Array(components),
    };
    if let Ok(mut templates) = sim.templates.templates.lock() {
        templates.insert(id.clone(), template);
    }
    Json(json!({ "id": id, "status": "PENDING", "category": category })).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct DeleteQuery {
    name: Option<String>,
    hsm_id: Option<String>,
}

/// `DELETE /{waba}/message_templates?name=&hsm_id=`.
async fn delete_template(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(waba): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    let Some(name) = query.name else {
        return invalid_parameter(2_388_046, "The template name is required.");
    };
    let removed = sim.templates.templates.lock().map(|mut templates| {
        let before = templates.len();
        templates.retain(|id, t| {
            !(t.waba == waba
                && t.name == name
                && query.hsm_id.as_deref().is_none_or(|hsm| hsm == id))
        });
        before - templates.len()
    });
    match removed {
        Ok(n) if n > 0 => Json(json!({ "success": true })).into_response(),
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(2_593_002),
            "Message template not found",
        ),
    }
}

#[derive(Debug, serde::Deserialize)]
struct UploadQuery {
    file_name: Option<String>,
    file_length: Option<u64>,
    file_type: Option<String>,
}

/// `POST /{app}/uploads?file_name&file_length&file_type`: an upload session.
async fn start_upload(
    State(sim): State<Simulators>,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(query): Query<UploadQuery>,
) -> Response {
    if let Some(refused) = refuse_token(&headers) {
        return refused;
    }
    let allowed = matches!(
        query.file_type.as_deref(),
        Some("image/jpeg" | "image/png" | "video/mp4" | "application/pdf")
    );
    if !is_graph_id(&app) || query.file_name.is_none() || query.file_length.is_none() || !allowed {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Invalid parameter: file_name, file_length and a supported file_type are required",
        );
    }
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "id": format!("upload:U0lNVVBMT0FE{n}?sig=ARsim") })).into_response()
}

/// `POST /upload:…` (the bytes, `Authorization: OAuth …`, `file_offset: 0`): the handle.
pub(super) async fn finish_upload(sim: &Simulators, headers: &HeaderMap, body: &Bytes) -> Response {
    let oauth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("OAuth ") && !v.starts_with("OAuth invalid"));
    if !oauth {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            None,
            "Invalid OAuth access token: uploads take `Authorization: OAuth <token>`",
        );
    }
    if headers.get("file_offset").and_then(|v| v.to_str().ok()) != Some("0") || body.is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "file_offset must be 0 and the body the file",
        );
    }
    let n = sim.counter.fetch_add(1, Ordering::SeqCst);
    let handle = format!("4::c2ltaGFuZGxl{n}:ARsim");
    if let Ok(mut handles) = sim.templates.handles.lock() {
        handles.push(handle.clone());
    }
    Json(json!({ "h": handle })).into_response()
}

/// `GET /{template_id}`: a template's state, as the status pull reads it.
pub(super) fn template_node(sim: &Simulators, id: &str) -> Option<Response> {
    let template = sim.templates.get(id)?;
    Some(
        Json(json!({
            "id": template.id,
            "name": template.name,
            "status": template.status,
            "category": template.category,
            "language": template.language,
            "components": template.components,
            "quality_score": { "score": "GREEN", "date": chrono::Utc::now().timestamp() },
        }))
        .into_response(),
    )
}

/// `POST /{template_id}`: an edit sends the template back to review.
pub(super) fn edit_template(sim: &Simulators, id: &str, body: &Value) -> Option<Response> {
    let mut templates = sim.templates.templates.lock().ok()?;
    let template = templates.get_mut(id)?;
    if let Some(components) = body.get("components") {
        template.components = components.clone();
    }
    template.status = "PENDING".to_owned();
    Some(Json(json!({ "success": true })).into_response())
}

/// Checks a template send from the number `account` as Meta would; `None` when it may go.
pub(super) fn check_send(sim: &Simulators, account: &str, body: &Value) -> Option<Response> {
    if body["type"] != "template" {
        return None;
    }
    let waba = &account[..account.len().saturating_sub(1)];
    let name = body["template"]["name"].as_str().unwrap_or_default();
    let language = body["template"]["language"]["code"]
        .as_str()
        .unwrap_or_default();
    let refuse = |code: i64, title: &str| {
        let error = json!({ "error": {
            "message": format!("({code}) {title}"),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": title },
            "fbtrace_id": "AsimFbTrace0000",
        }});
        (StatusCode::BAD_REQUEST, Json(error)).into_response()
    };
    let Some(template) = sim.templates.find(waba, name, language) else {
        return Some(refuse(
            132_001,
            "Template name does not exist in the translation",
        ));
    };
    match template.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => return Some(refuse(132_015, "Template is paused due to low quality")),
        "DISABLED" => {
            return Some(refuse(
                132_016,
                "Template has been disabled due to low quality",
            ));
        }
        _ => {
            return Some(refuse(
                132_001,
                "Template name does not exist in the translation",
            ));
        }
    }
    let expected = template
        .components
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "BODY"))
        .and_then(|c| c["text"].as_str())
        .map_or(0, placeholder_count);
    let given = body["template"]["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "body"))
        .and_then(|c| c["parameters"].as_array())
        .map_or(0, Vec::len);
    if expected != given && template.category != "AUTHENTICATION" {
        return Some(refuse(
            132_000,
            &format!(
                "Number of parameters does not match the expected number of params (expected {expected}, got {given})"
            ),
        ));
    }
    None
}

/// `POST /_sim/meta/templates/{id}/review` with `{"event": "APPROVED"}` or
/// `{"event": "REJECTED", "reason": "INVALID_FORMAT"}`: sets the status and posts Meta's
/// signed `message_template_status_update` to the webhook.
async fn review(
    State(sim): State<Simulators>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let event = body["event"].as_str().unwrap_or("APPROVED").to_owned();
    let reason = body["reason"].as_str().unwrap_or("NONE").to_owned();
    let status = match event.as_str() {
        "REINSTATED" | "UNARCHIVED" => "APPROVED",
        other => other,
    };
    let Some(template) = sim.templates.set_status(&id, status) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("the simulator holds no template {id}") })),
        )
            .into_response();
    };
    let mut value = json!({
        "event": event,
        "message_template_id": id.parse::<u64>().unwrap_or_default(),
        "message_template_name": template.name,
        // Meta writes the language with a hyphen in these webhooks.
        "message_template_language": template.language.replace('_', "-"),
        "reason": reason,
        "message_template_category": template.category,
    });
    if event == "REJECTED" {
        value["rejection_info"] =
            json!({ "reason": reason, "recommendation": "Review the template guidelines" });
    }
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": template.waba, "time": chrono::Utc::now().timestamp(), "changes": [
            { "field": "message_template_status_update", "value": value }
        ]}]
    })
    .to_string();
    let signature = signature::sign(sim.app_secret.as_bytes(), payload.as_bytes());
    let delivered = sim
        .http
        .post(&sim.webhook_url)
        .header("content-type", "application/json")
        .header(signature::SIGNATURE_HEADER, signature)
        .body(payload)
        .send()
        .await;
    match delivered {
        Ok(response) => Json(json!({
            "template_id": id,
            "status": template.status,
            "webhook_status": response.status().as_u16(),
        }))
        .into_response(),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": format!("the webhook could not be posted: {error}") })),
        )
            .into_response(),
    }
}

/// Small files with real signatures: a JPEG, an MP4 and a PDF.
async fn sample_media(Path(file): Path<String>) -> Response {
    let (content_type, bytes): (&str, Vec<u8>) = match file.as_str() {
        "sample.jpg" => (
            "image/jpeg",
            [
                &[
                    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
                ][..],
                &[0u8; 1024],
                &[0xFF, 0xD9],
            ]
            .concat(),
        ),
        "sample.mp4" => (
            "video/mp4",
            [
                &b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"[..],
                &[0u8; 1024],
            ]
            .concat(),
        ),
        "sample.pdf" => (
            "application/pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
                .to_vec(),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}
