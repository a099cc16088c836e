use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request};
use secrecy::SecretString;
use serde_json::Value;
use shared::{
    jobs::{LocalQueue, ReplyJob, ReplyQueue},
    meta::signature,
};
use testkit::{TestClient, TestDb, TestResponse};
use webhook::{WebchatLimits, WebhookSecrets, WebhookState};

pub const APP_SECRET: &str = "meta-app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "verify-me";
/// The WhatsApp phone-number id of Meta's documented examples (`metadata.phone_number_id`).
pub const WA_CHANNEL: &str = "106540352242922";
/// The Instagram account id of the fixtures.
pub const IG_CHANNEL: &str = "17841400000000";

pub struct TestApp {
    pub db: TestDb,
    pub state: WebhookState,
    pub queue: LocalQueue<ReplyJob>,
    pub api: TestClient,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(WebchatLimits::default()).await
    }

    /// A webhook whose webchat has these limits.
    pub async fn spawn_with(webchat: WebchatLimits) -> Self {
        let db = TestDb::new().await;
        let queue = LocalQueue::new();
        let state = WebhookState {
            pool: db.pool.clone(),
            queue: ReplyQueue::Local(queue.clone()),
            secrets: Arc::new(WebhookSecrets {
                app_secret: SecretString::from(APP_SECRET),
                verify_token: SecretString::from(VERIFY_TOKEN),
            }),
            webchat,
        };
        let api = TestClient::new(webhook::router(state.clone()));
        Self {
            db,
            state,
            queue,
            api,
        }
    }

    /// The state the router was built with.
    pub fn state(&self) -> WebhookState {
        self.state.clone()
    }

    /// A tenant owning a channel; returns the channel id (`pn_…`).
    pub async fn channel(&self, tenant: &str, platform: &str, meta_id: &str) -> String {
        let client = self.db.client().await;
        let channel_id = shared::domain::PhoneNumberId::generate().to_string();
        client
            .execute(
                "INSERT INTO users (user_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&tenant, &format!("{tenant}@example.test")],
            )
            .await
            .expect("user");
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, $2, $3, $4, 'v1:sealed', $5)",
                &[&channel_id, &tenant, &platform, &meta_id, &(platform == "whatsapp").then_some("1")],
            )
            .await
            .expect("channel");
        channel_id
    }

    /// POSTs a body signed with the app secret.
    pub async fn post_signed(&self, body: &[u8]) -> TestResponse {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/webhook")
            .header("content-type", "application/json")
            .header(
                signature::SIGNATURE_HEADER,
                signature::sign(APP_SECRET.as_bytes(), body),
            )
            .body(Body::from(body.to_vec()))
            .expect("request");
        self.api.send_request(request).await
    }

    pub async fn post_json(&self, payload: &Value) -> TestResponse {
        self.post_signed(payload.to_string().as_bytes()).await
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }
}

/// A fixture from `shared/tests/fixtures/meta`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/tests/fixtures/meta/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
