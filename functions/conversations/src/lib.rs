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
    api::{ApiState, layers},
    jobs::ExtractionQueue,
    meta::graph::Graph,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The API state plus the Graph client for a person's replies and the extraction queue
/// (`POST /conversations/{id}/extract`). Handlers extract the part they use.
#[derive(Debug, Clone, FromRef)]
pub struct ConversationsState {
    pub api: ApiState,
    pub graph: Graph,
    pub extraction_queue: ExtractionQueue,
}

/// The routes with their OpenAPI descriptions.
pub fn openapi_router() -> OpenApiRouter<ConversationsState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_conversations))
        .routes(routes!(routes::get_conversation))
        .routes(routes!(routes::list_messages, routes::send_message))
        .routes(routes!(routes::resend_message))
        .routes(routes!(routes::takeover))
        .routes(routes!(routes::handback))
        .routes(routes!(extractions::list_extractions))
        .routes(routes!(extractions::get_extraction))
        .routes(routes!(extractions::conversation_extractions))
        .routes(routes!(extractions::extract_now))
}

/// The function's app with state, before the common layers (devstack merges these).
pub fn app(state: ConversationsState) -> Router {
    openapi_router().with_state(state).split_for_parts().0
}

/// The complete router Lambda runs and tests drive.
pub fn router(state: ConversationsState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}
