//! Contacts CRUD, filters, tags and opt-out.

use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn a_contact_is_created_with_its_phone_in_e164_and_normalised_tags() {
    let app = TestApp::spawn().await;

    let created = app
        .create(json!({
            "phone": "+1 (415) 555-2671", "name": " Ana ", "email": "Ana@Example.COM",
            "company": "Acme", "tags": ["VIP", " lead ", "vip"]
        }))
        .await;

    assert_eq!(created["phone"], "+14155552671");
    assert_eq!(created["name"], "Ana");
    assert_eq!(created["email"], "Ana@example.com");
    assert_eq!(created["tags"], json!(["vip", "lead"]));
    assert_eq!(created["source"], "MANUAL");
    assert!(
        created["contact_id"]
            .as_str()
            .expect("id")
            .starts_with("ct_")
    );
    assert_eq!(app.tag_events().await, 2, "one TAG_ADDED per tag");
}

#[tokio::test]
async fn an_invalid_phone_and_email_are_422s_naming_both_fields_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let response = app
        .api
        .post(
            "/contacts",
            &app.token(),
            &json!({"phone": "12", "email": "not-an-email", "tags": ["a;b"]}),
        )
        .await;
    response.expect_problem(422, Some("phone"));
    assert_eq!(response.error_fields(), vec!["phone", "email", "tags[0]"]);
    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 0);

    // A national number needs the tenant's default region.
    let national = app
        .api
        .post(
            "/contacts",
            &app.token(),
            &json!({"phone": "06 12 34 56 78"}),
        )
        .await;
    let problem = national.expect_problem(422, Some("phone"));
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("country code")
    );
}

#[tokio::test]
async fn the_default_region_reads_national_numbers() {
    let app = TestApp::spawn().await;
    let token = app.token();
    app.api
        .send(
            http::Method::PUT,
            "/contacts/settings",
            Some(&token),
            Some(&json!({"default_phone_region": "fr"})),
        )
        .await
        .expect(200);
    let created = app.create(json!({"phone": "06 12 34 56 78"})).await;
    assert_eq!(created["phone"], "+33612345678");
    let settings = app.api.get("/contacts/settings", &token).await;
    assert_eq!(settings.expect(200)["default_phone_region"], "FR");
    app.api
        .send(
            http::Method::PUT,
            "/contacts/settings",
            Some(&token),
            Some(&json!({"default_phone_region": "XX"})),
        )
        .await
        .expect_problem(422, Some("default_phone_region"));
}

#[tokio::test]
async fn an_existing_phone_is_a_409_carrying_the_existing_contact_id() {
    let app = TestApp::spawn().await;
    let first = app.create(json!({"phone": "+14155552671"})).await;

    let again = app
        .api
        .post(
            "/contacts",
            &app.token(),
            &json!({"phone": "001 415 555 2671", "tags": ["x"]}),
        )
        .await;

    let problem = again.expect_problem(409, None);
    assert_eq!(problem["contact_id"], first["contact_id"]);
    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 1);
    assert_eq!(
        app.tag_events().await,
        0,
        "nothing recorded for the refused contact"
    );
}

#[tokio::test]
async fn the_list_filters_by_all_any_and_excluded_tags_search_source_and_opt_out() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app
        .create(json!({"phone": "+14155552671", "name": "Ana Lima", "tags": ["a", "b"]}))
        .await;
    let bob = app
        .create(json!({"phone": "+14155552672", "name": "Bob", "email": "bob@shop.example", "tags": ["a", "b", "c"]}))
        .await;
    let cy = app
        .create(json!({"phone": "+442079460958", "name": "Cy", "tags": ["b"]}))
        .await;
    let ids = |path: &str| {
        let api = app.api.clone();
        let token = token.clone();
        let path = path.to_owned();
        async move {
            let body = api.get(&path, &token).await.expect(200).clone();
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["contact_id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        }
    };
    let id = |c: &serde_json::Value| c["contact_id"].as_str().expect("id").to_owned();

    assert_eq!(
        ids("/contacts?tag=a&tag=b&exclude_tag=c").await,
        vec![id(&ana)]
    );
    assert_eq!(ids("/contacts?any_tag=c&any_tag=zzz").await, vec![id(&bob)]);
    assert_eq!(
        ids("/contacts?tag=B").await,
        vec![id(&cy), id(&bob), id(&ana)]
    );
    assert_eq!(ids("/contacts?search=lima").await, vec![id(&ana)]);
    assert_eq!(ids("/contacts?search=SHOP.example").await, vec![id(&bob)]);
    assert_eq!(ids("/contacts?search=%2B44%2020").await, vec![id(&cy)]);
    assert_eq!(
        ids("/contacts?search=%25").await,
        Vec::<String>::new(),
        "wildcards are literal"
    );
    assert_eq!(ids("/contacts?source=IMPORT").await, Vec::<String>::new());

    app.api
        .post(
            &format!("/contacts/{}/opt-out", id(&bob)),
            &token,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ids("/contacts?opted_out=true").await, vec![id(&bob)]);

    let first = app.api.get("/contacts?limit=2", &token).await;
    let cursor = first.expect(200)["next_cursor"]
        .as_str()
        .expect("more")
        .to_owned();
    assert_eq!(
        ids(&format!("/contacts?limit=2&cursor={cursor}")).await,
        vec![id(&ana)]
    );

    app.api
        .get("/contacts?tag=a&colour=red", &token)
        .await
        .expect_problem(422, Some("colour"));
}

#[tokio::test]
async fn the_contact_shows_its_latest_lead_status_and_score() {
    let app = TestApp::spawn().await;
    let contact = app.create(json!({"phone": "+14155552671"})).await;
    let id = contact["contact_id"].as_str().expect("id");
    let client = app.db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
               VALUES ('pn_1', '{sub}', 'whatsapp', '1', 'x', '1');
             INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
               VALUES ('agt_1', '{sub}', 'pn_1', 'pmpt_a', 'Ava');
             INSERT INTO conversations (conversation_id, agent_id, customer_phone)
               VALUES ('conv_1', 'agt_1', '+14155552671');
             WITH e AS (
               INSERT INTO extractions (conversation_id, user_id, customer_phone, total_score, lead_status_tag)
               VALUES ('conv_1', '{sub}', '+14155552671', 13, 'Hot') RETURNING extraction_id)
             UPDATE contacts SET extraction_id = (SELECT extraction_id FROM e) WHERE contact_id = '{id}';",
            sub = app.tenant.sub
        ))
        .await
        .expect("seed");

    let read = app.api.get(&format!("/contacts/{id}"), &app.token()).await;
    let body = read.expect(200);
    assert_eq!(body["lead"]["lead_status_tag"], "Hot");
    assert_eq!(body["lead"]["total_score"], 13);

    let fresh = app.create(json!({"phone": "+14155552672"})).await;
    let read = app
        .api
        .get(
            &format!("/contacts/{}", fresh["contact_id"].as_str().expect("id")),
            &app.token(),
        )
        .await;
    assert_eq!(read.expect(200)["lead"], serde_json::Value::Null);
}

#[tokio::test]
async fn patch_changes_and_clears_fields_and_refuses_another_contacts_phone() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app
        .create(json!({"phone": "+14155552671", "name": "Ana", "company": "Acme"}))
        .await;
    let bob = app.create(json!({"phone": "+14155552672"})).await;
    let path = format!("/contacts/{}", ana["contact_id"].as_str().expect("id"));

    let patched = app
        .api
        .patch(
            &path,
            &token,
            &json!({"name": "Ana B", "company": null, "email": "ana@example.com"}),
        )
        .await;
    let body = patched.expect(200);
    assert_eq!(body["name"], "Ana B");
    assert_eq!(body["company"], serde_json::Value::Null);
    assert_eq!(body["email"], "ana@example.com");

    let taken = app
        .api
        .patch(&path, &token, &json!({"phone": "+1 415 555 2672"}))
        .await;
    assert_eq!(
        taken.expect_problem(409, None)["contact_id"],
        bob["contact_id"]
    );
    app.api
        .patch(&path, &token, &json!({"email": "nope"}))
        .await
        .expect_problem(422, Some("email"));
    app.api
        .patch(&path, &token, &json!({"tags": ["x"]}))
        .await
        .expect_problem(422, Some("tags"));
}

#[tokio::test]
async fn delete_deactivates_and_hard_delete_erases_personal_data_saying_what_it_kept() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app
        .create(json!({"phone": "+14155552671", "name": "Ana", "email": "ana@example.com", "tags": ["vip"]}))
        .await;
    let path = format!("/contacts/{}", ana["contact_id"].as_str().expect("id"));

    let soft = app.api.delete(&path, &token).await;
    assert_eq!(soft.expect(200)["outcome"], "deactivated");
    let listed = app.api.get("/contacts", &token).await;
    assert_eq!(listed.expect(200)["items"], serde_json::json!([]));
    let inactive = app.api.get("/contacts?is_active=false", &token).await;
    assert_eq!(inactive.expect(200)["items"][0]["name"], "Ana");

    let hard = app.api.delete(&format!("{path}?hard=true"), &token).await;
    let body = hard.expect(200);
    assert_eq!(body["outcome"], "erased");
    assert!(!body["kept"].as_array().expect("kept").is_empty());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM contacts WHERE phone IS NULL AND name IS NULL AND email IS NULL
             AND tags = '{}' AND erased_at IS NOT NULL AND NOT is_active"
        )
        .await,
        1
    );
    // The phone is free again, and an erased contact cannot be changed.
    app.create(json!({"phone": "+14155552671"})).await;
    app.api
        .patch(&path, &token, &json!({"name": "Back"}))
        .await
        .expect_problem(404, None);
}

#[tokio::test]
async fn tag_added_fires_once_per_contact_and_new_tag() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app
        .create(json!({"phone": "+14155552671", "tags": ["vip"]}))
        .await;
    let path = format!("/contacts/{}/tags", ana["contact_id"].as_str().expect("id"));

    let first = app
        .api
        .post(&path, &token, &json!({"tags": ["VIP", "lead"]}))
        .await;
    assert_eq!(first.expect(200)["added"], json!(["lead"]));
    let again = app
        .api
        .post(&path, &token, &json!({"tags": ["lead"]}))
        .await;
    assert_eq!(again.expect(200)["added"], json!([]));
    assert_eq!(app.tag_events().await, 2, "vip at creation, lead once");

    // Concurrent adds of one new tag record it once.
    let hot = json!({"tags": ["hot"]});
    let adds = (0..6).map(|_| app.api.post(&path, &token, &hot));
    for response in futures::future::join_all(adds).await {
        response.expect(200);
    }
    assert_eq!(app.tag_events().await, 3);

    let removed = app.api.delete(&format!("{path}/LEAD"), &token).await;
    assert_eq!(removed.expect(200)["tags"], json!(["vip", "hot"]));
    let readded = app
        .api
        .post(&path, &token, &json!({"tags": ["lead"]}))
        .await;
    assert_eq!(readded.expect(200)["added"], json!(["lead"]));
    assert_eq!(
        app.tag_events().await,
        4,
        "removed and added again is a new change"
    );

    app.api
        .post(&path, &token, &json!({"tags": ["x".repeat(51)]}))
        .await
        .expect_problem(422, Some("tags[0]"));
}

#[tokio::test]
async fn bulk_tags_by_ids_or_filter_add_and_remove_and_tags_lists_counts() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let a = app
        .create(json!({"phone": "+14155552671", "tags": ["x"]}))
        .await;
    let b = app
        .create(json!({"phone": "+14155552672", "tags": ["x", "old"]}))
        .await;
    app.create(json!({"phone": "+14155552673", "tags": ["y"]}))
        .await;
    let before = app.tag_events().await;

    let by_ids = app
        .api
        .post(
            "/contacts/tags",
            &token,
            &json!({"contact_ids": [a["contact_id"], b["contact_id"], "ct_nope"], "add": ["promo"], "remove": ["old"]}),
        )
        .await;
    assert_eq!(by_ids.expect(200)["matched"], 2);
    let by_filter = app
        .api
        .post(
            "/contacts/tags",
            &token,
            &json!({"filter": {"tag": ["promo"]}, "add": ["promo", "q4"]}),
        )
        .await;
    let body = by_filter.expect(200);
    assert_eq!(
        (
            body["matched"].clone(),
            body["updated"].clone(),
            body["tags_added"].clone()
        ),
        (json!(2), json!(2), json!(2))
    );
    let nothing = app
        .api
        .post(
            "/contacts/tags",
            &token,
            &json!({"filter": {"tag": ["promo"]}, "add": ["q4"]}),
        )
        .await;
    assert_eq!(nothing.expect(200)["updated"], 0);
    assert_eq!(app.tag_events().await - before, 4, "promo ×2 and q4 ×2");

    let tags = app.api.get("/tags", &token).await;
    assert_eq!(
        tags.expect(200)["items"],
        json!([
            {"tag": "promo", "contacts": 2}, {"tag": "q4", "contacts": 2},
            {"tag": "x", "contacts": 2}, {"tag": "y", "contacts": 1}
        ])
    );
    app.api
        .post("/contacts/tags", &token, &json!({"add": ["z"]}))
        .await
        .expect_problem(422, Some("contact_ids"));
    app.api
        .post(
            "/contacts/tags",
            &token,
            &json!({"filter": {"tag": ["promo"]}, "add": ["z", "Q4"], "remove": ["q4"]}),
        )
        .await
        .expect_problem(422, Some("remove"));
    for formula in ["=1+1", "+x", "-y", "@z", "\u{202E}"] {
        app.api
            .post(
                "/contacts/tags",
                &token,
                &json!({"filter": {"tag": ["promo"]}, "add": [formula]}),
            )
            .await
            .expect_problem(422, Some("add[0]"));
    }
}

#[tokio::test]
async fn opt_out_and_opt_in_set_the_state_the_stop_keyword_sets() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let ana = app.create(json!({"phone": "+14155552671"})).await;
    let id = ana["contact_id"].as_str().expect("id");

    let out = app
        .api
        .post(&format!("/contacts/{id}/opt-out"), &token, &json!({}))
        .await;
    let body = out.expect(200).clone();
    assert_eq!(body["opted_out"], true);
    assert!(body["opted_out_at"].is_string());
    let again = app
        .api
        .post(&format!("/contacts/{id}/opt-out"), &token, &json!({}))
        .await;
    assert_eq!(
        again.expect(200)["opted_out_at"],
        body["opted_out_at"],
        "the first time is kept"
    );

    // The worker's check reads the same state.
    let user = shared::domain::UserId::parse(&app.tenant.sub).expect("user");
    let phone = shared::domain::PhoneE164::parse("+14155552671").expect("phone");
    let client = app.db.client().await;
    let customer = shared::domain::CustomerIdentity::Phone(phone);
    assert!(
        shared::db::contacts::is_opted_out(&client, &user, &customer)
            .await
            .expect("read")
    );

    let back = app
        .api
        .post(&format!("/contacts/{id}/opt-in"), &token, &json!({}))
        .await;
    let body = back.expect(200);
    assert_eq!(body["opted_out"], false);
    assert_eq!(body["opted_out_at"], serde_json::Value::Null);
    assert!(
        !shared::db::contacts::is_opted_out(&client, &user, &customer)
            .await
            .expect("read")
    );
}

/// Whether the worker's and the send path's check sees this phone as opted out.
async fn phone_opted_out(app: &TestApp, phone: &str) -> bool {
    let user = shared::domain::UserId::parse(&app.tenant.sub).expect("user");
    let customer = shared::domain::CustomerIdentity::Phone(
        shared::domain::PhoneE164::parse(phone).expect("phone"),
    );
    shared::db::contacts::is_opted_out(&app.db.client().await, &user, &customer)
        .await
        .expect("read")
}

#[tokio::test]
async fn an_opt_out_outlives_erasure_a_phone_edit_and_a_reimport_until_the_customer_opts_in() {
    let app = TestApp::spawn().await;
    let token = app.token();
    let said_stop = "+14155550101";
    let ana = app.create(json!({"phone": said_stop, "name": "Ana"})).await;
    let id = ana["contact_id"].as_str().expect("id").to_owned();
    app.api
        .post(&format!("/contacts/{id}/opt-out"), &token, &json!({}))
        .await
        .expect(200);

    // A phone edit: the number that said STOP stays suppressed, and the person stays out.
    let edited = app
        .api
        .patch(
            &format!("/contacts/{id}"),
            &token,
            &json!({"phone": "+14155550102"}),
        )
        .await;
    assert_eq!(edited.expect(200)["opted_out"], true);
    assert!(phone_opted_out(&app, said_stop).await, "the old number");
    assert!(
        phone_opted_out(&app, "+14155550102").await,
        "the person's new number"
    );

    // Erasure: no readable phone is left, and the numbers stay suppressed.
    app.api
        .delete(&format!("/contacts/{id}?hard=true"), &token)
        .await
        .expect(200);
    assert!(phone_opted_out(&app, said_stop).await);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM contacts WHERE phone IN ('{said_stop}', '+14155550102')"
        ))
        .await,
        0
    );

    // Created again, by the API or an import: it arrives opted out.
    let again = app.create(json!({"phone": said_stop})).await;
    assert_eq!(again["opted_out"], true, "{again}");
    app.import("name,phone\nBea,+14155550102\n")
        .await
        .expect(200);
    let listed = app.api.get("/contacts?search=%2B14155550102", &token).await;
    assert_eq!(listed.expect(200)["items"][0]["opted_out"], true);

    // Another tenant's suppression is its own.
    let other = app.other_tenant().await;
    let theirs = app
        .api
        .post("/contacts", &other.token(), &json!({"phone": said_stop}))
        .await;
    assert_eq!(theirs.expect(201)["opted_out"], false);

    // Only an opt-in lifts it.
    let again_id = again["contact_id"].as_str().expect("id");
    app.api
        .post(&format!("/contacts/{again_id}/opt-in"), &token, &json!({}))
        .await
        .expect(200);
    assert!(!phone_opted_out(&app, said_stop).await);
    assert!(
        phone_opted_out(&app, "+14155550102").await,
        "not the other number"
    );
}
