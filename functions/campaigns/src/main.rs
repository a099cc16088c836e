use campaigns::CampaignsState;
use shared::{api::ApiState, config::ApiConfig, jobs::CampaignStartJob};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment and shared by every invocation.
    let config = ApiConfig::from_env()?;
    let http = shared::http::client()?;
    let state = CampaignsState {
        api: ApiState::from_config(&config, http)?,
        starts: shared::jobs::from_env::<CampaignStartJob>().await?,
        scheduler: shared::scheduler::from_env().await?,
    };
    lambda_http::run(campaigns::router(state)).await
}
