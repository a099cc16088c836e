//! The one table that says which Graph API failures are worth retrying
//! ([`SEND_ERROR_CODES`]). Everything the send path (`shared::outbound`) and the account
//! checks decide about a failed Graph call comes from here.

pub use crate::domain::SendFailure;

/// Meta's error codes that the send path knows, with their class and meaning. A code not
/// listed is [`SendFailure::Permanent`]: it is about this message or this account, and
/// retrying the same request cannot change Meta's answer.
pub const SEND_ERROR_CODES: &[(i64, SendFailure, &str)] = &[
    // Rate limits and throughput.
    (4, SendFailure::Retryable, "app rate limit"),
    (17, SendFailure::Retryable, "user rate limit"),
    (32, SendFailure::Retryable, "page rate limit"),
    (613, SendFailure::Retryable, "calls rate limit"),
    (80_007, SendFailure::Retryable, "Instagram rate limit"),
    (
        130_429,
        SendFailure::Retryable,
        "Cloud API throughput reached",
    ),
    (
        131_056,
        SendFailure::Retryable,
        "too many messages to this customer (pair rate limit)",
    ),
    // Transient platform trouble.
    (1, SendFailure::Retryable, "unknown API error"),
    (2, SendFailure::Retryable, "service temporarily unavailable"),
    (131_000, SendFailure::Retryable, "something went wrong"),
    (131_016, SendFailure::Retryable, "service unavailable"),
    (
        131_057,
        SendFailure::Retryable,
        "business account in maintenance mode",
    ),
    (
        133_004,
        SendFailure::Retryable,
        "server temporarily unavailable",
    ),
    // About this message, this customer or this account.
    (
        368,
        SendFailure::Permanent,
        "temporarily blocked for policy violations",
    ),
    (131_026, SendFailure::Permanent, "message undeliverable"),
    (
        131_047,
        SendFailure::Permanent,
        "re-engagement: more than 24 hours since the customer's last message",
    ),
    (
        131_049,
        SendFailure::Permanent,
        "not delivered to maintain healthy ecosystem engagement",
    ),
    (
        131_050,
        SendFailure::Permanent,
        "the customer stopped marketing messages",
    ),
    (131_051, SendFailure::Permanent, "unsupported message type"),
    (
        132_000,
        SendFailure::Permanent,
        "template parameter count mismatch",
    ),
    (
        132_001,
        SendFailure::Permanent,
        "template does not exist in this language",
    ),
    (
        132_012,
        SendFailure::Permanent,
        "template parameter format mismatch",
    ),
    (
        132_015,
        SendFailure::Permanent,
        "template paused for low quality",
    ),
    (
        132_016,
        SendFailure::Permanent,
        "template disabled for low quality",
    ),
    (
        190,
        SendFailure::Permanent,
        "access token expired or revoked",
    ),
];

/// Classifies a Graph API error by its `error.code` (and the HTTP status when there is no
/// code, e.g. a gateway error or a body that is not Graph's JSON).
pub fn classify(http_status: u16, code: Option<i64>) -> SendFailure {
    match code {
        Some(code) => SEND_ERROR_CODES
            .iter()
            .find(|(known, _, _)| *known == code)
            .map_or(SendFailure::Permanent, |(_, class, _)| *class),
        None if http_status == 429 || http_status >= 500 || http_status == 408 => {
            SendFailure::Retryable
        }
        None => SendFailure::Permanent,
    }
}

/// What Meta's code means, when the table knows it.
pub fn meaning(code: i64) -> Option<&'static str> {
    SEND_ERROR_CODES
        .iter()
        .find(|(known, _, _)| *known == code)
        .map(|(_, _, meaning)| *meaning)
}

/// What a failed account check says about a channel being connected: reading an Instagram
/// account, listing a WhatsApp Business Account's numbers, subscribing to its webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFailure {
    /// Meta could not answer now (the retryable rows of [`classify`], timeouts, an answer
    /// that is not Graph's): nothing can be concluded; try again later.
    Unavailable,
    /// The token is invalid, expired or revoked: 190 (with subcodes 458–467), 102.
    InvalidToken,
    /// The token is valid but may not read or manage this object: 3, 10, 200–299.
    PermissionDenied,
    /// No such object, or this token cannot see it: 100 (subcode 33), 803.
    NotFound,
    /// Anything else Meta refused.
    Refused,
}

/// Classifies a failed account check; the retryable rows of the send table apply first.
pub fn classify_check(http_status: u16, code: Option<i64>) -> CheckFailure {
    if classify(http_status, code) == SendFailure::Retryable {
        return CheckFailure::Unavailable;
    }
    match code {
        Some(190 | 102) => CheckFailure::InvalidToken,
        Some(3 | 10 | 200..=299) => CheckFailure::PermissionDenied,
        Some(100 | 803) => CheckFailure::NotFound,
        _ => CheckFailure::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_checks_tell_a_bad_token_from_a_missing_object_and_an_outage() {
        let cases = [
            (401, Some(190), CheckFailure::InvalidToken),
            (400, Some(102), CheckFailure::InvalidToken),
            (403, Some(200), CheckFailure::PermissionDenied),
            (400, Some(10), CheckFailure::PermissionDenied),
            (400, Some(100), CheckFailure::NotFound),
            (400, Some(368), CheckFailure::Refused),
            (400, Some(4), CheckFailure::Unavailable),
            (500, Some(2), CheckFailure::Unavailable),
            (502, None, CheckFailure::Unavailable),
            (404, None, CheckFailure::Refused),
        ];
        for (status, code, expected) in cases {
            assert_eq!(classify_check(status, code), expected, "{status} {code:?}");
        }
    }

    #[test]
    fn the_table_matches_meta_guidance() {
        let cases = [
            (400, Some(131_047), SendFailure::Permanent),
            (400, Some(131_026), SendFailure::Permanent),
            (400, Some(131_051), SendFailure::Permanent),
            (400, Some(190), SendFailure::Permanent),
            (400, Some(130_429), SendFailure::Retryable),
            (400, Some(131_056), SendFailure::Retryable),
            (503, Some(131_057), SendFailure::Retryable),
            (500, None, SendFailure::Retryable),
            (429, None, SendFailure::Retryable),
            (404, None, SendFailure::Permanent),
            (400, Some(131_049), SendFailure::Permanent),
            (400, Some(131_050), SendFailure::Permanent),
            (400, Some(132_000), SendFailure::Permanent),
            (400, Some(132_001), SendFailure::Permanent),
            (400, Some(132_012), SendFailure::Permanent),
            (400, Some(132_015), SendFailure::Permanent),
            (400, Some(132_016), SendFailure::Permanent),
            (400, Some(368), SendFailure::Permanent),
            (400, Some(999_999), SendFailure::Permanent),
        ];
        for (status, code, expected) in cases {
            assert_eq!(classify(status, code), expected, "{status} {code:?}");
        }
    }

    #[test]
    fn every_code_is_listed_once() {
        let mut codes: Vec<i64> = SEND_ERROR_CODES.iter().map(|(code, _, _)| *code).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before);
        assert_eq!(meaning(130_429), Some("Cloud API throughput reached"));
    }
}
