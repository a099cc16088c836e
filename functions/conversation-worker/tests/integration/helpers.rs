use chrono::{DateTime, TimeZone, Utc};
use conversation_worker::{OptOutWords, WorkerState};
use serde_json::json;
use shared::{
    crypto::SecretKind,
    db::inbound::{self, ChannelRoute},
    domain::{PhoneNumberId, Platform, UserId},
    jobs::ReplyJob,
    meta::{
        graph::{Graph, GraphConfig},
        webhook::InboundMessage,
    },
    openai::{OpenAi, OpenAiConfig},
};
use testkit::TestDb;
use wiremock::MockServer;

use crate::fakes;

pub const TENANT: &str = "acme";
pub const CUSTOMER: &str = "16505551234";
pub const META_NUMBER_ID: &str = "106540352242922";

pub struct TestApp {
    pub db: TestDb,
    pub openai: MockServer,
    pub meta: MockServer,
    pub state: WorkerState,
    pub channel: ChannelRoute,
}

impl TestApp {
    /// A tenant with `credits`, a WhatsApp channel and an agent, and fakes that answer.
    pub async fn spawn(credits: i32) -> Self {
        let app = Self::spawn_without_fakes(credits).await;
        fakes::mount_openai(&app.openai).await;
        fakes::mount_meta(&app.meta).await;
        app
    }

    /// Same, with fakes that have no routes yet (the test mounts its own).
    pub async fn spawn_without_fakes(credits: i32) -> Self {
        let db = TestDb::new().await;
        let openai = MockServer::start().await;
        let meta = MockServer::start().await;
        let key = testkit::test_sealing_key();
        let channel_id = PhoneNumberId::generate();
        let sealed = key
            .seal(SecretKind::ChannelAccessToken, "EAAG-channel-token")
            .expect("seal");
        let client = db.client().await;
        client
            .execute(
                "INSERT INTO users (user_id, email) VALUES ($1, 'acme@example.test')",
                &[&TENANT],
            )
            .await
            .expect("user");
        client
            .execute(
                "INSERT INTO credits (user_id, remaining_credits) VALUES ($1, $2)",
                &[&TENANT, &credits],
            )
            .await
            .expect("credits");
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id)
                 VALUES ($1, $2, 'whatsapp', $3, $4, '1')",
                &[&channel_id.as_str(), &TENANT, &META_NUMBER_ID, &sealed],
            )
            .await
            .expect("channel");
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
                 VALUES ('agt_acme', $1, $2, 'pmpt_sales', 'Ava')",
                &[&TENANT, &channel_id.as_str()],
            )
            .await
            .expect("agent");
        let http = reqwest::Client::new();
        let state = WorkerState {
            pool: db.pool.clone(),
            openai: OpenAi::new(
                http.clone(),
                OpenAiConfig {
                    base_url: openai.uri(),
                    api_key: "sk-test".to_owned().into(),
                    timeout: std::time::Duration::from_secs(5),
                },
            ),
            graph: Graph::new(http, GraphConfig::for_base_url(&meta.uri())),
            sealing_key: key,
            opt_out: OptOutWords::default(),
            retry_queue: None,
            lifter: shared::jobs::LifterConfig {
                deadline_margin: std::time::Duration::from_secs(1),
                backoff_base: std::time::Duration::from_secs(10),
                backoff_cap: std::time::Duration::from_secs(900),
            },
            google: None,
        };
        let channel = ChannelRoute {
            phone_number_id: channel_id,
            user_id: UserId::parse(TENANT).expect("user id"),
            platform: Platform::WhatsApp,
        };
        Self {
            db,
            openai,
            meta,
            state,
            channel,
        }
    }

    /// Puts a customer message in the inbox, as the webhook does, and returns its job.
    pub async fn inbound(
        &self,
        id: &str,
        customer: &str,
        text: &str,
        sent_at: DateTime<Utc>,
    ) -> ReplyJob {
        let message = InboundMessage {
            platform: Platform::WhatsApp,
            channel_key: META_NUMBER_ID.to_owned(),
            platform_message_id: id.to_owned(),
            customer_id: customer.to_owned(),
            customer_name: Some("Sheena".to_owned()),
            sent_at,
            message_type: "text".to_owned(),
            text: text.to_owned(),
            metadata: json!({}),
        };
        inbound::record(&self.db.client().await, &self.channel, &message)
            .await
            .expect("inbox row");
        ReplyJob::new(id, self.channel.phone_number_id.as_str(), customer)
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    pub async fn credits(&self) -> (i32, i32) {
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT remaining_credits, total_used FROM credits WHERE user_id = $1",
                &[&TENANT],
            )
            .await
            .expect("credits");
        (row.get(0), row.get(1))
    }

    pub async fn meta_sends(&self) -> Vec<serde_json::Value> {
        fakes::requests_to(&self.meta, "/messages").await
    }

    pub async fn model_calls(&self) -> Vec<serde_json::Value> {
        fakes::requests_to(&self.openai, "/responses").await
    }
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_749_416_000 + seconds, 0)
        .single()
        .expect("valid time")
}
