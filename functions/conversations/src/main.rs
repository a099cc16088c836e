use conversations::ConversationsState;
use shared::{
    api::ApiState,
    config::ApiConfig,
    meta::graph::{Graph, GraphConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment and shared by every invocation.
    let http = shared::http::client()?;
    let state = ConversationsState {
        api: ApiState::from_config(&ApiConfig::from_env()?, http.clone())?,
        graph: Graph::new(http, GraphConfig::from_env()?),
        extraction_queue: shared::jobs::from_env().await?,
    };
    lambda_http::run(conversations::router(state)).await
}
