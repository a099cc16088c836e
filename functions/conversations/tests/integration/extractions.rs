//! The extraction routes: lists, history, one extraction, the on-demand trigger, and tenant
//! isolation on each of them.

use serde_json::json;
use shared::{
    db::extractions::{self, NewExtraction, Stored},
    domain::{BudgetConstraint, LeadLevels, LeadThresholds, Level},
    jobs::ExtractionTrigger,
};
use testkit::TestTenant;

use crate::TestApp;

/// Stores an extraction of `conversation` at message count `count`, every level `level`.
async fn extraction(
    app: &TestApp,
    tenant: &TestTenant,
    conversation: &str,
    count: i32,
    level: Level,
) -> String {
    let levels = LeadLevels {
        intent: level,
        urgency: level,
        budget: BudgetConstraint::No,
        fit: level,
        engagement: level,
    };
    let new = NewExtraction {
        user_id: &tenant.sub,
        conversation_id: conversation,
        customer_phone: "+16505551234",
        message_count: count,
        name: Some("Sheena"),
        email: Some("sheena@acme.example"),
        company: None,
        intent_level: level,
        urgency_level: level,
        budget_constraint: BudgetConstraint::No,
        fit_alignment: level,
        engagement_health: level,
        score: levels.score(LeadThresholds::DEFAULT),
        demo_book_datetime: None,
        reasoning: json!({ "intent": "asked for pricing" }),
        smart_notification: "Lead asked for pricing",
        requirements: None,
        custom_cta: None,
        in_detail_summary: "Pricing question.",
    };
    let mut client = app.db.client().await;
    let tx = client.transaction().await.expect("tx");
    let Stored::Inserted { extraction_id, .. } =
        extractions::store(&tx, &new).await.expect("store")
    else {
        panic!("not stored");
    };
    tx.commit().await.expect("commit");
    extraction_id.to_string()
}

#[tokio::test]
async fn the_list_shows_each_conversations_latest_filters_by_status_score_and_date_and_pages() {
    // Arrange: a Cold lead that became Hot, a Warm lead and a Cold one.
    let app = TestApp::spawn().await;
    let token = app.tenant.token();
    let hot = app.conversation(&app.tenant, "1", 1).await;
    let warm = app.conversation(&app.tenant, "2", 1).await;
    let cold = app.conversation(&app.tenant, "3", 1).await;
    let old = extraction(&app, &app.tenant, &hot, 1, Level::Low).await;
    let hot_id = extraction(&app, &app.tenant, &hot, 3, Level::High).await;
    extraction(&app, &app.tenant, &warm, 2, Level::Medium).await;
    extraction(&app, &app.tenant, &cold, 2, Level::Low).await;

    // Act
    let latest = app.api.get("/extractions", &token).await;
    let with_history = app.api.get("/extractions?latest_only=false", &token).await;
    let hot_only = app
        .api
        .get("/extractions?lead_status_tag=Hot", &token)
        .await;
    let at_least_11 = app.api.get("/extractions?min_score=11", &token).await;
    let future = app
        .api
        .get("/extractions?from=2999-01-01T00:00:00Z", &token)
        .await;
    let past = app
        .api
        .get("/extractions?to=2000-01-01T00:00:00%2B02:00", &token)
        .await;
    let first_page = app.api.get("/extractions?limit=2", &token).await;

    // Assert
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["extraction_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let latest = latest.expect(200);
    assert_eq!(ids(latest).len(), 3);
    assert!(
        !ids(latest).contains(&old),
        "the replaced extraction is not listed by default"
    );
    assert!(
        latest["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["is_latest"] == true)
    );
    assert_eq!(ids(with_history.expect(200)).len(), 4);
    let hot_only = hot_only.expect(200);
    assert_eq!(ids(hot_only), [hot_id]);
    assert_eq!(hot_only["items"][0]["total_score"], 15);
    assert_eq!(hot_only["items"][0]["intent_score"], 3);
    assert_eq!(hot_only["items"][0]["budget_constraint"], "No");
    assert_eq!(
        hot_only["items"][0]["reasoning"]["intent"],
        "asked for pricing"
    );
    assert_eq!(ids(at_least_11.expect(200)).len(), 2);
    assert!(ids(future.expect(200)).is_empty());
    assert!(ids(past.expect(200)).is_empty());
    let first_page = first_page.expect(200);
    let cursor = first_page["next_cursor"].as_str().expect("a second page");
    let second_page = app
        .api
        .get(&format!("/extractions?limit=2&cursor={cursor}"), &token)
        .await;
    let second_page = second_page.expect(200);
    assert_eq!(ids(second_page).len(), 1);
    assert!(second_page["next_cursor"].is_null());
    let mut all = ids(first_page);
    all.extend(ids(second_page));
    all.sort();
    let mut expected = ids(latest);
    expected.sort();
    assert_eq!(all, expected, "pages cover the list once");
}

#[tokio::test]
async fn bad_filters_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = app.tenant.token();
    for (query, field) in [
        ("lead_status_tag=Boiling", "lead_status_tag"),
        ("min_score=20", "min_score"),
        ("min_score=four", "min_score"),
        ("from=yesterday", "from"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("latest_only=maybe", "latest_only"),
        ("colour=red", "colour"),
    ] {
        let response = app.api.get(&format!("/extractions?{query}"), &token).await;
        response.expect_problem(422, Some(field));
    }
}

#[tokio::test]
async fn a_conversations_history_is_newest_first_and_one_extraction_is_read_by_id() {
    let app = TestApp::spawn().await;
    let token = app.tenant.token();
    let conversation = app.conversation(&app.tenant, "1", 1).await;
    let first = extraction(&app, &app.tenant, &conversation, 1, Level::Low).await;
    let second = extraction(&app, &app.tenant, &conversation, 4, Level::Medium).await;

    let history = app
        .api
        .get(
            &format!("/conversations/{conversation}/extractions"),
            &token,
        )
        .await;
    let one = app.api.get(&format!("/extractions/{first}"), &token).await;
    let malformed = app.api.get("/extractions/not-a-uuid", &token).await;
    let unknown = app
        .api
        .get("/extractions/00000000-0000-4000-8000-000000000000", &token)
        .await;

    let history = history.expect(200);
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["extraction_id"], second.as_str());
    assert_eq!(items[0]["is_latest"], true);
    assert_eq!(items[1]["extraction_id"], first.as_str());
    assert_eq!(items[1]["is_latest"], false);
    assert_eq!(items[1]["message_count_at_extraction"], 1);
    let one = one.expect(200);
    assert_eq!(one["lead_status_tag"], "Cold");
    assert_eq!(one["conversation_id"], conversation.as_str());
    malformed.expect_problem(404, None);
    unknown.expect_problem(404, None);
}

#[tokio::test]
async fn extract_now_queues_a_job_and_answers_409_when_nothing_is_new() {
    let app = TestApp::spawn().await;
    let token = app.tenant.token();
    let conversation = app.conversation(&app.tenant, "1", 1).await;

    let queued = app
        .api
        .post(
            &format!("/conversations/{conversation}/extract"),
            &token,
            &json!({}),
        )
        .await;
    let jobs = app.extraction_queue.drain();
    extraction(&app, &app.tenant, &conversation, 1, Level::High).await;
    let covered = app
        .api
        .post(
            &format!("/conversations/{conversation}/extract"),
            &token,
            &json!({}),
        )
        .await;

    let queued = queued.expect(202);
    assert_eq!(queued["message_count"], 1);
    assert_eq!(queued["status"], "queued");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].conversation_id(), conversation);
    assert_eq!(jobs[0].user_id(), app.tenant.sub);
    assert_eq!(jobs[0].trigger(), ExtractionTrigger::OnDemand);
    let problem = covered.expect_problem(409, None);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("already covers"),
        "{problem}"
    );
    assert!(app.extraction_queue.drain().is_empty());
}

#[tokio::test]
async fn extract_now_answers_503_and_queues_nothing_when_the_queue_fails() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(&app.tenant, "1", 1).await;
    app.extraction_queue.fail_next(1);

    let response = app
        .api
        .post(
            &format!("/conversations/{conversation}/extract"),
            &app.tenant.token(),
            &json!({}),
        )
        .await;

    response.expect_problem(503, None);
    assert_eq!(app.extraction_queue.published_count(), 0);
}

#[tokio::test]
async fn another_tenants_extractions_are_404_on_every_route_and_never_listed() {
    let app = TestApp::spawn().await;
    let other = TestTenant::new("globex");
    app.api
        .get("/conversations", &other.token())
        .await
        .expect(200);
    let theirs = app.conversation(&other, "9", 1).await;
    let their_extraction = extraction(&app, &other, &theirs, 1, Level::High).await;
    let token = app.tenant.token();

    let list = app.api.get("/extractions?latest_only=false", &token).await;
    let one = app
        .api
        .get(&format!("/extractions/{their_extraction}"), &token)
        .await;
    let history = app
        .api
        .get(&format!("/conversations/{theirs}/extractions"), &token)
        .await;
    let extract = app
        .api
        .post(
            &format!("/conversations/{theirs}/extract"),
            &token,
            &json!({}),
        )
        .await;

    assert!(
        list.expect(200)["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );
    one.expect_problem(404, None);
    history.expect_problem(404, None);
    extract.expect_problem(404, None);
    assert_eq!(app.extraction_queue.published_count(), 0);
    // The owner sees it.
    app.api
        .get(&format!("/extractions/{their_extraction}"), &other.token())
        .await
        .expect(200);
}

#[tokio::test]
async fn extract_now_is_409_while_only_our_side_has_written() {
    let app = TestApp::spawn().await;
    let token = app.tenant.token();
    let seed = app.db.seed();
    let user = seed.tenant(&app.tenant.sub).await;
    let channel = seed
        .channel(
            &user,
            testkit::ChannelSeed::whatsapp("1").token("EAAG-token"),
        )
        .await;
    let agent = seed.agent(&user, &channel, "pmpt_a", "Ava").await;
    // A template went out; the customer never answered.
    let conversation = shared::domain::ConversationId::generate();
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO conversations (conversation_id, agent_id, customer_phone)
             VALUES ($1, $2, '+16505551234')",
            &[&conversation.as_str(), &agent.agent_id.as_str()],
        )
        .await
        .expect("conversation");
    seed.agent_message(&user, &conversation, "Your order ships today")
        .await;

    let refused = app
        .api
        .post(
            &format!("/conversations/{conversation}/extract"),
            &token,
            &json!({}),
        )
        .await;

    let problem = refused.expect_problem(409, None);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("the customer has not written"),
        "{problem}"
    );
    assert!(
        app.extraction_queue.drain().is_empty(),
        "no job, no OpenAI call"
    );
}
