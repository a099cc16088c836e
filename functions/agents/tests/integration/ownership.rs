//! A channel is connected only when Meta confirms, with the tenant's own token, that the
//! number (WhatsApp) or account (Instagram) is theirs; WhatsApp channels subscribe our app to
//! their WABA's webhooks. Meta is the fake in `helpers` (the simulator's rules).

use serde_json::{Value, json};
use wiremock::{
    Mock, Respond, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{TestApp, graph_error, str_field};

fn whatsapp(meta_id: &str, waba: &str, token: &str) -> Value {
    json!({ "platform": "whatsapp", "meta_phone_number_id": meta_id, "access_token": token, "waba_id": waba })
}

#[tokio::test]
async fn a_whatsapp_number_is_connected_after_meta_lists_it_in_the_waba_and_the_app_is_subscribed()
{
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    let created = app
        .post_as(
            &tenant,
            "/phone-numbers",
            &whatsapp("106540352242922", "10654035224292", "EAAG-owner"),
        )
        .await;

    created.expect(201);
    let listed = app.meta_requests("/10654035224292/phone_numbers").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].method.as_str(), "GET");
    assert_eq!(
        listed[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer EAAG-owner"),
        "checked with the tenant's own token"
    );
    let subscribed = app.meta_requests("/10654035224292/subscribed_apps").await;
    assert_eq!(subscribed.len(), 1, "our app is subscribed to the WABA");
    assert_eq!(subscribed[0].method.as_str(), "POST");
}

#[tokio::test]
async fn a_number_of_another_business_cannot_be_claimed_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let mallory = app.tenant("mallory").await;

    // Mallory names her own WABA and a valid token, but the number belongs to another WABA.
    let response = app
        .post_as(
            &mallory,
            "/phone-numbers",
            &whatsapp("106540352242922", "20000000000000", "EAAG-mallory"),
        )
        .await;

    let body = response.expect_problem(422, Some("meta_phone_number_id"));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("20000000000000")),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
    assert!(
        app.meta_requests("/subscribed_apps").await.is_empty(),
        "a WABA that was not proven is not subscribed"
    );
}

#[tokio::test]
async fn a_token_meta_refuses_is_422_naming_access_token_with_metas_reason() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let bodies = [
        whatsapp("106540352242922", "10654035224292", "invalid-token"),
        json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "invalid-ig" }),
        json!({ "platform": "instagram", "meta_phone_number_id": "17841400000001", "access_token": "invalid-ig", "instagram_api": "facebook_page" }),
    ];

    for body in bodies {
        let response = app.post_as(&tenant, "/phone-numbers", &body).await;
        let problem = response.expect_problem(422, Some("access_token"));
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Invalid OAuth access token")),
            "{body}: {problem}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn a_waba_the_token_cannot_read_is_422_naming_waba_id() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    Mock::given(method("GET"))
        .and(path("/30000000000000/phone_numbers"))
        .respond_with(graph_error(
            400,
            100,
            "Unsupported get request. Object with ID '30000000000000' does not exist",
        ))
        .with_priority(1)
        .mount(&app.meta)
        .await;

    let response = app
        .post_as(
            &tenant,
            "/phone-numbers",
            &whatsapp("300000000000001", "30000000000000", "EAAG"),
        )
        .await;

    response.expect_problem(422, Some("waba_id"));
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn a_subscription_meta_refuses_is_422_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    Mock::given(method("POST"))
        .and(path("/10654035224292/subscribed_apps"))
        .respond_with(graph_error(403, 200, "Permissions error"))
        .with_priority(1)
        .expect(1)
        .mount(&app.meta)
        .await;

    let response = app
        .post_as(
            &tenant,
            "/phone-numbers",
            &whatsapp("106540352242922", "10654035224292", "EAAG-read-only"),
        )
        .await;

    let problem = response.expect_problem(422, Some("access_token"));
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("subscribe")),
        "{problem}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn meta_being_down_is_a_502_problem_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    Mock::given(method("GET"))
        .respond_with(graph_error(500, 2, "Service temporarily unavailable"))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let bodies = [
        whatsapp("106540352242922", "10654035224292", "EAAG"),
        json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "IGQV" }),
    ];

    for body in bodies {
        let response = app.post_as(&tenant, "/phone-numbers", &body).await;
        let problem = response.expect_problem(502, None);
        assert_eq!(problem["type"], "urn:problem:bad-gateway");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        0
    );
}

#[tokio::test]
async fn an_instagram_account_is_read_with_the_token_and_must_be_that_account() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    Mock::given(method("GET"))
        .and(path("/17841400000009"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "id": "17841499999999", "username": "someone_else" })),
        )
        .with_priority(1)
        .mount(&app.meta)
        .await;

    let own = app
        .post_as(&tenant, "/phone-numbers", &json!({ "platform": "instagram", "meta_phone_number_id": "17841400000000", "access_token": "IGQV-own" }))
        .await;
    let other = app
        .post_as(&tenant, "/phone-numbers", &json!({ "platform": "instagram", "meta_phone_number_id": "17841400000009", "access_token": "IGQV-own" }))
        .await;

    own.expect(201);
    other.expect_problem(422, Some("meta_phone_number_id"));
    let read = app.meta_requests("/17841400000000").await;
    assert_eq!(read.len(), 1);
    assert_eq!(
        read[0]
            .url
            .query_pairs()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.into_owned()),
        Some("id,username".to_owned())
    );
    assert_eq!(
        app.count("SELECT count(*) FROM phone_numbers", &[]).await,
        1
    );
}

#[tokio::test]
async fn a_new_token_or_waba_is_verified_again_and_a_refused_one_changes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = tenant.token();
    let channel = app
        .create_whatsapp_channel(&tenant, "106540352242922")
        .await;
    let route = format!("/phone-numbers/{}", str_field(&channel, "id"));
    let sealed = || async {
        app.db
            .client()
            .await
            .query_one("SELECT access_token, waba_id FROM phone_numbers", &[])
            .await
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .expect("row")
    };
    let before = sealed().await;

    let bad_token = app
        .api
        .patch(
            &route,
            &token,
            &json!({ "access_token": "invalid-rotated" }),
        )
        .await;
    let foreign_waba = app
        .api
        .patch(&route, &token, &json!({ "waba_id": "20000000000000" }))
        .await;
    assert_eq!(sealed().await, before, "refused changes write nothing");
    let rename_only = app
        .api
        .patch(&route, &token, &json!({ "display_name": "Sales" }))
        .await;
    let listings_before_rotation = app.meta_requests("/phone_numbers").await.len();
    let rotated = app
        .api
        .patch(&route, &token, &json!({ "access_token": "EAAG-rotated" }))
        .await;

    bad_token.expect_problem(422, Some("access_token"));
    foreign_waba.expect_problem(422, Some("meta_phone_number_id"));
    rename_only.expect(200);
    rotated.expect(200);
    let after = sealed().await;
    assert_ne!(after.0, before.0, "the verified token is stored");
    assert_eq!(after.1, before.1);
    // create + bad token + foreign WABA were checked; a rename is not; the rotation is.
    assert_eq!(listings_before_rotation, 3);
    let listings = app.meta_requests("/phone_numbers").await;
    assert_eq!(listings.len(), 4);
    assert_eq!(
        listings[3]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer EAAG-rotated")
    );
}

#[tokio::test]
async fn a_number_on_a_later_page_of_the_wabas_numbers_is_found() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("big").await;
    let number = |id: String| json!({ "id": id, "display_phone_number": "+1 555-010-0000", "verified_name": "Big" });
    let first_page: Vec<Value> = (0..100).map(|i| number(format!("4000000{i:03}"))).collect();
    Mock::given(method("GET"))
        .and(path("/40000000000000/phone_numbers"))
        .and(wiremock::matchers::query_param("after", "page-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [number("400000000000009".to_owned())],
            "paging": { "cursors": { "before": "page-2", "after": "end" } }
        })))
        .with_priority(1)
        .expect(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("GET"))
        .and(path("/40000000000000/phone_numbers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": first_page,
            "paging": { "cursors": { "before": "page-1", "after": "page-2" }, "next": "https://graph.example/next" }
        })))
        .with_priority(2)
        .expect(1)
        .mount(&app.meta)
        .await;

    let response = app
        .post_as(
            &tenant,
            "/phone-numbers",
            &whatsapp("400000000000009", "40000000000000", "EAAG"),
        )
        .await;

    response.expect(201);
}

#[tokio::test]
async fn a_token_changed_while_a_new_one_was_being_verified_is_a_409_and_keeps_the_other() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("race").await;
    let channel = app
        .create_whatsapp_channel(&tenant, "106540352242922")
        .await;
    let route = format!("/phone-numbers/{}", str_field(&channel, "id"));
    Mock::given(method("GET"))
        .and(path("/10654035224292/phone_numbers"))
        .respond_with(
            crate::helpers::FakeMeta
                .respond(&wiremock_request_for("/10654035224292/phone_numbers"))
                .set_delay(std::time::Duration::from_millis(600)),
        )
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let token = tenant.token();
    let rotation = json!({ "access_token": "EAAG-slow" });

    let slow_patch = app.api.patch(&route, &token, &rotation);
    let concurrent_change = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        app.db
            .client()
            .await
            .execute("UPDATE phone_numbers SET access_token = 'v1:other'", &[])
            .await
            .expect("concurrent change");
    };
    let (response, ()) = tokio::join!(slow_patch, concurrent_change);

    response.expect_problem(409, None);
    let stored: String = app
        .db
        .client()
        .await
        .query_one("SELECT access_token FROM phone_numbers", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(
        stored, "v1:other",
        "the unverified combination was not written"
    );
}

/// A request to hand to a responder outside a server (to reuse its answer).
fn wiremock_request_for(route: &str) -> wiremock::Request {
    wiremock::Request {
        url: format!("http://fake{route}").parse().expect("url"),
        method: http::Method::GET,
        headers: http::HeaderMap::from_iter([(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer EAAG"),
        )]),
        body: Vec::new(),
    }
}
