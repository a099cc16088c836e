//! The Calendar API v3 calls we make, on the tenant's `primary` calendar, with typed bodies
//! in Google's field names (camelCase).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{Google, GoogleError};

/// `POST /freeBusy` request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FreeBusyRequest<'a> {
    time_min: DateTime<Utc>,
    time_max: DateTime<Utc>,
    time_zone: &'a str,
    items: [FreeBusyItem<'a>; 1],
}

#[derive(Debug, Serialize)]
struct FreeBusyItem<'a> {
    id: &'a str,
}

#[derive(Debug, Deserialize)]
struct FreeBusyResponse {
    #[serde(default)]
    calendars: std::collections::HashMap<String, FreeBusyCalendar>,
}

#[derive(Debug, Deserialize)]
struct FreeBusyCalendar {
    #[serde(default)]
    busy: Vec<BusyPeriod>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// A busy interval of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BusyPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A start or end time with its IANA zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDateTime {
    pub date_time: DateTime<chrono::FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// An invited person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventAttendee {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The event we insert: a Meet conference is requested with `conferenceData.createRequest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewEvent {
    /// Our deterministic id ([`super::event_id`]).
    pub id: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub start: EventDateTime,
    pub end: EventDateTime,
    pub attendees: Vec<EventAttendee>,
    pub conference_data: NewConferenceData,
}

/// `conferenceData` of an insert.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewConferenceData {
    pub create_request: CreateRequest,
}

/// `conferenceData.createRequest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    /// Unique per create request; we use the event id (a retry of the same insert is the
    /// same request).
    pub request_id: String,
    pub conference_solution_key: ConferenceSolutionKey,
}

/// The conference solution: `hangoutsMeet`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConferenceSolutionKey {
    #[serde(rename = "type")]
    pub kind: String,
}

impl NewConferenceData {
    /// A request for a Google Meet conference.
    pub fn meet(request_id: &str) -> Self {
        Self {
            create_request: CreateRequest {
                request_id: request_id.to_owned(),
                conference_solution_key: ConferenceSolutionKey {
                    kind: "hangoutsMeet".to_owned(),
                },
            },
        }
    }
}

/// An event as Google returns it (the fields we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    /// `confirmed`, `tentative` or `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub hangout_link: Option<String>,
    #[serde(default)]
    pub conference_data: Option<ConferenceData>,
    #[serde(default)]
    pub start: Option<EventDateTime>,
}

/// `conferenceData` of a returned event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConferenceData {
    #[serde(default)]
    pub create_request: Option<ReturnedCreateRequest>,
    #[serde(default)]
    pub entry_points: Vec<EntryPoint>,
}

/// `conferenceData.createRequest` of a returned event.
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnedCreateRequest {
    #[serde(default)]
    pub status: Option<CreateRequestStatus>,
}

/// `conferenceData.createRequest.status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequestStatus {
    pub status_code: String,
}

/// A way into the conference (`video` is the Meet link).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryPoint {
    pub entry_point_type: String,
    pub uri: String,
}

/// Where the Meet link's creation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceStatus {
    /// Created: the link.
    Ready(String),
    /// Google is still creating it.
    Pending,
    /// Google could not create it, or none was asked for.
    Failed,
}

impl Event {
    /// The Meet link's state: `createRequest.status.statusCode` (`pending`, `success`,
    /// `failure`), with the link from the `video` entry point (or `hangoutLink`).
    pub fn conference(&self) -> ConferenceStatus {
        let data = self.conference_data.as_ref();
        let code = data
            .and_then(|d| d.create_request.as_ref())
            .and_then(|r| r.status.as_ref())
            .map(|s| s.status_code.as_str());
        let link = data
            .and_then(|d| {
                d.entry_points
                    .iter()
                    .find(|e| e.entry_point_type == "video")
            })
            .map(|e| e.uri.clone())
            .or_else(|| self.hangout_link.clone());
        match (code, link) {
            (Some("success"), Some(link)) => ConferenceStatus::Ready(link),
            (Some("pending"), _) => ConferenceStatus::Pending,
            (None, Some(link)) => ConferenceStatus::Ready(link),
            _ => ConferenceStatus::Failed,
        }
    }
}

/// `PATCH` of an event's times.
#[derive(Debug, Serialize)]
struct TimesPatch<'a> {
    start: &'a EventDateTime,
    end: &'a EventDateTime,
}

impl Google {
    fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base_url.trim_end_matches('/'))
    }

    /// The busy periods of the primary calendar between `from` and `to`.
    pub async fn free_busy(
        &self,
        access_token: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>, GoogleError> {
        let body = FreeBusyRequest {
            time_min: from,
            time_max: to,
            time_zone: "UTC",
            items: [FreeBusyItem { id: "primary" }],
        };
        let request = self.http.post(self.api_url("/freeBusy")).json(&body);
        let response: FreeBusyResponse = self.send(request, access_token).await?;
        let calendar = response.calendars.get("primary").ok_or_else(|| {
            GoogleError::Rejected("free/busy named no primary calendar".to_owned())
        })?;
        if let Some(error) = calendar.errors.first() {
            return Err(GoogleError::Rejected(format!("free/busy: {error}")));
        }
        Ok(calendar.busy.clone())
    }

    /// Inserts an event with a Meet conference request, inviting the attendees
    /// (`sendUpdates=all`, `conferenceDataVersion=1`).
    pub async fn insert_event(
        &self,
        access_token: &str,
        event: &NewEvent,
    ) -> Result<Event, GoogleError> {
        let request = self
            .http
            .post(self.api_url("/calendars/primary/events"))
            .query(&[("conferenceDataVersion", "1"), ("sendUpdates", "all")])
            .json(event);
        self.send(request, access_token).await
    }

    /// Reads an event back (to see its Meet link).
    pub async fn get_event(
        &self,
        access_token: &str,
        event_id: &str,
    ) -> Result<Event, GoogleError> {
        let request = self
            .http
            .get(self.api_url(&format!("/calendars/primary/events/{event_id}")))
            .query(&[("conferenceDataVersion", "1")]);
        self.send(request, access_token).await
    }

    /// Moves an event, telling the attendees.
    pub async fn move_event(
        &self,
        access_token: &str,
        event_id: &str,
        start: &EventDateTime,
        end: &EventDateTime,
    ) -> Result<Event, GoogleError> {
        let request = self
            .http
            .patch(self.api_url(&format!("/calendars/primary/events/{event_id}")))
            .query(&[("sendUpdates", "all"), ("conferenceDataVersion", "1")])
            .json(&TimesPatch { start, end });
        self.send(request, access_token).await
    }

    /// Cancels (deletes) an event, telling the attendees. An event already gone counts as
    /// cancelled.
    pub async fn delete_event(
        &self,
        access_token: &str,
        event_id: &str,
    ) -> Result<(), GoogleError> {
        let request = self
            .http
            .delete(self.api_url(&format!("/calendars/primary/events/{event_id}")))
            .query(&[("sendUpdates", "all")]);
        match self.send_raw(request, access_token).await {
            Ok(_) | Err(GoogleError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        access_token: &str,
    ) -> Result<T, GoogleError> {
        let response = self.send_raw(request, access_token).await?;
        response
            .json()
            .await
            .map_err(|e| GoogleError::Unavailable(format!("unreadable response: {e}")))
    }

    async fn send_raw(
        &self,
        request: reqwest::RequestBuilder,
        access_token: &str,
    ) -> Result<reqwest::Response, GoogleError> {
        let response = request
            .bearer_auth(access_token)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(classify(status, &text))
    }
}

/// Classifies a Calendar API error by status, keeping Google's message
/// (`{"error": {"code", "message", "errors": [{"reason"}]}}`).
pub fn classify(status: u16, body: &str) -> GoogleError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    match status {
        401 => GoogleError::ReconnectNeeded,
        404 | 410 => GoogleError::NotFound,
        409 => GoogleError::Duplicate,
        // 403 with rateLimitExceeded / userRateLimitExceeded is a rate limit.
        403 if message.to_lowercase().contains("rate limit") => {
            GoogleError::Unavailable(format!("{status}: {message}"))
        }
        408 | 429 | 500..=599 => GoogleError::Unavailable(format!("{status}: {message}")),
        _ => GoogleError::Rejected(format!("{status}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meet_link_is_ready_only_once_the_create_request_succeeded() {
        let event =
            |value: serde_json::Value| -> Event { serde_json::from_value(value).expect("event") };
        let pending = event(serde_json::json!({
            "id": "abc", "conferenceData": { "createRequest": { "requestId": "r", "status": { "statusCode": "pending" } } }
        }));
        assert_eq!(pending.conference(), ConferenceStatus::Pending);
        let ready = event(serde_json::json!({
            "id": "abc", "hangoutLink": "https://meet.google.com/aaa-bbbb-ccc",
            "conferenceData": {
                "createRequest": { "requestId": "r", "status": { "statusCode": "success" } },
                "entryPoints": [{ "entryPointType": "video", "uri": "https://meet.google.com/aaa-bbbb-ccc" }]
            }
        }));
        assert_eq!(
            ready.conference(),
            ConferenceStatus::Ready("https://meet.google.com/aaa-bbbb-ccc".to_owned())
        );
        let failed = event(serde_json::json!({
            "id": "abc", "conferenceData": { "createRequest": { "status": { "statusCode": "failure" } } }
        }));
        assert_eq!(failed.conference(), ConferenceStatus::Failed);
    }
}
