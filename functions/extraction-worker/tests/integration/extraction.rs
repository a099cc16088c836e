use extraction_worker::Outcome;
use serde_json::json;
use shared::{
    db::extractions::{self, NewExtraction, Stored},
    domain::{BudgetConstraint, LeadLevels, LeadThresholds, Level},
    jobs::{ExtractionTrigger, JobError},
};

use crate::helpers::{OTHER_TENANT, TENANT, TestApp, answer};

#[tokio::test]
async fn a_conversation_is_scored_by_the_server_and_stored_as_its_latest_extraction() {
    // Arrange: 4 customer messages and a reply; the model claims a total of 99.
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    app.messages(&conversation, &[("agent", "Happy to help!")])
        .await;
    let mut claimed = answer("High");
    claimed["total_score"] = json!(99);
    claimed["lead_status_tag"] = json!("Cold");
    app.answers([claimed]);

    // Act
    let outcome = extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("extracted");

    // Assert: the server's arithmetic (High ×4 = 12, budget No = 3), not the model's.
    assert!(matches!(outcome, Outcome::Extracted { .. }), "{outcome:?}");
    assert_eq!(
        app.extractions(&conversation).await,
        [(5, true, 15, "Hot".to_owned())]
    );
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT e.intent_score, e.budget_score, e.email, e.reasoning->>'cta_behavior',
                    c.last_extraction_at IS NOT NULL, e.customer_phone, e.user_id
             FROM extractions e JOIN conversations c USING (conversation_id) WHERE e.conversation_id = $1",
            &[&conversation],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("sheena@acme.example")
    );
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("c"));
    assert!(row.get::<_, bool>(4), "last_extraction_at is set");
    assert_eq!(row.get::<_, String>(5), "+16505551234");
    assert_eq!(row.get::<_, String>(6), TENANT);
    // The request: strict structured output over the transcript.
    let calls = app.model_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["text"]["format"]["type"], "json_schema");
    assert_eq!(calls[0]["text"]["format"]["strict"], true);
    let transcript = calls[0]["input"][0]["content"]
        .as_str()
        .expect("transcript");
    assert!(
        transcript.starts_with("Customer (Sheena): I'd like pricing"),
        "{transcript}"
    );
    assert!(
        transcript.ends_with("Agent: Happy to help!"),
        "{transcript}"
    );
}

#[tokio::test]
async fn invalid_model_output_is_asked_again_and_only_the_valid_answer_is_stored() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 2).await;
    let mut bad_email = answer("Low");
    bad_email["email"] = json!("sheena at acme");
    let mut bad_enum = answer("Low");
    bad_enum["fit_alignment"] = json!("Excellent");
    app.answers([bad_email, bad_enum, answer("Low")]);

    extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("third answer is valid");

    assert_eq!(app.model_calls().await.len(), 3);
    assert_eq!(
        app.extractions(&conversation).await,
        [(2, true, 7, "Cold".to_owned())]
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM extractions WHERE email IS NOT NULL AND email NOT LIKE '%@%'",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn output_invalid_at_every_attempt_fails_the_job_for_a_retry_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 2).await;
    let mut missing = answer("High");
    missing.as_object_mut().map(|o| o.remove("urgency_level"));
    *app.model.fallback.lock().expect("lock") = missing;

    let error = extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect_err("never valid");

    assert!(matches!(error, JobError::Retryable { .. }), "{error}");
    assert!(error.to_string().contains("urgency_level"), "{error}");
    assert_eq!(app.model_calls().await.len(), 3, "bounded by max_attempts");
    assert_eq!(app.count("SELECT count(*) FROM extractions", &[]).await, 0);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversations WHERE last_extraction_at IS NOT NULL",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_redelivered_job_extracts_the_same_message_count_once() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    let job = app.job(TENANT, &conversation, ExtractionTrigger::NewMessages);

    let first = extraction_worker::handle(&app.state, &job)
        .await
        .expect("first");
    let second = extraction_worker::handle(&app.state, &job)
        .await
        .expect("redelivery");

    assert!(matches!(first, Outcome::Extracted { .. }));
    assert_eq!(second, Outcome::UpToDate);
    assert_eq!(
        app.model_calls().await.len(),
        1,
        "the redelivery asks the model nothing"
    );
    assert_eq!(app.extractions(&conversation).await.len(), 1);
}

#[tokio::test]
async fn concurrent_jobs_of_one_conversation_store_one_extraction_per_message_count() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    let job = app.job(TENANT, &conversation, ExtractionTrigger::OnDemand);

    let outcomes =
        futures::future::join_all((0..4).map(|_| extraction_worker::handle(&app.state, &job)))
            .await;

    let extracted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Extracted { .. })))
        .count();
    assert_eq!(extracted, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Ok(Outcome::Extracted { .. } | Outcome::Superseded | Outcome::UpToDate)
        )),
        "{outcomes:?}"
    );
    assert_eq!(
        app.extractions(&conversation).await,
        [(4, true, 11, "Warm".to_owned())]
    );
}

fn new_extraction<'a>(conversation: &'a str, count: i32, level: Level) -> NewExtraction<'a> {
    let levels = LeadLevels {
        intent: level,
        urgency: level,
        budget: BudgetConstraint::Maybe,
        fit: level,
        engagement: level,
    };
    NewExtraction {
        user_id: TENANT,
        conversation_id: conversation,
        customer_phone: "+16505551234",
        message_count: count,
        name: None,
        email: None,
        company: None,
        intent_level: level,
        urgency_level: level,
        budget_constraint: BudgetConstraint::Maybe,
        fit_alignment: level,
        engagement_health: level,
        score: levels.score(LeadThresholds::DEFAULT),
        demo_book_datetime: None,
        reasoning: json!({}),
        smart_notification: "n",
        requirements: None,
        custom_cta: None,
        in_detail_summary: "s",
    }
}

#[tokio::test]
async fn is_latest_flips_to_the_newest_count_under_two_concurrent_extractions() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 6).await;
    let first = new_extraction(&conversation, 2, Level::Low);
    extractions::store(
        &app.db.client().await.transaction().await.expect("tx"),
        &first,
    )
    .await
    .expect("rolled back on drop");

    // Two transactions store counts 4 and 6 at the same time, many rounds, in both orders.
    for round in 0..10 {
        let conversation = app.conversation(TENANT).await;
        app.customer_writes(&conversation, 6).await;
        let store = |count: i32| {
            let app = &app;
            let conversation = conversation.clone();
            async move {
                let mut client = app.db.client().await;
                let tx = client.transaction().await.expect("tx");
                let stored =
                    extractions::store(&tx, &new_extraction(&conversation, count, Level::High))
                        .await
                        .expect("store");
                tx.commit().await.expect("commit");
                stored
            }
        };
        let (a, b) = if round % 2 == 0 {
            tokio::join!(store(4), store(6))
        } else {
            let (b, a) = tokio::join!(store(6), store(4));
            (a, b)
        };
        let rows = app.extractions(&conversation).await;
        let latest: Vec<_> = rows.iter().filter(|r| r.1).collect();
        assert_eq!(latest.len(), 1, "round {round}: {rows:?}");
        assert_eq!(
            latest[0].0, 6,
            "round {round}: the newest count is latest: {rows:?}"
        );
        assert!(matches!(b, Stored::Inserted { .. }), "round {round}: {b:?}");
        // 4 is either stored first and unflagged by 6, or refused because 6 covers it.
        match a {
            Stored::Inserted { .. } => assert_eq!(rows.len(), 2, "round {round}"),
            Stored::AlreadyCovered { latest } => {
                assert_eq!(latest.message_count, 6);
                assert_eq!(rows.len(), 1, "round {round}");
            }
        }
    }
}

#[tokio::test]
async fn a_later_extraction_becomes_latest_and_keeps_the_history() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    app.answers([answer("Medium"), answer("High")]);
    let job = app.job(TENANT, &conversation, ExtractionTrigger::NewMessages);
    extraction_worker::handle(&app.state, &job)
        .await
        .expect("first");

    app.customer_writes(&conversation, 3).await;
    let below = extraction_worker::handle(&app.state, &job)
        .await
        .expect("three new");
    app.customer_writes(&conversation, 1).await;
    let second = extraction_worker::handle(&app.state, &job)
        .await
        .expect("four new");

    assert_eq!(below, Outcome::BelowThreshold);
    assert!(matches!(second, Outcome::Extracted { .. }));
    assert_eq!(
        app.extractions(&conversation).await,
        [
            (4, false, 11, "Warm".to_owned()),
            (8, true, 15, "Hot".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_job_naming_another_tenants_conversation_does_nothing() {
    let app = TestApp::spawn().await;
    let theirs = app.conversation(OTHER_TENANT).await;
    app.customer_writes(&theirs, 4).await;

    let outcome = extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &theirs, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("dropped");

    assert_eq!(outcome, Outcome::NoConversation);
    assert!(app.model_calls().await.is_empty());
    assert_eq!(app.count("SELECT count(*) FROM extractions", &[]).await, 0);
}

#[tokio::test]
async fn a_failed_reply_is_left_out_of_the_transcript() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 1).await;
    app.messages(&conversation, &[("agent", "never delivered")])
        .await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE messages SET status = 'failed' WHERE sender = 'agent'",
            &[],
        )
        .await
        .expect("fail");

    extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("extracted");

    let calls = app.model_calls().await;
    let transcript = calls[0]["input"][0]["content"]
        .as_str()
        .expect("transcript");
    assert!(!transcript.contains("never delivered"), "{transcript}");
    assert_eq!(
        app.extractions(&conversation).await[0].0,
        2,
        "the count covers every message"
    );
}
