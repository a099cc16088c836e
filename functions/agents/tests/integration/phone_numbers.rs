use serde_json::{Value, json};
use shared::crypto::SecretKind;

use crate::helpers::{TestApp, str_field};

#[tokio::test]
async fn creating_a_whatsapp_channel_stores_it_with_the_token_sealed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let channel = app
        .create_whatsapp_channel(&tenant, "106540352242922")
        .await;

    let id = str_field(&channel, "id");
    assert!(id.starts_with("pn_"), "{channel}");
    assert_eq!(channel["platform"], "whatsapp");
    assert_eq!(channel["meta_phone_number_id"], "106540352242922");
    assert_eq!(channel["waba_id"], "10654035224292");
    assert_eq!(channel["display_name"], "Main line");
    assert_eq!(channel["has_access_token"], true);
    assert_eq!(channel["agent_id"], json!(null));
    assert!(
        channel.get("access_token").is_none(),
        "tokens are never returned: {channel}"
    );

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT access_token, user_id FROM phone_numbers WHERE id = $1",
            &[&id],
        )
        .await
        .expect("row");
    let stored: String = row.get("access_token");
    assert!(
        !stored.contains("EAAG-plaintext-token"),
        "the token is sealed at rest"
    );
    assert_eq!(row.get::<_, String>("user_id"), tenant.sub);
    let opened = testkit::test_sealing_key()
        .open(SecretKind::ChannelAccessToken, &stored)
        .expect("opens with the sealing key");
    assert_eq!(opened, "EAAG-plaintext-token");
}

#[tokio::test]
async fn instagram_and_webchat_channels_have_their_own_rules() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();

    let instagram = app
        .api
        .post(
            "/phone-numbers",
            &token,
            &json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "IGQV-token" }),
        )
        .await;
    let webchat = app
        .api
        .post("/phone-numbers", &token, &json!({ "platform": "webchat" }))
        .await;

    let instagram = instagram.expect(201);
    assert_eq!(instagram["waba_id"], json!(null));
    assert_eq!(instagram["instagram_api"], "instagram_login");
    let page = app
        .api
        .post(
            "/phone-numbers",
            &token,
            &json!({ "platform": "instagram", "meta_phone_number_id": "17841400000001", "access_token": "EAAP", "instagram_api": "facebook_page" }),
        )
        .await;
    assert_eq!(page.expect(201)["instagram_api"], "facebook_page");
    let webchat = webchat.expect(201);
    assert_eq!(webchat["has_access_token"], false);
    assert_eq!(webchat["widget_key"], webchat["meta_phone_number_id"]);
    assert_eq!(webchat["allowed_origins"], json!([]));
    assert_eq!(webchat["daily_ai_reply_cap"], 500);
    assert_eq!(instagram["widget_key"], json!(null));
    assert_eq!(instagram["daily_ai_reply_cap"], json!(null));
}

#[tokio::test]
async fn widget_keys_are_generated_by_the_server_unique_and_unguessable() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let mut keys = std::collections::HashSet::new();

    for _ in 0..20 {
        let created = app
            .api
            .post("/phone-numbers", &token, &json!({ "platform": "webchat" }))
            .await;
        let key = str_field(created.expect(201), "widget_key").to_owned();
        let random = key.strip_prefix("wk_").expect("wk_ prefix");
        // 32 base64url characters: 192 random bits.
        assert_eq!(random.len(), 32, "{key}");
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{key}"
        );
        keys.insert(key);
    }
    let chosen = app
        .api
        .post(
            "/phone-numbers",
            &token,
            &json!({ "platform": "webchat", "meta_phone_number_id": "shop-widget" }),
        )
        .await;

    assert_eq!(keys.len(), 20, "every key is new");
    chosen.expect_problem(422, Some("meta_phone_number_id"));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM phone_numbers WHERE meta_phone_number_id = 'shop-widget'",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_widgets_origins_and_daily_cap_are_validated_and_set_on_create_and_patch() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();

    let created = app
        .api
        .post(
            "/phone-numbers",
            &token,
            &json!({
                "platform": "webchat",
                "allowed_origins": ["https://Shop.Example:443", "http://localhost:3000"],
                "daily_ai_reply_cap": 50,
            }),
        )
        .await;
    let created = created.expect(201).clone();
    assert_eq!(
        created["allowed_origins"],
        json!(["https://shop.example", "http://localhost:3000"])
    );
    assert_eq!(created["daily_ai_reply_cap"], 50);
    let route = format!("/phone-numbers/{}", str_field(&created, "id"));

    let patched = app
        .api
        .patch(
            &route,
            &token,
            &json!({ "allowed_origins": ["*"], "daily_ai_reply_cap": 9 }),
        )
        .await;
    let patched = patched.expect(200);
    assert_eq!(patched["allowed_origins"], json!(["*"]));
    assert_eq!(patched["daily_ai_reply_cap"], 9);
    let stored = app
        .db
        .client()
        .await
        .query_one(
            "SELECT webchat_allowed_origins, webchat_daily_reply_cap FROM phone_numbers WHERE id = $1",
            &[&str_field(&created, "id")],
        )
        .await
        .expect("row");
    assert_eq!(stored.get::<_, Vec<String>>(0), vec!["*".to_owned()]);
    assert_eq!(stored.get::<_, i32>(1), 9);

    let bad = [
        (
            json!({ "allowed_origins": ["ftp://shop.example"] }),
            "allowed_origins[0]",
        ),
        (
            json!({ "allowed_origins": ["https://a.example", "https://shop.example/path"] }),
            "allowed_origins[1]",
        ),
        (
            json!({ "allowed_origins": ["*", "https://a.example"] }),
            "allowed_origins",
        ),
        (
            json!({ "allowed_origins": "https://a.example" }),
            "allowed_origins",
        ),
        (json!({ "daily_ai_reply_cap": 0 }), "daily_ai_reply_cap"),
        (
            json!({ "daily_ai_reply_cap": 1_000_001 }),
            "daily_ai_reply_cap",
        ),
        (
            json!({ "daily_ai_reply_cap": "many" }),
            "daily_ai_reply_cap",
        ),
    ];
    for (body, field) in bad {
        app.api
            .patch(&route, &token, &body)
            .await
            .expect_problem(422, Some(field));
    }
    let whatsapp = app
        .create_whatsapp_channel(&tenant, "106540352242922")
        .await;
    let whatsapp_route = format!("/phone-numbers/{}", str_field(&whatsapp, "id"));
    for (body, field) in [
        (json!({ "allowed_origins": ["*"] }), "allowed_origins"),
        (json!({ "daily_ai_reply_cap": 5 }), "daily_ai_reply_cap"),
    ] {
        app.api
            .patch(&whatsapp_route, &token, &body)
            .await
            .expect_problem(422, Some(field));
    }
    app.api
        .post(
            "/phone-numbers",
            &token,
            &json!({ "platform": "instagram", "meta_phone_number_id": "1784", "access_token": "t", "allowed_origins": ["*"] }),
        )
        .await
        .expect_problem(422, Some("allowed_origins"));
    let unchanged = app.api.get(&route, &token).await;
    assert_eq!(unchanged.expect(200)["daily_ai_reply_cap"], 9);
}

#[tokio::test]
async fn invalid_channels_are_refused_naming_the_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let valid = json!({
        "platform": "whatsapp", "meta_phone_number_id": "1065", "access_token": "EAAG", "waba_id": "1022",
    });
    let with = |field: &str, value: serde_json::Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().map(|o| o.remove(field));
        body
    };
    let cases = [
        (with("platform", json!("telegram")), "platform"),
        (
            with("meta_phone_number_id", json!("not-numeric")),
            "meta_phone_number_id",
        ),
        (
            with("meta_phone_number_id", json!("")),
            "meta_phone_number_id",
        ),
        (without("access_token"), "access_token"),
        (
            with("access_token", json!("has spaces in it")),
            "access_token",
        ),
        (without("waba_id"), "waba_id"),
        (with("waba_id", json!("waba-abc")), "waba_id"),
        (with("display_name", json!("x".repeat(256))), "display_name"),
        (with("surprise", json!(true)), "surprise"),
        (
            json!({ "platform": "webchat", "access_token": "t" }),
            "access_token",
        ),
        (without("meta_phone_number_id"), "meta_phone_number_id"),
        (
            json!({ "platform": "instagram", "meta_phone_number_id": "1", "access_token": "t", "waba_id": "1" }),
            "waba_id",
        ),
        (without("platform"), "platform"),
        (
            with("instagram_api", json!("facebook_page")),
            "instagram_api",
        ),
        (
            json!({ "platform": "instagram", "meta_phone_number_id": "1", "access_token": "t", "instagram_api": "myspace" }),
            "instagram_api",
        ),
    ];
    for (body, field) in cases {
        app.api
            .post("/phone-numbers", &token, &body)
            .await
            .expect_problem(422, Some(field));
    }

    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn all_field_errors_are_reported_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let response = app
        .post_as(
            &tenant,
            "/phone-numbers",
            &json!({ "platform": "whatsapp", "meta_phone_number_id": "abc", "display_name": "" }),
        )
        .await;

    response.expect_problem(422, Some("meta_phone_number_id"));
    let fields = response.error_fields();
    assert_eq!(
        fields,
        [
            "meta_phone_number_id",
            "access_token",
            "waba_id",
            "display_name"
        ]
    );
}

#[tokio::test]
async fn a_meta_id_already_connected_by_anyone_is_a_409() {
    let app = TestApp::spawn().await;
    let alice = app.tenant("alice").await;
    let bob = app.tenant("bob").await;
    app.create_whatsapp_channel(&alice, "555000").await;
    let again = json!({
        "platform": "whatsapp", "meta_phone_number_id": "555000", "access_token": "EAAG", "waba_id": "55500",
    });

    let same_tenant = app.post_as(&alice, "/phone-numbers", &again).await;
    let other_tenant = app.post_as(&bob, "/phone-numbers", &again).await;
    let other_platform = app
        .post_as(&bob, "/phone-numbers", &json!({ "platform": "instagram", "meta_phone_number_id": "555000", "access_token": "IG" }))
        .await;

    let detail = same_tenant.expect_problem(409, None)["detail"].clone();
    assert!(
        detail
            .as_str()
            .is_some_and(|d| d.contains("already connected")),
        "{detail}"
    );
    other_tenant.expect_problem(409, None);
    other_platform.expect(201);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM phone_numbers WHERE meta_phone_number_id = '555000'",
            &[]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn lists_are_paginated_newest_first_and_filterable() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let mut created = Vec::new();
    for meta_id in ["101", "102", "103"] {
        created.push(app.create_whatsapp_channel(&tenant, meta_id).await["id"].clone());
    }
    app.api
        .post("/phone-numbers", &token, &json!({ "platform": "webchat" }))
        .await
        .expect(201);
    let other = app.tenant("other").await;
    app.create_whatsapp_channel(&other, "99").await;

    let first = app
        .api
        .get("/phone-numbers?platform=whatsapp&limit=2", &token)
        .await;
    let first = first.expect(200);
    let cursor = str_field(first, "next_cursor");
    let second = app
        .api
        .get(
            &format!("/phone-numbers?platform=whatsapp&limit=2&cursor={cursor}"),
            &token,
        )
        .await;
    let second = second.expect(200);
    let all = app.api.get("/phone-numbers", &token).await;

    let ids = |page: &serde_json::Value| {
        page["items"]
            .as_array()
            .map(|i| i.iter().map(|c| c["id"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(ids(first), vec![created[2].clone(), created[1].clone()]);
    assert_eq!(ids(second), vec![created[0].clone()]);
    assert_eq!(second["next_cursor"], json!(null));
    assert_eq!(
        all.expect(200)["items"].as_array().map(Vec::len),
        Some(4),
        "another tenant's channel is not listed"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let cases = [
        ("/phone-numbers?limit=0", "limit"),
        ("/phone-numbers?limit=201", "limit"),
        ("/phone-numbers?limit=ten", "limit"),
        ("/phone-numbers?platform=fax", "platform"),
        ("/phone-numbers?sort=asc", "sort"),
    ];
    for (route, field) in cases {
        app.api
            .get(route, &token)
            .await
            .expect_problem(422, Some(field));
    }
}

#[tokio::test]
async fn a_cursor_of_another_list_or_an_altered_one_is_a_400_naming_cursor() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    for meta_id in ["1001", "1002"] {
        let channel = app.create_whatsapp_channel(&tenant, meta_id).await;
        app.create_agent(&tenant, str_field(&channel, "id"), "Ava")
            .await
            .expect(201);
    }
    let channels = app.api.get("/phone-numbers?limit=1", &token).await;
    let channel_cursor = str_field(channels.expect(200), "next_cursor").to_owned();
    let agents = app.api.get("/agents?limit=1", &token).await;
    let agent_cursor = str_field(agents.expect(200), "next_cursor").to_owned();
    // Each cursor pages its own list.
    app.api
        .get(
            &format!("/phone-numbers?limit=1&cursor={channel_cursor}"),
            &token,
        )
        .await
        .expect(200);
    app.api
        .get(&format!("/agents?limit=1&cursor={agent_cursor}"), &token)
        .await
        .expect(200);

    let (version_and_payload, tag) = channel_cursor.rsplit_once('.').expect("signed");
    let mut flipped = tag.to_owned();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    let cases = [
        format!("/agents?cursor={channel_cursor}"),
        format!("/phone-numbers?cursor={agent_cursor}"),
        format!("/phone-numbers?cursor={version_and_payload}.{flipped}"),
        // The unsigned cursors this API issued before they were signed.
        "/phone-numbers?cursor=djE6cG5fMDFqZDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA".to_owned(),
        "/phone-numbers?cursor=%%%".to_owned(),
        "/phone-numbers?cursor=bm90LWEtY3Vyc29y".to_owned(),
    ];
    for route in cases {
        let problem = app.api.get(&route, &token).await;
        problem.expect_problem(400, Some("cursor"));
    }
    let problem = app
        .api
        .get(&format!("/agents?cursor={channel_cursor}"), &token)
        .await;
    assert!(
        problem.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("another list")),
        "{}",
        problem.body
    );
}

#[tokio::test]
async fn a_channel_can_be_read_renamed_rotated_and_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let channel = app.create_whatsapp_channel(&tenant, "777").await;
    let route = format!("/phone-numbers/{}", str_field(&channel, "id"));
    let sealed_before: String = app
        .db
        .client()
        .await
        .query_one("SELECT access_token FROM phone_numbers", &[])
        .await
        .expect("row")
        .get(0);

    let read = app.api.get(&route, &token).await;
    let renamed = app
        .api
        .patch(
            &route,
            &token,
            &json!({ "display_name": "Sales", "access_token": "EAAG-rotated" }),
        )
        .await;
    let cleared = app
        .api
        .patch(&route, &token, &json!({ "display_name": null }))
        .await;

    assert_eq!(read.expect(200)["id"], channel["id"]);
    assert_eq!(renamed.expect(200)["display_name"], "Sales");
    assert_eq!(cleared.expect(200)["display_name"], json!(null));
    let sealed_after: String = app
        .db
        .client()
        .await
        .query_one("SELECT access_token FROM phone_numbers", &[])
        .await
        .expect("row")
        .get(0);
    assert_ne!(sealed_before, sealed_after);
    assert_eq!(
        testkit::test_sealing_key()
            .open(SecretKind::ChannelAccessToken, &sealed_after)
            .ok()
            .as_deref(),
        Some("EAAG-rotated")
    );

    app.api.delete(&route, &token).await.expect(204);
    app.api.get(&route, &token).await.expect_problem(404, None);
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn patches_that_do_not_fit_the_platform_or_the_rules_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let webchat = app
        .api
        .post("/phone-numbers", &token, &json!({ "platform": "webchat" }))
        .await
        .expect(201)
        .clone();
    let route = format!("/phone-numbers/{}", str_field(&webchat, "id"));
    let cases = [
        (json!({ "waba_id": "123" }), "waba_id"),
        (json!({ "access_token": "t" }), "access_token"),
        (json!({ "platform": "whatsapp" }), "platform"),
        (
            json!({ "meta_phone_number_id": "x" }),
            "meta_phone_number_id",
        ),
        (json!({ "display_name": "" }), "display_name"),
    ];
    for (body, field) in cases {
        app.api
            .patch(&route, &token, &body)
            .await
            .expect_problem(422, Some(field));
    }
    let unchanged = app.api.get(&route, &token).await;
    assert_eq!(unchanged.expect(200)["updated_at"], webchat["updated_at"]);
}

#[tokio::test]
async fn a_channel_in_use_by_an_agent_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "888").await;
    let channel_id = str_field(&channel, "id");
    app.create_agent(&tenant, channel_id, "Ava")
        .await
        .expect(201);

    let response = app
        .delete_as(&tenant, &format!("/phone-numbers/{channel_id}"))
        .await;

    let detail = response.expect_problem(409, None)["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| d.contains("1 agent")),
        "{detail}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        1
    );
    let listed = app
        .get_as(&tenant, &format!("/phone-numbers/{channel_id}"))
        .await;
    assert!(
        listed.expect(200)["agent_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("agt_"))
    );
}

#[tokio::test]
async fn another_tenants_channel_is_404_on_every_route_and_stays_untouched() {
    let app = TestApp::spawn().await;
    let alice = app.tenant("alice").await;
    let mallory = app.tenant("mallory").await;
    let channel = app.create_whatsapp_channel(&alice, "4242").await;
    let route = format!("/phone-numbers/{}", str_field(&channel, "id"));
    let token = mallory.token();

    app.api.get(&route, &token).await.expect_problem(404, None);
    app.api
        .patch(&route, &token, &json!({ "display_name": "pwned" }))
        .await
        .expect_problem(404, None);
    app.api
        .delete(&route, &token)
        .await
        .expect_problem(404, None);
    app.api
        .get(&format!("{route}/archives"), &token)
        .await
        .expect_problem(404, None);
    app.create_agent(&mallory, str_field(&channel, "id"), "Spy")
        .await
        .expect_problem(404, None);

    let still = app.get_as(&alice, &route).await;
    assert_eq!(still.expect(200)["display_name"], "Main line");
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 0);
}

#[tokio::test]
async fn malformed_ids_in_paths_are_404() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    for route in [
        "/phone-numbers/123",
        "/phone-numbers/agt_01jd0000000000000000000000",
        "/agents/pn_x",
    ] {
        app.get_as(&tenant, route).await.expect_problem(404, None);
    }
}

#[tokio::test]
async fn a_widgets_title_greeting_and_colour_are_set_cleared_and_validated() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();

    let created = app
        .api
        .post(
            "/phone-numbers",
            &token,
            &json!({
                "platform": "webchat",
                "widget_title": "  Acme shop ",
                "widget_greeting": "Hi 👋 how can we help?",
                "widget_color": "#7A3E12",
            }),
        )
        .await;
    let created = created.expect(201).clone();
    assert_eq!(created["widget_title"], "Acme shop");
    assert_eq!(created["widget_greeting"], "Hi 👋 how can we help?");
    assert_eq!(created["widget_color"], "#7a3e12");
    let key = str_field(&created, "widget_key");
    assert_eq!(
        created["widget_script_path"],
        shared::webchat_widget::script_path(key)
    );
    let route = format!("/phone-numbers/{}", str_field(&created, "id"));

    let patched = app
        .api
        .patch(
            &route,
            &token,
            &json!({ "widget_title": null, "widget_color": "#00ff00" }),
        )
        .await;
    let patched = patched.expect(200);
    assert_eq!(patched["widget_title"], Value::Null);
    assert_eq!(
        patched["widget_greeting"], "Hi 👋 how can we help?",
        "untouched"
    );
    assert_eq!(patched["widget_color"], "#00ff00");
    let stored = app
        .db
        .client()
        .await
        .query_one(
            "SELECT webchat_title, webchat_color FROM phone_numbers WHERE id = $1",
            &[&str_field(&created, "id")],
        )
        .await
        .expect("row");
    assert_eq!(stored.get::<_, Option<String>>(0), None);
    assert_eq!(
        stored.get::<_, Option<String>>(1).as_deref(),
        Some("#00ff00")
    );

    for (body, field) in [
        (json!({ "widget_color": "red" }), "widget_color"),
        (json!({ "widget_color": "#12345" }), "widget_color"),
        (json!({ "widget_title": "" }), "widget_title"),
        (json!({ "widget_title": "x".repeat(61) }), "widget_title"),
        (
            json!({ "widget_greeting": "y".repeat(501) }),
            "widget_greeting",
        ),
        (
            json!({ "widget_greeting": "line\u{7}bell" }),
            "widget_greeting",
        ),
    ] {
        app.api
            .patch(&route, &token, &body)
            .await
            .expect_problem(422, Some(field));
    }
    let whatsapp = app
        .create_whatsapp_channel(&tenant, "106540352242922")
        .await;
    assert_eq!(whatsapp["widget_script_path"], Value::Null);
    let whatsapp_route = format!("/phone-numbers/{}", str_field(&whatsapp, "id"));
    for field in ["widget_title", "widget_greeting", "widget_color"] {
        app.api
            .patch(&whatsapp_route, &token, &json!({ field: "#000000" }))
            .await
            .expect_problem(422, Some(field));
    }
    let unchanged = app.api.get(&route, &token).await;
    assert_eq!(unchanged.expect(200)["widget_color"], "#00ff00");
}
