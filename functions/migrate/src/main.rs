use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use shared::config::DatabaseConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let pool = shared::db::connect(&DatabaseConfig::from_env()?)?;

    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        // Run as a CLI: apply once and print what was done.
        let outcome = migrate::handle(&pool).await?;
        println!("{outcome}");
        return Ok(());
    }
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let pool = pool.clone();
        async move {
            migrate::handle(&pool).await.map_err(|error| Diagnostic {
                error_type: "MigrationFailed".to_owned(),
                error_message: shared::api::error_chain(&error),
            })
        }
    }))
    .await
}
