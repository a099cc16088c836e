//! The one table that says which Graph API failures are worth retrying. Everything the
//! worker and the send worker decide about a failed send comes from here.

/// What to do about a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// Rate limits, throughput, maintenance, outages: retry later through the queue.
    Retryable,
    /// The message can never be delivered as it is (outside the 24-hour window, not a
    /// WhatsApp user, unsupported, bad token...): mark it failed and stop.
    Permanent,
}

/// Classifies a Graph API error by its `error.code` (and the HTTP status when there is no
/// code, e.g. a gateway error).
pub fn classify(http_status: u16, code: Option<i64>) -> SendFailure {
    match code {
        // Rate limits and throughput: 4 app, 17 user, 32 page, 613 calls, 80007 Instagram,
        // 130429 Cloud API throughput, 131056 pair rate limit.
        Some(4 | 17 | 32 | 613 | 80007 | 130_429 | 131_056) => SendFailure::Retryable,
        // Transient platform trouble: 1 unknown, 2 service, 131000 something went wrong,
        // 131016 service unavailable, 131057 account in maintenance, 133004 server
        // temporarily unavailable.
        Some(1 | 2 | 131_000 | 131_016 | 131_057 | 133_004) => SendFailure::Retryable,
        // Everything else with a code is about this message or this account: 131047
        // re-engagement (outside 24 h), 131026 undeliverable, 131051 unsupported type,
        // 131021 recipient is sender, 131030 not in allowed list, 131031 account locked,
        // 131042 payment, 131045 certificate, 131048 spam rate, 131049 ecosystem limit,
        // 131050 marketing opt-out, 100 invalid parameter, 190 expired token, 10/200
        // permissions, 368 policy block.
        Some(_) => SendFailure::Permanent,
        None if http_status == 429 || http_status >= 500 || http_status == 408 => {
            SendFailure::Retryable
        }
        None => SendFailure::Permanent,
    }
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
        ];
        for (status, code, expected) in cases {
            assert_eq!(classify(status, code), expected, "{status} {code:?}");
        }
    }
}
