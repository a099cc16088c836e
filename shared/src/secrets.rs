//! Secrets from AWS Secrets Manager, read once per execution environment.
//!
//! Each secret variable `NAME` (below) may instead be given as `NAME_ARN`: the ARN of a
//! Secrets Manager secret whose string value is the variable's value. A function's `main`
//! calls [`load_from_env`] before reading its configuration; the values are kept in memory
//! for the life of the execution environment and [`crate::config::optional_var`] returns
//! them in place of environment variables, so the rest of the configuration code is the
//! same in Lambda, devstack and tests (which keep plain environment variables). No secret
//! value ever sits in the function's environment, where the console, `GetFunction` and
//! crash dumps would show it.
//!
//! One secret per value, not one JSON document per function: a value several functions use
//! (the sealing key) is stored and rotated once, and each function's IAM policy names exactly
//! the secrets it reads.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;

use crate::config::{ConfigError, optional_var};

/// A variable that may come from Secrets Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVariable {
    /// The variable the configuration reads (`JWT_SECRET`).
    pub name: &'static str,
    /// The variable holding the secret's ARN (`JWT_SECRET_ARN`).
    pub arn_variable: &'static str,
}

/// Every variable that may be read from Secrets Manager.
pub const SECRET_VARIABLES: &[SecretVariable] = &[
    SecretVariable {
        name: "DATABASE_PASSWORD",
        arn_variable: "DATABASE_PASSWORD_ARN",
    },
    SecretVariable {
        name: "JWT_SECRET",
        arn_variable: "JWT_SECRET_ARN",
    },
    SecretVariable {
        name: "TOKEN_SEALING_KEY",
        arn_variable: "TOKEN_SEALING_KEY_ARN",
    },
    SecretVariable {
        name: "ADMIN_API_SECRET",
        arn_variable: "ADMIN_API_SECRET_ARN",
    },
    SecretVariable {
        name: "META_APP_SECRET",
        arn_variable: "META_APP_SECRET_ARN",
    },
    SecretVariable {
        name: "OPENAI_API_KEY",
        arn_variable: "OPENAI_API_KEY_ARN",
    },
    SecretVariable {
        name: "GOOGLE_CLIENT_SECRET",
        arn_variable: "GOOGLE_CLIENT_SECRET_ARN",
    },
];

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading {name} from Secrets Manager ({arn}) failed: {reason}")]
    Read {
        name: &'static str,
        arn: String,
        reason: String,
    },
    #[error("the secret {arn} for {name} has no text value (SecretString)")]
    NotText { name: &'static str, arn: String },
    #[error("a secret read stopped unexpectedly")]
    Interrupted(#[source] tokio::task::JoinError),
    #[error("secrets were already loaded in this process")]
    AlreadyLoaded,
}

/// One secret to read: the variable it stands for and its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    pub name: &'static str,
    pub arn: String,
}

/// The secrets this environment asks for: every `NAME_ARN` that is set. Setting both
/// `NAME` and `NAME_ARN` is refused: which one wins would be a guess.
pub fn requests_from_env() -> Result<Vec<SecretRequest>, ConfigError> {
    let mut requests = Vec::new();
    for variable in SECRET_VARIABLES {
        let Some(arn) = optional_var(variable.arn_variable)? else {
            continue;
        };
        if optional_var(variable.name)?.is_some() {
            return Err(ConfigError::Invalid {
                name: variable.arn_variable,
                reason: format!(
                    "set either {} or {}, not both",
                    variable.name, variable.arn_variable
                ),
            });
        }
        requests.push(SecretRequest {
            name: variable.name,
            arn,
        });
    }
    Ok(requests)
}

/// Reads the requested secrets (concurrently: this is on the cold-start path).
pub async fn fetch(
    client: &Client,
    requests: &[SecretRequest],
) -> Result<HashMap<&'static str, SecretString>, SecretsError> {
    let mut reads = tokio::task::JoinSet::new();
    for request in requests.iter().cloned() {
        let client = client.clone();
        reads.spawn(async move {
            let output = client
                .get_secret_value()
                .secret_id(&request.arn)
                .send()
                .await
                .map_err(|e| SecretsError::Read {
                    name: request.name,
                    arn: request.arn.clone(),
                    reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                })?;
            let raw = output.secret_string.ok_or_else(|| SecretsError::NotText {
                name: request.name,
                arn: request.arn.clone(),
            })?;
            Ok::<_, SecretsError>((request.name, value_of(request.name, raw)))
        });
    }
    let mut values = HashMap::new();
    while let Some(joined) = reads.join_next().await {
        let (name, value) = joined.map_err(SecretsError::Interrupted)??;
        values.insert(name, value);
    }
    Ok(values)
}

/// The variable's value from a secret's text. `DATABASE_PASSWORD` also accepts the JSON
/// document RDS keeps for a managed master password (`{"username": …, "password": …}`).
fn value_of(name: &'static str, raw: String) -> SecretString {
    if name == "DATABASE_PASSWORD" {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&raw) {
            if let Some(serde_json::Value::String(password)) = fields.get("password") {
                return SecretString::from(password.clone());
            }
        }
    }
    SecretString::from(raw)
}

/// Reads every secret the environment names (`NAME_ARN`) from Secrets Manager and makes
/// the values visible to the configuration readers. Call it once, first thing in `main`.
/// Without any `NAME_ARN` it does nothing (devstack, tests, local runs) and builds no AWS
/// client. Returns how many secrets were read.
pub async fn load_from_env() -> Result<usize, SecretsError> {
    let requests = requests_from_env()?;
    if requests.is_empty() {
        return Ok(0);
    }
    let client = Client::new(&crate::aws::sdk_config_from_env()?);
    load(&client, &requests).await
}

/// Reads `requests` with `client` and makes the values visible to the configuration
/// readers ([`crate::config::optional_var`]) for the rest of the process. Only one load per
/// process: a second is refused.
pub async fn load(client: &Client, requests: &[SecretRequest]) -> Result<usize, SecretsError> {
    let values = fetch(client, requests).await?;
    let count = values.len();
    if !crate::config::install_secret_values(values) {
        return Err(SecretsError::AlreadyLoaded);
    }
    tracing::info!(count, "secrets read from Secrets Manager");
    Ok(count)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn an_rds_managed_secret_gives_its_password() {
        let value = value_of(
            "DATABASE_PASSWORD",
            r#"{"username":"app","password":"p@ss \"word\""}"#.to_owned(),
        );

        assert_eq!(value.expose_secret(), "p@ss \"word\"");
    }

    #[test]
    fn other_secrets_are_taken_verbatim_even_when_they_look_like_json() {
        let raw = r#"{"password":"not this"}"#;

        assert_eq!(value_of("JWT_SECRET", raw.to_owned()).expose_secret(), raw);
        assert_eq!(
            value_of("DATABASE_PASSWORD", "plain".to_owned()).expose_secret(),
            "plain"
        );
    }

    #[test]
    fn every_secret_variable_has_an_arn_variable_named_after_it() {
        for variable in SECRET_VARIABLES {
            assert_eq!(variable.arn_variable, format!("{}_ARN", variable.name));
        }
    }
}
