//! The HTTP conventions every API function follows.
//!
//! - Errors: handlers return [`ApiError`], which renders RFC 9457 `application/problem+json`.
//!   It is the only error type a handler returns; database and auth errors convert into it
//!   through `From`, in one place each.
//! - Input: [`Json`] and [`Query`] replace axum's extractors so that malformed input, unknown
//!   fields and wrong enum values answer problem JSON naming the field.
//! - Auth: [`Tenant`] verifies the bearer JWT and provisions the tenant on first use.
//! - Client address: [`ClientIp`] (function URL context or socket), for per-client limits.
//! - Lists: [`Page`] with an opaque cursor bound to its list and signed ([`pagination`]).
//! - Cross-cutting layers (body limit, request ids, tracing, panics): [`layers::finish`].
//! - Routes: [`routes`] (with the OpenAPI description for devstack, without it in Lambda).

pub mod auth;
mod client_ip;
mod extract;
pub mod idempotency;
pub mod layers;
pub mod openapi;
pub mod pagination;
mod problem;
pub mod routes;

pub use auth::{Auth, Authenticator, Tenant};
pub use client_ip::ClientIp;
pub use extract::{Json, Query, from_json_slice, is_json};
pub use idempotency::{IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER, idempotency_key};
pub use pagination::{Cursors, Page, PageParams, Paging};
pub use problem::{ApiError, FieldError, FieldErrors, Problem, error_chain};
pub use routes::ApiRoutes;

/// Everything the HTTP functions of this workspace share: the pool, token verification and
/// the sealing key. Built once per execution environment, by [`ApiState::from_config`].
///
/// A function's own state (`AgentsState`, `ConversationsState`) holds an `ApiState` plus its
/// provider clients and derives `FromRef`, so a handler extracts `State<ApiState>` for the
/// database and keys and `State<Graph>` (or another client) only where it calls it;
/// [`Tenant`] and the admin check need only `ApiState: FromRef<S>`. `ApiState` derives
/// `FromRef` too, so a router whose state is `ApiState` itself can hand out `State<Pool>`,
/// `State<Arc<Auth>>` or `State<SealingKey>` alone (axum does not reach through nested
/// fields, so a function state exposes its `ApiState`, not the parts).
#[derive(Clone, Debug, axum::extract::FromRef)]
pub struct ApiState {
    /// PostgreSQL.
    pub pool: crate::db::Pool,
    /// Bearer-token verification and tenant provisioning.
    pub auth: std::sync::Arc<Auth>,
    /// Seals provider tokens before they are stored, and signs list cursors.
    pub sealing_key: crate::crypto::SealingKey,
    /// `ADMIN_API_SECRET`: operators' routes (`/admin/...`) answer 401 without it.
    #[from_ref(skip)]
    pub admin_secret: Option<secrecy::SecretString>,
}

impl ApiState {
    /// The state of an HTTP function from its configuration: the pool (lazy: a cold start
    /// that needs no database opens no connection), token verification (JWKS fetched over
    /// `http`), the sealing key and the operators' secret. Every function's `main.rs` and
    /// devstack build their state here.
    pub fn from_config(
        config: &crate::config::ApiConfig,
        http: crate::http::Client,
    ) -> Result<Self, crate::db::PoolSetupError> {
        Ok(Self::with_pool(
            crate::db::connect(&config.database)?,
            config,
            http,
        ))
    }

    /// The same on a pool that exists already for `config.database` (a test's database,
    /// shared with its assertions, so a test does not open two pools on it).
    pub fn with_pool(
        pool: crate::db::Pool,
        config: &crate::config::ApiConfig,
        http: crate::http::Client,
    ) -> Self {
        Self {
            auth: std::sync::Arc::new(Auth::new(
                Authenticator::new(&config.auth, http),
                pool.clone(),
            )),
            pool,
            sealing_key: config.sealing_key.clone(),
            admin_secret: config.admin_secret.clone(),
        }
    }
}
