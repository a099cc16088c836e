// The Lambda runtime nests the handler's futures (start jobs, domain events, the sweep) deeper
// than the default limit when computing their layout.
#![recursion_limit = "256"]

use campaign_start::CampaignStartState;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{config::DatabaseConfig, jobs::CampaignStartJob};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let starts = shared::jobs::from_env::<CampaignStartJob>().await?;
    let retry_queue = match &starts {
        shared::jobs::Queue::Sqs(sqs) => Some(sqs.clone()),
        shared::jobs::Queue::Local(_) => None,
    };
    let state = CampaignStartState {
        pool: shared::db::connect(&DatabaseConfig::from_env()?)?,
        sends: shared::jobs::from_env().await?,
        starts,
        retry_queue,
        events_retry_queue: match shared::jobs::from_env::<shared::events::EventJob>().await? {
            shared::jobs::Queue::Sqs(sqs) => Some(sqs),
            shared::jobs::Queue::Local(_) => None,
        },
        lifter: shared::jobs::LifterConfig::from_env()?,
    };
    // One function, three triggers: SQS batches of start jobs and of domain events, and the
    // scheduled sweep.
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        let deadline = shared::jobs::batch::deadline_from_epoch_millis(event.context.deadline);
        async move { campaign_start::invoke(&state, event.payload, Some(deadline)).await }
    }))
    .await
}
