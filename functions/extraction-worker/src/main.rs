use extraction_worker::{ExtractionConfig, ExtractionState};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{
    config::DatabaseConfig,
    jobs::ExtractionJob,
    openai::{OpenAi, OpenAiConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let http = shared::http::client()?;
    let queue = shared::jobs::from_env::<ExtractionJob>().await?;
    let retry_queue = match &queue {
        shared::jobs::Queue::Sqs(sqs) => Some(sqs.clone()),
        shared::jobs::Queue::Local(_) => None,
    };
    let state = ExtractionState {
        pool: shared::db::connect(&DatabaseConfig::from_env()?)?,
        openai: OpenAi::new(http, OpenAiConfig::from_env()?),
        config: ExtractionConfig::from_env()?,
        queue,
        retry_queue,
        lifter: shared::jobs::LifterConfig::from_env()?,
    };
    // One function, two triggers: SQS batches of extraction jobs, and the scheduled sweep.
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        let deadline = shared::jobs::batch::deadline_from_epoch_millis(event.context.deadline);
        async move { extraction_worker::invoke(&state, event.payload, Some(deadline)).await }
    }))
    .await
}
