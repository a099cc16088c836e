//! The OAuth `state`: `<state id>.<expiry, unix seconds>.<signature>`, where the signature
//! is HMAC-SHA256 (a key derived from the sealing key) over the tenant, the id and the
//! expiry. A state made for another tenant, altered, or past its expiry is refused before
//! the database is asked; the id names a `google_oauth_states` row the callback deletes, so a
//! state is used at most once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{crypto::SealingKey, domain::UserId};

/// How long a consent may take.
pub const STATE_LIFETIME: Duration = Duration::minutes(10);

const PURPOSE: &str = "google-oauth-state";

/// Why a presented state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("is not a state this service issued")]
    Malformed,
    #[error("was not issued for this account or was altered")]
    BadSignature,
    #[error("has expired: start the connection again")]
    Expired,
}

/// A fresh state for `tenant`: its id (the row's key) and the signed value.
pub fn issue(
    key: &SealingKey,
    tenant: &UserId,
    now: DateTime<Utc>,
) -> (String, String, DateTime<Utc>) {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let expires_at = now + STATE_LIFETIME;
    let expiry = expires_at.timestamp();
    let signature = sign(key, tenant, &id, expiry);
    (id.clone(), format!("{id}.{expiry}.{signature}"), expires_at)
}

/// Checks a presented state for `tenant` at `now`; returns the row id it names.
pub fn verify(
    key: &SealingKey,
    tenant: &UserId,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<String, StateError> {
    let mut parts = presented.split('.');
    let (Some(id), Some(expiry), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StateError::Malformed);
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StateError::Malformed);
    }
    let expiry: i64 = expiry.parse().map_err(|_| StateError::Malformed)?;
    let presented_mac = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| StateError::Malformed)?;
    mac(key, tenant, id, expiry)
        .verify_slice(&presented_mac)
        .map_err(|_| StateError::BadSignature)?;
    if now.timestamp() >= expiry {
        return Err(StateError::Expired);
    }
    Ok(id.to_owned())
}

fn mac(key: &SealingKey, tenant: &UserId, id: &str, expiry: i64) -> Hmac<Sha256> {
    // A derived key is 32 bytes, which HMAC always accepts.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.derive_key(PURPOSE))
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(tenant.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(id.as_bytes());
    mac.update(b"\0");
    mac.update(expiry.to_string().as_bytes());
    mac
}

fn sign(key: &SealingKey, tenant: &UserId, id: &str, expiry: i64) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, tenant, id, expiry).finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&SealingKey::generate_base64()).expect("key")
    }

    fn tenant(raw: &str) -> UserId {
        UserId::parse(raw).expect("user id")
    }

    #[test]
    fn a_state_verifies_for_its_tenant_until_it_expires() {
        let key = key();
        let now = Utc::now();
        let (id, state, _) = issue(&key, &tenant("acme"), now);
        assert_eq!(verify(&key, &tenant("acme"), &state, now), Ok(id));
        assert_eq!(
            verify(&key, &tenant("acme"), &state, now + Duration::minutes(10)),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn another_tenant_an_altered_state_or_garbage_is_refused() {
        let key = key();
        let now = Utc::now();
        let (_, state, _) = issue(&key, &tenant("acme"), now);
        assert_eq!(
            verify(&key, &tenant("globex"), &state, now),
            Err(StateError::BadSignature)
        );
        let later = state.replacen('.', ".9", 1);
        assert_eq!(
            verify(&key, &tenant("acme"), &later, now),
            Err(StateError::BadSignature)
        );
        for garbage in ["", "a.b", "a.1.c.d", "x\0y.1.AAAA", "id.notanumber.AAAA"] {
            assert_eq!(
                verify(&key, &tenant("acme"), garbage, now),
                Err(StateError::Malformed),
                "{garbage:?}"
            );
        }
    }
}
