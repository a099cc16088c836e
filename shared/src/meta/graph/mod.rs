//! The Graph API client, by resource: [`transport`] (base URLs, version, timeout, the token
//! as a secret, Meta's error body read into [`GraphError`]), [`messages`] (WhatsApp sends:
//! text, template, interactive, media), [`instagram`] (Instagram sends and account reads),
//! [`templates`] (create, read, delete, resumable upload) and [`phone_numbers`] (a number's
//! details and throughput, a WABA's numbers, webhook subscription). Every call has typed
//! request and response structs. Reached only over HTTP; tests and devstack point the base
//! URLs at a fake.

pub mod instagram;
pub mod messages;
pub mod phone_numbers;
pub mod templates;
pub mod transport;

pub use instagram::{InstagramAccount, InstagramContent};
pub use messages::{Media, MessageContent};
pub use phone_numbers::{BusinessPhoneNumber, PhoneNumberDetails};
/// The token type of every call: a secret, never logged (its `Debug` is redacted).
pub use secrecy::SecretString;
pub use transport::{
    ErrorOrigin, GRAPH_API_VERSION, GraphConfig, GraphError, GraphErrorBody, GraphErrorDetail,
};

/// A send Meta refused or could not take (the one Graph error type).
pub type SendError = GraphError;

/// An account check Meta refused or could not answer (the one Graph error type).
pub type CheckError = GraphError;

/// A message Meta accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `wamid.…` / Instagram `mid`: matches later status webhooks.
    pub platform_message_id: String,
    /// WhatsApp's `message_status` (`accepted`, `held_for_quality_assessment`, `paused`):
    /// accepted is not delivered; delivery comes from status webhooks.
    pub message_status: Option<String>,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Graph {
    http: reqwest::Client,
    config: GraphConfig,
}

impl Graph {
    /// A client on a shared reqwest client.
    pub fn new(http: reqwest::Client, config: GraphConfig) -> Self {
        Self { http, config }
    }
}
