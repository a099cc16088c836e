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

pub mod auth;
mod client_ip;
mod extract;
pub mod layers;
pub mod openapi;
pub mod pagination;
mod problem;

pub use auth::{Auth, Authenticator, Tenant};
pub use client_ip::ClientIp;
pub use extract::{Json, Query, from_json_slice, is_json};
pub use pagination::{Cursors, Page, PageParams};
pub use problem::{ApiError, FieldError, FieldErrors, Problem, error_chain};

/// Everything the HTTP functions of this workspace share: the pool, token verification and
/// the sealing key. Built once per execution environment.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// PostgreSQL.
    pub pool: crate::db::Pool,
    /// Bearer-token verification and tenant provisioning.
    pub auth: std::sync::Arc<Auth>,
    /// Seals provider tokens before they are stored.
    pub sealing_key: crate::crypto::SealingKey,
    /// `ADMIN_API_SECRET`: operators' routes (`/admin/...`) answer 401 without it.
    pub admin_secret: Option<secrecy::SecretString>,
}

impl axum::extract::FromRef<ApiState> for std::sync::Arc<Auth> {
    fn from_ref(state: &ApiState) -> Self {
        state.auth.clone()
    }
}
