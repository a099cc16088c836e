use std::sync::Arc;

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
    // Built once per execution environment and shared by every invocation.
    let config = ApiConfig::from_env()?;
    let pool = shared::db::connect(&config.database)?;
    let http = reqwest_client()?;
    let state = ApiState {
        auth: Arc::new(Auth::new(
            Authenticator::new(&config.auth, http.clone()),
            pool.clone(),
        )),
        pool,
        sealing_key: config.sealing_key,
        admin_secret: config.admin_secret,
    };
    let state = agents::AgentsState {
        api: state,
        graph: Graph::new(http, GraphConfig::from_env()?),
    };
    lambda_http::run(agents::router(state)).await
}

fn reqwest_client() -> Result<shared::http::Client, lambda_http::Error> {
    Ok(shared::http::client()?)
}
