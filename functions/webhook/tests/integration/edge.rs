//! What providers really send at the edges: NUL characters, identifiers of real length and
//! longer than anything we store. An authenticated delivery is always acknowledged (200), so
//! Meta never redelivers it for days; what can be stored is stored, cleaned.

use axum::body::Body;
use http::{Method, Request};
use serde_json::json;

use crate::helpers::{IG_CHANNEL, TestApp, WA_CHANNEL, fixture};

/// An Instagram message id of the length Meta really sends (about 164 characters).
fn real_instagram_mid() -> String {
    let mid = format!(
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDozNDAyODIzNjY4NDE3MTAzMDEyNDQyNzYwMDkyMzY2OTkwNzA4ODA6MjI4NTc4MDMwNzQzOTA0NTI5ODk0MjQ1ODQ2MDk5{}",
        "NjcyMzIwMAZDZD"
    );
    assert!(mid.len() > 160, "a real-length mid: {}", mid.len());
    mid
}

#[tokio::test]
async fn a_signed_whatsapp_text_with_a_nul_is_acknowledged_and_stored_cleaned() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let mut payload = fixture("wa_text.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["messages"][0]["text"]["body"] = json!("hi \u{0} there");
    value["contacts"][0]["profile"]["name"] = json!("Shee\u{0}na");
    value["messages"][0]["context"] = json!({ "from": "1555\u{0}", "id\u{0}": "x" });

    app.post_json(&payload).await.expect(200);
    // Meta redelivers: still one row, still 200.
    app.post_json(&payload).await.expect(200);

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT text, customer_name, metadata, state FROM inbound_messages
             WHERE platform_message_id = 'wamid.TEXT1'",
            &[],
        )
        .await
        .expect("stored once");
    assert_eq!(row.get::<_, String>("text"), "hi \u{FFFD} there");
    assert_eq!(
        row.get::<_, Option<String>>("customer_name").as_deref(),
        Some("Shee\u{FFFD}na")
    );
    let metadata: serde_json::Value = row.get("metadata");
    assert_eq!(
        metadata["context"],
        json!({ "from": "1555\u{FFFD}", "id\u{FFFD}": "x" })
    );
    assert_eq!(row.get::<_, String>("state"), "enqueued");
    assert_eq!(app.queue.published_count(), 1);
    app.take_published_jobs();
}

#[tokio::test]
async fn a_message_whose_id_holds_a_nul_is_skipped_and_the_others_are_stored() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let mut payload = fixture("wa_text.json");
    let good = payload["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    let mut bad = good.clone();
    bad["id"] = json!("wamid.\u{0}BAD");
    payload["entry"][0]["changes"][0]["value"]["messages"] = json!([bad, good]);

    app.post_json(&payload).await.expect(200);

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = 'wamid.TEXT1'",
            &[]
        )
        .await,
        1
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn a_status_whose_id_or_channel_holds_a_nul_is_acknowledged() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let mut payload = fixture("wa_statuses.json");
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = json!("wamid.\u{0}");
    app.post_json(&payload).await.expect(200);

    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("1065\u{0}");
    app.post_json(&payload).await.expect(200);
}

#[tokio::test]
async fn a_real_length_instagram_message_id_is_stored() {
    let app = TestApp::spawn().await;
    app.channel("acme", "instagram", IG_CHANNEL).await;
    let mid = real_instagram_mid();
    let mut payload = fixture("ig_text.json");
    payload["entry"][0]["messaging"][0]["message"]["mid"] = json!(mid);

    app.post_json(&payload).await.expect(200);

    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = $1 AND state = 'enqueued'",
            &[&mid]
        )
        .await,
        1
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn ids_longer_than_their_columns_are_skipped_with_a_200_not_a_retry() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    app.channel("acme", "instagram", IG_CHANNEL).await;
    let too_long_mid = "m".repeat(shared::domain::PROVIDER_MESSAGE_ID_MAX_CHARS + 1);
    let too_long_sender = "7".repeat(shared::domain::CUSTOMER_ID_MAX_CHARS + 1);
    let mut long_mid = fixture("ig_text.json");
    long_mid["entry"][0]["messaging"][0]["message"]["mid"] = json!(too_long_mid);
    let mut long_sender = fixture("ig_text.json");
    long_sender["entry"][0]["messaging"][0]["sender"]["id"] = json!(too_long_sender);
    // A WhatsApp sender becomes `+` and the id: the key must fit, not just the id.
    let mut long_wa_id = fixture("wa_text.json");
    long_wa_id["entry"][0]["changes"][0]["value"]["messages"][0]["from"] =
        json!("1".repeat(shared::domain::CUSTOMER_ID_MAX_CHARS));

    for payload in [long_mid, long_sender, long_wa_id] {
        app.post_json(&payload).await.expect(200);
    }

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

#[tokio::test]
async fn a_webchat_post_with_a_nul_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let key = shared::domain::generate_widget_key();
    app.channel("acme", "webchat", &key).await;
    let session = app
        .api
        .send_request(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/webchat/{key}/sessions"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let token = session.expect(201)["visitor_token"]
        .as_str()
        .expect("visitor_token")
        .to_owned();
    let body = json!({ "text": "hi \u{0} there" });
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/webchat/{key}/messages"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .expect("request");

    app.api
        .send_request(request)
        .await
        .expect_problem(422, Some("text"));

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

#[tokio::test]
async fn a_nul_in_a_path_parameter_is_a_422_naming_it() {
    let app = TestApp::spawn().await;
    let request = Request::builder()
        .uri("/webchat/site%00/messages")
        .body(Body::empty())
        .expect("request");

    app.api
        .send_request(request)
        .await
        .expect_problem(422, Some("widget_key"));
}

#[tokio::test]
async fn an_event_the_database_refuses_for_its_data_is_acknowledged_not_redelivered_for_days() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    // Any refusal of the data behaves the same; a narrowed column stands in for them all.
    app.db
        .client()
        .await
        .batch_execute("ALTER TABLE inbound_messages ALTER COLUMN text TYPE VARCHAR(5)")
        .await
        .expect("narrow the column");

    app.post_json(&fixture("wa_text.json")).await.expect(200);

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);

    // The same message with a text the column holds is stored: the refusal above was the
    // database's, not an event dropped earlier.
    let mut short = fixture("wa_text.json");
    short["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = json!("hi");
    app.post_json(&short).await.expect(200);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        1
    );
    app.take_published_jobs();
}
