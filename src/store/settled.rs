//! The settled head of a sequence-ordered log (the event outbox, the audit log) on PostgreSQL.
//!
//! Writers draw the cursors (`seq`) of their rows from a sequence as they insert them, and commit without
//! waiting for one another, so that PostgreSQL can make many commits durable with one flush. Rows therefore do
//! not become visible in cursor order: row 11 may commit while the transaction holding row 10 still runs, and a
//! reader that moved past 11 would never see 10. Readers that follow a log read only up to its *settled head*,
//! the highest cursor below which nothing can still appear:
//!
//! 1. every writer holds [`APPEND_LOCK`] shared from before it draws its first cursor until it ends;
//! 2. a reader reads the highest visible cursor `h`; a row below `h` that is not visible was drawn before `h`
//!    (a sequence only grows), so before the writer of `h` committed, so before this read, by a writer that
//!    holds the lock shared until it ends;
//! 3. the reader then takes the lock exclusively and lets go of it at once: that waits for every writer then
//!    holding it, after which nothing at or below `h` can appear.
//!
//! The wait lasts as long as the appends in flight, the last step of a write (its inserts and its commit). A
//! writer that asks for the lock while a reader waits for it waits behind the reader; the writers in flight
//! still commit together.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QuerySelect};

use super::entities::{audit_log, event};

/// PostgreSQL advisory lock key held shared by appenders to the logs and taken exclusively, for an instant, by
/// their readers ("hush" + 1).
pub(super) const APPEND_LOCK: i64 = 0x6875_7368_0001;

/// A sequence-ordered log.
#[derive(Debug, Clone, Copy)]
pub enum Log {
    /// The event outbox.
    Events,
    /// The audit log.
    Audit,
}

/// The highest visible cursor of `log` (0 when it is empty).
pub(super) async fn visible_head(db: &impl ConnectionTrait, log: Log) -> Result<i64, DbErr> {
    let max: Option<Option<i64>> = match log {
        Log::Events => {
            event::Entity::find().select_only().column_as(event::Column::Seq.max(), "max").into_tuple().one(db).await?
        }
        Log::Audit => {
            let newest = audit_log::Entity::find().select_only().column_as(audit_log::Column::Seq.max(), "max");
            newest.into_tuple().one(db).await?
        }
    };
    Ok(max.flatten().unwrap_or(0))
}

/// The settled head of `log` on PostgreSQL.
pub(super) async fn settled_head(db: &impl ConnectionTrait, log: Log) -> Result<i64, DbErr> {
    let head = visible_head(db, log).await?;
    // One statement: the lock is let go of even if the caller stops waiting for its answer.
    db.execute_unprepared(&format!("SELECT pg_advisory_lock({APPEND_LOCK}), pg_advisory_unlock({APPEND_LOCK})"))
        .await?;
    Ok(head)
}
