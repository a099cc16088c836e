//! The `templates` function: a tenant's WhatsApp templates. Authoring (`/templates` CRUD,
//! validated before anything reaches Meta), submission to Meta (with the resumable upload
//! of a media header's sample), a status pull for a webhook that never came, single sends
//! through the one send-and-record path, and stats.
//!
//! [`router`] is what Lambda runs and tests drive; [`openapi_router`] is what devstack
//! merges with the other functions' routes.

mod authoring;
mod media;
mod response;
mod sends;
mod stats;
mod submission;

use std::sync::Arc;

use axum::{Router, extract::FromRef};
use shared::{
    api::{ApiRoutes, ApiState, Auth, layers},
    api_routes,
    meta::graph::Graph,
};
use utoipa_axum::router::OpenApiRouter;

pub use media::{MediaLimits, media_client};

/// The function's state: the common API state, the Graph client, Meta's app id (for the
/// resumable upload) and the client that fetches header media.
#[derive(Debug, Clone)]
pub struct TemplatesState {
    pub api: ApiState,
    pub graph: Graph,
    /// `META_APP_ID`: the app whose upload sessions carry media header samples. Without it a
    /// media-header template cannot be submitted (503 naming the setting).
    pub meta_app_id: Option<String>,
    /// Fetches `header.media_url` at submission.
    pub media_http: reqwest::Client,
    /// Size caps of header media (Meta's by default).
    pub media_limits: MediaLimits,
}

impl FromRef<TemplatesState> for ApiState {
    fn from_ref(state: &TemplatesState) -> Self {
        state.api.clone()
    }
}

impl FromRef<TemplatesState> for Arc<Auth> {
    fn from_ref(state: &TemplatesState) -> Self {
        state.api.auth.clone()
    }
}

/// The function's routes, before state and layers, added to either kind of router
/// ([`shared::api::routes`]).
fn routes<R: ApiRoutes<TemplatesState>>(router: R) -> R {
    router
        .add(api_routes!(
            authoring::create_template,
            authoring::list_templates
        ))
        .add(api_routes!(
            authoring::get_template,
            authoring::patch_template,
            authoring::delete_template
        ))
        .add(api_routes!(submission::submit_template))
        .add(api_routes!(submission::sync_template))
        .add(api_routes!(sends::send_template))
        .add(api_routes!(stats::template_stats))
}

/// The routes with their OpenAPI descriptions, before state and layers (devstack).
pub fn openapi_router() -> OpenApiRouter<TemplatesState> {
    routes(OpenApiRouter::new())
}

/// The function's HTTP app, with state, before the common layers (devstack merges these).
/// No OpenAPI description is built: Lambda serves none.
pub fn app(state: TemplatesState) -> Router {
    routes(Router::new()).with_state(state)
}

/// The function's complete router: what Lambda runs and tests drive.
pub fn router(state: TemplatesState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
