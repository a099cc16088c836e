use http::{Method, Request, header};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn get_me_returns_the_account_with_its_credits() {
    let app = TestApp::spawn().await;
    let tenant = testkit::TestTenant::new("acme");

    let response = app.get_as(&tenant, "/me").await;

    let body = response.expect(200);
    assert_eq!(body["user_id"], tenant.sub);
    assert_eq!(body["email"], tenant.email);
    assert_eq!(body["company_name"], json!(null));
    assert_eq!(
        body["credits"],
        json!({ "remaining_credits": 0, "total_used": 0 })
    );
}

#[tokio::test]
async fn patch_me_sets_and_clears_the_company_name() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let set = app
        .patch_as(&tenant, "/me", &json!({ "company_name": "  Acme Inc " }))
        .await;
    assert_eq!(set.expect(200)["company_name"], "Acme Inc");
    let stored = app
        .count(
            "SELECT count(*) FROM users WHERE user_id = $1 AND company_name = 'Acme Inc'",
            &[&tenant.sub],
        )
        .await;
    assert_eq!(stored, 1);

    let untouched = app.patch_as(&tenant, "/me", &json!({})).await;
    assert_eq!(untouched.expect(200)["company_name"], "Acme Inc");

    let cleared = app
        .patch_as(&tenant, "/me", &json!({ "company_name": null }))
        .await;
    assert_eq!(cleared.expect(200)["company_name"], json!(null));
}

#[tokio::test]
async fn patch_me_refuses_bad_input_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let cases = [
        (
            json!({ "company_name": "x".repeat(256) }),
            422,
            Some("company_name"),
        ),
        (json!({ "company_name": "   " }), 422, Some("company_name")),
        (json!({ "company_name": 42 }), 422, Some("company_name")),
        (json!({ "email": "new@example.test" }), 422, Some("email")),
    ];
    for (body, status, field) in cases {
        app.api
            .patch("/me", &token, &body)
            .await
            .expect_problem(status, field);
    }

    let malformed = Request::builder()
        .method(Method::PATCH)
        .uri("/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from("{\"company_name\": "))
        .expect("request");
    app.api
        .send_request(malformed)
        .await
        .expect_problem(400, None);

    let not_json = Request::builder()
        .method(Method::PATCH)
        .uri("/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from("company_name=x"))
        .expect("request");
    app.api
        .send_request(not_json)
        .await
        .expect_problem(415, None);

    let unchanged = app
        .count(
            "SELECT count(*) FROM users WHERE user_id = $1 AND company_name IS NULL",
            &[&tenant.sub],
        )
        .await;
    assert_eq!(unchanged, 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let huge = json!({ "company_name": "x".repeat(300 * 1024) });

    app.patch_as(&tenant, "/me", &huge)
        .await
        .expect_problem(413, None);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problem_json() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    app.get_as(&tenant, "/nope").await.expect_problem(404, None);
    app.api
        .send(Method::PUT, "/me", Some(&tenant.token()), None)
        .await
        .expect_problem(405, None);
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = TestApp::spawn().await;
    let tenant = testkit::TestTenant::new("acme");

    let response = app.get_as(&tenant, "/me").await;

    assert!(response.headers.get("x-request-id").is_some());
}

#[tokio::test]
async fn patch_me_sets_an_iana_time_zone_and_refuses_anything_else_writing_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let shown = app.api.get("/me", &tenant.token()).await;
    assert_eq!(shown.expect(200)["time_zone"], "UTC");

    let set = app
        .api
        .patch(
            "/me",
            &tenant.token(),
            &json!({ "time_zone": "Europe/Madrid" }),
        )
        .await;
    assert_eq!(set.expect(200)["time_zone"], "Europe/Madrid");

    for bad in ["Mars/Olympus", "+01:00", "", "Europe/Madrid\u{0}"] {
        let refused = app
            .api
            .patch("/me", &tenant.token(), &json!({ "time_zone": bad }))
            .await;
        assert_eq!(refused.status, 422, "{bad:?}: {}", refused.body);
        assert_eq!(refused.error_fields(), vec!["time_zone"], "{bad:?}");
    }
    // A valid zone with an invalid company name: neither is written.
    app.api
        .patch(
            "/me",
            &tenant.token(),
            &json!({ "time_zone": "Asia/Tokyo", "company_name": "" }),
        )
        .await
        .expect_problem(422, Some("company_name"));
    let stored = app
        .count(
            "SELECT count(*) FROM users WHERE user_id = $1 AND time_zone = 'Europe/Madrid'",
            &[&tenant.sub],
        )
        .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn patch_me_sets_and_clears_working_hours_and_refuses_bad_ones_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let shown = app.api.get("/me", &tenant.token()).await;
    assert_eq!(shown.expect(200)["working_hours"], serde_json::Value::Null);

    let hours = json!({ "start": "09:00", "end": "17:30", "days": [5, 1, 2, 3, 4, 1] });
    let set = app
        .api
        .patch("/me", &tenant.token(), &json!({ "working_hours": hours }))
        .await;
    assert_eq!(
        set.expect(200)["working_hours"],
        json!({ "start": "09:00", "end": "17:30", "days": [1, 2, 3, 4, 5] })
    );

    for (bad, field) in [
        (
            json!({ "start": "9am", "end": "17:00", "days": [1] }),
            "working_hours.start",
        ),
        (
            json!({ "start": "18:00", "end": "09:00", "days": [1] }),
            "working_hours.end",
        ),
        (
            json!({ "start": "09:00", "end": "17:00", "days": [] }),
            "working_hours.days",
        ),
        (
            json!({ "start": "09:00", "end": "17:00", "days": [0, 8] }),
            "working_hours.days",
        ),
        (
            json!({ "start": "09:00\u{0}", "end": "17:00", "days": [1] }),
            "working_hours.start",
        ),
    ] {
        app.api
            .patch("/me", &tenant.token(), &json!({ "working_hours": bad }))
            .await
            .expect_problem(422, Some(field));
    }
    // A bad time zone next to valid hours: neither is written.
    app.api
        .patch(
            "/me",
            &tenant.token(),
            &json!({ "time_zone": "Mars/Olympus",
                     "working_hours": { "start": "08:00", "end": "12:00", "days": [6] } }),
        )
        .await
        .expect_problem(422, Some("time_zone"));
    let kept = app.api.get("/me", &tenant.token()).await;
    assert_eq!(kept.expect(200)["working_hours"]["start"], "09:00");

    // Another tenant's hours are its own.
    let other = app.tenant("rival").await;
    let theirs = app.api.get("/me", &other.token()).await;
    assert_eq!(theirs.expect(200)["working_hours"], serde_json::Value::Null);

    let cleared = app
        .api
        .patch("/me", &tenant.token(), &json!({ "working_hours": null }))
        .await;
    assert_eq!(
        cleared.expect(200)["working_hours"],
        serde_json::Value::Null
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM users WHERE user_id = $1 AND working_days IS NULL",
            &[&tenant.sub],
        )
        .await,
        1
    );
}
