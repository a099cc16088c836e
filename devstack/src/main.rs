//! `cargo run -p devstack` runs the system locally; `devstack token` mints a dev token.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use shared::{
    api::{ApiState, Auth, Authenticator},
    config::{AuthConfig, DEV_JWT_SECRET, DatabaseConfig, JwtKeys, optional_var, parsed_var},
    crypto::SealingKey,
};

use devstack::postgres::{DEFAULT_PORT, LocalPostgres};

#[derive(Parser)]
#[command(about = "Runs the sales-agent backend locally")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL (unless DATABASE_URL is set), migrate, and serve every HTTP function
    /// on http://127.0.0.1:$PORT (default 3000). The default command.
    Run,
    /// Print a dev token signed with the local JWT_SECRET (or devstack's default).
    Token {
        /// The tenant (`sub` claim).
        #[arg(long)]
        sub: String,
        /// The `email` claim.
        #[arg(long)]
        email: String,
        /// Validity in hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Apply migrations to the local (or DATABASE_URL) database and exit.
    Migrate,
    /// Print the OpenAPI document of the whole HTTP API.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    match Cli::parse().command.unwrap_or(Command::Run) {
        Command::Run => run().await,
        Command::Token { sub, email, hours } => {
            println!("{}", dev_token(&jwt_secret()?, &sub, &email, hours)?);
            Ok(())
        }
        Command::Migrate => {
            let (pool, postgres) = database().await?;
            let report = shared::db::migrate::run(&pool).await?;
            println!(
                "applied {} migration(s): {:?}",
                report.applied.len(),
                report.applied
            );
            if let Some(postgres) = postgres {
                postgres.stop();
            }
            Ok(())
        }
        Command::Openapi => {
            print!("{}", devstack::openapi_json());
            Ok(())
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let (pool, postgres) = database().await?;
    let report = shared::db::migrate::run(&pool).await?;
    tracing::info!(applied = report.applied.len(), "migrations up to date");

    let auth = auth_config()?;
    let state = ApiState {
        auth: Arc::new(Auth::new(
            Authenticator::new(&auth, shared::http::client()?),
            pool.clone(),
        )),
        pool,
        sealing_key: sealing_key()?,
    };
    let port: u16 = parsed_var("PORT", 3000)?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} (set PORT to use another port)"))?;
    println!("devstack listening on http://{address}");
    if matches!(auth.keys, JwtKeys::SharedSecret(_)) && optional_var("JWT_SECRET")?.is_none() {
        println!("JWT_SECRET is unset: tokens are signed with devstack's public dev secret");
        println!("  {DEV_JWT_SECRET}");
    }
    println!(
        "mint a token:  cargo run -q -p devstack -- token --sub demo --email demo@example.com"
    );
    axum::serve(listener, devstack::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(postgres) = postgres {
        postgres.stop();
    }
    Ok(())
}

fn state_dir() -> PathBuf {
    optional_var("DEVSTACK_DIR")
        .ok()
        .flatten()
        .map_or_else(|| PathBuf::from(".devstack"), PathBuf::from)
}

async fn database() -> anyhow::Result<(shared::db::Pool, Option<LocalPostgres>)> {
    let (url, postgres) = match optional_var("DATABASE_URL")? {
        Some(url) => (url, None),
        None => {
            let port = parsed_var("DEVSTACK_PG_PORT", DEFAULT_PORT)?;
            let postgres = LocalPostgres::start(&state_dir(), port)?;
            tracing::info!(url = %postgres.url, "local PostgreSQL ready");
            (postgres.url.clone(), Some(postgres))
        }
    };
    let pool = shared::db::connect(&DatabaseConfig::for_url(url, 10))?;
    Ok((pool, postgres))
}

fn jwt_secret() -> anyhow::Result<SecretString> {
    Ok(SecretString::from(
        optional_var("JWT_SECRET")?.unwrap_or_else(|| DEV_JWT_SECRET.to_owned()),
    ))
}

fn auth_config() -> anyhow::Result<AuthConfig> {
    let keys = match optional_var("JWT_JWKS_URL")? {
        Some(url) => JwtKeys::Jwks { url },
        None => JwtKeys::SharedSecret(jwt_secret()?),
    };
    Ok(AuthConfig {
        keys,
        issuer: optional_var("JWT_ISSUER")?,
        audience: optional_var("JWT_AUDIENCE")?,
    })
}

/// `TOKEN_SEALING_KEY`, or a key generated once and kept in `.devstack/sealing.key` so that
/// tokens sealed in earlier runs still open.
fn sealing_key() -> anyhow::Result<SealingKey> {
    if optional_var("TOKEN_SEALING_KEY")?.is_some() {
        return Ok(shared::config::sealing_key_from_env()?);
    }
    let path = state_dir().join("sealing.key");
    let encoded = match std::fs::read_to_string(&path) {
        Ok(existing) => existing,
        Err(_) => {
            std::fs::create_dir_all(state_dir())?;
            let fresh = SealingKey::generate_base64();
            std::fs::write(&path, &fresh).with_context(|| format!("writing {}", path.display()))?;
            fresh
        }
    };
    SealingKey::from_base64(&encoded)
        .with_context(|| format!("{} is not a valid key", path.display()))
}

fn dev_token(secret: &SecretString, sub: &str, email: &str, hours: i64) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    let mut claims = serde_json::json!({
        "sub": sub,
        "email": email,
        "iat": now.timestamp(),
        "exp": (now + chrono::Duration::hours(hours)).timestamp(),
    });
    if let Some(audience) = optional_var("JWT_AUDIENCE")? {
        claims["aud"] = audience.into();
    }
    if let Some(issuer) = optional_var("JWT_ISSUER")? {
        claims["iss"] = issuer.into();
    }
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )?)
}
