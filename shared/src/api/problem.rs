use std::error::Error as StdError;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:problem:validation`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in a sentence.
    pub detail: String,
    /// The fields at fault, when the problem is with the input.
    pub errors: Vec<FieldError>,
}

/// One field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name (a dotted path for nested fields).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects every field error of a request before answering, so a client learns about all
/// of them at once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Keeps the value, or records why it was refused.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                None
            }
        }
    }

    /// Records an error.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `Err(422)` when anything was recorded.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(errors.0)
    }
}

/// Every way an HTTP request can fail. Handlers return it; it renders itself as problem JSON
/// and never shows SQL or internals (a 500's cause goes to the log only).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body is not of the media type the endpoint reads (`expected`).
    #[error("unsupported media type")]
    UnsupportedMediaType { expected: &'static str },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A limit was reached; the response carries `Retry-After` (seconds).
    #[error("too many requests: {detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u32,
    },
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
    /// An error status answered by a layer below the handlers that has no variant of its
    /// own (see [`ApiError::from_status`]).
    #[error("{status}: {detail}")]
    Other { status: StatusCode, detail: String },
}

impl ApiError {
    /// A body that is not JSON where the endpoint reads JSON: 415.
    pub fn not_json() -> Self {
        Self::UnsupportedMediaType {
            expected: "application/json",
        }
    }

    /// A 422 about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// An unexpected failure; the cause is logged, not sent.
    pub fn internal(error: impl StdError + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// The error a lower layer (axum's or tower-http's rejections) answered with `status`
    /// and the plain-text `text`, so it can be rendered as a problem. The text of a client
    /// error becomes the detail; a server error's text is not sent.
    pub fn from_status(status: StatusCode, text: String) -> Self {
        let detail = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_lowercase()
        } else {
            text.chars().take(300).collect()
        };
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest {
                detail,
                errors: vec![],
            },
            StatusCode::UNAUTHORIZED => Self::Unauthorized(detail),
            StatusCode::FORBIDDEN => Self::Forbidden(detail),
            StatusCode::NOT_FOUND => Self::NotFound(detail),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::not_json(),
            StatusCode::INTERNAL_SERVER_ERROR => Self::Internal(text.into()),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(text.into()),
            _ if status.is_server_error() => Self::Other {
                status,
                detail: "the request failed; retry later".to_owned(),
            },
            _ => Self::Other { status, detail },
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Other { status, .. } => *status,
        }
    }

    /// The problem document this error renders.
    pub fn problem(&self) -> Problem {
        let (slug, title, detail, errors) = match self {
            Self::BadRequest { detail, errors } => {
                ("bad-request", "Bad request", detail.clone(), errors.clone())
            }
            Self::Unauthorized(detail) => ("unauthorized", "Unauthorized", detail.clone(), vec![]),
            Self::Forbidden(detail) => ("forbidden", "Forbidden", detail.clone(), vec![]),
            Self::NotFound(detail) => ("not-found", "Not found", detail.clone(), vec![]),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "this path does not accept this method".to_owned(),
                vec![],
            ),
            Self::Conflict(detail) => ("conflict", "Conflict", detail.clone(), vec![]),
            Self::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                "the request body is larger than this endpoint accepts".to_owned(),
                vec![],
            ),
            Self::UnsupportedMediaType { expected } => (
                "unsupported-media-type",
                "Unsupported media type",
                if *expected == "application/json" {
                    "the body must be JSON, sent with `Content-Type: application/json`".to_owned()
                } else {
                    format!("the body must be sent with `Content-Type: {expected}`")
                },
                vec![],
            ),
            Self::Validation(errors) => (
                "validation",
                "Validation failed",
                validation_detail(errors),
                errors.clone(),
            ),
            Self::TooManyRequests { detail, .. } => (
                "too-many-requests",
                "Too many requests",
                detail.clone(),
                vec![],
            ),
            Self::BadGateway(detail) => ("bad-gateway", "Bad gateway", detail.clone(), vec![]),
            Self::Unavailable(_) => (
                "unavailable",
                "Service unavailable",
                "a dependency is unavailable; retry shortly".to_owned(),
                vec![],
            ),
            Self::Internal(_) => (
                "internal",
                "Internal error",
                "an unexpected error occurred; it has been logged".to_owned(),
                vec![],
            ),
            Self::Other { status, detail } => {
                let title = status.canonical_reason().unwrap_or("Error");
                return Problem {
                    problem_type: format!(
                        "urn:problem:{}",
                        title
                            .to_ascii_lowercase()
                            .split(|c: char| !c.is_ascii_alphanumeric())
                            .filter(|word| !word.is_empty())
                            .collect::<Vec<_>>()
                            .join("-")
                    ),
                    title: title.to_owned(),
                    status: status.as_u16(),
                    detail: detail.clone(),
                    errors: vec![],
                };
            }
        };
        Problem {
            problem_type: format!("urn:problem:{slug}"),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            errors,
        }
    }
}

fn validation_detail(errors: &[FieldError]) -> String {
    match errors {
        [only] => format!("{} {}", only.field, only.message),
        _ => format!("{} fields are invalid", errors.len()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "request failed")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %error_chain(cause.as_ref()), "dependency unavailable")
            }
            _ => {}
        }
        let problem = self.problem();
        let status = self.status();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

/// "outer: inner: root" for logs.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a violated constraint means to a client. The one table that turns constraint names
/// into 409 details; unknown constraints get a generic sentence.
fn conflict_detail(constraint: &str) -> &'static str {
    match constraint {
        "phone_numbers_platform_meta_id_key" => {
            "a channel with this platform and meta_phone_number_id is already connected"
        }
        "agents_phone_number_id_key" => {
            "the channel already has an agent; send \"replace_existing\": true to replace it"
        }
        "users_email_key" | "users_email_lower_key" => {
            "this email address already belongs to another account (emails are compared \
             without regard to case)"
        }
        "agents_phone_number_id_fkey"
        | "templates_phone_number_id_fkey"
        | "campaigns_phone_number_id_fkey" => {
            "the channel is still used by an agent, template or campaign"
        }
        "conversations_agent_id_fkey" => "the agent has conversations; relink the channel instead",
        _ => "the request conflicts with the current state of the resource",
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::UniqueViolation { constraint }
            | DbError::ForeignKeyViolation { constraint } => {
                Self::Conflict(conflict_detail(&constraint).to_owned())
            }
            DbError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::internal(other),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        DbError::from(error).into()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        DbError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_name_the_field() {
        let problem = ApiError::invalid("name", "must not be empty").problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.problem_type, "urn:problem:validation");
        assert_eq!(problem.detail, "name must not be empty");
        assert_eq!(
            problem.errors,
            vec![FieldError::new("name", "must not be empty")]
        );
    }

    #[test]
    fn too_many_requests_say_when_to_retry() {
        let response = ApiError::TooManyRequests {
            detail: "slow down".to_owned(),
            retry_after_secs: 17,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("17"))
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/problem+json"))
        );
    }

    #[test]
    fn internal_problems_do_not_leak_the_cause() {
        let error = ApiError::internal(std::io::Error::other("relation \"x\" does not exist"));
        let problem = error.problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("relation"));
    }

    #[test]
    fn unique_violations_become_conflicts_that_say_what_conflicts() {
        let error = ApiError::from(DbError::UniqueViolation {
            constraint: "phone_numbers_platform_meta_id_key".to_owned(),
        });
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert!(error.problem().detail.contains("meta_phone_number_id"));
    }
}
