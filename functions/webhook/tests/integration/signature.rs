use axum::body::Body;
use http::{Method, Request};
use shared::meta::signature;

use crate::helpers::{APP_SECRET, TestApp, VERIFY_TOKEN, WA_CHANNEL, fixture};

#[tokio::test]
async fn the_subscription_check_echoes_the_challenge_only_for_the_right_token() {
    let app = TestApp::spawn().await;
    let check = |query: String| {
        let api = app.api.clone();
        async move {
            let request = Request::builder()
                .uri(format!("/webhook?{query}"))
                .body(Body::empty())
                .expect("request");
            api.send_request(request).await
        }
    };

    let ok = check(format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ))
    .await;
    let wrong_token =
        check("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1".to_owned()).await;
    let wrong_mode = check(format!(
        "hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
    ))
    .await;
    let nothing = check(String::new()).await;

    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.body,
        serde_json::json!(1_158_201_444),
        "the challenge is echoed as is"
    );
    assert_eq!(wrong_token.status, 403);
    assert_eq!(wrong_mode.status, 403);
    assert_eq!(nothing.status, 403);
    for refused in [&wrong_token, &wrong_mode, &nothing] {
        refused.expect_problem(403, None);
    }
}

#[tokio::test]
async fn a_delivery_over_the_limit_is_a_problem_json_413_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    // Signed, so the limit (not the signature) is what refuses it.
    let mut body = fixture("wa_text.json").to_string().into_bytes();
    body.extend(std::iter::repeat_n(b' ', webhook::BODY_LIMIT));

    let response = app.post_signed(&body).await;

    let problem = response.expect_problem(413, None);
    assert_eq!(problem["type"], "urn:problem:payload-too-large");
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

#[tokio::test]
async fn a_correctly_signed_delivery_is_accepted() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;

    app.post_json(&fixture("wa_text.json")).await.expect(200);

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        1
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn missing_wrong_or_stale_signatures_are_401_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let body = fixture("wa_text.json").to_string();
    let altered = body.replace("another color", "a discount");
    let cases = [
        None,
        Some("sha256=00".to_owned()),
        Some(signature::sign(b"not-the-app-secret", body.as_bytes())),
        Some(signature::sign(APP_SECRET.as_bytes(), body.as_bytes())),
    ];
    for (i, header) in cases.into_iter().enumerate() {
        // The last case signs the original body but sends an altered one.
        let sent = if i == 3 {
            altered.clone()
        } else {
            body.clone()
        };
        let mut request = Request::builder().method(Method::POST).uri("/webhook");
        if let Some(header) = header {
            request = request.header(signature::SIGNATURE_HEADER, header);
        }
        let response = app
            .api
            .send_request(request.body(Body::from(sent)).expect("request"))
            .await;
        response.expect_problem(401, None);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_400() {
    let app = TestApp::spawn().await;

    app.post_signed(b"not json at all")
        .await
        .expect_problem(400, None);
    app.post_signed(b"[1,2,3]").await.expect_problem(400, None);
}
