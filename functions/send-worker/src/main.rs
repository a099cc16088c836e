use lambda_runtime::{LambdaEvent, service_fn};
use send_worker::{SendConfig, SendState};
use shared::{
    config::DatabaseConfig,
    jobs::SendJob,
    meta::graph::{Graph, GraphConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let sends = shared::jobs::from_env::<SendJob>().await?;
    let retry_queue = match &sends {
        shared::jobs::Queue::Sqs(sqs) => Some(sqs.clone()),
        shared::jobs::Queue::Local(_) => None,
    };
    let state = SendState {
        pool: shared::db::connect(&DatabaseConfig::from_env()?)?,
        graph: Graph::new(shared::http::client()?, GraphConfig::from_env()?),
        sealing_key: shared::config::sealing_key_from_env()?,
        config: SendConfig::default(),
        retry_queue,
        lifter: shared::jobs::LifterConfig::from_env()?,
        contexts: Default::default(),
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            let deadline = shared::jobs::batch::deadline_from_epoch_millis(event.context.deadline);
            async move {
                Ok::<_, lambda_runtime::Error>(
                    send_worker::handle_batch(&state, event.payload, Some(deadline)).await,
                )
            }
        },
    ))
    .await
}
