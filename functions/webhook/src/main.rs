use std::sync::Arc;

use shared::{config::DatabaseConfig, jobs::ReplyQueue};
use webhook::{WebchatLimits, WebhookSecrets, WebhookState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let pool = shared::db::connect(&DatabaseConfig::from_env()?)?;
    let queue: ReplyQueue = shared::jobs::from_env().await?;
    let state = WebhookState {
        pool,
        queue,
        secrets: Arc::new(WebhookSecrets::from_env()?),
        webchat: WebchatLimits::from_env()?,
    };
    lambda_http::run(webhook::lambda_router(state)).await
}
