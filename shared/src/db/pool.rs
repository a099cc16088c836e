use std::{path::Path, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use secrecy::ExposeSecret;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseConfig, SessionTimeouts};

/// The pool could not be configured (no connection is attempted yet).
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("could not read the CA bundle {path}")]
    CaBundle {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS set-up failed")]
    Tls(#[source] rustls::Error),
    #[error("pool set-up failed")]
    Build(#[source] deadpool_postgres::BuildError),
}

/// Builds the connection pool. Connections open lazily, on first use, so a cold start that
/// never touches the database opens none. TLS is negotiated as the URL's `sslmode` says
/// (`require` for RDS), trusting the public web roots plus `DATABASE_CA_FILE` when given.
/// Every session starts with the configured [`SessionTimeouts`] (startup `options`, so no
/// extra round trip), after any `options` the URL already carries.
pub fn connect(config: &DatabaseConfig) -> Result<Pool, PoolSetupError> {
    let mut pg_config: tokio_postgres::Config = config
        .url
        .expose_secret()
        .parse()
        .map_err(PoolSetupError::InvalidUrl)?;
    if pg_config.get_connect_timeout().is_none() {
        pg_config.connect_timeout(Duration::from_secs(5));
    }
    if let Some(password) = &config.password {
        pg_config.password(password.expose_secret());
    }
    if let Some(options) = session_options(pg_config.get_options(), &config.timeouts) {
        pg_config.options(&options);
    }
    let tls = MakeRustlsConnect::new(tls_config(config.ca_file.as_deref())?);
    let manager = Manager::from_config(
        pg_config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(PoolSetupError::Build)
}

/// The startup `options` value: the URL's own, then `-c name=value` per non-zero timeout.
fn session_options(from_url: Option<&str>, timeouts: &SessionTimeouts) -> Option<String> {
    let settings = [
        ("statement_timeout", timeouts.statement),
        ("lock_timeout", timeouts.lock),
        (
            "idle_in_transaction_session_timeout",
            timeouts.idle_in_transaction,
        ),
    ];
    let mut parts: Vec<String> = from_url
        .filter(|options| !options.trim().is_empty())
        .map(|options| vec![options.trim().to_owned()])
        .unwrap_or_default();
    for (name, limit) in settings {
        if !limit.is_zero() {
            parts.push(format!("-c {name}={}", limit.as_millis()));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn tls_config(ca_file: Option<&Path>) -> Result<ClientConfig, PoolSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| PoolSetupError::CaBundle {
                path: path.display().to_string(),
                source,
            })?;
        roots.add_parsable_certificates(certs);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(PoolSetupError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_zero_timeout_becomes_a_startup_option_after_the_urls_own() {
        let timeouts = SessionTimeouts {
            statement: Duration::from_secs(5),
            lock: Duration::ZERO,
            idle_in_transaction: Duration::from_millis(1500),
        };

        assert_eq!(
            session_options(Some("-c search_path=app"), &timeouts).as_deref(),
            Some(
                "-c search_path=app -c statement_timeout=5000 \
                 -c idle_in_transaction_session_timeout=1500"
            )
        );
    }

    #[test]
    fn zero_timeouts_and_no_url_options_send_no_options_at_all() {
        let off = SessionTimeouts {
            statement: Duration::ZERO,
            lock: Duration::ZERO,
            idle_in_transaction: Duration::ZERO,
        };

        assert_eq!(session_options(None, &off), None);
        assert_eq!(session_options(Some("  "), &off), None);
    }
}
