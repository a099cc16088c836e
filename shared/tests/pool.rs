//! The pool's session timeouts, against a real PostgreSQL.

use std::time::Duration;

use shared::{
    api::ApiError,
    config::{DatabaseConfig, SessionTimeouts},
    db::{DbError, Pool},
};
use tokio_postgres::error::SqlState;

fn pool_with(db: &testkit::TestDb, timeouts: SessionTimeouts) -> Pool {
    let mut config = DatabaseConfig::for_url(&db.url, 2);
    config.timeouts = timeouts;
    shared::db::connect(&config).expect("pool")
}

fn short(statement_ms: u64, lock_ms: u64, idle_ms: u64) -> SessionTimeouts {
    SessionTimeouts {
        statement: Duration::from_millis(statement_ms),
        lock: Duration::from_millis(lock_ms),
        idle_in_transaction: Duration::from_millis(idle_ms),
    }
}

/// The status and problem type a request failing with `error` answers with.
fn http_answer(error: DbError) -> (u16, String) {
    let api = ApiError::from(error);
    (api.status().as_u16(), api.problem().problem_type)
}

#[tokio::test]
async fn every_pooled_session_carries_the_default_timeouts() {
    let db = testkit::TestDb::new().await;
    let client = db.client().await;

    let mut shown = Vec::new();
    for setting in [
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    ] {
        let row = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .expect("show");
        shown.push(row.get::<_, String>(0));
    }

    assert_eq!(shown, ["5s", "3s", "15s"]);
}

#[tokio::test]
async fn a_slow_statement_is_cancelled_and_answers_503_not_500() {
    let db = testkit::TestDb::new().await;
    let pool = pool_with(&db, short(200, 100, 10_000));
    let client = pool.get().await.expect("connection");

    let error = client
        .query_one("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("cancelled after 200 ms");

    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED));
    assert_eq!(
        http_answer(DbError::from(error)),
        (503, "urn:problem:unavailable".to_owned())
    );
    // The connection is still usable: the statement was cancelled, not the session.
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .expect("usable")
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_lock_held_elsewhere_is_given_up_on_after_the_lock_timeout() {
    let db = testkit::TestDb::new().await;
    let pool = pool_with(&db, short(5_000, 150, 10_000));
    let mut holder = pool.get().await.expect("first connection");
    let waiter = pool.get().await.expect("second connection");
    let holding = holder.transaction().await.expect("begin");
    holding
        .batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    let started = std::time::Instant::now();
    let error = waiter
        .query("SELECT count(*) FROM users", &[])
        .await
        .expect_err("the lock is not released in time");

    assert_eq!(error.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        http_answer(DbError::from(error)),
        (503, "urn:problem:unavailable".to_owned())
    );
    holding.rollback().await.expect("rollback");
}

#[tokio::test]
async fn a_transaction_left_idle_is_ended_by_the_server_and_its_locks_released() {
    let db = testkit::TestDb::new().await;
    let pool = pool_with(&db, short(5_000, 1_000, 200));
    let mut abandoned = pool.get().await.expect("first connection");
    let other = pool.get().await.expect("second connection");
    let tx = abandoned.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    // Like a Lambda frozen or timed out mid-transaction: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // The server ended that session, so its lock is gone for everyone else ...
    let count: i64 = other
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("the table is free again")
        .get(0);
    assert_eq!(count, 0);
    // ... and the abandoned connection reports itself unavailable (503), not a bug (500).
    let error = tx.query("SELECT 1", &[]).await.expect_err("session ended");
    assert_eq!(http_answer(DbError::from(error)).0, 503);
}

#[tokio::test]
async fn migrating_lifts_the_timeouts_only_while_it_runs() {
    let db = testkit::TestDb::new().await;
    let pool = pool_with(&db, short(300, 200, 10_000));
    // One connection, so the one the migration used is the one checked afterwards.
    pool.resize(1);

    shared::db::migrate::run(&pool)
        .await
        .expect("nothing to apply");

    let client = pool.get().await.expect("connection");
    let statement: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show")
        .get(0);
    let lock: String = client
        .query_one("SHOW lock_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!((statement.as_str(), lock.as_str()), ("300ms", "200ms"));
}
