//! Group commit on SQLite: many writes, one fsync.
//!
//! SQLite has one writer, and every commit of the database in WAL mode with `synchronous=FULL` waits for an
//! fsync. Writes therefore share one open transaction, a *group*: each write runs in a savepoint of its own
//! inside it, holding the writer lock only while it runs, so a write that fails rolls back its savepoint alone.
//! When a write is done it releases its savepoint and lets go of the lock, then takes the lock once more to
//! commit the group, unless another member of the group committed it meanwhile. Writes that queued for the
//! lock while one group was committing all land in the next group, and one commit makes them all durable.
//! Nothing is acknowledged before the commit of its group succeeded; if that commit fails, every member fails.

use std::sync::{Arc, OnceLock};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, Statement, TransactionTrait};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The single writer of an SQLite database.
#[derive(Default)]
pub(super) struct SqliteWriter {
    open: Arc<Mutex<Option<Group>>>,
}

/// The open transaction of a group and what its members learn when it ends.
struct Group {
    txn: DatabaseTransaction,
    outcome: Arc<Outcome>,
}

/// How a group ended, set once by whichever member commits it.
type Outcome = OnceLock<Result<(), String>>;

/// One write's place in a group: its savepoint, with the writer lock held until it is released.
pub(super) struct Member {
    pub(super) savepoint: DatabaseTransaction,
    writer: OwnedMutexGuard<Option<Group>>,
    outcome: Arc<Outcome>,
    lock: Arc<Mutex<Option<Group>>>,
}

impl SqliteWriter {
    /// Joins the open group (opening one if none is) with a savepoint of its own; holds the writer lock.
    pub(super) async fn join(&self, conn: &DatabaseConnection) -> Result<Member, DbErr> {
        let mut writer = self.open.clone().lock_owned().await;
        if writer.is_none() {
            *writer = Some(Group { txn: conn.begin().await?, outcome: Arc::default() });
        }
        let group = writer.as_ref().expect("opened above");
        let savepoint = group.txn.begin().await?;
        let outcome = group.outcome.clone();
        Ok(Member { savepoint, writer, outcome, lock: self.open.clone() })
    }
}

impl SqliteWriter {
    /// Runs `statement`, which must be atomic on its own (one multi-row insert), and makes it durable: with no
    /// group open, as a transaction of its own (SQLite commits a statement run outside a transaction by
    /// itself: one round trip to the connection's thread, one fsync); with one open, inside it, committing the
    /// group for its members too. Its own failure never fails the members: SQLite undoes a failed statement
    /// without touching the rest of its transaction.
    pub(super) async fn commit_statement(&self, conn: &DatabaseConnection, statement: Statement) -> Result<(), DbErr> {
        let mut writer = self.open.lock().await;
        let Some(group) = writer.take() else {
            return conn.execute_raw(statement).await.map(drop);
        };
        // No member is in the middle of its savepoint: each one holds this lock until it released it.
        let ran = group.txn.execute_raw(statement).await;
        let committed = group.txn.commit().await.map_err(|error| error.to_string());
        // The members waiting to commit the group find it committed.
        let _ = group.outcome.set(committed.clone());
        ran?;
        committed.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))
    }
}

impl Member {
    /// Releases the savepoint and returns once the group holding it is committed.
    pub(super) async fn commit(self) -> Result<(), DbErr> {
        let Self { savepoint, writer, outcome, lock } = self;
        savepoint.commit().await?;
        // Let the writers queued behind this one join the group before it is committed.
        drop(writer);
        // In a task of its own: a caller that stops waiting must not leave its released savepoint in a group
        // nobody commits (holding SQLite's write lock until the next write).
        let committing = outcome.clone();
        tokio::spawn(async move {
            let mut writer = lock.lock().await;
            if committing.get().is_none() {
                // Not committed yet, so it is still the open group: a committed group is never left open.
                let group = writer.take().expect("an uncommitted group stays open");
                debug_assert!(Arc::ptr_eq(&group.outcome, &committing));
                let result = group.txn.commit().await.map_err(|error| error.to_string());
                let _ = committing.set(result);
            }
        })
        .await
        .map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))?;
        match outcome.get().expect("set by this member's task or by the member that committed") {
            Ok(()) => Ok(()),
            Err(error) => Err(DbErr::Custom(format!("committing the write group: {error}"))),
        }
    }
}
