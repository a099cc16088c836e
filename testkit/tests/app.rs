//! The harness's own guarantees: a test that leaves jobs in the queue fails, unless it says
//! it means to; seeds write valid rows through `shared::db`.

use shared::{
    domain::{ConversationId, PhoneNumberId, Platform},
    jobs::ReplyJob,
};
use testkit::{ChannelSeed, ConversationSeed, TestApp};

async fn publish_one(app: &TestApp) {
    app.reply_queue()
        .publish(&ReplyJob::new("wamid.LEFT", "pn_x", "16505551234"))
        .await
        .expect("publish");
}

#[tokio::test]
#[should_panic(expected = "job(s) left in the queue")]
async fn a_test_that_leaves_a_job_in_the_queue_fails() {
    let app = TestApp::new().await;
    publish_one(&app).await;
}

#[tokio::test]
async fn a_test_that_takes_its_jobs_passes() {
    let app = TestApp::new().await;
    publish_one(&app).await;

    assert_eq!(app.take_jobs().len(), 1);
}

#[tokio::test]
async fn a_test_that_says_it_leaves_jobs_passes() {
    let app = TestApp::new().await;
    publish_one(&app).await;

    app.leave_jobs();
}

#[tokio::test]
async fn seeds_write_valid_ids_and_a_conversation_as_the_worker_stores_it() {
    let app = TestApp::new().await;
    let seed = app.db.seed();
    let user = seed.tenant("acme").await;
    seed.credits(&user, 5).await;
    let channel = seed
        .channel(&user, ChannelSeed::whatsapp("106540352242922"))
        .await;
    let agent = seed.agent(&user, &channel, "pmpt_sales", "Ava").await;
    let conversation = seed
        .conversation(
            &user,
            &channel,
            &agent.agent_id,
            ConversationSeed::from_customer("16505551234"),
        )
        .await;
    seed.sent_message(&user, &conversation, "+16505551234", "Hi!", "wamid.SENT")
        .await;

    assert!(PhoneNumberId::parse(channel.id.as_str()).is_some());
    assert!(ConversationId::parse(conversation.as_str()).is_some());
    assert_eq!(channel.platform, Platform::WhatsApp);
    assert!(channel.has_access_token);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM credits WHERE user_id = 'acme' AND remaining_credits = 5",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM messages WHERE conversation_id = $1",
            &[&conversation.as_str()]
        )
        .await,
        2,
        "the customer's message and the sent reply"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM message_delivery_status WHERE platform_message_id = 'wamid.SENT' AND status = 'pending'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_messages WHERE state = 'done'",
            &[]
        )
        .await,
        1,
        "the seed's inbox row is finished, so no worker picks it up"
    );
}
