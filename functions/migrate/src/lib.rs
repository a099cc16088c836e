//! The `migrate` function: applies the embedded migrations. Invoked once after each deploy
//! (any event); outside Lambda the same binary is the migration CLI (`cargo run -p migrate`).

use serde_json::{Value, json};
use shared::db::{Pool, migrate};

/// Applies pending migrations and answers `{"applied": [...], "embedded": n}`.
pub async fn handle(pool: &Pool) -> Result<Value, migrate::MigrateError> {
    let report = migrate::run(pool).await?;
    tracing::info!(applied = report.applied.len(), "migrations applied");
    Ok(json!({ "applied": report.applied, "embedded": migrate::embedded_count() }))
}
