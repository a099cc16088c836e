//! The website chat: server-issued visitor sessions, atomic limits, per-channel CORS.

use std::net::SocketAddr;

use axum::{body::Body, extract::ConnectInfo};
use http::{Method, Request, header};
use serde_json::{Value, json};
use shared::{
    db::phone_numbers,
    domain::{PhoneNumberId, UserId},
};
use testkit::{ConversationSeed, TestClient, TestResponse};
use webhook::WebchatLimits;

use crate::helpers::{TestApp, WA_CHANNEL};

/// A client address (TEST-NET-3), as devstack's socket would give it.
fn from(n: u8) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, n], 40_000))
}

struct Widget {
    tenant: String,
    channel: String,
    key: String,
}

/// A webchat channel of `tenant` with these allowed origins and (optionally) a daily cap.
async fn widget(app: &TestApp, tenant: &str, origins: &[&str], cap: Option<i32>) -> Widget {
    let key = shared::domain::generate_widget_key();
    let channel = app.channel(tenant, "webchat", &key).await;
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    app.db
        .client()
        .await
        .execute(
            "UPDATE phone_numbers SET access_token = NULL, webchat_allowed_origins = $2,
                 webchat_daily_reply_cap = $3 WHERE id = $1",
            &[&channel, &origins, &cap],
        )
        .await
        .expect("widget settings");
    Widget {
        tenant: tenant.to_owned(),
        channel,
        key,
    }
}

fn request(
    method: Method,
    uri: &str,
    client: Option<SocketAddr>,
    token: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = testkit::request(method, uri, token, body);
    if let Some(address) = client {
        request.extensions_mut().insert(ConnectInfo(address));
    }
    request
}

async fn open_session(api: &TestClient, key: &str, client: SocketAddr) -> TestResponse {
    api.send_request(request(
        Method::POST,
        &format!("/webchat/{key}/sessions"),
        Some(client),
        None,
        None,
    ))
    .await
}

async fn token(app: &TestApp, key: &str, client: SocketAddr) -> String {
    let response = open_session(&app.api, key, client).await;
    response.expect(201)["visitor_token"]
        .as_str()
        .expect("visitor_token")
        .to_owned()
}

async fn post(
    api: &TestClient,
    key: &str,
    token: Option<&str>,
    client: SocketAddr,
    body: &Value,
) -> TestResponse {
    api.send_request(request(
        Method::POST,
        &format!("/webchat/{key}/messages"),
        Some(client),
        token,
        Some(body),
    ))
    .await
}

async fn poll(
    api: &TestClient,
    key: &str,
    token: Option<&str>,
    client: SocketAddr,
    query: &str,
) -> TestResponse {
    api.send_request(request(
        Method::GET,
        &format!("/webchat/{key}/messages{query}"),
        Some(client),
        token,
        None,
    ))
    .await
}

#[track_caller]
fn assert_rate_limited(response: &TestResponse) {
    response.expect_problem(429, None);
    let retry_after: u32 = response
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 carries Retry-After in seconds");
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
}

fn statuses(responses: &[TestResponse]) -> (usize, usize) {
    let accepted = responses.iter().filter(|r| r.status == 202).count();
    let limited = responses.iter().filter(|r| r.status == 429).count();
    (accepted, limited)
}

#[tokio::test]
async fn a_session_gets_a_server_generated_visitor_and_a_token_kept_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;

    let response = open_session(&app.api, &site.key, from(1)).await;

    let body = response.expect(201);
    let token = body["visitor_token"].as_str().expect("token");
    assert!(token.starts_with("vt_") && token.len() == 46, "{token}");
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["expires_at"].clone()).expect("expires_at");
    let ttl = expires_at - chrono::Utc::now();
    assert!(ttl > chrono::Duration::hours(23) && ttl <= chrono::Duration::hours(24));
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT visitor_id, token_hash, client_ip FROM webchat_sessions WHERE phone_number_id = $1",
            &[&site.channel],
        )
        .await
        .expect("one session row");
    let visitor: String = row.get(0);
    assert!(visitor.starts_with("vis_"), "{visitor}");
    let hash: String = row.get(1);
    assert_eq!(
        hash,
        shared::domain::VisitorToken::parse(token)
            .expect("token")
            .hash()
    );
    assert_ne!(hash, token, "the token itself is never stored");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("203.0.113.1")
    );
}

#[tokio::test]
async fn sessions_of_unknown_widgets_are_404_even_when_another_platform_uses_the_id() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;

    open_session(&app.api, "wk_nope", from(1))
        .await
        .expect_problem(404, None);
    open_session(&app.api, WA_CHANNEL, from(1))
        .await
        .expect_problem(404, None);
    assert_eq!(
        app.count("SELECT count(*) FROM webchat_sessions", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_visitor_message_is_accepted_stored_under_the_server_issued_visitor_and_queued() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let token = token(&app, &site.key, from(1)).await;

    let response = post(
        &app.api,
        &site.key,
        Some(&token),
        from(1),
        &json!({ "text": " Hello there 👋 " }),
    )
    .await;

    let body = response.expect(202);
    assert_eq!(body["text"], "Hello there 👋");
    assert_eq!(body["status"], "received");
    assert!(body.get("visitor_id").is_none(), "{body}");
    assert!(
        body["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("wc_"))
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages i JOIN webchat_sessions s
               ON s.visitor_id = i.customer_id AND s.phone_number_id = i.phone_number_id
             WHERE i.phone_number_id = $1 AND i.state = 'enqueued'",
            &[&site.channel]
        )
        .await,
        1
    );
    assert_eq!(app.queue.published_count(), 1);
    app.take_published_jobs();
}

#[tokio::test]
async fn message_routes_refuse_missing_invalid_expired_and_other_widgets_tokens_with_401() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let other = widget(&app, "globex", &[], None).await;
    let others_token = token(&app, &other.key, from(1)).await;
    let expired = token(&app, &site.key, from(1)).await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE webchat_sessions SET expires_at = now() - interval '1 second'
             WHERE token_hash = $1",
            &[&shared::domain::VisitorToken::parse(&expired)
                .expect("token")
                .hash()],
        )
        .await
        .expect("expire");
    let well_formed_unknown = shared::domain::VisitorToken::generate();
    let cases: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("garbage", Some("garbage")),
        ("unknown token", Some(well_formed_unknown.expose())),
        ("expired token", Some(&expired)),
        ("another widget's token", Some(&others_token)),
    ];

    for (case, token) in cases {
        let posted = post(
            &app.api,
            &site.key,
            token,
            from(1),
            &json!({ "text": "hi" }),
        )
        .await;
        assert_eq!(posted.status, 401, "{case}: {}", posted.body);
        posted.expect_problem(401, None);
        let polled = poll(&app.api, &site.key, token, from(1), "").await;
        assert_eq!(polled.status, 401, "{case}: {}", polled.body);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

/// Gives the widget an agent (once) and `visitor` an active conversation whose messages
/// alternate visitor, agent, visitor…, seeded through `shared::db`.
async fn transcript(app: &TestApp, site: &Widget, visitor: &str, texts: &[&str]) {
    let seed = app.db.seed();
    let user = UserId::parse(&site.tenant).expect("tenant");
    let channel_id = PhoneNumberId::parse(&site.channel).expect("channel id");
    let channel = phone_numbers::get(&app.db.client().await, &user, &channel_id)
        .await
        .expect("channel")
        .expect("the widget's channel");
    let agent = match &channel.agent_id {
        Some(agent) => agent.clone(),
        None => seed.agent(&user, &channel, "pmpt_x", "Ava").await.agent_id,
    };
    let mut conversation = None;
    for (i, text) in texts.iter().enumerate() {
        if i % 2 == 0 {
            let customer = ConversationSeed::from_customer(visitor).text(text);
            conversation = Some(seed.conversation(&user, &channel, &agent, customer).await);
        } else if let Some(conversation) = &conversation {
            seed.agent_message(&user, conversation, text).await;
        }
    }
}

async fn visitor_of(app: &TestApp, token: &str) -> String {
    app.db
        .client()
        .await
        .query_one(
            "SELECT visitor_id FROM webchat_sessions WHERE token_hash = $1",
            &[&shared::domain::VisitorToken::parse(token)
                .expect("token")
                .hash()],
        )
        .await
        .expect("session")
        .get(0)
}

#[tokio::test]
async fn a_visitor_reads_only_its_own_transcript() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let alice = token(&app, &site.key, from(1)).await;
    let bob = token(&app, &site.key, from(2)).await;
    transcript(
        &app,
        &site,
        &visitor_of(&app, &alice).await,
        &["alice asks", "alice answered"],
    )
    .await;
    transcript(&app, &site, &visitor_of(&app, &bob).await, &["bob asks"]).await;

    let alices = poll(&app.api, &site.key, Some(&alice), from(1), "?after=0").await;
    let bobs = poll(&app.api, &site.key, Some(&bob), from(2), "").await;
    let alices_later = poll(&app.api, &site.key, Some(&alice), from(1), "?after=1").await;

    let items = &alices.expect(200)["items"];
    assert_eq!(items.as_array().map(Vec::len), Some(2), "{items}");
    assert_eq!(items[0]["text"], "alice asks");
    assert_eq!(items[0]["sender"], "visitor");
    assert_eq!(items[1]["sender"], "agent");
    assert_eq!(
        bobs.expect(200)["items"],
        json!([{
            "sequence_no": 1, "sender": "visitor", "text": "bob asks",
            "timestamp": bobs.body["items"][0]["timestamp"],
        }])
    );
    assert_eq!(
        alices_later.expect(200)["items"][0]["text"],
        "alice answered"
    );
}

#[tokio::test]
async fn polling_before_any_message_gives_an_empty_list() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let token = token(&app, &site.key, from(1)).await;

    let response = poll(&app.api, &site.key, Some(&token), from(1), "?after=0").await;

    assert_eq!(response.expect(200)["items"], json!([]));
}

#[tokio::test]
async fn bad_visitor_messages_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let token = token(&app, &site.key, from(1)).await;
    let cases = [
        (json!({ "text": "  " }), "text"),
        (json!({ "text": "x".repeat(2001) }), "text"),
        (json!({ "text": 5 }), "text"),
        (json!({}), "text"),
        // The browser no longer names the visitor: the token does.
        (json!({ "visitor_id": "v-1", "text": "hi" }), "visitor_id"),
    ];
    for (body, field) in cases {
        post(&app.api, &site.key, Some(&token), from(1), &body)
            .await
            .expect_problem(422, Some(field));
    }
    post(
        &app.api,
        &site.key,
        Some(&token),
        from(1),
        &json!({ "text": "é".repeat(2000) }),
    )
    .await
    .expect(202);
    poll(&app.api, &site.key, Some(&token), from(1), "?after=-1")
        .await
        .expect_problem(422, Some("after"));
    poll(&app.api, &site.key, Some(&token), from(1), "?visitor_id=v")
        .await
        .expect_problem(422, Some("visitor_id"));
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        1
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large_are_415_and_413() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let token = token(&app, &site.key, from(1)).await;
    let mut plain = request(
        Method::POST,
        &format!("/webchat/{}/messages", site.key),
        Some(from(1)),
        Some(&token),
        None,
    );
    *plain.body_mut() = Body::from("hi");
    plain
        .headers_mut()
        .insert(header::CONTENT_TYPE, "text/plain".parse().expect("header"));

    app.api.send_request(plain).await.expect_problem(415, None);
    post(
        &app.api,
        &site.key,
        Some(&token),
        from(1),
        &json!({ "text": "x".repeat(17 * 1024) }),
    )
    .await
    .expect_problem(413, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_posts_with_one_token_accept_exactly_ten() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let visitor = token(&app, &site.key, from(1)).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (api, key, visitor) = (app.api.clone(), site.key.clone(), visitor.clone());
        tasks.spawn(async move {
            post(
                &api,
                &key,
                Some(&visitor),
                from(1),
                &json!({ "text": format!("message {i}") }),
            )
            .await
        });
    }
    let responses = tasks.join_all().await;

    assert_eq!(statuses(&responses), (10, 20));
    for limited in responses.iter().filter(|r| r.status == 429) {
        assert_rate_limited(limited);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        10
    );
    assert_eq!(app.queue.published_count(), 10);
    // Another visitor is not affected.
    let calm = token(&app, &site.key, from(2)).await;
    post(
        &app.api,
        &site.key,
        Some(&calm),
        from(2),
        &json!({ "text": "hi" }),
    )
    .await
    .expect(202);
    app.take_published_jobs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_sessions_from_one_address_give_exactly_ten() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (api, key) = (app.api.clone(), site.key.clone());
        tasks.spawn(async move { open_session(&api, &key, from(7)).await });
    }
    let responses = tasks.join_all().await;

    assert_eq!(responses.iter().filter(|r| r.status == 201).count(), 10);
    for limited in responses.iter().filter(|r| r.status != 201) {
        assert_rate_limited(limited);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM webchat_sessions", &[])
            .await,
        10
    );
    open_session(&app.api, &site.key, from(8)).await.expect(201);
}

#[tokio::test]
async fn ipv6_clients_share_their_64_block_for_sessions() {
    let app = TestApp::spawn_with(WebchatLimits {
        ip_sessions_per_minute: 2,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;
    let address = |last: u16| SocketAddr::from(([0x2001, 0xdb8, 7, 7, 0, 0, 0, last], 443));

    open_session(&app.api, &site.key, address(1))
        .await
        .expect(201);
    open_session(&app.api, &site.key, address(2))
        .await
        .expect(201);

    assert_rate_limited(&open_session(&app.api, &site.key, address(3)).await);
}

#[tokio::test]
async fn requests_without_a_known_address_share_one_allowance() {
    let app = TestApp::spawn_with(WebchatLimits {
        ip_sessions_per_minute: 2,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;
    let anonymous = || {
        request(
            Method::POST,
            &format!("/webchat/{}/sessions", site.key),
            None,
            None,
            None,
        )
    };

    app.api.send_request(anonymous()).await.expect(201);
    app.api.send_request(anonymous()).await.expect(201);

    assert_rate_limited(&app.api.send_request(anonymous()).await);
    open_session(&app.api, &site.key, from(1)).await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_may_post_twenty_messages_a_minute_across_visitors() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &[], None).await;
    let mut tokens = Vec::new();
    for n in 1..=3 {
        tokens.push(token(&app, &site.key, from(n)).await);
    }

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..27 {
        let (api, key, token) = (app.api.clone(), site.key.clone(), tokens[i % 3].clone());
        tasks.spawn(async move {
            post(
                &api,
                &key,
                Some(&token),
                from(99),
                &json!({ "text": format!("m{i}") }),
            )
            .await
        });
    }
    let responses = tasks.join_all().await;

    assert_eq!(statuses(&responses), (20, 7));
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        20
    );
    app.take_published_jobs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_widget_takes_at_most_its_messages_per_minute_from_everyone_together() {
    let app = TestApp::spawn_with(WebchatLimits {
        widget_messages_per_minute: 12,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;
    let other = widget(&app, "acme", &[], None).await;
    let mut tokens = Vec::new();
    for n in 1..=5 {
        tokens.push((n, token(&app, &site.key, from(n)).await));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..25 {
        let (n, token) = tokens[i % 5].clone();
        let (api, key) = (app.api.clone(), site.key.clone());
        tasks.spawn(async move {
            post(
                &api,
                &key,
                Some(&token),
                from(n),
                &json!({ "text": format!("m{i}") }),
            )
            .await
        });
    }
    let responses = tasks.join_all().await;

    assert_eq!(statuses(&responses), (12, 13));
    let elsewhere = token(&app, &other.key, from(50)).await;
    post(
        &app.api,
        &other.key,
        Some(&elsewhere),
        from(50),
        &json!({ "text": "hi" }),
    )
    .await
    .expect(202);
    app.take_published_jobs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenants_daily_reply_cap_holds_under_concurrency_across_its_widgets() {
    let app = TestApp::spawn().await;
    let shop = widget(&app, "acme", &[], Some(7)).await;
    let blog = widget(&app, "acme", &[], Some(7)).await;
    let unrelated = widget(&app, "globex", &[], Some(7)).await;
    let mut tokens = Vec::new();
    for n in 1..=4u8 {
        let key = if n % 2 == 0 { &shop.key } else { &blog.key };
        tokens.push((n, key.clone(), token(&app, key, from(n)).await));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (n, key, token) = tokens[i % 4].clone();
        let api = app.api.clone();
        tasks.spawn(async move {
            post(
                &api,
                &key,
                Some(&token),
                from(n),
                &json!({ "text": format!("m{i}") }),
            )
            .await
        });
    }
    let responses = tasks.join_all().await;

    assert_eq!(statuses(&responses), (7, 13));
    let refused = responses
        .iter()
        .find(|r| r.status == 429)
        .expect("a refusal");
    assert_rate_limited(refused);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("a day")),
        "{}",
        refused.body
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE user_id = 'acme'",
            &[]
        )
        .await,
        7
    );
    let other = token(&app, &unrelated.key, from(60)).await;
    post(
        &app.api,
        &unrelated.key,
        Some(&other),
        from(60),
        &json!({ "text": "hi" }),
    )
    .await
    .expect(202);
    app.take_published_jobs();
}

#[tokio::test]
async fn polling_is_limited_per_visitor_and_per_address() {
    let app = TestApp::spawn_with(WebchatLimits {
        visitor_polls_per_minute: 3,
        ip_polls_per_minute: 5,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;
    let first = token(&app, &site.key, from(1)).await;
    let second = token(&app, &site.key, from(1)).await;
    let elsewhere = token(&app, &site.key, from(2)).await;

    for _ in 0..3 {
        poll(&app.api, &site.key, Some(&first), from(1), "")
            .await
            .expect(200);
    }
    assert_rate_limited(&poll(&app.api, &site.key, Some(&first), from(1), "").await);
    poll(&app.api, &site.key, Some(&second), from(1), "")
        .await
        .expect(200);
    poll(&app.api, &site.key, Some(&second), from(1), "")
        .await
        .expect(200);

    // The address has polled 5 times (a refused poll does not count against it).
    assert_rate_limited(&poll(&app.api, &site.key, Some(&second), from(1), "").await);
    poll(&app.api, &site.key, Some(&elsewhere), from(2), "")
        .await
        .expect(200);
}

async fn with_origin(
    app: &TestApp,
    method: Method,
    uri: &str,
    origin: &str,
    preflight: bool,
) -> TestResponse {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ORIGIN, origin);
    if preflight {
        builder = builder
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            );
    }
    let mut request = builder.body(Body::empty()).expect("request");
    request.extensions_mut().insert(ConnectInfo(from(1)));
    app.api.send_request(request).await
}

fn allow_origin(response: &TestResponse) -> Option<&str> {
    response
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cors_allows_exactly_the_channels_origins_and_answers_preflights() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &["https://shop.example"], None).await;
    let sessions = format!("/webchat/{}/sessions", site.key);
    let messages = format!("/webchat/{}/messages", site.key);

    let allowed = with_origin(&app, Method::POST, &sessions, "https://shop.example", false).await;
    let denied = with_origin(&app, Method::POST, &sessions, "https://evil.example", false).await;
    let preflight = with_origin(
        &app,
        Method::OPTIONS,
        &messages,
        "https://shop.example",
        true,
    )
    .await;
    let denied_preflight = with_origin(
        &app,
        Method::OPTIONS,
        &messages,
        "https://evil.example",
        true,
    )
    .await;

    allowed.expect(201);
    assert_eq!(allow_origin(&allowed), Some("https://shop.example"));
    assert!(
        allowed
            .headers
            .get(header::ACCESS_CONTROL_EXPOSE_HEADERS)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("retry-after"))
    );
    assert_eq!(allow_origin(&denied), None);
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(allow_origin(&preflight), Some("https://shop.example"));
    let allowed_headers = preflight
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert_eq!(allow_origin(&denied_preflight), None);
}

#[tokio::test]
async fn a_star_allows_any_origin_no_origins_allow_none_and_an_unknown_key_only_its_404() {
    let app = TestApp::spawn().await;
    let open = widget(&app, "acme", &["*"], None).await;
    let closed = widget(&app, "acme", &[], None).await;

    let any = with_origin(
        &app,
        Method::POST,
        &format!("/webchat/{}/sessions", open.key),
        "https://anywhere.example",
        false,
    )
    .await;
    let none = with_origin(
        &app,
        Method::OPTIONS,
        &format!("/webchat/{}/messages", closed.key),
        "https://shop.example",
        true,
    )
    .await;
    let unknown = with_origin(
        &app,
        Method::OPTIONS,
        "/webchat/wk_nope/messages",
        "https://shop.example",
        true,
    )
    .await;

    assert_eq!(allow_origin(&any), Some("https://anywhere.example"));
    assert_eq!(allow_origin(&none), None);
    // An unknown key has nothing to protect: any page may read its 404, so a widget whose
    // channel was deleted can say so (the request itself still fails).
    assert_eq!(allow_origin(&unknown), Some("https://shop.example"));
    let post = with_origin(
        &app,
        Method::POST,
        "/webchat/wk_nope/sessions",
        "https://shop.example",
        false,
    )
    .await;
    post.expect_problem(404, None);
    assert_eq!(allow_origin(&post), Some("https://shop.example"));
}

/// A function URL event (payload format 2.0) as Lambda delivers it, abridged.
fn function_url_event(path: &str, source_ip: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "host": "abc.lambda-url.eu-west-1.on.aws" },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abc",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "Mozilla/5.0"
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "isBase64Encoded": false
    })
    .to_string()
}

#[tokio::test]
async fn on_lambda_the_function_urls_source_ip_is_the_client_address() {
    let app = TestApp::spawn_with(WebchatLimits {
        ip_sessions_per_minute: 1,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;
    let lambda = TestClient::new(webhook::lambda_router(app.state()));
    let path = format!("/webchat/{}/sessions", site.key);
    let event = |ip: &str| {
        lambda_http::request::from_str(&function_url_event(&path, ip))
            .expect("a function URL event")
            .map(|body| Body::from(body.to_vec()))
    };

    lambda.send_request(event("198.51.100.4")).await.expect(201);
    assert_rate_limited(&lambda.send_request(event("198.51.100.4")).await);
    lambda.send_request(event("198.51.100.5")).await.expect(201);

    assert_eq!(
        app.count(
            "SELECT count(*) FROM webchat_sessions WHERE client_ip IN ('198.51.100.4', '198.51.100.5')",
            &[]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn refused_posts_use_up_nothing_so_a_raised_daily_cap_applies_at_once() {
    let app = TestApp::spawn().await;
    let shop = widget(&app, "acme", &[], Some(2)).await;
    let mut tokens = Vec::new();
    for n in 1..=3u8 {
        tokens.push((n, token(&app, &shop.key, from(n)).await));
    }
    let mut accepted_and_refused = (0, 0);
    for (n, token) in &tokens {
        for i in 0..3 {
            let response = post(
                &app.api,
                &shop.key,
                Some(token),
                from(*n),
                &json!({ "text": format!("m{n}-{i}") }),
            )
            .await;
            match response.status.as_u16() {
                202 => accepted_and_refused.0 += 1,
                429 => accepted_and_refused.1 += 1,
                other => panic!("unexpected {other}: {}", response.body),
            }
        }
    }
    assert_eq!(accepted_and_refused, (2, 7));

    // The tenant raises the cap: the seven refusals did not fill the day's window.
    app.db
        .client()
        .await
        .execute(
            "UPDATE phone_numbers SET webchat_daily_reply_cap = 3 WHERE id = $1",
            &[&shop.channel],
        )
        .await
        .expect("raise the cap");
    let (n, token) = &tokens[2];
    post(
        &app.api,
        &shop.key,
        Some(token),
        from(*n),
        &json!({ "text": "after the raise" }),
    )
    .await
    .expect(202);
    assert_eq!(
        app.count(
            "SELECT count::bigint FROM rate_limit_counters WHERE scope = 'tenant_daily_replies' AND key = 'acme'",
            &[]
        )
        .await,
        3
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_for_visitors_as_for_tenants() {
    let app = TestApp::spawn().await;
    let shop = widget(&app, "acme", &[], None).await;
    let visitor = token(&app, &shop.key, from(1)).await;
    let mut lower = request(
        Method::POST,
        &format!("/webchat/{}/messages", shop.key),
        Some(from(1)),
        None,
        Some(&json!({ "text": "hello" })),
    );
    lower.headers_mut().insert(
        header::AUTHORIZATION,
        format!("bearer {visitor}").parse().expect("header"),
    );

    app.api.send_request(lower).await.expect(202);
    app.take_published_jobs();
}

/// A GET of a public widget route with optional `Origin` / `Referer` headers.
async fn load(
    app: &TestApp,
    uri: &str,
    origin: Option<&str>,
    referer: Option<&str>,
) -> TestResponse {
    let mut builder = Request::builder().method(Method::GET).uri(uri);
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    if let Some(referer) = referer {
        builder = builder.header(header::REFERER, referer);
    }
    let mut request = builder.body(Body::empty()).expect("request");
    request.extensions_mut().insert(ConnectInfo(from(7)));
    app.api.send_request(request).await
}

fn header_of(response: &TestResponse, name: header::HeaderName) -> &str {
    response
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_config_gives_the_channels_look_and_its_agents_name() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &["https://shop.example"], None).await;
    let client = app.db.client().await;
    client
        .execute(
            "UPDATE phone_numbers SET webchat_title = 'Acme <b>Shop</b>', webchat_greeting = 'Hi 👋',
                 webchat_color = '#7a3e12', display_name = 'Main site' WHERE id = $1",
            &[&site.channel],
        )
        .await
        .expect("appearance");
    client
        .execute(
            "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
             VALUES ('agt_01jd0000000000000000000000', 'acme', $1, 'pmpt_x', 'Ava')",
            &[&site.channel],
        )
        .await
        .expect("agent");

    let response = load(
        &app,
        &format!("/webchat/{}/config", site.key),
        Some("https://shop.example"),
        None,
    )
    .await;

    let body = response.expect(200);
    assert_eq!(
        body["title"], "Acme <b>Shop</b>",
        "text is data, not markup"
    );
    assert_eq!(body["greeting"], "Hi 👋");
    assert_eq!(body["color"], "#7a3e12");
    assert_eq!(body["agent_name"], "Ava");
    assert_eq!(body["max_message_chars"], 2000);
    assert_eq!(body["script_version"], shared::webchat_widget::version());
    assert_eq!(
        header_of(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://shop.example"
    );
}

#[tokio::test]
async fn a_config_without_settings_falls_back_to_the_display_name_then_to_defaults() {
    let app = TestApp::spawn().await;
    let named = widget(&app, "acme", &[], None).await;
    let bare = widget(&app, "acme", &[], None).await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE phone_numbers SET display_name = 'Main site' WHERE id = $1",
            &[&named.channel],
        )
        .await
        .expect("display name");

    let named = load(&app, &format!("/webchat/{}/config", named.key), None, None).await;
    let bare = load(&app, &format!("/webchat/{}/config", bare.key), None, None).await;

    assert_eq!(named.expect(200)["title"], "Main site");
    let bare = bare.expect(200);
    assert_eq!(bare["title"], "Chat with us");
    assert_eq!(bare["greeting"], Value::Null);
    assert_eq!(bare["color"], "#1f6feb");
    assert_eq!(bare["agent_name"], Value::Null);
}

#[tokio::test]
async fn the_widget_is_refused_to_pages_of_sites_that_are_not_allowed() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &["https://shop.example"], None).await;
    let script = format!("/webchat/{}/widget.js", site.key);
    let config = format!("/webchat/{}/config", site.key);

    for uri in [&script, &config] {
        let by_origin = load(&app, uri, Some("https://evil.example"), None).await;
        let by_referer = load(&app, uri, None, Some("https://evil.example/landing?x=1")).await;
        let allowed_referer = load(&app, uri, None, Some("https://shop.example/products/1")).await;
        let no_page = load(&app, uri, None, None).await;

        let problem = by_origin.expect_problem(403, None);
        assert!(
            problem["detail"].as_str().is_some_and(
                |d| d.contains("https://evil.example") && d.contains("allowed_origins")
            ),
            "{problem}"
        );
        assert!(
            by_origin
                .headers
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        by_referer.expect_problem(403, None);
        assert_eq!(allowed_referer.status, 200, "{uri}");
        assert_eq!(
            no_page.status, 200,
            "{uri}: a request naming no page is served"
        );
    }
}

#[tokio::test]
async fn the_script_is_javascript_cached_for_a_year_only_at_its_current_version() {
    let app = TestApp::spawn().await;
    let site = widget(&app, "acme", &["*"], None).await;
    let version = shared::webchat_widget::version();

    let current = load(
        &app,
        &format!("/webchat/{}/widget.js?v={version}", site.key),
        Some("https://any.example"),
        None,
    )
    .await;
    let outdated = load(
        &app,
        &format!("/webchat/{}/widget.js?v=000000000000", site.key),
        None,
        None,
    )
    .await;
    let unversioned = load(
        &app,
        &format!("/webchat/{}/widget.js", site.key),
        None,
        None,
    )
    .await;

    assert_eq!(current.status, 200);
    assert_eq!(
        header_of(&current, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header_of(&current, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header_of(&current, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff"
    );
    assert_eq!(
        header_of(&current, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://any.example"
    );
    assert_eq!(current.body.as_str(), Some(shared::webchat_widget::SCRIPT));
    for other in [&outdated, &unversioned] {
        assert_eq!(other.status, 200);
        assert_eq!(
            header_of(other, header::CACHE_CONTROL),
            "public, max-age=300"
        );
    }
}

#[tokio::test]
async fn unknown_widgets_have_no_script_or_config() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;

    for uri in [
        "/webchat/wk_nope/widget.js".to_owned(),
        "/webchat/wk_nope/config".to_owned(),
        format!("/webchat/{WA_CHANNEL}/widget.js"),
        format!("/webchat/{WA_CHANNEL}/config"),
    ] {
        load(&app, &uri, None, None).await.expect_problem(404, None);
    }
}

#[tokio::test]
async fn loading_the_widget_counts_against_the_addresss_poll_limit() {
    let app = TestApp::spawn_with(WebchatLimits {
        ip_polls_per_minute: 2,
        ..WebchatLimits::default()
    })
    .await;
    let site = widget(&app, "acme", &[], None).await;

    let script = load(
        &app,
        &format!("/webchat/{}/widget.js", site.key),
        None,
        None,
    )
    .await;
    let config = load(&app, &format!("/webchat/{}/config", site.key), None, None).await;
    let third = load(&app, &format!("/webchat/{}/config", site.key), None, None).await;

    assert_eq!(script.status, 200);
    assert_eq!(config.status, 200);
    assert_rate_limited(&third);
}
