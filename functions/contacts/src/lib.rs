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
use shared::api::{ApiState, layers};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use transfer::IMPORT_BODY_LIMIT;

/// The routes with their OpenAPI descriptions, before state and layers. The import route
/// carries its own body limit ([`IMPORT_BODY_LIMIT`]); every other route keeps the API's.
pub fn openapi_router() -> OpenApiRouter<ApiState> {
    let import = OpenApiRouter::new()
        .routes(routes!(transfer::import_contacts))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(contacts::create_contact, contacts::list_contacts))
        .routes(routes!(transfer::export_contacts))
        .routes(routes!(contacts::get_settings, contacts::put_settings))
        .routes(routes!(contacts::bulk_tags))
        .routes(routes!(
            contacts::get_contact,
            contacts::patch_contact,
            contacts::delete_contact
        ))
        .routes(routes!(contacts::add_tags))
        .routes(routes!(contacts::remove_tag))
        .routes(routes!(contacts::opt_out))
        .routes(routes!(contacts::opt_in))
        .routes(routes!(contacts::list_tags))
        .routes(routes!(events::list_events))
        .merge(import)
}

/// The function's HTTP app, with state, before the common layers (devstack merges these).
pub fn app(state: ApiState) -> Router {
    openapi_router().with_state(state).split_for_parts().0
}

/// The function's complete router: what Lambda runs and tests drive.
pub fn router(state: ApiState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
