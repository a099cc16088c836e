use axum::body::Body;
use http::{Method, Request, header};
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn grant(app: &TestApp, secret: Option<&str>, body: &Value) -> testkit::TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/admin/credits")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request.header("x-admin-secret", secret);
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
    let me = app.api.get("/me", &tenant.token()).await;
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
    app.api
        .post("/admin/credits", &tenant.token(), &valid)
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
}
