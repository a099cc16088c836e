//! `GET /webchat-demo/{widget_key}`: a page that embeds the website chat widget exactly as a
//! business's site would, with one `<script>` tag pointing at devstack's own webchat routes,
//! under a strict Content-Security-Policy (no inline script or style, connections only to the
//! webchat), so the widget is shown to work where a careful site's policy applies.
//!
//! Open it on another origin than the API's to exercise CORS as a real site does: devstack
//! serves the API on `http://127.0.0.1:PORT`, so `http://localhost:PORT/webchat-demo/…` is
//! a different origin (add it to the channel's `allowed_origins`).
//!
//! Query parameters `title`, `greeting`, `color`, `agent_name`, `position` and `open` become
//! the tag's `data-` attributes (the widget's per-page overrides).

use axum::{
    Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

/// The stylesheet of the demo page (the page itself has no inline style, like its script).
const DEMO_CSS: &str = "body{margin:0;font:16px/1.5 Georgia,serif;color:#222;background:#fbf8f3}\
header{padding:18px 32px;background:#2d2a26;color:#fbf8f3}header h1{margin:0;font-size:24px}\
main{max-width:520px;padding:24px 32px}code{font-size:13px;word-break:break-all;background:#eee7dc;padding:2px 4px}";

/// The demo page's routes; `base_url` is where devstack serves the webchat (the script's
/// origin).
pub fn router(base_url: String) -> Router {
    Router::new()
        .route("/webchat-demo/assets/demo.css", get(stylesheet))
        .route("/webchat-demo/{widget_key}", get(page))
        .with_state(base_url)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        DEMO_CSS,
    )
}

/// The `data-` attributes a demo page may set on the tag.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Overrides {
    title: Option<String>,
    greeting: Option<String>,
    color: Option<String>,
    agent_name: Option<String>,
    position: Option<String>,
    open: Option<String>,
}

/// Escapes text for an HTML attribute value or element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A widget key's shape (`wk_` and base64url); anything else is not a widget.
fn valid_key(key: &str) -> bool {
    key.len() <= 100
        && key.starts_with("wk_")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn page(
    State(base_url): State<String>,
    Path(widget_key): Path<String>,
    query: Result<Query<Overrides>, QueryRejection>,
) -> Response {
    if !valid_key(&widget_key) {
        return (StatusCode::NOT_FOUND, "no such widget key").into_response();
    }
    let Ok(Query(overrides)) = query else {
        return (StatusCode::BAD_REQUEST, "unknown demo parameter").into_response();
    };
    let mut data = String::new();
    for (name, value) in [
        ("title", &overrides.title),
        ("greeting", &overrides.greeting),
        ("color", &overrides.color),
        ("agent-name", &overrides.agent_name),
        ("position", &overrides.position),
        ("open", &overrides.open),
    ] {
        if let Some(value) = value {
            data.push_str(&format!(" data-{name}=\"{}\"", escape(value)));
        }
    }
    let src = format!(
        "{base_url}{}",
        shared::webchat_widget::script_path(&widget_key)
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Demo shop: website chat</title>\n<link rel=\"stylesheet\" href=\"/webchat-demo/assets/demo.css\">\n\
</head>\n<body>\n<header><h1>Lisbon Coffee Roasters</h1></header>\n<main>\n\
<p>This page stands for a business's website. It embeds the chat widget with the one tag a \
business pastes:</p>\n<p><code>{tag_text}</code></p>\n\
<p>Its Content-Security-Policy allows no inline script or style and connections only to the \
chat's API.</p>\n</main>\n\
<script src=\"{src}\" async crossorigin=\"anonymous\"{data}></script>\n</body>\n</html>\n",
        tag_text = escape(&format!(
            "<script src=\"{src}\" async crossorigin=\"anonymous\"></script>"
        )),
        src = escape(&src),
    );
    let csp = format!(
        "default-src 'none'; script-src {base}/webchat/; connect-src {base}/webchat/; \
         style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        base = base_url
    );
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_attributes_and_content() {
        assert_eq!(
            escape(r#"<b a="x">'&'</b>"#),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn only_widget_key_shapes_are_demo_pages() {
        assert!(valid_key("wk_abcDEF012-_"));
        assert!(!valid_key("wk_<script>"));
        assert!(!valid_key("pn_01"));
    }
}
