//! `Idempotency-Key`: a client's retry of a request that changes something answers the
//! first request's result instead of doing it again (with `Idempotent-Replayed: true`).

use axum::http::HeaderMap;

/// The request header that makes a request idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer that replays an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The `Idempotency-Key`: 1 to 255 visible ASCII characters sent once, or absent. The
/// message completes "Idempotency-Key …".
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("must be sent once".to_owned());
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err("must be 1 to 255 visible ASCII characters".to_owned());
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters_sent_once() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers), Ok(None));
        headers.insert(IDEMPOTENCY_KEY_HEADER, "order-42".parse().expect("value"));
        assert_eq!(idempotency_key(&headers), Ok(Some("order-42".to_owned())));
        headers.append(IDEMPOTENCY_KEY_HEADER, "again".parse().expect("value"));
        assert!(idempotency_key(&headers).is_err());
        for bad in ["", "two words", &"x".repeat(256)] {
            let mut headers = HeaderMap::new();
            headers.insert(IDEMPOTENCY_KEY_HEADER, bad.parse().expect("value"));
            assert!(idempotency_key(&headers).is_err(), "{bad:?}");
        }
    }
}
