use chrono::{Duration, Utc};
use serde_json::json;
use shared::domain::MeetingId;

use crate::helpers::{TestApp, future};

#[tokio::test]
async fn meetings_are_listed_newest_first_with_filters_and_pages() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let conversation = app.conversation(&tenant, Duration::hours(1)).await;
    let other = app.conversation(&tenant, Duration::hours(1)).await;
    let first = app.meeting(&tenant, &conversation, future(1, 0)).await;
    let second = app.meeting(&tenant, &conversation, future(2, 0)).await;
    let third = app.meeting(&tenant, &other, future(10, 0)).await;

    let page = app
        .api
        .get("/meetings?limit=2", &tenant.token())
        .await
        .expect(200)
        .clone();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["meeting_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![third.as_str(), second.as_str()]);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let next = app
        .api
        .get(
            &format!("/meetings?limit=2&cursor={cursor}"),
            &tenant.token(),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(next["items"][0]["meeting_id"], first.as_str());
    assert!(next["next_cursor"].is_null());

    let by_conversation = app
        .api
        .get(
            &format!("/meetings?conversation_id={}", other.as_str()),
            &tenant.token(),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(by_conversation["items"].as_array().map(Vec::len), Some(1));
    let from = future(5, 0).to_rfc3339().replace('+', "%2B");
    let later = app
        .api
        .get(&format!("/meetings?from={from}"), &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(later["items"].as_array().map(Vec::len), Some(1));
    let cancelled = app
        .api
        .get("/meetings?status=cancelled", &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(cancelled["items"].as_array().map(Vec::len), Some(0));
    app.api
        .get("/meetings?status=maybe", &tenant.token())
        .await
        .expect_problem(422, Some("status"));

    let one = app
        .api
        .get(&format!("/meetings/{}", first.as_str()), &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(one["status"], "scheduled");
    assert_eq!(one["meet_link"], "https://meet.google.com/abc-defg-hij");
    assert_eq!(one["timezone"], "Europe/Madrid");
}

#[tokio::test]
async fn cancelling_deletes_the_event_at_google_telling_attendees_and_the_customer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    let conversation = app.conversation(&tenant, Duration::hours(1)).await;
    let meeting = app.meeting(&tenant, &conversation, future(1, 0)).await;

    let body = app
        .api
        .post(
            &format!("/meetings/{}/cancel", meeting.as_str()),
            &tenant.token(),
            &json!({}),
        )
        .await
        .expect(200)
        .clone();

    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["customer_notified"], true);
    let deletes = app.google_requests("DELETE", "/events/").await;
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].url.query(), Some("sendUpdates=all"));
    let event_id = body["google_event_id"].as_str().expect("event id");
    assert!(deletes[0].url.path().ends_with(event_id));
    assert_eq!(app.google.events()[event_id]["status"], "cancelled");
    // The customer's message is stored and was sent.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND sender = 'agent' AND text LIKE '%cancelled%'",
            &[&conversation.as_str()],
        )
        .await,
        1
    );
    assert_eq!(
        app.meta.received_requests().await.unwrap_or_default().len(),
        1
    );
    // Twice: nothing more happens.
    app.api
        .post(
            &format!("/meetings/{}/cancel", meeting.as_str()),
            &tenant.token(),
            &json!({}),
        )
        .await
        .expect_problem(409, None);
    assert_eq!(app.google_requests("DELETE", "/events/").await.len(), 1);
}

#[tokio::test]
async fn cancelling_outside_the_whatsapp_window_does_not_message_the_customer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    let conversation = app.conversation(&tenant, Duration::hours(30)).await;
    let meeting = app.meeting(&tenant, &conversation, future(1, 0)).await;

    let body = app
        .api
        .post(
            &format!("/meetings/{}/cancel", meeting.as_str()),
            &tenant.token(),
            &json!({}),
        )
        .await
        .expect(200)
        .clone();

    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["customer_notified"], false);
    assert!(
        app.meta
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn rescheduling_moves_the_event_at_google_and_the_row() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    let conversation = app.conversation(&tenant, Duration::hours(1)).await;
    let meeting = app.meeting(&tenant, &conversation, future(1, 0)).await;
    let new_start = future(3, 2);

    let body = app
        .api
        .post(
            &format!("/meetings/{}/reschedule", meeting.as_str()),
            &tenant.token(),
            &json!({ "start": new_start.to_rfc3339() }),
        )
        .await
        .expect(200)
        .clone();

    assert_eq!(body["start"], json!(new_start));
    let patches = app.google_requests("PATCH", "/events/").await;
    assert_eq!(patches.len(), 1);
    assert!(
        patches[0]
            .url
            .query()
            .unwrap_or_default()
            .contains("sendUpdates=all")
    );
    let sent: serde_json::Value = serde_json::from_slice(&patches[0].body).expect("json");
    assert_eq!(sent["start"]["timeZone"], "Europe/Madrid");
    assert_eq!(sent["end"]["timeZone"], "Europe/Madrid");
    let sent_start =
        chrono::DateTime::parse_from_rfc3339(sent["start"]["dateTime"].as_str().expect("start"))
            .expect("rfc3339");
    assert_eq!(sent_start, new_start);
    let sent_end =
        chrono::DateTime::parse_from_rfc3339(sent["end"]["dateTime"].as_str().expect("end"))
            .expect("rfc3339");
    assert_eq!(sent_end, new_start + Duration::minutes(30));

    // A start in the past, not a time, or past the ten-year horizon (year 9999 would give
    // Google an end it cannot read) is refused naming `start`; nothing moves.
    for bad in [
        json!({ "start": (Utc::now() - Duration::hours(1)).to_rfc3339() }),
        json!({ "start": "next tuesday" }),
        json!({ "start": "9999-12-31T23:45:00Z" }),
        json!({ "start": (Utc::now() + Duration::days(3_700)).to_rfc3339() }),
    ] {
        app.api
            .post(
                &format!("/meetings/{}/reschedule", meeting.as_str()),
                &tenant.token(),
                &bad,
            )
            .await
            .expect_problem(422, Some("start"));
    }
    assert_eq!(app.google_requests("PATCH", "/events/").await.len(), 1);
}

#[tokio::test]
async fn the_sweep_completes_meetings_whose_end_has_passed_only() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let conversation = app.conversation(&tenant, Duration::hours(1)).await;
    let ended = app
        .meeting(&tenant, &conversation, Utc::now() - Duration::minutes(45))
        .await;
    let running = app
        .meeting(&tenant, &conversation, Utc::now() - Duration::minutes(10))
        .await;
    let coming = app.meeting(&tenant, &conversation, future(1, 0)).await;

    let completed = meetings::sweep_completed(&app.db.pool, Utc::now())
        .await
        .expect("sweep");

    assert_eq!(completed, 1);
    let status = |id: MeetingId| {
        let app = &app;
        async move {
            app.db
                .client()
                .await
                .query_one(
                    "SELECT status FROM meetings WHERE meeting_id = $1",
                    &[&id.as_str()],
                )
                .await
                .expect("row")
                .get::<_, String>(0)
        }
    };
    assert_eq!(status(ended).await, "completed");
    assert_eq!(status(running).await, "scheduled");
    assert_eq!(status(coming).await, "scheduled");
    assert_eq!(
        meetings::sweep_completed(&app.db.pool, Utc::now())
            .await
            .expect("sweep"),
        0
    );
}

#[tokio::test]
async fn another_tenants_meeting_is_a_404_on_every_route_and_never_listed() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    app.connect(&acme).await;
    app.connect(&globex).await;
    let conversation = app.conversation(&acme, Duration::hours(1)).await;
    let meeting = app.meeting(&acme, &conversation, future(1, 0)).await;
    let id = meeting.as_str();

    app.api
        .get(&format!("/meetings/{id}"), &globex.token())
        .await
        .expect_problem(404, None);
    app.api
        .post(
            &format!("/meetings/{id}/cancel"),
            &globex.token(),
            &json!({}),
        )
        .await
        .expect_problem(404, None);
    app.api
        .post(
            &format!("/meetings/{id}/reschedule"),
            &globex.token(),
            &json!({ "start": future(2, 0).to_rfc3339() }),
        )
        .await
        .expect_problem(404, None);
    let listed = app
        .api
        .get("/meetings", &globex.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
    let by_conversation = app
        .api
        .get(
            &format!("/meetings?conversation_id={}", conversation.as_str()),
            &globex.token(),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(by_conversation["items"].as_array().map(Vec::len), Some(0));
    assert!(app.google_requests("DELETE", "/events/").await.is_empty());
    assert!(app.google_requests("PATCH", "/events/").await.is_empty());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM meetings WHERE status = 'scheduled'",
            &[]
        )
        .await,
        1
    );
    // A malformed id is a 404 too.
    app.api
        .get("/meetings/mtg_nope", &acme.token())
        .await
        .expect_problem(404, None);
}
