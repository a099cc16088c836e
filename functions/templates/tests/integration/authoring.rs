use serde_json::json;

use crate::helpers::{TestApp, image_template, text_template};

#[tokio::test]
async fn an_authored_template_is_a_draft_stored_with_its_variables_and_buttons() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;

    let created = app
        .create(&image_template(&channel, &app.media_url("sample.jpg")))
        .await;

    assert_eq!(created["status"], "DRAFT");
    assert_eq!(created["parameter_format"], "positional");
    assert_eq!(created["header"]["type"], "IMAGE");
    assert_eq!(created["variables"].as_array().map(Vec::len), Some(3));
    assert_eq!(created["variables"][0]["dashboard_mapping"], "contact.name");
    assert_eq!(created["buttons"][2]["button_type"], "URL");
    assert_eq!(created["buttons"][2]["button_index"], 2);
    assert!(
        created["buttons"][0]["button_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("tbtn_"))
    );
    let id = created["template_id"].as_str().expect("id");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM template_variables WHERE template_id = $1",
            &[&id]
        )
        .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM template_buttons WHERE template_id = $1",
            &[&id]
        )
        .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM templates WHERE template_id = $1 AND components ? 'header' AND components ? 'body' AND components ? 'buttons' AND header_media_url IS NOT NULL",
            &[&id]
        )
        .await,
        1
    );
    let read = app
        .api
        .get(&format!("/templates/{id}"), &app.tenant.token())
        .await;
    assert_eq!(read.expect(200)["buttons"], created["buttons"]);
}

#[tokio::test]
async fn an_invalid_template_is_a_422_naming_each_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let mut body = image_template(&channel, &app.media_url("sample.jpg"));
    body["buttons"][2]["button_url"] = json!("https://shop.example.com/{{1}}/track");
    body["name"] = json!("Summer Sale");

    let response = app.api.post("/templates", &app.tenant.token(), &body).await;

    response.expect_problem(422, Some("buttons[2].button_url"));
    response.expect_problem(422, Some("name"));
    assert_eq!(app.count("SELECT count(*) FROM templates", &[]).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM template_variables", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_name_may_repeat_in_another_language_but_not_in_the_same_one() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    app.create(&text_template(&channel, "order_shipped", "en_US"))
        .await;
    app.create(&text_template(&channel, "order_shipped", "pt_BR"))
        .await;

    let again = app
        .api
        .post(
            "/templates",
            &app.tenant.token(),
            &text_template(&channel, "order_shipped", "en_US"),
        )
        .await;

    again.expect_problem(422, Some("name"));
    assert_eq!(app.count("SELECT count(*) FROM templates", &[]).await, 2);
}

#[tokio::test]
async fn only_whatsapp_channels_own_templates() {
    let app = TestApp::spawn().await;
    let instagram = app.channel(&app.tenant.clone(), "instagram", None).await;
    let rival = app.other_tenant().await;
    let foreign = app.channel(&rival, "whatsapp", Some("999")).await;

    for channel in [instagram, foreign, "pn_nope".to_owned()] {
        let response = app
            .api
            .post(
                "/templates",
                &app.tenant.token(),
                &text_template(&channel, "hello", "en"),
            )
            .await;
        response.expect_problem(422, Some("phone_number_id"));
    }
    assert_eq!(app.count("SELECT count(*) FROM templates", &[]).await, 0);
}

#[tokio::test]
async fn another_tenants_template_is_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&text_template(&channel, "private_one", "en"))
        .await;
    let id = created["template_id"].as_str().expect("id");
    let rival = app.other_tenant().await;
    let token = rival.token();

    let routes = [
        ("GET", format!("/templates/{id}"), None),
        (
            "PATCH",
            format!("/templates/{id}"),
            Some(json!({ "name": "stolen" })),
        ),
        ("DELETE", format!("/templates/{id}"), None),
        ("POST", format!("/templates/{id}/submit"), None),
        ("POST", format!("/templates/{id}/sync"), None),
        (
            "POST",
            format!("/templates/{id}/send"),
            Some(json!({ "to": "+14155552671", "variable_values": { "1": "x" } })),
        ),
        ("GET", format!("/templates/{id}/stats"), None),
    ];
    for (method, path, body) in routes {
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .api
            .send(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert_eq!(
            response.status.as_u16(),
            404,
            "{method} {path}: {}",
            response.body
        );
    }
    let listed = app.api.get("/templates", &token).await;
    assert_eq!(listed.expect(200)["items"], json!([]));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM templates WHERE name = 'private_one'",
            &[]
        )
        .await,
        1
    );
    assert!(
        app.meta_requests("POST", "message_templates")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_draft_is_edited_as_a_whole_and_a_submitted_template_is_refused_with_409() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app.create(&text_template(&channel, "edit_me", "en")).await;
    let id = created["template_id"].as_str().expect("id");
    let token = app.tenant.token();

    let edited = app
        .api
        .patch(
            &format!("/templates/{id}"),
            &token,
            &json!({ "body": { "text": "Your parcel {{1}} ships today by courier." }, "buttons": [{ "button_type": "QUICK_REPLY", "button_text": "Thanks" }] }),
        )
        .await;
    let bad = app
        .api
        .patch(
            &format!("/templates/{id}"),
            &token,
            &json!({ "footer": { "text": "{{1}}" } }),
        )
        .await;
    app.api
        .post(&format!("/templates/{id}/submit"), &token, &json!({}))
        .await
        .expect(200);
    let refused = app
        .api
        .patch(
            &format!("/templates/{id}"),
            &token,
            &json!({ "name": "other" }),
        )
        .await;

    let edited = edited.expect(200);
    assert_eq!(
        edited["body"]["text"],
        "Your parcel {{1}} ships today by courier."
    );
    assert_eq!(edited["buttons"][0]["button_text"], "Thanks");
    bad.expect_problem(422, Some("footer.text"));
    let problem = refused.expect_problem(409, None);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PENDING")),
        "{problem}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM templates WHERE name = 'edit_me'", &[])
            .await,
        1
    );
}

#[tokio::test]
async fn the_list_filters_by_status_channel_and_category_and_pages() {
    let app = TestApp::spawn().await;
    let one = app.whatsapp().await;
    let two = app.whatsapp().await;
    app.create(&text_template(&one, "first_one", "en")).await;
    app.create(&text_template(&one, "second_one", "en")).await;
    let third = app.create(&text_template(&two, "third_one", "en")).await;
    let token = app.tenant.token();
    let third_id = third["template_id"].as_str().expect("id");
    app.api
        .post(&format!("/templates/{third_id}/submit"), &token, &json!({}))
        .await
        .expect(200);

    let by_channel = app
        .api
        .get(&format!("/templates?phone_number_id={one}"), &token)
        .await;
    let pending = app.api.get("/templates?status=PENDING", &token).await;
    let marketing = app.api.get("/templates?category=MARKETING", &token).await;
    let page = app.api.get("/templates?limit=2", &token).await;
    let bad = app.api.get("/templates?status=LIVE", &token).await;

    assert_eq!(
        by_channel.expect(200)["items"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(pending.expect(200)["items"][0]["name"], "third_one");
    assert_eq!(marketing.expect(200)["items"], json!([]));
    let page = page.expect(200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert!(page["next_cursor"].is_string());
    bad.expect_problem(422, Some("status"));
}

#[tokio::test]
async fn deleting_a_submitted_template_deletes_it_at_meta_by_id_and_name() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app
        .create(&text_template(&channel, "to_delete", "en"))
        .await;
    let id = created["template_id"].as_str().expect("id");
    let token = app.tenant.token();
    let submitted = app
        .api
        .post(&format!("/templates/{id}/submit"), &token, &json!({}))
        .await;
    let meta_id = submitted.expect(200)["meta_template_id"]
        .as_str()
        .expect("meta id")
        .to_owned();

    let deleted = app.api.delete(&format!("/templates/{id}"), &token).await;

    deleted.expect(204);
    let requests = app.meta_requests("DELETE", "/message_templates").await;
    assert_eq!(requests.len(), 1);
    let query: Vec<(String, String)> = requests[0].url.query_pairs().into_owned().collect();
    assert!(query.contains(&("hsm_id".to_owned(), meta_id)));
    assert!(query.contains(&("name".to_owned(), "to_delete".to_owned())));
    assert_eq!(app.count("SELECT count(*) FROM templates", &[]).await, 0);
}

#[tokio::test]
async fn a_template_used_by_an_unfinished_campaign_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let channel = app.whatsapp().await;
    let created = app.create(&text_template(&channel, "in_use", "en")).await;
    let id = created["template_id"].as_str().expect("id");
    let client = app.db.client().await;
    client
        .execute(
            "INSERT INTO campaigns (campaign_id, user_id, template_id, phone_number_id, name, status)
             VALUES ('cmp_1', $1, $2, $3, 'Spring', 'RUNNING')",
            &[&app.tenant.sub, &id, &channel],
        )
        .await
        .expect("campaign");

    let refused = app
        .api
        .delete(&format!("/templates/{id}"), &app.tenant.token())
        .await;

    refused.expect_problem(409, None);
    assert_eq!(app.count("SELECT count(*) FROM templates", &[]).await, 1);
}
