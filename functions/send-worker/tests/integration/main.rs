//! The campaign engine end to end against a real PostgreSQL and Meta's send endpoint faked
//! over HTTP: `campaign-start` resolves and fans out, the `send-worker` sends each
//! recipient once.

mod helpers;

use helpers::Engine;
use serde_json::json;
use shared::{
    db::campaigns,
    domain::{CampaignStatus, RecipientStatus},
};

#[tokio::test]
async fn a_start_job_delivered_three_times_writes_one_set_of_recipients_and_jobs() {
    let engine = Engine::new().await;
    let campaign = engine.campaign_to_vips().await;
    for _ in 0..3 {
        engine.start(&campaign).await;
    }
    assert_eq!(
        engine.recipients_by_status(&campaign).await,
        vec![
            ("PENDING".to_owned(), 0),
            ("QUEUED".to_owned(), 4),
            ("SKIPPED".to_owned(), 1)
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect::<Vec<_>>()
    );
    let jobs = engine.send_jobs();
    assert_eq!(jobs.len(), 4, "one job per eligible recipient, not three");
    let skipped = engine
        .count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND skip_reason = 'OPTED_OUT'",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(skipped, 1, "the opted-out VIP is skipped with its reason");
    let stored = engine.campaign(&campaign).await;
    assert_eq!(stored.total_recipients, 5);
    assert_eq!(stored.skipped_count, 1);
}

#[tokio::test]
async fn every_send_job_delivered_twice_sends_each_recipient_once_and_completes() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    for job in jobs.iter().chain(jobs.iter()) {
        engine.send(job).await;
    }
    let sends = engine.meta_sends().await;
    assert_eq!(sends.len(), 4, "four recipients, four sends");
    let mut to: Vec<String> = sends
        .iter()
        .map(|b| b["to"].as_str().unwrap_or_default().to_owned())
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 4, "nobody twice: {to:?}");
    assert!(sends.iter().all(|b| b["type"] == "template"));
    // The body variable came from each contact's name.
    assert!(
        sends
            .iter()
            .any(|b| b["template"]["components"][0]["parameters"][0]["text"] == "Vip 0")
    );
    let stored = engine.campaign(&campaign).await;
    assert_eq!(stored.status, CampaignStatus::Completed);
    assert!(stored.completed_at.is_some());
    let counters = engine.reconciled_counters(&campaign).await;
    assert_eq!(counters.sent, 4);
    assert_eq!(counters.skipped, 1);
    // Each send is recorded: template_sends with Meta's id, an agent message in the
    // customer's conversation.
    let sent = engine
        .count(
            "SELECT count(*) FROM template_sends WHERE campaign_id = $1 AND status = 'SENT'
               AND platform_message_id IS NOT NULL AND message_id IS NOT NULL",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(sent, 4);
}

#[tokio::test]
async fn a_paused_campaign_sends_nothing_more_and_resumes_without_resending() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    engine.send(&jobs[0]).await;
    engine.send(&jobs[1]).await;
    engine
        .transition(&campaign, campaigns::Transition::Pause)
        .await;
    engine.send(&jobs[2]).await;
    engine.send(&jobs[3]).await;
    assert_eq!(
        engine.meta_sends().await.len(),
        2,
        "no send after the pause"
    );
    assert_eq!(
        engine
            .status_count(&campaign, RecipientStatus::Pending)
            .await,
        2,
        "the two unsent recipients wait for the resume"
    );
    engine
        .transition(&campaign, campaigns::Transition::Resume)
        .await;
    engine.start(&campaign).await;
    let resumed = engine.send_jobs();
    assert_eq!(resumed.len(), 2, "only the unsent two are fanned out again");
    for job in resumed.iter().chain(jobs.iter()) {
        engine.send(job).await;
    }
    assert_eq!(
        engine.meta_sends().await.len(),
        4,
        "each recipient once in all"
    );
    assert_eq!(
        engine.campaign(&campaign).await.status,
        CampaignStatus::Completed
    );
}

#[tokio::test]
async fn meta_131049_defers_the_recipient_a_day_and_other_errors_fail_it_with_the_code() {
    let engine = Engine::new().await;
    engine
        .meta_refuses(
            &helpers::vip_phone(0),
            131_049,
            "This message was not delivered to maintain healthy ecosystem engagement.",
        )
        .await;
    engine
        .meta_refuses(&helpers::vip_phone(1), 131_026, "Message Undeliverable.")
        .await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    for job in engine.send_jobs() {
        engine.send(&job).await;
    }
    let deferred = engine
        .count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'PENDING'
               AND not_before > now() + interval '23 hours 59 minutes' AND first_deferred_at IS NOT NULL
               AND template_send_id IS NULL",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(deferred, 1, "131049: back to PENDING, not before 24 hours");
    let failed = engine
        .count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'FAILED'
               AND error_code = '131026' AND error_message LIKE '%Undeliverable%'",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(failed, 1);
    // Nothing is due now: the sweep does not fan it out, and the campaign is not complete.
    let due = engine.sweep_due().await;
    assert!(!due.contains(&campaign), "not retried before 24 hours");
    assert_eq!(
        engine.campaign(&campaign).await.status,
        CampaignStatus::Running
    );
    assert_eq!(
        engine.meta_sends().await.len(),
        2,
        "two sent; 131049 and 131026 are not resent"
    );
}

#[tokio::test]
async fn a_campaign_with_no_eligible_recipient_completes_at_once_with_its_skips() {
    let engine = Engine::new().await;
    let campaign = engine
        .campaign_with_filter(json!({"tags": ["nobody-has-this"]}))
        .await;
    engine.start(&campaign).await;
    assert!(engine.send_jobs().is_empty());
    let stored = engine.campaign(&campaign).await;
    assert_eq!(stored.status, CampaignStatus::Completed);
    assert_eq!(stored.total_recipients, 0);
}

#[tokio::test]
async fn another_tenants_send_job_claims_nothing() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    let shared::jobs::SendJob::V1 {
        campaign_id,
        recipient_id,
        ..
    } = jobs[0].clone();
    let forged = shared::jobs::SendJob::new("rival", &campaign_id, &recipient_id);
    engine.seed_tenant("rival").await;
    engine.send(&forged).await;
    assert!(
        engine.meta_sends().await.is_empty(),
        "a job naming another tenant sends nothing"
    );
    for job in &jobs {
        engine.send(job).await;
    }
    assert_eq!(engine.meta_sends().await.len(), 4);
}

fn event(
    event_type: shared::domain::TriggerEvent,
    contact: &str,
    payload: serde_json::Value,
) -> shared::events::EventJob {
    shared::events::EventJob::V1 {
        event_id: shared::domain::EventId::generate().to_string(),
        user_id: helpers::TENANT.to_owned(),
        event_type,
        contact_id: Some(contact.to_owned()),
        contact_ids: Vec::new(),
        conversation_id: None,
        payload,
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn an_event_campaign_sends_each_contact_once_for_its_own_tag() {
    use shared::domain::TriggerEvent;
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    engine.vips().await;
    let campaign = engine
        .event_campaign(TriggerEvent::TagAdded, json!({"tag": "vip"}))
        .await;
    let ana = engine.contact_id(&helpers::vip_phone(0)).await;
    let opted_out = engine.contact_id(&helpers::vip_phone(4)).await;
    let state = &engine.start_state;
    let vip = event(TriggerEvent::TagAdded, &ana, json!({"tag": "vip"}));
    for job in [
        &vip,
        &vip,
        &event(TriggerEvent::TagAdded, &ana, json!({"tag": "vip"})),
    ] {
        campaign_start::handle_event(state, job)
            .await
            .expect("event");
    }
    campaign_start::handle_event(
        state,
        &event(TriggerEvent::TagAdded, &ana, json!({"tag": "other"})),
    )
    .await
    .expect("another tag");
    campaign_start::handle_event(state, &event(TriggerEvent::LeadHot, &ana, json!({})))
        .await
        .expect("another event type");
    campaign_start::handle_event(
        state,
        &event(TriggerEvent::TagAdded, &opted_out, json!({"tag": "vip"})),
    )
    .await
    .expect("opted out");
    let jobs = engine.send_jobs();
    assert_eq!(jobs.len(), 1, "one contact, once, for its own tag");
    engine.send(&jobs[0]).await;
    assert_eq!(engine.meta_sends().await.len(), 1);
    let stored = engine.campaign(&campaign).await;
    assert_eq!(
        stored.status,
        CampaignStatus::Running,
        "an EVENT campaign keeps running"
    );
    assert_eq!(stored.trigger.trigger_count, 1);
    assert!(stored.trigger.last_triggered_at.is_some());
    assert_eq!(stored.total_recipients, 2);
    let skipped = engine
        .count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND skip_reason = 'OPTED_OUT'",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(skipped, 1);
    // A paused EVENT campaign takes no new contact.
    engine
        .transition(&campaign, campaigns::Transition::Pause)
        .await;
    let bo = engine.contact_id(&helpers::vip_phone(1)).await;
    campaign_start::handle_event(
        state,
        &event(TriggerEvent::TagAdded, &bo, json!({"tag": "vip"})),
    )
    .await
    .expect("paused");
    assert!(engine.send_jobs().is_empty());
}

#[tokio::test]
async fn a_conversation_ended_trigger_waits_for_its_inactive_minutes() {
    use shared::domain::TriggerEvent;
    let engine = Engine::new().await;
    engine.vips().await;
    let campaign = engine
        .event_campaign(
            TriggerEvent::ConversationEnded,
            json!({"inactiveMinutes": 120}),
        )
        .await;
    let ana = engine.contact_id(&helpers::vip_phone(0)).await;
    let quiet_since = chrono::Utc::now() - chrono::Duration::minutes(30);
    campaign_start::handle_event(
        &engine.start_state,
        &event(
            TriggerEvent::ConversationEnded,
            &ana,
            json!({"last_message_at": quiet_since.to_rfc3339()}),
        ),
    )
    .await
    .expect("event");
    assert!(engine.send_jobs().is_empty(), "not before two quiet hours");
    let waiting = engine
        .count(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'PENDING'
               AND not_before BETWEEN now() + interval '89 minutes' AND now() + interval '91 minutes'",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(waiting, 1);
    assert!(!engine.sweep_due().await.contains(&campaign));
}

#[tokio::test]
async fn concurrent_statuses_of_one_send_count_it_once() {
    use shared::{db::delivery, domain::DeliveryStatus};
    let engine = Engine::new().await;
    let (campaign, wamids) = engine.sent_campaign().await;
    assert_eq!(wamids.len(), 4);
    let route = engine.route();
    // Each send's sent, delivered and read, three times each, all at once on their own
    // connections: each status queues on the send it moves, and each move counts once.
    let statuses = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
    ];
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(wamids.len() * 9));
    let config = shared::config::DatabaseConfig::for_url(&engine.app.db.url, wamids.len() * 9);
    let pool = shared::db::connect(&config).expect("pool");
    let mut tasks = Vec::new();
    for wamid in &wamids {
        for status in statuses.iter().cycle().take(9) {
            let update = engine.status(wamid, *status);
            let (pool, route, start) = (pool.clone(), route.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                let client = pool.get().await.expect("client");
                start.wait().await;
                delivery::apply(&client, &route, &update)
                    .await
                    .expect("status")
            }));
        }
    }
    let mut moved_sends = 0;
    for task in tasks {
        moved_sends += usize::from(task.await.expect("task").template_send_updated);
    }
    assert!((4..=12).contains(&moved_sends), "{moved_sends}");
    let counters = engine.reconciled_counters(&campaign).await;
    assert_eq!(
        (counters.sent, counters.delivered, counters.read),
        (4, 4, 4),
        "each send counted once per step"
    );
    assert_eq!(
        engine.recipients_by_status(&campaign).await,
        vec![("READ".to_owned(), 4), ("SKIPPED".to_owned(), 1)]
    );
}

#[tokio::test]
async fn counters_equal_the_rows_after_shuffled_and_duplicated_status_webhooks() {
    use shared::{db::delivery, domain::DeliveryStatus};
    let engine = Engine::new().await;
    let (campaign, wamids) = engine.sent_campaign().await;
    assert_eq!(wamids.len(), 4);
    // Every status twice, reads before deliveries, one message failed after it was sent.
    let mut updates = Vec::new();
    for (i, wamid) in wamids.iter().enumerate() {
        let steps: &[DeliveryStatus] = if i == 3 {
            &[DeliveryStatus::Failed, DeliveryStatus::Delivered]
        } else if i % 2 == 0 {
            &[
                DeliveryStatus::Read,
                DeliveryStatus::Delivered,
                DeliveryStatus::Sent,
            ]
        } else {
            &[DeliveryStatus::Delivered, DeliveryStatus::Sent]
        };
        for status in steps.iter().chain(steps.iter()) {
            updates.push(engine.status(wamid, *status));
        }
    }
    updates.rotate_left(5);
    let route = engine.route();
    for update in &updates {
        let client = engine.app.db.client().await;
        delivery::apply(&client, &route, update)
            .await
            .expect("status");
    }
    let counters = engine.reconciled_counters(&campaign).await;
    assert_eq!(
        (
            counters.sent,
            counters.delivered,
            counters.read,
            counters.failed,
            counters.skipped
        ),
        (4, 3, 2, 1, 1)
    );
    assert_eq!(
        counters.failed_after_sent, 1,
        "the one failed after Meta accepted it"
    );
}

#[tokio::test]
async fn meta_130429_sends_the_job_back_and_the_retry_sends_once() {
    let engine = Engine::new().await;
    engine.meta_throttles_once().await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_with_filter(json!({"tags": ["vip"]})).await;
    engine.vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    let first = engine.try_send(&jobs[0]).await;
    let back_in = match &first {
        Err(shared::jobs::JobError::Throttled { not_before, .. }) => {
            not_before.saturating_duration_since(tokio::time::Instant::now())
        }
        other => panic!("130429 is a turn to wait, not a failed attempt: {other:?}"),
    };
    assert!(
        back_in > std::time::Duration::from_secs(1),
        "back after the number slowed down: {back_in:?}"
    );
    assert_eq!(
        engine
            .status_count(&campaign, RecipientStatus::Queued)
            .await,
        4
    );
    let slowed = engine
        .count(
            "SELECT count(*) FROM send_throttles WHERE slowed_until > now()",
            &[],
        )
        .await;
    assert_eq!(slowed, 1, "the number slows down after a 130429");
    for job in jobs.iter().chain(jobs.iter()) {
        engine.send(job).await;
    }
    let sends = engine.meta_sends().await;
    let to_first: Vec<_> = sends.iter().filter(|b| b["to"] == sends[0]["to"]).collect();
    assert_eq!(sends.len(), 5, "four accepted and the throttled attempt");
    assert_eq!(
        to_first.len(),
        2,
        "the throttled recipient: the refused attempt and one accepted send"
    );
    assert_eq!(
        engine
            .count(
                "SELECT count(DISTINCT platform_message_id) FROM template_sends WHERE campaign_id = $1 AND status = 'SENT'",
                &[&campaign.as_str()],
            )
            .await,
        4,
        "each recipient sent once"
    );
    assert_eq!(
        engine.campaign(&campaign).await.status,
        CampaignStatus::Completed
    );
}

#[tokio::test]
async fn a_fan_out_whose_publish_fails_is_redelivered_without_duplicates() {
    let engine = Engine::new().await;
    let campaign = engine.campaign_to_vips().await;
    engine.sends.fail_next(1);
    let job = shared::jobs::CampaignStartJob::new(
        helpers::TENANT,
        campaign.as_str(),
        shared::jobs::StartReason::Start,
    );
    let failed = campaign_start::handle(&engine.start_state, &job).await;
    assert!(failed.is_err(), "the job goes back to the queue");
    assert_eq!(
        engine
            .status_count(&campaign, RecipientStatus::Queued)
            .await,
        0,
        "the chunk is PENDING again"
    );
    assert_eq!(
        engine
            .status_count(&campaign, RecipientStatus::Pending)
            .await,
        4
    );
    campaign_start::handle(&engine.start_state, &job)
        .await
        .expect("redelivered");
    campaign_start::handle(&engine.start_state, &job)
        .await
        .expect("and again");
    assert_eq!(engine.send_jobs().len(), 4);
    assert_eq!(
        engine
            .count(
                "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1",
                &[&campaign.as_str()]
            )
            .await,
        5,
        "one row per contact"
    );
}

#[tokio::test]
async fn filters_count_exactly_contact_ids_exclusions_and_recent_contacts() {
    let engine = Engine::new().await;
    engine.vips().await;
    let ids: Vec<String> = vip_ids(&engine).await;
    // Vip 1 was messaged an hour ago: a MARKETING campaign skips it (24 h cap).
    engine
        .app
        .db
        .client()
        .await
        .execute(
            "UPDATE contacts SET last_contacted_at = now() - interval '1 hour' WHERE phone = $1",
            &[&helpers::vip_phone(1)],
        )
        .await
        .expect("recent");
    let campaign = engine
        .campaign_with_filter(
            json!({"tags": ["vip"], "contactIds": [ids[0], ids[1], ids[2], ids[4]]}),
        )
        .await;
    engine.start(&campaign).await;
    assert_eq!(engine.send_jobs().len(), 2, "vip 0 and vip 2");
    let reasons: Vec<(String, i64)> = engine
        .app
        .db
        .client()
        .await
        .query(
            "SELECT skip_reason, count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'SKIPPED'
             GROUP BY 1 ORDER BY 1",
            &[&campaign.as_str()],
        )
        .await
        .expect("skips")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("OPTED_OUT".to_owned(), 1),
            ("RECENTLY_CONTACTED".to_owned(), 1)
        ],
        "vip 4 opted out, vip 1 contacted within the cap; vip 3 not named"
    );
    assert_eq!(engine.campaign(&campaign).await.total_recipients, 4);
}

async fn vip_ids(engine: &Engine) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(engine.contact_id(&helpers::vip_phone(i)).await);
    }
    ids
}

#[tokio::test]
async fn a_cancel_during_a_send_slot_wait_stops_that_send() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    engine.messages_per_second(1).await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    engine.send(&jobs[0]).await;
    // The second send waits about a second for its slot; the campaign is cancelled meanwhile.
    let waiting = {
        let state = engine.send_state.clone();
        let job = jobs[1].clone();
        tokio::spawn(async move { send_worker::handle(&state, &job).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut client = engine.app.db.client().await;
    let tx = client.transaction().await.expect("tx");
    campaigns::transition(
        &tx,
        &engine.user,
        &campaign,
        campaigns::Transition::Cancel,
        None,
    )
    .await
    .expect("cancel");
    campaigns::skip_unsent(&tx, &campaign).await.expect("skip");
    tx.commit().await.expect("commit");
    let outcome = waiting.await.expect("task").expect("job");
    assert_eq!(
        outcome,
        send_worker::Outcome::Skipped(shared::domain::SkipReason::Cancelled)
    );
    assert_eq!(
        engine.meta_sends().await.len(),
        1,
        "nothing sent after the cancel"
    );
    assert_eq!(
        engine
            .status_count(&campaign, RecipientStatus::Queued)
            .await
            + engine
                .status_count(&campaign, RecipientStatus::Pending)
                .await,
        0,
        "every unsent recipient is skipped"
    );
}

#[tokio::test]
async fn an_imports_tag_event_of_many_contacts_adds_each_matching_one_once() {
    use shared::domain::TriggerEvent;
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    engine.vips().await;
    engine
        .event_campaign(TriggerEvent::TagAdded, json!({"tag": "vip"}))
        .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(engine.contact_id(&helpers::vip_phone(i)).await);
    }
    let bulk = shared::events::EventJob::V1 {
        event_id: shared::domain::EventId::generate().to_string(),
        user_id: helpers::TENANT.to_owned(),
        event_type: TriggerEvent::TagAdded,
        contact_id: None,
        contact_ids: ids.clone(),
        conversation_id: None,
        payload: json!({"tag": "vip"}),
        created_at: chrono::Utc::now(),
    };
    for _ in 0..2 {
        campaign_start::handle_event(&engine.start_state, &bulk)
            .await
            .expect("bulk event");
    }
    assert_eq!(engine.send_jobs().len(), 4, "each listed contact once");
}

#[tokio::test]
async fn batches_with_duplicates_forgeries_and_a_refusal_send_each_recipient_once() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    engine
        .meta_refuses(&helpers::vip_phone(1), 131026, "Message undeliverable")
        .await;
    engine.seed_tenant("rival").await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    assert_eq!(jobs.len(), 4);
    let shared::jobs::SendJob::V1 {
        campaign_id,
        recipient_id,
        ..
    } = jobs[2].clone();
    let forged = shared::jobs::SendJob::new("rival", &campaign_id, &recipient_id);
    let broken = shared::jobs::SendJob::new(helpers::TENANT, &campaign_id, "not a recipient id");
    // Every job twice within a batch, a forged and a broken one, and the same batch run by
    // two concurrent invocations (an SQS redelivery racing the first receive).
    let batch: Vec<shared::jobs::SendJob> = jobs
        .iter()
        .chain(jobs.iter())
        .cloned()
        .chain([forged, broken])
        .collect();
    let (first, second) = tokio::join!(
        send_worker::handle_many(&engine.send_state, &batch),
        send_worker::handle_many(&engine.send_state, &batch),
    );
    for results in [&first, &second] {
        assert_eq!(results.len(), batch.len(), "one answer per job, in order");
        assert!(
            matches!(results[9], Err(shared::jobs::JobError::Poison(_))),
            "the broken job is poison: {:?}",
            results[9]
        );
        assert_eq!(
            results[8].as_ref().ok(),
            Some(&send_worker::Outcome::Nothing)
        );
    }
    let all: Vec<_> = first.iter().chain(&second).collect();
    let sent = all
        .iter()
        .filter(|r| matches!(r, Ok(send_worker::Outcome::Sent)))
        .count();
    let failed = all
        .iter()
        .filter(|r| matches!(r, Ok(send_worker::Outcome::Failed(_))))
        .count();
    assert_eq!(
        (sent, failed),
        (3, 1),
        "each recipient handled once: {all:?}"
    );

    let sends = engine.meta_sends().await;
    let mut to: Vec<&str> = sends.iter().filter_map(|b| b["to"].as_str()).collect();
    to.sort_unstable();
    to.dedup();
    assert_eq!(
        (sends.len(), to.len()),
        (3, 3),
        "three accepted, nobody twice"
    );
    let stored = engine.campaign(&campaign).await;
    assert_eq!(stored.status, CampaignStatus::Completed);
    let counters = engine.reconciled_counters(&campaign).await;
    assert_eq!((counters.sent, counters.failed), (3, 1));
    // Each accepted send is one agent message in its customer's conversation, recorded
    // with Meta's id, and counted once on the contact.
    assert_eq!(
        engine
            .count(
                "SELECT count(*) FROM messages m JOIN template_sends s ON s.message_id = m.message_id
                 WHERE s.campaign_id = $1 AND m.status = 'sent' AND m.author = 'template'
                   AND m.platform_message_id = s.platform_message_id AND s.status = 'SENT'",
                &[&campaign.as_str()],
            )
            .await,
        3
    );
    assert_eq!(
        engine
            .count(
                "SELECT count(*) FROM contacts WHERE total_messages_sent = 1 AND last_contacted_at IS NOT NULL",
                &[],
            )
            .await,
        3,
        "the three reached contacts count one message each; the refused one none"
    );
    assert_eq!(
        engine
            .count(
                "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1
                   AND status = 'FAILED' AND error_code = '131026'",
                &[&campaign.as_str()],
            )
            .await,
        1
    );
}

#[tokio::test]
async fn a_batch_at_a_low_cap_sends_what_fits_and_keeps_the_later_slots() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    engine.messages_per_second(1).await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    let jobs = engine.send_jobs();
    let started = std::time::Instant::now();
    let results = send_worker::handle_many(&engine.send_state, &jobs).await;
    // At 0.97/s with a 2 s wait allowed: the slots at ~0, ~1.03, ~2.06 and ~3.09 s; the
    // last two are past the wait, so two go now and two come back before their kept slots.
    let sent = results
        .iter()
        .filter(|r| matches!(r, Ok(send_worker::Outcome::Sent)))
        .count();
    let mut back: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Err(shared::jobs::JobError::Throttled { not_before, .. }) => {
                Some(not_before.saturating_duration_since(tokio::time::Instant::now()))
            }
            _ => None,
        })
        .collect();
    back.sort();
    assert_eq!((sent, back.len()), (2, 2), "{results:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    let kept: Vec<chrono::DateTime<chrono::Utc>> = engine
        .column(
            "SELECT not_before FROM campaign_recipients WHERE campaign_id = $1
               AND status = 'QUEUED' AND claimed_at IS NULL AND not_before > now()
             ORDER BY not_before",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(
        kept.len(),
        2,
        "the later slots are kept on their recipients"
    );
    // Each job comes back before its kept slot with time to be worked (to wait the rest and
    // send on time), counted from now: the batch is settled when it ends, not when the job
    // was released.
    let now = chrono::Utc::now();
    for (back, slot) in back.iter().zip(&kept) {
        let until_slot = (*slot - now).to_std().unwrap_or_default();
        assert!(
            *back + std::time::Duration::from_millis(500) <= until_slot,
            "back in {back:?}, its slot in {until_slot:?}"
        );
    }
    assert!(
        back[1] > std::time::Duration::ZERO,
        "the last slot is ~2 s away"
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = engine
        .column(
            "SELECT sent_at FROM campaign_recipients WHERE campaign_id = $1 AND sent_at IS NOT NULL
             ORDER BY sent_at",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= chrono::Duration::milliseconds(900),
        "the two sends are a slot apart: {times:?}"
    );
}

#[tokio::test]
async fn a_start_job_that_died_after_resolving_is_redelivered_and_publishes_once() {
    let engine = Engine::new().await;
    engine.meta_accepts().await;
    let campaign = engine.campaign_to_vips().await;
    // The first delivery resolved and committed, then died before publishing anything.
    let stored = engine.campaign(&campaign).await;
    let mut client = engine.app.db.client().await;
    let tx = client.transaction().await.expect("tx");
    let options = campaigns::ResolveOptions {
        marketing: false,
        frequency_cap_hours: 0,
    };
    let (_, queued) = campaigns::resolve(&tx, &stored, options)
        .await
        .expect("resolve")
        .expect("resolved now");
    tx.commit().await.expect("commit");
    assert_eq!(queued.len(), 4);
    assert!(engine.send_jobs().is_empty(), "no job was published");

    let job = shared::jobs::CampaignStartJob::new(
        helpers::TENANT,
        campaign.as_str(),
        shared::jobs::StartReason::Start,
    );
    for _ in 0..3 {
        campaign_start::handle(&engine.start_state, &job)
            .await
            .expect("redelivered");
    }
    let jobs = engine.send_jobs();
    assert_eq!(jobs.len(), 4, "each queued recipient's job once");
    for job in &jobs {
        engine.send(job).await;
    }
    assert_eq!(engine.meta_sends().await.len(), 4);
    assert_eq!(
        engine.campaign(&campaign).await.status,
        CampaignStatus::Completed
    );
}

#[tokio::test]
async fn the_sweep_heals_lost_jobs_and_dead_claims_and_leaves_kept_slots_alone() {
    let engine = Engine::new().await;
    let campaign = engine.campaign_to_vips().await;
    engine.start(&campaign).await;
    drop(engine.send_jobs());
    let client = engine.app.db.client().await;
    let queued: Vec<String> = engine
        .column(
            "SELECT recipient_id FROM campaign_recipients WHERE campaign_id = $1
               AND status = 'QUEUED' ORDER BY recipient_id",
            &[&campaign.as_str()],
        )
        .await;
    assert_eq!(queued.len(), 4);
    let set = |sql: &'static str, id: &String| {
        let client = &client;
        let id = id.clone();
        async move { client.execute(sql, &[&id]).await.expect("set") }
    };
    // Its job never came back (published an hour ago, never received).
    set(
        "UPDATE campaign_recipients SET queued_at = now() - interval '61 minutes' WHERE recipient_id = $1",
        &queued[0],
    )
    .await;
    // Published long ago, but its kept slot is two hours ahead (a slow number's backlog).
    set(
        "UPDATE campaign_recipients SET queued_at = now() - interval '90 minutes',
             not_before = now() + interval '2 hours' WHERE recipient_id = $1",
        &queued[1],
    )
    .await;
    // Its kept slot passed ten minutes ago and its job did not come back for it.
    set(
        "UPDATE campaign_recipients SET not_before = now() - interval '10 minutes' WHERE recipient_id = $1",
        &queued[2],
    )
    .await;
    // Claimed 16 minutes ago by a worker that never finished: the send may have gone out.
    set(
        "UPDATE campaign_recipients SET claimed_at = now() - interval '16 minutes' WHERE recipient_id = $1",
        &queued[3],
    )
    .await;

    let due = engine.sweep_due().await;

    let status_of = |id: &String| {
        let client = &client;
        let id = id.clone();
        async move {
            let row = client
                .query_one(
                    "SELECT status, error_code, not_before FROM campaign_recipients WHERE recipient_id = $1",
                    &[&id],
                )
                .await
                .expect("status");
            (
                row.get::<_, String>(0),
                row.get::<_, Option<String>>(1),
                row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2)
                    .is_some(),
            )
        }
    };
    assert_eq!(
        status_of(&queued[0]).await,
        ("PENDING".to_owned(), None, false)
    );
    assert_eq!(
        status_of(&queued[1]).await,
        ("QUEUED".to_owned(), None, true),
        "a slot hours ahead is not a lost job"
    );
    assert_eq!(
        status_of(&queued[2]).await,
        ("PENDING".to_owned(), None, false),
        "due again at once"
    );
    assert_eq!(
        status_of(&queued[3]).await,
        (
            "FAILED".to_owned(),
            Some("outcome_unknown".to_owned()),
            false
        )
    );
    assert!(
        due.contains(&campaign),
        "the two lost ones are due: {due:?}"
    );
    let counters = engine.reconciled_counters(&campaign).await;
    assert_eq!(counters.failed, 1);
}
