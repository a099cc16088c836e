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

#[tokio::test]
async fn the_lifter_deletes_successes_hides_a_retry_for_its_delay_and_leaves_poison_alone() {
    use std::time::Duration;

    use aws_sdk_sqs::types::QueueAttributeName;
    use shared::jobs::{JobError, Lifter, LifterConfig};

    // Arrange: a queue that hides a received message for a minute, three customers' jobs.
    let client = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&client, "lifter").await;
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .expect("visibility");
    let sqs = SqsQueue::new(client.clone(), &url);
    let queue = ReplyQueue::Sqs(sqs.clone());
    for (id, customer) in [
        ("wamid.OK", "1"),
        ("wamid.RETRY", "2"),
        ("wamid.POISON", "3"),
    ] {
        queue
            .publish(&ReplyJob::new(id, "pn_1", customer))
            .await
            .expect("publish");
    }
    let lifter = Lifter::new(
        LifterConfig {
            deadline_margin: Duration::ZERO,
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(900),
        },
        Some(sqs.clone()),
    );

    // Act
    let received = lifter
        .poll_sqs(&sqs, None, |job: ReplyJob| async move {
            match job.platform_message_id() {
                "wamid.RETRY" => Err(JobError::retry_after(
                    "rate limited",
                    Duration::from_secs(1),
                )),
                "wamid.POISON" => Err(JobError::Poison("cannot ever run".to_owned())),
                _ => Ok(()),
            }
        })
        .await
        .expect("poll");

    // Assert: after the retry's 1 s only it is back; the poison keeps the queue's 60 s.
    assert_eq!(received, 3);
    assert!(sqs.receive(10, 0).await.expect("receive").is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = sqs.receive(10, 0).await.expect("receive");
    let bodies: Vec<ReplyJob> = again
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("a job"))
        .collect();
    assert_eq!(bodies, [ReplyJob::new("wamid.RETRY", "pn_1", "2")]);
}

#[tokio::test]
async fn a_throttled_job_comes_back_as_a_new_message_without_using_up_its_receives() {
    use std::time::Duration;

    use shared::jobs::{JobError, Lifter, LifterConfig, Queue, SendJob};

    // A standard queue with a message group per tenant, as the send queue.
    let client = testkit::moto_sqs_client();
    let url = testkit::create_queue(&client, "sends").await;
    let sqs = SqsQueue::new(client.clone(), &url);
    let waiting = SendJob::new("usr_a", "cmp_1", "rcp_waiting");
    let queue = Queue::Sqs(sqs.clone());
    for job in [&waiting, &SendJob::new("usr_a", "cmp_1", "rcp_done")] {
        queue.publish(job).await.expect("publish");
    }
    let lifter = Lifter::new(
        LifterConfig {
            deadline_margin: Duration::ZERO,
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(900),
        },
        None,
    );
    let throttle_waiting = |jobs: Vec<SendJob>| async move {
        jobs.iter()
            .map(|job| {
                if job.recipient_id() == "rcp_waiting" {
                    let back = tokio::time::Instant::now() + Duration::from_secs(1);
                    Err(JobError::throttled("waiting for a send slot", back))
                } else {
                    Ok(())
                }
            })
            .collect()
    };

    // Three turns to wait in a row: each time a new message, received for the first time.
    let mut message_ids = Vec::new();
    for turn in 0..3 {
        let mut received = 0;
        for _ in 0..5 {
            received += lifter
                .poll_sqs_together(&sqs, None, throttle_waiting)
                .await
                .expect("poll");
            if received > 0 {
                break;
            }
        }
        assert_eq!(received, if turn == 0 { 2 } else { 1 });
        assert!(
            sqs.receive(10, 0).await.expect("receive").is_empty(),
            "the original is gone and the copy is hidden for its delay"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let back = sqs.receive(10, 0).await.expect("receive");
        assert_eq!(back.len(), 1);
        let job: SendJob = serde_json::from_str(&back[0].body).expect("a job");
        assert_eq!(job, waiting);
        assert_eq!(back[0].receive_count.as_deref(), Some("1"));
        assert_eq!(back[0].group_id, waiting.group_id(), "its tenant's group");
        message_ids.push(back[0].message_id.clone());
        // Let the next poll receive it.
        sqs.change_visibility(&[(back[0].receipt_handle.as_str(), 0)])
            .await
            .expect("visible");
    }
    message_ids.dedup();
    assert_eq!(message_ids.len(), 3, "a new message each time");
}
