//! `/campaigns` through the router, on a real PostgreSQL, with the in-process start queue
//! and the local scheduler; the engine (campaign-start, send-worker) runs the campaigns
//! the API starts, against Meta faked over HTTP.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use campaigns::CampaignsState;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shared::{
    db::templates,
    domain::{
        ComponentType, ContactName, ParameterFormat, PhoneE164, PhoneNumberId, Tag,
        TemplateCategory, TemplateStatus, UserId,
    },
    jobs::{CampaignStartJob, LocalQueue, Queue, SendJob},
    scheduler::{CampaignScheduler, LocalScheduler, OneTimeSchedule},
    templates::model::{TemplateContent, TemplateDraft, TextPart, Variable},
};
use testkit::{ChannelSeed, TestTenant};
use wiremock::{
    Mock, Request, Respond, ResponseTemplate,
    matchers::{method, path_regex},
};

struct App {
    kit: testkit::TestApp,
    tenant: TestTenant,
    rival: TestTenant,
    user: UserId,
    channel: PhoneNumberId,
    template: String,
    starts: LocalQueue<CampaignStartJob>,
    scheduler: LocalScheduler,
}

#[derive(Clone, Default)]
struct Accept(Arc<AtomicU64>);

impl Respond for Accept {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": body["to"], "wa_id": body["to"] }],
            "messages": [{ "id": format!("wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI{n:020}") }],
        }))
    }
}

impl App {
    async fn new() -> Self {
        let kit = testkit::TestApp::new().await;
        let starts = LocalQueue::new();
        let scheduler = LocalScheduler::new();
        let state = CampaignsState {
            api: kit.api_state(),
            starts: Queue::Local(starts.clone()),
            scheduler: CampaignScheduler::Local(scheduler.clone()),
        };
        let kit = kit.serve(campaigns::router(state));
        let tenant = kit.tenant_via("acme", "/campaigns").await;
        let rival = kit.tenant_via("rival", "/campaigns").await;
        let user = UserId::parse(&tenant.sub).expect("user");
        let seed = kit.db.seed();
        let channel = seed
            .channel(
                &user,
                ChannelSeed::whatsapp("106540352242922").token("EAAG-token"),
            )
            .await;
        seed.agent(&user, &channel, "pmpt_sales", "Ava").await;
        let template = template(
            &kit,
            &user,
            &channel.id,
            "spring_sale",
            TemplateStatus::Approved,
        )
        .await;
        for i in 0..3 {
            contact(
                &kit,
                &user,
                &format!("+1415555{:04}", 100 + i),
                &format!("Ana {i}"),
                &["vip"],
            )
            .await;
        }
        contact(&kit, &user, "+14155559999", "Bo", &["lead"]).await;
        Self {
            kit,
            tenant,
            rival,
            user,
            channel: channel.id,
            template,
            starts,
            scheduler,
        }
    }

    fn body(&self, trigger: Value) -> Value {
        json!({
            "name": "Spring sale",
            "template_id": self.template,
            "phone_number_id": self.channel.as_str(),
            "recipient_filter": {"tags": ["VIP"]},
            "variable_values": {"1": {"contact_field": "name"}},
            "trigger": trigger,
        })
    }

    async fn create(&self, trigger: Value) -> Value {
        self.kit
            .post_as(&self.tenant, "/campaigns", &self.body(trigger))
            .await
            .expect(201)
            .clone()
    }

    fn start_jobs(&self) -> Vec<CampaignStartJob> {
        self.starts.drain()
    }

    /// The `campaign-start` function's state, publishing its send jobs to `sends`.
    fn start_state(&self, sends: &LocalQueue<SendJob>) -> campaign_start::CampaignStartState {
        campaign_start::CampaignStartState {
            pool: self.kit.db.pool.clone(),
            sends: Queue::Local(sends.clone()),
            starts: Queue::Local(self.starts.clone()),
            retry_queue: None,
            events_retry_queue: None,
            lifter: shared::jobs::LifterConfig::from_env().expect("lifter"),
        }
    }

    /// The `send-worker`'s state, sending to the Meta fake.
    fn send_state(&self) -> send_worker::SendState {
        send_worker::SendState {
            pool: self.kit.db.pool.clone(),
            graph: self.kit.graph(),
            sealing_key: testkit::test_sealing_key(),
            config: send_worker::SendConfig::default(),
            retry_queue: None,
            lifter: shared::jobs::LifterConfig::from_env().expect("lifter"),
            contexts: Default::default(),
        }
    }

    /// Runs the start jobs the API published (resolution and fan-out); returns the sends.
    async fn run_starts(&self) -> LocalQueue<SendJob> {
        let sends: LocalQueue<SendJob> = LocalQueue::new();
        let state = self.start_state(&sends);
        for job in self.start_jobs() {
            campaign_start::handle(&state, &job).await.expect("start");
        }
        sends
    }

    /// How many campaigns the tenant has.
    async fn count(&self) -> usize {
        self.kit
            .get_as(&self.tenant, "/campaigns")
            .await
            .expect(200)["items"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

async fn template(
    kit: &testkit::TestApp,
    user: &UserId,
    channel: &PhoneNumberId,
    name: &str,
    status: TemplateStatus,
) -> String {
    let mut client = kit.db.client().await;
    let target = templates::channel(&client, user, channel)
        .await
        .expect("channel")
        .expect("ours");
    let draft = TemplateDraft {
        name: name.to_owned(),
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
    if status != TemplateStatus::Draft {
        templates::set_status(&client, &template.template_id, status, status.as_str())
            .await
            .expect("status");
    }
    template.template_id.to_string()
}

async fn contact(kit: &testkit::TestApp, user: &UserId, phone: &str, name: &str, tags: &[&str]) {
    let mut client = kit.db.client().await;
    let tx = client.transaction().await.expect("tx");
    let new = shared::db::contacts::NewContact {
        phone: PhoneE164::parse(phone).expect("phone"),
        name: Some(ContactName::parse(name).expect("name")),
        email: None,
        company: None,
        tags: tags.iter().map(|t| Tag::parse(t).expect("tag")).collect(),
    };
    shared::db::contacts::create(&tx, user, &new)
        .await
        .expect("contact");
    tx.commit().await.expect("commit");
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_campaign_is_created_as_a_draft_with_what_was_asked() {
    let app = App::new().await;
    let created = app.create(json!({"trigger_type": "IMMEDIATE"})).await;
    assert_eq!(created["status"], "DRAFT");
    assert_eq!(
        created["recipient_filter"]["tags"],
        json!(["vip"]),
        "tags normalised"
    );
    assert_eq!(
        created["variable_values"]["1"],
        json!({"contact_field": "name"})
    );
    assert_eq!(created["counters"]["sent"], 0);
    let id = created["campaign_id"].as_str().expect("id");
    let read = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(read["name"], "Spring sale");
    let list = app
        .kit
        .get_as(&app.tenant, "/campaigns?status=DRAFT")
        .await
        .expect(200)
        .clone();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let none = app
        .kit
        .get_as(&app.tenant, "/campaigns?status=RUNNING")
        .await
        .expect(200)
        .clone();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn every_bad_field_is_named_and_nothing_is_written() {
    let app = App::new().await;
    let other_channel = app
        .kit
        .db
        .seed()
        .channel(
            &app.user,
            ChannelSeed::whatsapp("106540352242923").token("EAAG-token"),
        )
        .await;
    let mut body =
        app.body(json!({"trigger_type": "SCHEDULED", "scheduled_at": "2001-01-01T00:00:00Z"}));
    body["phone_number_id"] = json!(other_channel.id.as_str());
    body["recipient_filter"] = json!({"tags": ["=evil"], "contactIds": ["ct_nope"]});
    body["variable_values"] = json!({"1": "line\nbreak", "9": "x"});
    body["name"] = json!("");
    body["options"] =
        json!({"quiet_hours": {"start": "25:00", "end": "08:00"}, "send_rate_per_second": 5000});
    let problem = app
        .kit
        .post_as(&app.tenant, "/campaigns", &body)
        .await
        .expect(422)
        .clone();
    let named = fields(&problem);
    for field in [
        "name",
        "template_id",
        "recipient_filter.tags[0]",
        "recipient_filter.contactIds[0]",
        "variable_values.1",
        "variable_values.9",
        "trigger.scheduled_at",
        "options.quiet_hours.start",
        "options.send_rate_per_second",
    ] {
        assert!(
            named.iter().any(|f| f == field),
            "{field} not named in {named:?}"
        );
    }
    let mut sneaky = app.body(json!({"trigger_type": "IMMEDIATE"}));
    sneaky["variable_values"] = json!({"1": {"contact_field": "name", "evil": "x"}});
    app.kit
        .post_as(&app.tenant, "/campaigns", &sneaky)
        .await
        .expect(422);
    let event = app.body(json!({"trigger_type": "EVENT", "event_type": "TAG_ADDED"}));
    let problem = app
        .kit
        .post_as(&app.tenant, "/campaigns", &event)
        .await
        .expect(422)
        .clone();
    assert_eq!(fields(&problem), vec!["trigger.event_config.tag"]);
    let rival_body = {
        let mut b = app.body(json!({"trigger_type": "IMMEDIATE"}));
        b["name"] = json!("Stolen");
        b
    };
    let problem = app
        .kit
        .post_as(&app.rival, "/campaigns", &rival_body)
        .await
        .expect(422)
        .clone();
    assert!(fields(&problem).contains(&"template_id".to_owned()));
    assert!(fields(&problem).contains(&"phone_number_id".to_owned()));
    assert_eq!(
        app.kit.count("SELECT count(*) FROM campaigns", &[]).await,
        0
    );
}

#[tokio::test]
async fn another_tenants_campaign_answers_404_on_every_route() {
    let app = App::new().await;
    let created = app.create(json!({"trigger_type": "IMMEDIATE"})).await;
    let id = created["campaign_id"].as_str().expect("id");
    for path in ["", "/recipients", "/stats"] {
        app.kit
            .get_as(&app.rival, &format!("/campaigns/{id}{path}"))
            .await
            .expect(404);
    }
    for action in ["start", "pause", "resume", "cancel"] {
        app.kit
            .post_as(&app.rival, &format!("/campaigns/{id}/{action}"), &json!({}))
            .await
            .expect(404);
    }
    app.kit
        .post_as(
            &app.rival,
            &format!("/campaigns/{id}/retry-failed"),
            &json!({}),
        )
        .await
        .expect(404);
    app.kit
        .patch_as(
            &app.rival,
            &format!("/campaigns/{id}"),
            &json!({"name": "x"}),
        )
        .await
        .expect(404);
    app.kit
        .delete_as(&app.rival, &format!("/campaigns/{id}"))
        .await
        .expect(404);
    let rival_list = app
        .kit
        .get_as(&app.rival, "/campaigns")
        .await
        .expect(200)
        .clone();
    assert_eq!(rival_list["items"], json!([]));
    assert!(app.start_jobs().is_empty());
}

#[tokio::test]
async fn an_immediate_campaign_runs_to_completion_and_each_illegal_move_says_the_status() {
    let app = App::new().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(Accept::default())
        .mount(&app.kit.meta)
        .await;
    let created = app.create(json!({"trigger_type": "IMMEDIATE"})).await;
    let id = created["campaign_id"].as_str().expect("id").to_owned();
    let started = app
        .kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(200)
        .clone();
    assert_eq!(started["status"], "RUNNING");
    let again = app
        .kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(409)
        .clone();
    assert!(
        again["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("RUNNING"),
        "{again}"
    );
    app.kit
        .delete_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(409);
    app.kit
        .patch_as(
            &app.tenant,
            &format!("/campaigns/{id}"),
            &json!({"name": "Late"}),
        )
        .await
        .expect(409);
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/resume"), &json!({}))
        .await
        .expect(409);

    // The engine runs what the API started.
    let jobs = app.start_jobs();
    assert_eq!(jobs.len(), 1);
    let sends: LocalQueue<SendJob> = LocalQueue::new();
    let start_state = app.start_state(&sends);
    campaign_start::handle(&start_state, &jobs[0])
        .await
        .expect("start");
    let send_state = app.send_state();
    for job in sends.drain() {
        send_worker::handle(&send_state, &job).await.expect("send");
    }
    let done = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["counters"]["sent"], 3);
    assert_eq!(done["counters"]["total_recipients"], 3);
    let stats = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{id}/stats"))
        .await
        .expect(200)
        .clone();
    assert_eq!(stats["by_status"]["SENT"], 3);
    assert_eq!(
        stats["sent_per_minute"].as_array().map(|m| m
            .iter()
            .map(|x| x["sent"].as_i64().unwrap_or(0))
            .sum::<i64>()),
        Some(3)
    );
    let recipients = app
        .kit
        .get_as(
            &app.tenant,
            &format!("/campaigns/{id}/recipients?status=SENT&limit=2"),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(recipients["items"].as_array().map(Vec::len), Some(2));
    assert!(recipients["next_cursor"].is_string());
    assert_eq!(
        recipients["items"][0]["variable_values"]["1"]
            .as_str()
            .map(|s| s.starts_with("Ana")),
        Some(true)
    );
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/pause"), &json!({}))
        .await
        .expect(409);
    app.kit
        .get_as(
            &app.tenant,
            &format!("/campaigns/{id}/recipients?status=NOPE"),
        )
        .await
        .expect(422);
}

#[tokio::test]
async fn a_scheduled_campaign_in_its_last_minute_can_be_renamed_but_not_rescheduled() {
    let app = App::new().await;
    let at = (Utc::now() + Duration::seconds(62))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let trigger = json!({"trigger_type": "SCHEDULED", "scheduled_at": at, "timezone": "UTC"});
    let created = app.create(trigger.clone()).await;
    let id = created["campaign_id"].as_str().expect("id").to_owned();
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(200);
    let name = OneTimeSchedule::campaign_name(&id).expect("name");
    let armed = app.scheduler.get(&name).expect("armed");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    // Under a minute to go: a PATCH that keeps the trigger is not refused for it.
    for patch in [json!({}), json!({"name": "Spring sale, final"})] {
        app.kit
            .patch_as(&app.tenant, &format!("/campaigns/{id}"), &patch)
            .await
            .expect(200);
    }
    assert_eq!(
        app.scheduler.get(&name),
        Some(armed),
        "the schedule is untouched"
    );
    let refused = app
        .kit
        .patch_as(
            &app.tenant,
            &format!("/campaigns/{id}"),
            &json!({ "trigger": trigger }),
        )
        .await
        .expect(422)
        .clone();
    assert_eq!(
        refused["errors"][0]["field"], "trigger.scheduled_at",
        "{refused}"
    );
}

#[tokio::test]
async fn a_restarted_in_process_scheduler_arms_the_scheduled_campaigns_again() {
    let app = App::new().await;
    let at = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%dT09:00")
        .to_string();
    let trigger =
        json!({"trigger_type": "SCHEDULED", "scheduled_at": at, "timezone": "Europe/Madrid"});
    let armed = app.create(trigger.clone()).await;
    let armed = armed["campaign_id"].as_str().expect("id").to_owned();
    app.kit
        .post_as(
            &app.tenant,
            &format!("/campaigns/{armed}/start"),
            &json!({}),
        )
        .await
        .expect(200);
    let draft = app.create(trigger).await;

    // devstack restarts: its scheduler is empty, the campaign still SCHEDULED.
    let restarted = LocalScheduler::new();
    let state = CampaignsState {
        api: app.kit.api_state(),
        starts: Queue::Local(app.starts.clone()),
        scheduler: CampaignScheduler::Local(restarted.clone()),
    };
    assert_eq!(campaigns::rearm_schedules(&state).await.expect("rearm"), 1);

    let schedules = restarted.schedules();
    assert_eq!(schedules.len(), 1, "the DRAFT has none");
    assert_eq!(
        schedules[0].name,
        OneTimeSchedule::campaign_name(&armed).expect("name")
    );
    assert_eq!(schedules[0].time_zone, "Europe/Madrid");
    assert_eq!(schedules[0].at.format("%H:%M").to_string(), "09:00");
    let draft = draft["campaign_id"].as_str().expect("id");
    assert!(
        restarted
            .get(&OneTimeSchedule::campaign_name(draft).expect("name"))
            .is_none(),
        "a DRAFT is not armed"
    );
}

#[tokio::test]
async fn a_scheduled_campaign_creates_moves_and_deletes_its_schedule() {
    let app = App::new().await;
    let at = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%dT09:00")
        .to_string();
    let created = app
        .create(
            json!({"trigger_type": "SCHEDULED", "scheduled_at": at, "timezone": "Europe/Madrid"}),
        )
        .await;
    let id = created["campaign_id"].as_str().expect("id").to_owned();
    let started = app
        .kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(200)
        .clone();
    assert_eq!(started["status"], "SCHEDULED");
    let name = OneTimeSchedule::campaign_name(&id).expect("name");
    let schedule = app.scheduler.get(&name).expect("a schedule was created");
    assert_eq!(schedule.time_zone, "Europe/Madrid");
    assert_eq!(
        schedule.at.format("%H:%M").to_string(),
        "09:00",
        "the wall time in Madrid"
    );
    let job: CampaignStartJob =
        serde_json::from_str(&schedule.input).expect("the input is a start job");
    assert_eq!(job.campaign_id(), id);
    assert!(
        schedule.message_group_id.is_some(),
        "the FIFO target needs a group"
    );
    assert!(
        app.start_jobs().is_empty(),
        "nothing starts before its time"
    );

    let later = (Utc::now() + Duration::days(3))
        .format("%Y-%m-%dT18:30")
        .to_string();
    app.kit
        .patch_as(&app.tenant, &format!("/campaigns/{id}"), &json!({"trigger": {"trigger_type": "SCHEDULED", "scheduled_at": later, "timezone": "Europe/Madrid"}}))
        .await
        .expect(200);
    assert_eq!(
        app.scheduler
            .get(&name)
            .expect("still one")
            .at
            .format("%H:%M")
            .to_string(),
        "18:30"
    );
    assert_eq!(app.scheduler.schedules().len(), 1);

    // The old time's job, arriving after the reschedule, does not start it early.
    let early_sends: LocalQueue<SendJob> = LocalQueue::new();
    let early_state = app.start_state(&early_sends);
    let early = campaign_start::handle(&early_state, &job)
        .await
        .expect("early fire");
    assert_eq!(
        early.not_running,
        Some(shared::domain::CampaignStatus::Scheduled)
    );
    assert!(early_sends.drain().is_empty());

    let cancelled = app
        .kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/cancel"), &json!({}))
        .await
        .expect(200)
        .clone();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(
        app.scheduler.get(&name).is_none(),
        "cancel deletes the schedule"
    );

    // A schedule that fires for a cancelled campaign does nothing.
    let sends: LocalQueue<SendJob> = LocalQueue::new();
    let start_state = app.start_state(&sends);
    let outcome = campaign_start::handle(&start_state, &job)
        .await
        .expect("fires");
    assert_eq!(
        outcome.not_running,
        Some(shared::domain::CampaignStatus::Cancelled)
    );
    assert!(sends.drain().is_empty());
}

#[tokio::test]
async fn a_template_that_is_not_approved_cannot_start_and_drafts_can_be_deleted() {
    let app = App::new().await;
    let pending = template(
        &app.kit,
        &app.user,
        &app.channel,
        "not_yet",
        TemplateStatus::Pending,
    )
    .await;
    let mut body = app.body(json!({"trigger_type": "IMMEDIATE"}));
    body["template_id"] = json!(pending);
    let created = app
        .kit
        .post_as(&app.tenant, "/campaigns", &body)
        .await
        .expect(201)
        .clone();
    let id = created["campaign_id"].as_str().expect("id");
    let refused = app
        .kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(409)
        .clone();
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("PENDING")
    );
    app.kit
        .delete_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(204);
    app.kit
        .get_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn preview_counts_the_audience_and_renders_samples() {
    let app = App::new().await;
    let preview = app
        .kit
        .post_as(
            &app.tenant,
            "/campaigns/preview",
            &json!({"template_id": app.template, "recipient_filter": {"tags": ["vip"]}, "variable_values": {"1": {"contact_field": "name"}}}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(preview["eligible"], 3);
    assert_eq!(preview["samples"].as_array().map(Vec::len), Some(3));
    assert_eq!(preview["samples"][0]["text"], "Hi Ana 0, 20% off today");
    let everyone = app
        .kit
        .post_as(&app.tenant, "/campaigns/preview", &json!({}))
        .await
        .expect(200)
        .clone();
    assert_eq!(everyone["eligible"], 4);
    assert_eq!(
        app.kit
            .count("SELECT count(*) FROM campaign_recipients", &[])
            .await,
        0,
        "a preview writes nothing"
    );
}

#[tokio::test]
async fn a_due_schedule_starts_the_campaign_once() {
    let app = App::new().await;
    let at = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let created = app
        .create(json!({"trigger_type": "SCHEDULED", "scheduled_at": at}))
        .await;
    let id = created["campaign_id"].as_str().expect("id").to_owned();
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{id}/start"), &json!({}))
        .await
        .expect(200);
    let name = OneTimeSchedule::campaign_name(&id).expect("name");
    let schedule = app.scheduler.get(&name).expect("scheduled");
    // The hour passes: the local scheduler hands the schedule over, as EventBridge fires it.
    let fired = app.scheduler.due(Utc::now() + Duration::hours(2));
    assert_eq!(fired.len(), 1);
    assert!(
        app.scheduler.get(&name).is_none(),
        "a fired schedule deletes itself"
    );
    app.kit
        .db
        .client()
        .await
        .execute(
            "UPDATE campaign_triggers SET scheduled_at = now() - interval '1 second' WHERE campaign_id = $1",
            &[&id],
        )
        .await
        .expect("time passes");
    let job: CampaignStartJob = serde_json::from_str(&schedule.input).expect("job");
    let sends: LocalQueue<SendJob> = LocalQueue::new();
    let start_state = app.start_state(&sends);
    for _ in 0..2 {
        campaign_start::handle(&start_state, &job)
            .await
            .expect("fires");
    }
    assert_eq!(
        sends.drain().len(),
        3,
        "three VIPs, one job each, though it fired twice"
    );
    let running = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(running["status"], "RUNNING");
    assert!(running["started_at"].is_string());
}

#[tokio::test]
async fn parallel_starts_of_a_scheduled_campaign_schedule_it_once_and_keep_the_schedule() {
    let app = App::new().await;
    let at = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%dT09:00")
        .to_string();
    // No `timezone`: the tenant's is read, on the request's own connection.
    let created = app
        .create(json!({"trigger_type": "SCHEDULED", "scheduled_at": at}))
        .await;
    let id = created["campaign_id"].as_str().expect("id").to_owned();
    let path = format!("/campaigns/{id}/start");
    let empty = json!({});
    let starts = (0..24).map(|_| app.kit.post_as(&app.tenant, &path, &empty));
    let answers = futures_util::future::join_all(starts).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "started once: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "never a 5xx: {statuses:?}"
    );
    for answer in answers.iter().filter(|a| a.status.as_u16() == 409) {
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("SCHEDULED"), "{detail}");
    }
    let name = OneTimeSchedule::campaign_name(&id).expect("name");
    assert!(
        app.scheduler.get(&name).is_some(),
        "the losers left the winner's schedule in place"
    );
    let stored = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(stored["status"], "SCHEDULED");
}

#[tokio::test]
async fn wrong_types_empty_values_and_foreign_cursors_are_named_4xx() {
    let app = App::new().await;
    let cases = [
        (
            json!({"trigger": {"trigger_type": 5}}),
            "trigger.trigger_type",
        ),
        (
            json!({"trigger": {"trigger_type": "IMMEDIATE", "event_config": {"tag": "x"}}}),
            "trigger.event_config",
        ),
        (json!({"variable_values": {"1": "  "}}), "variable_values.1"),
    ];
    for (change, field) in cases {
        let mut body = app.body(json!({"trigger_type": "IMMEDIATE"}));
        for (key, value) in change.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        let problem = app
            .kit
            .post_as(&app.tenant, "/campaigns", &body)
            .await
            .expect(422)
            .clone();
        assert_eq!(fields(&problem), vec![field.to_owned()], "{problem}");
    }
    assert_eq!(app.count().await, 0, "nothing was written");

    // The preview checks values as a campaign would.
    for (body, field) in [
        (
            json!({"template_id": app.template, "variable_values": {"zzz": "x"}}),
            "variable_values.zzz",
        ),
        (json!({"variable_values": {"1": "x"}}), "variable_values"),
    ] {
        let problem = app
            .kit
            .post_as(&app.tenant, "/campaigns/preview", &body)
            .await
            .expect(422)
            .clone();
        assert_eq!(fields(&problem), vec![field.to_owned()], "{problem}");
    }

    // Recipients: the error_code filter's bounds, and a cursor of another campaign.
    let first = app.create(json!({"trigger_type": "IMMEDIATE"})).await;
    let second = app.create(json!({"trigger_type": "IMMEDIATE"})).await;
    let (a, b) = (
        first["campaign_id"].as_str().expect("id"),
        second["campaign_id"].as_str().expect("id"),
    );
    for bad in ["", &"9".repeat(51)] {
        app.kit
            .get_as(
                &app.tenant,
                &format!("/campaigns/{a}/recipients?error_code={bad}"),
            )
            .await
            .expect_problem(422, Some("error_code"));
    }
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{a}/start"), &json!({}))
        .await
        .expect(200);
    app.kit
        .post_as(&app.tenant, &format!("/campaigns/{b}/start"), &json!({}))
        .await
        .expect(200);
    app.run_starts().await;
    let page = app
        .kit
        .get_as(&app.tenant, &format!("/campaigns/{a}/recipients?limit=1"))
        .await
        .expect(200)
        .clone();
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    app.kit
        .get_as(
            &app.tenant,
            &format!("/campaigns/{b}/recipients?limit=1&cursor={cursor}"),
        )
        .await
        .expect_problem(400, Some("cursor"));
}

#[tokio::test]
async fn a_filter_may_name_ten_thousand_contacts() {
    let app = App::new().await;
    let ids: Vec<String> = (0..10_000)
        .map(|_| shared::domain::ContactId::generate().to_string())
        .collect();
    let mut body = app.body(json!({"trigger_type": "IMMEDIATE"}));
    body["recipient_filter"] = json!({"contactIds": ids});
    assert!(serde_json::to_vec(&body).expect("json").len() > 256 * 1024);
    let created = app
        .kit
        .post_as(&app.tenant, "/campaigns", &body)
        .await
        .expect(201)
        .clone();
    assert_eq!(
        created["recipient_filter"]["contactIds"]
            .as_array()
            .map(Vec::len),
        Some(10_000)
    );
}
