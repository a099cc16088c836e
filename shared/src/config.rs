//! Typed configuration read from the environment once, at start-up. Every helper names the
//! variable it could not read, so a misconfigured function fails its first cold start with a
//! sentence an operator can act on. Tests build these structs in code and never touch the
//! process environment.

use std::{collections::HashMap, path::PathBuf, str::FromStr, sync::OnceLock, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{SealingKey, SealingKeyError};

/// A variable is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("neither {name} nor {arn_variable} (its Secrets Manager ARN) is set")]
    MissingSecret {
        name: &'static str,
        arn_variable: &'static str,
    },
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads a variable that must be set and non-empty.
#[track_caller]
pub fn required_var(name: &'static str) -> Result<String, ConfigError> {
    optional_var(name)?.ok_or_else(|| {
        match crate::secrets::SECRET_VARIABLES
            .iter()
            .find(|variable| variable.name == name)
        {
            Some(variable) => ConfigError::MissingSecret {
                name,
                arn_variable: variable.arn_variable,
            },
            None => ConfigError::Missing(name),
        }
    })
}

/// Values read from Secrets Manager at cold start ([`crate::secrets::load_from_env`]), by
/// variable name. Set once per process; they take the place of environment variables.
static SECRET_VALUES: OnceLock<HashMap<&'static str, SecretString>> = OnceLock::new();

/// Installs the values read from Secrets Manager. Only the first call has an effect (one
/// read per execution environment); it returns whether this call installed them.
pub(crate) fn install_secret_values(values: HashMap<&'static str, SecretString>) -> bool {
    SECRET_VALUES.set(values).is_ok()
}

/// Reads a variable that may be absent; an empty value counts as absent. A value loaded
/// from Secrets Manager for this name wins over the environment.
pub fn optional_var(name: &'static str) -> Result<Option<String>, ConfigError> {
    if let Some(value) = SECRET_VALUES.get().and_then(|values| values.get(name)) {
        return Ok(Some(value.expose_secret().to_owned()));
    }
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
    /// `DATABASE_URL`: a libpq-style URL (`postgres://user@host:5432/db?sslmode=require`).
    pub url: SecretString,
    /// `DATABASE_PASSWORD`: the password, when the URL carries none (deployed functions read
    /// it from Secrets Manager through `DATABASE_PASSWORD_ARN`; see [`crate::secrets`]).
    pub password: Option<SecretString>,
    /// `DATABASE_POOL_SIZE`: connections per execution environment. A Lambda environment
    /// serves one request at a time, so the default is small; devstack raises it.
    pub pool_size: usize,
    /// `DATABASE_CA_FILE`: extra PEM root certificates (the RDS bundle) for TLS.
    pub ca_file: Option<PathBuf>,
    /// Server-side limits every pooled session carries.
    pub timeouts: SessionTimeouts,
}

/// Limits PostgreSQL enforces on each session of the pool, sent as startup options, so a
/// runaway statement, a lock pile-up or a transaction left open by a frozen or timed-out
/// Lambda is ended by the server even when the function is gone. Zero sends nothing (the
/// server's or role's setting applies: the way to configure them behind RDS Proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 5,000): `statement_timeout`.
    pub statement: Duration,
    /// `DATABASE_LOCK_TIMEOUT_MS` (default 3,000): `lock_timeout`.
    pub lock: Duration,
    /// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` (default 15,000):
    /// `idle_in_transaction_session_timeout`.
    pub idle_in_transaction: Duration,
}

impl Default for SessionTimeouts {
    /// Below every function's Lambda timeout (webhook 10 s, HTTP API 15 s), so the database
    /// gives up first and the function still answers (503) instead of being killed.
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(5),
            lock: Duration::from_secs(3),
            idle_in_transaction: Duration::from_secs(15),
        }
    }
}

impl SessionTimeouts {
    /// Reads the three `DATABASE_*_TIMEOUT_MS` variables (milliseconds; 0 sends nothing).
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let millis = |name: &'static str, default: Duration| {
            parsed_var::<u64>(name, default.as_millis().try_into().unwrap_or(u64::MAX))
                .map(Duration::from_millis)
        };
        Ok(Self {
            statement: millis("DATABASE_STATEMENT_TIMEOUT_MS", defaults.statement)?,
            lock: millis("DATABASE_LOCK_TIMEOUT_MS", defaults.lock)?,
            idle_in_transaction: millis(
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                defaults.idle_in_transaction,
            )?,
        })
    }
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_PASSWORD`, `DATABASE_POOL_SIZE` (default 2),
    /// `DATABASE_CA_FILE` and the session timeouts.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: SecretString::from(required_var("DATABASE_URL")?),
            password: optional_var("DATABASE_PASSWORD")?.map(SecretString::from),
            pool_size: parsed_var("DATABASE_POOL_SIZE", 2)?,
            ca_file: optional_var("DATABASE_CA_FILE")?.map(PathBuf::from),
            timeouts: SessionTimeouts::from_env()?,
        })
    }

    /// A config for a URL, as tests and devstack build it (default timeouts).
    pub fn for_url(url: impl Into<String>, pool_size: usize) -> Self {
        Self {
            url: SecretString::from(url.into()),
            password: None,
            pool_size,
            ca_file: None,
            timeouts: SessionTimeouts::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_variable_names_its_arn_variable_too() {
        // Neither is set in tests (they build configs in code).
        let error = required_var("META_APP_SECRET").expect_err("not set");

        assert_eq!(
            error.to_string(),
            "neither META_APP_SECRET nor META_APP_SECRET_ARN (its Secrets Manager ARN) is set"
        );
    }

    #[test]
    fn default_session_timeouts_end_before_the_shortest_lambda_timeout() {
        let timeouts = SessionTimeouts::default();

        assert!(timeouts.lock < timeouts.statement);
        // The webhook's Lambda timeout is 10 s (template.yaml).
        assert!(timeouts.statement < Duration::from_secs(10));
    }
}
