//! The Google simulator, under `/_sim/google`: the OAuth consent page (it redirects straight
//! back to the redirect URL with a `code` and the `state`), the token endpoint (code
//! exchange, refresh, and `invalid_grant` on demand), revocation, and the Calendar API's
//! free/busy and events (insert, get, patch, delete) on one calendar per simulator, with a
//! fake Meet link that becomes `success` after the event is read once.
//!
//! Simulator-only routes: `GET /_sim/google/_sim/events` lists the calendar;
//! `POST /_sim/google/_sim/invalid-grant` makes every refresh token issued so far answer
//! `invalid_grant` (the tenant revoked access), so the `reconnect_needed` path can be seen.
//!
//! It also holds the OpenAI simulator's booking behaviour ([`booking_call`],
//! [`tool_result_text`]): `book_meeting` when the customer's text says `book` with an
//! ISO-8601 time, `check_availability` when it asks for free times.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
    routing::{any, get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The account every simulated consent belongs to.
pub const SIM_GOOGLE_EMAIL: &str = "calendar-owner@devstack.test";

const SCOPES: &str = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy";

#[derive(Debug, Default)]
struct Calendar {
    issued: usize,
    used_codes: HashSet<String>,
    refresh_tokens: HashSet<String>,
    revoked: HashSet<String>,
    events: HashMap<String, Value>,
    reads: HashMap<String, usize>,
}

/// The simulator's state (one calendar).
#[derive(Debug, Clone, Default)]
pub struct GoogleSim(Arc<Mutex<Calendar>>);

impl GoogleSim {
    fn calendar(&self) -> std::sync::MutexGuard<'_, Calendar> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A Google config pointing at this simulator, served at `base_url`.
    pub fn config(base_url: &str) -> shared::google::GoogleConfig {
        let mut config =
            shared::google::GoogleConfig::for_base_url(&format!("{base_url}/_sim/google"));
        config.client_id = "devstack.apps.googleusercontent.com".to_owned();
        config.redirect_url = format!("{base_url}/_sim/google/_sim/return");
        config.meet_poll_interval = std::time::Duration::from_millis(200);
        config
    }

    /// The routes, under `/_sim/google`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/_sim/google/o/oauth2/v2/auth", get(authorize))
            .route("/_sim/google/token", post(token))
            .route("/_sim/google/revoke", post(revoke))
            .route("/_sim/google/_sim/events", get(list_events))
            .route("/_sim/google/_sim/return", get(consent_return))
            .route("/_sim/google/_sim/invalid-grant", post(invalid_grant))
            .route("/_sim/google/calendar/v3/{*rest}", any(calendar_api))
            .with_state(self)
    }
}

fn error(status: StatusCode, message: &str, reason: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": status.as_u16(), "message": message, "errors": [{ "domain": "global", "reason": reason, "message": message }] } })),
    )
        .into_response()
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

/// The consent page: consent is given at once, and the browser goes back to the redirect
/// URL with a code and the state.
async fn authorize(
    State(sim): State<GoogleSim>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (Some(redirect), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return oauth_error("invalid_request", "redirect_uri and state are required");
    };
    if query.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return oauth_error("invalid_request", "PKCE (S256) is required");
    }
    let code = {
        let mut calendar = sim.calendar();
        calendar.issued += 1;
        format!("4/sim-code-{}", calendar.issued)
    };
    let mut target = match reqwest::Url::parse(redirect) {
        Ok(url) => url,
        Err(_) => return oauth_error("invalid_request", "redirect_uri is not a URL"),
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut calendar = sim.calendar();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            if !code.starts_with("4/sim-code-") || !calendar.used_codes.insert(code) {
                return oauth_error("invalid_grant", "Malformed auth code.");
            }
            if form.get("code_verifier").is_none_or(|v| v.len() < 43) {
                return oauth_error("invalid_grant", "Missing code verifier.");
            }
            calendar.issued += 1;
            let n = calendar.issued;
            let refresh = format!("1//sim-refresh-{n}");
            calendar.refresh_tokens.insert(refresh.clone());
            let claims = URL_SAFE_NO_PAD.encode(
                json!({ "email": SIM_GOOGLE_EMAIL, "sub": "100000000000000000001" }).to_string(),
            );
            Json(json!({
                "access_token": format!("ya29.sim-access-{n}"),
                "expires_in": 3599,
                "refresh_token": refresh,
                "scope": SCOPES,
                "token_type": "Bearer",
                "id_token": format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2lt"),
            }))
            .into_response()
        }
        Some("refresh_token") => {
            let refresh = form.get("refresh_token").cloned().unwrap_or_default();
            if calendar.revoked.contains(&refresh) || !calendar.refresh_tokens.contains(&refresh) {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            calendar.issued += 1;
            Json(json!({
                "access_token": format!("ya29.sim-access-{}", calendar.issued),
                "expires_in": 3599,
                "scope": SCOPES,
                "token_type": "Bearer",
            }))
            .into_response()
        }
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type."),
    }
}

async fn revoke(State(sim): State<GoogleSim>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match form.get("token") {
        Some(token) => {
            sim.calendar().revoked.insert(token.clone());
            StatusCode::OK.into_response()
        }
        None => oauth_error("invalid_token", "Bad Request"),
    }
}

async fn invalid_grant(State(sim): State<GoogleSim>) -> Json<Value> {
    let mut calendar = sim.calendar();
    let all: Vec<String> = calendar.refresh_tokens.iter().cloned().collect();
    calendar.revoked.extend(all);
    Json(json!({ "revoked": calendar.revoked.len() }))
}

/// Stands in for the dashboard's return page (devstack's default `GOOGLE_REDIRECT_URL`): shows
/// the `code` and `state` to post to `POST /integrations/google/callback`.
async fn consent_return(Query(query): Query<HashMap<String, String>>) -> Json<Value> {
    Json(json!({ "code": query.get("code"), "state": query.get("state") }))
}

async fn list_events(State(sim): State<GoogleSim>) -> Json<Value> {
    Json(json!(
        sim.calendar().events.values().cloned().collect::<Vec<_>>()
    ))
}

fn parse_time(raw: &Value) -> Option<DateTime<Utc>> {
    raw.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

async fn calendar_api(
    State(sim): State<GoogleSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ya29."));
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
            "authError",
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri
        .path()
        .trim_start_matches("/_sim/google/calendar/v3/")
        .to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let mut calendar = sim.calendar();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["freeBusy"]) => {
            let (Some(min), Some(max)) =
                (parse_time(&body["timeMin"]), parse_time(&body["timeMax"]))
            else {
                return error(StatusCode::BAD_REQUEST, "Bad Request", "badRequest");
            };
            let busy: Vec<Value> = calendar
                .events
                .values()
                .filter(|e| e["status"] != "cancelled")
                .filter_map(|e| {
                    Some((
                        parse_time(&e["start"]["dateTime"])?,
                        parse_time(&e["end"]["dateTime"])?,
                    ))
                })
                .filter(|(start, end)| *start < max && *end > min)
                .map(|(start, end)| json!({ "start": start.to_rfc3339(), "end": end.to_rfc3339() }))
                .collect();
            Json(json!({ "kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"], "calendars": { "primary": { "busy": busy } } })).into_response()
        }
        ("POST", ["calendars", "primary", "events"]) => {
            let Some(id) = body["id"].as_str().map(str::to_owned) else {
                return error(StatusCode::BAD_REQUEST, "Missing id", "required");
            };
            if calendar.events.contains_key(&id) {
                return error(
                    StatusCode::CONFLICT,
                    "The requested identifier already exists.",
                    "duplicate",
                );
            }
            let mut event = body.clone();
            event["status"] = json!("confirmed");
            event["organizer"] = json!({ "email": SIM_GOOGLE_EMAIL, "self": true });
            if let Some(request) = event["conferenceData"]["createRequest"].as_object_mut() {
                request.insert("status".to_owned(), json!({ "statusCode": "pending" }));
            }
            calendar.events.insert(id, event.clone());
            Json(event).into_response()
        }
        ("GET", ["calendars", "primary", "events", id]) => {
            let id = (*id).to_owned();
            *calendar.reads.entry(id.clone()).or_default() += 1;
            let Some(event) = calendar.events.get_mut(&id) else {
                return error(StatusCode::NOT_FOUND, "Not Found", "notFound");
            };
            if event["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending" {
                let letters: String = id
                    .chars()
                    .filter(char::is_ascii_lowercase)
                    .chain("simulated".chars())
                    .take(10)
                    .collect();
                let code = format!("{}-{}-{}", &letters[..3], &letters[3..7], &letters[7..10]);
                let link = format!("https://meet.google.com/{code}");
                event["conferenceData"]["createRequest"]["status"] =
                    json!({ "statusCode": "success" });
                event["conferenceData"]["conferenceId"] = json!(code);
                event["conferenceData"]["entryPoints"] =
                    json!([{ "entryPointType": "video", "uri": link }]);
                event["hangoutLink"] = json!(link);
            }
            Json(event.clone()).into_response()
        }
        ("PATCH", ["calendars", "primary", "events", id]) => {
            let Some(event) = calendar.events.get_mut(*id) else {
                return error(StatusCode::NOT_FOUND, "Not Found", "notFound");
            };
            if let (Some(event), Some(patch)) = (event.as_object_mut(), body.as_object()) {
                for (key, value) in patch {
                    event.insert(key.clone(), value.clone());
                }
            }
            Json(event.clone()).into_response()
        }
        ("DELETE", ["calendars", "primary", "events", id]) => match calendar.events.get_mut(*id) {
            Some(event) if event["status"] != "cancelled" => {
                event["status"] = json!("cancelled");
                StatusCode::NO_CONTENT.into_response()
            }
            Some(_) => error(StatusCode::GONE, "Resource has been deleted", "deleted"),
            None => error(StatusCode::NOT_FOUND, "Not Found", "notFound"),
        },
        _ => error(StatusCode::NOT_FOUND, "Not Found", "notFound"),
    }
}

/// The OpenAI simulator's booking tools: `book_meeting` with the ISO-8601 time and any
/// email in a text that says `book`, `check_availability` from that time (or tomorrow) for
/// two days when it asks for free times. `None` for any other text.
pub fn booking_call(text: &str) -> Option<Value> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, ',' | '!' | '?' | ';' | '(' | ')' | '"')))
        .collect();
    let time = words
        .iter()
        .find(|w| DateTime::parse_from_rfc3339(w).is_ok())
        .copied();
    let email = words
        .iter()
        .find(|w| w.contains('@'))
        .map(|w| w.trim_end_matches('.'));
    if lower.contains("book") {
        let time = time?;
        let arguments = json!({
            "start": time, "duration_minutes": null, "title": "Product demo",
            "attendee_name": null, "attendee_email": email.unwrap_or_default(), "notes": null
        });
        return Some(
            json!({ "type": "function_call", "call_id": "call_sim_book", "name": "book_meeting", "arguments": arguments.to_string() }),
        );
    }
    if lower.contains("free time")
        || lower.contains("free slot")
        || lower.contains("availability")
        || lower.contains("available")
    {
        let from = time
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc::now() + chrono::Duration::days(1));
        let to = from + chrono::Duration::days(2);
        let arguments =
            json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "duration_minutes": 30 });
        return Some(
            json!({ "type": "function_call", "call_id": "call_sim_free", "name": "check_availability", "arguments": arguments.to_string() }),
        );
    }
    None
}

/// What the simulated model says after a booking tool answered; `None` for other tools.
pub fn tool_result_text(output: &str) -> Option<String> {
    let result: Value = serde_json::from_str(output).ok()?;
    let slots = || {
        result["free_slots"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    Some(match result["status"].as_str()? {
        "booked" => format!(
            "You're booked for {}. Join with Google Meet: {}. The invitation is on its way to {}.",
            result["start"].as_str().unwrap_or_default(),
            result["meet_link"]
                .as_str()
                .unwrap_or("(link in the invitation)"),
            result["attendee_email"].as_str().unwrap_or("your email"),
        ),
        "slot_taken" => format!("That time was just taken. I can offer: {}.", slots()),
        "ok" => format!("These times are free: {}.", slots()),
        "calendar_unavailable" => {
            "A colleague will confirm the meeting time with you shortly.".to_owned()
        }
        "error" => format!(
            "I could not book that: {}",
            result["error"]
                .as_str()
                .unwrap_or("please try another time")
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_model_books_only_with_book_and_a_time() {
        let call = booking_call("Please book 2030-01-02T15:00:00+01:00, I'm sheena@customer.test")
            .expect("a call");
        assert_eq!(call["name"], "book_meeting");
        let arguments: Value =
            serde_json::from_str(call["arguments"].as_str().expect("args")).expect("json");
        assert_eq!(arguments["start"], "2030-01-02T15:00:00+01:00");
        assert_eq!(arguments["attendee_email"], "sheena@customer.test");
        assert!(booking_call("book a demo sometime").is_none());
        assert_eq!(
            booking_call("any free times tomorrow?").expect("a call")["name"],
            "check_availability"
        );
        assert!(booking_call("hello").is_none());
    }
}
