use std::sync::Arc;

use shared::{config::DatabaseConfig, jobs::ReplyQueue};
use webhook::{WebhookSecrets, WebhookState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let pool = shared::db::connect(&DatabaseConfig::from_env()?)?;
    let queue: ReplyQueue = shared::jobs::from_env().await?;
    let state = WebhookState {
        pool,
        queue,
        secrets: Arc::new(WebhookSecrets::from_env()?),
        webchat_rate_per_minute: shared::config::parsed_var("WEBCHAT_RATE_PER_MINUTE", 10)?,
    };
    lambda_http::run(webhook::router(state)).await
}
