use chrono::{Duration, Utc};
use serde_json::json;
use shared::{
    crypto::SecretKind,
    google::{GoogleError, connection, state},
};
use testkit::google::GOOGLE_EMAIL;

use crate::helpers::{TestApp, user_id};

#[tokio::test]
async fn the_authorize_url_asks_for_offline_calendar_access_with_pkce_and_a_signed_state() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let body = app.authorize(&tenant).await;

    let url = reqwest::Url::parse(body["url"].as_str().expect("url")).expect("a URL");
    assert!(url.path().ends_with("/o/oauth2/v2/auth"), "{url}");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["code_challenge"].len() >= 43);
    assert_eq!(query["state"], body["state"].as_str().expect("state"));
    let scopes: Vec<&str> = query["scope"].split(' ').collect();
    for needed in [
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    ] {
        assert!(scopes.contains(&needed), "{scopes:?}");
    }
    // One consent in progress, its verifier kept on our side only.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM google_oauth_states WHERE user_id = $1",
            &[&tenant.sub]
        )
        .await,
        1
    );
    assert!(!body.to_string().contains("verifier"));
}

#[tokio::test]
async fn a_callback_stores_the_tokens_sealed_and_bound_to_the_tenants_row() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let connected = app.connect(&tenant).await;

    assert_eq!(connected["connected"], true);
    assert_eq!(connected["google_email"], GOOGLE_EMAIL);
    assert_eq!(connected["health"], "ok");
    assert!(!connected.to_string().contains("ya29"), "{connected}");
    assert!(!connected.to_string().contains("1//"), "{connected}");
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT access_token, refresh_token, scope FROM google_calendar_tokens WHERE user_id = $1",
            &[&tenant.sub],
        )
        .await
        .expect("row");
    let (access, refresh): (String, String) = (row.get(0), row.get(1));
    assert!(access.starts_with("v1:") && !access.contains("ya29"));
    assert!(refresh.starts_with("v1:") && !refresh.contains("1//"));
    let key = testkit::test_sealing_key();
    assert_eq!(
        key.open_for_row(SecretKind::GoogleAccessToken, &tenant.sub, &access)
            .ok()
            .as_deref(),
        Some("ya29.access-1")
    );
    assert_eq!(
        key.open_for_row(SecretKind::GoogleRefreshToken, &tenant.sub, &refresh)
            .ok()
            .as_deref(),
        Some("1//refresh-1")
    );
    // Bound to the row: the same value does not open as another tenant's.
    assert!(
        key.open_for_row(SecretKind::GoogleRefreshToken, "someone-else", &refresh)
            .is_err()
    );
    // The exchange sent the PKCE verifier.
    let exchanges = app.google_requests("POST", "/token").await;
    assert_eq!(exchanges.len(), 1);
    let form = String::from_utf8_lossy(&exchanges[0].body).to_string();
    assert!(
        form.contains("grant_type=authorization_code") && form.contains("code_verifier="),
        "{form}"
    );
    // And GET shows the same, never the tokens.
    let shown = app
        .api
        .get("/integrations/google", &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["connected"], true);
    assert_eq!(shown["scopes"].as_array().map(Vec::len), Some(4));
    assert!(!shown.to_string().contains("ya29"));
}

#[tokio::test]
async fn a_callback_with_a_bad_expired_foreign_or_replayed_state_is_refused_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let key = testkit::test_sealing_key();
    let started = app
        .api
        .get("/integrations/google/authorize-url", &acme.token())
        .await
        .expect(200)
        .clone();
    let (_, expired, _) = state::issue(&key, &user_id(&acme), Utc::now() - Duration::minutes(11));
    let tampered = started["state"]
        .as_str()
        .expect("state")
        .replacen('.', ".1", 1);

    let cases = [
        ("garbage", "not-a-state".to_owned(), &acme),
        ("expired", expired, &acme),
        ("tampered", tampered, &acme),
        (
            "another tenant's",
            started["state"].as_str().expect("state").to_owned(),
            &globex,
        ),
    ];
    for (label, presented, tenant) in cases {
        let response = app
            .api
            .post(
                "/integrations/google/callback",
                &tenant.token(),
                &json!({ "code": "4/code", "state": presented }),
            )
            .await;
        response.expect_problem(400, Some("state"));
        assert_eq!(
            app.stored_connections().await,
            0,
            "{label} state stored tokens"
        );
    }
    // NUL bytes are refused by the JSON edge, naming the field too.
    app.api
        .post(
            "/integrations/google/callback",
            &acme.token(),
            &json!({ "code": "4/code", "state": "a\u{0}b.1.c" }),
        )
        .await
        .expect_problem(422, Some("state"));
    assert!(
        app.google_requests("POST", "/token").await.is_empty(),
        "no refused state reached Google"
    );

    // Used once, then replayed.
    app.api
        .post(
            "/integrations/google/callback",
            &acme.token(),
            &json!({ "code": "4/code-first", "state": started["state"] }),
        )
        .await
        .expect(200);
    app.api
        .post(
            "/integrations/google/callback",
            &acme.token(),
            &json!({ "code": "4/code-second", "state": started["state"] }),
        )
        .await
        .expect_problem(400, Some("state"));
    assert_eq!(
        app.google_requests("POST", "/token").await.len(),
        1,
        "the replay never reached Google"
    );
    let stored = app
        .db
        .client()
        .await
        .query_one(
            "SELECT access_token FROM google_calendar_tokens WHERE user_id = $1",
            &[&acme.sub],
        )
        .await
        .expect("row")
        .get::<_, String>(0);
    assert_eq!(
        key.open_for_row(SecretKind::GoogleAccessToken, &acme.sub, &stored)
            .ok()
            .as_deref(),
        Some("ya29.access-1"),
        "the replay changed nothing"
    );
}

#[tokio::test]
async fn a_consent_without_the_calendar_scopes_is_refused_naming_the_missing_ones() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.google
        .grant_scopes("openid https://www.googleapis.com/auth/calendar.events");
    let started = app.authorize(&tenant).await;

    let response = app
        .api
        .post(
            "/integrations/google/callback",
            &tenant.token(),
            &json!({ "code": "4/code", "state": started["state"] }),
        )
        .await;

    let problem = response.expect_problem(422, Some("scope"));
    assert!(
        problem.to_string().contains("calendar.freebusy"),
        "{problem}"
    );
    assert!(
        !problem.to_string().contains("calendar.events "),
        "{problem}"
    );
    assert_eq!(app.stored_connections().await, 0);
}

#[tokio::test]
async fn a_code_google_refuses_is_a_400_naming_the_code() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let started = app.authorize(&tenant).await;

    app.api
        .post(
            "/integrations/google/callback",
            &tenant.token(),
            &json!({ "code": "bad-code", "state": started["state"] }),
        )
        .await
        .expect_problem(400, Some("code"));
    assert_eq!(app.stored_connections().await, 0);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_stored_back_sealed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    let client = app.db.client().await;
    let key = testkit::test_sealing_key();

    // Fresh: no refresh.
    let token = connection::access_token(&client, app.google_client(), &key, &user_id(&tenant))
        .await
        .expect("token");
    assert_eq!(token, "ya29.access-1");
    app.expire_token(&tenant).await;

    let token = connection::access_token(&client, app.google_client(), &key, &user_id(&tenant))
        .await
        .expect("token");

    assert_eq!(token, "ya29.access-2");
    let refreshes: Vec<_> = app
        .google_requests("POST", "/token")
        .await
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 1);
    assert!(String::from_utf8_lossy(&refreshes[0].body).contains("refresh_token=1%2F%2Frefresh-1"));
    let row = client
        .query_one(
            "SELECT access_token, refresh_token, token_expiry > now() + interval '50 minutes' FROM google_calendar_tokens WHERE user_id = $1",
            &[&tenant.sub],
        )
        .await
        .expect("row");
    assert_eq!(
        key.open_for_row(
            SecretKind::GoogleAccessToken,
            &tenant.sub,
            &row.get::<_, String>(0)
        )
        .ok()
        .as_deref(),
        Some("ya29.access-2")
    );
    assert_eq!(
        key.open_for_row(
            SecretKind::GoogleRefreshToken,
            &tenant.sub,
            &row.get::<_, String>(1)
        )
        .ok()
        .as_deref(),
        Some("1//refresh-1"),
        "Google sent no new refresh token: the old one is kept"
    );
    assert!(row.get::<_, bool>(2), "the new expiry is stored");
}

#[tokio::test]
async fn two_concurrent_refreshes_store_one_consistent_pair() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    app.google.rotate_refresh_tokens();
    app.expire_token(&tenant).await;
    let key = testkit::test_sealing_key();
    let user = user_id(&tenant);

    let (a, b) = {
        let (ca, cb) = (app.db.client().await, app.db.client().await);
        let (google, key_a, key_b) = (app.google_client(), key.clone(), key.clone());
        futures::join!(
            async move { connection::access_token(&ca, google, &key_a, &user).await },
            async { connection::access_token(&cb, google, &key_b, &user_id(&tenant)).await },
        )
    };

    let (a, b) = (a.expect("first"), b.expect("second"));
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT access_token, refresh_token FROM google_calendar_tokens WHERE user_id = $1",
            &[&tenant.sub],
        )
        .await
        .expect("row");
    let access = key
        .open_for_row(
            SecretKind::GoogleAccessToken,
            &tenant.sub,
            &row.get::<_, String>(0),
        )
        .expect("opens");
    let refresh = key
        .open_for_row(
            SecretKind::GoogleRefreshToken,
            &tenant.sub,
            &row.get::<_, String>(1),
        )
        .expect("opens");
    // One response's pair: access-N goes with refresh-N.
    let n = access
        .strip_prefix("ya29.access-")
        .expect("an access token");
    assert_eq!(
        refresh,
        format!("1//refresh-{n}"),
        "a mixed pair was stored"
    );
    // The loser of the race uses what the winner stored.
    assert_eq!((a.as_str(), b.as_str()), (access.as_str(), access.as_str()));
}

#[tokio::test]
async fn invalid_grant_marks_the_connection_reconnect_needed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;
    app.google.revoke("1//refresh-1");
    app.expire_token(&tenant).await;
    let client = app.db.client().await;

    let result = connection::access_token(
        &client,
        app.google_client(),
        &testkit::test_sealing_key(),
        &user_id(&tenant),
    )
    .await;

    assert!(
        matches!(result, Err(GoogleError::ReconnectNeeded)),
        "{result:?}"
    );
    let shown = app
        .api
        .get("/integrations/google", &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["connected"], true);
    assert_eq!(shown["health"], "reconnect_needed");
    // Later calls do not ask Google again.
    let refreshes_before = app.google_requests("POST", "/token").await.len();
    let again = connection::access_token(
        &client,
        app.google_client(),
        &testkit::test_sealing_key(),
        &user_id(&tenant),
    )
    .await;
    assert!(matches!(again, Err(GoogleError::ReconnectNeeded)));
    assert_eq!(
        app.google_requests("POST", "/token").await.len(),
        refreshes_before
    );
    // A reconnect makes it healthy again.
    app.connect(&tenant).await;
    let shown = app
        .api
        .get("/integrations/google", &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["health"], "ok");
}

#[tokio::test]
async fn disconnecting_revokes_at_google_and_deletes_the_row() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    app.connect(&tenant).await;

    let response = app
        .api
        .delete("/integrations/google", &tenant.token())
        .await;

    assert_eq!(response.status, 204);
    let revocations = app.google_requests("POST", "/revoke").await;
    assert_eq!(revocations.len(), 1);
    assert!(String::from_utf8_lossy(&revocations[0].body).contains("token=1%2F%2Frefresh-1"));
    assert_eq!(app.stored_connections().await, 0);
    let shown = app
        .api
        .get("/integrations/google", &tenant.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["connected"], false);
    app.api
        .delete("/integrations/google", &tenant.token())
        .await
        .expect_problem(404, None);
}

#[tokio::test]
async fn another_tenant_neither_sees_nor_disconnects_a_connection() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    app.connect(&acme).await;

    let shown = app
        .api
        .get("/integrations/google", &globex.token())
        .await
        .expect(200)
        .clone();
    assert_eq!(shown["connected"], false);
    app.api
        .delete("/integrations/google", &globex.token())
        .await
        .expect_problem(404, None);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM google_calendar_tokens WHERE user_id = $1",
            &[&acme.sub]
        )
        .await,
        1
    );
    assert!(app.google_requests("POST", "/revoke").await.is_empty());
}

#[tokio::test]
async fn without_google_configured_connecting_is_a_503_and_meetings_stay_readable() {
    let mut app = TestApp::spawn().await;
    app.state.google = None;
    let api = testkit::TestClient::new(meetings::router(app.state.clone()));
    let tenant = app.tenant("acme").await;

    api.get("/integrations/google/authorize-url", &tenant.token())
        .await
        .expect_problem(503, None);
    api.get("/meetings", &tenant.token()).await.expect(200);
    let shown = api.get("/integrations/google", &tenant.token()).await;
    assert_eq!(shown.expect(200)["connected"], false);
}
