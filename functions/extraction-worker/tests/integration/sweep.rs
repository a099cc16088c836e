use shared::jobs::ExtractionTrigger;

use crate::helpers::{TENANT, TestApp};

#[tokio::test]
async fn the_sweep_asks_once_for_a_conversation_with_n_new_customer_messages() {
    let app = TestApp::spawn().await;
    let few = app.conversation(TENANT).await;
    app.customer_writes(&few, 3).await;
    let enough = app.conversation(TENANT).await;
    app.customer_writes(&enough, 4).await;

    let first = extraction_worker::sweep(&app.state).await.expect("sweep");
    let second = extraction_worker::sweep(&app.state)
        .await
        .expect("sweep again");

    assert_eq!(first.new_messages, 1);
    assert_eq!(second.new_messages, 0, "the request is still open");
    let jobs = app.queue.drain();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].conversation_id(), enough);
    assert_eq!(jobs[0].trigger(), ExtractionTrigger::NewMessages);

    // Served: the next four messages are asked for again.
    extraction_worker::handle(&app.state, &jobs[0])
        .await
        .expect("extracted");
    app.customer_writes(&enough, 4).await;
    let third = extraction_worker::sweep(&app.state).await.expect("sweep");
    assert_eq!(third.new_messages, 1);
}

#[tokio::test]
async fn a_request_whose_publish_failed_is_asked_for_again_by_the_next_sweep() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;
    app.queue.fail_next(1);

    let failed = extraction_worker::sweep(&app.state).await.expect("sweep");
    let retried = extraction_worker::sweep(&app.state).await.expect("sweep");

    assert_eq!(failed.new_messages, 0);
    assert_eq!(retried.new_messages, 1);
    assert_eq!(app.queue.drain().len(), 1);
}

#[tokio::test]
async fn a_quiet_conversation_gets_its_final_extraction_once_per_quiet_period() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 2).await;
    let active = app.conversation(TENANT).await;
    app.customer_writes(&active, 1).await;
    app.quiet_for(&conversation, 31).await;

    let first = extraction_worker::sweep(&app.state).await.expect("sweep");
    let again = extraction_worker::sweep(&app.state).await.expect("sweep");

    assert_eq!((first.quiet_periods, first.quiet_extractions), (1, 1));
    assert_eq!((again.quiet_periods, again.quiet_extractions), (0, 0));
    let jobs = app.queue.drain();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].trigger(), ExtractionTrigger::Quiet);
    assert_eq!(jobs[0].conversation_id(), conversation);

    // An hour later the customer writes again and goes quiet again: a new quiet period
    // ends once more.
    extraction_worker::handle(&app.state, &jobs[0])
        .await
        .expect("extracted");
    app.db
        .client()
        .await
        .execute(
            "UPDATE conversations SET quiet_extraction_at = quiet_extraction_at - interval '60 minutes'",
            &[],
        )
        .await
        .expect("an hour ago");
    app.customer_writes(&conversation, 1).await;
    app.quiet_for(&conversation, 45).await;
    let later = extraction_worker::sweep(&app.state).await.expect("sweep");
    assert_eq!((later.quiet_periods, later.quiet_extractions), (1, 1));
}

#[tokio::test]
async fn a_quiet_conversation_already_extracted_is_not_extracted_again() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 2).await;
    extraction_worker::handle(
        &app.state,
        &app.job(TENANT, &conversation, ExtractionTrigger::OnDemand),
    )
    .await
    .expect("extracted");
    app.quiet_for(&conversation, 31).await;

    let report = extraction_worker::sweep(&app.state).await.expect("sweep");

    assert_eq!((report.quiet_periods, report.quiet_extractions), (1, 0));
    assert!(app.queue.drain().is_empty());
}

#[tokio::test]
async fn one_lambda_serves_sqs_batches_and_the_scheduled_sweep() {
    let app = TestApp::spawn().await;
    let conversation = app.conversation(TENANT).await;
    app.customer_writes(&conversation, 4).await;

    // The schedule's input runs the sweep, which publishes the job.
    let swept = extraction_worker::invoke(&app.state, serde_json::json!({ "sweep": {} }), None)
        .await
        .expect("sweep");
    let jobs = app.queue.drain();
    // An SQS event carrying that job, and a poison record, as Lambda delivers them.
    let event = serde_json::json!({ "Records": [
        { "messageId": "m1", "receiptHandle": "r1", "body": serde_json::to_string(&jobs[0]).expect("json"),
          "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {}, "eventSource": "aws:sqs" },
        { "messageId": "m2", "receiptHandle": "r2", "body": "{\"version\":\"9\"}",
          "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {}, "eventSource": "aws:sqs" }
    ]});
    let batch = extraction_worker::invoke(&app.state, event, None)
        .await
        .expect("batch");

    assert_eq!(swept["new_messages"], 1);
    assert_eq!(
        batch["batchItemFailures"],
        serde_json::json!([{ "itemIdentifier": "m2" }]),
        "only the poison record is reported"
    );
    assert_eq!(app.extractions(&conversation).await.len(), 1);
}
