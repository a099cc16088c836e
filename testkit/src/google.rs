//! A fake Google for tests, behind wiremock: the OAuth token endpoint (code exchange,
//! refresh, `invalid_grant` for refresh tokens marked revoked), revocation, and the Calendar
//! API's free/busy and events (insert with a Meet link that is `pending` until the event is
//! read once, get, patch, delete). It keeps its calendar, so free/busy sees what was booked,
//! and wiremock keeps every request for the test to check.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// The scopes the fake grants unless told otherwise.
pub const GRANTED_SCOPES: &str = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy";

/// The account the fake's consent belongs to.
pub const GOOGLE_EMAIL: &str = "owner@acme.test";

#[derive(Debug, Default)]
struct Inner {
    issued: usize,
    revoked: HashSet<String>,
    events: HashMap<String, Value>,
    busy: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    granted_scopes: Option<String>,
    rotate_refresh_tokens: bool,
    meet_polls: HashMap<String, usize>,
}

/// The fake's state; clone it to steer the fake from a test.
#[derive(Debug, Clone, Default)]
pub struct FakeGoogle(Arc<Mutex<Inner>>);

impl FakeGoogle {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a server answering as Google.
    pub async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let fake = Self::default();
        Mock::given(any())
            .respond_with(fake.clone())
            .with_priority(10)
            .mount(&server)
            .await;
        (server, fake)
    }

    /// Refreshing with this token answers `invalid_grant`.
    pub fn revoke(&self, refresh_token: &str) {
        self.inner().revoked.insert(refresh_token.to_owned());
    }

    /// The calendar is busy then (someone else's event).
    pub fn busy(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.inner().busy.push((start, end));
    }

    /// The consent grants these scopes instead.
    pub fn grant_scopes(&self, scopes: &str) {
        self.inner().granted_scopes = Some(scopes.to_owned());
    }

    /// Refreshes return a new refresh token too.
    pub fn rotate_refresh_tokens(&self) {
        self.inner().rotate_refresh_tokens = true;
    }

    /// An event of ours already in the calendar (as a booking left it).
    pub fn seed_event(&self, id: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.inner().events.insert(
            id.to_owned(),
            json!({
                "id": id, "status": "confirmed", "summary": "Demo",
                "start": { "dateTime": start.to_rfc3339(), "timeZone": "UTC" },
                "end": { "dateTime": end.to_rfc3339(), "timeZone": "UTC" },
                "hangoutLink": "https://meet.google.com/abc-defg-hij",
            }),
        );
    }

    /// The events the calendar holds, by id.
    pub fn events(&self) -> HashMap<String, Value> {
        self.inner().events.clone()
    }

    fn token(&self, form: &HashMap<String, String>) -> ResponseTemplate {
        let mut inner = self.inner();
        let grant = form.get("grant_type").map(String::as_str);
        let invalid = || {
            ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_grant", "error_description": "Token has been expired or revoked."
            }))
        };
        match grant {
            Some("authorization_code") => {
                let code = form.get("code").cloned().unwrap_or_default();
                if code.starts_with("bad") || inner.revoked.contains(&code) {
                    return invalid();
                }
                if form.get("code_verifier").is_none_or(|v| v.len() < 43) {
                    return ResponseTemplate::new(400).set_body_json(json!({
                        "error": "invalid_grant", "error_description": "Missing code verifier."
                    }));
                }
                inner.revoked.insert(code);
                inner.issued += 1;
                let n = inner.issued;
                let claims = URL_SAFE_NO_PAD
                    .encode(json!({ "email": GOOGLE_EMAIL, "sub": "1234567890" }).to_string());
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": format!("ya29.access-{n}"),
                    "expires_in": 3599,
                    "refresh_token": format!("1//refresh-{n}"),
                    "scope": inner.granted_scopes.clone().unwrap_or_else(|| GRANTED_SCOPES.to_owned()),
                    "token_type": "Bearer",
                    "id_token": format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"),
                }))
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").cloned().unwrap_or_default();
                if inner.revoked.contains(&token) {
                    return invalid();
                }
                inner.issued += 1;
                let n = inner.issued;
                let mut body = json!({
                    "access_token": format!("ya29.access-{n}"),
                    "expires_in": 3599,
                    "scope": GRANTED_SCOPES,
                    "token_type": "Bearer",
                });
                if inner.rotate_refresh_tokens {
                    body["refresh_token"] = json!(format!("1//refresh-{n}"));
                }
                ResponseTemplate::new(200).set_body_json(body)
            }
            _ => ResponseTemplate::new(400)
                .set_body_json(json!({ "error": "unsupported_grant_type" })),
        }
    }

    fn free_busy(&self, body: &Value) -> ResponseTemplate {
        let inner = self.inner();
        let min = body["timeMin"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok());
        let max = body["timeMax"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok());
        let (Some(min), Some(max)) = (min, max) else {
            return api_error(400, "Bad Request", "badRequest");
        };
        let mut busy: Vec<(DateTime<Utc>, DateTime<Utc>)> = inner.busy.clone();
        for event in inner.events.values() {
            if event["status"] == "cancelled" {
                continue;
            }
            let start = event["start"]["dateTime"].as_str().and_then(parse_time);
            let end = event["end"]["dateTime"].as_str().and_then(parse_time);
            if let (Some(start), Some(end)) = (start, end) {
                busy.push((start, end));
            }
        }
        let busy: Vec<Value> = busy
            .into_iter()
            .filter(|(start, end)| *start < max && *end > min)
            .map(|(start, end)| json!({ "start": start.to_rfc3339(), "end": end.to_rfc3339() }))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"], "timeMax": body["timeMax"],
            "calendars": { "primary": { "busy": busy } }
        }))
    }

    fn insert(&self, body: &Value) -> ResponseTemplate {
        let mut inner = self.inner();
        let Some(id) = body["id"].as_str().map(str::to_owned) else {
            return api_error(400, "Missing id", "required");
        };
        if inner.events.contains_key(&id) {
            return api_error(409, "The requested identifier already exists.", "duplicate");
        }
        let mut event = body.clone();
        event["status"] = json!("confirmed");
        event["htmlLink"] = json!(format!("https://www.google.com/calendar/event?eid={id}"));
        event["organizer"] = json!({ "email": GOOGLE_EMAIL, "self": true });
        if let Some(request) = event["conferenceData"]["createRequest"].as_object_mut() {
            request.insert("status".to_owned(), json!({ "statusCode": "pending" }));
        }
        inner.events.insert(id, event.clone());
        ResponseTemplate::new(200).set_body_json(event)
    }

    fn get(&self, id: &str) -> ResponseTemplate {
        let mut inner = self.inner();
        let polls = {
            let polls = inner.meet_polls.entry(id.to_owned()).or_default();
            *polls += 1;
            *polls
        };
        let Some(event) = inner.events.get_mut(id) else {
            return api_error(404, "Not Found", "notFound");
        };
        if polls >= 1
            && event["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
        {
            let code = meet_code(id);
            event["conferenceData"]["createRequest"]["status"] = json!({ "statusCode": "success" });
            event["conferenceData"]["conferenceId"] = json!(code);
            event["conferenceData"]["conferenceSolution"] =
                json!({ "key": { "type": "hangoutsMeet" }, "name": "Google Meet" });
            event["conferenceData"]["entryPoints"] = json!([{ "entryPointType": "video", "uri": format!("https://meet.google.com/{code}"), "label": format!("meet.google.com/{code}") }]);
            event["hangoutLink"] = json!(format!("https://meet.google.com/{code}"));
        }
        ResponseTemplate::new(200).set_body_json(event.clone())
    }

    fn patch(&self, id: &str, body: &Value) -> ResponseTemplate {
        let mut inner = self.inner();
        let Some(event) = inner.events.get_mut(id) else {
            return api_error(404, "Not Found", "notFound");
        };
        if let (Some(event), Some(patch)) = (event.as_object_mut(), body.as_object()) {
            for (key, value) in patch {
                event.insert(key.clone(), value.clone());
            }
        }
        ResponseTemplate::new(200).set_body_json(event.clone())
    }

    fn delete(&self, id: &str) -> ResponseTemplate {
        let mut inner = self.inner();
        match inner.events.get_mut(id) {
            Some(event) if event["status"] != "cancelled" => {
                event["status"] = json!("cancelled");
                ResponseTemplate::new(204)
            }
            Some(_) => api_error(410, "Resource has been deleted", "deleted"),
            None => api_error(404, "Not Found", "notFound"),
        }
    }
}

impl Respond for FakeGoogle {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().to_owned();
        let method = request.method.as_str();
        if path == "/token" && method == "POST" {
            let form: HashMap<String, String> =
                form_urlencoded::parse(&request.body).into_owned().collect();
            return self.token(&form);
        }
        if path == "/revoke" && method == "POST" {
            let form: HashMap<String, String> =
                form_urlencoded::parse(&request.body).into_owned().collect();
            if let Some(token) = form.get("token") {
                self.revoke(token);
            }
            return ResponseTemplate::new(200);
        }
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ya29."));
        if !authorized {
            return api_error(
                401,
                "Request had invalid authentication credentials.",
                "authError",
            );
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["calendar", "v3", "freeBusy"]) => self.free_busy(&body),
            ("POST", ["calendar", "v3", "calendars", "primary", "events"]) => self.insert(&body),
            ("GET", ["calendar", "v3", "calendars", "primary", "events", id]) => self.get(id),
            ("PATCH", ["calendar", "v3", "calendars", "primary", "events", id]) => {
                self.patch(id, &body)
            }
            ("DELETE", ["calendar", "v3", "calendars", "primary", "events", id]) => self.delete(id),
            _ => api_error(404, "Not Found", "notFound"),
        }
    }
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A Meet code (`abc-defg-hij`) derived from the event id.
fn meet_code(id: &str) -> String {
    let letters: String = id
        .chars()
        .filter(char::is_ascii_lowercase)
        .chain("abcdefghij".chars())
        .take(10)
        .collect();
    format!("{}-{}-{}", &letters[..3], &letters[3..7], &letters[7..10])
}

/// The Calendar API's error document.
pub fn api_error(status: u16, message: &str, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "code": status, "message": message, "errors": [{ "domain": "global", "reason": reason, "message": message }] }
    }))
}
