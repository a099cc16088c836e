//! The parts of the OpenAPI document every function shares: the bearer scheme, the problem
//! schema and the API's title. Each function crate contributes its paths through
//! `utoipa_axum::router::OpenApiRouter`, so routes and documentation come from the same code.

use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        response::Response,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use super::{FieldError, Problem};

/// The name of the bearer-token security scheme in the document. Every operation requires it
/// unless its path says `security(())` (public endpoints such as the webhook).
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, _, description) in responses::ALL {
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(problem_response(description)));
        }
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

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The error responses operations share, declared once in `components.responses` and
/// referenced by status. A route lists the sets that apply to it in its
/// `#[utoipa::path(responses(...))]` before its own responses (a later entry for the same
/// status, with a more specific description, replaces the shared one):
///
/// - every route: [`ServerErrors`](responses::ServerErrors) (500, 503);
/// - a tenant route: [`BearerErrors`](responses::BearerErrors) (401, 500, 503);
/// - a JSON body: [`JsonBodyErrors`](responses::JsonBodyErrors) (400, 413, 415, 422);
/// - query parameters: [`QueryErrors`](responses::QueryErrors) (422), or for a paged list
///   [`ListErrors`](responses::ListErrors) (400 for a foreign or tampered `cursor`, 422);
/// - an `{id}` in the path: [`PathErrors`](responses::PathErrors) (404; 422 for `%00`).
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::{
        IntoResponses,
        openapi::{Ref, RefOr, response::Response},
    };

    /// `(name in components.responses, status, description)`.
    pub(super) const ALL: &[(&str, &str, &str)] = &[
        (
            "BadRequest",
            "400",
            "The request could not be read: malformed JSON, an unreadable body, or a `cursor` \
             that this list did not issue (or that was altered)",
        ),
        (
            "Unauthorized",
            "401",
            "Missing, expired or invalid credentials",
        ),
        (
            "NotFound",
            "404",
            "No such resource for this tenant (another tenant's id, or a malformed id, is not \
             found either)",
        ),
        (
            "PayloadTooLarge",
            "413",
            "The body is larger than the endpoint accepts",
        ),
        (
            "UnsupportedMediaType",
            "415",
            "The body is not sent with the media type the endpoint reads (`application/json`; `text/csv` for the contacts import)",
        ),
        (
            "ValidationFailed",
            "422",
            "A field or parameter is missing, unknown, of the wrong type or out of range; \
             `errors` names every one",
        ),
        (
            "InternalError",
            "500",
            "An unexpected error; the cause is logged, never sent",
        ),
        (
            "Unavailable",
            "503",
            "A dependency (the database, a queue) is unavailable; retry shortly",
        ),
    ];

    fn refs(statuses: &[&str]) -> BTreeMap<String, RefOr<Response>> {
        ALL.iter()
            .filter(|(_, status, _)| statuses.contains(status))
            .map(|(name, status, _)| {
                (
                    (*status).to_owned(),
                    RefOr::Ref(Ref::from_response_name(*name)),
                )
            })
            .collect()
    }

    macro_rules! response_set {
        ($(#[doc = $doc:literal])* $name:ident => [$($status:literal),+]) => {
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    refs(&[$($status),+])
                }
            }
        };
    }

    response_set!(
        /// 500 and 503: any route.
        ServerErrors => ["500", "503"]
    );
    response_set!(
        /// 401, 500 and 503: a route that needs the tenant's bearer token.
        BearerErrors => ["401", "500", "503"]
    );
    response_set!(
        /// 400, 413, 415 and 422: a route that reads a JSON body.
        JsonBodyErrors => ["400", "413", "415", "422"]
    );
    response_set!(
        /// 422: a route with query parameters.
        QueryErrors => ["422"]
    );
    response_set!(
        /// 400 (cursor) and 422 (limit and filters): a paged list.
        ListErrors => ["400", "422"]
    );
    response_set!(
        /// 404 (no such resource) and 422 (a path parameter holding NUL): a route with a
        /// resource id in its path.
        PathErrors => ["404", "422"]
    );
}

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
