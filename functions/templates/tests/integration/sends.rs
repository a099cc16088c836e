use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path_regex},
};

use crate::helpers::TestApp;

async fn send(app: &TestApp, id: &str, body: &Value) -> testkit::TestResponse {
    app.api
        .post(&format!("/templates/{id}/send"), &app.tenant.token(), body)
        .await
}

fn meta_refuses(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": { "message": message, "type": "OAuthException", "code": code,
                   "error_data": { "messaging_product": "whatsapp", "details": message }, "fbtrace_id": "A" }
    }))
}

#[tokio::test]
async fn an_approved_template_goes_out_through_the_send_path_and_lands_in_the_conversation() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;

    let sent = send(
        &app,
        &id,
        &json!({ "to": "+1 415 555 2671", "variable_values": { "1": "Ana 🌞", "order": "A-77" } }),
    )
    .await;

    let sent = sent.expect(201).clone();
    assert_eq!(sent["status"], "SENT");
    let wamid = sent["platform_message_id"].as_str().expect("wamid");
    assert!(wamid.starts_with("wamid."));
    assert_eq!(sent["customer_phone"], "+14155552671");
    assert_eq!(
        sent["variable_values"],
        json!({ "code": "WELCOME", "first_name": "Ana 🌞", "order": "A-77" })
    );
    let requests = app.meta_requests("POST", "/messages").await;
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(body["to"], "14155552671");
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "summer_sale");
    assert_eq!(body["template"]["language"]["code"], "en_US");
    let components = &body["template"]["components"];
    assert_eq!(
        components[0]["parameters"][0]["image"]["link"],
        app.media_url("sample.jpg")
    );
    assert_eq!(
        components[1]["parameters"],
        json!([{ "type": "text", "text": "Ana 🌞" }, { "type": "text", "text": "WELCOME" }])
    );
    assert_eq!(components[2]["parameters"][0]["payload"], "interested");
    assert_eq!(
        components[3]["parameters"][0]["payload"],
        format!("{id}.b1")
    );
    assert_eq!(components[4]["sub_type"], "url");
    assert_eq!(components[4]["index"], "2");
    let message_id = sent["message_id"].as_str().expect("message");
    let client = app.db.client().await;
    let message = client
        .query_one(
            "SELECT m.author, m.status, m.text, m.message_type, m.platform_message_id, d.status AS delivery
             FROM messages m JOIN message_delivery_status d ON d.message_id = m.message_id
             WHERE m.message_id = $1 AND m.conversation_id = $2",
            &[&message_id, &sent["conversation_id"].as_str().unwrap_or_default()],
        )
        .await
        .expect("the send is a message of the conversation");
    assert_eq!(message.get::<_, String>("author"), "template");
    assert_eq!(message.get::<_, String>("status"), "sent");
    assert_eq!(message.get::<_, String>("message_type"), "template");
    assert_eq!(
        message.get::<_, String>("text"),
        "Hi Ana 🌞, your code WELCOME gives 20% off this week."
    );
    assert_eq!(
        message
            .get::<_, Option<String>>("platform_message_id")
            .as_deref(),
        Some(wamid)
    );
    assert_eq!(message.get::<_, String>("delivery"), "pending");
}

#[tokio::test]
async fn a_missing_variable_is_a_422_naming_it_and_nothing_is_written_or_sent() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;

    let refused = send(
        &app,
        &id,
        &json!({ "to": "+14155552671", "variable_values": { "order": "A-1" } }),
    )
    .await;

    refused.expect_problem(422, Some("variable_values.first_name"));
    assert_eq!(
        app.count("SELECT count(*) FROM template_sends", &[]).await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM messages", &[]).await, 0);
    assert!(app.meta_requests("POST", "/messages").await.is_empty());
}

#[tokio::test]
async fn an_unapproved_template_a_bad_number_and_an_opted_out_contact_are_refused() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;
    let channel = app.whatsapp().await;
    let draft = app
        .create(&crate::helpers::text_template(&channel, "draft_only", "en"))
        .await;
    let draft_id = draft["template_id"].as_str().expect("id");
    let client = app.db.client().await;
    client
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone, opted_out) VALUES ('ct_1', $1, '+14155552672', true)",
            &[&app.tenant.sub],
        )
        .await
        .expect("contact");
    let values = json!({ "1": "Ana", "order": "A-1" });

    let unapproved = send(
        &app,
        draft_id,
        &json!({ "to": "+14155552671", "variable_values": { "1": "A-1" } }),
    )
    .await;
    let bad = send(
        &app,
        &id,
        &json!({ "to": "12345", "variable_values": values }),
    )
    .await;
    let opted_out = send(
        &app,
        &id,
        &json!({ "to": "+14155552672", "variable_values": values }),
    )
    .await;

    let problem = unapproved.expect_problem(409, None);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("DRAFT")),
        "{problem}"
    );
    bad.expect_problem(422, Some("to"));
    opted_out.expect_problem(409, None);
    assert_eq!(
        app.count("SELECT count(*) FROM template_sends", &[]).await,
        0
    );
    assert!(app.meta_requests("POST", "/messages").await.is_empty());
}

#[tokio::test]
async fn metas_132001_fails_the_send_with_its_code_and_132015_pauses_the_template() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;
    let values = json!({ "to": "+14155552671", "variable_values": { "1": "Ana", "order": "A-1" } });
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(meta_refuses(
            132_001,
            "Template name does not exist in the translation",
        ))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(meta_refuses(132_015, "Template is paused"))
        .with_priority(2)
        .mount(&app.meta)
        .await;

    let refused = send(&app, &id, &values).await;
    let paused = send(&app, &id, &values).await;

    let problem = refused.expect_problem(422, None);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("132001")),
        "{problem}"
    );
    let client = app.db.client().await;
    let rows = client
        .query(
            "SELECT status, error_code, error_message FROM template_sends ORDER BY send_id",
            &[],
        )
        .await
        .expect("sends");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), "FAILED");
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("132001")
    );
    assert!(
        rows[0]
            .get::<_, Option<String>>(2)
            .is_some_and(|m| m.contains("does not exist"))
    );
    paused.expect_problem(422, None);
    assert_eq!(
        rows[1].get::<_, Option<String>>(1).as_deref(),
        Some("132015")
    );
    let template = app
        .api
        .get(&format!("/templates/{id}"), &app.tenant.token())
        .await;
    assert_eq!(template.expect(200)["status"], "PAUSED");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE author = 'template' AND status = 'failed'",
            &[]
        )
        .await,
        2
    );
}

async fn send_with_key(app: &TestApp, id: &str, key: &str, to: &str) -> testkit::TestResponse {
    let mut request = testkit::request(
        http::Method::POST,
        &format!("/templates/{id}/send"),
        Some(&app.tenant.token()),
        Some(&json!({ "to": to, "variable_values": { "1": "Ana", "order": "A-77" } })),
    );
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().expect("header value"));
    app.api.send_request(request).await
}

#[tokio::test]
async fn retries_with_one_idempotency_key_send_once_even_in_parallel() {
    let app = TestApp::spawn().await;
    let id = app.approved_template().await;

    let attempt = || send_with_key(&app, &id, "order-42-reminder", "+14155552671");
    let (a, b, c, d, e) = tokio::join!(attempt(), attempt(), attempt(), attempt(), attempt());
    let attempts = [a, b, c, d, e];

    let send_ids: Vec<&Value> = attempts.iter().map(|a| &a.expect(201)["send_id"]).collect();
    assert!(send_ids.iter().all(|s| *s == send_ids[0]), "{send_ids:?}");
    let replayed = attempts
        .iter()
        .filter(|a| a.headers.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 4, "all but the first are replays");
    assert_eq!(
        app.meta_requests("POST", "/messages").await.len(),
        1,
        "one message"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM template_sends", &[]).await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE author = 'template'",
            &[]
        )
        .await,
        1,
        "one conversation message"
    );

    // The key names that send: another number or template is refused, and nothing is sent.
    send_with_key(&app, &id, "order-42-reminder", "+14155552672")
        .await
        .expect_problem(422, Some("Idempotency-Key"));
    send_with_key(&app, &id, "two words", "+14155552671")
        .await
        .expect_problem(422, Some("Idempotency-Key"));
    assert_eq!(app.meta_requests("POST", "/messages").await.len(), 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM template_sends WHERE idempotency_key = 'order-42-reminder'",
            &[]
        )
        .await,
        1
    );
}
