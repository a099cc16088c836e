//! The README's campaign walk-through against devstack on a real port, with the campaign
//! engine on AWS services as `devstack` runs it when their variables are set: start and
//! send jobs through moto's SQS, SCHEDULED campaigns through moto's EventBridge Scheduler.
//! A channel, an agent and a template approved in the simulator (a signed status webhook);
//! tagged contacts; a preview; an IMMEDIATE campaign started, fanned out through SQS, sent
//! once each and moved to READ by the simulator's status webhooks; a SCHEDULED one whose
//! schedule targets the start queue, fired as Scheduler fires it, sending at 1/s (its
//! statuses arrive before its batch is recorded, and wait for it).

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use shared::{
    jobs::SqsQueue,
    scheduler::{CampaignScheduler, OneTimeSchedule, SchedulerConfig, SdkScheduler},
};
use testkit::{TestDb, TestTenant};

const ROLE: &str = "arn:aws:iam::123456789012:role/salesagent-test-CampaignSchedulerRole";

/// The queues and scheduler a deployed stack has, on moto.
struct Aws {
    sqs: aws_sdk_sqs::Client,
    starts: String,
    sends: String,
}

/// devstack on a real port with the campaign engine on moto; the consumers start when the
/// test says (so it can look at the queues first). Returns the stack and its base URL.
async fn serve(db: &TestDb) -> (devstack::Stack, String, Aws) {
    let sqs = testkit::moto_sqs_client();
    let starts = testkit::create_fifo_queue(&sqs, "campaign-start").await;
    let sends = testkit::create_queue(&sqs, "send").await;
    let scheduler_client = testkit::moto_scheduler_client();
    let group = testkit::create_schedule_group(&scheduler_client, "campaigns").await;
    let config = SchedulerConfig::new(&group, &testkit::queue_arn(&sqs, &starts).await, ROLE, None)
        .expect("a valid scheduler config");

    let (stack, base_url) = common::serve_stack(db, |stack| {
        stack
            .with_campaign_sqs(
                SqsQueue::new(sqs.clone(), starts.clone()),
                SqsQueue::new(sqs.clone(), sends.clone()),
            )
            .with_campaign_scheduler(CampaignScheduler::Sdk(SdkScheduler::new(
                scheduler_client,
                config,
            )))
    })
    .await;
    (stack, base_url, Aws { sqs, starts, sends })
}

/// Polls `GET path` until `done` says so (at most 60 s); the last body.
async fn wait_for(api: &common::Api<'_>, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (_, body) = api.call(reqwest::Method::GET, path, None).await;
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there: {last}");
}

/// The walkthrough's UTILITY template with one variable (`first_name`), submitted and
/// approved in the simulator (its signed status webhook); its id.
async fn approved_template(api: &common::Api<'_>, channel: &Value) -> String {
    let post = reqwest::Method::POST;
    let (status, template) = api
        .call(
            post.clone(),
            "/templates",
            Some(json!({
                "phone_number_id": channel["id"], "name": "order_update", "category": "UTILITY",
                "language": "en_US",
                "body": { "text": "Hi {{1}}, your order shipped." },
                "variables": [{ "variable_name": "first_name", "position": 1, "sample_value": "Maria" }]
            })),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    let template_id = template["template_id"].as_str().expect("id").to_owned();
    let (status, submitted) = api
        .call(post, format!("/templates/{template_id}/submit"), None)
        .await;
    assert_eq!(status, 200, "{submitted}");
    let meta_template = submitted["meta_template_id"].as_str().expect("meta id");
    let reviewed: Value = api
        .http
        .post(format!(
            "{}/_sim/meta/templates/{meta_template}/review",
            api.base_url
        ))
        .json(&json!({ "event": "APPROVED" }))
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("json");
    assert_eq!(reviewed["webhook_status"], 200, "{reviewed}");
    template_id
}

#[tokio::test]
async fn a_number_meta_limits_below_its_cap_still_completes_its_campaign_once_each() {
    // In-process queues: a job refused 130429 again and again must not run out of receives.
    let db = TestDb::new().await;
    let (stack, base) = common::serve_stack(&db, |stack| stack).await;
    let http = reqwest::Client::new();
    let token = TestTenant::new("slow").token();
    let api = common::Api {
        http: &http,
        base_url: &base,
        token: &token,
    };
    let channel = api.connect_whatsapp().await;
    let template_id = approved_template(&api, &channel).await;
    for i in 0..60 {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/contacts",
                Some(json!({ "phone": format!("+1415555{:04}", 3000 + i), "name": "Lee", "tags": ["all"] })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Meta takes 5 a second from this number; we believe 80.
    let limited = http
        .post(format!("{base}/_sim/meta/behaviour"))
        .json(&json!({ "mps": { "106540352242922": 5 } }))
        .send()
        .await
        .expect("behaviour");
    assert!(limited.status().is_success());
    let (status, campaign) = api
        .call(
            reqwest::Method::POST,
            "/campaigns",
            Some(json!({
                "name": "Everyone", "template_id": template_id, "phone_number_id": channel["id"],
                "recipient_filter": { "tags": ["all"] },
                "variable_values": { "first_name": { "contact_field": "name" } },
                "trigger": { "trigger_type": "IMMEDIATE" }
            })),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["campaign_id"].as_str().expect("id").to_owned();
    stack.spawn_campaigns(Duration::from_secs(3600), 4);
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            format!("/campaigns/{id}/start"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let done = wait_for(&api, &format!("/campaigns/{id}"), |c| {
        c["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(done["counters"]["sent"], 60, "{done}");
    let meta = common::meta_stats(&http, &base).await;
    assert_eq!(meta["duplicates"], 0, "{meta}");
    let refused = meta["numbers"]["106540352242922"]["rate_limited"]
        .as_u64()
        .unwrap_or_default();
    assert!(refused > 0, "Meta did refuse some (130429): {meta}");
    let shared::jobs::Queue::Local(sends) = &stack.campaign_sends else {
        panic!("in-process send queue");
    };
    assert!(
        sends.dead_letters().is_empty(),
        "no job ran out of receives"
    );
}

#[tokio::test]
async fn a_campaign_runs_through_sqs_and_a_scheduled_one_through_eventbridge_scheduler() {
    let db = TestDb::new().await;
    let (stack, base, aws) = serve(&db).await;
    let http = reqwest::Client::new();
    let tenant = TestTenant::new("cmp");
    let token = tenant.token();
    let api = common::Api {
        http: &http,
        base_url: &base,
        token: &token,
    };
    let post = reqwest::Method::POST;

    // A channel, its agent, and an approved template with one variable.
    let channel = api.connect_whatsapp().await;
    let template_id = approved_template(&api, &channel).await;

    // Four VIPs (names with an emoji and 200 characters), one of them opted out, and two
    // contacts for the scheduled campaign.
    let long_name = "Ñ".repeat(200);
    let vips = [
        ("+14155550101", "Ana 🌸"),
        ("+14155550102", long_name.as_str()),
        ("+14155550103", "Bo"),
    ];
    for (phone, name) in vips {
        let (status, body) = api
            .call(
                post.clone(),
                "/contacts",
                Some(json!({ "phone": phone, "name": name, "tags": ["vip"] })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, opted_out) = api
        .call(
            post.clone(),
            "/contacts",
            Some(json!({ "phone": "+14155550104", "name": "Cy", "tags": ["vip"] })),
        )
        .await;
    let (status, body) = api
        .call(
            post.clone(),
            format!(
                "/contacts/{}/opt-out",
                opted_out["contact_id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for phone in ["+14155550201", "+14155550202"] {
        let (status, _) = api
            .call(
                post.clone(),
                "/contacts",
                Some(json!({ "phone": phone, "name": "Later", "tags": ["later"] })),
            )
            .await;
        assert_eq!(status, 201);
    }

    let values = json!({ "first_name": { "contact_field": "name" } });
    let (status, preview) = api
        .call(
            post.clone(),
            "/campaigns/preview",
            Some(json!({
                "template_id": template_id, "recipient_filter": { "tags": ["vip"] },
                "variable_values": values
            })),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["eligible"], 3, "{preview}");

    // IMMEDIATE: the start job and the three send jobs go through SQS.
    let (status, campaign) = api
        .call(
            post.clone(),
            "/campaigns",
            Some(json!({
                "name": "Shipping", "template_id": template_id, "phone_number_id": channel["id"],
                "recipient_filter": { "tags": ["vip"] }, "variable_values": values,
                "trigger": { "trigger_type": "IMMEDIATE" }
            })),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["campaign_id"].as_str().expect("id").to_owned();
    let (status, started) = api
        .call(post.clone(), format!("/campaigns/{id}/start"), None)
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(
        testkit::queue_depth(&aws.sqs, &aws.starts).await,
        1,
        "the start job waits in the SQS start queue"
    );
    stack.spawn_campaigns(Duration::from_secs(3600), 2);
    let done = wait_for(&api, &format!("/campaigns/{id}"), |c| {
        c["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(done["counters"]["sent"], 3, "{done}");
    assert_eq!(done["counters"]["skipped"], 1, "{done}");
    let read = wait_for(&api, &format!("/campaigns/{id}/stats"), |s| {
        s["counters"]["read"] == 3
    })
    .await;
    assert_eq!(read["counters"]["delivered"], 3, "{read}");
    assert_eq!(read["skipped_by_reason"]["OPTED_OUT"], 1, "{read}");
    let meta = common::meta_stats(&http, &base).await;
    assert_eq!(meta["duplicates"], 0, "{meta}");
    let sent_texts: Vec<String> = http
        .get(format!("{base}/_sim/meta/requests"))
        .send()
        .await
        .expect("requests")
        .json::<Value>()
        .await
        .expect("json")
        .as_array()
        .expect("requests")
        .iter()
        .map(Value::to_string)
        .collect();
    for name in ["Ana 🌸", long_name.as_str(), "Bo"] {
        assert!(
            sent_texts.iter().any(|r| r.contains(name)),
            "{name} got its own name in {{1}}"
        );
    }
    assert_eq!(testkit::queue_depth(&aws.sqs, &aws.starts).await, 0);
    assert_eq!(
        testkit::queue_depth(&aws.sqs, &aws.sends).await,
        0,
        "every send job was deleted once done"
    );

    // SCHEDULED: /start creates a one-time schedule in the group, targeting the start queue.
    let (status, scheduled) = api
        .call(
            post.clone(),
            "/campaigns",
            Some(json!({
                "name": "Later", "template_id": template_id, "phone_number_id": channel["id"],
                "recipient_filter": { "tags": ["later"] }, "variable_values": values,
                // One a second: both go in one batch, whose transaction is still open when
                // Meta reports the first send's statuses (they wait for its commit).
                "options": { "send_rate_per_second": 1 },
                "trigger": {
                    // Reykjavik's wall time is UTC's all year (no daylight saving).
                    "trigger_type": "SCHEDULED", "timezone": "Atlantic/Reykjavik",
                    "scheduled_at": (chrono::Utc::now() + chrono::Duration::seconds(90))
                        .format("%Y-%m-%dT%H:%M:%S").to_string()
                }
            })),
        )
        .await;
    assert_eq!(status, 201, "{scheduled}");
    let later = scheduled["campaign_id"].as_str().expect("id").to_owned();
    let (status, armed) = api
        .call(post.clone(), format!("/campaigns/{later}/start"), None)
        .await;
    assert_eq!(status, 200, "{armed}");
    assert_eq!(armed["status"], "SCHEDULED");
    let name = OneTimeSchedule::campaign_name(&later).expect("name");
    let schedule = stack
        .campaigns
        .scheduler
        .get(&name)
        .await
        .expect("read the schedule")
        .expect("a schedule in moto's EventBridge Scheduler");
    assert_eq!(schedule.time_zone, "Atlantic/Reykjavik");
    assert_eq!(
        schedule.target_arn.as_deref(),
        Some(testkit::queue_arn(&aws.sqs, &aws.starts).await.as_str())
    );
    let input = schedule.input.expect("the start job");
    assert!(input.contains(&later), "{input}");

    // moto never fires schedules: send the target's input as Scheduler would at its time
    // (the start job accepts a firing up to two minutes early).
    aws.sqs
        .send_message()
        .queue_url(&aws.starts)
        .message_body(&input)
        .set_message_group_id(schedule.message_group_id)
        .message_deduplication_id(format!("schedule-{later}"))
        .send()
        .await
        .expect("fire");
    let fired = wait_for(&api, &format!("/campaigns/{later}"), |c| {
        c["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(fired["counters"]["sent"], 2, "{fired}");
    let read = wait_for(&api, &format!("/campaigns/{later}/stats"), |s| {
        s["counters"]["read"] == 2
    })
    .await;
    assert_eq!(read["counters"]["delivered"], 2, "{read}");
    let meta = common::meta_stats(&http, &base).await;
    assert_eq!(meta["duplicates"], 0, "{meta}");
}
