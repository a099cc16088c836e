use std::sync::Arc;

use shared::{
    api::{ApiState, Auth, Authenticator},
    config::ApiConfig,
    google::{Google, GoogleConfig},
    meta::graph::{Graph, GraphConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment and shared by every invocation.
    let config = ApiConfig::from_env()?;
    // None without GOOGLE_CLIENT_ID: meetings stay readable, Google routes answer 503.
    let google_config = GoogleConfig::from_env()?;
    let pool = shared::db::connect(&config.database)?;
    let http = shared::http::client()?;
    let state = meetings::MeetingsState {
        api: ApiState {
            auth: Arc::new(Auth::new(
                Authenticator::new(&config.auth, http.clone()),
                pool.clone(),
            )),
            pool,
            sealing_key: config.sealing_key,
            admin_secret: config.admin_secret,
        },
        google: match google_config {
            Some(config) => Some(Google::new(http.clone(), config)?),
            None => None,
        },
        graph: Graph::new(http, GraphConfig::from_env()?),
    };
    lambda_http::run(meetings::router(state)).await
}
