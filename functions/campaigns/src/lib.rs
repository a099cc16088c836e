//! The `campaigns` function: template campaigns (`/campaigns`). A campaign is defined as a
//! DRAFT (template, channel, recipient filter, variable values, trigger, options), then
//! started: IMMEDIATE publishes a campaign-start job, SCHEDULED creates an EventBridge
//! one-time schedule, EVENT runs on domain events. Pause, resume, cancel and retry-failed
//! are conditional status changes; recipients, stats and a preview read what the engine
//! (`campaign-start`, `send-worker`) wrote.
//!
//! [`router`] is what Lambda runs and tests drive; [`openapi_router`] is what devstack
//! merges with the other functions' routes.

mod body;
mod routes;
mod schedule;

pub use schedule::rearm_all as rearm_schedules;

use std::sync::Arc;

use axum::{Router, extract::FromRef};
use shared::{
    api::{ApiRoutes, ApiState, Auth, layers},
    api_routes,
    jobs::CampaignStartQueue,
    scheduler::CampaignScheduler,
};
use utoipa_axum::router::OpenApiRouter;

/// The function's state: the common API state, the campaign-start queue and the scheduler.
#[derive(Debug, Clone)]
pub struct CampaignsState {
    pub api: ApiState,
    /// Where IMMEDIATE starts, resumes and retries publish their start job.
    pub starts: CampaignStartQueue,
    /// Where SCHEDULED campaigns get their one-time schedule.
    pub scheduler: CampaignScheduler,
}

impl FromRef<CampaignsState> for ApiState {
    fn from_ref(state: &CampaignsState) -> Self {
        state.api.clone()
    }
}

impl FromRef<CampaignsState> for Arc<Auth> {
    fn from_ref(state: &CampaignsState) -> Self {
        state.api.auth.clone()
    }
}

/// The function's routes, before state and layers, added to either kind of router
/// ([`shared::api::routes`]).
fn routes<R: ApiRoutes<CampaignsState>>(router: R) -> R {
    router
        .add(api_routes!(routes::create_campaign, routes::list_campaigns))
        .add(api_routes!(routes::preview_campaign))
        .add(api_routes!(
            routes::get_campaign,
            routes::patch_campaign,
            routes::delete_campaign
        ))
        .add(api_routes!(routes::start_campaign))
        .add(api_routes!(routes::pause_campaign))
        .add(api_routes!(routes::resume_campaign))
        .add(api_routes!(routes::cancel_campaign))
        .add(api_routes!(routes::retry_failed))
        .add(api_routes!(routes::list_recipients))
        .add(api_routes!(routes::campaign_stats))
}

/// The routes with their OpenAPI descriptions, before state and layers (devstack).
pub fn openapi_router() -> OpenApiRouter<CampaignsState> {
    routes(OpenApiRouter::new())
}

/// The function's HTTP app, with state, before the common layers (devstack merges these).
/// No OpenAPI description is built: Lambda serves none.
pub fn app(state: CampaignsState) -> Router {
    routes(Router::new()).with_state(state)
}

/// The largest request body: a recipient filter may name 10,000 contacts
/// (`MAX_FILTER_CONTACT_IDS`, ~330 KB of ids), beyond the API's common 256 KiB.
pub const BODY_LIMIT: usize = 512 * 1024;

/// The function's complete router: what Lambda runs and tests drive.
pub fn router(state: CampaignsState) -> Router {
    layers::finish(app(state), BODY_LIMIT)
}
