//! Template events of a WABA: status (every documented event), quality and category, matched
//! by Meta's template id within the entry's WABA, applied in event order.

use serde_json::{Value, json};

use crate::helpers::{TestApp, WA_CHANNEL};

/// The WABA of the helper's WhatsApp channels.
const WABA: &str = "1";
const META_ID: i64 = 1_689_556_908_129_832;

/// A template of `tenant`'s channel, submitted to Meta as `meta_id` in `waba`.
async fn submitted_template(
    app: &TestApp,
    channel: &str,
    tenant: &str,
    waba: &str,
    meta_id: i64,
    name: &str,
) -> String {
    let id = shared::domain::TemplateId::generate().to_string();
    let client = app.db.client().await;
    client
        .execute(
            "INSERT INTO templates (template_id, user_id, phone_number_id, name, category, status, language,
                 components, waba_id, meta_template_id, submitted_at)
             VALUES ($1, $2, $3, $4, 'MARKETING', 'PENDING', 'en_US',
                 '{\"header\":{\"type\":\"NONE\"},\"body\":{\"text\":\"Hi there\"},\"buttons\":[]}', $5, $6, now())",
            &[&id, &tenant, &channel, &name, &waba, &meta_id.to_string()],
        )
        .await
        .expect("template");
    id
}

fn envelope(waba: &str, time: i64, field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": waba, "time": time, "changes": [{ "field": field, "value": value }] }]
    })
}

fn status_event(waba: &str, time: i64, event: &str, extra: Value) -> Value {
    let mut value = json!({
        "event": event,
        "message_template_id": META_ID,
        "message_template_name": "order_confirmation",
        "message_template_language": "en-US",
        "reason": "NONE",
    });
    if let (Some(map), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    envelope(waba, time, "message_template_status_update", value)
}

async fn state_of(app: &TestApp, id: &str) -> (String, Option<String>, Option<String>, bool) {
    let client = app.db.client().await;
    let row = client
        .query_one(
            "SELECT status, meta_status, rejection_reason, approved_at IS NOT NULL AS approved FROM templates WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("template");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn every_documented_event_moves_the_template_as_the_mapping_table_says() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;
    let events = [
        ("APPROVED", "APPROVED"),
        ("FLAGGED", "APPROVED"),
        ("PAUSED", "PAUSED"),
        ("REINSTATED", "APPROVED"),
        ("LOCKED", "APPROVED"),
        ("UNLOCKED", "APPROVED"),
        ("LIMIT_EXCEEDED", "APPROVED"),
        ("DISABLED", "DISABLED"),
        ("IN_APPEAL", "DISABLED"),
        ("PENDING", "PENDING"),
        ("REJECTED", "REJECTED"),
        ("ARCHIVED", "DISABLED"),
        ("UNARCHIVED", "APPROVED"),
        ("SOMETHING_META_ADDS_LATER", "APPROVED"),
        ("PENDING_DELETION", "DISABLED"),
        ("DELETED", "DISABLED"),
    ];
    for (i, (event, expected)) in events.into_iter().enumerate() {
        let time = 1_751_247_548 + i64::try_from(i).unwrap_or_default();
        app.post_json(&status_event(WABA, time, event, json!({})))
            .await
            .expect(200);
        let (status, meta_status, _, _) = state_of(&app, &id).await;
        assert_eq!(status, expected, "after {event}");
        assert_eq!(meta_status.as_deref(), Some(event), "after {event}");
    }
}

#[tokio::test]
async fn a_rejection_keeps_metas_reason_and_details_and_none_or_null_reasons_say_nothing() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;

    app.post_json(&status_event(
        WABA,
        100,
        "REJECTED",
        json!({ "reason": "INVALID_FORMAT", "rejection_info": { "reason": "Variables at the end", "recommendation": "Add text after {{2}}" } }),
    ))
    .await
    .expect(200);
    let (status, _, reason, _) = state_of(&app, &id).await;
    let client = app.db.client().await;
    let details: Value = client
        .query_one(
            "SELECT meta_status_details FROM templates WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("row")
        .get(0);
    app.post_json(&status_event(WABA, 101, "PAUSED", json!({ "reason": null, "other_info": { "title": "Paused", "description": "Low quality" } })))
        .await
        .expect(200);
    let paused: Value = client
        .query_one(
            "SELECT meta_status_details FROM templates WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("row")
        .get(0);

    assert_eq!(status, "REJECTED");
    assert_eq!(reason.as_deref(), Some("INVALID_FORMAT"));
    assert_eq!(
        details["rejection_info"]["recommendation"],
        "Add text after {{2}}"
    );
    assert_eq!(paused["other_info"]["description"], "Low quality");
    let (status, _, reason, _) = state_of(&app, &id).await;
    assert_eq!((status.as_str(), reason), ("PAUSED", None));
}

#[tokio::test]
async fn a_late_event_never_undoes_a_later_one_and_a_redelivery_changes_nothing() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;
    let approved = status_event(WABA, 2_000, "APPROVED", json!({}));

    app.post_json(&approved).await.expect(200);
    app.post_json(&status_event(WABA, 1_000, "PENDING", json!({})))
        .await
        .expect(200);
    app.post_json(&approved).await.expect(200);

    let (status, meta_status, _, approved_at) = state_of(&app, &id).await;
    assert_eq!(
        (status.as_str(), meta_status.as_deref(), approved_at),
        ("APPROVED", Some("APPROVED"), true)
    );
}

#[tokio::test]
async fn a_status_for_the_same_template_id_in_another_waba_changes_nothing() {
    let app = TestApp::spawn().await;
    let ours = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &ours, "acme", WABA, META_ID, "order_confirmation").await;
    let rival = app.channel("rival", "whatsapp", "106540352242999").await;
    let client = app.db.client().await;
    client
        .execute(
            "UPDATE phone_numbers SET waba_id = '2' WHERE id = $1",
            &[&rival],
        )
        .await
        .expect("waba");

    app.post_json(&status_event(
        "2",
        100,
        "REJECTED",
        json!({ "reason": "SCAM" }),
    ))
    .await
    .expect(200);
    app.post_json(&status_event("999", 101, "DISABLED", json!({})))
        .await
        .expect(200);

    let (status, meta_status, reason, _) = state_of(&app, &id).await;
    assert_eq!(
        (status.as_str(), meta_status, reason),
        ("PENDING", None, None)
    );
}

#[tokio::test]
async fn quality_and_category_updates_are_stored_on_the_template() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;
    let common = |extra: Value| {
        let mut value = json!({ "message_template_id": META_ID, "message_template_name": "order_confirmation", "message_template_language": "en_US" });
        if let (Some(map), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        value
    };

    app.post_json(&envelope(
        WABA,
        10,
        "message_template_quality_update",
        common(json!({ "previous_quality_score": "GREEN", "new_quality_score": "YELLOW" })),
    ))
    .await
    .expect(200);
    app.post_json(&envelope(
        WABA,
        11,
        "template_category_update",
        common(json!({ "correct_category": "UTILITY" })),
    ))
    .await
    .expect(200);
    let client = app.db.client().await;
    let notice = client
        .query_one(
            "SELECT quality_score, category, category_update FROM templates WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("row");
    app.post_json(&envelope(
        WABA,
        12,
        "template_category_update",
        common(json!({ "previous_category": "MARKETING", "new_category": "UTILITY" })),
    ))
    .await
    .expect(200);
    let changed = client
        .query_one(
            "SELECT category, category_update FROM templates WHERE template_id = $1",
            &[&id],
        )
        .await
        .expect("row");

    assert_eq!(notice.get::<_, String>(0), "YELLOW");
    assert_eq!(
        notice.get::<_, String>(1),
        "MARKETING",
        "a notice does not change the category yet"
    );
    assert_eq!(notice.get::<_, Value>(2)["correct_category"], "UTILITY");
    assert_eq!(changed.get::<_, String>(0), "UTILITY");
    assert_eq!(changed.get::<_, Value>(1)["previous_category"], "MARKETING");
}

#[tokio::test]
async fn an_approval_carrying_the_very_second_of_the_submission_applies() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;
    let mut client = app.db.client().await;
    let tx = client.transaction().await.expect("tx");
    shared::db::templates::mark_submitted(
        &tx,
        &shared::domain::TemplateId::from_trusted(id.clone()),
        WABA,
        &META_ID.to_string(),
        "PENDING",
        shared::domain::TemplateStatus::Pending,
    )
    .await
    .expect("submitted");
    tx.commit().await.expect("commit");

    // Meta's entry.time is whole seconds: the submission's own second, truncated.
    let now = chrono::Utc::now().timestamp();
    app.post_json(&status_event(WABA, now, "APPROVED", json!({})))
        .await
        .expect(200);

    let (status, _, _, approved) = state_of(&app, &id).await;
    assert_eq!((status.as_str(), approved), ("APPROVED", true));
}

#[tokio::test]
async fn a_template_meta_pauses_pauses_its_running_campaigns_with_the_reason() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let id = submitted_template(&app, &channel, "acme", WABA, META_ID, "order_confirmation").await;
    let client = app.db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO campaigns (campaign_id, user_id, template_id, phone_number_id, name, status)
                 VALUES ('cmp_run', 'acme', '{id}', '{channel}', 'Running', 'RUNNING'),
                        ('cmp_draft', 'acme', '{id}', '{channel}', 'Draft', 'DRAFT');"
        ))
        .await
        .expect("campaigns");
    app.post_json(&status_event(WABA, 100, "APPROVED", json!({})))
        .await
        .expect(200);
    app.post_json(&status_event(
        WABA,
        101,
        "PAUSED",
        json!({ "reason": "LOW_QUALITY" }),
    ))
    .await
    .expect(200);
    let rows = client
        .query(
            "SELECT campaign_id, status, last_error FROM campaigns ORDER BY campaign_id",
            &[],
        )
        .await
        .expect("rows");
    let states: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(states[0].0, "cmp_draft");
    assert_eq!(states[0].1, "DRAFT", "a draft is not touched");
    assert_eq!(states[1].1, "PAUSED");
    assert!(
        states[1]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("paused") && e.contains("LOW_QUALITY")),
        "{states:?}"
    );
}
