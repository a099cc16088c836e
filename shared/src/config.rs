//! Typed configuration read from the environment once, at start-up. Every helper names the
//! variable it could not read, so a misconfigured function fails its first cold start with a
//! sentence an operator can act on. Tests build these structs in code and never touch the
//! process environment.

use std::{path::PathBuf, str::FromStr};

use secrecy::SecretString;

use crate::crypto::{SealingKey, SealingKeyError};

/// A variable is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads a variable that must be set and non-empty.
#[track_caller]
pub fn required_var(name: &'static str) -> Result<String, ConfigError> {
    optional_var(name)?.ok_or(ConfigError::Missing(name))
}

/// Reads a variable that may be absent; an empty value counts as absent.
pub fn optional_var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            name,
            reason: "not valid UTF-8".to_owned(),
        }),
    }
}

/// Reads and parses a variable, with a default when it is absent.
pub fn parsed_var<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match optional_var(name)? {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: a libpq-style URL (`postgres://user:pass@host:5432/db?sslmode=require`).
    pub url: SecretString,
    /// `DATABASE_POOL_SIZE`: connections per execution environment. A Lambda environment
    /// serves one request at a time, so the default is small; devstack raises it.
    pub pool_size: usize,
    /// `DATABASE_CA_FILE`: extra PEM root certificates (the RDS bundle) for TLS.
    pub ca_file: Option<PathBuf>,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_POOL_SIZE` (default 2) and `DATABASE_CA_FILE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: SecretString::from(required_var("DATABASE_URL")?),
            pool_size: parsed_var("DATABASE_POOL_SIZE", 2)?,
            ca_file: optional_var("DATABASE_CA_FILE")?.map(PathBuf::from),
        })
    }

    /// A config for a URL, as tests and devstack build it.
    pub fn for_url(url: impl Into<String>, pool_size: usize) -> Self {
        Self {
            url: SecretString::from(url.into()),
            pool_size,
            ca_file: None,
        }
    }
}

/// How bearer tokens are verified.
#[derive(Debug, Clone)]
pub enum JwtKeys {
    /// HS256 with a shared secret (`JWT_SECRET`): local development and tests.
    SharedSecret(SecretString),
    /// RS256/ES256 keys published by an identity provider (`JWT_JWKS_URL`): production.
    Jwks { url: String },
}

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Where the verification keys come from.
    pub keys: JwtKeys,
    /// `JWT_ISSUER`: when set, the `iss` claim must equal it. Required with a JWKS.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, the `aud` claim must contain it. Required with a JWKS.
    pub audience: Option<String>,
}

/// The secret devstack signs its tokens with when `JWT_SECRET` is unset. It is public, so
/// [`AuthConfig::from_env`] refuses it: only devstack may use it.
pub const DEV_JWT_SECRET: &str = "devstack-insecure-jwt-secret-do-not-deploy";

impl AuthConfig {
    /// Reads `JWT_JWKS_URL` (preferred when set) or `JWT_SECRET`, plus `JWT_ISSUER` and
    /// `JWT_AUDIENCE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let keys = match optional_var("JWT_JWKS_URL")? {
            Some(url) => JwtKeys::Jwks { url },
            None => {
                let secret = optional_var("JWT_SECRET")?
                    .ok_or(ConfigError::Missing("JWT_SECRET (or JWT_JWKS_URL)"))?;
                if secret == DEV_JWT_SECRET {
                    return Err(ConfigError::Invalid {
                        name: "JWT_SECRET",
                        reason:
                            "the devstack default secret is public and refused outside devstack"
                                .to_owned(),
                    });
                }
                if secret.len() < 32 {
                    return Err(ConfigError::Invalid {
                        name: "JWT_SECRET",
                        reason: "must be at least 32 characters".to_owned(),
                    });
                }
                JwtKeys::SharedSecret(SecretString::from(secret))
            }
        };
        Self::new(
            keys,
            optional_var("JWT_ISSUER")?,
            optional_var("JWT_AUDIENCE")?,
        )
    }

    /// Checks the combination: an identity provider's keys (JWKS) verify tokens of every
    /// application that provider signs for, so its tokens are accepted only with both the
    /// issuer and the audience pinned.
    pub fn new(
        keys: JwtKeys,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, ConfigError> {
        if matches!(keys, JwtKeys::Jwks { .. }) {
            if issuer.is_none() {
                return Err(ConfigError::Missing(
                    "JWT_ISSUER (required with JWT_JWKS_URL)",
                ));
            }
            if audience.is_none() {
                return Err(ConfigError::Missing(
                    "JWT_AUDIENCE (required with JWT_JWKS_URL)",
                ));
            }
        }
        Ok(Self {
            keys,
            issuer,
            audience,
        })
    }
}

/// Reads `TOKEN_SEALING_KEY`: 32 random bytes, base64-encoded.
pub fn sealing_key_from_env() -> Result<SealingKey, ConfigError> {
    let raw = required_var("TOKEN_SEALING_KEY")?;
    SealingKey::from_base64(&raw).map_err(|e: SealingKeyError| ConfigError::Invalid {
        name: "TOKEN_SEALING_KEY",
        reason: e.to_string(),
    })
}

/// Everything an HTTP API function needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Bearer-token verification.
    pub auth: AuthConfig,
    /// Key for provider tokens at rest.
    pub sealing_key: SealingKey,
    /// `ADMIN_API_SECRET` (optional; 32+ characters): guards `/admin/...`.
    pub admin_secret: Option<SecretString>,
}

impl ApiConfig {
    /// Reads the whole configuration, failing on the first missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env()?,
            auth: AuthConfig::from_env()?,
            sealing_key: sealing_key_from_env()?,
            admin_secret: match optional_var("ADMIN_API_SECRET")? {
                Some(secret) if secret.len() < 32 => {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_API_SECRET",
                        reason: "must be at least 32 characters".to_owned(),
                    });
                }
                other => other.map(SecretString::from),
            },
        })
    }
}
