//! What an extraction changes besides itself, in its transaction: the contact auto-sync
//! and the domain events.

use serde_json::json;
use shared::jobs::ExtractionTrigger;

use crate::helpers::{TENANT, TestApp, answer};

#[tokio::test]
async fn an_extraction_creates_the_customers_contact_linked_to_it() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;

    extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("extracted");

    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT c.name, c.email, c.company, c.source, c.conversation_id,
                    c.extraction_id = e.extraction_id, c.total_messages_received
             FROM contacts c JOIN extractions e ON e.conversation_id = c.conversation_id
             WHERE c.user_id = $1 AND c.phone = '+16505551234'",
            &[&TENANT],
        )
        .await
        .expect("one contact");
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("Sheena Nelson")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("sheena@acme.example")
    );
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("Acme"));
    assert_eq!(row.get::<_, String>(3), "EXTRACTION");
    assert_eq!(
        row.get::<_, Option<String>>(4).as_deref(),
        Some(conversation.as_str())
    );
    assert!(row.get::<_, bool>(5), "linked to the extraction");
    assert_eq!(row.get::<_, i32>(6), 4, "the customer's inbound messages");
}

#[tokio::test]
async fn auto_sync_never_overwrites_what_a_person_entered() {
    // Arrange: a person entered the name and the company; the email is empty.
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone, name, company, source, tags)
             VALUES ('ct_manual', $1, '+16505551234', 'Sheena N. (VIP)', 'Acme Europe', 'MANUAL', '{vip}')",
            &[&TENANT],
        )
        .await
        .expect("manual contact");

    // Act: two extractions, the second with other values.
    let mut other = answer("High");
    other["name"] = json!("S. Nelson");
    other["email"] = json!("other@acme.example");
    other["company"] = json!("Acme Inc");
    app.answers([answer("Medium"), other]);
    let job = app.job(TENANT, &conversation, ExtractionTrigger::OnDemand);
    extraction_worker::handle(&app.state, &job)
        .await
        .expect("first");
    app.customer_writes(&conversation, 1).await;
    extraction_worker::handle(&app.state, &job)
        .await
        .expect("second");

    // Assert: only the empty field was filled, by the first extraction; the link follows
    // the latest.
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT name, email, company, source, tags,
                    extraction_id = (SELECT extraction_id FROM extractions WHERE is_latest)
             FROM contacts WHERE user_id = $1",
            &[&TENANT],
        )
        .await
        .expect("still one contact");
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("Sheena N. (VIP)")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("sheena@acme.example")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("Acme Europe")
    );
    assert_eq!(row.get::<_, String>(3), "MANUAL");
    assert_eq!(row.get::<_, Vec<String>>(4), ["vip"]);
    assert!(row.get::<_, bool>(5), "linked to the latest extraction");
}

#[tokio::test]
async fn an_instagram_customer_becomes_a_contact_by_channel_identity_without_a_phone() {
    let app = TestApp::spawn().await;
    let igsid = "17841400000000001";
    let conversation = app.conversation_with(TENANT, "instagram", igsid).await;
    app.customer_writes(&conversation, 2).await;

    extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("extracted");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM contacts WHERE user_id = $1 AND phone IS NULL
               AND platform = 'instagram' AND customer_id = $2 AND source = 'EXTRACTION'",
            &[&TENANT, &igsid],
        )
        .await,
        1
    );
}

#[tokio::test]
async fn lead_hot_fires_once_when_a_lead_goes_warm_then_hot_then_hot() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.answers([answer("Medium"), answer("High"), answer("High")]);
    let job = app.job(TENANT, &conversation, ExtractionTrigger::OnDemand);

    for _ in 0..3 {
        app.customer_writes(&conversation, 1).await;
        extraction_worker::handle(&app.state, &job)
            .await
            .expect("extracted");
    }

    let statuses: Vec<String> = app
        .extractions(&conversation)
        .await
        .into_iter()
        .map(|e| e.3)
        .collect();
    assert_eq!(statuses, ["Warm", "Hot", "Hot"]);
    assert_eq!(
        app.events(&conversation).await,
        [
            "NEW_EXTRACTION",
            "LEAD_WARM",
            "NEW_EXTRACTION",
            "LEAD_HOT",
            "NEW_EXTRACTION",
        ]
    );
    // Every event names the tenant, the contact and the conversation.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM domain_events e JOIN contacts c ON c.contact_id = e.contact_id
             WHERE e.user_id = $1 AND e.conversation_id = $2 AND c.phone = '+16505551234'",
            &[&TENANT, &conversation],
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_redelivered_or_failed_job_records_no_event_twice_and_none_for_nothing() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    let job = app.job(TENANT, &conversation, ExtractionTrigger::NewMessages);
    extraction_worker::handle(&app.state, &job)
        .await
        .expect("first");
    extraction_worker::handle(&app.state, &job)
        .await
        .expect("redelivery");

    // A later job whose model output is never valid records nothing.
    app.customer_writes(&conversation, 4).await;
    let mut bad = answer("High");
    bad["email"] = json!("not an email");
    *app.model.fallback.lock().expect("lock") = bad;
    extraction_worker::handle(&app.state, &job)
        .await
        .expect_err("invalid");

    assert_eq!(
        app.events(&conversation).await,
        ["NEW_EXTRACTION", "LEAD_WARM"]
    );
    assert_eq!(app.count("SELECT count(*) FROM contacts", &[]).await, 1);
}
