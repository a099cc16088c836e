use axum::body::Body;
use http::{Method, Request, header};
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn grant(app: &TestApp, secret: Option<&str>, body: &Value) -> testkit::TestResponse {
    grant_with_key(app, secret, None, body).await
}

async fn grant_with_key(
    app: &TestApp,
    secret: Option<&str>,
    key: Option<&[u8]>,
    body: &Value,
) -> testkit::TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/admin/credits")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request.header("x-admin-secret", secret);
    }
    if let Some(key) = key {
        request = request.header(
            "idempotency-key",
            http::HeaderValue::from_bytes(key).expect("header bytes"),
        );
    }
    app.api
        .send_request(request.body(Body::from(body.to_string())).expect("request"))
        .await
}

#[tokio::test]
async fn an_operator_grants_credits_and_the_grant_is_recorded() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let first = grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": tenant.sub, "amount": 100, "reason": "trial" }),
    )
    .await;
    let second = grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": tenant.sub, "amount": 50, "reason": "top-up" }),
    )
    .await;

    assert_eq!(first.expect(201)["remaining_credits"], 100);
    assert_eq!(second.expect(201)["remaining_credits"], 150);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM credit_grants WHERE user_id = $1",
            &[&tenant.sub]
        )
        .await,
        2
    );
    let me = app.get_as(&tenant, "/me").await;
    assert_eq!(me.expect(200)["credits"]["remaining_credits"], 150);
}

#[tokio::test]
async fn grants_without_the_secret_for_unknown_tenants_or_with_bad_amounts_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let valid = json!({ "user_id": tenant.sub, "amount": 10, "reason": "x" });

    grant(&app, None, &valid).await.expect_problem(401, None);
    grant(
        &app,
        Some("wrong-secret-of-the-same-length-xxxxxxxx"),
        &valid,
    )
    .await
    .expect_problem(401, None);
    // A tenant token is not an operator's secret.
    app.post_as(&tenant, "/admin/credits", &valid)
        .await
        .expect_problem(401, None);
    grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": "nobody", "amount": 10, "reason": "x" }),
    )
    .await
    .expect_problem(404, None);
    for (body, field) in [
        (
            json!({ "user_id": tenant.sub, "amount": 0, "reason": "x" }),
            "amount",
        ),
        (
            json!({ "user_id": tenant.sub, "amount": -5, "reason": "x" }),
            "amount",
        ),
        (
            json!({ "user_id": tenant.sub, "amount": 10, "reason": " " }),
            "reason",
        ),
        (
            json!({ "user_id": tenant.sub, "amount": "ten", "reason": "x" }),
            "amount",
        ),
        // Found by the API fuzzer: PostgreSQL refuses NUL in text, which was a 500.
        (
            json!({ "user_id": tenant.sub, "amount": 10, "reason": "trial\u{0}" }),
            "reason",
        ),
    ] {
        grant(&app, Some(testkit::TEST_ADMIN_SECRET), &body)
            .await
            .expect_problem(422, Some(field));
    }

    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT remaining_credits::bigint FROM credits WHERE user_id = $1",
            &[&tenant.sub]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_grant_whose_reason_holds_a_nul_is_a_422_and_grants_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let before = balance(&app, &tenant.sub).await;

    grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": tenant.sub, "amount": 10, "reason": "trial \u{0}" }),
    )
    .await
    .expect_problem(422, Some("reason"));

    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        0
    );
    assert_eq!(balance(&app, &tenant.sub).await, before);
}

async fn balance(app: &TestApp, user: &str) -> i32 {
    app.db
        .client()
        .await
        .query_one(
            "SELECT remaining_credits FROM credits WHERE user_id = $1",
            &[&user],
        )
        .await
        .expect("balance")
        .get(0)
}

#[tokio::test]
async fn a_grant_past_the_integer_limit_is_422_naming_amount_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("whale").await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE credits SET remaining_credits = 2147483000 WHERE user_id = $1",
            &[&tenant.sub],
        )
        .await
        .expect("seed balance");

    let over = grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": tenant.sub, "amount": 1000, "reason": "too much" }),
    )
    .await;
    let exactly_to_the_limit = grant(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        &json!({ "user_id": tenant.sub, "amount": 647, "reason": "to the brim" }),
    )
    .await;

    over.expect_problem(422, Some("amount"));
    assert_eq!(
        exactly_to_the_limit.expect(201)["remaining_credits"],
        i32::MAX
    );
    assert_eq!(balance(&app, &tenant.sub).await, i32::MAX);
    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        1,
        "the refused grant left no row"
    );
}

#[tokio::test]
async fn a_retried_grant_with_the_same_idempotency_key_is_applied_once_and_answers_the_first_result()
 {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let body = json!({ "user_id": tenant.sub, "amount": 40, "reason": "invoice 17" });
    let secret = Some(testkit::TEST_ADMIN_SECRET);

    let first = grant_with_key(&app, secret, Some(b"invoice-17"), &body).await;
    let retry = grant_with_key(&app, secret, Some(b"invoice-17"), &body).await;
    let another = grant_with_key(&app, secret, Some(b"invoice-18"), &body).await;

    let first_body = first.expect(201).clone();
    assert_eq!(first_body["remaining_credits"], 40);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.expect(201), &first_body, "the first grant's result");
    assert_eq!(
        retry
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(another.expect(201)["remaining_credits"], 80);
    assert_eq!(balance(&app, &tenant.sub).await, 80);
    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        2
    );
}

#[tokio::test]
async fn parallel_identical_grants_with_one_idempotency_key_apply_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let body = json!({ "user_id": tenant.sub, "amount": 25, "reason": "retry storm" });

    let responses = futures::future::join_all((0..10).map(|_| {
        grant_with_key(
            &app,
            Some(testkit::TEST_ADMIN_SECRET),
            Some(b"storm-1"),
            &body,
        )
    }))
    .await;

    let grant_ids: std::collections::HashSet<String> = responses
        .iter()
        .map(|r| {
            r.expect(201)["grant_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(grant_ids.len(), 1, "every answer is the one grant");
    assert_eq!(balance(&app, &tenant.sub).await, 25);
    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        1
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_grant_is_422_and_applies_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let secret = Some(testkit::TEST_ADMIN_SECRET);
    let key = Some(b"grant-1".as_slice());
    grant_with_key(
        &app,
        secret,
        key,
        &json!({ "user_id": acme.sub, "amount": 10, "reason": "trial" }),
    )
    .await
    .expect(201);

    let cases = [
        json!({ "user_id": acme.sub, "amount": 11, "reason": "trial" }),
        json!({ "user_id": acme.sub, "amount": 10, "reason": "other" }),
        json!({ "user_id": other.sub, "amount": 10, "reason": "trial" }),
    ];
    for body in cases {
        grant_with_key(&app, secret, key, &body)
            .await
            .expect_problem(422, Some("Idempotency-Key"));
    }

    assert_eq!(balance(&app, &acme.sub).await, 10);
    assert_eq!(balance(&app, &other.sub).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        1
    );
}

#[tokio::test]
async fn malformed_idempotency_keys_are_422_naming_the_header() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let body = json!({ "user_id": tenant.sub, "amount": 10, "reason": "x" });
    let too_long = "k".repeat(256);
    let keys: [&[u8]; 4] = [
        b"",
        too_long.as_bytes(),
        b"has space",
        "cl\u{e9}".as_bytes(),
    ];

    for key in keys {
        grant_with_key(&app, Some(testkit::TEST_ADMIN_SECRET), Some(key), &body)
            .await
            .expect_problem(422, Some("Idempotency-Key"));
    }
    let longest = "k".repeat(255);
    grant_with_key(
        &app,
        Some(testkit::TEST_ADMIN_SECRET),
        Some(longest.as_bytes()),
        &body,
    )
    .await
    .expect(201);
    assert_eq!(
        app.count("SELECT count(*) FROM credit_grants", &[]).await,
        1
    );
}
