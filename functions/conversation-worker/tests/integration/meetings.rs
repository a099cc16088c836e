//! The booking tools in the reply loop, against a fake Google that keeps a calendar.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use shared::{
    domain::UserId,
    google::{Google, GoogleConfig, GrantedTokens, connection},
};
use testkit::google::{FakeGoogle, GOOGLE_EMAIL};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{body_string_contains, method, path},
};

use crate::{
    fakes,
    helpers::{CUSTOMER, TENANT, TestApp, at},
};

/// A start in the future, on the hour, as the customer would type it with an offset.
const START: &str = "2031-03-04T15:00:00+01:00";

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(START)
        .expect("start")
        .with_timezone(&Utc)
}

/// A model that books when the customer says `book` with an ISO-8601 time and an email,
/// asks for free times when they say `free`, and after a tool result repeats it.
struct BookingModel;

impl Respond for BookingModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let first = &body["input"][0];
        let output = if first["type"] == "function_call_output" {
            let said = first["output"].as_str().unwrap_or_default();
            json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": format!("Tool said: {said}") }] }])
        } else {
            let text = first["content"].as_str().unwrap_or_default();
            let time = text
                .split_whitespace()
                .find(|w| DateTime::parse_from_rfc3339(w).is_ok());
            let email = text
                .split_whitespace()
                .find(|w| w.contains('@'))
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()));
            if let (true, Some(time), Some(email)) = (text.contains("book"), time, email) {
                let arguments = json!({ "start": time, "duration_minutes": null, "title": "Product demo", "attendee_name": "Sheena", "attendee_email": email, "notes": "Wants pricing" });
                json!([{ "type": "function_call", "call_id": "call_book", "name": "book_meeting", "arguments": arguments.to_string() }])
            } else if text.contains("free") {
                let from = time.unwrap_or(START);
                let arguments = json!({ "from": from, "to": "2031-03-05T18:00:00+01:00", "duration_minutes": 60 });
                json!([{ "type": "function_call", "call_id": "call_free", "name": "check_availability", "arguments": arguments.to_string() }])
            } else {
                json!([{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "Hello" }] }])
            }
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({ "id": "resp_1", "object": "response", "output": output }))
    }
}

struct Booking {
    app: TestApp,
    google_server: MockServer,
    google: FakeGoogle,
}

/// The worker's app with Google configured and the tenant's calendar connected.
async fn spawn() -> Booking {
    let mut app = TestApp::spawn_without_fakes(10).await;
    Mock::given(method("POST"))
        .and(path("/conversations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "conv_openai_1" })))
        .mount(&app.openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(BookingModel)
        .with_priority(10)
        .mount(&app.openai)
        .await;
    fakes::mount_meta(&app.meta).await;
    let (google_server, google) = FakeGoogle::start().await;
    let client = Google::new(
        reqwest::Client::new(),
        GoogleConfig::for_base_url(&google_server.uri()),
    )
    .expect("google");
    app.state.google = Some(client);
    let db = app.db.client().await;
    db.execute(
        "UPDATE users SET time_zone = 'Europe/Madrid' WHERE user_id = $1",
        &[&TENANT],
    )
    .await
    .expect("zone");
    connection::store_consent(
        &db,
        &app.state.sealing_key,
        &user(),
        &GrantedTokens {
            access_token: "ya29.access-0".to_owned(),
            refresh_token: Some("1//refresh-0".to_owned()),
            expires_at: Utc::now() + Duration::hours(1),
            scopes: None,
            email: Some(GOOGLE_EMAIL.to_owned()),
        },
        "1//refresh-0",
        testkit::google::GRANTED_SCOPES,
    )
    .await
    .expect("connected");
    Booking {
        app,
        google_server,
        google,
    }
}

fn user() -> UserId {
    UserId::parse(TENANT).expect("tenant")
}

impl Booking {
    /// The customer writes `text` `seconds` after the first message; the worker handles it.
    async fn customer_writes(&self, wamid: &str, text: &str, seconds: i64) {
        let job = self.app.inbound(wamid, CUSTOMER, text, at(seconds)).await;
        conversation_worker::handle(&self.app.state, &job)
            .await
            .expect("handled, not failed");
    }

    async fn inserts(&self) -> Vec<Request> {
        self.google_server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r.method.as_str() == "POST"
                    && r.url.path() == "/calendar/v3/calendars/primary/events"
            })
            .collect()
    }

    /// What the tool answered the model (the output of the first function call).
    async fn tool_output(&self) -> Value {
        let calls = self.app.model_calls().await;
        let output = calls
            .iter()
            .find(|c| c["input"][0]["type"] == "function_call_output")
            .map(|c| {
                c["input"][0]["output"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .expect("a tool result went back to the model");
        serde_json::from_str(&output).expect("JSON output")
    }
}

#[tokio::test]
async fn a_booking_call_inserts_one_meet_event_and_stores_the_meeting() {
    let booking = spawn().await;
    let app = &booking.app;
    let client = app.db.client().await;
    booking
        .customer_writes(
            "wamid.BOOK1",
            &format!("Please book {START} my email is sheena@customer.test"),
            0,
        )
        .await;

    // The exact request Google saw.
    let inserts = booking.inserts().await;
    assert_eq!(inserts.len(), 1);
    let query: std::collections::HashMap<String, String> =
        inserts[0].url.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("conferenceDataVersion").map(String::as_str),
        Some("1")
    );
    assert_eq!(query.get("sendUpdates").map(String::as_str), Some("all"));
    let sent: Value = serde_json::from_slice(&inserts[0].body).expect("json");
    let event_id = sent["id"].as_str().expect("id");
    assert!(
        event_id.len() >= 5
            && event_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
        "{event_id}"
    );
    assert_eq!(sent["summary"], "Product demo");
    assert_eq!(sent["description"], "Wants pricing");
    assert_eq!(
        sent["start"],
        json!({ "dateTime": START, "timeZone": "Europe/Madrid" })
    );
    assert_eq!(
        sent["end"],
        json!({ "dateTime": "2031-03-04T15:30:00+01:00", "timeZone": "Europe/Madrid" })
    );
    assert_eq!(
        sent["attendees"],
        json!([{ "email": "sheena@customer.test", "displayName": "Sheena" }])
    );
    assert_eq!(
        sent["conferenceData"],
        json!({ "createRequest": { "requestId": event_id, "conferenceSolutionKey": { "type": "hangoutsMeet" } } })
    );
    assert_eq!(
        inserts[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer ya29.access-0")
    );

    // Our row, with the Meet link Google created after one poll.
    let row = client
        .query_one(
            "SELECT status, google_event_id, meet_link, customer_email, customer_phone, participants, meeting_time, duration_minutes, timezone
             FROM meetings WHERE user_id = $1",
            &[&TENANT],
        )
        .await
        .expect("one meeting");
    assert_eq!(row.get::<_, String>("status"), "scheduled");
    assert_eq!(row.get::<_, String>("google_event_id"), event_id);
    let link: String = row.get("meet_link");
    assert!(link.starts_with("https://meet.google.com/"), "{link}");
    assert_eq!(
        row.get::<_, Option<String>>("customer_email").as_deref(),
        Some("sheena@customer.test")
    );
    assert_eq!(
        row.get::<_, Option<String>>("customer_phone").as_deref(),
        Some("+16505551234")
    );
    assert_eq!(
        row.get::<_, Vec<String>>("participants"),
        vec!["sheena@customer.test".to_owned(), GOOGLE_EMAIL.to_owned()]
    );
    assert_eq!(row.get::<_, DateTime<Utc>>("meeting_time"), start());
    assert_eq!(row.get::<_, i32>("duration_minutes"), 30);
    assert_eq!(
        row.get::<_, Option<String>>("timezone").as_deref(),
        Some("Europe/Madrid")
    );

    // The model was told, and the customer got the confirmation with the link.
    let output = booking.tool_output().await;
    assert_eq!(output["status"], "booked");
    assert_eq!(output["meet_link"], link.as_str());
    assert_eq!(output["start"], START);
    let sends = app.meta_sends().await;
    assert_eq!(sends.len(), 1);
    assert!(
        sends[0]["text"]["body"]
            .as_str()
            .unwrap_or_default()
            .contains(&link)
    );
}

#[tokio::test]
async fn a_booking_fills_the_latest_extractions_empty_demo_time_only() {
    let booking = spawn().await;
    let app = &booking.app;
    let client = app.db.client().await;
    booking.customer_writes("wamid.HELLO", "hello", 0).await;
    let conversation: String = client
        .query_one("SELECT conversation_id FROM conversations", &[])
        .await
        .expect("conversation")
        .get(0);
    // Two extractions at different message counts (one extraction per count, V10).
    for (count, latest, demo) in [(1, false, None), (2, true, None::<DateTime<Utc>>)] {
        client
            .execute(
                "INSERT INTO extractions (conversation_id, user_id, customer_phone, is_latest, demo_book_datetime,
                                          message_count_at_extraction)
                 VALUES ($1, $2, '+16505551234', $3, $4, $5)",
                &[&conversation, &TENANT, &latest, &demo, &count],
            )
            .await
            .expect("extraction");
    }

    booking
        .customer_writes(
            "wamid.BOOK2",
            &format!("book {START} sheena@customer.test"),
            10,
        )
        .await;

    let rows = client
        .query(
            "SELECT is_latest, demo_book_datetime FROM extractions ORDER BY is_latest",
            &[],
        )
        .await
        .expect("rows");
    assert_eq!(
        rows[0].get::<_, Option<DateTime<Utc>>>(1),
        None,
        "an older extraction is left alone"
    );
    assert_eq!(rows[1].get::<_, Option<DateTime<Utc>>>(1), Some(start()));
}

#[tokio::test]
async fn a_job_delivered_twice_books_one_event() {
    let booking = spawn().await;
    let app = &booking.app;
    // The model's answer to the tool result fails once: the job is retried after the
    // event was booked.
    Mock::given(method("POST"))
        .and(path("/responses"))
        .and(body_string_contains("function_call_output"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({ "error": { "message": "boom", "type": "server_error" } })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.openai)
        .await;
    let job = app
        .inbound(
            "wamid.BOOK3",
            CUSTOMER,
            &format!("book {START} sheena@customer.test"),
            at(0),
        )
        .await;

    let first = conversation_worker::handle(&app.state, &job).await;
    assert!(first.is_err(), "the first delivery fails after booking");
    conversation_worker::handle(&app.state, &job)
        .await
        .expect("the redelivery succeeds");
    conversation_worker::handle(&app.state, &job)
        .await
        .expect("a third delivery is a no-op");

    assert_eq!(booking.inserts().await.len(), 1, "one event at Google");
    assert_eq!(booking.google.events().len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM meetings", &[]).await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM meetings WHERE status = 'scheduled'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(app.meta_sends().await.len(), 1, "one confirmation");
    assert_eq!(booking.tool_output().await["status"], "booked");
}

#[tokio::test]
async fn a_slot_taken_in_the_meantime_is_answered_with_other_free_slots() {
    let booking = spawn().await;
    let app = &booking.app;
    booking.google.busy(
        start() - Duration::minutes(15),
        start() + Duration::minutes(45),
    );
    booking
        .customer_writes(
            "wamid.BOOK4",
            &format!("book {START} sheena@customer.test"),
            0,
        )
        .await;

    assert!(booking.inserts().await.is_empty(), "nothing booked");
    assert_eq!(app.count("SELECT count(*) FROM meetings", &[]).await, 0);
    let output = booking.tool_output().await;
    assert_eq!(output["status"], "slot_taken");
    let slots: Vec<&str> = output["free_slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!slots.is_empty());
    assert!(!slots.contains(&START), "{slots:?}");
    // 15:45 Madrid is the first half-hour start clear of the busy hour (14:45 to 15:45).
    assert_eq!(slots[0], "2031-03-04T16:00:00+01:00");
}

#[tokio::test]
async fn a_revoked_connection_makes_the_agent_hand_the_time_to_a_person() {
    let booking = spawn().await;
    let app = &booking.app;
    booking.google.revoke("1//refresh-0");
    app.db
        .client()
        .await
        .execute(
            "UPDATE google_calendar_tokens SET token_expiry = now() - interval '1 minute'",
            &[],
        )
        .await
        .expect("expire");
    booking
        .customer_writes(
            "wamid.BOOK5",
            &format!("book {START} sheena@customer.test"),
            0,
        )
        .await;

    let output = booking.tool_output().await;
    assert_eq!(output["status"], "calendar_unavailable");
    assert!(
        output["instructions"]
            .as_str()
            .unwrap_or_default()
            .contains("colleague will confirm")
    );
    assert!(booking.inserts().await.is_empty());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM google_calendar_tokens WHERE health = 'reconnect_needed'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.meta_sends().await.len(),
        1,
        "the customer still gets an answer"
    );
}

#[tokio::test]
async fn availability_comes_from_free_busy_in_the_tenants_zone() {
    let booking = spawn().await;
    booking.google.busy(start(), start() + Duration::hours(2));
    booking
        .customer_writes("wamid.FREE1", &format!("any free times from {START} ?"), 0)
        .await;

    let free_busy: Vec<Request> = booking
        .google_server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/calendar/v3/freeBusy")
        .collect();
    assert_eq!(free_busy.len(), 1);
    let sent: Value = serde_json::from_slice(&free_busy[0].body).expect("json");
    assert_eq!(sent["items"], json!([{ "id": "primary" }]));
    assert_eq!(
        sent["timeMin"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().ok()),
        Some(Some(start()))
    );
    let output = booking.tool_output().await;
    assert_eq!(output["time_zone"], "Europe/Madrid");
    assert_eq!(output["duration_minutes"], 60);
    let slots: Vec<&str> = output["free_slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Busy 15:00-17:00 Madrid; an hour-long slot fits from 17:00, then the next day at 09:00.
    assert_eq!(slots[0], "2031-03-04T17:00:00+01:00");
    assert_eq!(slots[1], "2031-03-05T09:00:00+01:00");
}

#[tokio::test]
async fn without_a_connected_calendar_the_model_is_offered_no_booking_tools() {
    let booking = spawn().await;
    let app = &booking.app;
    app.db
        .client()
        .await
        .execute("DELETE FROM google_calendar_tokens", &[])
        .await
        .expect("disconnect");
    booking.customer_writes("wamid.NOCAL", "hello", 0).await;

    let calls = app.model_calls().await;
    let names: Vec<&str> = calls[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["handoff_to_human"]);
}

#[tokio::test]
async fn two_concurrent_bookings_of_the_same_slot_make_one_event_and_one_row() {
    use conversation_worker::{
        booking::{BookingContext, book_meeting},
        tools::BookingRequest,
    };
    let booking = spawn().await;
    let app = &booking.app;
    booking.customer_writes("wamid.HELLO2", "hello", 0).await;
    let conversation = shared::domain::ConversationId::from_trusted(
        app.db
            .client()
            .await
            .query_one("SELECT conversation_id FROM conversations", &[])
            .await
            .expect("conversation")
            .get(0),
    );
    let google = app.state.google.clone().expect("google");
    let user = user();
    let context = BookingContext {
        user: &user,
        conversation_id: &conversation,
        customer_phone: "+16505551234",
        zone: shared::domain::TenantTimeZone::parse("Europe/Madrid").expect("zone"),
        hours: None,
    };
    let request = BookingRequest {
        start: start(),
        duration: Duration::minutes(30),
        title: "Demo".to_owned(),
        attendee_name: None,
        attendee_email: "sheena@customer.test".to_owned(),
        notes: None,
    };
    let (ca, cb) = (app.db.client().await, app.db.client().await);

    let (a, b) = futures::join!(
        book_meeting(&app.state, &google, &ca, &context, &request),
        book_meeting(&app.state, &google, &cb, &context, &request),
    );

    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a["status"], "booked", "{a}");
    assert_eq!(b["status"], "booked", "{b}");
    assert_eq!(a["meeting_id"], b["meeting_id"]);
    assert_eq!(booking.google.events().len(), 1, "one event at Google");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM meetings WHERE status = 'scheduled'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_booking_outside_the_tenants_working_hours_is_refused_to_the_model_and_books_nothing() {
    use chrono::Datelike;

    let booking = spawn().await;
    let app = &booking.app;
    // Every day but the one the customer asks for (15:00 Madrid is 14:00 UTC, same day).
    let asked = i64::from(start().weekday().number_from_monday());
    let open_days: Vec<i64> = (1..=7).filter(|d| *d != asked).collect();
    let hours = shared::domain::WorkingHours::parse("09:00", "18:00", &open_days).expect("hours");
    shared::db::users::set_working_hours(&app.db.client().await, &user(), Some(&hours))
        .await
        .expect("hours stored");
    booking
        .customer_writes(
            "wamid.BOOKCLOSED",
            &format!("book {START} sheena@customer.test"),
            0,
        )
        .await;

    let output = booking.tool_output().await;
    let error = output["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("outside the company's working hours") && error.contains("Europe/Madrid"),
        "{output}"
    );
    assert!(booking.inserts().await.is_empty(), "no event at Google");
    assert_eq!(app.count("SELECT count(*) FROM meetings", &[]).await, 0);
    assert_eq!(
        app.meta_sends().await.len(),
        1,
        "the customer still gets an answer"
    );
}

#[tokio::test]
async fn one_conversation_books_at_most_two_upcoming_meetings() {
    let booking = spawn().await;
    let app = &booking.app;
    let times = [
        "2031-03-04T15:00:00+01:00",
        "2031-03-05T15:00:00+01:00",
        "2031-03-06T15:00:00+01:00",
    ];
    for (i, time) in times.iter().enumerate() {
        let job = app
            .inbound(
                &format!("wamid.CAP{i}"),
                CUSTOMER,
                &format!("book {time} guest{i}@third-party.test"),
                at(i64::try_from(i).expect("small") * 10),
            )
            .await;
        conversation_worker::handle(&app.state, &job)
            .await
            .expect("handled");
    }

    assert_eq!(booking.inserts().await.len(), 2, "two events at Google");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM meetings WHERE status = 'scheduled'",
            &[]
        )
        .await,
        2
    );
    let refused = app
        .model_calls()
        .await
        .iter()
        .filter_map(|c| c["input"][0]["output"].as_str().map(str::to_owned))
        .any(|output| output.contains("too_many_meetings"));
    assert!(refused, "the third call was answered with the cap");
}
