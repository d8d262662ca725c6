//! Group commit on SQLite: many writes, one fsync.
//!
//! SQLite has one writer, and every commit of the database in WAL mode with `synchronous=FULL` waits for an
//! fsync. Writes therefore share one open transaction, a *group*: each write runs in a savepoint of its own
//! inside it, holding the writer lock only while it runs, so a write that fails undoes its own part alone.
//! When a write is done it releases its savepoint and lets go of the lock, then takes the lock once more to
//! commit the group, unless another member of the group committed it meanwhile. Writes that queued for the
//! lock while one group was committing all land in the next group, and one commit makes them all durable.
//! Nothing is acknowledged before the commit of its group succeeded; if that commit fails, every member fails.

use std::sync::{Arc, OnceLock};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The savepoint of the member running now (members run one at a time, so one name serves them all).
const SAVEPOINT: &str = "hush_member";

/// The single writer of an SQLite database.
#[derive(Default)]
pub(super) struct SqliteWriter {
    open: Arc<Mutex<Option<Group>>>,
}

/// The open transaction of a group and what its members learn when it ends.
struct Group {
    txn: DatabaseTransaction,
    outcome: Arc<Outcome>,
    /// Whether an empty savepoint is open for the next member: the member before it opened one in the same
    /// hand-off that released its own part, or undid its part to it (`ROLLBACK TO` keeps the savepoint). The
    /// next member then starts without a hand-off of its own: one fewer trip to SQLite's thread per write,
    /// inside the writer lock. A group committed with it open commits it too (it is empty).
    savepoint_ready: bool,
}

/// How a group ended, set once by whichever member commits it.
type Outcome = OnceLock<Result<(), String>>;

/// One write's place in a group: its savepoint, with the writer lock held until it is released (or undone).
/// The member's last statements and the release of its savepoint go to SQLite's thread together
/// ([`Member::release_statement`]).
pub(super) struct Member {
    /// The lock, holding the open group; `None` once the member let go of it.
    writer: Option<OwnedMutexGuard<Option<Group>>>,
    /// Whether its part is released: what is left is committing the group.
    released: bool,
    /// Whether the hand-off that releases its part was sent and has not answered yet (see
    /// [`Member::release_answered`]).
    releasing: bool,
    outcome: Arc<Outcome>,
    lock: Arc<Mutex<Option<Group>>>,
}

impl SqliteWriter {
    /// Joins the open group (opening one if none is); holds the writer lock.
    pub(super) async fn join(&self, conn: &DatabaseConnection) -> Result<Member, DbErr> {
        let mut writer = self.open.clone().lock_owned().await;
        if writer.is_none() {
            *writer = Some(Group { txn: conn.begin().await?, outcome: Arc::default(), savepoint_ready: false });
        }
        let group = writer.as_mut().expect("opened above");
        // Even the member that opened the group: undoing it by dropping the group would hand its connection
        // back to the pool with the rollback still queued, holding SQLite's write lock while the next group
        // begins on another connection (which then fails with SQLITE_BUSY).
        if !std::mem::take(&mut group.savepoint_ready) {
            group.txn.execute_unprepared(&format!("SAVEPOINT {SAVEPOINT}")).await?;
        }
        let outcome = group.outcome.clone();
        Ok(Member { writer: Some(writer), released: false, releasing: false, outcome, lock: self.open.clone() })
    }
}

impl SqliteWriter {
    /// Makes one atomic change durable: with a group open, as the statement `in_group` inside it, committing
    /// the group for its members too; with none open, by `alone`, a transaction of its own run while this
    /// holds the writer lock (so no group begins on the pool meanwhile). A failure of the statement never fails
    /// the members: SQLite undoes a failed statement without touching the rest of its transaction.
    pub(super) async fn commit_change(
        &self,
        in_group: impl FnOnce() -> Statement,
        alone: impl AsyncFnOnce() -> Result<(), DbErr>,
    ) -> Result<(), DbErr> {
        let mut writer = self.open.lock().await;
        let Some(group) = writer.take() else {
            return alone().await;
        };
        // No member is in the middle of its savepoint: each one holds this lock until it released it.
        let ran = group.txn.execute_raw(in_group()).await;
        let committed = group.txn.commit().await.map_err(|error| error.to_string());
        // The members waiting to commit the group find it committed.
        let _ = group.outcome.set(committed.clone());
        ran?;
        committed.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))
    }
}

impl Member {
    /// The group's transaction, where this member's statements run.
    pub(super) fn txn(&self) -> &DatabaseTransaction {
        let writer = self.writer.as_ref().expect("held until the member ends");
        &writer.as_ref().expect("the group stays open while a member holds the lock").txn
    }

    /// The statements that release this member's savepoint and open the next member's, to run right after its
    /// last statement; [`Member::release_answered`] records how that hand-off ended.
    pub(super) fn release_statement(&mut self) -> Statement {
        self.releasing = true;
        Statement::from_string(DbBackend::Sqlite, format!("RELEASE {SAVEPOINT}; SAVEPOINT {SAVEPOINT}"))
    }

    /// Records how the hand-off carrying its [`release_statement`](Member::release_statement) ended: on success
    /// its part is released; on failure the statements stopped at the failing one, before the release, and
    /// dropping the member undoes its part.
    pub(super) fn release_answered<T>(&mut self, hand_off: Result<T, DbErr>) -> Result<T, DbErr> {
        self.releasing = false;
        let done = hand_off?;
        self.released = true;
        self.group_mut().savepoint_ready = true;
        Ok(done)
    }

    fn group_mut(&mut self) -> &mut Group {
        let writer = self.writer.as_mut().expect("held until the member ends");
        writer.as_mut().expect("the group stays open while a member holds the lock")
    }

    /// Lets go of the writer lock after its part was released, and returns once the group holding it is
    /// committed.
    pub(super) async fn commit(mut self) -> Result<(), DbErr> {
        debug_assert!(self.released, "released before the group is committed");
        let committing = self.commit_group_later();
        committing.await.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))?;
        match self.outcome.get().expect("set by this member's task or by the member that committed") {
            Ok(()) => Ok(()),
            Err(error) => Err(DbErr::Custom(format!("committing the write group: {error}"))),
        }
    }

    /// Lets go of the lock (the writers queued behind this one join the group before it is committed) and
    /// commits the group in a task of its own, unless another member committed it meanwhile: a caller that
    /// stops waiting must not leave its released part in a group nobody commits (holding SQLite's write lock
    /// until the next write).
    fn commit_group_later(&mut self) -> tokio::task::JoinHandle<()> {
        drop(self.writer.take());
        let (lock, committing) = (self.lock.clone(), self.outcome.clone());
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
    }
}

impl Drop for Member {
    /// A member dropped before [`Member::commit`]: its part is undone (it failed, or its caller stopped
    /// waiting), or, if it was released already, the group is committed all the same.
    fn drop(&mut self) {
        if self.released {
            if self.writer.is_some() {
                drop(self.commit_group_later());
            }
            return;
        }
        let Some(mut writer) = self.writer.take() else { return };
        if self.releasing {
            // Its caller stopped waiting while the hand-off releasing its part was on its way: that part may be
            // in the group or not, and once released it would commit with a savepoint for the next member in
            // place of its own, beyond any undo. Nothing of the group is acknowledged yet, so it fails whole.
            tokio::spawn(async move {
                let group = writer.take().expect("the group stays open while a member holds the lock");
                let _ = group.outcome.set(Err("a write of this group was cancelled while it was released".into()));
                if let Err(error) = group.txn.rollback().await {
                    tracing::error!(%error, "could not roll back a write group");
                }
            });
            return;
        }
        // The next member must find this one's part undone, so the lock goes with the task that undoes it.
        tokio::spawn(async move {
            let group = writer.as_mut().expect("the group stays open while a member holds the lock");
            // The savepoint stays open, empty, for the next member.
            match group.txn.execute_unprepared(&format!("ROLLBACK TO {SAVEPOINT}")).await {
                Ok(_) => group.savepoint_ready = true,
                Err(error) => {
                    // The group is in an unknown state: it fails, and every member waiting for it learns so.
                    tracing::error!(%error, "could not undo a failed write; its write group is rolled back");
                    let group = writer.take().expect("checked above");
                    let _ = group.outcome.set(Err(format!("undoing a failed write: {error}")));
                }
            }
        });
    }
}
