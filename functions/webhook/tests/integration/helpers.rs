use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request};
use secrecy::SecretString;
use serde_json::Value;
use shared::{domain::Platform, meta::signature};
use testkit::{ChannelSeed, TestResponse};
use webhook::{WebchatLimits, WebhookSecrets, WebhookState};

pub const APP_SECRET: &str = "meta-app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "verify-me";
/// The WhatsApp phone-number id of Meta's documented examples (`metadata.phone_number_id`).
pub const WA_CHANNEL: &str = "106540352242922";
/// The Instagram account id of the fixtures.
pub const IG_CHANNEL: &str = "17841400000000";

/// The webhook on [`testkit::TestApp`] (database, reply queue checked empty at the end),
/// with the state its router was built with.
pub struct TestApp {
    pub kit: testkit::TestApp,
    pub state: WebhookState,
}

impl std::ops::Deref for TestApp {
    type Target = testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(WebchatLimits::default()).await
    }

    /// A webhook whose webchat has these limits.
    pub async fn spawn_with(webchat: WebchatLimits) -> Self {
        let kit = testkit::TestApp::new().await;
        let state = WebhookState {
            pool: kit.db.pool.clone(),
            queue: kit.reply_queue(),
            secrets: Arc::new(WebhookSecrets {
                app_secret: SecretString::from(APP_SECRET),
                verify_token: SecretString::from(VERIFY_TOKEN),
            }),
            webchat,
        };
        let kit = kit.serve(webhook::router(state.clone()));
        Self { kit, state }
    }

    /// Takes the jobs the test published, checking that each is queued once (the webhook
    /// only publishes; nothing here consumes them).
    pub fn take_published_jobs(&self) -> Vec<shared::jobs::ReplyJob> {
        let jobs = self.take_jobs();
        assert_eq!(
            jobs.len(),
            self.queue.published_count(),
            "each published job is queued once"
        );
        jobs
    }

    /// The state the router was built with.
    pub fn state(&self) -> WebhookState {
        self.state.clone()
    }

    /// A tenant owning a channel; returns the channel id (`pn_…`).
    pub async fn channel(&self, tenant: &str, platform: &str, meta_id: &str) -> String {
        let seed = self.db.seed();
        let user = seed.tenant(tenant).await;
        let platform: Platform = platform.parse().expect("platform");
        seed.channel(&user, ChannelSeed::of(platform, meta_id))
            .await
            .id
            .to_string()
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
