//! The test harness: a fresh database per test cloned from a migrated template, an
//! [`ApiState`] wired to it, tenants that sign their own tokens, a client that drives a
//! router the way API Gateway would, seed builders that write through `shared::db`
//! ([`Seed`]), and [`TestApp`], which every function's integration tests start from (router,
//! database, provider fakes, the reply queue checked empty at the end).
//!
//! Tests need `DATABASE_URL` (a server where the test user may create databases).
//! `scripts/test.sh` starts a throwaway cluster and sets it.

mod app;
mod aws;
mod db;
pub mod google;
mod http;
mod seed;
pub mod simulators;

pub use app::TestApp;
pub use seed::{ChannelSeed, ConversationSeed, Seed};
pub use simulators::Simulators;

pub use aws::{
    create_fifo_queue, create_queue, create_schedule_group, create_secret, moto_scheduler_client,
    moto_sdk_config, moto_secrets_client, moto_sqs_client, queue_arn, queue_depth,
};
pub use db::TestDb;
pub use http::{TestClient, TestResponse, request};

use secrecy::SecretString;
use shared::{
    api::ApiState,
    config::{ApiConfig, AuthConfig, DatabaseConfig, JwtKeys},
    crypto::SealingKey,
};

/// The operators' secret of test states.
pub const TEST_ADMIN_SECRET: &str = "testkit-admin-secret-with-32-characters";

/// The HS256 secret test tokens are signed with.
pub const TEST_JWT_SECRET: &str = "testkit-jwt-secret-with-at-least-32-chars";

/// The sealing key of test states (fixed, so a test can open what it sealed).
pub fn test_sealing_key() -> SealingKey {
    SealingKey::from_bytes(&[7u8; 32]).unwrap_or_else(|e| panic!("fixed key is 32 bytes: {e}"))
}

/// An auth config with the test secret and no issuer or audience check.
pub fn test_auth_config() -> AuthConfig {
    AuthConfig {
        keys: JwtKeys::SharedSecret(SecretString::from(TEST_JWT_SECRET)),
        issuer: None,
        audience: None,
    }
}

/// The configuration of an HTTP function on the test database, verifying tokens with
/// `auth`, with the test sealing key and operators' secret.
pub fn api_config(db: &TestDb, auth: &AuthConfig) -> ApiConfig {
    ApiConfig {
        database: DatabaseConfig::for_url(&db.url, TestDb::POOL_SIZE),
        auth: auth.clone(),
        sealing_key: test_sealing_key(),
        admin_secret: Some(SecretString::from(TEST_ADMIN_SECRET)),
    }
}

/// The state of an HTTP function, on the test database, verifying tokens with `auth`: built
/// by [`ApiState::with_pool`] like production's, on the test's own pool.
pub fn api_state_with_auth(db: &TestDb, auth: &AuthConfig) -> ApiState {
    ApiState::with_pool(
        db.pool.clone(),
        &api_config(db, auth),
        reqwest::Client::new(),
    )
}

/// The state of an HTTP function on the test database, with test tokens.
pub fn api_state(db: &TestDb) -> ApiState {
    api_state_with_auth(db, &test_auth_config())
}

/// A tenant in a test: signs its own tokens.
#[derive(Debug, Clone)]
pub struct TestTenant {
    /// The `sub` claim.
    pub sub: String,
    /// The `email` claim.
    pub email: String,
}

impl TestTenant {
    /// A tenant with a unique subject and email.
    pub fn new(label: &str) -> Self {
        let unique = ulid::Ulid::new().to_string().to_lowercase();
        Self {
            sub: format!("{label}-{unique}"),
            email: format!("{label}-{unique}@example.test"),
        }
    }

    /// A valid HS256 token for one hour.
    pub fn token(&self) -> String {
        self.token_with(chrono::Duration::hours(1), None)
    }

    /// A token expiring `valid_for` from now (negative: already expired), with an optional
    /// audience.
    pub fn token_with(&self, valid_for: chrono::Duration, audience: Option<&str>) -> String {
        sign_hs256(
            TEST_JWT_SECRET,
            &self.sub,
            Some(&self.email),
            valid_for,
            audience,
        )
    }
}

/// Signs an HS256 token (see [`shared::api::auth::sign_hs256`]).
pub fn sign_hs256(
    secret: &str,
    sub: &str,
    email: Option<&str>,
    valid_for: chrono::Duration,
    audience: Option<&str>,
) -> String {
    let claims = shared::api::auth::DevClaims {
        sub,
        email,
        audience,
        issuer: None,
    };
    shared::api::auth::sign_hs256(secret.as_bytes(), &claims, valid_for)
        .unwrap_or_else(|e| panic!("signing a test token: {e}"))
}
