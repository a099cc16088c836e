//! The CSV import's statement (`db::contacts::import`) and the opt-out triggers it runs
//! through, against a real PostgreSQL.

use std::time::Duration;

use shared::{
    db::{
        PageRequest,
        contacts::{self, ImportCounts, ImportRow},
        events::{self, EventFilter, StoredEvent},
    },
    domain::{ContactId, PhoneE164, Tag, UserId},
    events::EventJob,
};
use testkit::TestDb;

fn row(phone: &str, tags: &[&str]) -> ImportRow {
    ImportRow {
        phone: PhoneE164::parse(phone).expect("phone"),
        name: None,
        email: None,
        company: None,
        tags: tags.iter().map(|t| Tag::parse(t).expect("tag")).collect(),
    }
}

/// Every `TAG_ADDED` of the tenant as `phone:tag`, sorted.
async fn tag_events(db: &TestDb, user: &UserId) -> Vec<String> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT c.phone || ':' || (e.payload->>'tag') FROM domain_events e
             CROSS JOIN LATERAL unnest(COALESCE(e.contact_ids, ARRAY[e.contact_id])) AS x(id)
             JOIN contacts c ON c.contact_id = x.id
             WHERE e.user_id = $1 AND e.event_type = 'TAG_ADDED' ORDER BY 1",
            &[&user.as_str()],
        )
        .await
        .expect("events");
    rows.iter().map(|r| r.get(0)).collect()
}

const A: &str = "+14155550001";
const B: &str = "+14155550002";
const C: &str = "+14155550003";

#[tokio::test]
async fn an_import_records_one_tag_added_per_contact_and_tag_it_gained_in_file_order() {
    let db = TestDb::new().await;
    let user = db.seed().tenant("importer").await;
    let mut client = db.client().await;

    let tx = client.transaction().await.expect("tx");
    let first = contacts::import(&tx, &user, &[row(A, &["x", "y"]), row(B, &[])])
        .await
        .expect("import");
    tx.commit().await.expect("commit");
    assert_eq!(
        first,
        ImportCounts {
            created: 2,
            updated: 0,
            unchanged: 0,
            tags_added: 2
        }
    );

    let tx = client.transaction().await.expect("tx");
    let second = contacts::import(
        &tx,
        &user,
        &[row(A, &["y", "z"]), row(B, &[]), row(C, &["x"])],
    )
    .await
    .expect("import");
    tx.commit().await.expect("commit");
    assert_eq!(
        second,
        ImportCounts {
            created: 1,
            updated: 1,
            unchanged: 1,
            tags_added: 2
        }
    );
    assert_eq!(
        tag_events(&db, &user).await,
        [
            format!("{A}:x"),
            format!("{A}:y"),
            format!("{A}:z"),
            format!("{C}:x")
        ]
    );
    // An import's TAG_ADDED: one per tag, listing the contacts that gained it (no single
    // contact, no conversation), `{"tag": …}`, ids in the order the tags first appear.
    let events = events::list(
        &client,
        &user,
        &EventFilter::default(),
        &PageRequest {
            before: None,
            fetch: 50,
        },
    )
    .await
    .expect("events");
    let shapes: Vec<(String, usize, bool)> = events
        .iter()
        .rev()
        .map(|e| {
            (
                e.payload["tag"].as_str().unwrap_or_default().to_owned(),
                e.contact_ids.len(),
                e.contact_id.is_none() && e.conversation_id.is_none(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("x".to_owned(), 1, true),
            ("y".to_owned(), 1, true),
            ("z".to_owned(), 1, true),
            ("x".to_owned(), 1, true)
        ]
    );
}

#[tokio::test]
async fn an_imports_tag_added_lists_at_most_200_contacts_in_file_order_and_is_found_by_each() {
    let db = TestDb::new().await;
    let user = db.seed().tenant("importer").await;
    let mut client = db.client().await;
    let phones: Vec<String> = (0..450).map(|i| format!("+1415555{i:04}")).collect();
    let rows: Vec<ImportRow> = phones.iter().map(|p| row(p, &["vip"])).collect();
    let tx = client.transaction().await.expect("tx");
    let counts = contacts::import(&tx, &user, &rows).await.expect("import");
    tx.commit().await.expect("commit");
    assert_eq!(counts.tags_added, 450);

    let mut events = events::list(
        &client,
        &user,
        &EventFilter::default(),
        &PageRequest {
            before: None,
            fetch: 50,
        },
    )
    .await
    .expect("events");
    events.reverse();
    assert_eq!(
        events
            .iter()
            .map(|e| e.contact_ids.len())
            .collect::<Vec<_>>(),
        [200, 200, 50]
    );
    let listed: Vec<&str> = events.iter().flat_map(StoredEvent::contacts).collect();
    let by_phone: Vec<String> = client
        .query(
            "SELECT c.contact_id FROM unnest($1::text[]) WITH ORDINALITY AS p(phone, n)
             JOIN contacts c ON c.phone = p.phone AND c.user_id = $2 ORDER BY p.n",
            &[&phones, &user.as_str()],
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listed, by_phone, "every contact once, in file order");

    // The queue's job carries the list; `contacts()` reads any event's contacts.
    let job = EventJob::from_stored(&events[2]);
    assert_eq!(job.contacts().count(), 50);
    let json = serde_json::to_value(&job).expect("json");
    assert_eq!(json["contact_ids"].as_array().map(Vec::len), Some(50));
    assert!(json["contact_id"].is_null());

    // GET /events?contact_id= finds the event that lists the contact.
    let one = ContactId::parse(&by_phone[420]).expect("id");
    let found = events::list(
        &client,
        &user,
        &EventFilter {
            contact_id: Some(one),
            ..EventFilter::default()
        },
        &PageRequest {
            before: None,
            fetch: 50,
        },
    )
    .await
    .expect("events");
    assert_eq!(
        found
            .iter()
            .map(|e| e.event_id.to_string())
            .collect::<Vec<_>>(),
        [events[2].event_id.to_string()]
    );
}

#[tokio::test]
async fn two_imports_of_one_tenant_at_once_record_each_gained_tag_once() {
    let db = TestDb::new().await;
    let user = db.seed().tenant("importer").await;
    let mut first_client = db.client().await;
    let first = first_client.transaction().await.expect("tx");
    contacts::import(&first, &user, &[row(A, &["x", "y"]), row(B, &["x"])])
        .await
        .expect("first import");

    // The second starts while the first is uncommitted: it must wait and then see the
    // first's tags as already there.
    let second = tokio::spawn({
        let pool = db.pool.clone();
        let user = user.clone();
        async move {
            let mut client = pool.get().await.expect("client");
            let tx = client.transaction().await.expect("tx");
            let counts = contacts::import(
                &tx,
                &user,
                &[row(A, &["x", "z"]), row(B, &["x"]), row(C, &["z"])],
            )
            .await
            .expect("second import");
            tx.commit().await.expect("commit");
            counts
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second import waits for the first"
    );
    first.commit().await.expect("commit");
    let counts = second.await.expect("second import");

    assert_eq!(
        counts,
        ImportCounts {
            created: 1,
            updated: 1,
            unchanged: 1,
            tags_added: 2
        }
    );
    assert_eq!(
        tag_events(&db, &user).await,
        [
            format!("{A}:x"),
            format!("{A}:y"),
            format!("{A}:z"),
            format!("{B}:x"),
            format!("{C}:z")
        ]
    );
}

#[tokio::test]
async fn imported_contacts_arrive_opted_out_when_suppressed_and_suppress_nothing_otherwise() {
    let db = TestDb::new().await;
    let user = db.seed().tenant("importer").await;
    let mut client = db.client().await;
    // A customer who said STOP on Instagram and whose contact was erased since.
    client
        .batch_execute(&format!(
            "INSERT INTO opt_out_suppressions (user_id, customer_hash, opted_out_at)
             SELECT '{user}', h, '2026-01-02T03:04:05Z'
             FROM unnest(contact_identity_hashes('{A}', NULL, NULL)) AS h"
        ))
        .await
        .expect("suppression");

    let tx = client.transaction().await.expect("tx");
    contacts::import(&tx, &user, &[row(A, &["x"]), row(B, &["x"])])
        .await
        .expect("import");
    tx.commit().await.expect("commit");

    let opted_out: Vec<(String, bool, Option<chrono::DateTime<chrono::Utc>>)> = client
        .query(
            "SELECT phone, opted_out, opted_out_at FROM contacts WHERE user_id = $1 ORDER BY phone",
            &[&user.as_str()],
        )
        .await
        .expect("contacts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let since = "2026-01-02T03:04:05Z".parse().ok();
    assert_eq!(
        opted_out,
        [(A.to_owned(), true, since), (B.to_owned(), false, None)]
    );
    let suppressed: i64 = client
        .query_one(
            "SELECT count(*) FROM opt_out_suppressions WHERE user_id = $1",
            &[&user.as_str()],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(suppressed, 1, "only A's phone, as before the import");

    // An imported contact whose phone is edited to a suppressed one goes out too (the row
    // trigger still covers every identity change, imported contacts' included).
    client
        .batch_execute(&format!(
            "INSERT INTO opt_out_suppressions (user_id, customer_hash)
             SELECT '{user}', h FROM unnest(contact_identity_hashes('{C}', NULL, NULL)) AS h"
        ))
        .await
        .expect("suppression");
    let edited = client
        .query_one(
            "UPDATE contacts SET phone = $2 WHERE user_id = $1 AND phone = $3
             RETURNING opted_out, source",
            &[&user.as_str(), &C, &B],
        )
        .await
        .expect("edit");
    assert_eq!(
        (edited.get::<_, bool>(0), edited.get::<_, String>(1)),
        (true, "IMPORT".to_owned())
    );
}

#[tokio::test]
async fn a_contact_inserted_opted_out_suppresses_every_identity_it_holds() {
    let db = TestDb::new().await;
    let user = db.seed().tenant("importer").await;
    let client = db.client().await;
    // The phone is suppressed; the contact written with it also carries an Instagram id,
    // arrives opted out (the BEFORE trigger), and the AFTER INSERT trigger (V19: only for
    // rows that are opted out) suppresses the Instagram id too.
    client
        .batch_execute(&format!(
            "INSERT INTO opt_out_suppressions (user_id, customer_hash)
             SELECT '{user}', h FROM unnest(contact_identity_hashes('{A}', NULL, NULL)) AS h;
             INSERT INTO contacts (contact_id, user_id, phone, platform, customer_id)
             VALUES ('con_a', '{user}', '{A}', 'instagram', '17841400000000001');
             INSERT INTO contacts (contact_id, user_id, platform, customer_id)
             VALUES ('con_b', '{user}', 'instagram', '17841400000000002');"
        ))
        .await
        .expect("contacts");
    let suppressed = |platform: &'static str, id: &'static str| {
        let client = &client;
        let user = &user;
        async move {
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM opt_out_suppressions
                      WHERE user_id = $1
                        AND customer_hash = ANY (contact_identity_hashes(NULL, $2, $3)))",
                    &[&user.as_str(), &platform, &id],
                )
                .await
                .expect("read")
                .get::<_, bool>(0)
        }
    };
    assert!(suppressed("instagram", "17841400000000001").await);
    assert!(!suppressed("instagram", "17841400000000002").await);
}
