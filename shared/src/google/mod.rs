//! Google: OAuth 2.0 for a tenant's calendar (consent URL with PKCE, code exchange, refresh,
//! revocation: the `oauth2` crate on the workspace's reqwest client) and the Calendar API
//! calls the booking tools and the meetings API make (free/busy, events insert, get, patch,
//! delete), with typed request and response structs.
//!
//! Reached only over HTTP through [`Google`]; tests and devstack point `GOOGLE_BASE_URL` and
//! `GOOGLE_OAUTH_BASE_URL` at a fake. The stored tokens and their refresh live in
//! [`connection`]; the signed, single-use OAuth `state` in [`state`].

pub mod calendar;
pub mod connection;
pub mod event_id;
pub mod oauth;
pub mod state;

use std::time::Duration;

use secrecy::SecretString;

use crate::config::{ConfigError, optional_var, parsed_var, required_var};

pub use calendar::{BusyPeriod, ConferenceStatus, Event, EventAttendee, EventDateTime, NewEvent};
pub use oauth::{GrantedTokens, REQUIRED_SCOPES, SCOPES};

/// The Calendar API's base URL in production.
pub const DEFAULT_API_BASE_URL: &str = "https://www.googleapis.com/calendar/v3";
/// Google's token and revocation endpoints' base URL in production.
pub const DEFAULT_OAUTH_BASE_URL: &str = "https://oauth2.googleapis.com";
/// Google's consent page in production.
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";

/// Where and how to reach Google.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// `GOOGLE_CLIENT_ID`: the OAuth client of the Google Cloud project.
    pub client_id: String,
    /// `GOOGLE_CLIENT_SECRET` (a secret; `GOOGLE_CLIENT_SECRET_ARN` in AWS).
    pub client_secret: SecretString,
    /// `GOOGLE_REDIRECT_URL`: the dashboard page Google sends the tenant back to; it posts
    /// the `code` and `state` to `POST /integrations/google/callback`.
    pub redirect_url: String,
    /// `GOOGLE_AUTH_URL`: the consent page (default Google's; with only
    /// `GOOGLE_OAUTH_BASE_URL` set, `<that>/o/oauth2/v2/auth`, as the simulator serves it).
    pub auth_url: String,
    /// `GOOGLE_OAUTH_BASE_URL`: `/token` and `/revoke` live here.
    pub oauth_base_url: String,
    /// `GOOGLE_BASE_URL`: the Calendar API (`…/calendar/v3`).
    pub api_base_url: String,
    /// `GOOGLE_TIMEOUT_SECS` (default 10): one call's whole time.
    pub timeout: Duration,
    /// How many times an event is read back while Google creates its Meet link.
    pub meet_poll_attempts: u32,
    /// The wait between two reads (`GOOGLE_MEET_POLL_MS`, default 1,000).
    pub meet_poll_interval: Duration,
}

impl GoogleConfig {
    /// Reads the variables; `None` when `GOOGLE_CLIENT_ID` is not set (Google is not
    /// configured: no tenant can connect a calendar, the agent gets no booking tools).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(client_id) = optional_var("GOOGLE_CLIENT_ID")? else {
            return Ok(None);
        };
        let oauth_base_url = optional_var("GOOGLE_OAUTH_BASE_URL")?;
        let auth_url = match (optional_var("GOOGLE_AUTH_URL")?, &oauth_base_url) {
            (Some(url), _) => url,
            (None, Some(base)) => format!("{}/o/oauth2/v2/auth", base.trim_end_matches('/')),
            (None, None) => DEFAULT_AUTH_URL.to_owned(),
        };
        Ok(Some(Self {
            client_id,
            client_secret: SecretString::from(required_var("GOOGLE_CLIENT_SECRET")?),
            redirect_url: required_var("GOOGLE_REDIRECT_URL")?,
            auth_url,
            oauth_base_url: oauth_base_url.unwrap_or_else(|| DEFAULT_OAUTH_BASE_URL.to_owned()),
            api_base_url: optional_var("GOOGLE_BASE_URL")?
                .unwrap_or_else(|| DEFAULT_API_BASE_URL.to_owned()),
            timeout: Duration::from_secs(parsed_var("GOOGLE_TIMEOUT_SECS", 10)?),
            meet_poll_attempts: 5,
            meet_poll_interval: Duration::from_millis(parsed_var("GOOGLE_MEET_POLL_MS", 1_000)?),
        }))
    }

    /// A config for a fake serving every endpoint at `base` (tests): the consent page at
    /// `/o/oauth2/v2/auth`, `/token`, `/revoke` and the Calendar API at `/calendar/v3`.
    pub fn for_base_url(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            client_id: "test-client.apps.googleusercontent.com".to_owned(),
            client_secret: SecretString::from("test-client-secret"),
            redirect_url: "https://dashboard.example.test/integrations/google/return".to_owned(),
            auth_url: format!("{base}/o/oauth2/v2/auth"),
            oauth_base_url: base.to_owned(),
            api_base_url: format!("{base}/calendar/v3"),
            timeout: Duration::from_secs(5),
            meet_poll_attempts: 5,
            meet_poll_interval: Duration::from_millis(10),
        }
    }
}

/// A failed call to Google, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// Google refused the refresh token (`invalid_grant`) or the access token after a
    /// refresh: the tenant must connect again.
    #[error("the Google connection must be renewed by the tenant")]
    ReconnectNeeded,
    /// The tenant has no Google connection.
    #[error("Google Calendar is not connected")]
    NotConnected,
    /// 409: the client-chosen event id exists already.
    #[error("an event with this id exists already")]
    Duplicate,
    /// 404 or 410: no such event (or it was deleted).
    #[error("no such event at Google")]
    NotFound,
    /// Any other refusal (4xx): retrying the same request will not help.
    #[error("Google refused the request: {0}")]
    Rejected(String),
    /// 429, 5xx, timeouts, connection failures: try again later.
    #[error("Google is unavailable: {0}")]
    Unavailable(String),
    /// Our database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A stored token could not be opened (wrong key) or sealed.
    #[error("stored Google token could not be opened or sealed")]
    Sealing,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Google {
    /// The workspace's client, for the Calendar API.
    http: reqwest::Client,
    /// For the OAuth endpoints: the same stack with redirects off, as `oauth2` requires (a
    /// token endpoint that redirects must not make us post the secret elsewhere).
    oauth_http: reqwest::Client,
    config: GoogleConfig,
}

impl Google {
    /// A client on the shared reqwest client's stack.
    pub fn new(http: reqwest::Client, config: GoogleConfig) -> Result<Self, reqwest::Error> {
        let oauth_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            oauth_http,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GoogleConfig {
        &self.config
    }
}
