//! `cargo run -p devstack` runs the system locally; `devstack token` mints a dev token.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use shared::{
    api::ApiState,
    config::{
        ApiConfig, AuthConfig, DEV_JWT_SECRET, DatabaseConfig, JwtKeys, optional_var, parsed_var,
    },
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
    /// Sign and post a sample inbound WhatsApp text to a running devstack's webhook.
    Inbound {
        /// The channel's Cloud API phone-number id (`meta_phone_number_id`).
        #[arg(long, default_value = "106540352242922")]
        phone_number_id: String,
        /// The customer's WhatsApp number, digits only.
        #[arg(long, default_value = "16505551234")]
        from: String,
        /// The customer's profile name.
        #[arg(long, default_value = "Sheena Nelson")]
        name: String,
        /// The message.
        #[arg(long)]
        text: String,
        /// Where devstack listens (default http://127.0.0.1:$PORT, PORT defaulting to 3000).
        #[arg(long)]
        url: Option<String>,
    },
    /// Measure webhook ingest (throughput, p50/p99) and the end-to-end reply time against a
    /// running devstack (start it with `cargo run --release -p devstack`).
    Bench {
        /// Where devstack listens (default http://127.0.0.1:$PORT, PORT defaulting to 3000).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 4000)]
        requests: usize,
        #[arg(long, default_value_t = 50)]
        end_to_end: usize,
    },
    /// Grant credits to a tenant (what `POST /admin/credits` does), straight in the database.
    Credits {
        /// The tenant (`sub`).
        #[arg(long)]
        user: String,
        /// How many.
        #[arg(long)]
        amount: i32,
        /// Why.
        #[arg(long, default_value = "devstack grant")]
        reason: String,
    },
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
        Command::Inbound {
            phone_number_id,
            from,
            name,
            text,
            url,
        } => {
            let url = local_url(url)?;
            let body = devstack::sample_inbound(&phone_number_id, &from, &name, &text).to_string();
            let secret = optional_var("META_APP_SECRET")?
                .unwrap_or_else(|| devstack::DEV_META_APP_SECRET.to_owned());
            let signature = shared::meta::signature::sign(secret.as_bytes(), body.as_bytes());
            let response = reqwest::Client::new()
                .post(format!("{}/webhook", url.trim_end_matches('/')))
                .header("content-type", "application/json")
                .header(shared::meta::signature::SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await
                .context("posting to devstack's webhook")?;
            println!("webhook answered {}", response.status());
            Ok(())
        }
        Command::Bench {
            url,
            concurrency,
            requests,
            end_to_end,
        } => {
            let url = local_url(url)?;
            devstack::bench::run(devstack::bench::BenchPlan {
                url: url.trim_end_matches('/').to_owned(),
                concurrency: concurrency.max(1),
                requests: requests.min(100_000),
                end_to_end: end_to_end.min(1_000),
                app_secret: optional_var("META_APP_SECRET")?
                    .unwrap_or_else(|| devstack::DEV_META_APP_SECRET.to_owned()),
                jwt_secret: jwt_secret()?.expose_secret().to_owned(),
                admin_secret: optional_var("ADMIN_API_SECRET")?
                    .unwrap_or_else(|| DEV_ADMIN_SECRET.to_owned()),
            })
            .await
        }
        Command::Credits {
            user,
            amount,
            reason,
        } => {
            let (pool, postgres) = database().await?;
            let user = shared::domain::UserId::parse(&user).context("not a user id")?;
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let outcome = shared::db::credits::grant(
                &tx,
                shared::db::credits::NewGrant {
                    user: &user,
                    amount,
                    reason: &reason,
                    granted_by: "devstack-cli",
                    idempotency_key: None,
                },
            )
            .await?;
            let grant = match outcome {
                shared::db::credits::GrantOutcome::Granted(grant) => grant,
                shared::db::credits::GrantOutcome::NoSuchTenant => {
                    anyhow::bail!("no such tenant: call GET /me with its token first")
                }
                shared::db::credits::GrantOutcome::Overflow { remaining_credits } => {
                    anyhow::bail!("{remaining_credits} + {amount} credits is over the maximum")
                }
                other => anyhow::bail!("unexpected grant outcome: {other:?}"),
            };
            tx.commit().await?;
            println!(
                "granted {amount}; {} now has {} credits",
                grant.user_id, grant.remaining_credits
            );
            if let Some(postgres) = postgres {
                postgres.stop();
            }
            Ok(())
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let (database, postgres) = database_config()?;
    let auth = auth_config()?;
    let http = shared::http::client()?;
    let config = ApiConfig {
        database,
        auth: auth.clone(),
        sealing_key: sealing_key()?,
        admin_secret: Some(SecretString::from(
            optional_var("ADMIN_API_SECRET")?.unwrap_or_else(|| DEV_ADMIN_SECRET.to_owned()),
        )),
    };
    let api = ApiState::from_config(&config, http.clone())?;
    let report = shared::db::migrate::run(&api.pool).await?;
    tracing::info!(applied = report.applied.len(), "migrations up to date");
    let port: u16 = parsed_var("PORT", 3000)?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let base_url = format!("http://{address}");
    let mut stack = devstack::Stack::new(api, http, &base_url, providers(&base_url)?);
    stack.webhook.webchat = webhook::WebchatLimits::from_env()?;
    if let Some(url) = optional_var("REPLY_QUEUE_URL")? {
        // A real (or moto's) SQS FIFO queue, e.g. with AWS_ENDPOINT_URL set.
        println!("reply jobs go through SQS: {url}");
        stack = stack.with_sqs(shared::jobs::SqsQueue::new(
            shared::jobs::client_from_env().await?,
            url,
        ));
    }
    stack = with_campaign_aws(stack).await?;
    if matches!(
        stack.campaigns.scheduler,
        shared::scheduler::CampaignScheduler::Local(_)
    ) {
        // The in-process scheduler starts empty: arm the SCHEDULED campaigns kept in the
        // database (one whose time passed while devstack was down fires at once).
        let armed = campaigns::rearm_schedules(&stack.campaigns).await?;
        tracing::info!(armed, "scheduled campaigns armed");
    }
    stack.spawn_worker();
    stack.spawn_events_sweep(
        shared::events::EventQueue::Local(stack.events_queue.clone()),
        shared::events::SweepConfig::from_env()?,
    );
    // The extraction sweep every EXTRACTION_SWEEP_SECS (default 10 s locally; 1 minute in AWS).
    stack.spawn_extraction(std::time::Duration::from_secs(parsed_var(
        "EXTRACTION_SWEEP_SECS",
        10u64,
    )?));
    stack.spawn_meetings_sweep();
    // Campaigns: the start and send consumers, the local scheduler, the sweep every 10 s.
    stack.spawn_campaigns(std::time::Duration::from_secs(10), 4);
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
    println!("simulated Meta sends: {base_url}/_sim/meta/requests");
    println!(
        "Meta's send limits and counts: {base_url}/_sim/meta/behaviour, {base_url}/_sim/meta/stats"
    );
    println!(
        "make the next extraction answer invalid: POST {base_url}/_sim/openai/extraction/fail-next"
    );
    println!("simulated Google Calendar: {base_url}/_sim/google/_sim/events");
    println!("website chat demo: http://localhost:{port}/webchat-demo/<widget_key>");
    axum::serve(
        listener,
        stack
            .app()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(postgres) = postgres {
        postgres.stop();
    }
    Ok(())
}

/// The campaign engine on real AWS services (or moto's) when their variables are set:
/// `CAMPAIGN_START_QUEUE_URL` and `SEND_QUEUE_URL` (both or neither) for the queues, and
/// `CAMPAIGN_SCHEDULE_GROUP` with `CAMPAIGN_START_QUEUE_ARN` and `SCHEDULER_ROLE_ARN` for
/// EventBridge Scheduler (the functions' own variables; `AWS_ENDPOINT_URL` points the SDK
/// at moto or LocalStack).
async fn with_campaign_aws(mut stack: devstack::Stack) -> anyhow::Result<devstack::Stack> {
    let starts = optional_var("CAMPAIGN_START_QUEUE_URL")?;
    let sends = optional_var("SEND_QUEUE_URL")?;
    match (starts, sends) {
        (Some(starts), Some(sends)) => {
            println!("campaign jobs go through SQS: {starts} and {sends}");
            let client = shared::jobs::client_from_env().await?;
            stack = stack.with_campaign_sqs(
                shared::jobs::SqsQueue::new(client.clone(), starts),
                shared::jobs::SqsQueue::new(client, sends),
            );
        }
        (None, None) => {}
        _ => anyhow::bail!(
            "set both CAMPAIGN_START_QUEUE_URL and SEND_QUEUE_URL (or neither, for the in-process queues)"
        ),
    }
    if optional_var("CAMPAIGN_SCHEDULE_GROUP")?.is_some() {
        println!("scheduled campaigns go to EventBridge Scheduler");
        stack = stack.with_campaign_scheduler(shared::scheduler::from_env().await?);
    }
    Ok(stack)
}

/// The operators' secret devstack uses when `ADMIN_API_SECRET` is unset.
const DEV_ADMIN_SECRET: &str = "devstack-admin-secret-do-not-deploy";

/// The simulators, unless `OPENAI_BASE_URL` / `META_GRAPH_BASE_URL` point at real services.
/// The running devstack a client command talks to: `--url`, else the `PORT` it serves on,
/// so the commands follow `PORT` like the server does.
fn local_url(url: Option<String>) -> anyhow::Result<String> {
    match url {
        Some(url) => Ok(url),
        None => Ok(format!("http://127.0.0.1:{}", parsed_var("PORT", 3000u16)?)),
    }
}

fn providers(base_url: &str) -> anyhow::Result<devstack::Providers> {
    let mut providers = devstack::Providers::simulated(base_url);
    if optional_var("OPENAI_BASE_URL")?.is_some() {
        providers.openai = shared::openai::OpenAiConfig::from_env()?;
    }
    providers.extraction = extraction_worker::ExtractionConfig::from_env()?;
    if optional_var("META_GRAPH_BASE_URL")?.is_some() {
        providers.graph = shared::meta::graph::GraphConfig::from_env()?;
    }
    if let Some(secret) = optional_var("META_APP_SECRET")? {
        providers.meta_app_secret = secret;
    }
    if let Some(token) = optional_var("META_VERIFY_TOKEN")? {
        providers.meta_verify_token = token;
    }
    if let Some(google) = shared::google::GoogleConfig::from_env()? {
        providers.google = google;
    }
    providers.meta_sim.default_mps = parsed_var("META_SIM_MPS", providers.meta_sim.default_mps)?;
    providers.meta_sim.pair_window_ms =
        parsed_var("META_SIM_PAIR_WINDOW_MS", providers.meta_sim.pair_window_ms)?;
    Ok(providers)
}

fn state_dir() -> PathBuf {
    optional_var("DEVSTACK_DIR")
        .ok()
        .flatten()
        .map_or_else(|| PathBuf::from(".devstack"), PathBuf::from)
}

async fn database() -> anyhow::Result<(shared::db::Pool, Option<LocalPostgres>)> {
    let (config, postgres) = database_config()?;
    Ok((shared::db::connect(&config)?, postgres))
}

/// `DATABASE_URL`, or a local PostgreSQL started for devstack.
fn database_config() -> anyhow::Result<(DatabaseConfig, Option<LocalPostgres>)> {
    let (url, postgres) = match optional_var("DATABASE_URL")? {
        Some(url) => (url, None),
        None => {
            let port = parsed_var("DEVSTACK_PG_PORT", DEFAULT_PORT)?;
            let postgres = LocalPostgres::start(&state_dir(), port)?;
            tracing::info!(url = %postgres.url, "local PostgreSQL ready");
            (postgres.url.clone(), Some(postgres))
        }
    };
    Ok((DatabaseConfig::for_url(url, 10), postgres))
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
    Ok(AuthConfig::new(
        keys,
        optional_var("JWT_ISSUER")?,
        optional_var("JWT_AUDIENCE")?,
    )?)
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
    let audience = optional_var("JWT_AUDIENCE")?;
    let issuer = optional_var("JWT_ISSUER")?;
    let claims = shared::api::auth::DevClaims {
        sub,
        email: Some(email),
        audience: audience.as_deref(),
        issuer: issuer.as_deref(),
    };
    Ok(shared::api::auth::sign_hs256(
        secret.expose_secret().as_bytes(),
        &claims,
        chrono::Duration::hours(hours),
    )?)
}
