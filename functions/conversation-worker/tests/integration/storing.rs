//! Storing a customer's messages: real-length provider ids fit, and a message the database
//! refuses fails alone, with its reason, instead of blocking the customer's later messages.

use conversation_worker::handle;
use serde_json::json;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path_regex},
};

use crate::{
    fakes,
    helpers::{CUSTOMER, TestApp, at},
};

/// A provider message id of the length Instagram really sends (about 164 characters).
fn real_length_id(tag: &str) -> String {
    let id = format!(
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx{tag}{}",
        "Nz".repeat(60)
    );
    assert!(id.len() > 160);
    id
}

#[tokio::test]
async fn a_real_length_provider_id_is_stored_and_answered() {
    let app = TestApp::spawn(5).await;
    let id = real_length_id("A");
    let job = app.inbound(&id, CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("handled");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE platform_message_id = $1 AND sender = 'user'",
            &[&id]
        )
        .await,
        1
    );
    assert_eq!(app.meta_sends().await.len(), 1);
}

#[tokio::test]
async fn a_message_the_database_refuses_fails_alone_and_the_customers_next_message_is_answered() {
    let app = TestApp::spawn(5).await;
    // A column narrower than what the provider sent, as `messages.platform_message_id` (100)
    // was for Instagram ids before V6: any per-row refusal behaves the same.
    app.db
        .client()
        .await
        .batch_execute("ALTER TABLE messages ALTER COLUMN platform_message_id TYPE VARCHAR(100)")
        .await
        .expect("narrow the column");
    let unstorable = real_length_id("B");
    let first = app.inbound(&unstorable, CUSTOMER, "first", at(0)).await;
    let second = app.inbound("wamid.NEXT", CUSTOMER, "second", at(5)).await;

    handle(&app.state, &first)
        .await
        .expect("the first job completes");
    handle(&app.state, &second)
        .await
        .expect("the second job completes");
    // A redelivery of the failed message's job does nothing more.
    handle(&app.state, &first)
        .await
        .expect("redelivery completes");

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT state, outcome, failure_reason, message_id FROM inbound_messages
             WHERE platform_message_id = $1",
            &[&unstorable],
        )
        .await
        .expect("inbox row");
    assert_eq!(row.get::<_, String>("state"), "done");
    assert_eq!(
        row.get::<_, Option<String>>("outcome").as_deref(),
        Some("store_failed")
    );
    let reason: Option<String> = row.get("failure_reason");
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("too long")),
        "{reason:?}"
    );
    assert_eq!(row.get::<_, Option<String>>("message_id"), None);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE sender = 'user' AND text = 'second' AND sequence_no = 1",
            &[]
        )
        .await,
        1,
        "the next message is stored, first in the conversation"
    );
    let sends = app.meta_sends().await;
    assert_eq!(sends.len(), 1, "only the storable message is answered");
    assert_eq!(sends[0]["text"]["body"], "Echo: second");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = 'wamid.NEXT' AND outcome = 'replied'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.credits().await,
        (4, 1),
        "no credit for the failed message"
    );
}

/// Meta accepts every send and answers with `id`.
async fn meta_answering_with(app: &TestApp, id: &str) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/\d+/messages$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": CUSTOMER, "wa_id": CUSTOMER }],
            "messages": [{ "id": id }],
        })))
        .mount(&app.meta)
        .await;
}

#[tokio::test]
async fn a_real_length_id_meta_gives_a_reply_is_recorded_with_the_reply() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    let id = real_length_id("OUT");
    meta_answering_with(&app, &id).await;
    let job = app.inbound("wamid.IN", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("handled");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages m JOIN message_delivery_status d USING (message_id)
             WHERE m.sender = 'agent' AND m.status = 'sent' AND m.platform_message_id = $1
               AND d.platform_message_id = $1",
            &[&id]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_id_meta_gives_that_no_column_can_hold_never_causes_a_second_send() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    meta_answering_with(
        &app,
        &"w".repeat(shared::domain::PROVIDER_MESSAGE_ID_MAX_CHARS + 1),
    )
    .await;
    let job = app.inbound("wamid.IN", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("handled");
    handle(&app.state, &job).await.expect("redelivery handled");

    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE sender = 'agent' AND status = 'sent' AND platform_message_id IS NULL",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE outcome = 'replied'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_model_reply_holding_a_nul_is_stored_and_sent_cleaned_not_retried_forever() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_meta(&app.meta).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/conversations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "id": "conv_openai_1", "object": "conversation" })),
        )
        .mount(&app.openai)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_1", "object": "response",
            "output": [{ "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "Hi \u{0} there" }] }],
        })))
        .mount(&app.openai)
        .await;
    let job = app.inbound("wamid.IN", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("handled");

    let sends = app.meta_sends().await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["text"]["body"], "Hi \u{FFFD} there");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE sender = 'agent' AND text = $1 AND status = 'sent'",
            &[&"Hi \u{FFFD} there"]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_customer_whose_conversation_cannot_be_written_gets_a_failed_row_not_an_endless_retry() {
    let app = TestApp::spawn(5).await;
    // A customer key longer than the column, as a 60-character webchat visitor id was for
    // `conversations.customer_phone` (50) before V6.
    app.db
        .client()
        .await
        .batch_execute("ALTER TABLE conversations ALTER COLUMN customer_phone TYPE VARCHAR(5)")
        .await
        .expect("narrow the column");
    let job = app.inbound("wamid.IN", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("the job completes");
    // A redelivery finds the row finished: nothing is tried again.
    handle(&app.state, &job)
        .await
        .expect("the redelivered job completes");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages
             WHERE state = 'done' AND outcome = 'store_failed' AND attempts = 1
               AND failure_reason LIKE '%too long%'",
            &[]
        )
        .await,
        1
    );
    assert!(app.model_calls().await.is_empty());
    assert_eq!(app.credits().await, (5, 0));
}
