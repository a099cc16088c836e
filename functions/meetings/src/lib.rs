//! The `meetings` function: a tenant's Google Calendar connection (`/integrations/google`:
//! consent URL with a signed single-use `state`, the callback that stores the tokens sealed,
//! status, disconnect) and the meetings the AI agent books from conversations (`/meetings`:
//! list, read, cancel, reschedule), plus the sweep that marks ended meetings `completed`.
//!
//! The booking itself happens in the conversation worker (its `book_meeting` tool); both
//! sides share `shared::google` and `shared::db::meetings`.

mod integrations;
mod meetings;

use axum::{Router, extract::FromRef};
use shared::{
    api::{ApiError, ApiRoutes, ApiState, layers},
    api_routes,
    db::Pool,
    google::{Google, GoogleError},
    meta::graph::Graph,
};
use utoipa_axum::router::OpenApiRouter;

pub use meetings::sweep_completed;

/// The API state, the Google client, and the Graph client that tells a customer their
/// meeting was cancelled. It derives `FromRef`, so `Tenant` finds the `ApiState` in it.
#[derive(Debug, Clone, FromRef)]
pub struct MeetingsState {
    pub api: ApiState,
    /// None when Google is not configured: meetings stay readable; connecting, cancelling
    /// and rescheduling answer 503.
    #[from_ref(skip)]
    pub google: Option<Google>,
    pub graph: Graph,
}

impl MeetingsState {
    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.api.pool
    }

    /// The Google client; 503 when this deployment has no Google configuration.
    pub fn google(&self) -> Result<&Google, ApiError> {
        self.google.as_ref().ok_or_else(|| {
            ApiError::Unavailable(
                "Google Calendar is not configured on this deployment (GOOGLE_CLIENT_ID)".into(),
            )
        })
    }
}

/// The function's routes, added to either kind of router ([`shared::api::routes`]).
fn routes<R: ApiRoutes<MeetingsState>>(router: R) -> R {
    router
        .add(api_routes!(integrations::authorize_url))
        .add(api_routes!(integrations::callback))
        .add(api_routes!(
            integrations::get_connection,
            integrations::delete_connection
        ))
        .add(api_routes!(meetings::list_meetings))
        .add(api_routes!(meetings::get_meeting))
        .add(api_routes!(meetings::cancel_meeting))
        .add(api_routes!(meetings::reschedule_meeting))
}

/// The routes with their OpenAPI descriptions (devstack).
pub fn openapi_router() -> OpenApiRouter<MeetingsState> {
    routes(OpenApiRouter::new())
}

/// The function's app with state, before the common layers (devstack merges these). No
/// OpenAPI description is built: Lambda serves none.
pub fn app(state: MeetingsState) -> Router {
    routes(Router::new()).with_state(state)
}

/// The complete router Lambda runs and tests drive.
pub fn router(state: MeetingsState) -> Router {
    layers::finish(app(state), layers::API_BODY_LIMIT)
}

/// How a failed Google call answers the dashboard.
pub(crate) fn google_error(error: GoogleError) -> ApiError {
    match error {
        GoogleError::ReconnectNeeded => ApiError::Conflict(
            "the Google connection must be renewed: connect Google Calendar again".to_owned(),
        ),
        GoogleError::NotConnected => {
            ApiError::Conflict("Google Calendar is not connected".to_owned())
        }
        GoogleError::Unavailable(reason) => ApiError::Unavailable(reason.into()),
        GoogleError::Db(error) => error.into(),
        GoogleError::Duplicate | GoogleError::NotFound | GoogleError::Rejected(_) => {
            ApiError::BadGateway(format!("Google refused the request: {error}"))
        }
        GoogleError::Sealing => ApiError::internal(error),
    }
}
