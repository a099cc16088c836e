//! The parts of the OpenAPI document every function shares: the bearer scheme, the problem
//! schema and the API's title. Each function crate contributes its paths through
//! `utoipa_axum::router::OpenApiRouter`, so routes and documentation come from the same code.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{FieldError, Problem};

/// The name of the bearer-token security scheme in the document. Every operation requires it
/// unless its path says `security(())` (public endpoints such as the webhook).
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT whose `sub` is the tenant. HS256 with JWT_SECRET locally; RS256/ES256 \
                         from JWT_JWKS_URL in production.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sales agents API",
        description = "Channels, AI agents, conversations, contacts, templates and campaigns of \
                       a tenant. Errors are RFC 9457 problem documents (`application/problem+json`).",
        version = "0.1.0"
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(Problem, FieldError))
)]
struct Base;

/// The document every function's paths are merged into.
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>`: an
/// absent field stays `None` (leave as is), `null` becomes `Some(None)` (clear).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}
