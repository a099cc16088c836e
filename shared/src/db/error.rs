use std::error::Error as StdError;

/// A database operation failed. Constraint violations keep the constraint's name so the HTTP
/// layer can say, in one table, what conflicted.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    #[error("foreign key {constraint} violated")]
    ForeignKeyViolation { constraint: String },
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    #[error("query failed")]
    Query(#[source] tokio_postgres::Error),
    #[error("unexpected value in column {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;

        if error.is_closed() {
            return Self::Unavailable(Box::new(error));
        }
        let Some(db_error) = error.as_db_error() else {
            return Self::Query(error);
        };
        let constraint = db_error.constraint().unwrap_or_default().to_owned();
        match *db_error.code() {
            SqlState::UNIQUE_VIOLATION => Self::UniqueViolation { constraint },
            SqlState::FOREIGN_KEY_VIOLATION => Self::ForeignKeyViolation { constraint },
            SqlState::CHECK_VIOLATION => Self::CheckViolation { constraint },
            // The session timeouts (`SessionTimeouts`): the database is overloaded or
            // contended right now, and the same request may well succeed shortly. Callers see
            // a 503 (HTTP) or a retryable job, never a 500.
            SqlState::QUERY_CANCELED
            | SqlState::LOCK_NOT_AVAILABLE
            | SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
            | SqlState::ADMIN_SHUTDOWN
            | SqlState::CRASH_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => Self::Unavailable(Box::new(error)),
            _ => Self::Query(error),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

impl DbError {
    /// Whether the statement failed on the data it was given (SQLSTATE class 22, data
    /// exception: a value too long, a byte sequence the encoding refuses; or class 23, an
    /// integrity constraint), so retrying with the same data fails the same way. Connection,
    /// pool, serialization and other failures are not: a retry may succeed.
    pub fn is_data_error(&self) -> bool {
        match self {
            Self::UniqueViolation { .. }
            | Self::ForeignKeyViolation { .. }
            | Self::CheckViolation { .. } => true,
            Self::Query(error) => error
                .as_db_error()
                .is_some_and(|e| matches!(&e.code().code()[..2], "22" | "23")),
            Self::Unavailable(_) | Self::Corrupt { .. } => false,
        }
    }

    /// What went wrong, in PostgreSQL's words when it said something (`value too long for
    /// type character varying(512)`): a reason to record on the row that failed. It never
    /// includes the values of the statement.
    pub fn reason(&self) -> String {
        match self {
            Self::Query(error) => match error.as_db_error() {
                Some(db_error) => format!("{} ({})", db_error.message(), db_error.code().code()),
                None => error.to_string(),
            },
            other => other.to_string(),
        }
    }
}
