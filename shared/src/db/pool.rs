use std::{path::Path, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use secrecy::ExposeSecret;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseConfig;

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
pub fn connect(config: &DatabaseConfig) -> Result<Pool, PoolSetupError> {
    let mut pg_config: tokio_postgres::Config = config
        .url
        .expose_secret()
        .parse()
        .map_err(PoolSetupError::InvalidUrl)?;
    if pg_config.get_connect_timeout().is_none() {
        pg_config.connect_timeout(Duration::from_secs(5));
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
