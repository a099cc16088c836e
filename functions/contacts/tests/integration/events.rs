//! `GET /events`.

use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn events_are_listed_newest_first_paginated_filtered_and_per_tenant() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app
        .create(json!({"phone": "+14155552671", "tags": ["a"]}))
        .await;
    let id = ana["contact_id"].as_str().expect("id");
    app.api
        .post(
            &format!("/contacts/{id}/tags"),
            &token,
            &json!({"tags": ["b", "c"]}),
        )
        .await
        .expect(200);
    let other = app.other_tenant().await;
    app.api
        .post(
            "/contacts",
            &other.token(),
            &json!({"phone": "+14155552671", "tags": ["theirs"]}),
        )
        .await
        .expect(201);

    let first = app.api.get("/events?limit=2", &token).await;
    let body = first.expect(200).clone();
    let tags: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["payload"]["tag"].as_str().expect("tag"))
        .collect();
    assert_eq!(tags, vec!["c", "b"]);
    assert_eq!(body["items"][0]["event_type"], "TAG_ADDED");
    assert_eq!(body["items"][0]["contact_id"], id);
    assert_eq!(body["items"][0]["published_at"], serde_json::Value::Null);
    let cursor = body["next_cursor"].as_str().expect("more");
    let second = app
        .api
        .get(&format!("/events?limit=2&cursor={cursor}"), &token)
        .await;
    let body = second.expect(200);
    assert_eq!(body["items"][0]["payload"]["tag"], "a");
    assert_eq!(body["next_cursor"], serde_json::Value::Null);

    let filtered = app
        .api
        .get(
            &format!("/events?event_type=TAG_ADDED&contact_id={id}"),
            &token,
        )
        .await;
    assert_eq!(
        filtered.expect(200)["items"].as_array().map(Vec::len),
        Some(3)
    );
    let none = app.api.get("/events?event_type=LEAD_HOT", &token).await;
    assert_eq!(none.expect(200)["items"], json!([]));
    let theirs = app.api.get("/events", &other.token()).await;
    let items = theirs.expect(200)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1));
    assert_eq!(items[0]["payload"]["tag"], "theirs");

    app.api
        .get("/events?event_type=SOMETHING", &token)
        .await
        .expect_problem(422, Some("event_type"));
    app.api
        .get("/events?contact_id=nope", &token)
        .await
        .expect_problem(422, Some("contact_id"));
}
