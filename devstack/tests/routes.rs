//! devstack serves the functions' routes exactly as the functions do.

use serde_json::json;
use testkit::{TestClient, TestDb, TestTenant};

#[tokio::test]
async fn devstack_serves_every_documented_route_with_the_same_behaviour() {
    let db = TestDb::new().await;
    let api = TestClient::new(devstack::app(testkit::api_state(&db)));
    let tenant = TestTenant::new("dev");
    let token = tenant.token();

    api.get("/me", &token).await.expect(200);
    let channel = api
        .post(
            "/phone-numbers",
            &token,
            &json!({ "platform": "webchat", "meta_phone_number_id": "site" }),
        )
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
    api.get("/nope", &token).await.expect_problem(404, None);
    api.send(http::Method::GET, "/agents", None, None)
        .await
        .expect_problem(401, None);
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_requires_a_token() {
    let db = TestDb::new().await;
    let api = TestClient::new(devstack::app(testkit::api_state(&db)));
    let document = devstack::openapi();
    let mut operations = 0;
    for (path, item) in &document.paths.paths {
        let concrete = path.replace("{id}", "pn_01jd0000000000000000000000");
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
            // A route that exists answers 401 without a token; a missing one would be 404/405.
            api.send(method.clone(), &concrete, None, None)
                .await
                .expect_problem(401, None);
        }
    }
    assert_eq!(operations, 13, "documented operations");
}
