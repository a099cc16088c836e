//! Integration tests of the `conversations` function.

mod extractions;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::Utc;
use conversations::ConversationsState;
use serde_json::{Value, json};
use testkit::{ChannelSeed, ConversationSeed, TestTenant};
use wiremock::{
    Mock, Request, Respond, ResponseTemplate,
    matchers::{method, path_regex},
};

struct Accept(Arc<AtomicUsize>);

impl Respond for Accept {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_body_json(json!({ "messages": [{ "id": format!("wamid.HUMAN.{n}") }] }))
    }
}

/// The `conversations` router on [`testkit::TestApp`], Meta faked, with a tenant that has
/// called once.
struct TestApp {
    kit: testkit::TestApp,
    tenant: TestTenant,
    extraction_queue: shared::jobs::LocalQueue<shared::jobs::ExtractionJob>,
}

impl std::ops::Deref for TestApp {
    type Target = testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

impl TestApp {
    async fn spawn() -> Self {
        let kit = testkit::TestApp::new().await;
        let extraction_queue = shared::jobs::LocalQueue::new();
        let state = ConversationsState {
            api: kit.api_state(),
            graph: kit.graph(),
            extraction_queue: shared::jobs::ExtractionQueue::Local(extraction_queue.clone()),
        };
        let kit = kit.serve(conversations::router(state));
        let tenant = kit.tenant_via("acme", "/conversations").await;
        Self {
            kit,
            tenant,
            extraction_queue,
        }
    }

    /// A WhatsApp channel, an agent and a conversation whose customer wrote `Hello?`
    /// `hours_ago`, seeded through `shared::db`.
    async fn conversation(&self, tenant: &TestTenant, meta_id: &str, hours_ago: i64) -> String {
        let seed = self.db.seed();
        let user = seed.tenant(&tenant.sub).await;
        let channel = seed
            .channel(&user, ChannelSeed::whatsapp(meta_id).token("EAAG-token"))
            .await;
        let agent = seed.agent(&user, &channel, "pmpt_a", "Ava").await;
        seed.conversation(
            &user,
            &channel,
            &agent.agent_id,
            ConversationSeed::from_customer("16505551234")
                .sent_at(Utc::now() - chrono::Duration::hours(hours_ago)),
        )
        .await
        .to_string()
    }

    async fn accept_sends(&self) {
        Mock::given(method("POST"))
            .and(path_regex(r"/messages$"))
            .respond_with(Accept(Arc::new(AtomicUsize::new(0))))
            .mount(&self.meta)
            .await;
    }

    /// Every request Meta received, as JSON (the fake only serves sends).
    async fn sends(&self) -> Vec<Value> {
        testkit::TestApp::json_bodies_to(&self.meta, "").await
    }
}

#[tokio::test]
async fn the_dashboard_lists_and_reads_conversations_with_owner_window_and_last_message() {
    let app = TestApp::spawn().await;
    let older = app.conversation(&app.tenant, "1", 3).await;
    let newer = app.conversation(&app.tenant, "2", 1).await;
    let token = app.tenant.token();

    let first = app.api.get("/conversations?limit=1", &token).await;
    let first = first.expect(200);
    let cursor = first["next_cursor"].as_str().expect("more").to_owned();
    let second = app
        .api
        .get(&format!("/conversations?limit=1&cursor={cursor}"), &token)
        .await;
    let one = app
        .api
        .get(&format!("/conversations/{newer}"), &token)
        .await;
    let messages = app
        .api
        .get(&format!("/conversations/{older}/messages?after=0"), &token)
        .await;
    let filtered = app.api.get("/conversations?owner=human", &token).await;

    assert_eq!(first["items"][0]["conversation_id"], newer);
    assert_eq!(second.expect(200)["items"][0]["conversation_id"], older);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let one = one.expect(200);
    assert_eq!(one["owner"], "ai");
    assert_eq!(one["platform"], "whatsapp");
    assert_eq!(one["last_message"]["text"], "Hello?");
    assert!(one["window_open_until"].is_string());
    assert_eq!(messages.expect(200)[0]["sequence_no"], 1);
    assert_eq!(filtered.expect(200)["items"], json!([]));
    app.api
        .get("/conversations?owner=robot", &token)
        .await
        .expect_problem(422, Some("owner"));
}

#[tokio::test]
async fn takeover_and_handback_flip_the_owner() {
    let app = TestApp::spawn().await;
    let id = app.conversation(&app.tenant, "1", 1).await;
    let token = app.tenant.token();

    let taken = app
        .api
        .send(
            http::Method::POST,
            &format!("/conversations/{id}/takeover"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(taken.expect(200)["owner"], "human");
    let with_reason = app
        .api
        .post(
            &format!("/conversations/{id}/takeover"),
            &token,
            &json!({ "reason": "VIP" }),
        )
        .await;
    assert_eq!(with_reason.expect(200)["handoff_reason"], "VIP");
    let back = app
        .api
        .send(
            http::Method::POST,
            &format!("/conversations/{id}/handback"),
            Some(&token),
            None,
        )
        .await;

    assert_eq!(back.expect(200)["owner"], "ai");
}

#[tokio::test]
async fn a_takeover_body_over_the_limit_not_json_or_with_a_bad_reason_is_refused_as_problem_json() {
    let app = TestApp::spawn().await;
    let id = app.conversation(&app.tenant, "1", 1).await;
    let token = app.tenant.token();
    let request = |content_type: &str, body: Vec<u8>| {
        http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("/conversations/{id}/takeover"))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .expect("request")
    };
    let mut huge = br#"{"reason":""#.to_vec();
    huge.extend(std::iter::repeat_n(
        b'x',
        shared::api::layers::API_BODY_LIMIT,
    ));
    huge.extend(br#""}"#);

    let too_large = app
        .api
        .send_request(request("application/json", huge))
        .await;
    let not_json = app
        .api
        .send_request(request("text/plain", b"{\"reason\":\"VIP\"}".to_vec()))
        .await;

    let with_nul = app
        .api
        .post(
            &format!("/conversations/{id}/takeover"),
            &token,
            &json!({ "reason": "VIP\u{0}\u{0}" }),
        )
        .await;
    let too_long = app
        .api
        .post(
            &format!("/conversations/{id}/takeover"),
            &token,
            &json!({ "reason": "x".repeat(501) }),
        )
        .await;

    too_large.expect_problem(413, None);
    not_json.expect_problem(415, None);
    // Found by the API fuzzer: a NUL in the reason was a 500.
    with_nul.expect_problem(422, Some("reason"));
    too_long.expect_problem(422, Some("reason"));
    let owner = app.api.get(&format!("/conversations/{id}"), &token).await;
    assert_eq!(owner.expect(200)["owner"], "ai", "nothing was taken over");
}

#[tokio::test]
async fn a_persons_reply_is_sent_stored_and_takes_the_conversation_over() {
    let app = TestApp::spawn().await;
    app.accept_sends().await;
    let id = app.conversation(&app.tenant, "106540352242922", 2).await;

    let response = app
        .post_as(
            &app.tenant,
            &format!("/conversations/{id}/messages"),
            &json!({ "text": " Hi, Sam here. " }),
        )
        .await;

    let message = response.expect(201);
    assert_eq!(message["author"], "human");
    assert_eq!(message["text"], "Hi, Sam here.");
    assert_eq!(message["status"], "sent");
    assert_eq!(message["sequence_no"], 2);
    let sends = app.sends().await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["to"], "16505551234");
    assert_eq!(sends[0]["text"]["body"], "Hi, Sam here.");
    assert_eq!(
        app.db
            .count(
                "SELECT count(*) FROM conversations WHERE owner = 'human'",
                &[]
            )
            .await,
        1
    );
}

#[tokio::test]
async fn a_free_form_reply_outside_the_24_hour_window_is_refused_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    app.accept_sends().await;
    let id = app.conversation(&app.tenant, "1", 25).await;

    let response = app
        .post_as(
            &app.tenant,
            &format!("/conversations/{id}/messages"),
            &json!({ "text": "Hello" }),
        )
        .await;

    let detail = response.expect_problem(409, None)["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| d.contains("template")),
        "{detail}"
    );
    assert!(app.sends().await.is_empty());
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM messages WHERE sender = 'agent'", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_reply_meta_refuses_is_a_502_and_the_message_is_marked_failed() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({ "error": { "code": 131026, "message": "Message undeliverable" } }),
        ))
        .mount(&app.meta)
        .await;
    let id = app.conversation(&app.tenant, "1", 1).await;

    let response = app
        .post_as(
            &app.tenant,
            &format!("/conversations/{id}/messages"),
            &json!({ "text": "Hello" }),
        )
        .await;

    response.expect_problem(502, None);
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT status, error_code FROM messages WHERE sender = 'agent'",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("131026"));
}

#[tokio::test]
async fn bad_replies_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let id = app.conversation(&app.tenant, "1", 1).await;
    let token = app.tenant.token();
    for (body, field) in [
        (json!({ "text": "  " }), "text"),
        (json!({ "text": "x".repeat(4097) }), "text"),
        (json!({}), "text"),
        (json!({ "text": "a", "to": "b" }), "to"),
        (json!({ "text": "hi\u{0}there" }), "text"),
    ] {
        app.api
            .post(&format!("/conversations/{id}/messages"), &token, &body)
            .await
            .expect_problem(422, Some(field));
    }
}

#[tokio::test]
async fn another_tenants_conversation_is_404_on_every_route() {
    let app = TestApp::spawn().await;
    app.accept_sends().await;
    let id = app.conversation(&app.tenant, "1", 1).await;
    let mallory = TestTenant::new("mallory");
    let token = mallory.token();

    app.api
        .get(&format!("/conversations/{id}"), &token)
        .await
        .expect_problem(404, None);
    app.api
        .get(&format!("/conversations/{id}/messages"), &token)
        .await
        .expect_problem(404, None);
    app.api
        .send(
            http::Method::POST,
            &format!("/conversations/{id}/takeover"),
            Some(&token),
            None,
        )
        .await
        .expect_problem(404, None);
    app.api
        .send(
            http::Method::POST,
            &format!("/conversations/{id}/handback"),
            Some(&token),
            None,
        )
        .await
        .expect_problem(404, None);
    app.api
        .post(
            &format!("/conversations/{id}/messages"),
            &token,
            &json!({ "text": "pwned" }),
        )
        .await
        .expect_problem(404, None);
    assert_eq!(
        app.api.get("/conversations", &token).await.expect(200)["items"],
        json!([])
    );

    assert!(app.sends().await.is_empty());
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM conversations WHERE owner = 'ai'", &[])
            .await,
        1
    );
}

#[tokio::test]
async fn a_nul_in_a_reply_a_reason_a_filter_or_an_id_is_a_422_naming_it_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.accept_sends().await;
    let id = app.conversation(&app.tenant, "1", 1).await;
    let token = app.tenant.token();

    app.api
        .post(
            &format!("/conversations/{id}/messages"),
            &token,
            &json!({ "text": "hi \u{0} there" }),
        )
        .await
        .expect_problem(422, Some("text"));
    app.api
        .post(
            &format!("/conversations/{id}/takeover"),
            &token,
            &json!({ "reason": "busy\u{0}" }),
        )
        .await
        .expect_problem(422, Some("reason"));
    app.api
        .get("/conversations?customer_phone=%00", &token)
        .await
        .expect_problem(422, Some("customer_phone"));
    app.api
        .get("/conversations/conv_%00/messages", &token)
        .await
        .expect_problem(422, Some("id"));

    assert!(app.sends().await.is_empty());
    assert_eq!(
        app.db
            .count(
                "SELECT count(*) FROM conversations WHERE owner = 'ai' AND owner_changed_at IS NULL",
                &[]
            )
            .await,
        1
    );
    assert_eq!(app.db.count("SELECT count(*) FROM messages", &[]).await, 1);
}

#[tokio::test]
async fn a_reply_meta_throttles_is_a_503_kept_pending_and_resent_once_later() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "error": { "code": 130429, "message": "Rate limit hit" } })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
    app.accept_sends().await;
    let id = app.conversation(&app.tenant, "1", 1).await;

    let response = app
        .post_as(
            &app.tenant,
            &format!("/conversations/{id}/messages"),
            &json!({ "text": "Hello" }),
        )
        .await;
    response.expect_problem(503, None);
    let (message_id, status, code, class) = stored_agent_message(&app).await;
    assert_eq!(status, "pending");
    assert_eq!(code.as_deref(), Some("130429"));
    assert_eq!(class.as_deref(), Some("retryable"));

    // Another tenant cannot resend it.
    let other = TestTenant::new("other");
    app.post_as(
        &other,
        &format!("/conversations/{id}/messages/{message_id}/resend"),
        &json!({}),
    )
    .await
    .expect_problem(404, None);

    let resent = app
        .post_as(
            &app.tenant,
            &format!("/conversations/{id}/messages/{message_id}/resend"),
            &json!({}),
        )
        .await;
    resent.expect(200);
    let (_, status, code, class) = stored_agent_message(&app).await;
    assert_eq!(status, "sent");
    assert_eq!((code, class), (None, None));

    // Sent is final: a second resend sends nothing.
    app.post_as(
        &app.tenant,
        &format!("/conversations/{id}/messages/{message_id}/resend"),
        &json!({}),
    )
    .await
    .expect_problem(409, None);
    assert_eq!(app.sends().await.len(), 2, "one throttled, one sent");
}

/// The one agent message: id, status, error code, failure class.
async fn stored_agent_message(app: &TestApp) -> (String, String, Option<String>, Option<String>) {
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT message_id, status, error_code, send_failure FROM messages WHERE sender = 'agent'",
            &[],
        )
        .await
        .expect("one agent message");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn a_malformed_conversation_cursor_is_a_400_naming_cursor_not_a_silent_first_page() {
    let app = TestApp::spawn().await;
    app.conversation(&app.tenant, "1", 2).await;
    app.conversation(&app.tenant, "2", 1).await;
    let token = app.tenant.token();
    let cursors = shared::api::Cursors::new(&testkit::test_sealing_key(), "conversations");
    // Signed by this API for this list, but not a key the list reads: a cursor of the
    // pagination before it was keyed by last activity, a bare id, a time without an id.
    let signed_but_unreadable = [
        cursors.encode("conv_01jd0000000000000000000000"),
        cursors.encode("2026-01-01T00:00:00.000000Z|not-a-conversation-id"),
        cursors.encode("yesterday|conv_01jd0000000000000000000000"),
    ];
    for cursor in signed_but_unreadable
        .iter()
        .map(String::as_str)
        .chain(["garbage", "v2.e30.AAAA"])
    {
        let response = app
            .api
            .get(&format!("/conversations?limit=1&cursor={cursor}"), &token)
            .await;
        response.expect_problem(400, Some("cursor"));
    }

    // A cursor the list issued still pages.
    let first = app.api.get("/conversations?limit=1", &token).await;
    let cursor = first.expect(200)["next_cursor"]
        .as_str()
        .expect("more")
        .to_owned();
    let second = app
        .api
        .get(&format!("/conversations?limit=1&cursor={cursor}"), &token)
        .await;
    assert_eq!(
        second.expect(200)["items"].as_array().map(Vec::len),
        Some(1)
    );
}
