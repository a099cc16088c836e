//! The worker on a real SQS FIFO queue (moto's server through the AWS SDK): the batch
//! lifter deletes what succeeded and delays what failed.

use aws_sdk_sqs::types::QueueAttributeName;
use conversation_worker::{poll_sqs_once, retry_delay_seconds};
use shared::jobs::{ReplyQueue, SqsQueue};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    fakes,
    helpers::{CUSTOMER, TestApp, at},
};

async fn queue() -> SqsQueue {
    let client = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&client, "worker").await;
    // Visible again at once after a receive, so the test sees whatever the worker decides.
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
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

    let received = poll_sqs_once(&app.state, &sqs).await.expect("poll");

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

    poll_sqs_once(&app.state, &sqs).await.expect("poll");

    // With a visibility timeout of 0 it would be back at once; the backoff hides it.
    assert!(
        sqs.receive(10, 0).await.expect("receive").is_empty(),
        "hidden by the retry backoff"
    );
    assert!(app.meta_sends().await.is_empty());
}

#[test]
fn the_backoff_doubles_and_is_capped() {
    assert_eq!(retry_delay_seconds(1), 10);
    assert_eq!(retry_delay_seconds(2), 20);
    assert_eq!(retry_delay_seconds(4), 80);
    assert_eq!(retry_delay_seconds(50), 900);
}
