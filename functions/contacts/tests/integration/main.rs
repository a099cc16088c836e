//! Integration tests of the `contacts` function: the real router, a real PostgreSQL.

mod contacts;
mod events;
mod import;
mod isolation;

use axum::body::Body;
use http::{Method, Request, header};
use serde_json::Value;
use testkit::{TestClient, TestDb, TestResponse, TestTenant};

pub struct TestApp {
    pub db: TestDb,
    pub api: TestClient,
    pub tenant: TestTenant,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let api = TestClient::new(::contacts::router(testkit::api_state(&db)));
        let tenant = TestTenant::new("acme");
        // Provisions the tenant.
        api.get("/tags", &tenant.token()).await.expect(200);
        Self { db, api, tenant }
    }

    pub fn token(&self) -> String {
        self.tenant.token()
    }

    /// Another tenant, provisioned.
    pub async fn other_tenant(&self) -> TestTenant {
        let other = TestTenant::new("rival");
        self.api.get("/tags", &other.token()).await.expect(200);
        other
    }

    pub async fn create(&self, body: Value) -> Value {
        self.api
            .post("/contacts", &self.token(), &body)
            .await
            .expect(201)
            .clone()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql, &[]).await
    }

    /// Sends a body with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap_or_else(|e| panic!("request: {e}"));
        self.api.send_request(request).await
    }

    pub async fn import(&self, csv: impl Into<Body>) -> TestResponse {
        self.send_raw(
            Method::POST,
            "/contacts/import",
            &self.token(),
            "text/csv",
            csv,
        )
        .await
    }

    /// (contact, tag) pairs the tenant's `TAG_ADDED` events report (an import's event lists
    /// many contacts).
    pub async fn tag_events(&self) -> i64 {
        self.db
            .count(
                "SELECT COALESCE(sum(COALESCE(cardinality(contact_ids), 1)), 0)::bigint
                 FROM domain_events WHERE event_type = 'TAG_ADDED' AND user_id = $1",
                &[&self.tenant.sub],
            )
            .await
    }
}
