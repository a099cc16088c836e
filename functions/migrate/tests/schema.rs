//! The schema as the migrations build it, checked against the reference and the code.

use shared::domain::{check_constrained_columns, length_checked_columns};
use testkit::TestDb;

#[tokio::test]
async fn applying_the_migrations_again_is_a_no_op() {
    let db = TestDb::new().await;

    let first = migrate::handle(&db.pool).await.expect("migrations run");
    let second = migrate::handle(&db.pool)
        .await
        .expect("migrations run again");

    assert_eq!(
        first["applied"],
        serde_json::json!([]),
        "the template is already migrated"
    );
    assert_eq!(second["applied"], serde_json::json!([]));
    let client = db.client().await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .and_then(|row| row.try_get(0))
        .expect("history");
    assert_eq!(applied as usize, shared::db::migrate::embedded_count());
}

#[tokio::test]
async fn a_fresh_database_gets_every_migration_once() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await
        .expect("empty the database");

    let outcome = migrate::handle(&db.pool).await.expect("migrations run");

    assert_eq!(
        outcome["applied"].as_array().map(Vec::len),
        Some(shared::db::migrate::embedded_count())
    );
    assert_eq!(
        migrate::handle(&db.pool).await.expect("rerun")["applied"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn the_schema_has_the_twenty_tables_of_the_reference_and_our_five() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name <> 'refinery_schema_history'
             ORDER BY 1",
            &[],
        )
        .await
        .expect("tables");
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut expected = vec![
        "agents",
        "button_clicks",
        "campaign_recipients",
        "campaign_triggers",
        "campaigns",
        "contacts",
        "conversation_archives",
        "conversations",
        "credits",
        "extractions",
        "google_calendar_tokens",
        "meetings",
        "message_delivery_status",
        "messages",
        "phone_numbers",
        "template_buttons",
        "template_sends",
        "template_variables",
        "templates",
        "users",
    ];
    // Added by this project (docs/architecture.md "Schema decisions").
    expected.extend([
        "inbound_messages",
        "credit_grants",
        "webchat_sessions",
        "rate_limit_counters",
        "domain_events",
        "google_oauth_states",
        "opt_out_suppressions",
        "campaign_counters",
        "send_throttles",
        "parked_statuses",
    ]);
    expected.sort_unstable();
    assert_eq!(tables, expected);
}

#[tokio::test]
async fn every_enum_matches_its_check_constraint() {
    let db = TestDb::new().await;
    let client = db.client().await;
    for (table, column, values) in check_constrained_columns() {
        // Every value the code knows is accepted, and one it does not know is refused.
        let accepts = |value: &str| {
            let sql = format!(
                "SELECT count(*) FROM pg_constraint c
                 JOIN pg_class t ON t.oid = c.conrelid
                 WHERE t.relname = '{table}' AND c.contype = 'c'
                   AND pg_get_constraintdef(c.oid) LIKE '%{column}%'
                   AND pg_get_constraintdef(c.oid) LIKE '%''{value}''%'"
            );
            sql
        };
        for value in &values {
            let n: i64 = client
                .query_one(&accepts(value), &[])
                .await
                .and_then(|r| r.try_get(0))
                .expect("catalog query");
            assert!(n >= 1, "{table}.{column} has no CHECK accepting {value:?}");
        }
        // And the CHECK lists exactly as many values as the enum has.
        let definition: String = client
            .query_one(
                &format!(
                    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                     JOIN pg_class t ON t.oid = c.conrelid
                     WHERE t.relname = '{table}' AND c.contype = 'c'
                       AND pg_get_constraintdef(c.oid) LIKE '%({column})::text = ANY%'"
                ),
                &[],
            )
            .await
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("{table}.{column}: no CHECK found: {e}"));
        let listed = definition.matches("::character varying").count();
        assert_eq!(listed, values.len(), "{table}.{column}: {definition}");
    }
}

#[tokio::test]
async fn every_length_checked_at_the_edge_is_the_width_of_its_column() {
    let db = TestDb::new().await;
    let client = db.client().await;
    for (table, column, max) in length_checked_columns() {
        let width: Option<i32> = client
            .query_one(
                "SELECT character_maximum_length FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
                &[&table, &column],
            )
            .await
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("{table}.{column}: no such column: {e}"));
        assert_eq!(
            width.and_then(|w| usize::try_from(w).ok()),
            Some(max),
            "{table}.{column}: the edge accepts {max} characters, the column holds {width:?}"
        );
    }
}

#[tokio::test]
async fn every_column_holding_a_provider_identifier_has_an_edge_check() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public'
               AND (column_name IN ('platform_message_id', 'customer_phone', 'customer_id',
                                    'original_message_id')
                    OR (table_name = 'button_clicks' AND column_name = 'message_id'))
             ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("catalog");
    let checked = length_checked_columns();
    for row in &rows {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        assert!(
            checked.iter().any(|(t, c, _)| *t == table && *c == column),
            "{table}.{column} holds a provider identifier but no edge check names it"
        );
    }
    assert_eq!(rows.len(), 14, "the identifier columns known today");
}

#[tokio::test]
async fn updated_at_triggers_sit_on_exactly_the_listed_tables_and_the_inbox() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT event_object_table::text FROM information_schema.triggers
             WHERE action_statement LIKE '%update_updated_at_column%' AND event_manipulation = 'UPDATE'
             ORDER BY 1",
            &[],
        )
        .await
        .expect("triggers");
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut expected = vec![
        "users",
        "phone_numbers",
        "agents",
        "google_calendar_tokens",
        "meetings",
        "contacts",
        "templates",
        "template_variables",
        "template_sends",
        "campaigns",
        "campaign_triggers",
        "campaign_recipients",
    ];
    // Added by this project.
    expected.push("inbound_messages");
    expected.sort_unstable();
    assert_eq!(tables, expected);
}

#[tokio::test]
async fn every_foreign_key_has_an_index_that_leads_with_it() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT c.conrelid::regclass::text || '.' || a.attname
             FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND NOT EXISTS (
                 SELECT 1 FROM pg_index i
                 WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]
             )",
            &[],
        )
        .await
        .expect("catalog");
    let unindexed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(
        unindexed.is_empty(),
        "foreign keys without an index: {unindexed:?}"
    );
}

#[tokio::test]
async fn a_customer_can_have_many_archived_conversations_but_one_active() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO users (user_id, email) VALUES ('u1', 'u1@example.test');
             INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token)
                 VALUES ('pn_1', 'u1', 'whatsapp', '100', 'v1:x');
             INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
                 VALUES ('agt_1', 'u1', 'pn_1', 'pmpt_1', 'A');
             INSERT INTO conversations (conversation_id, agent_id, customer_phone, is_active)
                 VALUES ('c1', 'agt_1', '+14155552671', false),
                        ('c2', 'agt_1', '+14155552671', false),
                        ('c3', 'agt_1', '+14155552671', true);",
        )
        .await
        .expect("two archived and one active conversation coexist");

    let second_active = client
        .batch_execute(
            "INSERT INTO conversations (conversation_id, agent_id, customer_phone, is_active)
             VALUES ('c4', 'agt_1', '+14155552671', true)",
        )
        .await
        .expect_err("a second active conversation is refused");

    assert_eq!(
        second_active.as_db_error().and_then(|e| e.constraint()),
        Some("conversations_one_active_per_customer")
    );
}

#[tokio::test]
async fn a_meta_channel_id_belongs_to_one_tenant_only() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO users (user_id, email) VALUES ('a', 'a@example.test'), ('b', 'b@example.test');
             INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token)
                 VALUES ('pn_a', 'a', 'whatsapp', '555', 'v1:x');",
        )
        .await
        .expect("setup");

    let claimed_again = client
        .batch_execute(
            "INSERT INTO phone_numbers (id, user_id, platform, meta_phone_number_id, access_token)
             VALUES ('pn_b', 'b', 'whatsapp', '555', 'v1:y')",
        )
        .await
        .expect_err("refused");

    assert_eq!(
        claimed_again.as_db_error().and_then(|e| e.constraint()),
        Some("phone_numbers_platform_meta_id_key")
    );
}

#[tokio::test]
async fn an_email_is_one_account_whatever_its_case() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO users (user_id, email) VALUES ('a', 'a@example.test')")
        .await
        .expect("setup");

    let shouting = client
        .batch_execute("INSERT INTO users (user_id, email) VALUES ('b', 'A@EXAMPLE.TEST')")
        .await
        .expect_err("refused");

    assert_eq!(
        shouting.as_db_error().and_then(|e| e.constraint()),
        Some("users_email_lower_key")
    );
}
