//! Campaign benchmarks (docs/benchmarks.md, "Campaigns"). Release build:
//!
//! ```sh
//! source /path/to/env   # DATABASE_URL (else a throwaway cluster), MOTO_ENDPOINT (optional)
//! cargo run --release -p send-worker --example campaign_bench
//! ```
//!
//! 1. Fan-out: 100,000 eligible contacts → recipient rows and send jobs on the in-process
//!    queue (and, with `MOTO_ENDPOINT`, through moto's SQS).
//! 2. The send path against the Meta simulator (a real HTTP server, status webhooks off):
//!    no cap; then caps of 80 and 1,000 messages/s, with the achieved rate after the first
//!    second, the simulator's 130429 answers, and duplicate sends.
//! 3. Fairness: a small tenant's 10-recipient campaign started behind a big tenant's backlog.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use campaign_start::CampaignStartState;
use send_worker::{SendConfig, SendState};
use serde_json::json;
use shared::{
    db::{campaigns, templates},
    domain::{
        CampaignId, ComponentType, ContactId, ParameterFormat, PhoneNumberId, TemplateCategory,
        TemplateStatus, TriggerType, UserId, campaign::RecipientFilterBody,
    },
    jobs::{CampaignStartJob, Lifter, LifterConfig, LocalQueue, Queue, SendJob, StartReason},
    meta::graph::{Graph, GraphConfig},
    templates::model::{TemplateContent, TemplateDraft, TextPart, Variable},
};
use testkit::{ChannelSeed, Simulators, TestDb};

struct Tenant {
    user: UserId,
    channel: PhoneNumberId,
    meta_id: String,
    template: String,
}

/// Creates and approves the benchmark template in the simulator's WABA of `meta_id` (a
/// number's id is its WABA's followed by one digit), as a submission would.
async fn approve_in_simulator(base: &str, meta_id: &str) {
    let http = reqwest::Client::new();
    let waba = &meta_id[..meta_id.len() - 1];
    let created: serde_json::Value = http
        .post(format!("{base}/_sim/meta/{waba}/message_templates"))
        .bearer_auth("EAAG-token")
        .json(&json!({
            "name": "bench_sale", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}, your order shipped",
                            "example": {"body_text": [["Ana"]]}}]
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("created");
    let id = created["id"].as_str().expect("template id").to_owned();
    // The simulator approves it, then tries to post the status webhook to a stack this
    // benchmark does not run (answering 502): the approval stands.
    http.post(format!("{base}/_sim/meta/templates/{id}/review"))
        .json(&json!({"event": "APPROVED"}))
        .send()
        .await
        .expect("review");
}

async fn tenant(db: &TestDb, name: &str, meta_id: &str) -> Tenant {
    let seed = db.seed();
    let user = seed.tenant(name).await;
    let channel = seed
        .channel(&user, ChannelSeed::whatsapp(meta_id).token("EAAG-token"))
        .await;
    seed.agent(&user, &channel, "pmpt_sales", "Ava").await;
    let mut client = db.client().await;
    let target = templates::channel(&client, &user, &channel.id)
        .await
        .expect("channel")
        .expect("ours");
    let draft = TemplateDraft {
        name: "bench_sale".to_owned(),
        category: TemplateCategory::Utility,
        language: "en_US".to_owned(),
        parameter_format: ParameterFormat::Positional,
        content: TemplateContent {
            body: TextPart {
                text: "Hi {{1}}, your order shipped".to_owned(),
            },
            variables: vec![Variable {
                variable_name: "1".to_owned(),
                position: 1,
                component_type: ComponentType::Body,
                dashboard_mapping: None,
                default_value: Some("there".to_owned()),
                sample_value: Some("Ana".to_owned()),
            }],
            ..TemplateContent::default()
        },
    };
    let tx = client.transaction().await.expect("tx");
    let template = templates::insert(&tx, &user, &target, &draft)
        .await
        .expect("template");
    tx.commit().await.expect("commit");
    templates::set_status(
        &client,
        &template.template_id,
        TemplateStatus::Approved,
        "APPROVED",
    )
    .await
    .expect("approve");
    Tenant {
        user,
        channel: channel.id,
        meta_id: meta_id.to_owned(),
        template: template.template_id.to_string(),
    }
}

/// `count` contacts tagged `tag`, phones from `base`, in one statement.
async fn contacts(db: &TestDb, user: &UserId, tag: &str, base: u64, count: u64) {
    let ids: Vec<String> = (0..count)
        .map(|_| ContactId::generate().to_string())
        .collect();
    let phones: Vec<String> = (0..count).map(|i| format!("+1{}", base + i)).collect();
    db.client()
        .await
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone, name, tags, source)
             SELECT c, $1, p, 'Customer', ARRAY[$4::text], 'IMPORT'
             FROM unnest($2::text[], $3::text[]) AS u(c, p)",
            &[&user.as_str(), &ids, &phones, &tag],
        )
        .await
        .expect("contacts");
    db.client()
        .await
        .batch_execute("ANALYZE contacts")
        .await
        .expect("analyze");
}

async fn campaign(db: &TestDb, t: &Tenant, tag: &str, rate: Option<i32>) -> CampaignId {
    let filter: RecipientFilterBody = serde_json::from_value(json!({"tags": [tag]})).expect("f");
    let draft = campaigns::CampaignDraft {
        template_id: shared::domain::TemplateId::from_trusted(t.template.clone()),
        phone_number_id: t.channel.clone(),
        name: format!("bench {tag}"),
        description: None,
        recipient_filter: filter.parse("recipient_filter").expect("filter"),
        variable_values: Default::default(),
        time_zone: None,
        quiet_hours: None,
        frequency_cap_hours: Some(0),
        send_rate_per_second: rate,
        trigger_type: TriggerType::Immediate,
        scheduled_at: None,
        event_type: None,
        event_config: json!({}),
    };
    let mut client = db.client().await;
    let tx = client.transaction().await.expect("tx");
    let created = campaigns::create(&tx, &t.user, &draft)
        .await
        .expect("campaign");
    tx.commit().await.expect("commit");
    campaigns::transition(
        &client,
        &t.user,
        &created.campaign_id,
        campaigns::Transition::Run,
        None,
    )
    .await
    .expect("run");
    created.campaign_id
}

/// Cancels a campaign whose jobs the benchmark dropped, so no later part sends them.
async fn cancel(db: &TestDb, campaign: &CampaignId) {
    db.client()
        .await
        .execute(
            "UPDATE campaigns SET status = 'CANCELLED' WHERE campaign_id = $1",
            &[&campaign.as_str()],
        )
        .await
        .expect("cancel");
}

fn lifter() -> LifterConfig {
    LifterConfig {
        deadline_margin: Duration::ZERO,
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(2),
    }
}

fn start_state(db: &TestDb, sends: &LocalQueue<SendJob>) -> CampaignStartState {
    CampaignStartState {
        pool: db.pool.clone(),
        sends: Queue::Local(sends.clone()),
        starts: Queue::Local(LocalQueue::new()),
        retry_queue: None,
        events_retry_queue: None,
        lifter: lifter(),
    }
}

async fn fan_out(
    db: &TestDb,
    t: &Tenant,
    campaign: &CampaignId,
    sends: &LocalQueue<SendJob>,
) -> Duration {
    let job = CampaignStartJob::new(t.user.as_str(), campaign.as_str(), StartReason::Start);
    let started = Instant::now();
    campaign_start::handle(&start_state(db, sends), &job)
        .await
        .expect("fan-out");
    started.elapsed()
}

/// Runs `consumers` send consumers on `queue` until `campaign` completes; returns the time.
async fn drain(
    state: &SendState,
    queue: &LocalQueue<SendJob>,
    consumers: usize,
    db: &TestDb,
    done: &[(UserId, CampaignId)],
) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let queue = queue.clone();
        let state = state.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let lifter = Lifter::new(state.lifter.clone(), None);
            let state = &state;
            while !stop.load(Ordering::Relaxed) {
                // Never cancel a batch half-way: take what is visible, run it, settle it.
                let records = queue.receive(10);
                if records.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let ids: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
                let report = lifter
                    .run_together(records, None, |jobs| send_worker::run_jobs(state, jobs))
                    .await;
                queue.settle(&ids, &report);
            }
        }));
    }
    let started = Instant::now();
    let mut finished: Vec<Option<Duration>> = vec![None; done.len()];
    while finished.iter().any(Option::is_none) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let client = db.client().await;
        for (i, (user, campaign)) in done.iter().enumerate() {
            if finished[i].is_none() {
                let c = campaigns::get(&client, user, campaign)
                    .await
                    .expect("get")
                    .expect("campaign");
                if c.status == shared::domain::CampaignStatus::Completed {
                    finished[i] = Some(started.elapsed());
                }
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        drop(task.await);
    }
    finished
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

async fn serve_simulator(sim: &Simulators) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = sim.clone().router();
    tokio::spawn(async move {
        drop(axum::serve(listener, router).await);
    });
    format!("http://{address}")
}

/// Sends per second from the campaign's first accepted send to its last (Meta's accepted
/// times as the worker recorded them).
async fn achieved_rate(db: &TestDb, campaign: &CampaignId) -> f64 {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (count(*) - 1)::float8 AS n,
                    EXTRACT(EPOCH FROM max(sent_at) - min(sent_at))::float8 AS secs
             FROM campaign_recipients WHERE campaign_id = $1 AND sent_at IS NOT NULL",
            &[&campaign.as_str()],
        )
        .await
        .expect("rate");
    let n: f64 = row.get("n");
    let secs: Option<f64> = row.get("secs");
    secs.filter(|s| *s > 0.0).map_or(0.0, |s| n / s)
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    // The workers' own pool: a send holds a connection across its Meta call.
    let pool =
        shared::db::connect(&shared::config::DatabaseConfig::for_url(&db.url, 64)).expect("pool");
    let sim = Simulators::new(
        "http://127.0.0.1:9/webhook".to_owned(),
        "bench-secret".to_owned(),
        reqwest::Client::new(),
    );
    sim.set_meta_status_webhooks(false);
    sim.set_meta_pair_window(Duration::ZERO);
    sim.set_meta_default_mps(0);
    let base = serve_simulator(&sim).await;
    let graph = Graph::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("http"),
        GraphConfig::for_base_url(&format!("{base}/_sim/meta")),
    );
    let mut state = SendState {
        pool: pool.clone(),
        graph,
        sealing_key: testkit::test_sealing_key(),
        config: SendConfig::default(),
        retry_queue: None,
        lifter: lifter(),
        contexts: Default::default(),
    };

    // BENCH_ONLY=fanout,sends,caps,fairness runs only those parts (all by default).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wants = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    if wants("fanout") {
        // 1. Fan-out of 100,000.
        let big = tenant(&db, "bench-big", "106540352242920").await;
        approve_in_simulator(&base, "106540352242920").await;
        contacts(&db, &big.user, "all", 14_150_000_000, 100_000).await;
        let fan_campaign = campaign(&db, &big, "all", None).await;
        let sends = LocalQueue::new();
        let took = fan_out(&db, &big, &fan_campaign, &sends).await;
        println!(
            "fan-out: 100,000 recipients written and jobs queued in {:.2} s ({} jobs)",
            took.as_secs_f64(),
            sends.waiting_count()
        );
        sends.drain();
        cancel(&db, &fan_campaign).await;

        // 1b. Through moto's SQS (a standard queue, SendMessageBatch of ten, eight calls in
        //     flight), when MOTO_ENDPOINT names its server. moto (Python, one thread) takes
        //     about two batch calls a second here, so 100,000 jobs would take over an hour:
        //     2,000 recipients show its rate without waiting on it.
        if std::env::var("MOTO_ENDPOINT").is_ok() {
            let moto = tenant(&db, "bench-moto", "106540352242929").await;
            contacts(&db, &moto.user, "moto", 14_210_000_000, 2_000).await;
            let client = testkit::moto_sqs_client();
            let url = client
                .create_queue()
                .queue_name(format!("bench-sends-{}", ulid::Ulid::new()))
                .send()
                .await
                .expect("queue")
                .queue_url
                .expect("url");
            let sqs_campaign = campaign(&db, &moto, "moto", None).await;
            let mut state = start_state(&db, &sends);
            state.sends = Queue::Sqs(shared::jobs::SqsQueue::new(client.clone(), url.clone()));
            let job = CampaignStartJob::new(
                moto.user.as_str(),
                sqs_campaign.as_str(),
                StartReason::Start,
            );
            let started = Instant::now();
            campaign_start::handle(&state, &job).await.expect("fan-out");
            let took = started.elapsed();
            let waiting = client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .expect("attributes");
            let count = waiting
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                })
                .cloned()
                .unwrap_or_default();
            println!(
                "fan-out through moto's SQS: 2,000 recipients written and jobs sent in {:.2} s ({count} messages in the queue)",
                took.as_secs_f64()
            );
            cancel(&db, &sqs_campaign).await;
        }
    }
    if wants("sends") {
        // 2a. The send path, no cap.
        let fast = tenant(&db, "bench-fast", "106540352242811").await;
        approve_in_simulator(&base, "106540352242811").await;
        contacts(&db, &fast.user, "fast", 14_160_000_000, 20_000).await;
        let fast_campaign = campaign(&db, &fast, "fast", None).await;
        let queue = LocalQueue::new();
        fan_out(&db, &fast, &fast_campaign, &queue).await;
        state.config = SendConfig {
            throttle: false,
            ..SendConfig::default()
        };
        sim.reset_meta_stats();
        let took = drain(
            &state,
            &queue,
            48,
            &db,
            &[(fast.user.clone(), fast_campaign.clone())],
        )
        .await[0];
        let stats = sim.meta_stats();
        println!(
            "send path, no cap: 20,000 sends in {:.2} s = {:.0} sends/s; accepted {}, duplicates {}",
            took.as_secs_f64(),
            20_000.0 / took.as_secs_f64().max(0.001),
            stats.accepted,
            stats.duplicates
        );

        // 2c. Status webhooks for those 20,000 sends: delivered then read for each, 40,000
        //     statuses applied by 32 concurrent writers through the webhook's status path.
        let wamids: Vec<String> = db
            .client()
            .await
            .query(
                "SELECT platform_message_id FROM template_sends WHERE campaign_id = $1 AND platform_message_id IS NOT NULL",
                &[&fast_campaign.as_str()],
            )
            .await
            .expect("wamids")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let route = shared::db::inbound::ChannelRoute {
            phone_number_id: fast.channel.clone(),
            user_id: fast.user.clone(),
            platform: shared::domain::Platform::WhatsApp,
        };
        let mut statuses = Vec::new();
        for status in [
            shared::domain::DeliveryStatus::Delivered,
            shared::domain::DeliveryStatus::Read,
        ] {
            for wamid in &wamids {
                statuses.push(shared::domain::StatusUpdate {
                    channel_key: fast.meta_id.clone(),
                    platform_message_id: wamid.clone(),
                    status,
                    timestamp: chrono::Utc::now(),
                    recipient_id: None,
                    errors: Vec::new(),
                });
            }
        }
        let total = statuses.len();
        let chunks: Vec<Vec<shared::domain::StatusUpdate>> = statuses
            .chunks(total.div_ceil(32).max(1))
            .map(<[_]>::to_vec)
            .collect();
        let started = Instant::now();
        let mut writers = Vec::new();
        for chunk in chunks {
            let pool = db.pool.clone();
            let route = route.clone();
            writers.push(tokio::spawn(async move {
                for update in chunk {
                    let client = pool.get().await.expect("client");
                    shared::db::delivery::apply(&client, &route, &update)
                        .await
                        .expect("status");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let took = started.elapsed();
        let client = db.client().await;
        let counters = campaigns::counters(&client, &fast_campaign)
            .await
            .expect("counters");
        let rows = campaigns::counted_from_rows(&client, &fast_campaign)
            .await
            .expect("rows");
        println!(
            "status webhooks: {total} statuses in {:.2} s = {:.0}/s; counters {} rows (sent {}, delivered {}, read {})",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64().max(0.001),
            if counters == rows {
                "equal to the"
            } else {
                "DIFFER from the"
            },
            counters.sent,
            counters.delivered,
            counters.read
        );
        drop(client);
    }
    if wants("caps") {
        // 2b. Caps of 80 and 1,000 messages/s: ours and the simulator's.
        state.config = SendConfig::default();
        for (mps, count, meta_id, base_phone) in [
            (80_i32, 800_u64, "106540352242731", 14_170_000_000_u64),
            (1_000, 10_000, "106540352242632", 14_180_000_000),
        ] {
            let t = tenant(&db, &format!("bench-cap-{mps}"), meta_id).await;
            approve_in_simulator(&base, meta_id).await;
            db.client()
                .await
                .execute(
                    "UPDATE phone_numbers SET messages_per_second = $2 WHERE id = $1",
                    &[&t.channel.as_str(), &mps],
                )
                .await
                .expect("cap");
            sim.set_meta_mps(&t.meta_id, u32::try_from(mps).unwrap_or(80));
            contacts(&db, &t.user, "capped", base_phone, count).await;
            let c = campaign(&db, &t, "capped", None).await;
            let queue = LocalQueue::new();
            fan_out(&db, &t, &c, &queue).await;
            sim.reset_meta_stats();
            let first_second = {
                let sim = sim.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    sim.meta_stats().rate_limited
                })
            };
            let took = drain(&state, &queue, 48, &db, &[(t.user.clone(), c.clone())]).await[0];
            let stats = sim.meta_stats();
            let in_first_second = first_second.await.unwrap_or_default();
            let rate = achieved_rate(&db, &c).await;
            println!(
                "cap {mps}/s: {count} sends in {:.2} s; achieved {rate:.0}/s = {:.3} of the cap (first to last send); 130429 answers {} ({} after the first second); duplicates {}",
                took.as_secs_f64(),
                rate / f64::from(mps),
                stats.rate_limited,
                stats.rate_limited - in_first_second,
                stats.duplicates
            );
        }
    }
    if wants("fairness") {
        // 3. Fairness: a 10-recipient campaign of another tenant behind a 20,000-job backlog
        //    sending at 80/s.
        let small = tenant(&db, "bench-small", "106540352242540").await;
        approve_in_simulator(&base, "106540352242540").await;
        contacts(&db, &small.user, "few", 14_190_000_000, 10).await;
        let backlog = tenant(&db, "bench-backlog", "106540352242441").await;
        approve_in_simulator(&base, "106540352242441").await;
        contacts(&db, &backlog.user, "many", 14_200_000_000, 20_000).await;
        let backlog_campaign = campaign(&db, &backlog, "many", None).await;
        let small_campaign = campaign(&db, &small, "few", None).await;
        let queue = LocalQueue::new();
        fan_out(&db, &backlog, &backlog_campaign, &queue).await;
        fan_out(&db, &small, &small_campaign, &queue).await;
        let stop_after_small = drain(
            &state,
            &queue,
            16,
            &db,
            &[(small.user.clone(), small_campaign.clone())],
        )
        .await[0];
        let backlog_left = db
            .client()
            .await
            .query_one(
                "SELECT count(*) AS n FROM campaign_recipients WHERE campaign_id = $1 AND status IN ('PENDING', 'QUEUED')",
                &[&backlog_campaign.as_str()],
            )
            .await
            .expect("left")
            .get::<_, i64>("n");
        println!(
            "fairness: the small campaign completed {:.2} s after both started, with {backlog_left} of the big one's 20,000 still to send",
            stop_after_small.as_secs_f64()
        );
    }
}
