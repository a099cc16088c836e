//! PostgreSQL access: the pool, the migration runner and one module per table or aggregate.
//!
//! Every query on tenant-owned data takes the tenant's [`UserId`](crate::domain::UserId) and
//! filters by it, so a row of another tenant is indistinguishable from a missing one. That
//! holds for every `UPDATE` and `DELETE` too, also where the caller has just read the row
//! under the tenant: tables without a `user_id` column are filtered through the row that has
//! one (a conversation through its agent, a message through its conversation, a template
//! send through its template, a campaign recipient through its campaign). The exceptions
//! say so in their documentation: routing a provider's id to its channel (`inbound::route`,
//! `webchat::widget`, where the tenant *is* the channel's owner), reading an inbox row by the
//! job's key (`inbound::get`), and the housekeeping deletes of expired rows
//! (`webchat::prune_sessions`, `rate_limits::prune`).
//!
//! Ids are the newtypes of [`crate::domain`] and CHECK-constrained columns are read into
//! their enums ([`enum_column`]); this module imports nothing from `meta` or `openai`.

pub mod agents;
pub mod campaigns;
pub mod contacts;
pub mod conversation_views;
pub mod conversations;
pub mod credits;
pub mod delivery;
mod error;
pub mod events;
pub mod extractions;
pub mod google_tokens;
pub mod inbound;
pub mod meetings;
pub mod migrate;
pub mod phone_numbers;
mod pool;
pub mod rate_limits;
pub mod templates;
pub mod users;
pub mod webchat;

pub use deadpool_postgres::{GenericClient, Object as PooledClient, Pool, PoolError, Transaction};
pub use error::DbError;
pub use pool::{PoolSetupError, connect};
pub use tokio_postgres::Error as PgError;

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

// Hot paths (the send worker, status webhooks) run their statements through the
// connection's statement cache (deadpool's `prepare_cached`): the server parses each once
// per connection and every use is one round trip instead of two (`query(&str)` prepares
// first). Only statements that name their columns: a cached `SELECT *` would fail with
// "cached plan must not change result type" after a migration adds a column.

/// [`GenericClient::query`] through the statement cache.
pub(crate) async fn query_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`GenericClient::query_opt`] through the statement cache.
pub(crate) async fn query_opt_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<tokio_postgres::Row>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// [`GenericClient::query_one`] through the statement cache.
pub(crate) async fn query_one_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<tokio_postgres::Row, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_one(&statement, params).await?)
}

/// [`GenericClient::execute`] through the statement cache.
pub(crate) async fn execute_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// Reads a text column into a CHECK-constrained enum, failing loudly if the database holds
/// a value the code does not know (a migration ran ahead of the code).
pub(crate) fn enum_column<T>(row: &tokio_postgres::Row, column: &'static str) -> Result<T, DbError>
where
    T: std::str::FromStr<Err = crate::domain::UnknownVariant>,
{
    let raw: String = row.try_get(column)?;
    raw.parse()
        .map_err(|e: crate::domain::UnknownVariant| DbError::Corrupt {
            column,
            detail: e.to_string(),
        })
}

/// Like [`enum_column`] for a nullable column.
pub(crate) fn optional_enum_column<T>(
    row: &tokio_postgres::Row,
    column: &'static str,
) -> Result<Option<T>, DbError>
where
    T: std::str::FromStr<Err = crate::domain::UnknownVariant>,
{
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|raw| {
        raw.parse()
            .map_err(|e: crate::domain::UnknownVariant| DbError::Corrupt {
                column,
                detail: e.to_string(),
            })
    })
    .transpose()
}

/// Reads the tenant column `column` into a [`UserId`](crate::domain::UserId), failing loudly
/// if it holds something no token could name.
pub(crate) fn user_column(
    row: &tokio_postgres::Row,
    column: &'static str,
) -> Result<crate::domain::UserId, DbError> {
    let raw: String = row.try_get(column)?;
    crate::domain::UserId::parse(&raw).ok_or(DbError::Corrupt {
        column,
        detail: "not a valid user id".to_owned(),
    })
}

/// A keyset page request: rows whose key sorts before `before` (newest first), at most
/// `fetch` of them. The API layer asks for one row more than it returns to learn whether a
/// next page exists. The key is the row's id (a `String`), or a typed key where a list is
/// ordered by more than its id (`conversation_views::ConversationKey`).
#[derive(Debug, Clone)]
pub struct PageRequest<K = String> {
    /// Only rows with a key lower than this one.
    pub before: Option<K>,
    /// How many rows to fetch.
    pub fetch: i64,
}

impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        Self {
            before: None,
            fetch: 0,
        }
    }
}
