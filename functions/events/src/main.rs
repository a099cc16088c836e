//! The `events` function: run by an EventBridge schedule every minute, it runs
//! `shared::events::sweep` (devstack runs the same in a loop): `CONVERSATION_ENDED` for
//! conversations that went quiet, then every unpublished domain event to the events queue.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::{config::DatabaseConfig, events::SweepConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment.
    let pool = shared::db::connect(&DatabaseConfig::from_env()?)?;
    let queue = shared::jobs::from_env::<shared::events::EventJob>().await?;
    let config = SweepConfig::from_env()?;
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let (pool, queue) = (pool.clone(), queue.clone());
        async move {
            match shared::events::sweep(&pool, &queue, config).await {
                Ok(report) => {
                    tracing::info!(
                        conversations_ended = report.conversations_ended,
                        published = report.published,
                        "events sweep"
                    );
                    Ok(json!({
                        "conversations_ended": report.conversations_ended,
                        "published": report.published,
                    }))
                }
                // What was published is marked; the next run carries on.
                Err(error) => Err(Diagnostic {
                    error_type: "EventsSweepFailed".to_owned(),
                    error_message: shared::api::error_chain(&error),
                }),
            }
        }
    }))
    .await
}
