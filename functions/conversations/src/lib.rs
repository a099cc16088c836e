//! The `conversations` function: what the dashboard reads about conversations, and what a
//! person does in them: take over from the AI, hand back, and reply.
//!
//! A person's reply takes the conversation over (so the AI cannot answer at the same time)
//! and, on WhatsApp, is refused outside the 24-hour customer-service window with a 409 that
//! says a template is needed, instead of a send that would fail silently.
//!
//! It also serves the extractions (conversations scored as leads): `GET /extractions`,
//! `GET /extractions/{id}`, `GET /conversations/{id}/extractions` and the on-demand
//! `POST /conversations/{id}/extract`, which queues a job for the `extraction-worker`.

mod extractions;
mod routes;

use axum::{Router, extract::FromRef};
use shared::{
    api::{ApiRoutes, ApiState, layers},
    api_routes,
    jobs::ExtractionQueue,
    meta::graph::Graph,
};
use utoipa_axum::router::OpenApiRouter;

/// The API state plus the Graph client for a person's replies and the extraction queue
/// (`POST /conversations/{id}/extract`). Handlers extract the part they use.
#[derive(Debug, Clone, FromRef)]
pub struct ConversationsState {
    pub api: ApiState,
    pub graph: Graph,
    pub extraction_queue: ExtractionQueue,
}

/// The function's routes, added to either kind of router ([`shared::api::routes`]).
fn add_routes<R: ApiRoutes<ConversationsState>>(router: R) -> R {
    router
        .add(api_routes!(routes::list_conversations))
        .add(api_routes!(routes::get_conversation))
        .add(api_routes!(routes::list_messages, routes::send_message))
        .add(api_routes!(routes::resend_message))
        .add(api_routes!(routes::takeover))
        .add(api_routes!(routes::handback))
        .add(api_routes!(extractions::list_extractions))
        .add(api_routes!(extractions::get_extraction))
        .add(api_routes!(extractions::conversation_extractions))
        .add(api_routes!(extractions::extract_now))
}

/// The routes with their OpenAPI descriptions (devstack).
pub fn openapi_router() -> OpenApiRouter<ConversationsState> {
    add_routes(OpenApiRouter::new())
}

/// The function's app with state, before the common layers (devstack merges these). No
/// OpenAPI description is built: Lambda serves none.
pub fn app(state: ConversationsState) -> Router {
    add_routes(Router::new()).with_state(state)
}

/// The complete router Lambda runs and tests drive.
pub fn router(state: ConversationsState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
