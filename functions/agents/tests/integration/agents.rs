use serde_json::json;

use crate::helpers::{TestApp, str_field};

#[tokio::test]
async fn linking_an_agent_to_a_channel_creates_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id");

    let response = app.create_agent(&tenant, channel_id, "  Ava ").await;

    let agent = response.expect(201);
    assert!(str_field(agent, "agent_id").starts_with("agt_"));
    assert_eq!(agent["phone_number_id"], channel_id);
    assert_eq!(agent["prompt_id"], "pmpt_sales_v1");
    assert_eq!(agent["name"], "Ava");
    assert_eq!(agent["archive"], json!(null));
    let stored = app
        .count(
            "SELECT count(*) FROM agents WHERE agent_id = $1 AND user_id = $2 AND phone_number_id = $3",
            &[&str_field(agent, "agent_id"), &tenant.sub, &channel_id],
        )
        .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_channel_that_already_has_an_agent_is_a_409_without_replace_existing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id");
    let first = app
        .create_agent(&tenant, channel_id, "Ava")
        .await
        .expect(201)
        .clone();

    let second = app.create_agent(&tenant, channel_id, "Bob").await;

    let detail = second.expect_problem(409, None)["detail"].clone();
    assert!(
        detail
            .as_str()
            .is_some_and(|d| d.contains("replace_existing")),
        "{detail}"
    );
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 1);
    let kept = app
        .get_as(
            &tenant,
            &format!("/agents/{}", str_field(&first, "agent_id")),
        )
        .await;
    assert_eq!(kept.expect(200)["name"], "Ava");
}

#[tokio::test]
async fn invalid_agents_are_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let response = app
        .post_as(
            &tenant,
            "/agents",
            &json!({ "phone_number_id": "123", "prompt_id": "prompt-1", "name": " " }),
        )
        .await;

    response.expect_problem(422, Some("phone_number_id"));
    let fields = response.error_fields();
    assert_eq!(fields, ["phone_number_id", "prompt_id", "name"]);
    for (body, field) in [
        (
            json!({ "prompt_id": "pmpt_1", "name": "A" }),
            "phone_number_id",
        ),
        (
            json!({ "phone_number_id": "pn_x", "prompt_id": "pmpt_1", "name": "A", "replace_existing": "yes" }),
            "replace_existing",
        ),
        (
            json!({ "phone_number_id": "pn_x", "prompt_id": "pmpt_1", "name": "A", "model": "gpt" }),
            "model",
        ),
    ] {
        app.post_as(&tenant, "/agents", &body)
            .await
            .expect_problem(422, Some(field));
    }
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 0);
}

#[tokio::test]
async fn a_channel_id_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let response = app
        .create_agent(&tenant, "pn_01jd0000000000000000000000", "Ava")
        .await;

    response.expect_problem(404, None);
}

#[tokio::test]
async fn agents_can_be_listed_filtered_read_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let one = app.create_whatsapp_channel(&tenant, "101").await;
    let two = app.create_whatsapp_channel(&tenant, "102").await;
    let ava = app
        .create_agent(&tenant, str_field(&one, "id"), "Ava")
        .await
        .expect(201)
        .clone();
    let bob = app
        .create_agent(&tenant, str_field(&two, "id"), "Bob")
        .await
        .expect(201)
        .clone();
    let ava_route = format!("/agents/{}", str_field(&ava, "agent_id"));

    let all = app.api.get("/agents", &token).await;
    let filtered = app
        .api
        .get(
            &format!("/agents?phone_number_id={}", str_field(&two, "id")),
            &token,
        )
        .await;
    let bad_filter = app.api.get("/agents?phone_number_id=nope", &token).await;
    let read = app.api.get(&ava_route, &token).await;
    let changed = app
        .api
        .patch(
            &ava_route,
            &token,
            &json!({ "name": "Ava 2", "prompt_id": "pmpt_sales_v2" }),
        )
        .await;
    let bad_change = app
        .api
        .patch(&ava_route, &token, &json!({ "prompt_id": "v3" }))
        .await;

    let names: Vec<_> = all.expect(200)["items"]
        .as_array()
        .map(|i| i.iter().map(|a| a["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![json!("Bob"), json!("Ava")]);
    assert_eq!(
        filtered.expect(200)["items"][0]["agent_id"],
        bob["agent_id"]
    );
    assert_eq!(filtered.body["items"].as_array().map(Vec::len), Some(1));
    bad_filter.expect_problem(422, Some("phone_number_id"));
    assert_eq!(read.expect(200)["name"], "Ava");
    assert_eq!(changed.expect(200)["prompt_id"], "pmpt_sales_v2");
    bad_change.expect_problem(422, Some("prompt_id"));
    assert_eq!(
        app.api.get(&ava_route, &token).await.expect(200)["prompt_id"],
        "pmpt_sales_v2"
    );

    app.api.delete(&ava_route, &token).await.expect(204);
    app.api
        .get(&ava_route, &token)
        .await
        .expect_problem(404, None);
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 1);
}

#[tokio::test]
async fn an_agent_with_conversations_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "101").await;
    let agent = app
        .create_agent(&tenant, str_field(&channel, "id"), "Ava")
        .await
        .expect(201)
        .clone();
    let agent_id = str_field(&agent, "agent_id");
    app.seed_conversations(agent_id, 1, 0).await;

    let response = app.delete_as(&tenant, &format!("/agents/{agent_id}")).await;

    let detail = response.expect_problem(409, None)["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| d.contains("relink")),
        "{detail}"
    );
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 1);
}

#[tokio::test]
async fn another_tenants_agent_is_404_on_every_route_and_stays_untouched() {
    let app = TestApp::spawn().await;
    let alice = app.tenant("alice").await;
    let mallory = app.tenant("mallory").await;
    let channel = app.create_whatsapp_channel(&alice, "101").await;
    let agent = app
        .create_agent(&alice, str_field(&channel, "id"), "Ava")
        .await
        .expect(201)
        .clone();
    let route = format!("/agents/{}", str_field(&agent, "agent_id"));
    let token = mallory.token();

    app.api.get(&route, &token).await.expect_problem(404, None);
    app.api
        .patch(&route, &token, &json!({ "name": "pwned" }))
        .await
        .expect_problem(404, None);
    app.api
        .delete(&route, &token)
        .await
        .expect_problem(404, None);
    let listed = app.api.get("/agents", &token).await;

    assert_eq!(listed.expect(200)["items"], json!([]));
    assert_eq!(app.get_as(&alice, &route).await.expect(200)["name"], "Ava");
}

#[tokio::test]
async fn a_nul_in_a_body_a_filter_or_an_id_is_a_422_naming_it_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();

    app.api
        .post(
            "/agents",
            &token,
            &json!({ "phone_number_id": "pn_x", "prompt_id": "pmpt_1", "name": "A\u{0}" }),
        )
        .await
        .expect_problem(422, Some("name"));
    app.api
        .get("/agents?phone_number_id=pn_%00", &token)
        .await
        .expect_problem(422, Some("phone_number_id"));
    app.api
        .patch("/agents/agt_%00", &token, &json!({ "name": "B" }))
        .await
        .expect_problem(422, Some("id"));
    app.api
        .get("/phone-numbers/%00/archives", &token)
        .await
        .expect_problem(422, Some("id"));

    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 0);
}
