use conversation_worker::{JobError, handle};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path, path_regex},
};

use crate::{
    fakes,
    helpers::{CUSTOMER, TestApp, at},
};

#[tokio::test]
async fn without_credits_no_openai_call_is_made_and_the_conversation_says_why() {
    let app = TestApp::spawn(0).await;
    let job = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job).await.expect("handled");

    assert!(app.model_calls().await.is_empty());
    assert!(app.meta_sends().await.is_empty());
    assert_eq!(app.credits().await, (0, 0));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM conversations WHERE reply_blocked_reason = 'no_credits'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE sender = 'user'", &[])
            .await,
        1,
        "the message is still stored"
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_messages WHERE outcome = 'no_credits' AND credit_taken_at IS NULL", &[]).await, 1);

    // Once credits arrive, the next message is answered and the reason is cleared.
    app.db
        .client()
        .await
        .execute("UPDATE credits SET remaining_credits = 1", &[])
        .await
        .expect("top up");
    let next = app.inbound("wamid.IN2", CUSTOMER, "Hello?", at(5)).await;
    handle(&app.state, &next).await.expect("handled");
    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM conversations WHERE reply_blocked_reason IS NULL AND reply_blocked_at IS NULL", &[]).await, 1);
}

#[tokio::test]
async fn fifty_concurrent_replies_with_ten_credits_make_exactly_ten_replies() {
    let app = TestApp::spawn(10).await;
    let mut jobs = Vec::new();
    for i in 0..50 {
        jobs.push(
            app.inbound(
                &format!("wamid.C{i}"),
                &format!("1650556{:04}", i),
                "hello",
                at(i),
            )
            .await,
        );
    }

    let results = futures::future::join_all(jobs.iter().map(|job| handle(&app.state, job))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(app.meta_sends().await.len(), 10);
    assert_eq!(app.model_calls().await.len(), 10);
    assert_eq!(app.credits().await, (0, 10));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE outcome = 'no_credits'",
            &[]
        )
        .await,
        40
    );
}

#[tokio::test]
async fn a_conversation_owned_by_a_person_gets_no_ai_reply_until_handed_back() {
    let app = TestApp::spawn(5).await;
    let first = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;
    handle(&app.state, &first).await.expect("first");
    app.db
        .client()
        .await
        .execute("UPDATE conversations SET owner = 'human'", &[])
        .await
        .expect("takeover");

    let during = app
        .inbound("wamid.IN2", CUSTOMER, "are you there?", at(10))
        .await;
    handle(&app.state, &during).await.expect("during takeover");

    assert_eq!(
        app.model_calls().await.len(),
        1,
        "no OpenAI call while a person owns it"
    );
    assert_eq!(app.credits().await, (4, 1), "no credit taken");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE text = 'are you there?'",
            &[]
        )
        .await,
        1,
        "stored and shown"
    );

    app.db
        .client()
        .await
        .execute("UPDATE conversations SET owner = 'ai'", &[])
        .await
        .expect("handback");
    let after = app
        .inbound("wamid.IN3", CUSTOMER, "hello again", at(20))
        .await;
    handle(&app.state, &after).await.expect("after handback");

    assert_eq!(app.model_calls().await.len(), 2);
    assert_eq!(app.credits().await, (3, 2));
}

#[tokio::test]
async fn the_handoff_tool_gives_the_conversation_to_a_person() {
    let app = TestApp::spawn(5).await;
    let job = app
        .inbound("wamid.IN1", CUSTOMER, "I want to talk to a human", at(0))
        .await;

    handle(&app.state, &job).await.expect("handled");

    let calls = app.model_calls().await;
    assert_eq!(calls.len(), 2, "the tool result goes back to the model");
    assert_eq!(calls[1]["input"][0]["type"], "function_call_output");
    assert_eq!(calls[1]["input"][0]["call_id"], "call_1");
    assert_eq!(app.count("SELECT count(*) FROM conversations WHERE owner = 'human' AND handoff_reason = 'customer asked for a person'", &[]).await, 1);
    let sent = app.meta_sends().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["text"]["body"],
        "A colleague will reach out shortly."
    );

    let next = app.inbound("wamid.IN2", CUSTOMER, "hello?", at(5)).await;
    handle(&app.state, &next).await.expect("handled");
    assert_eq!(
        app.model_calls().await.len(),
        2,
        "the AI stays quiet after handing over"
    );
}

#[tokio::test]
async fn an_openai_failure_is_retried_and_the_retry_replies_once_with_one_credit() {
    let app = TestApp::spawn_without_fakes(5).await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.openai)
        .await;
    fakes::mount_openai(&app.openai).await;
    fakes::mount_meta(&app.meta).await;
    let job = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;

    let first = handle(&app.state, &job).await;
    assert!(
        matches!(first, Err(JobError::Retryable { .. })),
        "{first:?}"
    );
    handle(&app.state, &job).await.expect("retry succeeds");

    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(app.credits().await, (4, 1));
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE sender = 'agent'", &[])
            .await,
        1
    );
}

#[tokio::test]
async fn a_send_outside_the_24_hour_window_fails_for_good_without_retrying() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(fakes::meta_error(131_047, "Re-engagement message"))
        .mount(&app.meta)
        .await;
    let job = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;

    handle(&app.state, &job)
        .await
        .expect("a permanent failure is not retried");
    handle(&app.state, &job)
        .await
        .expect("a redelivered job does nothing");

    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM messages WHERE sender = 'agent' AND status = 'failed' AND error_code = '131047'", &[]).await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM message_delivery_status WHERE status = 'failed'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE outcome = 'send_failed'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_throughput_limit_is_retried_and_the_reply_is_sent_once() {
    let app = TestApp::spawn_without_fakes(5).await;
    fakes::mount_openai(&app.openai).await;
    Mock::given(method("POST"))
        .and(path_regex(r"/messages$"))
        .respond_with(fakes::meta_error(130_429, "Rate limit hit"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
    fakes::mount_meta(&app.meta).await;
    let job = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;

    let first = handle(&app.state, &job).await;
    assert!(
        matches!(first, Err(JobError::Retryable { .. })),
        "{first:?}"
    );
    handle(&app.state, &job).await.expect("retry");

    assert_eq!(app.model_calls().await.len(), 1, "the retry only re-sends");
    assert_eq!(app.meta_sends().await.len(), 2, "one refused, one accepted");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE sender = 'agent' AND status = 'sent'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(app.credits().await, (4, 1));
}

#[tokio::test]
async fn stop_opts_the_customer_out_without_a_reply_and_start_opts_back_in() {
    let app = TestApp::spawn(5).await;

    let stop = app.inbound("wamid.STOP", CUSTOMER, "  stop ", at(0)).await;
    handle(&app.state, &stop).await.expect("stop");
    assert_eq!(app.count("SELECT count(*) FROM contacts WHERE phone = '+16505551234' AND opted_out AND opted_out_at IS NOT NULL", &[]).await, 1);

    let ignored = app.inbound("wamid.AFTER", CUSTOMER, "hello", at(5)).await;
    handle(&app.state, &ignored).await.expect("while opted out");

    let start = app.inbound("wamid.START", CUSTOMER, "START", at(10)).await;
    handle(&app.state, &start).await.expect("start");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM contacts WHERE phone = '+16505551234' AND NOT opted_out",
            &[]
        )
        .await,
        1
    );

    assert!(app.model_calls().await.is_empty());
    assert!(app.meta_sends().await.is_empty());
    assert_eq!(app.credits().await, (5, 0));
}

#[tokio::test]
async fn stop_from_a_whatsapp_username_without_a_phone_opts_out_its_contact_and_counts_its_messages()
 {
    // Before V9 the contact could only be keyed by an E.164 phone: this job failed on the
    // phone CHECK until it reached the DLQ.
    let app = TestApp::spawn(5).await;
    let bsuid = "US.13491208655302741918";

    let hello = app.inbound("wamid.B1", bsuid, "hello", at(0)).await;
    handle(&app.state, &hello).await.expect("hello");
    let stop = app.inbound("wamid.B2", bsuid, "STOP", at(5)).await;
    handle(&app.state, &stop).await.expect("stop");
    let after = app
        .inbound("wamid.B3", bsuid, "are you there?", at(10))
        .await;
    handle(&app.state, &after).await.expect("while opted out");

    assert_eq!(
        app.count(
            "SELECT count(*) FROM contacts WHERE phone IS NULL AND platform = 'whatsapp'
             AND customer_id = '+US.13491208655302741918' AND opted_out AND name = 'Sheena'
             AND total_messages_received = 3",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = 'wamid.B3' AND outcome = 'opted_out'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_batch_lifter_reports_only_failed_records_and_holds_back_their_group() {
    let app = TestApp::spawn(5).await;
    let good = app.inbound("wamid.GOOD", CUSTOMER, "hi", at(0)).await;
    let record = |id: &str, body: String, group: &str| {
        let mut record = aws_lambda_events::sqs::SqsMessage::default();
        record.message_id = Some(id.to_owned());
        record.body = Some(body);
        record
            .attributes
            .insert("MessageGroupId".to_owned(), group.to_owned());
        record
    };
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = vec![
        record("m1", "not json".to_owned(), "g1"),
        record("m2", serde_json::to_string(&good).expect("json"), "g1"),
        record("m3", serde_json::to_string(&good).expect("json"), "g2"),
    ];

    let response = conversation_worker::handle_batch(&app.state, event, None).await;

    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        ["m1", "m2"],
        "the poison message and the one queued behind it in its group"
    );
    assert_eq!(
        app.meta_sends().await.len(),
        1,
        "the other group was answered"
    );
}

/// A batch record for `job` in its FIFO group, as Lambda delivers it.
fn record_for(id: &str, job: &shared::jobs::ReplyJob) -> aws_lambda_events::sqs::SqsMessage {
    use shared::jobs::Job;
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.message_id = Some(id.to_owned());
    record.body = Some(serde_json::to_string(job).expect("json"));
    record.attributes.insert(
        "MessageGroupId".to_owned(),
        job.group_id().expect("FIFO group"),
    );
    record
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), "1".to_owned());
    record
}

#[tokio::test]
async fn an_unknown_prompt_fails_the_message_at_once_returns_its_credit_and_the_next_is_answered() {
    // Arrange: OpenAI refuses the first reply as it refuses an unknown prompt id.
    let app = TestApp::spawn_without_fakes(5).await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {
                "message": "Prompt with id 'pmpt_sales' not found.",
                "type": "invalid_request_error",
                "param": "prompt.id",
                "code": null
            }
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.openai)
        .await;
    fakes::mount_openai(&app.openai).await;
    fakes::mount_meta(&app.meta).await;
    let refused = app.inbound("wamid.REFUSED", CUSTOMER, "Hi 👋", at(0)).await;
    let next = app.inbound("wamid.NEXT", CUSTOMER, "Hello?", at(5)).await;
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = vec![record_for("m1", &refused), record_for("m2", &next)];

    // Act
    let response = conversation_worker::handle_batch(&app.state, event, None).await;

    // Assert: both jobs completed; one OpenAI attempt for the refused message.
    assert!(
        response.batch_item_failures.is_empty(),
        "a refusal is not retried: {:?}",
        response.batch_item_failures
    );
    assert_eq!(app.model_calls().await.len(), 2, "one attempt each");
    let sent = app.meta_sends().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"]["body"], "Echo: Hello?");
    assert_eq!(
        app.credits().await,
        (4, 1),
        "the refused message's credit came back"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = 'wamid.REFUSED'
               AND state = 'done' AND outcome = 'ai_failed'
               AND failure_reason = 'OpenAI: 400 invalid_request_error: Prompt with id ''pmpt_sales'' not found.'
               AND credit_taken_at IS NOT NULL AND credit_refunded_at IS NOT NULL",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = 'wamid.NEXT'
               AND outcome = 'replied' AND credit_refunded_at IS NULL",
            &[]
        )
        .await,
        1
    );

    // A redelivered job neither asks again nor refunds twice.
    handle(&app.state, &refused).await.expect("redelivery");
    assert_eq!(app.model_calls().await.len(), 2);
    assert_eq!(app.credits().await, (4, 1));
}

#[tokio::test]
async fn a_revoked_openai_key_is_retried_not_failed_for_good() {
    let app = TestApp::spawn_without_fakes(5).await;
    Mock::given(method("POST"))
        .and(path("/responses"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": { "message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key" }
        })))
        .mount(&app.openai)
        .await;
    fakes::mount_openai(&app.openai).await;
    let job = app.inbound("wamid.KEY", CUSTOMER, "Hi", at(0)).await;

    let outcome = handle(&app.state, &job).await;

    assert!(
        matches!(outcome, Err(JobError::Retryable { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state <> 'done' AND outcome IS NULL",
            &[]
        )
        .await,
        1,
        "left for the retry"
    );
    assert_eq!(
        app.credits().await,
        (4, 1),
        "the credit stays taken for the retry"
    );
}
