//! The one place a database failure gets a meaning. Domain errors carry a [`DbError`], so the API layer maps
//! three meanings instead of inspecting driver errors: a duplicate is ALREADY_EXISTS, contention is ABORTED
//! (the caller may retry), anything else is the server's fault.

use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// PostgreSQL SQLSTATE of a serialization failure.
const SERIALIZATION_FAILURE: &str = "40001";
/// PostgreSQL SQLSTATE of a deadlock the server broke by aborting this transaction.
const DEADLOCK_DETECTED: &str = "40P01";
/// SQLite primary result codes (the low byte of the extended code sqlx reports) of a lock another
/// connection held past the busy timeout.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// A database failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused a row: a concurrent request created the same thing first, or (secrets, whose
    /// creates do not read their keys first) it existed already; the domain names what was taken.
    #[error("already exists: a concurrent request created the same name first")]
    Duplicate,
    /// The database aborted this transaction to resolve contention (deadlock, serialization failure, a lock
    /// held too long by another process); nothing was written and the same request may succeed if retried.
    #[error("the change conflicted with a concurrent change and was not made; retry")]
    Contention(#[source] DbErr),
    /// A foreign key refused a row: what it refers to (an environment) was deleted by a concurrent write (SQLite
    /// writes of secrets resolve their environment before they wait for the writer, see
    /// `Vault::begin_secret_write`). Nothing was written; retrying would not find it either.
    #[error("what this request writes to was deleted by a concurrent request")]
    Gone(#[source] DbErr),
    /// Anything else: the server's fault.
    #[error(transparent)]
    Other(DbErr),
}

impl From<DbErr> for DbError {
    fn from(error: DbErr) -> Self {
        if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Self::Duplicate;
        }
        let contended = match &error {
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
                sqlx::Error::Database(e) => {
                    let code = e.code().unwrap_or_default();
                    let sqlite_primary = e
                        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                        .and_then(|_| code.parse::<i64>().ok())
                        .map(|extended| extended & 0xff);
                    matches!(&*code, SERIALIZATION_FAILURE | DEADLOCK_DETECTED)
                        || matches!(sqlite_primary, Some(SQLITE_BUSY | SQLITE_LOCKED))
                }
                _ => false,
            },
            _ => false,
        };
        if matches!(error.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) {
            Self::Gone(error)
        } else if contended {
            Self::Contention(error)
        } else {
            Self::Other(error)
        }
    }
}
