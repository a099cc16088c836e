use axum::body::Body;
use http::{Method, Request};
use serde_json::json;

use crate::helpers::{TestApp, WA_CHANNEL};

async fn post(app: &TestApp, key: &str, body: &serde_json::Value) -> testkit::TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/webchat/{key}/messages"))
        .header("content-type", "application/json")
        .header("origin", "https://shop.example")
        .body(Body::from(body.to_string()))
        .expect("request");
    app.api.send_request(request).await
}

async fn poll(app: &TestApp, query: &str) -> testkit::TestResponse {
    let request = Request::builder()
        .uri(format!("/webchat/{query}"))
        .body(Body::empty())
        .expect("request");
    app.api.send_request(request).await
}

#[tokio::test]
async fn a_visitor_message_is_accepted_stored_and_queued() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "webchat", "site-main").await;

    let response = post(
        &app,
        "site-main",
        &json!({ "visitor_id": "v-123", "text": " Hello there " }),
    )
    .await;

    let body = response.expect(202);
    assert_eq!(body["text"], "Hello there");
    assert_eq!(body["visitor_id"], "v-123");
    assert_eq!(body["status"], "received");
    assert!(
        body["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("wc_"))
    );
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages WHERE phone_number_id = $1 AND customer_id = 'v-123' AND state = 'enqueued'", &[&channel]).await,
        1
    );
    assert_eq!(app.queue.published_count(), 1);
}

#[tokio::test]
async fn unknown_widget_keys_are_404_even_when_another_platform_uses_the_id() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;

    post(&app, "nope", &json!({ "visitor_id": "v", "text": "hi" }))
        .await
        .expect_problem(404, None);
    post(
        &app,
        WA_CHANNEL,
        &json!({ "visitor_id": "v", "text": "hi" }),
    )
    .await
    .expect_problem(404, None);
    poll(&app, "nope/messages?visitor_id=v")
        .await
        .expect_problem(404, None);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn bad_visitor_messages_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    app.channel("acme", "webchat", "site").await;
    let cases = [
        (json!({ "visitor_id": "v", "text": "  " }), "text"),
        (
            json!({ "visitor_id": "v", "text": "x".repeat(2001) }),
            "text",
        ),
        (
            json!({ "visitor_id": "has space", "text": "hi" }),
            "visitor_id",
        ),
        (json!({ "visitor_id": "", "text": "hi" }), "visitor_id"),
        (
            json!({ "visitor_id": "v", "text": "hi", "name": "x" }),
            "name",
        ),
        (json!({ "text": "hi" }), "visitor_id"),
    ];
    for (body, field) in cases {
        post(&app, "site", &body)
            .await
            .expect_problem(422, Some(field));
    }
    poll(&app, "site/messages?visitor_id=a%20b")
        .await
        .expect_problem(422, Some("visitor_id"));
    poll(&app, "site/messages?visitor_id=v&after=-1")
        .await
        .expect_problem(422, Some("after"));
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_visitor_over_the_rate_limit_gets_429() {
    let app = TestApp::spawn().await;
    app.channel("acme", "webchat", "site").await;
    for i in 0..3 {
        post(
            &app,
            "site",
            &json!({ "visitor_id": "chatty", "text": format!("message {i}") }),
        )
        .await
        .expect(202);
    }

    post(
        &app,
        "site",
        &json!({ "visitor_id": "chatty", "text": "one more" }),
    )
    .await
    .expect_problem(429, None);
    post(&app, "site", &json!({ "visitor_id": "calm", "text": "hi" }))
        .await
        .expect(202);

    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE customer_id = 'chatty'",
            &[]
        )
        .await,
        3
    );
}

#[tokio::test]
async fn browsers_get_cors_preflight_answers() {
    let app = TestApp::spawn().await;
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/webchat/site/messages")
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .expect("request");

    let response = app.api.send_request(request).await;

    assert_eq!(response.status, 200);
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
}

#[tokio::test]
async fn polling_before_any_reply_gives_an_empty_list() {
    let app = TestApp::spawn().await;
    app.channel("acme", "webchat", "site").await;

    let response = poll(&app, "site/messages?visitor_id=v&after=0").await;

    assert_eq!(response.expect(200)["items"], json!([]));
}
