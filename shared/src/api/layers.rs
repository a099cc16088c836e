//! The layers every HTTP function wraps its router in, so behaviour at the edges (limits,
//! ids, logs, panics, unknown routes) is the same in every function and in devstack.

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, RawPathParams, rejection::RawPathParamsRejection},
    middleware::{self, Next},
    response::IntoResponse,
};
use http::{HeaderName, Request, Response};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};

use super::ApiError;

/// The largest JSON body the dashboard API accepts.
pub const API_BODY_LIMIT: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the fallbacks (problem JSON 404/405) and the common layers to a function's router.
pub fn finish(router: Router, body_limit: usize) -> Router {
    router
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(refuse_nul_in_path))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_request(())
                .on_response(on_response),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Refuses a path parameter holding U+0000 (`%00`), which PostgreSQL cannot store or compare,
/// with a 422 naming the parameter. It runs after routing (so the parameters are known) and
/// before the handler's extractors, so for every route, whatever extractors it uses; it
/// reveals nothing about a tenant, so it does not wait for authentication.
async fn refuse_nul_in_path(
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    if let Ok(params) = params {
        if let Some((name, _)) = params
            .iter()
            .find(|(_, value)| crate::domain::contains_nul(value))
        {
            return super::extract::nul_error(name.to_owned()).into_response();
        }
    }
    next.run(request).await
}

fn make_span<B>(request: &Request<B>) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.route = %route,
        request.id = %request_id,
        tenant.id = Empty,
    )
}

fn on_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let duration_ms = latency.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(http.status = status, duration_ms, "request finished");
    } else {
        tracing::info!(http.status = status, duration_ms, "request finished");
    }
}
