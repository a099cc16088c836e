use conversation_worker::{OptOutWords, WorkerState};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{
    config::DatabaseConfig,
    meta::graph::{Graph, GraphConfig},
    openai::{OpenAi, OpenAiConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let http = shared::http::client()?;
    let state = WorkerState {
        pool: shared::db::connect(&DatabaseConfig::from_env()?)?,
        openai: OpenAi::new(http.clone(), OpenAiConfig::from_env()?),
        graph: Graph::new(http.clone(), GraphConfig::from_env()?),
        sealing_key: shared::config::sealing_key_from_env()?,
        opt_out: OptOutWords::from_env()?,
        retry_queue: match shared::config::optional_var("REPLY_QUEUE_URL")? {
            Some(url) => Some(shared::jobs::SqsQueue::new(
                shared::jobs::client_from_env().await?,
                url,
            )),
            None => None,
        },
        lifter: shared::jobs::LifterConfig::from_env()?,
        google: match shared::google::GoogleConfig::from_env()? {
            Some(config) => Some(shared::google::Google::new(http.clone(), config)?),
            None => None,
        },
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
            let state = state.clone();
            // Lambda's deadline: the lifter starts no job in the last margin before it.
            let deadline = shared::jobs::batch::deadline_from_epoch_millis(event.context.deadline);
            async move {
                Ok::<_, lambda_runtime::Error>(
                    conversation_worker::handle_batch(&state, event.payload, Some(deadline)).await,
                )
            }
        },
    ))
    .await
}
