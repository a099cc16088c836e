//! The database layer's own guarantees, on a real PostgreSQL: every UPDATE and DELETE is
//! filtered by the tenant (another tenant's id changes nothing, and the same call with the
//! owner's id does change the row, so the filter is not simply broken), and the delivery
//! order in Rust is the one the SQL function applies.

use chrono::Utc;
use serde_json::json;
use shared::{
    db::{
        PooledClient, agents, conversations as convo, credits, delivery,
        inbound::{self, ChannelRoute},
        phone_numbers, users,
    },
    domain::{
        AgentId, AgentName, ConversationId, ConversationOwner, DeliveryStatus, DeliveryStep,
        InboundMessage, InboundOutcome, MessageAuthor, MessageId, MetaChannelId, Platform,
        PromptId, RecipientStatus, ReplyBlockedReason, SendFailure, StatusUpdate,
        TemplateSendStatus, UserId, WabaId,
    },
};
use testkit::TestDb;

async fn tenant(db: &TestDb, label: &str) -> UserId {
    let sub = format!("{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let user = UserId::parse(&sub).expect("a subject");
    users::provision(&db.client().await, &user, &format!("{sub}@example.test"))
        .await
        .expect("provisioned");
    user
}

/// A tenant's WhatsApp channel with an agent, and one customer message stored in a
/// conversation, as the webhook and the worker store them.
struct Seeded {
    user: UserId,
    route: ChannelRoute,
    agent_id: AgentId,
    conversation_id: ConversationId,
    inbound_id: String,
}

async fn seed(db: &TestDb, label: &str, meta_id: &str) -> Seeded {
    let user = tenant(db, label).await;
    let mut client = db.client().await;
    let channel = phone_numbers::insert(
        &client,
        &user,
        &phone_numbers::NewChannel {
            platform: Platform::WhatsApp,
            meta_phone_number_id: MetaChannelId::parse(Platform::WhatsApp, meta_id).expect("an id"),
            sealed_access_token: Some("sealed".to_owned()),
            display_name: None,
            waba_id: Some(WabaId::parse("1").expect("a WABA")),
            instagram_api: None,
            webchat: None,
        },
    )
    .await
    .expect("channel");
    let tx = client.transaction().await.expect("tx");
    let linked = agents::link(
        &tx,
        &user,
        &agents::NewAgent {
            phone_number_id: channel.id.clone(),
            prompt_id: PromptId::parse("pmpt_a").expect("a prompt"),
            name: AgentName::parse("Ava").expect("a name"),
        },
        false,
    )
    .await
    .expect("agent");
    tx.commit().await.expect("commit");
    let agents::LinkOutcome::Linked { agent, .. } = linked else {
        panic!("linked: {linked:?}");
    };
    let route = ChannelRoute {
        phone_number_id: channel.id.clone(),
        user_id: user.clone(),
        platform: Platform::WhatsApp,
    };
    let inbound_id = format!("wamid.{}", ulid::Ulid::new());
    inbound::record(
        &client,
        &route,
        &InboundMessage {
            platform: Platform::WhatsApp,
            channel_key: meta_id.to_owned(),
            platform_message_id: inbound_id.clone(),
            customer_id: "16505551234".to_owned(),
            customer_name: Some("Sheena".to_owned()),
            sent_at: Utc::now(),
            message_type: "text".to_owned(),
            text: "Hello?".to_owned(),
            metadata: json!({}),
        },
    )
    .await
    .expect("inbox row");
    let tx = client.transaction().await.expect("tx");
    let stored = convo::store_inbound(
        &tx,
        convo::Customer {
            user: &user,
            agent_id: &agent.agent_id,
            phone_number_id: &channel.id,
            platform: Platform::WhatsApp,
            customer_id: "16505551234",
        },
    )
    .await
    .expect("stored");
    tx.commit().await.expect("commit");
    Seeded {
        user,
        route,
        agent_id: agent.agent_id,
        conversation_id: stored.conversation.conversation_id,
        inbound_id,
    }
}

async fn pending_reply(client: &mut PooledClient, seeded: &Seeded) -> MessageId {
    let tx = client.transaction().await.expect("tx");
    let id = convo::insert_agent_message(
        &tx,
        &seeded.user,
        &seeded.conversation_id,
        "Hi!",
        MessageAuthor::Ai,
        Some(&seeded.inbound_id),
    )
    .await
    .expect("insert")
    .expect("the tenant's conversation");
    tx.commit().await.expect("commit");
    id
}

/// The conversation's owner, reason, blocked reason, OpenAI id and message count.
async fn conversation_row(
    db: &TestDb,
    id: &ConversationId,
) -> (String, Option<String>, Option<String>, Option<String>, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT owner, handoff_reason, reply_blocked_reason, openai_conversation_id,
                    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.conversation_id)
             FROM conversations c WHERE conversation_id = $1",
            &[&id.as_str()],
        )
        .await
        .expect("conversation");
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// A message's status, error code, failure class and whether it has a delivery-status row.
async fn message_row(
    db: &TestDb,
    id: &MessageId,
) -> (String, Option<String>, Option<String>, bool) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error_code, send_failure,
                    EXISTS (SELECT 1 FROM message_delivery_status d WHERE d.message_id = m.message_id)
             FROM messages m WHERE message_id = $1",
            &[&id.as_str()],
        )
        .await
        .expect("message");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn another_tenants_id_changes_nothing_in_a_conversation_or_its_messages() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let intruder = seed(&db, "intruder", "2002").await;
    let mut client = db.client().await;
    let reply = pending_reply(&mut client, &owner).await;
    let conversation = &owner.conversation_id;
    let before = conversation_row(&db, conversation).await;
    let other = &intruder.user;

    let owned = convo::set_owner(&client, other, conversation, ConversationOwner::Human, None)
        .await
        .expect("set_owner");
    convo::block_replies(
        &client,
        other,
        conversation,
        Some(ReplyBlockedReason::NoCredits),
    )
    .await
    .expect("block_replies");
    convo::set_openai_conversation(&client, other, conversation, "conv_openai_intruder")
        .await
        .expect("set_openai_conversation");
    let tx = client.transaction().await.expect("tx");
    let inserted = convo::insert_agent_message(
        &tx,
        other,
        conversation,
        "pwned",
        MessageAuthor::Human,
        None,
    )
    .await
    .expect("insert");
    let locked = convo::lock_outgoing_many(&tx, &[(&reply, other)])
        .await
        .expect("lock")
        .pop();
    mark_sent(&tx, other, &reply, "wamid.INTRUDER")
        .await
        .expect("mark_sent");
    convo::mark_send_failure(
        &tx,
        other,
        &reply,
        SendFailure::Permanent,
        Some("131026".to_owned()),
        "no",
    )
    .await
    .expect("mark_send_failure");
    tx.commit().await.expect("commit");

    assert!(
        !owned,
        "set_owner says the conversation is not the intruder's"
    );
    assert!(inserted.is_none() && locked.is_none());
    assert_eq!(conversation_row(&db, conversation).await, before);
    assert_eq!(
        message_row(&db, &reply).await,
        ("pending".to_owned(), None, None, false)
    );

    // The same calls with the owner's id do change the rows.
    let owned = convo::set_owner(
        &client,
        &owner.user,
        conversation,
        ConversationOwner::Human,
        Some("me"),
    )
    .await
    .expect("set_owner");
    convo::block_replies(
        &client,
        &owner.user,
        conversation,
        Some(ReplyBlockedReason::NoCredits),
    )
    .await
    .expect("block_replies");
    convo::set_openai_conversation(&client, &owner.user, conversation, "conv_openai")
        .await
        .expect("set_openai_conversation");
    let tx = client.transaction().await.expect("tx");
    let locked = convo::lock_outgoing_many(&tx, &[(&reply, &owner.user)])
        .await
        .expect("lock")
        .pop();
    mark_sent(&tx, &owner.user, &reply, "wamid.OWNER")
        .await
        .expect("mark_sent");
    tx.commit().await.expect("commit");
    assert!(owned && locked.is_some());
    assert_eq!(
        conversation_row(&db, conversation).await,
        (
            "human".to_owned(),
            Some("me".to_owned()),
            Some("no_credits".to_owned()),
            Some("conv_openai".to_owned()),
            2
        )
    );
    assert_eq!(
        message_row(&db, &reply).await,
        ("sent".to_owned(), None, None, true)
    );
}

async fn balance(db: &TestDb, user: &UserId) -> i64 {
    db.count(
        "SELECT remaining_credits::bigint FROM credits WHERE user_id = $1",
        &[&user.as_str()],
    )
    .await
}

#[tokio::test]
async fn another_tenants_id_changes_nothing_in_the_inbox_or_the_balances() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let intruder = seed(&db, "intruder", "2002").await;
    let mut client = db.client().await;
    for user in [&owner.user, &intruder.user] {
        client
            .execute(
                "UPDATE credits SET remaining_credits = 5 WHERE user_id = $1",
                &[&user.as_str()],
            )
            .await
            .expect("credits");
    }
    let id = owner.inbound_id.as_str();
    let other = &intruder.user;
    // The intruder's user with the owner's channel: what a forged route would carry.
    let forged_route = ChannelRoute {
        user_id: other.clone(),
        ..owner.route.clone()
    };

    inbound::mark_enqueued(&client, &forged_route, id)
        .await
        .expect("mark_enqueued");
    inbound::finish(&client, other, id, InboundOutcome::Replied)
        .await
        .expect("finish");
    inbound::finish_failed(&client, other, id, InboundOutcome::AiFailed, "no")
        .await
        .expect("finish_failed");
    let tx = client.transaction().await.expect("tx");
    let taken = credits::take_credit(&tx, other, id).await.expect("take");
    tx.commit().await.expect("commit");
    let tx = client.transaction().await.expect("tx");
    assert!(
        credits::take_credit(&tx, &owner.user, id)
            .await
            .expect("take")
    );
    tx.commit().await.expect("commit");
    let tx = client.transaction().await.expect("tx");
    let refunded = credits::refund_credit(&tx, other, id)
        .await
        .expect("refund");
    tx.commit().await.expect("commit");

    assert!(!taken && !refunded);
    let row = client
        .query_one(
            "SELECT state, outcome, failure_reason, credit_taken_at IS NOT NULL, credit_refunded_at IS NULL
             FROM inbound_messages WHERE platform_message_id = $1",
            &[&id],
        )
        .await
        .expect("inbox row");
    assert_eq!(
        row.get::<_, String>(0),
        "received",
        "not enqueued, not done"
    );
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert!(row.get::<_, bool>(3), "the owner's credit was taken");
    assert!(row.get::<_, bool>(4), "and not refunded by the intruder");
    assert_eq!(
        balance(&db, &owner.user).await,
        4,
        "one credit, for the owner's reply"
    );
    assert_eq!(balance(&db, other).await, 5, "the intruder paid nothing");

    // The owner's calls do move the row.
    inbound::mark_enqueued(&client, &owner.route, id)
        .await
        .expect("mark_enqueued");
    inbound::finish(&client, &owner.user, id, InboundOutcome::Replied)
        .await
        .expect("finish");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM inbound_messages WHERE platform_message_id = $1 AND state = 'done' AND outcome = 'replied'",
            &[&id],
        )
        .await,
        1
    );
}

#[tokio::test]
async fn another_tenants_id_deletes_and_stores_nothing() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let intruder = seed(&db, "intruder", "2002").await;
    let mut client = db.client().await;
    let other = &intruder.user;

    let tx = client.transaction().await.expect("tx");
    let agent = agents::delete(&tx, other, &owner.agent_id)
        .await
        .expect("delete agent");
    let channel = phone_numbers::delete(&tx, other, &owner.route.phone_number_id)
        .await
        .expect("delete channel");
    tx.commit().await.expect("commit");
    let tx = client.transaction().await.expect("tx");
    let stored = convo::store_inbound(
        &tx,
        convo::Customer {
            user: other,
            agent_id: &owner.agent_id,
            phone_number_id: &owner.route.phone_number_id,
            platform: Platform::WhatsApp,
            customer_id: "16505559999",
        },
    )
    .await;
    drop(tx);

    assert_eq!(agent, agents::DeleteOutcome::NotFound);
    assert_eq!(channel, phone_numbers::DeleteOutcome::NotFound);
    assert!(
        stored
            .as_ref()
            .is_err_and(shared::db::DbError::is_data_error),
        "another tenant's agent is refused as data: {stored:?}"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM conversations WHERE customer_phone = '+16505559999'",
            &[]
        )
        .await,
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM agents WHERE agent_id = $1",
            &[&owner.agent_id.as_str()]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_status_reported_through_another_tenants_route_moves_nothing() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let intruder = seed(&db, "intruder", "2002").await;
    let mut client = db.client().await;
    let reply = pending_reply(&mut client, &owner).await;
    let tx = client.transaction().await.expect("tx");
    mark_sent(&tx, &owner.user, &reply, "wamid.OUT")
        .await
        .expect("sent");
    tx.commit().await.expect("commit");
    let update = StatusUpdate {
        channel_key: "1001".to_owned(),
        platform_message_id: "wamid.OUT".to_owned(),
        status: DeliveryStatus::Failed,
        timestamp: Utc::now(),
        recipient_id: None,
        errors: Vec::new(),
    };
    let forged_route = ChannelRoute {
        user_id: intruder.user.clone(),
        ..owner.route.clone()
    };

    let tx = client.transaction().await.expect("tx");
    let forged = delivery::apply(&tx, &forged_route, &update)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    assert_eq!(forged, delivery::StatusOutcome::default());
    assert_eq!(
        message_row(&db, &reply).await,
        ("sent".to_owned(), None, None, true)
    );

    let tx = client.transaction().await.expect("tx");
    let applied = delivery::apply(&tx, &owner.route, &update)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    assert!(applied.message_updated);
    assert_eq!(message_row(&db, &reply).await.0, "failed");
}

/// The delivery status `message_delivery_status` holds for a message.
async fn delivery_status(db: &TestDb, id: &MessageId) -> String {
    db.client()
        .await
        .query_one(
            "SELECT status FROM message_delivery_status WHERE message_id = $1",
            &[&id.as_str()],
        )
        .await
        .expect("delivery status")
        .get(0)
}

#[tokio::test]
async fn a_status_that_arrives_before_its_send_is_recorded_waits_for_it() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let intruder = seed(&db, "intruder", "2002").await;
    let mut client = db.client().await;
    let status = |wamid: &str, status| StatusUpdate {
        channel_key: "1001".to_owned(),
        platform_message_id: wamid.to_owned(),
        status,
        timestamp: Utc::now(),
        recipient_id: None,
        errors: Vec::new(),
    };

    // Meta reports delivered, then read, while the send's transaction is still open; and
    // another tenant's route reports a failure for the same id.
    let early = pending_reply(&mut client, &owner).await;
    for update in [
        status("wamid.EARLY", DeliveryStatus::Delivered),
        status("wamid.EARLY", DeliveryStatus::Read),
    ] {
        let outcome = delivery::apply(&client, &owner.route, &update)
            .await
            .expect("apply");
        assert!(outcome.parked && !outcome.message_updated, "{outcome:?}");
    }
    let forged_route = ChannelRoute {
        user_id: intruder.user.clone(),
        phone_number_id: intruder.route.phone_number_id.clone(),
        ..owner.route.clone()
    };
    delivery::apply(
        &client,
        &forged_route,
        &status("wamid.EARLY", DeliveryStatus::Failed),
    )
    .await
    .expect("apply");
    let tx = client.transaction().await.expect("tx");
    mark_sent(&tx, &owner.user, &early, "wamid.EARLY")
        .await
        .expect("sent");
    tx.commit().await.expect("commit");

    // The send's commit applies what waited, in the order it happened, the tenant's only.
    let applied = delivery::apply_parked(&mut client, &["wamid.EARLY"])
        .await
        .expect("apply parked");
    assert_eq!(applied, 3);
    assert_eq!(delivery_status(&db, &early).await, "read");
    assert_eq!(
        message_row(&db, &early).await.0,
        "sent",
        "not the intruder's failure"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM parked_statuses", &[]).await,
        0
    );

    // A duplicate of a known id is not parked.
    let again = delivery::apply(
        &client,
        &owner.route,
        &status("wamid.EARLY", DeliveryStatus::Delivered),
    )
    .await
    .expect("apply");
    assert_eq!(again, delivery::StatusOutcome::default());

    // Parked while the send committed (the send's own pass missed it): the sweep applies
    // it. Parked for a wamid nobody sent: the sweep forgets it after a day.
    let raced = pending_reply(&mut client, &owner).await;
    delivery::apply(
        &client,
        &owner.route,
        &status("wamid.RACED", DeliveryStatus::Delivered),
    )
    .await
    .expect("apply");
    let tx = client.transaction().await.expect("tx");
    mark_sent(&tx, &owner.user, &raced, "wamid.RACED")
        .await
        .expect("sent");
    tx.commit().await.expect("commit");
    for (wamid, hours) in [("wamid.NEVER", 25), ("wamid.NOT_YET", 1)] {
        delivery::apply(&client, &owner.route, &status(wamid, DeliveryStatus::Sent))
            .await
            .expect("apply");
        client
            .execute(
                "UPDATE parked_statuses SET parked_at = now() - make_interval(hours => $2)
                 WHERE platform_message_id = $1",
                &[&wamid, &hours],
            )
            .await
            .expect("age");
    }
    let (applied, forgotten) = delivery::sweep_parked(&mut client, 100)
        .await
        .expect("sweep");
    assert_eq!((applied, forgotten), (1, 1));
    assert_eq!(delivery_status(&db, &raced).await, "delivered");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM parked_statuses WHERE platform_message_id = 'wamid.NOT_YET'",
            &[]
        )
        .await,
        1,
        "still waiting for its send"
    );
}

#[tokio::test]
async fn the_rust_delivery_order_and_the_sql_function_agree_on_every_pair_of_statuses() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut statuses: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
    statuses.extend(TemplateSendStatus::ALL.iter().map(|s| s.as_str()));
    statuses.extend(RecipientStatus::ALL.iter().map(|s| s.as_str()));
    let mut compared = 0;
    for current in &statuses {
        for next in &statuses {
            let sql: bool = client
                .query_one(
                    "SELECT COALESCE(delivery_status_advances($1, $2), false)",
                    &[current, next],
                )
                .await
                .and_then(|row| row.try_get(0))
                .expect("delivery_status_advances");
            let rust = DeliveryStep::of(next)
                .is_some_and(|next| DeliveryStep::advances(DeliveryStep::of(current), next));
            assert_eq!(rust, sql, "{current} → {next}");
            compared += 1;
        }
    }
    assert_eq!(compared, statuses.len() * statuses.len());
    assert!(statuses.contains(&"QUEUED") && statuses.contains(&"SKIPPED"));
}

#[test]
fn the_database_layer_imports_nothing_from_the_provider_clients() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect("src/db") {
        let path = entry.expect("an entry").path();
        let source = std::fs::read_to_string(&path).expect("a source file");
        for provider in ["meta::", "openai::"] {
            assert!(
                !source.contains(provider),
                "{} uses `{provider}`: provider payloads become domain types before the database layer",
                path.display()
            );
        }
        read += 1;
    }
    assert!(read >= 10, "read {read} files of {}", dir.display());
}

/// The customer every send in these tests goes to, as the contacts key it.
/// Records one message as sent to [`customer_phone`].
async fn mark_sent(
    tx: &shared::db::Transaction<'_>,
    user: &UserId,
    message: &MessageId,
    platform_message_id: &str,
) -> Result<(), shared::db::DbError> {
    let sent = convo::SentMessage {
        user,
        message_id: message,
        platform_message_id,
        customer: customer_phone(),
    };
    convo::mark_sent_many(tx, &[sent]).await
}

fn customer_phone() -> shared::domain::CustomerIdentity {
    shared::domain::CustomerIdentity::of_conversation(
        shared::domain::Platform::WhatsApp,
        "+16505551234",
    )
}

#[tokio::test]
async fn a_sent_message_whose_provider_id_another_message_holds_is_recorded_without_it() {
    let db = TestDb::new().await;
    let owner = seed(&db, "owner", "1001").await;
    let mut client = db.client().await;
    let first = pending_reply(&mut client, &owner).await;
    let second = pending_reply(&mut client, &owner).await;
    for reply in [&first, &second] {
        let tx = client.transaction().await.expect("tx");
        // The send happened: recording it must not fail (a retry would send again).
        mark_sent(&tx, &owner.user, reply, "wamid.SAME")
            .await
            .expect("recorded");
        tx.commit().await.expect("commit");
    }
    let row = |id: &MessageId| {
        let id = id.as_str().to_owned();
        let db = &db;
        async move {
            let row = db
                .client()
                .await
                .query_one(
                    "SELECT status, platform_message_id FROM messages WHERE message_id = $1",
                    &[&id],
                )
                .await
                .expect("row");
            (row.get::<_, String>(0), row.get::<_, Option<String>>(1))
        }
    };
    assert_eq!(
        row(&first).await,
        ("sent".to_owned(), Some("wamid.SAME".to_owned()))
    );
    assert_eq!(row(&second).await, ("sent".to_owned(), None));
}
