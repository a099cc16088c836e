//! The `agents` function: the tenant's account (`/me`), channels (`/phone-numbers`) and AI
//! agents (`/agents`), including relinking a channel to a new agent with an archive, and
//! the operators' credit grants (`/admin/credits`).
//!
//! [`router`] is what Lambda runs and tests drive; [`openapi_router`] is what devstack merges
//! with the other functions' routes.

mod admin;
mod agents;
mod me;
mod phone_numbers;

use axum::{Router, extract::FromRef};
use shared::{
    api::{ApiRoutes, ApiState, layers},
    api_routes,
    meta::graph::Graph,
};
use utoipa_axum::router::OpenApiRouter;

/// The function's state: the common API state plus the Graph client that checks a channel's
/// ownership before it is connected. Handlers extract the part they use (`State<ApiState>`,
/// and `State<Graph>` only where Meta is called).
#[derive(Debug, Clone, FromRef)]
pub struct AgentsState {
    pub api: ApiState,
    pub graph: Graph,
}

/// The function's routes, before state and layers, added to either kind of router
/// ([`shared::api::routes`]).
fn routes<R: ApiRoutes<AgentsState>>(router: R) -> R {
    router
        .add(api_routes!(me::get_me, me::patch_me))
        .add(api_routes!(
            phone_numbers::create_phone_number,
            phone_numbers::list_phone_numbers
        ))
        .add(api_routes!(
            phone_numbers::get_phone_number,
            phone_numbers::patch_phone_number,
            phone_numbers::delete_phone_number
        ))
        .add(api_routes!(agents::list_archives))
        .add(api_routes!(agents::create_agent, agents::list_agents))
        .add(api_routes!(
            agents::get_agent,
            agents::patch_agent,
            agents::delete_agent
        ))
        .add(api_routes!(admin::grant_credits))
}

/// The routes with their OpenAPI descriptions, before state and layers (devstack).
pub fn openapi_router() -> OpenApiRouter<AgentsState> {
    routes(OpenApiRouter::new())
}

/// The function's HTTP app, with state, before the common layers (devstack merges these).
/// No OpenAPI description is built: Lambda serves none.
pub fn app(state: AgentsState) -> Router {
    routes(Router::new()).with_state(state)
}

/// The function's complete router: what Lambda runs and tests drive.
pub fn router(state: AgentsState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
