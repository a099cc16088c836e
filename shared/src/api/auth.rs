//! Bearer-token authentication. The tenant is the verified token's `sub`; nothing else in a
//! request can name a tenant.
//!
//! Keys are either a shared HS256 secret (devstack, tests) or an identity provider's JWKS
//! (RS256/ES256, e.g. Cognito). JWKS keys are cached and fetched again, at most every
//! 30 seconds, when a token names a key id the cache does not know (key rotation).

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::extract::{FromRef, FromRequestParts};
use http::{header, request::Parts};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind, jwk::JwkSet,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::sync::RwLock;

use super::ApiError;
use crate::{
    config::{AuthConfig, JwtKeys},
    db::{DbError, Pool, users},
    domain::UserId,
};

const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const LEEWAY_SECONDS: u64 = 30;
const ASYMMETRIC_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header must be `Bearer <token>`")]
    MissingToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token is not meant for this API (audience)")]
    WrongAudience,
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the identity provider's keys could not be fetched")]
    KeysUnavailable(#[source] reqwest::Error),
    #[error("JWKS verification needs both an issuer and an audience configured")]
    Misconfigured,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable(cause) => Self::Unavailable(Box::new(cause)),
            AuthError::Misconfigured => Self::internal(AuthError::Misconfigured),
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) => {
                Self::Invalid(format!("the `{claim}` claim is missing"))
            }
            ErrorKind::InvalidAlgorithm => {
                Self::Invalid("its algorithm is not accepted".to_owned())
            }
            _ => Self::Invalid("it could not be decoded".to_owned()),
        }
    }
}

/// The claims this API reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The tenant.
    pub sub: String,
    /// Used to create the tenant's account on first sign-in.
    pub email: Option<String>,
}

enum Keys {
    Shared(DecodingKey),
    Jwks(JwksKeys),
}

struct JwksKeys {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Option<(JwkSet, Instant)>>,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::Shared(_) => "shared secret (HS256)".to_owned(),
            Keys::Jwks(jwks) => format!("JWKS {}", jwks.url),
        };
        f.debug_struct("Authenticator")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifier; `http` is used only to fetch a JWKS.
    pub fn new(config: &AuthConfig, http: reqwest::Client) -> Self {
        let keys = match &config.keys {
            JwtKeys::SharedSecret(secret) => {
                Keys::Shared(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            JwtKeys::Jwks { url } => Keys::Jwks(JwksKeys {
                url: url.clone(),
                http,
                cache: RwLock::new(None),
            }),
        };
        Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// Verifies a token's signature, expiry, issuer and audience, and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token)?;
        let (key, algorithm) = match &self.keys {
            Keys::Shared(key) => (key.clone(), Algorithm::HS256),
            Keys::Jwks(_) if self.issuer.is_none() || self.audience.is_none() => {
                // `AuthConfig::new` refuses this; a hand-built config fails closed.
                return Err(AuthError::Misconfigured);
            }
            Keys::Jwks(jwks) => {
                if !ASYMMETRIC_ALGORITHMS.contains(&header.alg) {
                    return Err(AuthError::Invalid(
                        "its algorithm is not accepted".to_owned(),
                    ));
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::Invalid("it names no key id (`kid`)".to_owned()))?;
                (jwks.key(kid).await?, header.alg)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        // jsonwebtoken ignores `nbf` unless told otherwise: a token minted for later must not
        // work now.
        validation.validate_nbf = true;
        // A configured issuer or audience must also be *present*: jsonwebtoken only checks
        // claims that a token carries unless they are listed as required.
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(decode::<Claims>(token, &key, &validation)?.claims)
    }
}

impl JwksKeys {
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let stale = {
            let cache = self.cache.read().await;
            if let Some((set, _)) = cache.as_ref() {
                if let Some(jwk) = set.find(kid) {
                    return DecodingKey::from_jwk(jwk).map_err(AuthError::from);
                }
            }
            cache
                .as_ref()
                .is_none_or(|(_, fetched)| fetched.elapsed() >= JWKS_REFRESH_INTERVAL)
        };
        if stale {
            let set = self
                .http
                .get(&self.url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(AuthError::KeysUnavailable)?
                .json::<JwkSet>()
                .await
                .map_err(AuthError::KeysUnavailable)?;
            *self.cache.write().await = Some((set, Instant::now()));
        }
        let cache = self.cache.read().await;
        let jwk = cache
            .as_ref()
            .and_then(|(set, _)| set.find(kid))
            .ok_or_else(|| AuthError::Invalid("it was signed with an unknown key".to_owned()))?;
        DecodingKey::from_jwk(jwk).map_err(AuthError::from)
    }
}

/// Token verification plus provisioning of first-time tenants.
#[derive(Debug)]
pub struct Auth {
    authenticator: Authenticator,
    pool: Pool,
    /// Tenants known to exist, so provisioning costs a query only on an environment's first
    /// request per tenant.
    provisioned: Mutex<HashSet<String>>,
}

const PROVISIONED_CACHE_LIMIT: usize = 10_000;

impl Auth {
    /// Wraps a verifier and the pool it provisions tenants in.
    pub fn new(authenticator: Authenticator, pool: Pool) -> Self {
        Self {
            authenticator,
            pool,
            provisioned: Mutex::new(HashSet::new()),
        }
    }

    /// Verifies the token and makes sure the tenant's `users` and `credits` rows exist.
    pub async fn authenticate(&self, token: &str) -> Result<UserId, ApiError> {
        let claims = self.authenticator.verify(token).await?;
        let user = UserId::parse(&claims.sub).ok_or_else(|| {
            ApiError::Unauthorized(
                "the token's `sub` must be 1 to 50 visible characters".to_owned(),
            )
        })?;
        if self.is_provisioned(&user) {
            return Ok(user);
        }
        let client = self.pool.get().await.map_err(DbError::from)?;
        match claims
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(email) if crate::domain::contains_nul(email) => {
                return Err(ApiError::Unauthorized(
                    "the token's `email` contains a NUL character".to_owned(),
                ));
            }
            Some(email) if email.len() <= 255 => {
                if users::provision(&client, &user, email).await? == users::Provisioned::EmailTaken
                {
                    return Err(ApiError::Conflict(
                        "this email address already belongs to another account".to_owned(),
                    ));
                }
            }
            Some(_) => {
                return Err(ApiError::Unauthorized(
                    "the token's `email` is too long".to_owned(),
                ));
            }
            None if users::exists(&client, &user).await? => {}
            None => {
                return Err(ApiError::Unauthorized(
                    "the token has no `email` claim, which the first sign-in needs".to_owned(),
                ));
            }
        }
        self.remember(&user);
        Ok(user)
    }

    fn is_provisioned(&self, user: &UserId) -> bool {
        self.provisioned
            .lock()
            .map(|set| set.contains(user.as_str()))
            .unwrap_or(false)
    }

    fn remember(&self, user: &UserId) {
        if let Ok(mut set) = self.provisioned.lock() {
            if set.len() >= PROVISIONED_CACHE_LIMIT {
                set.clear();
            }
            set.insert(user.as_str().to_owned());
        }
    }
}

/// The authenticated tenant of a request. Extracting it answers 401 for a missing or bad
/// token, before the handler runs.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's id (the token's `sub`).
    pub user_id: UserId,
}

impl<S> FromRequestParts<S> for Tenant
where
    super::ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token =
            bearer_token(&parts.headers).ok_or_else(|| ApiError::from(AuthError::MissingToken))?;
        let auth = super::ApiState::from_ref(state).auth;
        let user_id = auth.authenticate(token).await?;
        tracing::Span::current().record("tenant.id", user_id.as_str());
        Ok(Self { user_id })
    }
}

/// The claims of a token this system signs itself (devstack's dev tokens, tests, the bench);
/// production tokens come from the identity provider.
#[derive(Debug, Clone, Default)]
pub struct DevClaims<'a> {
    pub sub: &'a str,
    pub email: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub issuer: Option<&'a str>,
}

/// Signs an HS256 token valid for `valid_for` from now (negative: already expired).
pub fn sign_hs256(
    secret: &[u8],
    claims: &DevClaims<'_>,
    valid_for: chrono::Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now();
    let mut body = serde_json::json!({
        "sub": claims.sub,
        "iat": now.timestamp(),
        "exp": (now + valid_for).timestamp(),
    });
    for (name, value) in [
        ("email", claims.email),
        ("aud", claims.audience),
        ("iss", claims.issuer),
    ] {
        if let Some(value) = value {
            body[name] = value.into();
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &body,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` works as well; an empty token is none.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
}
