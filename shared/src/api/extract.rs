use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
};
use http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::{ApiError, FieldError};
use crate::domain::{contains_nul, replace_nul};

/// The message of a field refused for holding U+0000.
pub(crate) const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

pub(crate) fn nul_error(field: String) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, NUL_MESSAGE)])
}

/// The path (serde_path_to_error's notation: `a.b[0].c`) of the first string or key of a JSON
/// body that holds U+0000. JSON can carry a NUL only as the escape `\u0000`, so bodies
/// without one are not walked; malformed bodies are left to the deserializer's errors.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !bytes.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut path = String::new();
    nul_in_value(&value, &mut path).then(|| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path
        }
    })
}

/// Walks `value`; on a NUL leaves `path` pointing at it and answers `true`.
fn nul_in_value(value: &serde_json::Value, path: &mut String) -> bool {
    let start = path.len();
    match value {
        serde_json::Value::String(text) => return contains_nul(text),
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                if nul_in_value(item, path) {
                    return true;
                }
                path.truncate(start);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&replace_nul(key));
                if contains_nul(key) || nul_in_value(item, path) {
                    return true;
                }
                path.truncate(start);
            }
        }
        _ => {}
    }
    false
}

/// A JSON body. Unlike `axum::Json`, every rejection is problem JSON: malformed JSON is a 400,
/// a wrong type, a missing or unknown field, a wrong enum value or a string holding U+0000
/// (which PostgreSQL cannot store) is a 422 naming the field, a body over the limit is a 413
/// and a non-JSON content type a 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::not_json());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest {
                    detail: "the request body could not be read".to_owned(),
                    errors: vec![],
                },
            }
        })?;
        from_json_slice(&bytes).map(Json)
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
pub fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserializes JSON with the problem-JSON error mapping of [`Json`].
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = nul_in_json(bytes) {
        return Err(nul_error(field));
    }
    // serde fills a struct from a JSON array by position (`["Acme"]` would set the first
    // field); every body of this API is an object, so an array is refused by name.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "must be a JSON object, not an array",
        )]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::Validation(vec![field_error(&path, &inner.to_string(), "body")])
            }
            // serde_json reports a number, boolean, null or array where an enum's string
            // belongs as a syntax error ("expected value"); the JSON is fine, the type is not.
            serde_json::error::Category::Syntax
                if path != "."
                    && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() =>
            {
                ApiError::Validation(vec![FieldError::new(
                    path,
                    "has the wrong type: expected a string, one of the documented values",
                )])
            }
            _ => ApiError::BadRequest {
                detail: format!(
                    "the body is not valid JSON: {}",
                    client_message(&inner.to_string())
                ),
                errors: vec![],
            },
        }
    })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        detail: format!(
            "the body is not valid JSON: {}",
            client_message(&error.to_string())
        ),
        errors: vec![],
    })?;
    Ok(value)
}

/// Query-string parameters, with the same error mapping as [`Json`] (always 422 naming the
/// parameter: a query string cannot be malformed the way JSON can; `%00` anywhere is a 422
/// naming its parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| contains_nul(name) || contains_nul(value))
        {
            return Err(nul_error(replace_nul(&name).into_owned()));
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                ApiError::Validation(vec![field_error(
                    &path,
                    &error.into_inner().to_string(),
                    "query",
                )])
            })
    }
}

/// Turns serde's message into a field error. Unknown, missing and repeated fields are
/// reported by serde at the parent's path with the name in the message; they are moved into
/// the path. An error of the whole is named `whole` (`body`, or `query` for parameters).
fn field_error(path: &str, message: &str, whole: &str) -> FieldError {
    let message = client_message(message);
    let parent = if path == "." { "" } else { path };
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((name, _)) = rest.split_once('`') {
                // serde_path_to_error already ends the path with an unknown field's name.
                let field = if parent.is_empty() {
                    name.to_owned()
                } else if parent == name || parent.ends_with(&format!(".{name}")) {
                    parent.to_owned()
                } else {
                    format!("{parent}.{name}")
                };
                let message = if prefix.starts_with("unknown") {
                    "is not a known field".to_owned()
                } else if prefix.starts_with("duplicate") {
                    "is given more than once".to_owned()
                } else {
                    "is required".to_owned()
                };
                return FieldError::new(field, message);
            }
        }
    }
    let field = if parent.is_empty() { whole } else { parent };
    FieldError::new(field, message)
}

/// serde_json appends " at line L column C"; the field path says more to a client. Rust's
/// type names (`expected i32`, `struct RecipientFilterBody`, `untagged enum
/// VariableSource`) say nothing to one, so they are said in JSON's words.
fn client_message(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    };
    if message.starts_with("data did not match any variant of untagged enum") {
        return "is none of the accepted forms (see the API document)".to_owned();
    }
    let Some((found, expected)) = message.split_once(", expected ") else {
        return message.to_owned();
    };
    let words = match expected {
        e if e.starts_with("struct ") || e.starts_with("a map") => "an object",
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "an integer"
        }
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        other => other,
    };
    format!("{found}, expected {words}")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::domain::Platform;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        name: String,
        platform: Platform,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Nested {
        count: u8,
    }

    fn errors_of(json: &str) -> (u16, Vec<FieldError>) {
        let error = from_json_slice::<Body>(json.as_bytes()).expect_err("must be refused");
        (error.status().as_u16(), error.problem().errors)
    }

    #[test]
    fn an_array_is_not_read_as_a_struct_by_position() {
        let (status, errors) = errors_of(r#" ["acme", "whatsapp", null]"#);

        assert_eq!(status, 422);
        assert_eq!(errors[0].field, "body");
    }

    #[test]
    fn malformed_json_is_a_400() {
        for body in [
            "{",
            "",
            "{\"name\": }",
            "{\"name\":\"a\",\"platform\":\"webchat\"} trailing",
        ] {
            assert_eq!(errors_of(body).0, 400, "body {body:?}");
        }
    }

    #[test]
    fn data_errors_are_422s_naming_the_field() {
        let cases = [
            (r#"{"name":"a","platform":"telegram"}"#, "platform"),
            (r#"{"name":1,"platform":"webchat"}"#, "name"),
            (r#"{"platform":"webchat"}"#, "name"),
            (r#"{"name":"a","platform":"webchat","extra":1}"#, "extra"),
            (
                r#"{"name":"a","platform":"webchat","nested":{"count":300}}"#,
                "nested.count",
            ),
            (
                r#"{"name":"a","platform":"webchat","nested":{"bogus":1}}"#,
                "nested.bogus",
            ),
            (r#"[]"#, "body"),
        ];
        for (body, field) in cases {
            let (status, errors) = errors_of(body);
            assert_eq!(status, 422, "body {body}");
            assert_eq!(errors.len(), 1, "body {body}");
            assert_eq!(errors[0].field, field, "body {body}: {:?}", errors[0]);
        }
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_a_422_naming_its_path() {
        let cases = [
            (r#"{"name":"hi \u0000 there","platform":"webchat"}"#, "name"),
            (
                r#"{"name":"a","platform":"webchat","nested":{"count":1,"x\u0000":1}}"#,
                "nested.x\u{FFFD}",
            ),
            (r#"{"list":[{"a":"ok"},{"b":"\u0000"}]}"#, "list[1].b"),
            (r#""\u0000""#, "body"),
        ];
        for (body, field) in cases {
            let error =
                from_json_slice::<serde_json::Value>(body.as_bytes()).expect_err("must be refused");
            assert_eq!(error.status().as_u16(), 422, "body {body}");
            assert_eq!(
                error.problem().errors,
                vec![FieldError::new(field, NUL_MESSAGE)],
                "body {body}"
            );
        }
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_not_a_nul() {
        let value: serde_json::Value =
            from_json_slice(br#"{"text":"C:\\u0000"}"#).expect("no NUL in it");
        assert_eq!(value["text"], "C:\\u0000");
    }

    #[tokio::test]
    async fn a_nul_in_a_query_parameter_is_a_422_naming_it() {
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "fields exist to be deserialized")]
        struct Params {
            customer_phone: Option<String>,
        }
        let request = http::Request::builder()
            .uri("/conversations?customer_phone=%00")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        let error = Query::<Params>::from_request_parts(&mut parts, &())
            .await
            .expect_err("refused");
        assert_eq!(error.status().as_u16(), 422);
        assert_eq!(
            error.problem().errors,
            vec![FieldError::new("customer_phone", NUL_MESSAGE)]
        );
    }

    #[tokio::test]
    async fn a_repeated_query_parameter_is_a_422_naming_it() {
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "fields exist to be deserialized")]
        struct Params {
            status: Option<String>,
        }
        let request = http::Request::builder()
            .uri("/templates?status=DRAFT&status=APPROVED")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        let error = Query::<Params>::from_request_parts(&mut parts, &())
            .await
            .expect_err("refused");
        assert_eq!(error.status().as_u16(), 422);
        assert_eq!(
            error.problem().errors,
            vec![FieldError::new("status", "is given more than once")]
        );
    }

    #[test]
    fn content_types_with_parameters_and_json_suffixes_are_json() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("valid"),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().expect("valid"),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("valid"));
        assert!(!is_json(&headers));
    }

    #[test]
    fn a_wrong_type_for_an_enum_names_its_field() {
        let (status, errors) = errors_of(r#"{"name": "a", "platform": 5}"#);
        assert_eq!(status, 422);
        assert_eq!(errors[0].field, "platform");
        let (status, errors) =
            errors_of(r#"{"name": "a", "platform": "whatsapp", "nested": {"count": "x"}}"#);
        assert_eq!(status, 422);
        assert_eq!(errors[0].field, "nested.count");
        assert_eq!(
            errors[0].message,
            "invalid type: string \"x\", expected an integer"
        );
        let (status, _) = errors_of(r#"{"name": "a", "platform": 5"#);
        assert_eq!(status, 400, "broken JSON stays a 400");
    }
}
