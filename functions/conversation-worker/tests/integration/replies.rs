use conversation_worker::handle;

use crate::helpers::{CUSTOMER, META_NUMBER_ID, TestApp, at};

#[tokio::test]
async fn an_inbound_text_is_answered_through_openai_and_meta_with_every_row_written() {
    let app = TestApp::spawn(5).await;
    let job = app
        .inbound("wamid.IN1", CUSTOMER, "Does it come in blue?", at(0))
        .await;

    handle(&app.state, &job).await.expect("handled");

    // OpenAI saw the stored prompt, the conversation and the text.
    let calls = app.model_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["prompt"]["id"], "pmpt_sales");
    assert_eq!(calls[0]["prompt"]["variables"]["customer_name"], "Sheena");
    assert_eq!(calls[0]["conversation"], "conv_openai_1");
    assert!(calls[0].get("previous_response_id").is_none());
    assert_eq!(calls[0]["input"][0]["content"], "Does it come in blue?");
    // Meta got the reply from the right number, for the right customer, with the token.
    let sends = app.meta.received_requests().await.unwrap_or_default();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].url.path(), format!("/{META_NUMBER_ID}/messages"));
    assert_eq!(
        sends[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer EAAG-channel-token")
    );
    let body: serde_json::Value = serde_json::from_slice(&sends[0].body).expect("json");
    assert_eq!(body["to"], CUSTOMER);
    assert_eq!(body["text"]["body"], "Echo: Does it come in blue?");
    // Rows: the conversation, both messages in order, the delivery status, the credit.
    let rows = app
        .db
        .client()
        .await
        .query(
            "SELECT m.sequence_no, m.sender, m.author, m.text, m.status, m.platform_message_id, d.status AS delivery
             FROM messages m LEFT JOIN message_delivery_status d USING (message_id) ORDER BY m.sequence_no",
            &[],
        )
        .await
        .expect("messages");
    /// sequence, sender, author, status, delivery status
    type Row = (i32, String, Option<String>, String, Option<String>);
    let summary: Vec<Row> = rows
        .iter()
        .map(|r| {
            (
                r.get("sequence_no"),
                r.get("sender"),
                r.get("author"),
                r.get("status"),
                r.get("delivery"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1,
                "user".to_owned(),
                Some("customer".to_owned()),
                "sent".to_owned(),
                None
            ),
            (
                2,
                "agent".to_owned(),
                Some("ai".to_owned()),
                "sent".to_owned(),
                Some("pending".to_owned())
            ),
        ]
    );
    assert_eq!(
        rows[1]
            .get::<_, Option<String>>("platform_message_id")
            .as_deref(),
        Some("wamid.OUT.0")
    );
    assert_eq!(app.count("SELECT count(*) FROM conversations WHERE customer_phone = '+16505551234' AND is_active AND openai_conversation_id = 'conv_openai_1' AND customer_name = 'Sheena'", &[]).await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state = 'done' AND outcome = 'replied'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(app.credits().await, (4, 1));
}

#[tokio::test]
async fn a_job_delivered_three_times_replies_once_and_takes_one_credit() {
    let app = TestApp::spawn(5).await;
    let job = app.inbound("wamid.IN1", CUSTOMER, "Hi", at(0)).await;

    for _ in 0..3 {
        handle(&app.state, &job).await.expect("handled");
    }

    assert_eq!(app.model_calls().await.len(), 1);
    assert_eq!(app.meta_sends().await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM messages", &[]).await, 2);
    assert_eq!(app.credits().await, (4, 1));
}

#[tokio::test]
async fn two_messages_of_one_customer_are_stored_and_answered_in_order() {
    let app = TestApp::spawn(5).await;
    let first = app.inbound("wamid.A", CUSTOMER, "first", at(0)).await;
    let second = app.inbound("wamid.B", CUSTOMER, "second", at(5)).await;

    handle(&app.state, &first).await.expect("first");
    handle(&app.state, &second).await.expect("second");

    let texts: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT text FROM messages ORDER BY sequence_no", &[])
        .await
        .expect("messages")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Both customer messages were stored (in timestamp order) by the first job, under the
    // conversation lock; each got its own reply.
    assert_eq!(texts, ["first", "second", "Echo: first", "Echo: second"]);
    let sent: Vec<String> = app
        .meta_sends()
        .await
        .iter()
        .map(|b| b["text"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sent, ["Echo: first", "Echo: second"]);
}

#[tokio::test]
async fn messages_delivered_out_of_order_are_stored_in_the_providers_order() {
    let app = TestApp::spawn(5).await;
    let late = app
        .inbound("wamid.LATE", CUSTOMER, "sent second", at(10))
        .await;
    app.inbound("wamid.EARLY", CUSTOMER, "sent first", at(1))
        .await;

    handle(&app.state, &late).await.expect("handled");

    let texts: Vec<String> = app
        .db
        .client()
        .await
        .query(
            "SELECT text FROM messages WHERE sender = 'user' ORDER BY sequence_no",
            &[],
        )
        .await
        .expect("messages")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["sent first", "sent second"]);
}

#[tokio::test]
async fn different_customers_are_answered_in_parallel_with_gap_free_sequences() {
    let app = TestApp::spawn(20).await;
    let mut jobs = Vec::new();
    for i in 0..8 {
        jobs.push(
            app.inbound(
                &format!("wamid.P{i}"),
                &format!("1650555{:04}", 2000 + i),
                "hello",
                at(i),
            )
            .await,
        );
    }

    let results = futures::future::join_all(jobs.iter().map(|job| handle(&app.state, job))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(app.meta_sends().await.len(), 8);
    assert_eq!(
        app.count("SELECT count(*) FROM conversations", &[]).await,
        8
    );
    assert_eq!(
        app.count("SELECT count(*) FROM (SELECT conversation_id FROM messages GROUP BY conversation_id HAVING array_agg(sequence_no ORDER BY sequence_no) = ARRAY[1,2]) ok", &[]).await,
        8
    );
}

#[tokio::test]
async fn a_channel_without_an_agent_keeps_the_message_and_does_not_reply() {
    let app = TestApp::spawn(5).await;
    app.db
        .client()
        .await
        .execute("DELETE FROM agents", &[])
        .await
        .expect("unlink");
    let job = app.inbound("wamid.IN1", CUSTOMER, "anyone?", at(0)).await;

    handle(&app.state, &job).await.expect("handled");

    assert!(app.model_calls().await.is_empty());
    assert!(app.meta_sends().await.is_empty());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE outcome = 'no_agent' AND text = 'anyone?'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(app.credits().await, (5, 0));
}

#[tokio::test]
async fn an_instagram_customer_is_answered_on_the_host_its_connection_uses() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path},
    };

    let app = TestApp::spawn(5).await;
    let seed = app.db.seed();
    let channel = seed
        .channel(
            &app.channel.user_id,
            testkit::ChannelSeed::instagram(
                "17841400000000",
                shared::domain::InstagramApi::FacebookPage,
            ),
        )
        .await;
    seed.agent(&app.channel.user_id, &channel, "pmpt_ig", "Ivy")
        .await;
    let channel_id = channel.id;
    Mock::given(method("POST"))
        .and(path("/17841400000000/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({ "recipient_id": "5612345678901234", "message_id": "mid.REPLY" }),
        ))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let route = shared::db::inbound::ChannelRoute {
        phone_number_id: channel_id.clone(),
        user_id: app.channel.user_id.clone(),
        platform: shared::domain::Platform::Instagram,
    };
    let message = shared::domain::InboundMessage {
        platform: shared::domain::Platform::Instagram,
        channel_key: "17841400000000".to_owned(),
        platform_message_id: "mid.IN".to_owned(),
        customer_id: "5612345678901234".to_owned(),
        customer_name: None,
        sent_at: at(0),
        message_type: "text".to_owned(),
        text: "Is this available?".to_owned(),
        metadata: serde_json::json!({}),
    };
    shared::db::inbound::record(&app.db.client().await, &route, &message)
        .await
        .expect("inbox");
    let job = shared::jobs::ReplyJob::new("mid.IN", channel_id.as_str(), "5612345678901234");

    handle(&app.state, &job).await.expect("handled");

    let sends = app.meta.received_requests().await.unwrap_or_default();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].url.path(), "/17841400000000/messages");
    assert_eq!(
        sends[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer IG-page-token")
    );
    let body: serde_json::Value = serde_json::from_slice(&sends[0].body).expect("json");
    assert_eq!(body["recipient"]["id"], "5612345678901234");
    assert_eq!(body["message"]["text"], "Echo: Is this available?");
    assert_eq!(app.count("SELECT count(*) FROM messages WHERE platform_message_id = 'mid.REPLY' AND status = 'sent'", &[]).await, 1);
}
