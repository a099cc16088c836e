//! Benchmark: the extraction job's overhead excluding OpenAI time, in ms per extraction.
//!
//! Real PostgreSQL (`DATABASE_URL`, a database per run from testkit), a local fake of the
//! Responses API that answers a valid structured output at once, and the real handler.
//! Each job reads the conversation, renders the transcript, asks the fake (timed apart as
//! "model time"), scores, and commits the extraction with the contact sync and the events.
//!
//! `cargo run --release -p extraction-worker --example overhead -- [conversations] [messages] [concurrency]`

use std::time::{Duration, Instant};

use extraction_worker::{ExtractionConfig, ExtractionState, Outcome};
use serde_json::json;
use shared::{
    domain::{AgentId, ConversationId, PhoneNumberId},
    jobs::{ExtractionJob, ExtractionQueue, ExtractionTrigger, LocalQueue},
    openai::{OpenAi, OpenAiConfig},
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let conversations = args.first().copied().unwrap_or(500).max(2);
    let messages = args.get(1).copied().unwrap_or(20);
    let concurrency = args.get(2).copied().unwrap_or(1).max(1);

    let db = testkit::TestDb::new().await;
    let openai = MockServer::start().await;
    let answer = json!({
        "name": "Sheena Nelson", "email": "sheena@acme.example", "company": "Acme",
        "intent_level": "High", "urgency_level": "Medium", "budget_constraint": "No",
        "fit_alignment": "High", "engagement_health": "Medium", "demo_book_datetime": null,
        "reasoning": { "intent": "i", "urgency": "u", "budget": "b", "fit": "f", "engagement": "e", "cta_behavior": "c" },
        "smart_notification": "Lead asked about pricing", "requirements": null, "custom_cta": null,
        "in_detail_summary": "The customer asked about pricing for 50 seats."
    });
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_b", "object": "response", "status": "completed",
            "output": [{ "type": "message", "role": "assistant", "content": [
                { "type": "output_text", "text": answer.to_string(), "annotations": [] }
            ]}]
        })))
        .mount(&openai)
        .await;

    // Seed: one tenant, one WhatsApp channel and agent per conversation, `messages` each.
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO users (user_id, email) VALUES ('bench', 'bench@example.test')",
            &[],
        )
        .await
        .expect("user");
    let mut ids = Vec::with_capacity(conversations);
    for n in 0..conversations {
        let channel = PhoneNumberId::generate().to_string();
        let agent = AgentId::generate().to_string();
        let conversation = ConversationId::generate().to_string();
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, 'bench', 'whatsapp', $2, 'sealed', '1')",
                &[&channel, &format!("{}", 100_000_000 + n)],
            )
            .await
            .expect("channel");
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name) VALUES ($1, 'bench', $2, 'pmpt_a', 'Ava')",
                &[&agent, &channel],
            )
            .await
            .expect("agent");
        client
            .execute(
                "INSERT INTO conversations (conversation_id, agent_id, customer_phone, customer_name)
                 VALUES ($1, $2, $3, 'Sheena')",
                &[&conversation, &agent, &format!("+1650555{:04}", n % 10_000)],
            )
            .await
            .expect("conversation");
        let count = i32::try_from(messages).unwrap_or(i32::MAX);
        client
            .execute(
                "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no, author)
                 SELECT 'msg_' || gen_random_uuid(), $1::text,
                        CASE WHEN s % 2 = 1 THEN 'user' ELSE 'agent' END,
                        'Message ' || s || ': I would like pricing for 50 seats, delivered this month.',
                        'sent', s, CASE WHEN s % 2 = 1 THEN 'customer' ELSE 'ai' END
                 FROM generate_series(1, $2::int) s",
                &[&conversation, &count],
            )
            .await
            .expect("messages");
        ids.push(conversation);
    }
    drop(client);

    let state = ExtractionState {
        pool: db.pool.clone(),
        openai: OpenAi::new(
            reqwest::Client::new(),
            OpenAiConfig {
                base_url: openai.uri(),
                api_key: "sk-bench".to_owned().into(),
                timeout: Duration::from_secs(10),
            },
        ),
        config: ExtractionConfig::default(),
        queue: ExtractionQueue::Local(LocalQueue::new()),
        retry_queue: None,
        lifter: shared::jobs::LifterConfig::from_env().expect("lifter"),
    };

    // One warm-up extraction: the pool opens its connection lazily.
    let warm_up = ids.remove(0);
    extraction_worker::handle(
        &state,
        &ExtractionJob::new("bench", &warm_up, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("warm-up");

    let started = Instant::now();
    let mut overheads = Vec::with_capacity(conversations);
    let mut models = Vec::with_capacity(conversations);
    for chunk in ids.chunks(concurrency) {
        let outcomes = futures::future::join_all(chunk.iter().map(|id| {
            let state = &state;
            async move {
                extraction_worker::handle(
                    state,
                    &ExtractionJob::new("bench", id, ExtractionTrigger::OnDemand),
                )
                .await
            }
        }))
        .await;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Extracted {
                    overhead,
                    model_time,
                    ..
                }) => {
                    overheads.push(overhead);
                    models.push(model_time);
                }
                other => panic!("not extracted: {other:?}"),
            }
        }
    }
    let wall = started.elapsed();
    overheads.sort();
    models.sort();
    let mean = overheads.iter().sum::<Duration>().as_secs_f64() * 1000.0 / overheads.len() as f64;
    println!(
        "{} extractions of {messages} messages, concurrency {concurrency}, in {:.2} s",
        overheads.len(),
        wall.as_secs_f64()
    );
    println!(
        "overhead excluding OpenAI (ms per extraction): mean {mean:.2}, p50 {:.2}, p95 {:.2}, p99 {:.2}, max {:.2}",
        percentile(&overheads, 0.50),
        percentile(&overheads, 0.95),
        percentile(&overheads, 0.99),
        percentile(&overheads, 1.0),
    );
    println!(
        "fake OpenAI round trip (ms): p50 {:.2}, p95 {:.2}",
        percentile(&models, 0.50),
        percentile(&models, 0.95)
    );
}
