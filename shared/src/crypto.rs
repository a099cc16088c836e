//! Sealing of provider secrets at rest (Meta access tokens, Google OAuth tokens) with
//! AES-256-GCM. A sealed value is `v1:` followed by base64 of a fresh 96-bit nonce and the
//! ciphertext with its tag. The column name is bound in as associated data, so a value
//! copied into another column does not open.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The 256-bit key that seals and opens secrets, and from which keys for other purposes
/// (signing pagination cursors) are derived. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    /// HMAC-SHA256 keyed with the same bytes: `derive_key`'s PRF.
    derivation: Hmac<Sha256>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// The configured key is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SealingKeyError {
    #[error("must be base64")]
    NotBase64,
    #[error("must decode to 32 bytes, got {0}")]
    WrongLength(usize),
}

/// Sealing failed (the plaintext is beyond what AES-GCM can encrypt in one message).
#[derive(Debug, thiserror::Error)]
#[error("secret could not be sealed")]
pub struct SealError;

/// A sealed value could not be opened: wrong key, wrong column, or tampered.
#[derive(Debug, thiserror::Error)]
#[error("sealed secret could not be opened")]
pub struct OpenError;

/// Which column a secret belongs to; bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub enum SecretKind {
    /// `phone_numbers.access_token`.
    ChannelAccessToken,
    /// `google_calendar_tokens.access_token`.
    GoogleAccessToken,
    /// `google_calendar_tokens.refresh_token`.
    GoogleRefreshToken,
}

impl SecretKind {
    fn associated_data(self) -> &'static [u8] {
        match self {
            Self::ChannelAccessToken => b"phone_numbers.access_token",
            Self::GoogleAccessToken => b"google_calendar_tokens.access_token",
            Self::GoogleRefreshToken => b"google_calendar_tokens.refresh_token",
        }
    }
}

impl SealingKey {
    /// Builds the key from 32 bytes encoded in standard base64.
    pub fn from_base64(encoded: &str) -> Result<Self, SealingKeyError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SealingKeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// Builds the key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealingKeyError> {
        let cipher = Aes256Gcm::new_from_slice(bytes)
            .map_err(|_| SealingKeyError::WrongLength(bytes.len()))?;
        let derivation = <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map_err(|_| SealingKeyError::WrongLength(bytes.len()))?;
        Ok(Self { cipher, derivation })
    }

    /// A 256-bit key for another purpose, derived from this one (HMAC-SHA256 of the
    /// purpose's label), so one configured secret serves several purposes without a key
    /// used for two of them.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.derivation.clone();
        mac.update(b"salesagent derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh random key, base64-encoded (for `devstack` and operators' set-up).
    pub fn generate_base64() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    /// Seals `plaintext` for storage in the column `kind` names.
    pub fn seal(&self, kind: SecretKind, plaintext: &str) -> Result<String, SealError> {
        self.seal_with(kind.associated_data(), plaintext)
    }

    /// Seals `plaintext` for the column `kind` names in the row keyed `row` (its primary
    /// key): the value opens only in that column of that row, so a token copied into another
    /// tenant's row does not open.
    pub fn seal_for_row(
        &self,
        kind: SecretKind,
        row: &str,
        plaintext: &str,
    ) -> Result<String, SealError> {
        self.seal_with(&row_bound(kind, row), plaintext)
    }

    /// Opens a value sealed by [`SealingKey::seal_for_row`] for the same column and row.
    pub fn open_for_row(
        &self,
        kind: SecretKind,
        row: &str,
        sealed: &str,
    ) -> Result<String, OpenError> {
        self.open_with(&row_bound(kind, row), sealed)
    }

    /// Opens a value sealed by [`SealingKey::seal`] for the same column.
    pub fn open(&self, kind: SecretKind, sealed: &str) -> Result<String, OpenError> {
        self.open_with(kind.associated_data(), sealed)
    }

    fn seal_with(&self, aad: &[u8], plaintext: &str) -> Result<String, SealError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad,
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SealError)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION_PREFIX}{}", STANDARD.encode(sealed)))
    }

    fn open_with(&self, aad: &[u8], sealed: &str) -> Result<String, OpenError> {
        let encoded = sealed.strip_prefix(VERSION_PREFIX).ok_or(OpenError)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| OpenError)?;
        if bytes.len() <= NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| OpenError)?;
        String::from_utf8(plaintext).map_err(|_| OpenError)
    }
}

/// The associated data of a row-bound secret: the column, a NUL, the row's key.
fn row_bound(kind: SecretKind, row: &str) -> Vec<u8> {
    let mut aad = kind.associated_data().to_vec();
    aad.push(0);
    aad.extend_from_slice(row.as_bytes());
    aad
}

/// Whether a secret presented by a caller equals the configured one, in constant time (so
/// the comparison's duration does not tell an attacker how much of a guess was right).
pub fn secrets_match(presented: &str, expected: &secrecy::SecretString) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    bool::from(
        presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&SealingKey::generate_base64()).expect("generated key is valid")
    }

    #[test]
    fn sealed_values_open_back_and_hide_the_plaintext() {
        let key = key();
        let sealed = key
            .seal(SecretKind::ChannelAccessToken, "EAAG-token")
            .expect("seals");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("EAAG-token"));
        assert_eq!(
            key.open(SecretKind::ChannelAccessToken, &sealed)
                .ok()
                .as_deref(),
            Some("EAAG-token")
        );
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let key = key();
        let a = key
            .seal(SecretKind::ChannelAccessToken, "same")
            .expect("seals");
        let b = key
            .seal(SecretKind::ChannelAccessToken, "same")
            .expect("seals");
        assert_ne!(a, b);
    }

    #[test]
    fn another_key_another_column_or_tampering_do_not_open() {
        let key = key();
        let sealed = key
            .seal(SecretKind::GoogleAccessToken, "secret")
            .expect("seals");
        assert!(
            super::SealingKey::from_base64(&SealingKey::generate_base64())
                .expect("valid")
                .open(SecretKind::GoogleAccessToken, &sealed)
                .is_err()
        );
        assert!(key.open(SecretKind::GoogleRefreshToken, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(key.open(SecretKind::GoogleAccessToken, &tampered).is_err());
        assert!(
            key.open(SecretKind::GoogleAccessToken, "plaintext")
                .is_err()
        );
    }

    #[test]
    fn a_row_bound_secret_opens_only_in_its_row_and_column() {
        let key = key();
        let sealed = key
            .seal_for_row(SecretKind::GoogleRefreshToken, "acme", "1//refresh")
            .expect("seals");
        assert_eq!(
            key.open_for_row(SecretKind::GoogleRefreshToken, "acme", &sealed)
                .ok()
                .as_deref(),
            Some("1//refresh")
        );
        assert!(
            key.open_for_row(SecretKind::GoogleRefreshToken, "globex", &sealed)
                .is_err()
        );
        assert!(
            key.open_for_row(SecretKind::GoogleAccessToken, "acme", &sealed)
                .is_err()
        );
        assert!(key.open(SecretKind::GoogleRefreshToken, &sealed).is_err());
    }

    #[test]
    fn secrets_match_only_when_equal() {
        let expected = secrecy::SecretString::from("s3cret");
        assert!(secrets_match("s3cret", &expected));
        assert!(!secrets_match("s3cre", &expected));
        assert!(!secrets_match("s3cret!", &expected));
        assert!(!secrets_match("", &expected));
    }

    #[test]
    fn keys_of_the_wrong_size_are_refused() {
        assert!(matches!(
            SealingKey::from_base64("c2hvcnQ="),
            Err(SealingKeyError::WrongLength(5))
        ));
        assert!(matches!(
            SealingKey::from_base64("not base64!"),
            Err(SealingKeyError::NotBase64)
        ));
    }
}
