//! The SQS adapter against moto's server, through the real AWS SDK.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use shared::jobs::{Job, ReplyJob, ReplyQueue, SqsQueue};

#[tokio::test]
async fn a_job_published_twice_is_delivered_once_with_its_group() {
    let client = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&client, "replies").await;
    let queue = ReplyQueue::Sqs(SqsQueue::new(client.clone(), &url));
    let job = ReplyJob::new("wamid.A", "pn_1", "16505551234");

    queue.publish(&job).await.expect("first publish");
    queue
        .publish(&job)
        .await
        .expect("second publish is accepted and deduplicated");

    let received = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "deduplicated: {messages:?}");
    let body: ReplyJob =
        serde_json::from_str(messages[0].body().unwrap_or_default()).expect("a job");
    assert_eq!(body, job);
    let group = messages[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group, job.group_id());
}

#[tokio::test]
async fn one_customers_jobs_arrive_in_publish_order() {
    let client = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&client, "replies").await;
    let queue = ReplyQueue::Sqs(SqsQueue::new(client.clone(), &url));
    let ids = ["wamid.1", "wamid.2", "wamid.3"];
    for id in ids {
        queue
            .publish(&ReplyJob::new(id, "pn_1", "16505551234"))
            .await
            .expect("publish");
    }

    let mut seen = Vec::new();
    for _ in 0..3 {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        for message in received.messages() {
            let job: ReplyJob =
                serde_json::from_str(message.body().unwrap_or_default()).expect("a job");
            seen.push(job.platform_message_id().to_owned());
            client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn publishing_to_a_missing_queue_is_an_error_not_a_panic() {
    let client = testkit::moto_sqs_client();
    let queue = ReplyQueue::Sqs(SqsQueue::new(
        client,
        "http://localhost:1/123456789012/missing.fifo",
    ));

    let error = queue
        .publish(&ReplyJob::new("wamid.x", "pn_1", "1"))
        .await
        .expect_err("no such queue");

    assert!(error.to_string().contains("queue publish failed"));
}
