use std::sync::Arc;

use shared::{
    api::{ApiState, Auth, Authenticator},
    config::ApiConfig,
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Secrets Manager values (`*_ARN` variables), read once per execution environment.
    shared::secrets::load_from_env().await?;
    // Built once per execution environment and shared by every invocation.
    let config = ApiConfig::from_env()?;
    let pool = shared::db::connect(&config.database)?;
    let http = shared::http::client()?;
    let state = ApiState {
        auth: Arc::new(Auth::new(
            Authenticator::new(&config.auth, http),
            pool.clone(),
        )),
        pool,
        sealing_key: config.sealing_key,
        admin_secret: config.admin_secret,
    };
    lambda_http::run(contacts::router(state)).await
}
