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
    api::{ApiError, ApiState, layers},
    db::Pool,
    google::{Google, GoogleError},
    meta::graph::Graph,
};
use utoipa_axum::{router::OpenApiRouter, routes};

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

/// The routes with their OpenAPI descriptions.
pub fn openapi_router() -> OpenApiRouter<MeetingsState> {
    OpenApiRouter::new()
        .routes(routes!(integrations::authorize_url))
        .routes(routes!(integrations::callback))
        .routes(routes!(
            integrations::get_connection,
            integrations::delete_connection
        ))
        .routes(routes!(meetings::list_meetings))
        .routes(routes!(meetings::get_meeting))
        .routes(routes!(meetings::cancel_meeting))
        .routes(routes!(meetings::reschedule_meeting))
}

/// The function's app with state, before the common layers (devstack merges these).
pub fn app(state: MeetingsState) -> Router {
    openapi_router().with_state(state).split_for_parts().0
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
