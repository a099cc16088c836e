//! PostgreSQL access: the pool, the migration runner and one module per aggregate.
//!
//! Every query on tenant-owned data takes the tenant's [`UserId`](crate::domain::UserId) and
//! filters by it, so a row of another tenant is indistinguishable from a missing one.

pub mod agents;
pub mod conversation_views;
pub mod conversations;
pub mod credits;
pub mod delivery;
mod error;
pub mod google_tokens;
pub mod inbound;
pub mod meetings;
pub mod migrate;
pub mod phone_numbers;
mod pool;
pub mod rate_limits;
pub mod users;
pub mod webchat;

pub use deadpool_postgres::{GenericClient, Object as PooledClient, Pool, PoolError, Transaction};
pub use error::DbError;
pub use pool::{PoolSetupError, connect};
pub use tokio_postgres::Error as PgError;

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

/// A keyset page request: rows whose id sorts before `before` (newest first), at most
/// `fetch` of them. The API layer asks for one row more than it returns to learn whether a
/// next page exists.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Only rows with an id lower than this one.
    pub before: Option<String>,
    /// How many rows to fetch.
    pub fetch: i64,
}
