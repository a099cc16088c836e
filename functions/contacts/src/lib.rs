//! The `contacts` function: the tenant's contact book (`/contacts`: create, list with tag
//! filters, read with the latest lead status, change, delete or erase; tags, one by one and
//! in bulk, and `/tags`; opt-out and opt-in; CSV import and export; the default phone
//! region) and the domain-event feed (`/events`).
//!
//! [`router`] is what Lambda runs and tests drive; [`openapi_router`] is what devstack
//! merges with the other functions' routes.

mod contacts;
mod events;
pub mod query;
pub mod transfer;

use axum::{Router, extract::DefaultBodyLimit};
use shared::{
    api::{ApiRoutes, ApiState, layers},
    api_routes,
};
use utoipa_axum::router::OpenApiRouter;

pub use transfer::IMPORT_BODY_LIMIT;

/// The routes, before state and layers, added to either kind of router
/// ([`shared::api::routes`]); `empty` is a new router of that kind. The import route
/// carries its own body limit ([`IMPORT_BODY_LIMIT`]); every other route keeps the API's.
fn routes<R: ApiRoutes<ApiState>>(empty: impl Fn() -> R) -> R {
    let import = empty()
        .add(api_routes!(transfer::import_contacts))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    empty()
        .add(api_routes!(
            contacts::create_contact,
            contacts::list_contacts
        ))
        .add(api_routes!(transfer::export_contacts))
        .add(api_routes!(contacts::get_settings, contacts::put_settings))
        .add(api_routes!(contacts::bulk_tags))
        .add(api_routes!(
            contacts::get_contact,
            contacts::patch_contact,
            contacts::delete_contact
        ))
        .add(api_routes!(contacts::add_tags))
        .add(api_routes!(contacts::remove_tag))
        .add(api_routes!(contacts::opt_out))
        .add(api_routes!(contacts::opt_in))
        .add(api_routes!(contacts::list_tags))
        .add(api_routes!(events::list_events))
        .merge(import)
}

/// The routes with their OpenAPI descriptions, before state and layers (devstack).
pub fn openapi_router() -> OpenApiRouter<ApiState> {
    routes(OpenApiRouter::new)
}

/// The function's HTTP app, with state, before the common layers (devstack merges these).
/// No OpenAPI description is built: Lambda serves none.
pub fn app(state: ApiState) -> Router {
    routes(Router::new).with_state(state)
}

/// The function's complete router: what Lambda runs and tests drive.
pub fn router(state: ApiState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
