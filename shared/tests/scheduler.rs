//! The EventBridge Scheduler adapter against moto's server, through the real AWS SDK.
//!
//! moto stores and echoes schedules but never fires them, and checks little: not the
//! expression, the time zone, the target's ARNs or a FIFO target's message group. What it
//! does check, and these tests rely on: `ConflictException` for a name that exists,
//! `ResourceNotFoundException` for a missing schedule, and the group named on each call.

use chrono::{NaiveDate, NaiveDateTime};
use shared::scheduler::{
    CampaignScheduler, OneTimeSchedule, SchedulerConfig, SchedulerError, SdkScheduler,
};

fn wall(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(h, min, 0))
        .expect("a valid date")
}

const ROLE: &str = "arn:aws:iam::123456789012:role/salesagent-test-CampaignSchedulerRole";

struct Fixture {
    scheduler: CampaignScheduler,
    client: aws_sdk_scheduler::Client,
    group: String,
    queue_arn: String,
    dlq_arn: String,
}

/// A schedule group and a FIFO campaign-start queue of their own, and the port on them.
async fn fixture() -> Fixture {
    let sqs = testkit::moto_sqs_client();
    let queue_url = testkit::create_fifo_queue(&sqs, "campaign-start").await;
    let queue_arn = testkit::queue_arn(&sqs, &queue_url).await;
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!(
            "schedules-dlq-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ))
        .send()
        .await
        .expect("create the DLQ")
        .queue_url
        .expect("a DLQ URL");
    let dlq_arn = testkit::queue_arn(&sqs, &dlq_url).await;
    let client = testkit::moto_scheduler_client();
    let group = testkit::create_schedule_group(&client, "campaigns").await;
    let config = SchedulerConfig::new(&group, &queue_arn, ROLE, Some(dlq_arn.clone()))
        .expect("a valid config");
    Fixture {
        scheduler: CampaignScheduler::Sdk(SdkScheduler::new(client.clone(), config)),
        client,
        group,
        queue_arn,
        dlq_arn,
    }
}

fn campaign_schedule(campaign_id: &str, at: NaiveDateTime, input: &str) -> OneTimeSchedule {
    let name = OneTimeSchedule::campaign_name(campaign_id).expect("a valid name");
    OneTimeSchedule::new(name, at, "Europe/Madrid", input)
        .and_then(|s| s.with_message_group(campaign_id))
        .expect("a valid schedule")
}

async fn names_in_group(f: &Fixture) -> Vec<String> {
    f.client
        .list_schedules()
        .group_name(&f.group)
        .send()
        .await
        .expect("list schedules")
        .schedules()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_schedule_is_created_with_its_time_zone_target_and_delete_after_completion() {
    let f = fixture().await;
    let schedule = campaign_schedule(
        "cmp_01jcreate",
        wall(2030, 1, 15, 9, 0),
        r#"{"version":"1","campaign_id":"cmp_01jcreate"}"#,
    );

    f.scheduler.upsert(&schedule).await.expect("create");

    let stored = f
        .scheduler
        .get(&schedule.name)
        .await
        .expect("get")
        .expect("the schedule exists");
    assert_eq!(stored.name, "campaign-cmp_01jcreate");
    assert_eq!(stored.group_name.as_deref(), Some(f.group.as_str()));
    assert_eq!(stored.expression, "at(2030-01-15T09:00:00)");
    assert_eq!(stored.at(), Some(schedule.at));
    assert_eq!(stored.time_zone, "Europe/Madrid");
    assert_eq!(stored.target_arn.as_deref(), Some(f.queue_arn.as_str()));
    assert_eq!(stored.role_arn.as_deref(), Some(ROLE));
    assert_eq!(stored.input.as_deref(), Some(schedule.input.as_str()));
    assert_eq!(stored.message_group_id.as_deref(), Some("cmp_01jcreate"));
    assert_eq!(stored.action_after_completion.as_deref(), Some("DELETE"));
    assert_eq!(stored.flexible_time_window.as_deref(), Some("OFF"));
    assert_eq!(stored.maximum_retry_attempts, Some(185));
    assert_eq!(stored.maximum_event_age_seconds, Some(86_400));
    assert_eq!(stored.dead_letter_arn.as_deref(), Some(f.dlq_arn.as_str()));
    assert_eq!(stored.state.as_deref(), Some("ENABLED"));
    assert_eq!(stored.to_one_time(), Some(schedule));
}

#[tokio::test]
async fn upserting_an_existing_schedule_updates_it_in_place() {
    let f = fixture().await;
    let first = campaign_schedule("cmp_01jmove", wall(2030, 1, 15, 9, 0), r#"{"n":1}"#);
    f.scheduler.upsert(&first).await.expect("create");

    let moved = campaign_schedule("cmp_01jmove", wall(2030, 7, 1, 18, 30), r#"{"n":2}"#);
    f.scheduler
        .upsert(&moved)
        .await
        .expect("a reschedule is not a conflict");

    let stored = f
        .scheduler
        .get(&moved.name)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(stored.expression, "at(2030-07-01T18:30:00)");
    assert_eq!(stored.input.as_deref(), Some(r#"{"n":2}"#));
    assert_eq!(stored.action_after_completion.as_deref(), Some("DELETE"));
    assert_eq!(stored.flexible_time_window.as_deref(), Some("OFF"));
    assert_eq!(names_in_group(&f).await, vec![moved.name], "one schedule");
}

#[tokio::test]
async fn delete_removes_the_schedule_and_a_missing_one_is_fine() {
    let f = fixture().await;
    let schedule = campaign_schedule("cmp_01jcancel", wall(2030, 1, 15, 9, 0), "{}");
    f.scheduler.upsert(&schedule).await.expect("create");

    f.scheduler.delete(&schedule.name).await.expect("delete");
    assert!(
        f.scheduler
            .get(&schedule.name)
            .await
            .expect("get")
            .is_none()
    );
    assert!(names_in_group(&f).await.is_empty());

    f.scheduler
        .delete(&schedule.name)
        .await
        .expect("deleting it again is fine");
    f.scheduler
        .delete("campaign-never-created")
        .await
        .expect("deleting one never created is fine");
    assert!(
        f.scheduler
            .get("campaign-never-created")
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn a_fifo_target_without_a_message_group_is_refused_before_any_call() {
    let f = fixture().await;
    let schedule = OneTimeSchedule::new("campaign-nogroup", wall(2030, 1, 15, 9, 0), "UTC", "{}")
        .expect("valid");

    let error = f.scheduler.upsert(&schedule).await.expect_err("no group");

    assert!(
        matches!(error, SchedulerError::InvalidSchedule(_)),
        "{error}"
    );
    assert!(names_in_group(&f).await.is_empty());
}

#[tokio::test]
async fn a_missing_schedule_group_is_an_error_not_a_panic() {
    let f = fixture().await;
    let config = SchedulerConfig::new("no-such-group", &f.queue_arn, ROLE, None).expect("valid");
    let scheduler = CampaignScheduler::Sdk(SdkScheduler::new(f.client.clone(), config));
    let schedule = campaign_schedule("cmp_01jnogroup", wall(2030, 1, 15, 9, 0), "{}");

    let error = scheduler.upsert(&schedule).await.expect_err("no group");

    assert!(
        matches!(
            error,
            SchedulerError::Service {
                operation: "CreateSchedule",
                ..
            }
        ),
        "{error}"
    );
}
