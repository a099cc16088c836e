use std::sync::Arc;

use conversations::ConversationsState;
use shared::{
    api::{ApiState, Auth, Authenticator},
    config::ApiConfig,
    meta::graph::{Graph, GraphConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    let config = ApiConfig::from_env()?;
    let pool = shared::db::connect(&config.database)?;
    let http = shared::http::client()?;
    let state = ConversationsState {
        api: ApiState {
            auth: Arc::new(Auth::new(
                Authenticator::new(&config.auth, http.clone()),
                pool.clone(),
            )),
            pool,
            sealing_key: config.sealing_key,
            admin_secret: config.admin_secret,
        },
        graph: Graph::new(http, GraphConfig::from_env()?),
        extraction_queue: shared::jobs::from_env().await?,
    };
    lambda_http::run(conversations::router(state)).await
}
