//! `devstack bench`: a load generator for the webhook ingest path and the end-to-end reply
//! time, against a running devstack (build it with `--release` to measure). Requests go to
//! loopback only, their number and duration are bounded, and it stops by itself.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// devstack's base URL (loopback).
    pub url: String,
    /// Concurrent connections of the ingest test.
    pub concurrency: usize,
    /// Requests of the ingest test, in all.
    pub requests: usize,
    /// Messages of the end-to-end test (sent one at a time).
    pub end_to_end: usize,
    /// Signs webhooks.
    pub app_secret: String,
    /// Signs the setup's dashboard token.
    pub jwt_secret: String,
    /// Grants the setup's credits.
    pub admin_secret: String,
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Summary {
        count: samples.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

/// Runs both measurements and prints a report.
pub async fn run(plan: BenchPlan) -> anyhow::Result<()> {
    if !(plan.url.starts_with("http://127.") || plan.url.starts_with("http://localhost")) {
        bail!("the benchmark only targets devstack on loopback");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .build()?;
    let meta_id = format!("9{}", chrono::Utc::now().timestamp_micros());
    setup(&http, &plan, &meta_id, plan.requests + plan.end_to_end + 10).await?;

    // Ingest: signed WhatsApp texts at a fixed concurrency.
    let started = Instant::now();
    let per_worker = plan.requests.div_ceil(plan.concurrency);
    let mut tasks = Vec::new();
    for worker in 0..plan.concurrency {
        let (http, plan, meta_id) = (http.clone(), plan.clone(), meta_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let from = format!("1555{:03}{:04}", worker, i % 10_000);
                let body =
                    crate::sample_inbound(&meta_id, &from, "Load", &format!("load {worker}-{i}"))
                        .to_string();
                let t = Instant::now();
                let status = post_signed(&http, &plan, body).await?;
                latencies.push(t.elapsed());
                if status != 200 {
                    bail!("webhook answered {status}");
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let ingest = summarise(latencies);
    let rps = ingest.count as f64 / elapsed.as_secs_f64();

    // Let the worker drain the ingest backlog, and the simulated status webhooks settle,
    // before timing replies one by one.
    wait_for_sends(&http, &plan.url, 0, ingest.count, Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut end_to_end = Vec::new();
    for i in 0..plan.end_to_end {
        let before = sim_requests(&http, &plan.url, 0).await?.len();
        let body = crate::sample_inbound(&meta_id, "15550001111", "Timer", &format!("timing {i}"))
            .to_string();
        let t = Instant::now();
        post_signed(&http, &plan, body).await?;
        wait_for_sends(
            &http,
            &plan.url,
            before,
            before + 1,
            Duration::from_secs(30),
        )
        .await?;
        end_to_end.push(t.elapsed());
    }
    let e2e = summarise(end_to_end);

    println!(
        "webhook ingest: {} requests, concurrency {}",
        ingest.count, plan.concurrency
    );
    println!(
        "  throughput {rps:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ingest.p50_ms, ingest.p99_ms, ingest.max_ms
    );
    println!(
        "end to end (webhook POST -> reply sent to the Meta simulator), {} messages one at a time:",
        e2e.count
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (the simulators add no delay)",
        e2e.p50_ms, e2e.p99_ms, e2e.max_ms
    );
    Ok(())
}

async fn post_signed(
    http: &reqwest::Client,
    plan: &BenchPlan,
    body: String,
) -> anyhow::Result<u16> {
    let signature = shared::meta::signature::sign(plan.app_secret.as_bytes(), body.as_bytes());
    let response = http
        .post(format!("{}/webhook", plan.url))
        .header("content-type", "application/json")
        .header(shared::meta::signature::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

async fn sim_requests(
    http: &reqwest::Client,
    url: &str,
    after: usize,
) -> anyhow::Result<Vec<Value>> {
    let value: Value = http
        .get(format!("{url}/_sim/meta/requests?after={after}"))
        .send()
        .await?
        .json()
        .await?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

/// Waits until the Meta simulator has seen `at_least` sends, polling only those after the
/// `seen` it already knows of.
async fn wait_for_sends(
    http: &reqwest::Client,
    url: &str,
    mut seen: usize,
    at_least: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        seen += sim_requests(http, url, seen).await?.len();
        if seen >= at_least {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("timed out waiting for {at_least} simulated sends")
}

/// A tenant with a WhatsApp channel, an agent and enough credits.
async fn setup(
    http: &reqwest::Client,
    plan: &BenchPlan,
    meta_id: &str,
    credits: usize,
) -> anyhow::Result<()> {
    let sub = format!("bench-{meta_id}");
    let email = format!("{sub}@example.test");
    let claims = shared::api::auth::DevClaims {
        sub: &sub,
        email: Some(&email),
        ..Default::default()
    };
    let token = shared::api::auth::sign_hs256(
        plan.jwt_secret.as_bytes(),
        &claims,
        chrono::Duration::hours(1),
    )?;
    let channel: Value = http
        .post(format!("{}/phone-numbers", plan.url))
        .bearer_auth(&token)
        // The simulator's WABA `W` has the numbers `W0` to `W9`.
        .json(&json!({ "platform": "whatsapp", "meta_phone_number_id": meta_id, "access_token": "EAAG-bench", "waba_id": &meta_id[..meta_id.len() - 1] }))
        .send()
        .await?
        .json()
        .await?;
    let channel_id = channel["id"]
        .as_str()
        .context("channel not created (is devstack running with its dev secrets?)")?;
    http.post(format!("{}/agents", plan.url))
        .bearer_auth(&token)
        .json(&json!({ "phone_number_id": channel_id, "prompt_id": "pmpt_bench", "name": "Bench" }))
        .send()
        .await?
        .error_for_status()?;
    http.post(format!("{}/admin/credits", plan.url))
        .header("x-admin-secret", &plan.admin_secret)
        .json(&json!({ "user_id": sub, "amount": credits, "reason": "benchmark" }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
