//! The worker on a real SQS FIFO queue (moto's server through the AWS SDK): the batch
//! lifter deletes what succeeded, delays what failed, and returns what it had no time for.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use conversation_worker::poll_sqs_once;
use shared::jobs::{ReplyQueue, SqsQueue};
use wiremock::{
    Mock, Request, Respond, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    fakes,
    helpers::{CUSTOMER, TestApp, at},
};

async fn queue() -> SqsQueue {
    // Visible again at once after a receive, so the test sees whatever the worker decides.
    queue_with_visibility_timeout(0).await
}

async fn queue_with_visibility_timeout(seconds: u32) -> SqsQueue {
    let client = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&client, "worker").await;
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
        .send()
        .await
        .expect("visibility");
    SqsQueue::new(client, url)
}

#[tokio::test]
async fn a_polled_job_is_answered_and_deleted() {
    let mut app = TestApp::spawn(5).await;
    let sqs = queue().await;
    app.state.retry_queue = Some(sqs.clone());
    let job = app
        .inbound("wamid.SQS1", CUSTOMER, "Hi from SQS", at(0))
        .await;
    ReplyQueue::Sqs(sqs.clone())
        .publish(&job)
        .await
        .expect("publish");

    let received = poll_sqs_once(&app.state, &sqs, None).await.expect("poll");

    assert_eq!(received, 1);
    assert_eq!(app.meta_sends().await.len(), 1);
    assert!(
        sqs.receive(10, 0).await.expect("receive").is_empty(),
        "deleted after success"
    );
}

#[tokio::test]
async fn a_failed_job_stays_queued_but_hidden_for_its_backoff() {
    let mut app = TestApp::spawn_without_fakes(5).await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.openai)
        .await;
    fakes::mount_openai(&app.openai).await;
    let sqs = queue().await;
    app.state.retry_queue = Some(sqs.clone());
    let job = app.inbound("wamid.SQS2", CUSTOMER, "Hi", at(0)).await;
    ReplyQueue::Sqs(sqs.clone())
        .publish(&job)
        .await
        .expect("publish");

    poll_sqs_once(&app.state, &sqs, None).await.expect("poll");

    // With a visibility timeout of 0 it would be back at once; the backoff hides it.
    assert!(
        sqs.receive(10, 0).await.expect("receive").is_empty(),
        "hidden by the retry backoff"
    );
    assert!(app.meta_sends().await.is_empty());
}

/// The fake model, two seconds slow.
struct SlowModel;

impl Respond for SlowModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        fakes::FakeModel
            .respond(request)
            .set_delay(Duration::from_secs(2))
    }
}

#[tokio::test]
async fn near_the_deadline_the_rest_of_the_batch_is_receivable_again_at_once_and_never_started() {
    // Arrange: three customers' jobs on a queue that would hide a received message for a
    // minute; a 2 s model; 6 s left and a 4.5 s margin, so only the first job starts (6 - 2
    // < 4.5), with 1.5 s of slack for the receive and 2 s before the lifter's backstop.
    let mut app = TestApp::spawn_without_fakes(5).await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(SlowModel)
        .with_priority(1)
        .mount(&app.openai)
        .await;
    fakes::mount_openai(&app.openai).await;
    fakes::mount_meta(&app.meta).await;
    let sqs = queue_with_visibility_timeout(60).await;
    app.state.retry_queue = Some(sqs.clone());
    app.state.lifter.deadline_margin = Duration::from_millis(4500);
    let customers = ["16505550001", "16505550002", "16505550003"];
    for (i, customer) in customers.iter().enumerate() {
        let job = app
            .inbound(&format!("wamid.DL{i}"), customer, "Hi", at(i as i64))
            .await;
        ReplyQueue::Sqs(sqs.clone())
            .publish(&job)
            .await
            .expect("publish");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);

    // Act
    let received = poll_sqs_once(&app.state, &sqs, Some(deadline))
        .await
        .expect("poll");

    // Assert: one job ran; the two others were never started and are back at once.
    assert_eq!(received, 3);
    assert_eq!(app.model_calls().await.len(), 1);
    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state <> 'done' AND credit_taken_at IS NULL AND message_id IS NULL",
            &[]
        )
        .await,
        2,
        "untouched"
    );
    let again = sqs.receive(10, 0).await.expect("receive");
    assert_eq!(
        again.len(),
        2,
        "visible again at once, not after the queue's 60 s: {again:?}"
    );
}
