//! The migration runner. SQL files live in `migrations/` at the workspace root and are
//! embedded at compile time, so every binary carries the schema it was built for.

use deadpool_postgres::Pool;

use super::DbError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// An arbitrary but fixed key: concurrent runners (two Lambdas, parallel test binaries)
/// queue on this advisory lock instead of racing each other.
const MIGRATION_LOCK_KEY: i64 = 0x5A1E_5A6E_0001;

/// Migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("migration failed")]
    Migration(#[from] refinery::Error),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names (`V1__initial_schema`) of the migrations this run applied, oldest first.
    pub applied: Vec<String>,
}

/// Applies every migration not yet applied. Running it again is a no-op.
pub async fn run(pool: &Pool) -> Result<MigrationReport, MigrateError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    // The pool's session timeouts are for requests: a migration may rewrite a large table,
    // and a runner waits for another's migrations on the advisory lock. Lifted for this
    // session, restored (to the session's startup values) at the end.
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await
        .map_err(DbError::from)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(DbError::from)?;
    let outcome = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut **client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(DbError::from)?;
    client
        .batch_execute("RESET statement_timeout; RESET lock_timeout")
        .await
        .map_err(DbError::from)?;
    let report = outcome?;
    Ok(MigrationReport {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect(),
    })
}

/// How many migrations this build carries.
pub fn embedded_count() -> usize {
    embedded::migrations::runner().get_migrations().len()
}
