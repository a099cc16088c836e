//! Contact auto-sync and the domain-event outbox against a real PostgreSQL.

use shared::{
    db::{
        contacts::{self, ExtractedContact},
        events::{self, DomainEvent},
    },
    domain::{
        ContactCompany, ContactId, ContactName, ConversationId, CustomerIdentity, Email,
        LeadStatus, Platform, Tag, UserId,
    },
    events::{EventJob, EventQueue, SweepConfig},
    jobs::LocalQueue,
};
use testkit::TestDb;
use uuid::Uuid;

struct Seed {
    db: TestDb,
    user: UserId,
}

impl Seed {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let user = UserId::parse(&format!("t-{}", ulid::Ulid::new())).expect("user id");
        db.client()
            .await
            .execute(
                "INSERT INTO users (user_id, email) VALUES ($1, $2)",
                &[&user.as_str(), &format!("{user}@example.test")],
            )
            .await
            .expect("user");
        Self { db, user }
    }

    /// A channel of `platform`, an agent and a conversation with `customer` holding
    /// `inbound` customer messages; returns the conversation.
    async fn conversation(
        &self,
        platform: Platform,
        customer: &str,
        inbound: i32,
    ) -> ConversationId {
        let client = self.db.client().await;
        let channel = shared::domain::PhoneNumberId::generate().to_string();
        let agent = shared::domain::AgentId::generate().to_string();
        let conversation = ConversationId::generate();
        let meta_id = format!("{}", rand_digits());
        client
            .execute(
                "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token, waba_id, instagram_api)
                 VALUES ($1, $2, $3::text, $4, CASE WHEN $3::text <> 'webchat' THEN 'sealed' END,
                         CASE WHEN $3::text = 'whatsapp' THEN '1' END,
                         CASE WHEN $3::text = 'instagram' THEN 'instagram_login' END)",
                &[&channel, &self.user.as_str(), &platform.as_str(), &meta_id],
            )
            .await
            .expect("channel");
        client
            .execute(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name) VALUES ($1, $2, $3, 'pmpt_a', 'Ava')",
                &[&agent, &self.user.as_str(), &channel],
            )
            .await
            .expect("agent");
        client
            .execute(
                "INSERT INTO conversations (conversation_id, agent_id, customer_phone) VALUES ($1, $2, $3)",
                &[&conversation.as_str(), &agent, &customer],
            )
            .await
            .expect("conversation");
        for n in 1..=inbound {
            client
                .execute(
                    "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no, author)
                     VALUES ($1, $2, 'user', 'hi', 'sent', $3, 'customer')",
                    &[&format!("m-{}-{n}", conversation), &conversation.as_str(), &n],
                )
                .await
                .expect("message");
        }
        conversation
    }

    async fn extraction(&self, conversation: &ConversationId, customer: &str) -> Uuid {
        self.db
            .client()
            .await
            .query_one(
                // V10: one extraction per message count of a conversation.
                "INSERT INTO extractions (conversation_id, user_id, customer_phone, is_latest, message_count_at_extraction)
                 VALUES ($1::text, $2, $3, false,
                         (SELECT COALESCE(max(message_count_at_extraction), 0) + 1 FROM extractions WHERE conversation_id = $1::text))
                 RETURNING extraction_id",
                &[&conversation.as_str(), &self.user.as_str(), &customer],
            )
            .await
            .expect("extraction")
            .get(0)
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql, &[]).await
    }
}

fn rand_digits() -> u128 {
    ulid::Ulid::new().random() % 1_000_000_000_000
}

fn extracted(name: &str, email: &str, company: &str) -> ExtractedContact {
    ExtractedContact {
        name: ContactName::parse(name).ok(),
        email: Email::parse(email).ok(),
        company: ContactCompany::parse(company).ok(),
    }
}

#[tokio::test]
async fn an_extraction_creates_the_contact_with_source_extraction_its_links_and_inbound_count() {
    let seed = Seed::new().await;
    let conversation = seed
        .conversation(Platform::WhatsApp, "+16505551234", 3)
        .await;
    let extraction = seed.extraction(&conversation, "+16505551234").await;
    let customer = CustomerIdentity::of_conversation(Platform::WhatsApp, "+16505551234");

    let mut client = seed.db.client().await;
    let tx = client.transaction().await.expect("tx");
    let id = contacts::sync_from_extraction(
        &tx,
        &seed.user,
        &customer,
        &extracted("Sheena", "sheena@example.com", "Acme"),
        extraction,
        &conversation,
    )
    .await
    .expect("sync");
    tx.commit().await.expect("commit");

    let row = client
        .query_one(
            "SELECT phone, name, email, company, source, extraction_id, conversation_id, total_messages_received
             FROM contacts WHERE contact_id = $1",
            &[&id.as_str()],
        )
        .await
        .expect("contact");
    assert_eq!(
        row.get::<_, Option<String>>("phone").as_deref(),
        Some("+16505551234")
    );
    assert_eq!(
        row.get::<_, Option<String>>("name").as_deref(),
        Some("Sheena")
    );
    assert_eq!(
        row.get::<_, Option<String>>("email").as_deref(),
        Some("sheena@example.com")
    );
    assert_eq!(
        row.get::<_, Option<String>>("company").as_deref(),
        Some("Acme")
    );
    assert_eq!(row.get::<_, String>("source"), "EXTRACTION");
    assert_eq!(
        row.get::<_, Option<Uuid>>("extraction_id"),
        Some(extraction)
    );
    assert_eq!(
        row.get::<_, Option<String>>("conversation_id").as_deref(),
        Some(conversation.as_str())
    );
    assert_eq!(row.get::<_, i32>("total_messages_received"), 3);
}

#[tokio::test]
async fn auto_sync_never_overwrites_what_a_person_entered_and_only_fills_empty_fields() {
    let seed = Seed::new().await;
    let conversation = seed
        .conversation(Platform::WhatsApp, "+16505551234", 1)
        .await;
    let client = seed.db.client().await;
    client
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone, name, company, source, tags)
             VALUES ($1, $2, '+16505551234', 'Sheena Person', NULL, 'MANUAL', '{vip}')",
            &[&ContactId::generate().as_str(), &seed.user.as_str()],
        )
        .await
        .expect("manual contact");
    let customer = CustomerIdentity::of_conversation(Platform::WhatsApp, "+16505551234");

    for (n, name) in ["Model Guess", "Another Guess"].iter().enumerate() {
        let extraction = seed.extraction(&conversation, "+16505551234").await;
        contacts::sync_from_extraction(
            &client,
            &seed.user,
            &customer,
            &extracted(name, &format!("guess{n}@example.com"), "Model Co"),
            extraction,
            &conversation,
        )
        .await
        .expect("sync");
    }

    let row = client
        .query_one(
            "SELECT name, email, company, source, tags FROM contacts WHERE user_id = $1",
            &[&seed.user.as_str()],
        )
        .await
        .expect("one contact");
    assert_eq!(
        row.get::<_, Option<String>>("name").as_deref(),
        Some("Sheena Person")
    );
    assert_eq!(
        row.get::<_, Option<String>>("email").as_deref(),
        Some("guess0@example.com"),
        "the first extraction fills the empty email; the second does not replace it"
    );
    assert_eq!(
        row.get::<_, Option<String>>("company").as_deref(),
        Some("Model Co")
    );
    assert_eq!(row.get::<_, String>("source"), "MANUAL");
    assert_eq!(row.get::<_, Vec<String>>("tags"), vec!["vip".to_owned()]);
    assert_eq!(seed.count("SELECT count(*) FROM contacts").await, 1);
}

#[tokio::test]
async fn customers_without_a_phone_get_one_contact_keyed_by_their_channel_identity() {
    let seed = Seed::new().await;
    let igsid = "1".repeat(17);
    let bsuid = format!("+US.{}", "7".repeat(200));
    for (platform, key) in [
        (Platform::Instagram, igsid.as_str()),
        (Platform::Webchat, "vis_01jd5m3k7q8r9s0t1v2w3x4y5z"),
        (Platform::WhatsApp, bsuid.as_str()),
    ] {
        let conversation = seed.conversation(platform, key, 2).await;
        let customer = CustomerIdentity::of_conversation(platform, key);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let extraction = seed.extraction(&conversation, key).await;
            ids.push(
                contacts::sync_from_extraction(
                    &seed.db.client().await,
                    &seed.user,
                    &customer,
                    &extracted("Ana", "ana@example.com", "Acme"),
                    extraction,
                    &conversation,
                )
                .await
                .unwrap_or_else(|e| panic!("{platform}: {e}")),
            );
        }
        assert_eq!(ids[0], ids[1], "{platform}: the same contact twice");
        let row = seed
            .db
            .client()
            .await
            .query_one(
                "SELECT phone, platform, customer_id, total_messages_received FROM contacts WHERE contact_id = $1",
                &[&ids[0].as_str()],
            )
            .await
            .expect("contact");
        assert_eq!(row.get::<_, Option<String>>("phone"), None, "{platform}");
        assert_eq!(
            row.get::<_, Option<String>>("platform").as_deref(),
            Some(platform.as_str())
        );
        assert_eq!(
            row.get::<_, Option<String>>("customer_id").as_deref(),
            Some(key)
        );
        assert_eq!(row.get::<_, i32>("total_messages_received"), 2);
    }
    assert_eq!(seed.count("SELECT count(*) FROM contacts").await, 3);
}

#[tokio::test]
async fn stop_from_a_whatsapp_username_without_a_phone_opts_the_channel_identity_out() {
    let seed = Seed::new().await;
    let bsuid = "+US.13491208655302741918";
    let conversation = seed.conversation(Platform::WhatsApp, bsuid, 1).await;
    let customer = CustomerIdentity::of_conversation(Platform::WhatsApp, bsuid);
    let client = seed.db.client().await;

    contacts::set_opt_out_for_customer(
        &client,
        &seed.user,
        &customer,
        Some("Ana"),
        true,
        &conversation,
    )
    .await
    .expect("opt out");
    assert!(
        contacts::is_opted_out(&client, &seed.user, &customer)
            .await
            .expect("read")
    );
    let first_at: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT opted_out_at FROM contacts", &[])
        .await
        .expect("row")
        .get(0);
    // A second STOP keeps the time the customer first opted out.
    contacts::set_opt_out_for_customer(&client, &seed.user, &customer, None, true, &conversation)
        .await
        .expect("again");
    let again_at: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT opted_out_at FROM contacts", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(first_at, again_at);

    contacts::set_opt_out_for_customer(&client, &seed.user, &customer, None, false, &conversation)
        .await
        .expect("opt in");
    assert!(
        !contacts::is_opted_out(&client, &seed.user, &customer)
            .await
            .expect("read")
    );
    assert_eq!(
        seed.count("SELECT count(*) FROM contacts WHERE opted_out_at IS NULL AND phone IS NULL AND name = 'Ana'")
            .await,
        1
    );
}

#[tokio::test]
async fn lead_hot_fires_once_when_a_lead_goes_warm_hot_hot() {
    let conversation = ConversationId::generate();
    let extraction = Uuid::new_v4();
    let kinds: Vec<_> = [
        (None, LeadStatus::Warm),
        (Some(LeadStatus::Warm), LeadStatus::Hot),
        (Some(LeadStatus::Hot), LeadStatus::Hot),
        (Some(LeadStatus::Hot), LeadStatus::Cold),
    ]
    .into_iter()
    .map(|(previous, current)| {
        DomainEvent::lead_status_entered(
            previous,
            current,
            extraction,
            &conversation,
            None,
            Some(12),
        )
        .map(|event| event.event_type.as_str())
    })
    .collect();
    assert_eq!(kinds, vec![Some("LEAD_WARM"), Some("LEAD_HOT"), None, None]);
}

#[tokio::test]
async fn an_event_with_the_same_dedup_key_is_recorded_once_and_listed_newest_first_per_tenant() {
    let seed = Seed::new().await;
    let other = Seed::new().await;
    let conversation = seed
        .conversation(Platform::WhatsApp, "+16505551234", 1)
        .await;
    let extraction = seed.extraction(&conversation, "+16505551234").await;
    let client = seed.db.client().await;
    let event = DomainEvent::new_extraction(
        extraction,
        &conversation,
        None,
        Some(LeadStatus::Hot),
        Some(13),
    );

    let first = events::record(&client, &seed.user, &event)
        .await
        .expect("record");
    let again = events::record(&client, &seed.user, &event)
        .await
        .expect("record again");
    assert!(first.is_some());
    assert_eq!(
        again, None,
        "the same extraction reported twice is one event"
    );
    let contact = contacts::sync_from_extraction(
        &client,
        &seed.user,
        &CustomerIdentity::of_conversation(Platform::WhatsApp, "+16505551234"),
        &ExtractedContact::default(),
        extraction,
        &conversation,
    )
    .await
    .expect("contact");
    let tag = Tag::parse("vip").expect("tag");
    events::record(&client, &seed.user, &DomainEvent::tag_added(&contact, &tag))
        .await
        .expect("tag");

    let page = shared::db::PageRequest {
        before: None,
        fetch: 10,
    };
    let listed = events::list(&client, &seed.user, &events::EventFilter::default(), &page)
        .await
        .expect("list");
    let kinds: Vec<_> = listed.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, vec!["TAG_ADDED", "NEW_EXTRACTION"]);
    assert_eq!(listed[0].payload["tag"], "vip");
    assert_eq!(listed[1].payload["lead_status_tag"], "Hot");
    // The other tenant sees none of them (its own database here, the same query).
    let theirs = events::list(&client, &other.user, &events::EventFilter::default(), &page)
        .await
        .expect("list");
    assert!(theirs.is_empty());
}

#[tokio::test]
async fn the_sweep_publishes_each_event_once_and_resumes_after_a_queue_failure() {
    let seed = Seed::new().await;
    let client = seed.db.client().await;
    let contact = ContactId::generate();
    client
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone) VALUES ($1, $2, '+16505551234')",
            &[&contact.as_str(), &seed.user.as_str()],
        )
        .await
        .expect("contact");
    for tag in ["a", "b", "c"] {
        let tag = Tag::parse(tag).expect("tag");
        events::record(&client, &seed.user, &DomainEvent::tag_added(&contact, &tag))
            .await
            .expect("record");
    }
    let local = LocalQueue::<EventJob>::new();
    let queue = EventQueue::Local(local.clone());
    let config = SweepConfig {
        batch: 2,
        ..SweepConfig::default()
    };

    local.fail_next(1);
    let first = shared::events::publish_pending(&seed.db.pool, &queue, config.batch).await;
    assert!(first.is_err(), "the queue failure is reported");
    let report = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");
    let again = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");

    assert_eq!(
        local.published_count(),
        3,
        "every event published exactly once"
    );
    assert_eq!(report.published + again.published, 3);
    assert_eq!(again.published, 0);
    assert_eq!(
        seed.count("SELECT count(*) FROM domain_events WHERE published_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_quiet_conversation_ends_once_per_quiet_period() {
    let seed = Seed::new().await;
    let conversation = seed
        .conversation(Platform::WhatsApp, "+16505551234", 1)
        .await;
    let client = seed.db.client().await;
    client
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone) VALUES ($1, $2, '+16505551234')",
            &[&ContactId::generate().as_str(), &seed.user.as_str()],
        )
        .await
        .expect("contact");
    let set_last_message = |minutes_ago: i32| {
        let client = &client;
        let conversation = conversation.clone();
        async move {
            client
                .execute(
                    "UPDATE conversations SET last_message_at = now() - make_interval(mins => $2) WHERE conversation_id = $1",
                    &[&conversation.as_str(), &minutes_ago],
                )
                .await
                .expect("update");
        }
    };
    let queue = EventQueue::Local(LocalQueue::new());
    let config = SweepConfig::default();

    set_last_message(5).await;
    let early = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");
    set_last_message(45).await;
    let ended = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");
    let still = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");
    // The customer writes again and goes quiet again: a new quiet period.
    set_last_message(40).await;
    let again = shared::events::sweep(&seed.db.pool, &queue, config)
        .await
        .expect("sweep");

    assert_eq!(
        [early, ended, still, again].map(|r| r.conversations_ended),
        [0, 1, 0, 1]
    );
    assert_eq!(
        seed.count(
            "SELECT count(*) FROM domain_events WHERE event_type = 'CONVERSATION_ENDED' AND contact_id IS NOT NULL"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn the_sweep_publishes_to_a_real_fifo_queue_and_a_republished_event_is_dropped() {
    let seed = Seed::new().await;
    let client = seed.db.client().await;
    let contact = ContactId::generate();
    client
        .execute(
            "INSERT INTO contacts (contact_id, user_id, phone) VALUES ($1, $2, '+16505551234')",
            &[&contact.as_str(), &seed.user.as_str()],
        )
        .await
        .expect("contact");
    let tag = Tag::parse("vip").expect("tag");
    events::record(&client, &seed.user, &DomainEvent::tag_added(&contact, &tag))
        .await
        .expect("record");
    let sqs = testkit::moto_sqs_client();
    let url = testkit::create_fifo_queue(&sqs, "events").await;
    let queue = EventQueue::Sqs(shared::jobs::SqsQueue::new(sqs.clone(), &url));

    let report = shared::events::sweep(&seed.db.pool, &queue, SweepConfig::default())
        .await
        .expect("sweep");
    // A crash after the publish and before the commit would publish it again: simulated
    // by clearing `published_at` and sweeping again.
    client
        .execute("UPDATE domain_events SET published_at = NULL", &[])
        .await
        .expect("forget");
    shared::events::sweep(&seed.db.pool, &queue, SweepConfig::default())
        .await
        .expect("sweep again");

    assert_eq!(report.published, 1);
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(
        messages.len(),
        1,
        "deduplicated on the event id: {messages:?}"
    );
    let job: EventJob =
        serde_json::from_str(messages[0].body().unwrap_or_default()).expect("an event job");
    let EventJob::V1 {
        event_type,
        contact_id,
        payload,
        ..
    } = job;
    assert_eq!(event_type.as_str(), "TAG_ADDED");
    assert_eq!(contact_id.as_deref(), Some(contact.as_str()));
    assert_eq!(payload["tag"], "vip");
}
