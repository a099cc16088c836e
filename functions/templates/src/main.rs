use std::sync::Arc;

use shared::{
    api::{ApiState, Auth, Authenticator},
    config::ApiConfig,
    meta::graph::{Graph, GraphConfig},
};
use templates::{MediaLimits, TemplatesState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment and shared by every invocation.
    let config = ApiConfig::from_env()?;
    let pool = shared::db::connect(&config.database)?;
    let http = shared::http::client()?;
    let state = TemplatesState {
        api: ApiState {
            auth: Arc::new(Auth::new(
                Authenticator::new(&config.auth, http.clone()),
                pool.clone(),
            )),
            pool,
            sealing_key: config.sealing_key,
            admin_secret: config.admin_secret,
        },
        graph: Graph::new(http.clone(), GraphConfig::from_env()?),
        meta_app_id: shared::config::optional_var("META_APP_ID")?,
        // Public addresses only, no redirects (templates::media_client).
        media_http: templates::media_client()?,
        media_limits: MediaLimits::default(),
    };
    lambda_http::run(templates::router(state)).await
}
