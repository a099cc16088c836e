//! devstack: the whole system on one machine. It hosts every HTTP function's routes on one
//! port, exactly as API Gateway routes them in AWS, against a local PostgreSQL it starts
//! itself when `DATABASE_URL` is unset.

pub mod postgres;

use axum::Router;
use shared::api::{ApiState, layers};

/// Every HTTP function's routes, merged, with the common layers applied once.
pub fn app(state: ApiState) -> Router {
    let merged = Router::new().merge(agents::app(state));
    layers::finish(merged, layers::API_BODY_LIMIT)
}

/// The OpenAPI document of the whole HTTP API: the shared base plus every function's paths.
/// `docs/openapi.json` is this document; a test keeps them equal.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = shared::api::openapi::base();
    document.merge(agents::openapi_router().into_openapi());
    document
}

/// The OpenAPI document as committed: pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut json = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
    json.push('\n');
    json
}
