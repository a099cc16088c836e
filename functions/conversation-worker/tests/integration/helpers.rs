use chrono::{DateTime, TimeZone, Utc};
use conversation_worker::{OptOutWords, WorkerState};
use serde_json::json;
use shared::{
    db::inbound::{self, ChannelRoute},
    domain::{InboundMessage, Platform},
    jobs::ReplyJob,
};
use testkit::ChannelSeed;

use crate::fakes;

pub const TENANT: &str = "acme";
pub const CUSTOMER: &str = "16505551234";
pub const META_NUMBER_ID: &str = "106540352242922";

/// The worker on [`testkit::TestApp`] (database, Meta and OpenAI fakes): a tenant `acme`
/// with credits, a WhatsApp channel and its agent, seeded through `shared::db`.
pub struct TestApp {
    pub kit: testkit::TestApp,
    pub state: WorkerState,
    pub channel: ChannelRoute,
}

impl std::ops::Deref for TestApp {
    type Target = testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.kit
    }
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
        let kit = testkit::TestApp::new().await;
        let seed = kit.db.seed();
        let user = seed.tenant(TENANT).await;
        seed.credits(&user, credits).await;
        let channel = seed
            .channel(&user, ChannelSeed::whatsapp(META_NUMBER_ID))
            .await;
        seed.agent(&user, &channel, "pmpt_sales", "Ava").await;
        let state = WorkerState {
            pool: kit.db.pool.clone(),
            openai: kit.openai_client(),
            graph: kit.graph(),
            sealing_key: testkit::test_sealing_key(),
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
            phone_number_id: channel.id,
            user_id: user,
            platform: Platform::WhatsApp,
        };
        Self {
            kit,
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
