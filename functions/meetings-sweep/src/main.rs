//! The completed-meetings sweep, run by an EventBridge schedule (template.yaml): every
//! scheduled meeting whose end has passed becomes `completed` (`meetings::sweep_completed`,
//! one conditional UPDATE, so overlapping runs are harmless).

use lambda_runtime::{LambdaEvent, service_fn};
use shared::config::DatabaseConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    shared::secrets::load_from_env().await?;
    let pool = shared::db::connect(&DatabaseConfig::from_env()?)?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        let pool = pool.clone();
        async move {
            let completed = meetings::sweep_completed(&pool, chrono::Utc::now()).await?;
            Ok::<_, lambda_runtime::Error>(serde_json::json!({ "completed": completed }))
        }
    }))
    .await
}
