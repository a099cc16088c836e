//! The engine under test: one tenant (`acme`) with a WhatsApp channel, its agent, an
//! APPROVED MARKETING template (`Hi {{1}}, 20% off today`), contacts, the in-process start
//! and send queues, and Meta's send endpoint faked with wiremock.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use campaign_start::CampaignStartState;
use send_worker::{SendConfig, SendState};
use serde_json::{Value, json};
use shared::{
    db::{campaigns, contacts, templates},
    domain::{
        CampaignId, ComponentType, ContactName, ParameterFormat, PhoneE164, PhoneNumberId,
        RecipientStatus, Tag, TemplateCategory, TemplateStatus, TriggerType, UserId,
        campaign::RecipientFilterBody,
    },
    jobs::{CampaignStartJob, LocalQueue, Queue, SendJob, StartReason},
    templates::model::{TemplateContent, TemplateDraft, TextPart, Variable},
};
use testkit::ChannelSeed;
use wiremock::{
    Mock, Request, Respond, ResponseTemplate,
    matchers::{body_string_contains, method, path_regex},
};

pub const TENANT: &str = "acme";

/// The phone of VIP contact `i`.
pub fn vip_phone(i: usize) -> String {
    format!("+1415555{:04}", 100 + i)
}

pub struct Engine {
    pub app: testkit::TestApp,
    pub user: UserId,
    pub channel: PhoneNumberId,
    pub template: String,
    pub sends: LocalQueue<SendJob>,
    pub starts: LocalQueue<CampaignStartJob>,
    pub start_state: CampaignStartState,
    pub send_state: SendState,
    refused: Mutex<Vec<String>>,
}

/// Meta accepting a send: a new `wamid` each time.
#[derive(Clone, Default)]
struct Accept(Arc<AtomicU64>);

impl Respond for Accept {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": body["to"], "wa_id": body["to"] }],
            "messages": [{ "id": format!("wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI{n:020}"), "message_status": "accepted" }],
        }))
    }
}

impl Engine {
    pub async fn new() -> Self {
        let app = testkit::TestApp::new().await;
        let seed = app.db.seed();
        let user = seed.tenant(TENANT).await;
        let channel = seed
            .channel(
                &user,
                ChannelSeed::whatsapp("106540352242922").token("EAAG-token"),
            )
            .await;
        seed.agent(&user, &channel, "pmpt_sales", "Ava").await;
        let template = approved_template(&app, &user, &channel.id).await;
        let sends = LocalQueue::new();
        let starts = LocalQueue::new();
        let lifter = shared::jobs::LifterConfig {
            deadline_margin: std::time::Duration::from_secs(1),
            backoff_base: std::time::Duration::from_secs(10),
            backoff_cap: std::time::Duration::from_secs(900),
        };
        let start_state = CampaignStartState {
            pool: app.db.pool.clone(),
            sends: Queue::Local(sends.clone()),
            starts: Queue::Local(starts.clone()),
            retry_queue: None,
            events_retry_queue: None,
            lifter: lifter.clone(),
        };
        let send_state = SendState {
            pool: app.db.pool.clone(),
            graph: app.graph(),
            sealing_key: testkit::test_sealing_key(),
            config: SendConfig::default(),
            retry_queue: None,
            lifter,
            contexts: Default::default(),
        };
        Self {
            app,
            user,
            channel: channel.id,
            template,
            sends,
            starts,
            start_state,
            send_state,
            refused: Mutex::new(Vec::new()),
        }
    }

    /// Sets the channel's messages-per-second cap.
    pub async fn messages_per_second(&self, cap: i32) {
        self.app
            .db
            .client()
            .await
            .execute(
                "UPDATE phone_numbers SET messages_per_second = $2 WHERE id = $1",
                &[&self.channel.as_str(), &cap],
            )
            .await
            .expect("cap");
    }

    pub async fn seed_tenant(&self, user: &str) {
        self.app.db.seed().tenant(user).await;
    }

    pub async fn meta_accepts(&self) {
        Mock::given(method("POST"))
            .and(path_regex(r"/messages$"))
            .respond_with(Accept::default())
            .with_priority(10)
            .mount(&self.app.meta)
            .await;
    }

    /// Meta refuses sends to `phone` with Graph error `code`.
    pub async fn meta_refuses(&self, phone: &str, code: i64, message: &str) {
        let digits = phone.trim_start_matches('+');
        Mock::given(method("POST"))
            .and(path_regex(r"/messages$"))
            .and(body_string_contains(digits))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": { "message": message, "type": "OAuthException", "code": code,
                           "error_data": { "messaging_product": "whatsapp", "details": message },
                           "fbtrace_id": "AbCdEf" }
            })))
            .with_priority(1)
            .mount(&self.app.meta)
            .await;
        if let Ok(mut refused) = self.refused.lock() {
            refused.push(digits.to_owned());
        }
    }

    /// Meta answers 130429 (throughput) to the next send only.
    pub async fn meta_throttles_once(&self) {
        Mock::given(method("POST"))
            .and(path_regex(r"/messages$"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": { "message": "(#130429) Rate limit hit", "type": "OAuthException",
                           "code": 130429, "error_data": { "messaging_product": "whatsapp",
                           "details": "Cloud API message throughput has been reached." },
                           "fbtrace_id": "AbCdEf" }
            })))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&self.app.meta)
            .await;
    }

    /// Runs one send job as it comes (a retryable failure is the job going back).
    pub async fn try_send(
        &self,
        job: &SendJob,
    ) -> Result<send_worker::Outcome, shared::jobs::JobError> {
        send_worker::handle(&self.send_state, job).await
    }

    /// The bodies of the sends Meta accepted.
    pub async fn meta_sends(&self) -> Vec<Value> {
        let refused = self.refused.lock().map(|r| r.clone()).unwrap_or_default();
        testkit::TestApp::json_bodies_to(&self.app.meta, "/messages")
            .await
            .into_iter()
            .filter(|b| {
                let to = b["to"].as_str().unwrap_or_default().trim_start_matches('+');
                !refused.iter().any(|r| r == to)
            })
            .collect()
    }

    async fn contact(&self, phone: &str, name: &str, tags: &[&str], opted_out: bool) {
        let mut client = self.app.db.client().await;
        let tx = client.transaction().await.expect("tx");
        let new = contacts::NewContact {
            phone: PhoneE164::parse(phone).expect("phone"),
            name: Some(ContactName::parse(name).expect("name")),
            email: None,
            company: None,
            tags: tags.iter().map(|t| Tag::parse(t).expect("tag")).collect(),
        };
        let contacts::CreateOutcome::Created(contact) = contacts::create(&tx, &self.user, &new)
            .await
            .expect("contact")
        else {
            panic!("phone taken");
        };
        tx.commit().await.expect("commit");
        if opted_out {
            contacts::set_opted_out(&client, &self.user, &contact.contact_id, true)
                .await
                .expect("opt out");
        }
    }

    /// Five VIPs (the fifth opted out), two churned VIPs, one other contact, and a RUNNING
    /// campaign to `tags: [vip], excludeTags: [churned]` with `{{1}}` = the contact's name.
    pub async fn campaign_to_vips(&self) -> CampaignId {
        for i in 0..5 {
            self.contact(&vip_phone(i), &format!("Vip {i}"), &["vip"], i == 4)
                .await;
        }
        for i in 0..2 {
            self.contact(
                &format!("+1415666{:04}", i),
                "Gone",
                &["vip", "churned"],
                false,
            )
            .await;
        }
        self.contact("+14157770000", "Other", &["lead"], false)
            .await;
        self.campaign_with_filter(json!({"tags": ["vip"], "excludeTags": ["churned"]}))
            .await
    }

    /// A RUNNING IMMEDIATE campaign of the template with `filter`.
    pub async fn campaign_with_filter(&self, filter: Value) -> CampaignId {
        self.campaign_with(filter, TriggerType::Immediate, None, json!({}))
            .await
    }

    /// A RUNNING EVENT campaign listening to `event` (with `config`), to everyone.
    pub async fn event_campaign(
        &self,
        event: shared::domain::TriggerEvent,
        config: Value,
    ) -> CampaignId {
        self.campaign_with(json!({}), TriggerType::Event, Some(event), config)
            .await
    }

    /// Adds the contacts of [`Engine::campaign_to_vips`] without a campaign.
    pub async fn vips(&self) {
        for i in 0..5 {
            self.contact(&vip_phone(i), &format!("Vip {i}"), &["vip"], i == 4)
                .await;
        }
    }

    /// A contact's id by phone.
    pub async fn contact_id(&self, phone: &str) -> String {
        self.app
            .db
            .client()
            .await
            .query_one(
                "SELECT contact_id FROM contacts WHERE phone = $1",
                &[&phone],
            )
            .await
            .expect("contact")
            .get("contact_id")
    }

    async fn campaign_with(
        &self,
        filter: Value,
        trigger_type: TriggerType,
        event_type: Option<shared::domain::TriggerEvent>,
        event_config: Value,
    ) -> CampaignId {
        let body: RecipientFilterBody = serde_json::from_value(filter).expect("filter");
        let draft = campaigns::CampaignDraft {
            template_id: shared::domain::TemplateId::from_trusted(self.template.clone()),
            phone_number_id: self.channel.clone(),
            name: "Spring sale".to_owned(),
            description: None,
            recipient_filter: body.parse("recipient_filter").expect("valid filter"),
            variable_values: serde_json::from_value(json!({"1": {"contact_field": "name"}}))
                .expect("values"),
            time_zone: None,
            quiet_hours: None,
            frequency_cap_hours: None,
            send_rate_per_second: None,
            trigger_type,
            scheduled_at: None,
            event_type,
            event_config,
        };
        let mut client = self.app.db.client().await;
        let tx = client.transaction().await.expect("tx");
        let campaign = campaigns::create(&tx, &self.user, &draft)
            .await
            .expect("campaign");
        tx.commit().await.expect("commit");
        self.transition(&campaign.campaign_id, campaigns::Transition::Run)
            .await;
        campaign.campaign_id
    }

    pub async fn transition(&self, campaign: &CampaignId, transition: campaigns::Transition) {
        let edit = campaigns::transition(
            &self.app.db.client().await,
            &self.user,
            campaign,
            transition,
            None,
        )
        .await
        .expect("transition");
        assert!(
            matches!(edit, Some(campaigns::Edit::Done(_))),
            "{transition:?}: {edit:?}"
        );
    }

    /// Runs one start job.
    pub async fn start(&self, campaign: &CampaignId) {
        let job = CampaignStartJob::new(TENANT, campaign.as_str(), StartReason::Start);
        campaign_start::handle(&self.start_state, &job)
            .await
            .expect("start job");
    }

    /// Takes the send jobs published so far.
    pub fn send_jobs(&self) -> Vec<SendJob> {
        self.sends.drain()
    }

    /// Runs one send job, which must finish (no retry).
    pub async fn send(&self, job: &SendJob) -> send_worker::Outcome {
        send_worker::handle(&self.send_state, job)
            .await
            .expect("the send job finishes")
    }

    /// A started campaign to the VIPs, each sent once; the campaign and its sends' wamids
    /// in send order.
    pub async fn sent_campaign(&self) -> (CampaignId, Vec<String>) {
        self.meta_accepts().await;
        let campaign = self.campaign_to_vips().await;
        self.start(&campaign).await;
        for job in self.send_jobs() {
            self.send(&job).await;
        }
        let wamids = self
            .column(
                "SELECT platform_message_id FROM template_sends WHERE campaign_id = $1 ORDER BY send_id",
                &[&campaign.as_str()],
            )
            .await;
        (campaign, wamids)
    }

    /// The route the engine's channel reports statuses through.
    pub fn route(&self) -> shared::db::inbound::ChannelRoute {
        shared::db::inbound::ChannelRoute {
            phone_number_id: self.channel.clone(),
            user_id: self.user.clone(),
            platform: shared::domain::Platform::WhatsApp,
        }
    }

    /// A status of one of the engine's sends, reported now.
    pub fn status(
        &self,
        wamid: &str,
        status: shared::domain::DeliveryStatus,
    ) -> shared::domain::StatusUpdate {
        shared::domain::StatusUpdate {
            channel_key: "106540352242922".to_owned(),
            platform_message_id: wamid.to_owned(),
            status,
            timestamp: chrono::Utc::now(),
            recipient_id: None,
            errors: Vec::new(),
        }
    }

    /// The campaign's counters, after checking them against the recipient rows (the
    /// nightly reconciliation query).
    pub async fn reconciled_counters(&self, campaign: &CampaignId) -> campaigns::Counts {
        let client = self.app.db.client().await;
        let counters = campaigns::counters(&client, campaign)
            .await
            .expect("counters");
        let rows = campaigns::counted_from_rows(&client, campaign)
            .await
            .expect("rows");
        assert_eq!(counters, rows, "the shards agree with the recipient rows");
        counters
    }

    /// The first column of every row `sql` returns.
    pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<T> {
        self.app
            .db
            .client()
            .await
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The campaigns the sweep finds due.
    pub async fn sweep_due(&self) -> Vec<CampaignId> {
        let outcome = campaign_start::sweep(&self.start_state)
            .await
            .expect("sweep");
        self.starts.drain();
        outcome.due.into_iter().map(|(_, c)| c).collect()
    }

    pub async fn campaign(&self, id: &CampaignId) -> campaigns::Campaign {
        campaigns::get(&self.app.db.client().await, &self.user, id)
            .await
            .expect("get")
            .expect("campaign")
    }

    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.app.count(sql, params).await
    }

    pub async fn status_count(&self, campaign: &CampaignId, status: RecipientStatus) -> i64 {
        self.count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = $2",
            &[&campaign.as_str(), &status.as_str()],
        )
        .await
    }

    /// `(status, count)` of the campaign's recipients, by status.
    pub async fn recipients_by_status(&self, campaign: &CampaignId) -> Vec<(String, i64)> {
        self.app
            .db
            .client()
            .await
            .query(
                "SELECT status, count(*) AS n FROM campaign_recipients WHERE campaign_id = $1
                 GROUP BY status ORDER BY status",
                &[&campaign.as_str()],
            )
            .await
            .expect("query")
            .iter()
            .map(|r| (r.get("status"), r.get("n")))
            .collect()
    }
}

async fn approved_template(
    app: &testkit::TestApp,
    user: &UserId,
    channel: &PhoneNumberId,
) -> String {
    let mut client = app.db.client().await;
    let target = templates::channel(&client, user, channel)
        .await
        .expect("channel")
        .expect("ours");
    let draft = TemplateDraft {
        name: "spring_sale".to_owned(),
        category: TemplateCategory::Marketing,
        language: "en_US".to_owned(),
        parameter_format: ParameterFormat::Positional,
        content: TemplateContent {
            body: TextPart {
                text: "Hi {{1}}, 20% off today".to_owned(),
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
    let template = templates::insert(&tx, user, &target, &draft)
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
    template.template_id.to_string()
}
