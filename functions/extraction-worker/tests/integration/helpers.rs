use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use extraction_worker::{ExtractionConfig, ExtractionState};
use serde_json::{Value, json};
use shared::{
    domain::{AgentId, ConversationId, PhoneNumberId},
    jobs::{ExtractionJob, ExtractionQueue, ExtractionTrigger, LocalQueue},
    openai::{OpenAi, OpenAiConfig},
};
use testkit::TestDb;
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path},
};

pub const TENANT: &str = "acme";

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
pub const OTHER_TENANT: &str = "globex";

/// A valid answer of the model, with every level at `level` and budget `No`.
pub fn answer(level: &str) -> Value {
    json!({
        "name": "Sheena Nelson",
        "email": "sheena@acme.example",
        "company": "Acme",
        "intent_level": level,
        "urgency_level": level,
        "budget_constraint": "No",
        "fit_alignment": level,
        "engagement_health": level,
        "demo_book_datetime": null,
        "reasoning": {
            "intent": "i", "urgency": "u", "budget": "b", "fit": "f", "engagement": "e",
            "cta_behavior": "c"
        },
        "smart_notification": "Lead asked about pricing",
        "requirements": null,
        "custom_cta": null,
        "in_detail_summary": "The customer asked about pricing."
    })
}

/// The Responses API with Structured Outputs: answers the queued answers in order, then
/// `fallback` forever. Each answer is wrapped as an `output_text` part, as OpenAI does.
#[derive(Clone)]
pub struct FakeExtractor {
    pub queued: Arc<Mutex<VecDeque<Value>>>,
    pub fallback: Arc<Mutex<Value>>,
}

impl Respond for FakeExtractor {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let next = self
            .queued
            .lock()
            .ok()
            .and_then(|mut q| q.pop_front())
            .unwrap_or_else(|| {
                self.fallback
                    .lock()
                    .map(|f| f.clone())
                    .unwrap_or(Value::Null)
            });
        let text = match next {
            Value::String(raw) => raw,
            other => other.to_string(),
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_x", "object": "response", "status": "completed",
            "output": [{ "type": "message", "role": "assistant", "content": [
                { "type": "output_text", "text": text, "annotations": [] }
            ]}]
        }))
    }
}

pub struct TestApp {
    pub db: TestDb,
    pub openai: MockServer,
    pub model: FakeExtractor,
    pub queue: LocalQueue<ExtractionJob>,
    pub state: ExtractionState,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let openai = MockServer::start().await;
        let model = FakeExtractor {
            queued: Arc::default(),
            fallback: Arc::new(Mutex::new(answer("Medium"))),
        };
        Mock::given(method("POST"))
            .and(path("/responses"))
            .respond_with(model.clone())
            .mount(&openai)
            .await;
        let client = db.client().await;
        for tenant in [TENANT, OTHER_TENANT] {
            client
                .execute(
                    "INSERT INTO users (user_id, email) VALUES ($1::text, $1::text || '@example.test')",
                    &[&tenant],
                )
                .await
                .expect("user");
        }
        let queue = LocalQueue::new();
        let state = ExtractionState {
            pool: db.pool.clone(),
            openai: OpenAi::new(
                reqwest::Client::new(),
                OpenAiConfig {
                    base_url: openai.uri(),
                    api_key: "sk-test".to_owned().into(),
                    timeout: std::time::Duration::from_secs(5),
                },
            ),
            config: ExtractionConfig::default(),
            queue: ExtractionQueue::Local(queue.clone()),
            retry_queue: None,
            lifter: shared::jobs::LifterConfig {
                deadline_margin: std::time::Duration::from_secs(1),
                backoff_base: std::time::Duration::from_secs(10),
                backoff_cap: std::time::Duration::from_secs(900),
            },
        };
        Self {
            db,
            openai,
            model,
            queue,
            state,
        }
    }

    /// The model's next answers, in order.
    pub fn answers(&self, answers: impl IntoIterator<Item = Value>) {
        self.model.queued.lock().expect("lock").extend(answers);
    }

    /// A WhatsApp channel with an agent and a conversation of `tenant` with the customer
    /// `+16505551234`, without messages.
    pub async fn conversation(&self, tenant: &str) -> String {
        self.conversation_with(tenant, "whatsapp", "+16505551234")
            .await
    }

    /// A channel of `platform` with an agent and a conversation of `tenant` with the customer
    /// keyed `customer`, without messages.
    pub async fn conversation_with(&self, tenant: &str, platform: &str, customer: &str) -> String {
        let client = self.db.client().await;
        let channel = PhoneNumberId::generate().to_string();
        let agent = AgentId::generate().to_string();
        let conversation = ConversationId::generate().to_string();
        let meta_id = format!(
            "{}{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, $2, $4::text, $3, 'sealed', CASE WHEN $4::text = 'whatsapp' THEN '1' END)",
                &[&channel, &tenant, &meta_id, &platform],
            )
            .await
            .expect("channel");
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name) VALUES ($1, $2, $3, 'pmpt_a', 'Ava')",
                &[&agent, &tenant, &channel],
            )
            .await
            .expect("agent");
        client
            .execute(
                "INSERT INTO conversations (conversation_id, agent_id, customer_phone, customer_name)
                 VALUES ($1, $2, $3, 'Sheena')",
                &[&conversation, &agent, &customer],
            )
            .await
            .expect("conversation");
        conversation
    }

    /// Appends messages (`user` or `agent`) with the next sequence numbers.
    pub async fn messages(&self, conversation: &str, senders_and_texts: &[(&str, &str)]) {
        let client = self.db.client().await;
        for (sender, text) in senders_and_texts {
            let author = if *sender == "user" { "customer" } else { "ai" };
            client
                .execute(
                    "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no, author)
                     VALUES ('msg_' || gen_random_uuid(), $1::text, $2, $3, 'sent',
                             (SELECT COALESCE(max(sequence_no), 0) + 1 FROM messages WHERE conversation_id = $1::text), $4)",
                    &[&conversation, sender, text, &author],
                )
                .await
                .expect("message");
            client
                .execute(
                    "UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP WHERE conversation_id = $1",
                    &[&conversation],
                )
                .await
                .expect("last message");
        }
    }

    /// `n` customer messages.
    pub async fn customer_writes(&self, conversation: &str, n: usize) {
        let texts: Vec<(&str, &str)> = (0..n)
            .map(|_| ("user", "I'd like pricing for 50 seats"))
            .collect();
        self.messages(conversation, &texts).await;
    }

    pub fn job(
        &self,
        tenant: &str,
        conversation: &str,
        trigger: ExtractionTrigger,
    ) -> ExtractionJob {
        ExtractionJob::new(tenant, conversation, trigger)
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    /// Requests the fake model received.
    pub async fn model_calls(&self) -> Vec<Value> {
        self.openai
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    /// `(message_count, is_latest, total_score, lead_status_tag)` of the conversation's
    /// extractions, oldest first.
    pub async fn extractions(&self, conversation: &str) -> Vec<(i32, bool, i32, String)> {
        self.db
            .client()
            .await
            .query(
                "SELECT message_count_at_extraction, is_latest, total_score, lead_status_tag
                 FROM extractions WHERE conversation_id = $1 ORDER BY message_count_at_extraction",
                &[&conversation],
            )
            .await
            .expect("extractions")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    /// The tenant's events of `conversation` as `event_type`s, oldest first.
    pub async fn events(&self, conversation: &str) -> Vec<String> {
        self.db
            .client()
            .await
            .query(
                "SELECT event_type FROM domain_events WHERE conversation_id = $1 ORDER BY event_id",
                &[&conversation],
            )
            .await
            .expect("events")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Moves the conversation's last activity `minutes` into the past.
    pub async fn quiet_for(&self, conversation: &str, minutes: i32) {
        self.db
            .client()
            .await
            .execute(
                "UPDATE conversations SET last_message_at = now() - make_interval(mins => $2)
                 WHERE conversation_id = $1",
                &[&conversation, &minutes],
            )
            .await
            .expect("quiet");
    }
}
