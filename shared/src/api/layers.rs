//! The layers every HTTP function wraps its router in, so behaviour at the edges (limits,
//! ids, logs, panics, unknown routes) is the same in every function and in devstack.
//!
//! - Request ids: a client's `X-Request-Id` is kept only when it is well formed (1 to 64
//!   characters of `A-Z a-z 0-9 . _ -`); otherwise one is generated (a UUID). The id is
//!   echoed in the response and is the `request.id` field of the request's span, so a
//!   client cannot put arbitrary text (newlines, 10 KB, lookalike ids) into our logs.
//! - Problem JSON everywhere: any error answered below our handlers (a body over the limit
//!   from axum's or tower-http's limit, an unreadable path, a preflight refused) is
//!   rendered as `application/problem+json` with the same status, so clients parse one
//!   error format whatever produced the error.

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, RawPathParams, rejection::RawPathParamsRejection},
    middleware::{self, Next},
    response::IntoResponse,
};
use http::{HeaderName, Request, Response, header};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};

use super::ApiError;

/// The largest JSON body the dashboard API accepts.
pub const API_BODY_LIMIT: usize = 256 * 1024;

/// The request-id header, read from clients and echoed to them.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The largest error body a lower layer may produce that is still read to become a
/// problem's detail (their bodies are one sentence).
const MAX_REJECTION_BODY: usize = 16 * 1024;

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
        .layer(middleware::map_response(problem_for_every_error))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(drop_malformed_request_id))
}

/// Whether a client-sent request id is kept: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub fn is_well_formed_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Removes a malformed (or repeated) `X-Request-Id`, so that `SetRequestIdLayer` generates
/// one instead of echoing and logging what the client sent.
async fn drop_malformed_request_id(mut request: Request<Body>) -> Request<Body> {
    let ids = request.headers().get_all(&REQUEST_ID);
    let mut values = ids.iter();
    let keep = match (values.next(), values.next()) {
        (Some(only), None) => is_well_formed_request_id(only.as_bytes()),
        _ => false,
    };
    if !keep {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// Renders an error response that is not JSON (axum's and tower-http's rejections are
/// `text/plain` or empty) as a problem document with the same status.
async fn problem_for_every_error(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    // Problem JSON already, or a JSON error a route writes on purpose (devstack's Meta
    // simulator answers Graph's error objects): left alone. Rejections are plain text.
    let is_json = super::extract::is_json(response.headers());
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_BODY)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let mut rendered = ApiError::from_status(status, text).into_response();
    // Headers a lower layer set (CORS, Allow, Retry-After) still apply.
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in rendered.headers() {
        headers.insert(name.clone(), value.clone());
    }
    *rendered.headers_mut() = headers;
    rendered
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{body::Bytes, routing::post};
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::limit::RequestBodyLimitLayer;

    use super::*;

    /// Log lines written while a test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    fn app() -> Router {
        let raw = Router::new().route(
            "/raw",
            post(|body: Bytes| async move { body.len().to_string() }),
        );
        // tower-http's limit answers before any extractor runs.
        let limited = Router::new()
            .route("/limited", post(|| async { "ok" }))
            .layer(RequestBodyLimitLayer::new(8));
        finish(
            Router::new()
                .route("/ping", axum::routing::get(|| async { "pong" }))
                .merge(raw)
                .merge(limited),
            16,
        )
    }

    async fn call(request: Request<Body>) -> (Response<Body>, Captured) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let response = app().oneshot(request).await.unwrap_or_else(|e| match e {});
        (response, captured)
    }

    fn get_with_ids(ids: &[&[u8]]) -> Request<Body> {
        let mut builder = Request::builder().uri("/ping");
        for id in ids {
            builder = builder.header(
                &REQUEST_ID,
                http::HeaderValue::from_bytes(id).expect("a header value"),
            );
        }
        builder.body(Body::empty()).expect("request")
    }

    fn echoed(response: &Response<Body>) -> String {
        response
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .expect("every response carries a request id")
            .to_owned()
    }

    #[tokio::test]
    async fn a_well_formed_request_id_is_echoed_and_logged() {
        let id = "req-01JD.abc_DEF-9";
        let (response, log) = call(get_with_ids(&[id.as_bytes()])).await;
        assert_eq!(echoed(&response), id);
        assert!(
            log.text().contains(&format!("request.id={id}")),
            "{}",
            log.text()
        );
    }

    #[tokio::test]
    async fn a_malformed_request_id_is_replaced_by_a_generated_one_in_the_header_and_the_log() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let cases: [&[&[u8]]; 6] = [
            &[b"has space"],
            &[b"forged\" tenant.id=victim"],
            &[too_long.as_bytes()],
            &[b""],
            &[b"caf\xc3\xa9"],
            &[b"one", b"two"],
        ];
        for ids in cases {
            let (response, log) = call(get_with_ids(ids)).await;
            let id = echoed(&response);
            assert!(
                uuid_like(&id),
                "{ids:?}: a generated id is echoed, got {id:?}"
            );
            let text = log.text();
            assert!(text.contains(&format!("request.id={id}")), "{text}");
            for sent in ids {
                let sent = String::from_utf8_lossy(sent);
                assert!(
                    sent.is_empty() || !text.contains(sent.as_ref()),
                    "{sent:?} must not reach the log: {text}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_one() {
        let (response, _) = call(get_with_ids(&[])).await;
        assert!(uuid_like(&echoed(&response)));
    }

    fn uuid_like(id: &str) -> bool {
        id.len() == 36 && is_well_formed_request_id(id.as_bytes())
    }

    async fn problem_of(response: Response<Body>) -> (StatusCode, String, serde_json::Value) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, content_type, body)
    }

    fn post_bytes(path: &str, size: usize) -> Request<Body> {
        Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(Body::from(vec![b'x'; size]))
            .expect("request")
    }

    #[tokio::test]
    async fn bodies_over_either_limit_are_problem_json_413s() {
        for path in ["/raw", "/limited"] {
            let (response, _) = call(post_bytes(path, 1024)).await;
            let (status, content_type, body) = problem_of(response).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            assert_eq!(content_type, "application/problem+json", "{path}");
            assert_eq!(body["status"], 413, "{path}");
            assert_eq!(body["type"], "urn:problem:payload-too-large", "{path}");
        }
        let (response, _) = call(post_bytes("/raw", 4)).await;
        assert_eq!(response.status(), StatusCode::OK, "under the limit");
    }

    #[tokio::test]
    async fn other_rejections_below_the_handlers_are_problem_json_too() {
        // axum's own `Bytes` rejection of a body that is not valid for the route would be
        // text/plain; so is a refused preflight. Here: a 405 with an `Allow` header kept.
        let request = Request::builder()
            .method("DELETE")
            .uri("/ping")
            .body(Body::empty())
            .expect("request");
        let (response, _) = call(request).await;
        let (status, content_type, body) = problem_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 405);
    }

    #[test]
    fn plain_errors_become_problems_with_their_status() {
        let teapot = ApiError::from_status(StatusCode::IM_A_TEAPOT, "short and stout".to_owned());
        let problem = teapot.problem();
        assert_eq!(problem.status, 418);
        assert_eq!(problem.problem_type, "urn:problem:i-m-a-teapot");
        assert_eq!(problem.detail, "short and stout");
        let hidden = ApiError::from_status(StatusCode::BAD_GATEWAY, "upstream said x".to_owned());
        assert!(!hidden.problem().detail.contains("upstream"));
    }
}
