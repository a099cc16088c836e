//! The outbound HTTP client (Meta, OpenAI, Google, JWKS): rustls with the public web roots,
//! bounded timeouts, built once per execution environment and cloned (it is an `Arc`).

use std::time::Duration;

pub use reqwest::Client;

/// Builds the shared client.
pub fn client() -> Result<Client, reqwest::Error> {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("salesagent/", env!("CARGO_PKG_VERSION")))
        .build()
}
