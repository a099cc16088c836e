use serde_json::json;

use crate::helpers::{TestApp, str_field};

#[tokio::test]
async fn relinking_moves_the_conversations_to_the_new_agent_and_records_an_archive() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id");
    let old = app
        .create_agent(&tenant, channel_id, "Ava")
        .await
        .expect(201)
        .clone();
    let old_id = str_field(&old, "agent_id");
    app.seed_conversations(old_id, 2, 1).await;

    let response = app
        .post_as(&tenant, "/agents", &json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_sales_v2", "name": "Bob", "replace_existing": true }))
        .await;

    let created = response.expect(201);
    let new_id = str_field(created, "agent_id");
    let archive = &created["archive"];
    assert!(str_field(archive, "archive_id").starts_with("arc_"));
    assert_eq!(archive["old_agent_id"], old_id);
    assert_eq!(archive["new_agent_id"], new_id);
    assert_eq!(archive["phone_number_id"], channel_id);
    assert_eq!(archive["archived_conversations_count"], 2);
    assert_eq!(archive["reason"], "Agent relinked");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM agents WHERE agent_id = $1",
            &[&old_id]
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM agents WHERE phone_number_id = $1",
            &[&channel_id]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversations WHERE agent_id = $1",
            &[&new_id]
        )
        .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM conversations WHERE is_active", &[])
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM messages", &[]).await,
        3,
        "history is kept"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM conversation_archives", &[])
            .await,
        1
    );

    let archives = app
        .get_as(&tenant, &format!("/phone-numbers/{channel_id}/archives"))
        .await;
    let archives = archives.expect(200);
    assert_eq!(archives["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(archives["items"][0]["archive_id"], archive["archive_id"]);
    let channel_now = app
        .get_as(&tenant, &format!("/phone-numbers/{channel_id}"))
        .await;
    assert_eq!(channel_now.expect(200)["agent_id"], new_id);
}

#[tokio::test]
async fn replace_existing_on_a_free_channel_just_links() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;

    let response = app
        .post_as(&tenant, "/agents", &json!({ "phone_number_id": channel["id"], "prompt_id": "pmpt_a", "name": "Ava", "replace_existing": true }))
        .await;

    assert_eq!(response.expect(201)["archive"], json!(null));
    assert_eq!(
        app.count("SELECT count(*) FROM conversation_archives", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_chain_of_relinks_keeps_every_archive_and_the_latest_agent_deletable_history() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id");
    let relink = |name: &'static str| {
        let body = json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_a", "name": name, "replace_existing": true });
        let token = tenant.token();
        let api = app.api.clone();
        async move { api.post("/agents", &token, &body).await }
    };
    let first = relink("A").await.expect(201).clone();
    app.seed_conversations(str_field(&first, "agent_id"), 1, 0)
        .await;

    relink("B").await.expect(201);
    let last = relink("C").await.expect(201).clone();

    assert_eq!(
        app.count("SELECT count(*) FROM conversation_archives", &[])
            .await,
        2
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversations WHERE agent_id = $1",
            &[&str_field(&last, "agent_id")]
        )
        .await,
        1
    );
    let page = app
        .get_as(
            &tenant,
            &format!("/phone-numbers/{channel_id}/archives?limit=1"),
        )
        .await;
    let page = page.expect(200);
    assert_eq!(
        page["items"][0]["new_agent_id"], last["agent_id"],
        "newest first"
    );
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn concurrent_relinks_of_one_channel_leave_exactly_one_agent() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id").to_owned();
    let original = app
        .create_agent(&tenant, &channel_id, "Original")
        .await
        .expect(201)
        .clone();
    app.seed_conversations(str_field(&original, "agent_id"), 3, 0)
        .await;
    let token = tenant.token();

    let responses = futures::future::join_all((0..8).map(|i| {
        let body = json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_a", "name": format!("Agent {i}"), "replace_existing": true });
        let api = app.api.clone();
        let token = token.clone();
        async move { api.post("/agents", &token, &body).await }
    }))
    .await;

    for response in &responses {
        response.expect(201);
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM agents WHERE phone_number_id = $1",
            &[&channel_id]
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM conversation_archives", &[])
            .await,
        8
    );
    // The archives form one chain: each relink replaced the agent the previous one created.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversation_archives a
             WHERE a.old_agent_id <> $1
               AND NOT EXISTS (SELECT 1 FROM conversation_archives b WHERE b.new_agent_id = a.old_agent_id)",
            &[&str_field(&original, "agent_id")],
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM conversations", &[]).await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversations c JOIN agents a ON a.agent_id = c.agent_id",
            &[]
        )
        .await,
        3,
        "every conversation belongs to the surviving agent"
    );
}

#[tokio::test]
async fn concurrent_first_links_of_one_channel_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let channel = app.create_whatsapp_channel(&tenant, "100").await;
    let channel_id = str_field(&channel, "id").to_owned();

    let responses = futures::future::join_all((0..6).map(|i| {
        app.create_agent(
            &tenant,
            &channel_id,
            if i % 2 == 0 { "Even" } else { "Odd" },
        )
    }))
    .await;

    let created = responses.iter().filter(|r| r.status == 201).count();
    let conflicts = responses.iter().filter(|r| r.status == 409).count();
    assert_eq!((created, conflicts), (1, 5));
    assert_eq!(app.count("SELECT count(*) FROM agents", &[]).await, 1);
}
