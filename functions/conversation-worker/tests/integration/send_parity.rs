//! The AI's reply (this worker) and a person's reply (the `conversations` API) go through
//! the one send-and-record path, so every class of Meta failure leaves the same rows.

use conversations::ConversationsState;
use serde_json::json;
use testkit::{TestClient, TestTenant};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path_regex},
};

use crate::{fakes, helpers::*};

/// What the rows say about one agent message after a send.
#[derive(Debug, PartialEq, Eq)]
struct Recorded {
    status: String,
    error_code: Option<String>,
    send_failure: Option<String>,
    platform_message_id: Option<String>,
    delivery_status: Option<String>,
    delivery_error: Option<String>,
}

async fn recorded(app: &TestApp, author: &str) -> Recorded {
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT m.status, m.error_code, m.send_failure, m.platform_message_id,
                    d.status AS delivery_status, d.error_message
             FROM messages m LEFT JOIN message_delivery_status d ON d.message_id = m.message_id
             WHERE m.sender = 'agent' AND m.author = $1",
            &[&author],
        )
        .await
        .expect("one agent message");
    Recorded {
        status: row.get(0),
        error_code: row.get(1),
        send_failure: row.get(2),
        platform_message_id: row.get(3),
        delivery_status: row.get(4),
        delivery_error: row.get(5),
    }
}

/// The AI answers a customer, then a person replies in the same conversation, both while
/// Meta answers `meta`; returns what was recorded for each, the worker's result and the
/// API's status.
async fn both_replies(meta: ResponseTemplate) -> (Recorded, Recorded, bool, u16) {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(meta)
        .mount(&app.meta)
        .await;

    // The AI's reply.
    let job = app
        .inbound("wamid.IN.1", CUSTOMER, "Hi", chrono::Utc::now())
        .await;
    let worker_retries = conversation_worker::handle(&app.state, &job).await.is_err();

    // A person's reply in the same conversation, through the API.
    let tenant = TestTenant {
        sub: TENANT.to_owned(),
        email: "acme@example.test".to_owned(),
    };
    let api = TestClient::new(conversations::router(ConversationsState {
        api: testkit::api_state(&app.db),
        graph: app.state.graph.clone(),
        extraction_queue: shared::jobs::ExtractionQueue::Local(shared::jobs::LocalQueue::new()),
    }));
    let conversation: String = app
        .db
        .client()
        .await
        .query_one("SELECT conversation_id FROM conversations", &[])
        .await
        .expect("conversation")
        .get(0);
    let response = api
        .post(
            &format!("/conversations/{conversation}/messages"),
            &tenant.token(),
            &json!({ "text": "A person here" }),
        )
        .await;
    let status = response.status.as_u16();
    (
        recorded(&app, "ai").await,
        recorded(&app, "human").await,
        worker_retries,
        status,
    )
}

#[tokio::test]
async fn the_ai_and_a_person_record_every_meta_failure_class_identically() {
    let cases = [
        // (what Meta answers, class, code, retried by the worker, API status)
        (
            fakes::meta_error(130_429, "Rate limit hit"),
            "retryable",
            Some("130429"),
            true,
            503,
        ),
        (
            fakes::meta_error(131_047, "Re-engagement message"),
            "permanent",
            Some("131047"),
            false,
            502,
        ),
        (
            fakes::meta_error(131_026, "Message undeliverable"),
            "permanent",
            Some("131026"),
            false,
            502,
        ),
        (
            ResponseTemplate::new(500).set_body_json(
                json!({ "error": { "message": "An unknown error occurred", "code": 1, "fbtrace_id": "Az" } }),
            ),
            "retryable",
            Some("1"),
            true,
            503,
        ),
        (
            ResponseTemplate::new(502)
                .set_body_raw("<html><body>502 Bad Gateway</body></html>", "text/html"),
            "retryable",
            None,
            true,
            503,
        ),
    ];
    for (meta, class, code, retried, api_status) in cases {
        let (ai, person, worker_retries, status) = both_replies(meta).await;
        let label = format!("{class} {code:?}");
        let expected_status = if class == "retryable" {
            "pending"
        } else {
            "failed"
        };
        assert_eq!(ai.status, expected_status, "{label}");
        assert_eq!(ai.send_failure.as_deref(), Some(class), "{label}");
        assert_eq!(ai.error_code.as_deref(), code, "{label}");
        assert_eq!(ai.platform_message_id, None, "{label}");
        let expected_delivery = if class == "retryable" {
            "pending"
        } else {
            "failed"
        };
        assert_eq!(
            ai.delivery_status.as_deref(),
            Some(expected_delivery),
            "{label}"
        );
        assert!(ai.delivery_error.is_some(), "{label}: the reason is kept");
        assert_eq!(
            person, ai,
            "{label}: a person's reply is recorded like the AI's"
        );
        assert_eq!(worker_retries, retried, "{label}");
        assert_eq!(status, api_status, "{label}");
    }
}

#[tokio::test]
async fn a_non_json_error_body_is_kept_as_text_in_the_reason() {
    let (ai, person, _, _) = both_replies(
        ResponseTemplate::new(502).set_body_raw("upstream connect error", "text/plain"),
    )
    .await;
    assert_eq!(
        ai.delivery_error.as_deref(),
        Some("HTTP 502: upstream connect error")
    );
    assert_eq!(person, ai);
}

#[tokio::test]
async fn a_retried_reply_that_then_goes_through_is_sent_with_its_error_cleared() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(fakes::meta_error(130_429, "Rate limit hit"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
    fakes::mount_meta(&app.meta).await;
    let job = app
        .inbound("wamid.IN.1", CUSTOMER, "Hi", chrono::Utc::now())
        .await;

    assert!(conversation_worker::handle(&app.state, &job).await.is_err());
    conversation_worker::handle(&app.state, &job)
        .await
        .expect("the retry sends");

    let ai = recorded(&app, "ai").await;
    assert_eq!(ai.status, "sent");
    assert_eq!(ai.error_code, None);
    assert_eq!(ai.send_failure, None);
    assert_eq!(ai.platform_message_id.as_deref(), Some("wamid.OUT.0"));
    assert_eq!(ai.delivery_status.as_deref(), Some("pending"));
    assert_eq!(ai.delivery_error, None);
    assert_eq!(app.meta_sends().await.len(), 2);
}

#[tokio::test]
async fn two_attempts_at_the_same_pending_reply_at_once_send_it_once() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    // The first attempt is throttled: the reply is stored and stays pending.
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(fakes::meta_error(130_429, "Rate limit hit"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
    // Then Meta is slow to accept, so two attempts overlap.
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "messages": [{ "id": "wamid.SLOW" }] }))
                .set_delay(std::time::Duration::from_millis(300)),
        )
        .mount(&app.meta)
        .await;
    let job = app
        .inbound("wamid.IN.1", CUSTOMER, "Hi", chrono::Utc::now())
        .await;
    assert!(conversation_worker::handle(&app.state, &job).await.is_err());

    let (first, second) = tokio::join!(
        conversation_worker::handle(&app.state, &job),
        conversation_worker::handle(&app.state, &job),
    );

    first.expect("first attempt");
    second.expect("second attempt");
    assert_eq!(app.meta_sends().await.len(), 2, "one throttled, one sent");
    let ai = recorded(&app, "ai").await;
    assert_eq!(ai.status, "sent");
    assert_eq!(ai.platform_message_id.as_deref(), Some("wamid.SLOW"));
}
