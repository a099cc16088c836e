//! devstack serves the functions' routes exactly as the functions do, and runs the whole
//! inbound flow end to end through its simulators.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{TestClient, TestDb, TestTenant};

async fn stack(db: &TestDb) -> devstack::Stack {
    devstack::Stack::new(
        testkit::api_state(db),
        reqwest::Client::new(),
        "http://127.0.0.1:9",
        devstack::Providers::simulated("http://127.0.0.1:9"),
    )
}

#[tokio::test]
async fn devstack_serves_the_dashboard_routes_with_the_same_behaviour() {
    let db = TestDb::new().await;
    let api = TestClient::new(stack(&db).await.app());
    let tenant = TestTenant::new("dev");
    let token = tenant.token();

    api.get("/me", &token).await.expect(200);
    let channel = api
        .post("/phone-numbers", &token, &json!({ "platform": "webchat" }))
        .await
        .expect(201)
        .clone();
    api.post(
        "/agents",
        &token,
        &json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_a", "name": "Ava" }),
    )
    .await
    .expect(201);
    api.get("/conversations", &token).await.expect(200);
    api.get("/nope", &token).await.expect_problem(404, None);
    api.send(http::Method::GET, "/agents", None, None)
        .await
        .expect_problem(401, None);
    let huge = json!({ "company_name": "x".repeat(300 * 1024) });
    api.patch("/me", &token, &huge)
        .await
        .expect_problem(413, None);
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_requires_credentials() {
    let db = TestDb::new().await;
    let api = TestClient::new(stack(&db).await.app());
    let document = devstack::openapi();
    let mut operations = 0;
    for (path, item) in &document.paths.paths {
        let concrete = path
            .replace("{id}", "pn_01jd0000000000000000000000")
            .replace("{widget_key}", "wk_unknown");
        for (method, operation) in [
            (http::Method::GET, &item.get),
            (http::Method::POST, &item.post),
            (http::Method::PATCH, &item.patch),
            (http::Method::DELETE, &item.delete),
            (http::Method::PUT, &item.put),
        ] {
            if operation.is_none() {
                continue;
            }
            operations += 1;
            // A route that exists answers 401 without credentials (403 for Meta's
            // subscription check without its token); a missing one 404/405. Opening a
            // webchat session, the widget's config and its script are public: an unknown
            // widget is simply not found.
            let public = ["/sessions", "/config", "/widget.js"];
            let expected = if public.iter().any(|end| path.ends_with(end)) {
                404
            } else if path == "/webhook" && method == http::Method::GET {
                403
            } else {
                401
            };
            api.send(method.clone(), &concrete, None, Some(&json!({})))
                .await
                .expect_problem(expected, None);
        }
    }
    assert_eq!(
        operations, 78,
        "documented operations (26 before the templates (9), contacts (16), extractions (4), \
         meetings (8), widget (2) and campaigns (13) APIs)"
    );
}

/// The whole inbound flow on a real port: a signed WhatsApp text posted to the webhook is
/// answered through the OpenAI and Meta simulators, and the simulated status webhooks move
/// the reply to `read`.
#[tokio::test]
async fn a_signed_whatsapp_text_is_answered_end_to_end_through_the_simulators() {
    let db = TestDb::new().await;
    let base_url = common::serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("e2e");
    let token = tenant.token();
    let api = common::Api {
        http: &http,
        base_url: &base_url,
        token: &token,
    };

    let (status, channel) = api.call(
        reqwest::Method::POST,
        "/phone-numbers",
        Some(json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242922", "access_token": "EAAG-dev", "waba_id": "10654035224292" })),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    let (status, _) = api.call(
        reqwest::Method::POST,
        "/agents",
        Some(json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_demo", "name": "Ava" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        common::grant_credits(&http, &base_url, &tenant.sub, 5).await,
        201
    );

    let body = devstack::sample_inbound(
        "106540352242922",
        "16505551234",
        "Sheena",
        "Do you ship to Lisbon?",
    )
    .to_string();
    assert_eq!(common::post_webhook(&http, &base_url, body).await, 200);

    let mut messages = Value::Null;
    for _ in 0..100 {
        let (_, conversations) = api.call(reqwest::Method::GET, "/conversations", None).await;
        if let Some(id) = conversations["items"][0]["conversation_id"].as_str() {
            let (_, found) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/conversations/{id}/messages"),
                    None,
                )
                .await;
            if found[1]["delivery_status"] == "read" {
                messages = found;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(messages[0]["text"], "Do you ship to Lisbon?", "{messages}");
    assert_eq!(
        messages[1]["text"],
        "Thanks for your message: Do you ship to Lisbon?"
    );
    assert_eq!(messages[1]["author"], "ai");
    assert_eq!(messages[1]["delivery_status"], "read");
    let sent: Value = http
        .get(format!("{base_url}/_sim/meta/requests"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    assert_eq!(sent.as_array().map(Vec::len), Some(1));
    assert_eq!(sent[0]["body"]["to"], "16505551234");
    // The simulator counted the reply; devstack keeps Meta's throughput cap but no pair rate.
    let sim = |path: &'static str| {
        let request = http.get(format!("{base_url}/_sim/meta/{path}"));
        async move {
            let response = request.send().await.expect("sim");
            response.json::<Value>().await.expect("json")
        }
    };
    let stats = sim("stats").await;
    assert_eq!(
        stats["numbers"]["106540352242922"]["recipients"],
        json!({ "16505551234": 1 })
    );
    let behaviour = sim("behaviour").await;
    assert_eq!(
        (&behaviour["default_mps"], &behaviour["pair_window_ms"]),
        (&json!(80), &json!(0))
    );
    let (_, me) = api.call(reqwest::Method::GET, "/me", None).await;
    assert_eq!(
        me["credits"],
        json!({ "remaining_credits": 4, "total_used": 1 })
    );
}

/// The website widget: a visitor opens a session, its message is answered, and the widget's
/// poll returns the reply, all from an allowed origin over a real socket.
#[tokio::test]
async fn a_webchat_visitor_is_answered_and_the_widget_polls_the_reply() {
    let db = TestDb::new().await;
    let base_url = common::serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("widget");
    let channel: Value = http
        .post(format!("{base_url}/phone-numbers"))
        .bearer_auth(tenant.token())
        .json(&json!({ "platform": "webchat", "allowed_origins": ["https://shop.example"] }))
        .send()
        .await
        .expect("channel")
        .json()
        .await
        .expect("json");
    let key = channel["widget_key"]
        .as_str()
        .expect("widget_key")
        .to_owned();
    http.post(format!("{base_url}/agents"))
        .bearer_auth(tenant.token())
        .json(&json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_demo", "name": "Ava" }))
        .send()
        .await
        .expect("agent");
    assert_eq!(
        common::grant_credits(&http, &base_url, &tenant.sub, 3).await,
        201
    );

    let session = http
        .post(format!("{base_url}/webchat/{key}/sessions"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("session");
    assert_eq!(session.status().as_u16(), 201);
    assert_eq!(
        session
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://shop.example")
    );
    let session: Value = session.json().await.expect("json");
    let visitor_token = session["visitor_token"].as_str().expect("token").to_owned();
    let accepted = http
        .post(format!("{base_url}/webchat/{key}/messages"))
        .bearer_auth(&visitor_token)
        .json(&json!({ "text": "Are you open on Sunday?" }))
        .send()
        .await
        .expect("post");
    assert_eq!(accepted.status().as_u16(), 202);
    let anonymous = http
        .get(format!("{base_url}/webchat/{key}/messages"))
        .send()
        .await
        .expect("poll");
    assert_eq!(anonymous.status().as_u16(), 401);

    let mut items = Value::Null;
    for _ in 0..50 {
        let polled: Value = http
            .get(format!("{base_url}/webchat/{key}/messages?after=0"))
            .bearer_auth(&visitor_token)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        if polled["items"].as_array().is_some_and(|i| i.len() == 2) {
            items = polled["items"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(items[0]["sender"], "visitor", "{items}");
    assert_eq!(items[1]["sender"], "agent");
    assert_eq!(
        items[1]["text"],
        "Thanks for your message: Are you open on Sunday?"
    );
    let after: Value = http
        .get(format!("{base_url}/webchat/{key}/messages?after=1"))
        .bearer_auth(&visitor_token)
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(after["items"].as_array().map(Vec::len), Some(1));
    let sims: Value = http
        .get(format!("{base_url}/_sim/meta/requests"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    assert_eq!(sims, json!([]), "webchat replies never go to Meta");
    // devstack passes the socket address: the session was counted under loopback.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM webchat_sessions WHERE client_ip = '127.0.0.1'",
            &[]
        )
        .await,
        1
    );
}

/// The Meta simulator answers the ownership checks like Graph: WABA `W` has the numbers `W0`
/// to `W9`, a token starting with `invalid` is error 190, and a connected WhatsApp number's
/// WABA is subscribed to the app's webhooks.
#[tokio::test]
async fn the_meta_simulator_confirms_only_numbers_of_the_waba_and_refuses_invalid_tokens() {
    let db = TestDb::new().await;
    let base_url = common::serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("owner");
    let connect = |body: Value| {
        let request = http
            .post(format!("{base_url}/phone-numbers"))
            .bearer_auth(tenant.token())
            .json(&body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let foreign = connect(json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242922", "access_token": "EAAG-dev", "waba_id": "20000000000000" })).await;
    let invalid = connect(json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242922", "access_token": "invalid-dev", "waba_id": "10654035224292" })).await;
    let instagram_invalid = connect(json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "invalid-ig" })).await;
    let subscriptions_before: Value = http
        .get(format!("{base_url}/_sim/meta/subscriptions"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    let owned = connect(json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242922", "access_token": "EAAG-dev", "waba_id": "10654035224292" })).await;
    let instagram = connect(json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "IGQV-dev" })).await;

    assert_eq!(foreign.0, 422, "{}", foreign.1);
    assert_eq!(foreign.1["errors"][0]["field"], "meta_phone_number_id");
    assert_eq!(invalid.0, 422, "{}", invalid.1);
    assert_eq!(invalid.1["errors"][0]["field"], "access_token");
    assert_eq!(instagram_invalid.1["errors"][0]["field"], "access_token");
    assert_eq!(subscriptions_before, json!([]));
    assert_eq!(owned.0, 201, "{}", owned.1);
    assert_eq!(instagram.0, 201, "{}", instagram.1);
    let subscriptions: Value = http
        .get(format!("{base_url}/_sim/meta/subscriptions"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    assert_eq!(subscriptions, json!(["10654035224292"]));
}

/// Lead scoring end to end: four customer messages through the webhook, the extraction
/// sweep asks for an extraction, the OpenAI simulator answers once invalid (told so) and
/// then validly, and the conversation is scored, its contact created and its events recorded.
#[tokio::test]
async fn a_conversation_is_scored_and_its_contact_created_end_to_end() {
    let db = TestDb::new().await;
    let base_url = common::serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("leads");
    let token = tenant.token();
    let channel: Value = http
        .post(format!("{base_url}/phone-numbers"))
        .bearer_auth(&token)
        .json(&json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242922", "access_token": "EAAG-dev", "waba_id": "10654035224292" }))
        .send()
        .await
        .expect("channel")
        .json()
        .await
        .expect("json");
    http.post(format!("{base_url}/agents"))
        .bearer_auth(&token)
        .json(&json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_demo", "name": "Ava" }))
        .send()
        .await
        .expect("agent");
    assert_eq!(
        common::grant_credits(&http, &base_url, &tenant.sub, 10).await,
        201
    );
    http.post(format!("{base_url}/_sim/openai/extraction/fail-next"))
        .send()
        .await
        .expect("fail next");

    for text in [
        "Hi, what is your pricing?",
        "I need it this week, budget approved.",
        "Mail me at sheena@acme.example",
        "Can we do a demo?",
    ] {
        let body =
            devstack::sample_inbound("106540352242922", "16505551234", "Sheena", text).to_string();
        assert_eq!(common::post_webhook(&http, &base_url, body).await, 200);
    }

    let mut extraction = Value::Null;
    for _ in 0..100 {
        let list: Value = http
            .get(format!("{base_url}/extractions"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        if let Some(first) = list["items"].get(0) {
            extraction = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(extraction["lead_status_tag"], "Hot", "{extraction}");
    assert_eq!(extraction["total_score"], 15);
    assert_eq!(extraction["email"], "sheena@acme.example");
    assert_eq!(extraction["company"], "Acme");
    assert_eq!(extraction["name"], "Sheena");
    assert!(extraction["message_count_at_extraction"].as_i64() >= Some(4));
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts WHERE user_id = $1 AND phone = '+16505551234'
               AND email = 'sheena@acme.example' AND source = 'EXTRACTION'",
            &[&tenant.sub],
        )
        .await,
        1
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM domain_events WHERE user_id = $1 AND event_type IN ('NEW_EXTRACTION', 'LEAD_HOT')",
            &[&tenant.sub],
        )
        .await,
        2
    );
}

/// The meetings walk-through of the README on a real port: connect Google through the
/// simulator's consent redirect, a customer asks to book a demo, and the meeting appears in
/// `GET /meetings` with its Meet link, confirmed to the customer.
#[tokio::test]
async fn a_customer_books_a_demo_through_the_simulators_after_google_is_connected() {
    let db = TestDb::new().await;
    let base_url = common::serve(&db).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let tenant = TestTenant::new("booker");
    let token = tenant.token();
    let api = common::Api {
        http: &http,
        base_url: &base_url,
        token: &token,
    };

    // Connect Google: the simulator's consent page redirects back with a code and the state.
    let (status, start) = api
        .call(
            reqwest::Method::GET,
            "/integrations/google/authorize-url",
            None,
        )
        .await;
    assert_eq!(status, 200, "{start}");
    let consent = http
        .get(start["url"].as_str().expect("url"))
        .send()
        .await
        .expect("consent");
    assert_eq!(consent.status().as_u16(), 303);
    let back = consent
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("redirect")
        .to_owned();
    let returned: Value = http
        .get(&back)
        .send()
        .await
        .expect("return")
        .json()
        .await
        .expect("json");
    assert_eq!(returned["state"], start["state"]);
    let (status, connected) = api
        .call(
            reqwest::Method::POST,
            "/integrations/google/callback",
            Some(json!({ "code": returned["code"], "state": returned["state"] })),
        )
        .await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(
        connected["google_email"],
        devstack::google_sim::SIM_GOOGLE_EMAIL
    );

    // A channel, an agent and credits.
    let (status, channel) = api.call(
        reqwest::Method::POST,
        "/phone-numbers",
        Some(json!({ "platform": "whatsapp", "meta_phone_number_id": "106540352242923", "access_token": "EAAG-dev", "waba_id": "10654035224292" })),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    api.call(
        reqwest::Method::POST,
        "/agents",
        Some(json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_demo", "name": "Ava" })),
    )
    .await;
    assert_eq!(
        common::grant_credits(&http, &base_url, &tenant.sub, 5).await,
        201
    );

    let body = devstack::sample_inbound(
        "106540352242923",
        "16505551234",
        "Sheena",
        "Can I book a demo at 2031-03-04T15:00:00+01:00? My email is sheena@customer.test",
    )
    .to_string();
    assert_eq!(common::post_webhook(&http, &base_url, body).await, 200);

    let mut meetings = Value::Null;
    for _ in 0..100 {
        let (_, found) = api.call(reqwest::Method::GET, "/meetings", None).await;
        if found["items"][0]["status"] == "scheduled" {
            meetings = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let meeting = &meetings["items"][0];
    assert_eq!(meeting["start"], "2031-03-04T14:00:00Z", "{meetings}");
    assert_eq!(meeting["customer_email"], "sheena@customer.test");
    let link = meeting["meet_link"].as_str().expect("a Meet link");
    assert!(link.starts_with("https://meet.google.com/"));
    let events: Value = http
        .get(format!("{base_url}/_sim/google/_sim/events"))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    // The customer got the confirmation with the link.
    let mut confirmed = false;
    for _ in 0..50 {
        let sent: Value = http
            .get(format!("{base_url}/_sim/meta/requests"))
            .send()
            .await
            .expect("sim")
            .json()
            .await
            .expect("json");
        if sent.as_array().into_iter().flatten().any(|r| {
            r["body"]["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .contains(link)
        }) {
            confirmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(confirmed, "the confirmation with the Meet link was sent");
}

#[tokio::test]
async fn the_webchat_demo_page_embeds_the_versioned_script_under_a_strict_policy() {
    let db = TestDb::new().await;
    let api = TestClient::new(stack(&db).await.app());
    let key = "wk_demoKey-_0123";

    let page = api
        .send(
            http::Method::GET,
            &format!("/webchat-demo/{key}?title=%3Cb%3EShop%3C%2Fb%3E&color=%23aa0000"),
            None,
            None,
        )
        .await;

    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap_or_default();
    let src = format!(
        "http://127.0.0.1:9{}",
        shared::webchat_widget::script_path(key)
    );
    assert!(
        html.contains(&format!(
            "<script src=\"{src}\" async crossorigin=\"anonymous\" data-title=\"&lt;b&gt;Shop&lt;/b&gt;\" data-color=\"#aa0000\"></script>"
        )),
        "{html}"
    );
    let csp = page
        .headers
        .get(http::header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("script-src http://127.0.0.1:9/webchat/;"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    api.send(http::Method::GET, "/webchat-demo/not-a-key", None, None)
        .await
        .expect_problem(404, None);
}
