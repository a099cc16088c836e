//! Another tenant's contact is a 404 on every route that names one, and is untouched.

use http::Method;
use serde_json::{Value, json};

use crate::TestApp;

#[tokio::test]
async fn every_contact_route_answers_404_for_another_tenants_contact_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mine = app
        .create(json!({"phone": "+14155552671", "name": "Ana", "tags": ["vip"]}))
        .await;
    let id = mine["contact_id"].as_str().expect("id");
    let rival = app.other_tenant().await;
    let token = rival.token();
    let before = app.count("SELECT count(*) FROM domain_events").await;

    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/contacts/{id}"), None),
        (
            Method::PATCH,
            format!("/contacts/{id}"),
            Some(json!({"name": "Mallory"})),
        ),
        (Method::DELETE, format!("/contacts/{id}"), None),
        (Method::DELETE, format!("/contacts/{id}?hard=true"), None),
        (
            Method::POST,
            format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["x"]})),
        ),
        (Method::DELETE, format!("/contacts/{id}/tags/vip"), None),
        (
            Method::POST,
            format!("/contacts/{id}/opt-out"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/contacts/{id}/opt-in"),
            Some(json!({})),
        ),
        // A malformed id is not found either.
        (Method::GET, "/contacts/ct_nope".to_owned(), None),
    ];
    for (method, path, body) in calls {
        let response = app
            .api
            .send(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert_eq!(response.status, 404, "{method} {path}: {}", response.body);
    }

    // Lists, bulk changes, tags, export and events see none of it.
    let list = app.api.get("/contacts?is_active=true", &token).await;
    assert_eq!(list.expect(200)["items"], json!([]));
    let bulk = app
        .api
        .post(
            "/contacts/tags",
            &token,
            &json!({"contact_ids": [id], "add": ["x"], "remove": ["vip"]}),
        )
        .await;
    assert_eq!(bulk.expect(200)["matched"], 0);
    let by_filter = app
        .api
        .post(
            "/contacts/tags",
            &token,
            &json!({"filter": {"tag": ["vip"]}, "add": ["x"]}),
        )
        .await;
    assert_eq!(by_filter.expect(200)["matched"], 0);
    assert_eq!(
        app.api.get("/tags", &token).await.expect(200)["items"],
        json!([])
    );
    let export = app.api.get("/contacts/export", &token).await;
    assert_eq!(
        export.body.as_str().map(|t| t.lines().count()),
        Some(1),
        "the header only"
    );
    assert_eq!(
        app.api.get("/events", &token).await.expect(200)["items"],
        json!([])
    );
    let imported = app
        .send_raw(
            Method::POST,
            "/contacts/import",
            &token,
            "text/csv",
            "phone,name\n+14155552671,Mallory\n",
        )
        .await;
    assert_eq!(
        imported.expect(200)["created"],
        1,
        "the rival's own contact"
    );

    // Mine is as it was.
    let mine_now = app.api.get(&format!("/contacts/{id}"), &app.token()).await;
    let body = mine_now.expect(200);
    assert_eq!(body["name"], "Ana");
    assert_eq!(body["tags"], json!(["vip"]));
    assert_eq!(body["is_active"], true);
    assert_eq!(body["opted_out"], false);
    assert_eq!(
        app.count("SELECT count(*) FROM domain_events").await - before,
        0
    );
}
