use serde_json::{Value, json};
use templates::MediaLimits;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path_regex},
};

use crate::helpers::{APP_ID, TestApp, WABA, image_template, text_template};

async fn submit(app: &TestApp, id: &str) -> testkit::TestResponse {
    app.api
        .post(
            &format!("/templates/{id}/submit"),
            &app.tenant.token(),
            &json!({}),
        )
        .await
}

fn body_of(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_image_template_is_submitted_with_its_uploaded_samples_handle_as_the_example() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&image_template(&channel, &app.media_url("sample.jpg")))
        .await;
    let id = created["template_id"].as_str().expect("id");

    let submitted = submit(&app, id).await;

    let submitted = submitted.expect(200);
    assert_eq!(submitted["status"], "PENDING");
    assert_eq!(submitted["waba_id"], WABA);
    assert!(submitted["meta_template_id"].is_string());
    assert!(submitted["submitted_at"].is_string());
    let sessions = app
        .meta_requests("POST", &format!("{APP_ID}/uploads"))
        .await;
    assert_eq!(sessions.len(), 1);
    let query: Vec<(String, String)> = sessions[0].url.query_pairs().into_owned().collect();
    assert!(query.contains(&("file_type".to_owned(), "image/jpeg".to_owned())));
    assert!(query.contains(&("file_length".to_owned(), "2052".to_owned())));
    assert!(query.contains(&("file_name".to_owned(), "sample.jpg".to_owned())));
    let uploads: Vec<_> = app
        .meta
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().starts_with("/upload:"))
        .collect();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        uploads[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("OAuth EAAG-token")
    );
    assert_eq!(
        uploads[0]
            .headers
            .get("file_offset")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert_eq!(uploads[0].body.len(), 2052);
    let creations = app
        .meta_requests("POST", &format!("{WABA}/message_templates"))
        .await;
    assert_eq!(creations.len(), 1);
    let sent = body_of(&creations[0]);
    let handle = sent["components"][0]["example"]["header_handle"][0]
        .as_str()
        .expect("handle");
    assert!(handle.starts_with("4::aGFuZGxl"), "{sent}");
    assert_eq!(sent["components"][0]["format"], "IMAGE");
    assert_eq!(
        sent["components"][1]["example"]["body_text"],
        json!([["Maria", "SUMMER20"]])
    );
    assert_eq!(
        sent["components"][3]["buttons"][2]["example"],
        json!(["https://shop.example.com/orders/A-1001"])
    );
    assert_eq!(sent["name"], "summer_sale");
    assert_eq!(sent["language"], "en_US");
}

#[tokio::test]
async fn media_of_the_wrong_type_or_over_the_cap_is_refused_before_any_upload() {
    let app = TestApp::spawn_with(MediaLimits {
        image_bytes: 5 * 1024 * 1024,
        video_bytes: 100,
        document_bytes: 100 * 1024 * 1024,
        allow_private_hosts: true,
    })
    .await;
    let channel = app.whatsapp().await;
    let cases = [
        ("IMAGE", "notes.txt", "text/plain"),
        ("IMAGE", "liar.png", "by its content"),
        ("IMAGE", "big.jpg", "larger"),
        ("VIDEO", "sample.mp4", "larger"),
        ("IMAGE", "sample.pdf", "application/pdf"),
        ("DOCUMENT", "missing.pdf", "404"),
    ];
    for (i, (kind, file, says)) in cases.into_iter().enumerate() {
        let mut body = image_template(&channel, &app.media_url(file));
        body["name"] = json!(format!("media_case_{i}"));
        body["header"]["type"] = json!(kind);
        if kind == "DOCUMENT" {
            body["header"]["document_filename"] = json!("menu.pdf");
        }
        let created = app.create(&body).await;
        let id = created["template_id"].as_str().expect("id");

        let refused = submit(&app, id).await;

        let problem = refused.expect_problem(422, Some("header.media_url"));
        assert!(problem.to_string().contains(says), "{file}: {problem}");
        let status = app
            .api
            .get(&format!("/templates/{id}"), &app.tenant.token())
            .await;
        assert_eq!(status.expect(200)["status"], "DRAFT");
    }
    assert!(app.meta_requests("POST", "/uploads").await.is_empty());
    assert!(
        app.meta_requests("POST", "/message_templates")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn submitting_twice_or_concurrently_creates_one_template_at_meta() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&text_template(&channel, "once_only", "en_US"))
        .await;
    let id = created["template_id"].as_str().expect("id");

    let (first, second) = tokio::join!(submit(&app, id), submit(&app, id));
    let third = submit(&app, id).await;

    let first = first.expect(200).clone();
    assert_eq!(
        second.expect(200)["meta_template_id"],
        first["meta_template_id"]
    );
    assert_eq!(
        third.expect(200)["meta_template_id"],
        first["meta_template_id"]
    );
    assert_eq!(
        app.meta_requests("POST", "/message_templates").await.len(),
        1
    );
}

#[tokio::test]
async fn metas_refusal_keeps_the_draft_and_answers_422_with_its_code_subcode_and_details() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/message_templates$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "message": "Invalid parameter", "type": "OAuthException", "code": 100,
                "error_subcode": 2388299, "is_transient": false,
                "error_user_title": "Variables can't be at the start or end of the template",
                "error_data": { "messaging_product": "whatsapp", "details": "Variables can't be at the start or end of the template." },
                "fbtrace_id": "A1b2"
            }
        })))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&text_template(&channel, "refused_one", "en"))
        .await;
    let id = created["template_id"].as_str().expect("id");

    let refused = submit(&app, id).await;

    let problem = refused.expect_problem(422, Some("body.text")).clone();
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("code 100")
            && detail.contains("2388299")
            && detail.contains("start or end"),
        "{detail}"
    );
    let stored = app
        .api
        .get(&format!("/templates/{id}"), &app.tenant.token())
        .await;
    let stored = stored.expect(200);
    assert_eq!(stored["status"], "DRAFT");
    assert_eq!(stored["meta_template_id"], Value::Null);
    assert_eq!(stored["submission_error"]["error_subcode"], 2388299);
    assert!(
        stored["rejection_reason"]
            .as_str()
            .is_some_and(|r| r.contains("2388299"))
    );
}

#[tokio::test]
async fn metas_creation_limit_answers_429_once_without_retrying() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/message_templates$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "Application request limit reached", "type": "OAuthException", "code": 4, "error_subcode": 2388003, "fbtrace_id": "A" }
        })))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let channel = app.whatsapp().await;
    let created = app.create(&text_template(&channel, "limited", "en")).await;
    let id = created["template_id"].as_str().expect("id");

    let limited = submit(&app, id).await;

    limited.expect_problem(429, None);
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3600")
    );
    assert_eq!(
        app.meta_requests("POST", "/message_templates").await.len(),
        1
    );
}

#[tokio::test]
async fn a_rejected_template_is_edited_under_its_meta_id_not_created_again() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&text_template(&channel, "second_try", "en"))
        .await;
    let id = created["template_id"].as_str().expect("id");
    let meta_id = submit(&app, id).await.expect(200)["meta_template_id"]
        .as_str()
        .expect("meta")
        .to_owned();
    let client = app.db.client().await;
    client
        .execute(
            "UPDATE templates SET status = 'REJECTED' WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("reject");

    let resubmitted = submit(&app, id).await;

    assert_eq!(resubmitted.expect(200)["status"], "PENDING");
    assert_eq!(
        app.meta_requests("POST", "/message_templates").await.len(),
        1
    );
    let edits = app.meta_requests("POST", &format!("/{meta_id}")).await;
    assert_eq!(edits.len(), 1);
    assert!(body_of(&edits[0])["components"].is_array());
}

#[tokio::test]
async fn sync_pulls_metas_state_for_a_webhook_that_never_came() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app.create(&text_template(&channel, "pulled", "en")).await;
    let id = created["template_id"].as_str().expect("id");
    let token = app.tenant.token();
    let never = app
        .api
        .post(&format!("/templates/{id}/sync"), &token, &json!({}))
        .await;
    submit(&app, id).await.expect(200);

    let synced = app
        .api
        .post(&format!("/templates/{id}/sync"), &token, &json!({}))
        .await;

    never.expect_problem(409, None);
    let synced = synced.expect(200);
    assert_eq!(synced["status"], "APPROVED");
    assert_eq!(synced["meta_status"], "APPROVED");
    assert_eq!(synced["quality_score"], "GREEN");
    assert!(synced["approved_at"].is_string());
}

#[tokio::test]
async fn a_media_url_on_a_private_network_is_refused_in_production_settings() {
    let app = TestApp::spawn_with(MediaLimits::default()).await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&image_template(&channel, &app.media_url("sample.jpg")))
        .await;
    let id = created["template_id"].as_str().expect("id");

    let refused = submit(&app, id).await;

    let problem = refused.expect_problem(422, Some("header.media_url"));
    assert!(
        problem.to_string().contains("private or local"),
        "{problem}"
    );
    assert!(
        app.media
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(app.meta_requests("POST", "/uploads").await.is_empty());
}
