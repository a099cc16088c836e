use chrono::Duration;
use http::{Method, Request, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shared::config::{AuthConfig, JwtKeys};
use testkit::{TestClient, TestDb, TestTenant, sign_hs256};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{TestApp, agents_state};

const JWKS: &str = include_str!("../fixtures/jwks.json");
const RSA_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/jwks_rsa_private.pem");
const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "dashboard";

fn sign_rs256(kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY).expect("fixture key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn rs256_claims(sub: &str, iss: &str, aud: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": sub, "email": format!("{sub}@example.test"), "iss": iss, "aud": aud, "iat": now, "exp": now + 3600 })
}

async fn api_with_auth(db: &TestDb, auth: AuthConfig) -> TestClient {
    let meta = MockServer::start().await;
    TestClient::new(agents::router(agents_state(
        testkit::api_state_with_auth(db, &auth),
        &meta,
    )))
}

#[tokio::test]
async fn every_route_answers_401_without_a_token() {
    let app = TestApp::spawn().await;
    let routes = [
        (Method::GET, "/me"),
        (Method::PATCH, "/me"),
        (Method::GET, "/phone-numbers"),
        (Method::POST, "/phone-numbers"),
        (Method::GET, "/phone-numbers/pn_01jd0000000000000000000000"),
        (
            Method::PATCH,
            "/phone-numbers/pn_01jd0000000000000000000000",
        ),
        (
            Method::DELETE,
            "/phone-numbers/pn_01jd0000000000000000000000",
        ),
        (
            Method::GET,
            "/phone-numbers/pn_01jd0000000000000000000000/archives",
        ),
        (Method::GET, "/agents"),
        (Method::POST, "/agents"),
        (Method::GET, "/agents/agt_01jd0000000000000000000000"),
        (Method::PATCH, "/agents/agt_01jd0000000000000000000000"),
        (Method::DELETE, "/agents/agt_01jd0000000000000000000000"),
        (Method::POST, "/admin/credits"),
    ];
    for (method, route) in routes {
        let response = app
            .api
            .send(method.clone(), route, None, Some(&json!({})))
            .await;
        response.expect_problem(401, None);
        assert_eq!(
            response
                .headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{method} {route}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM users", &[]).await, 0);
}

#[tokio::test]
async fn tokens_that_are_not_bearer_or_not_jwts_are_401() {
    let app = TestApp::spawn().await;
    for authorization in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not.a.jwt",
        "Bearer   ",
    ] {
        let request = Request::builder()
            .uri("/me")
            .header(header::AUTHORIZATION, authorization)
            .body(axum::body::Body::empty())
            .expect("request");
        app.api
            .send_request(request)
            .await
            .expect_problem(401, None);
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401() {
    let app = TestApp::spawn().await;
    let forged = sign_hs256(
        "another-secret-that-is-also-32-characters",
        "mallory",
        Some("m@example.test"),
        Duration::hours(1),
        None,
    );

    let body = app
        .api
        .get("/me", &forged)
        .await
        .expect_problem(401, None)
        .clone();

    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("signature")),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM users", &[]).await, 0);
}

#[tokio::test]
async fn an_expired_token_is_401_and_says_so() {
    let app = TestApp::spawn().await;
    let tenant = TestTenant::new("late");

    let response = app
        .api
        .get("/me", &tenant.token_with(Duration::hours(-1), None))
        .await;

    let body = response.expect_problem(401, None);
    assert_eq!(body["detail"], "the token has expired");
}

#[tokio::test]
async fn a_token_for_another_audience_is_401_when_an_audience_is_configured() {
    let db = TestDb::new().await;
    let mut auth = testkit::test_auth_config();
    auth.audience = Some(AUDIENCE.to_owned());
    let api = api_with_auth(&db, auth).await;
    let tenant = TestTenant::new("aud");

    let wrong = api
        .get(
            "/me",
            &tenant.token_with(Duration::hours(1), Some("someone-else")),
        )
        .await;
    let missing = api
        .get("/me", &tenant.token_with(Duration::hours(1), None))
        .await;
    let right = api
        .get(
            "/me",
            &tenant.token_with(Duration::hours(1), Some(AUDIENCE)),
        )
        .await;

    assert_eq!(
        wrong.expect_problem(401, None)["detail"],
        "the token is not meant for this API (audience)"
    );
    missing.expect_problem(401, None);
    right.expect(200);
}

#[tokio::test]
async fn jwks_keys_verify_rs256_tokens_and_are_fetched_once() {
    let db = TestDb::new().await;
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .expect(1)
        .mount(&idp)
        .await;
    let api = api_with_auth(
        &db,
        AuthConfig {
            keys: JwtKeys::Jwks {
                url: format!("{}/.well-known/jwks.json", idp.uri()),
            },
            issuer: Some(ISSUER.to_owned()),
            audience: Some(AUDIENCE.to_owned()),
        },
    )
    .await;

    let first = api
        .get(
            "/me",
            &sign_rs256(
                "test-key-1",
                &rs256_claims("cognito-user-1", ISSUER, AUDIENCE),
            ),
        )
        .await;
    let second = api
        .get(
            "/me",
            &sign_rs256(
                "test-key-1",
                &rs256_claims("cognito-user-2", ISSUER, AUDIENCE),
            ),
        )
        .await;

    assert_eq!(first.expect(200)["user_id"], "cognito-user-1");
    assert_eq!(second.expect(200)["user_id"], "cognito-user-2");
    // `expect(1)` on the mock is verified when `idp` drops: one fetch served both.
}

#[tokio::test]
async fn jwks_mode_refuses_wrong_issuers_unknown_keys_and_hs256_tokens() {
    let db = TestDb::new().await;
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .mount(&idp)
        .await;
    let api = api_with_auth(
        &db,
        AuthConfig {
            keys: JwtKeys::Jwks {
                url: format!("{}/jwks", idp.uri()),
            },
            issuer: Some(ISSUER.to_owned()),
            audience: Some(AUDIENCE.to_owned()),
        },
    )
    .await;

    let wrong_issuer = api
        .get(
            "/me",
            &sign_rs256(
                "test-key-1",
                &rs256_claims("u1", "https://evil.test", AUDIENCE),
            ),
        )
        .await;
    let unknown_key = api
        .get(
            "/me",
            &sign_rs256("rotated-away", &rs256_claims("u1", ISSUER, AUDIENCE)),
        )
        .await;
    let symmetric = api
        .get(
            "/me",
            &sign_hs256(
                testkit::TEST_JWT_SECRET,
                "u1",
                Some("u1@example.test"),
                Duration::hours(1),
                Some(AUDIENCE),
            ),
        )
        .await;

    assert_eq!(
        wrong_issuer.expect_problem(401, None)["detail"],
        "the token was not issued by the expected issuer"
    );
    unknown_key.expect_problem(401, None);
    symmetric.expect_problem(401, None);
    assert_eq!(
        db.client()
            .await
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0
    );
}

#[tokio::test]
async fn concurrent_first_calls_provision_exactly_one_account_and_credits_row() {
    let app = TestApp::spawn().await;
    let tenant = TestTenant::new("burst");
    let token = tenant.token();

    let responses = futures::future::join_all((0..12).map(|_| app.api.get("/me", &token))).await;

    for response in &responses {
        response.expect(200);
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM users WHERE user_id = $1",
            &[&tenant.sub]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM credits WHERE user_id = $1",
            &[&tenant.sub]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_first_sign_in_needs_an_email_but_a_known_tenant_does_not() {
    let app = TestApp::spawn().await;
    let no_email = sign_hs256(
        testkit::TEST_JWT_SECRET,
        "new-user",
        None,
        Duration::hours(1),
        None,
    );

    let refused = app.api.get("/me", &no_email).await;
    assert!(
        refused.expect_problem(401, None)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("email"))
    );

    let tenant = app.tenant("known").await;
    // A fresh router has an empty provisioning cache, so this really reads the database.
    let fresh = TestClient::new(agents::router(agents_state(
        testkit::api_state(&app.db),
        &app.meta,
    )));
    let known_without_email = sign_hs256(
        testkit::TEST_JWT_SECRET,
        &tenant.sub,
        None,
        Duration::hours(1),
        None,
    );
    fresh.get("/me", &known_without_email).await.expect(200);
}

#[tokio::test]
async fn a_second_subject_with_a_taken_email_is_a_409() {
    let app = TestApp::spawn().await;
    let first = app.tenant("first").await;
    let impostor = sign_hs256(
        testkit::TEST_JWT_SECRET,
        "another-sub",
        Some(&first.email),
        Duration::hours(1),
        None,
    );

    let response = app.api.get("/me", &impostor).await;

    assert!(
        response.expect_problem(409, None)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("email"))
    );
    assert_eq!(app.count("SELECT count(*) FROM users", &[]).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM credits", &[]).await, 1);
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_401() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |nbf: i64| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({ "sub": "early", "email": "early@example.test", "iat": now, "nbf": nbf, "exp": now + 7200 }),
            &EncodingKey::from_secret(testkit::TEST_JWT_SECRET.as_bytes()),
        )
        .expect("sign")
    };

    let early = app.api.get("/me", &sign(now + 3600)).await;

    assert_eq!(
        early.expect_problem(401, None)["detail"],
        "the token is not valid yet (`nbf` is in the future)"
    );
    assert_eq!(app.count("SELECT count(*) FROM users", &[]).await, 0);
    app.api.get("/me", &sign(now - 10)).await.expect(200);
}

#[tokio::test]
async fn jwks_mode_requires_both_an_issuer_and_an_audience() {
    let jwks = || JwtKeys::Jwks {
        url: "https://idp.example.test/jwks".to_owned(),
    };

    let without_audience = AuthConfig::new(jwks(), Some(ISSUER.to_owned()), None);
    let without_issuer = AuthConfig::new(jwks(), None, Some(AUDIENCE.to_owned()));
    let both = AuthConfig::new(jwks(), Some(ISSUER.to_owned()), Some(AUDIENCE.to_owned()));

    assert!(
        without_audience
            .expect_err("refused")
            .to_string()
            .contains("JWT_AUDIENCE")
    );
    assert!(
        without_issuer
            .expect_err("refused")
            .to_string()
            .contains("JWT_ISSUER")
    );
    assert!(both.is_ok());
}

#[tokio::test]
async fn a_hand_built_jwks_config_without_an_audience_accepts_no_token() {
    let db = TestDb::new().await;
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .mount(&idp)
        .await;
    let api = api_with_auth(
        &db,
        AuthConfig {
            keys: JwtKeys::Jwks {
                url: format!("{}/jwks", idp.uri()),
            },
            issuer: Some(ISSUER.to_owned()),
            audience: None,
        },
    )
    .await;

    let response = api
        .get(
            "/me",
            &sign_rs256("test-key-1", &rs256_claims("u1", ISSUER, "anything")),
        )
        .await;

    response.expect_problem(500, None);
    assert_eq!(db.count("SELECT count(*) FROM users", &[]).await, 0);
}

#[tokio::test]
async fn an_email_that_differs_only_in_case_is_the_same_account_and_a_second_sub_gets_409() {
    let app = TestApp::spawn().await;
    let token = |sub: &str, email: &str| {
        sign_hs256(
            testkit::TEST_JWT_SECRET,
            sub,
            Some(email),
            Duration::hours(1),
            None,
        )
    };

    let first = app.api.get("/me", &token("lower", "a@example.test")).await;
    let shouting = app.api.get("/me", &token("upper", "A@EXAMPLE.TEST")).await;
    let mixed = app.api.get("/me", &token("mixed", "A@Example.Test")).await;

    first.expect(200);
    assert!(
        shouting.expect_problem(409, None)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("email")),
    );
    mixed.expect_problem(409, None);
    assert_eq!(app.count("SELECT count(*) FROM users", &[]).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM credits", &[]).await, 1);
}
