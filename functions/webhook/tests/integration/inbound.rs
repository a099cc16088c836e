use serde_json::json;
use shared::jobs::Job;

use crate::helpers::{IG_CHANNEL, TestApp, WA_CHANNEL, fixture};

#[tokio::test]
async fn every_whatsapp_message_type_is_stored_once_and_enqueued() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let fixtures = [
        ("wa_text.json", "wamid.TEXT1", "text"),
        ("wa_text_reply.json", "wamid.REPLY1", "text"),
        ("wa_button_reply.json", "wamid.BTNREPLY", "interactive"),
        ("wa_list_reply.json", "wamid.LISTREPLY", "interactive"),
        ("wa_template_button.json", "wamid.QUICKREPLY", "button"),
        ("wa_image.json", "wamid.IMAGE", "image"),
        ("wa_document.json", "wamid.DOC", "document"),
        ("wa_audio.json", "wamid.AUDIO", "audio"),
        ("wa_video.json", "wamid.VIDEO", "video"),
        ("wa_sticker.json", "wamid.STICKER", "sticker"),
        ("wa_location.json", "wamid.LOCATION", "location"),
        ("wa_contacts.json", "wamid.CONTACTS", "contacts"),
        ("wa_reaction.json", "wamid.REACTION", "reaction"),
        ("wa_referral.json", "wamid.REFERRAL", "text"),
        ("wa_unsupported.json", "wamid.UNSUPPORTED", "unsupported"),
    ];
    for (file, id, kind) in fixtures {
        app.post_json(&fixture(file)).await.expect(200);
        let row = app
            .db
            .client()
            .await
            .query_one(
                "SELECT user_id, phone_number_id, customer_id, customer_name, message_type, state
                 FROM inbound_messages WHERE platform_message_id = $1",
                &[&id],
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: no inbox row: {e}"));
        assert_eq!(row.get::<_, String>("user_id"), "acme", "{file}");
        assert_eq!(row.get::<_, String>("phone_number_id"), channel, "{file}");
        assert_eq!(row.get::<_, String>("customer_id"), "16505551234", "{file}");
        assert_eq!(
            row.get::<_, Option<String>>("customer_name").as_deref(),
            Some("Sheena Nelson"),
            "{file}"
        );
        assert_eq!(row.get::<_, String>("message_type"), kind, "{file}");
        assert_eq!(row.get::<_, String>("state"), "enqueued", "{file}");
    }
    let jobs = app.queue.drain();
    assert_eq!(jobs.len(), fixtures.len());
    assert!(
        jobs.iter().all(|job| job.group_id() == jobs[0].group_id()),
        "one customer, one FIFO group"
    );
    let button: serde_json::Value = app
        .db
        .client()
        .await
        .query_one(
            "SELECT metadata FROM inbound_messages WHERE platform_message_id = 'wamid.QUICKREPLY'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(button["button"]["payload"], "pricing_cta");
    assert_eq!(button["context"]["id"], "wamid.TEMPLATE_SENT");
}

#[tokio::test]
async fn a_delivery_received_five_times_stores_one_message_and_publishes_one_job() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let payload = fixture("wa_text.json");

    for _ in 0..5 {
        app.post_json(&payload).await.expect(200);
    }

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        1
    );
    assert_eq!(app.queue.published_count(), 1);
    app.take_published_jobs();
}

#[tokio::test]
async fn when_the_queue_fails_meta_is_told_to_retry_and_the_redelivery_publishes_the_job() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;
    let payload = fixture("wa_text.json");
    app.queue.fail_next(1);

    let first = app.post_json(&payload).await;

    first.expect_problem(503, None);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state = 'received'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(app.queue.published_count(), 0);

    app.post_json(&payload).await.expect(200);
    app.post_json(&payload).await.expect(200);

    assert_eq!(
        app.queue.published_count(),
        1,
        "published once the queue is back, and only once"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state = 'enqueued'",
            &[]
        )
        .await,
        1
    );
    app.take_published_jobs();
}

#[tokio::test]
async fn one_delivery_spanning_two_tenants_routes_each_entry_to_its_channel_owner() {
    let app = TestApp::spawn().await;
    app.channel("alice", "whatsapp", WA_CHANNEL).await;
    app.channel("bob", "whatsapp", "200000000000002").await;
    let mut second = fixture("wa_text.json")["entry"][0].clone();
    second["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("200000000000002");
    second["changes"][0]["value"]["messages"][0]["id"] = json!("wamid.FOR_BOB");
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [fixture("wa_text.json")["entry"][0].clone(), "not an entry", second],
    });

    app.post_json(&payload).await.expect(200);

    assert_eq!(app.count("SELECT count(*) FROM inbound_messages WHERE user_id = 'alice' AND platform_message_id = 'wamid.TEXT1'", &[]).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM inbound_messages WHERE user_id = 'bob' AND platform_message_id = 'wamid.FOR_BOB'", &[]).await, 1);
    assert_eq!(app.queue.published_count(), 2);
    app.take_published_jobs();
}

#[tokio::test]
async fn instagram_messages_are_routed_by_the_recipient_account_and_echoes_are_skipped() {
    let app = TestApp::spawn().await;
    app.channel("acme", "instagram", IG_CHANNEL).await;

    app.post_json(&fixture("ig_text.json")).await.expect(200);
    app.post_json(&fixture("ig_attachment.json"))
        .await
        .expect(200);
    app.post_json(&fixture("ig_echo.json")).await.expect(200);

    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE customer_id = '5612345678901234'",
            &[]
        )
        .await,
        2
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE text = 'Thanks for writing!'",
            &[]
        )
        .await,
        0
    );
    assert_eq!(app.queue.published_count(), 2);
    app.take_published_jobs();
}

#[tokio::test]
async fn unknown_channels_objects_and_fields_are_acknowledged_without_effect() {
    let app = TestApp::spawn().await;

    for file in [
        "wa_text.json",
        "unknown_object.json",
        "wa_unknown_field.json",
        "ig_text.json",
    ] {
        app.post_json(&fixture(file)).await.expect(200);
    }

    assert_eq!(
        app.count("SELECT count(*) FROM inbound_messages", &[])
            .await,
        0
    );
    assert_eq!(app.queue.published_count(), 0);
}

#[tokio::test]
async fn a_channel_id_of_one_tenant_never_lands_in_another_tenants_rows() {
    let app = TestApp::spawn().await;
    app.channel("alice", "whatsapp", WA_CHANNEL).await;
    app.channel("bob", "instagram", WA_CHANNEL).await;

    app.post_json(&fixture("wa_text.json")).await.expect(200);

    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE user_id = 'bob'",
            &[]
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE user_id = 'alice'",
            &[]
        )
        .await,
        1
    );
    app.take_published_jobs();
}
