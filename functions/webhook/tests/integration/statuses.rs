use serde_json::json;
use shared::{
    db::phone_numbers,
    domain::{PhoneNumberId, UserId},
};
use testkit::ConversationSeed;

use crate::helpers::{TestApp, WA_CHANNEL, fixture};

/// An agent message we sent with Meta id `platform_id` to customer `16505551234`, its
/// delivery status `pending`: seeded through `shared::db` (the channel's agent, created on
/// first use, and the customer's active conversation).
async fn seed_sent_message(app: &TestApp, tenant: &str, channel_id: &str, platform_id: &str) {
    let seed = app.db.seed();
    let user = UserId::parse(tenant).expect("tenant");
    let channel_id = PhoneNumberId::parse(channel_id).expect("channel id");
    let channel = phone_numbers::get(&app.db.client().await, &user, &channel_id)
        .await
        .expect("channel")
        .expect("the tenant's channel");
    let agent = match &channel.agent_id {
        Some(agent) => agent.clone(),
        None => seed.agent(&user, &channel, "pmpt_a", "A").await.agent_id,
    };
    let conversation = seed
        .conversation(
            &user,
            &channel,
            &agent,
            ConversationSeed::from_customer("16505551234"),
        )
        .await;
    seed.sent_message(&user, &conversation, "+16505551234", "Hello!", platform_id)
        .await;
}

async fn status_of(app: &TestApp, platform_id: &str) -> String {
    app.db
        .client()
        .await
        .query_one(
            "SELECT status FROM message_delivery_status WHERE platform_message_id = $1",
            &[&platform_id],
        )
        .await
        .expect("status row")
        .get(0)
}

fn status_payload(platform_id: &str, status: &str, channel: &str) -> serde_json::Value {
    let mut payload = fixture("wa_statuses.json");
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(channel);
    payload["entry"][0]["changes"][0]["value"]["statuses"] = json!([{ "id": platform_id, "status": status, "timestamp": "1749416600", "recipient_id": "16505551234" }]);
    payload
}

#[tokio::test]
async fn statuses_move_forward_and_a_late_delivered_never_undoes_read() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    seed_sent_message(&app, "acme", &channel, "wamid.OUT1").await;

    app.post_json(&fixture("wa_statuses.json"))
        .await
        .expect(200);
    assert_eq!(status_of(&app, "wamid.OUT1").await, "read");

    app.post_json(&status_payload("wamid.OUT1", "delivered", WA_CHANNEL))
        .await
        .expect(200);
    app.post_json(&status_payload("wamid.OUT1", "sent", WA_CHANNEL))
        .await
        .expect(200);
    app.post_json(&status_payload("wamid.OUT1", "failed", WA_CHANNEL))
        .await
        .expect(200);

    assert_eq!(status_of(&app, "wamid.OUT1").await, "read");
}

#[tokio::test]
async fn a_failed_status_records_the_error_on_the_message() {
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    seed_sent_message(&app, "acme", &channel, "wamid.OUT2").await;

    app.post_json(&fixture("wa_status_failed.json"))
        .await
        .expect(200);

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT d.status, d.error_message, m.status AS message_status, m.error_code
             FROM message_delivery_status d JOIN messages m USING (message_id)
             WHERE d.platform_message_id = 'wamid.OUT2'",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>("status"), "failed");
    assert!(
        row.get::<_, Option<String>>("error_message")
            .is_some_and(|e| e.starts_with("131047: Re-engagement message"))
    );
    assert_eq!(row.get::<_, String>("message_status"), "failed");
    assert_eq!(
        row.get::<_, Option<String>>("error_code").as_deref(),
        Some("131047")
    );
}

#[tokio::test]
async fn a_status_for_an_unknown_message_is_acknowledged() {
    let app = TestApp::spawn().await;
    app.channel("acme", "whatsapp", WA_CHANNEL).await;

    app.post_json(&status_payload("wamid.NEVER_SENT", "delivered", WA_CHANNEL))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_status_arriving_on_another_tenants_channel_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice_channel = app.channel("alice", "whatsapp", WA_CHANNEL).await;
    app.channel("mallory", "whatsapp", "300000000000003").await;
    seed_sent_message(&app, "alice", &alice_channel, "wamid.ALICE").await;

    app.post_json(&status_payload("wamid.ALICE", "read", "300000000000003"))
        .await
        .expect(200);

    assert_eq!(status_of(&app, "wamid.ALICE").await, "pending");
}

#[tokio::test]
async fn template_send_statuses_update_the_recipient_and_count_once_in_the_campaign() {
    // The campaign's live counters are its `campaign_counters` shards (V20).
    let app = TestApp::spawn().await;
    let channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    app.db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO templates (template_id, user_id, phone_number_id, name, category, status)
                 VALUES ('tpl_1', 'acme', '{channel}', 'summer_sale', 'MARKETING', 'APPROVED');
             INSERT INTO campaigns (campaign_id, user_id, template_id, phone_number_id, name, status, total_recipients)
                 VALUES ('cmp_1', 'acme', 'tpl_1', '{channel}', 'Summer', 'RUNNING', 1);
             INSERT INTO contacts (contact_id, user_id, phone) VALUES ('ct_1', 'acme', '+16505551234');
             INSERT INTO template_sends (send_id, template_id, campaign_id, customer_phone, status, platform_message_id)
                 VALUES ('tsend_1', 'tpl_1', 'cmp_1', '+16505551234', 'SENT', 'wamid.CAMPAIGN');
             INSERT INTO campaign_recipients (recipient_id, campaign_id, contact_id, template_send_id, status)
                 VALUES ('rcp_1', 'cmp_1', 'ct_1', 'tsend_1', 'SENT');
             INSERT INTO campaign_counters (campaign_id, shard, sent) VALUES ('cmp_1', 0, 1);"
        ))
        .await
        .expect("campaign seed");

    // Read arrives before delivered: it counts as both, and the late delivered changes nothing.
    app.post_json(&status_payload("wamid.CAMPAIGN", "read", WA_CHANNEL))
        .await
        .expect(200);
    app.post_json(&status_payload("wamid.CAMPAIGN", "delivered", WA_CHANNEL))
        .await
        .expect(200);
    app.post_json(&status_payload("wamid.CAMPAIGN", "read", WA_CHANNEL))
        .await
        .expect(200);

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT ts.status AS send_status, ts.read_at IS NOT NULL AS read_at_set, r.status AS recipient_status,
                    k.sent::int AS sent_count, k.delivered::int AS delivered_count,
                    k.read::int AS read_count, k.failed::int AS failed_count
             FROM template_sends ts JOIN campaign_recipients r ON r.template_send_id = ts.send_id
             JOIN (SELECT campaign_id, sum(sent) AS sent, sum(delivered) AS delivered,
                          sum(read) AS read, sum(failed) AS failed
                     FROM campaign_counters GROUP BY campaign_id) k ON k.campaign_id = r.campaign_id",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>("send_status"), "READ");
    assert!(row.get::<_, bool>("read_at_set"));
    assert_eq!(row.get::<_, String>("recipient_status"), "READ");
    assert_eq!(
        (
            row.get::<_, i32>("sent_count"),
            row.get::<_, i32>("delivered_count"),
            row.get::<_, i32>("read_count"),
            row.get::<_, i32>("failed_count")
        ),
        (1, 1, 1, 0)
    );
}

#[tokio::test]
async fn a_status_reported_by_one_channel_never_moves_a_message_sent_on_another_channel_of_the_tenant()
 {
    let app = TestApp::spawn().await;
    let main_channel = app.channel("acme", "whatsapp", WA_CHANNEL).await;
    app.channel("acme", "whatsapp", "200000000000002").await;
    seed_sent_message(&app, "acme", &main_channel, "wamid.MAIN").await;
    app.db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO templates (template_id, user_id, phone_number_id, name, category, status)
                 VALUES ('tpl_main', 'acme', '{main_channel}', 'welcome', 'MARKETING', 'APPROVED');
             INSERT INTO template_sends (send_id, template_id, customer_phone, status, platform_message_id)
                 VALUES ('tsend_main', 'tpl_main', '+16505551234', 'SENT', 'wamid.MAIN_TEMPLATE');"
        ))
        .await
        .expect("template send on the main channel");
    let send_status = || async {
        app.db
            .client()
            .await
            .query_one(
                "SELECT status FROM template_sends WHERE send_id = 'tsend_main'",
                &[],
            )
            .await
            .expect("send")
            .get::<_, String>(0)
    };

    // The other channel reports statuses for ids sent on the main one: nothing moves.
    for id in ["wamid.MAIN", "wamid.MAIN_TEMPLATE"] {
        app.post_json(&status_payload(id, "read", "200000000000002"))
            .await
            .expect(200);
    }
    assert_eq!(status_of(&app, "wamid.MAIN").await, "pending");
    assert_eq!(send_status().await, "SENT");

    // The main channel's own statuses do.
    for id in ["wamid.MAIN", "wamid.MAIN_TEMPLATE"] {
        app.post_json(&status_payload(id, "read", WA_CHANNEL))
            .await
            .expect(200);
    }
    assert_eq!(status_of(&app, "wamid.MAIN").await, "read");
    assert_eq!(send_status().await, "READ");
}
