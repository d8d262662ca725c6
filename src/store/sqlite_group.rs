//! Group commit on SQLite: many writes, one fsync.
//!
//! SQLite has one writer, and every commit of the database in WAL mode with `synchronous=FULL` waits for an
//! fsync. Writes therefore share one open transaction, a *group*: each write runs in a savepoint of its own
//! inside it, holding the writer lock only while it runs, so a write that fails undoes its own part alone.
//! When a write is done it releases its savepoint and lets go of the lock; the first member to do so starts
//! the one task that commits the group once it gets the lock, after the writes queued before it, unless the
//! group was committed meanwhile. Writes that came while one group was committing all land in the next group,
//! and one commit makes them all durable.
//! Nothing is acknowledged before the commit of its group succeeded; if that commit fails, every member fails.
//! The commit begins the next group's transaction in the same hand-off, so a group opens without one, and
//! lets go of the lock while that hand-off runs, with the next group open on that transaction: writes join it
//! meanwhile, instead of waiting for the commit's fsync (see `Group::before`).
//!
//! Every statement is a hand-off to sqlx's SQLite thread and back, and while a member waits for one it holds
//! the writer lock: what bounds the writes a second is those hand-offs, not SQLite's work. So a *deferred*
//! member (a write of secret rows: it reads the rows it changes and writes everything at its commit) runs no
//! statement of its own while it holds the lock: at its commit it leaves its statements in the group as a
//! *part* and lets go of the lock at once. The parts waiting run, in the order they were left, at the front of
//! the next hand-off anyone makes in the group (a deferred member reading rows, an interactive member joining,
//! the group's commit), inside a savepoint of their own: one hand-off for the parts of up to [`MAX_BATCH`]
//! writes. When a part fails, that hand-off is undone to the savepoint and the parts run again one at a time,
//! so the failing one is undone alone and its member told. A hand-off that runs parts runs in a task of its
//! own, which a caller who stops waiting cannot stop half-way. Hand-offs that run no parts can be cut short:
//! the member's undo (back to its savepoint) then handles them, and a release cut short fails the whole group
//! (nothing of it was acknowledged).

use std::sync::{
    Arc, Mutex as StdMutex, OnceLock, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use futures_util::FutureExt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult, Statement,
    TransactionTrait,
};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

/// The savepoint of the interactive member running now (members run one at a time, so one name serves them all).
const SAVEPOINT: &str = "hush_member";
/// The savepoint the parts waiting run in, all together.
const BATCH: &str = "hush_batch";
/// The savepoint of one part, when the parts run one at a time after one of them failed.
const PART: &str = "hush_part";
/// The newest event cursor as one row, whatever the log holds (NULL before its first event).
const NEWEST_EVENT: &str = "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'events')";
/// How a group's commit ends its transaction: beginning the next group's in the same hand-off (see
/// [`SqliteWriter::next`]).
const COMMIT_AND_BEGIN: [&str; 2] = ["COMMIT", "BEGIN"];
/// Parts run in one hand-off at most: bounds the hand-offs a refused part costs (the parts of its batch run
/// again one at a time), the distinct statement strings sqlx prepares and caches, and the undo journal SQLite
/// keeps in memory for a batch (about 20 pages for a write of one secret, at most what one request
/// of the message limit changes).
const MAX_BATCH: usize = 64;

/// How a member uses the group while it holds the writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs statements of its own in its savepoint, reading and writing anything.
    Interactive,
    /// Writes only at its commit, as a part; reads the rows parts write only with [`Member::read_fresh`] (the
    /// parts waiting run first). It may read other tables directly: parts write secret rows, their versions
    /// and folders, events and audit entries only.
    Deferred,
}

/// The single writer of an SQLite database.
#[derive(Default)]
pub(super) struct SqliteWriter {
    open: Arc<Mutex<Option<Group>>>,
    /// The transaction the last group's commit began for the next group, in the hand-off that committed (a
    /// `BEGIN` of its own was one more hand-off, under the lock, for every group). It has run nothing yet: a
    /// deferred SQLite transaction takes no lock and reads no snapshot before its first statement, so the audit
    /// thread's own connection commits while it waits. Taken and left only while no group is open.
    next: Arc<StdMutex<Option<DatabaseTransaction>>>,
}

/// The open transaction of a group and what its members learn when it ends.
struct Group {
    /// Shared with the task running a hand-off for the member holding the lock (see [`Member::hand_off`]),
    /// which ends before the lock is let go, and with the commit of the group before it while that runs (see
    /// `before`).
    txn: Arc<DatabaseTransaction>,
    outcome: Arc<Outcome>,
    /// How the group before it ends, while its commit may still run: a group's commit lets go of the lock
    /// while its hand-offs run, leaving the next group open on the same transaction (see
    /// [`Member::commit_group_later`]). Deferred members join and leave their parts meanwhile; whatever writes
    /// in the transaction (an interactive member's savepoint, a deferred member's read running the parts
    /// waiting, this group's commit) waits until that commit ended, so none of it can run between that commit's
    /// hand-offs (several when its parts are many or one failed). Only a deferred member's plain reads of tables
    /// parts never write may run before it ended, before or between those hand-offs (sea-orm runs one
    /// statement at a time on the transaction): they change nothing, and if that commit failed, this group
    /// fails too, so nothing they saw is acknowledged.
    before: Option<Arc<Outcome>>,
    /// Whether a member ever joined it: a group opened by the commit of the one before and never joined holds
    /// nothing to commit (see [`SqliteWriter::commit_change`]).
    joined: bool,
    /// Where its commit leaves the transaction it begins for the next group ([`SqliteWriter::next`]).
    next: Arc<StdMutex<Option<DatabaseTransaction>>>,
    /// Whether a task to commit the group was started: the first member to let go of its released part
    /// starts it, and it commits whatever the group holds when it gets the lock.
    commit_started: bool,
    /// Written by the member holding the lock, taken by whoever runs the next hand-off (a `std` lock: never
    /// held across a hand-off, and members reach it through a shared reference).
    waiting: StdMutex<Waiting>,
}

/// What waits in a group for its next hand-off.
#[derive(Default)]
struct Waiting {
    /// Whether an empty savepoint is open for the next interactive member: the member before it opened one in
    /// the same hand-off that released its own part, or undid its part to it (`ROLLBACK TO` keeps the
    /// savepoint). The next member then starts without a hand-off of its own. Released before parts run, so
    /// that no interactive member's undo can reach them.
    savepoint_ready: bool,
    /// The parts of deferred members, in the order they were left.
    parts: Vec<Part>,
}

/// A deferred member's statements and where it learns how they ran: the newest event cursor once they did.
struct Part {
    statements: Vec<Statement>,
    ran: oneshot::Sender<Result<Option<i64>, DbErr>>,
}

/// How a part ran, as its member learns it: `Err` when it was never run (its group failed first).
pub(super) type PartRan = oneshot::Receiver<Result<Option<i64>, DbErr>>;

/// How a group ended, set once by whichever commits (or fails) it; its members wait for it.
#[derive(Default)]
struct Outcome {
    ended: OnceLock<Result<(), String>>,
    told: Notify,
}

impl Outcome {
    fn set(&self, ended: Result<(), String>) {
        if self.ended.set(ended).is_ok() {
            self.told.notify_waiters();
        }
    }

    fn get(&self) -> Option<&Result<(), String>> {
        self.ended.get()
    }

    async fn wait(&self) -> &Result<(), String> {
        loop {
            // Made before the check: it is told of a `set` from then on, even before it is polled.
            let told = self.told.notified();
            if let Some(ended) = self.ended.get() {
                return ended;
            }
            told.await;
        }
    }
}

/// One write's place in a group, with the writer lock held until it is released (or undone).
pub(super) struct Member {
    /// The lock, holding the open group; `None` once the member let go of it.
    writer: Option<OwnedMutexGuard<Option<Group>>>,
    mode: Mode,
    /// Whether its part is released (or, deferred, left in the group): what is left is committing the group.
    released: bool,
    /// Whether a hand-off that may leave the group half run is on its way (an interactive member's release), or
    /// one that ran parts failed: if the member is dropped then, its whole group fails.
    in_flight: AtomicBool,
    /// Tells how the hand-off running parts for this member ended, while one runs (see [`Member::hand_off`]).
    handing_off: StdMutex<Option<oneshot::Receiver<bool>>>,
    outcome: Arc<Outcome>,
    lock: Arc<Mutex<Option<Group>>>,
}

impl SqliteWriter {
    /// Joins the open group (opening one if none is); holds the writer lock. An interactive member runs the
    /// parts waiting and opens its savepoint; a deferred one runs nothing.
    pub(super) async fn join(&self, conn: &DatabaseConnection, mode: Mode) -> Result<Member, DbErr> {
        let mut writer = self.open.clone().lock_owned().await;
        // An interactive member's statements run in turn after the hand-offs of the group before (see
        // `Group::before`): it waits for that group's commit before it is a member (cancelled meanwhile, it leaves
        // nothing to undo). A deferred member waits for nothing; it need only not join a group that cannot commit.
        let doomed = match writer.as_ref() {
            Some(group) if mode == Mode::Interactive => group.after_before().await.err(),
            Some(group) => group.before_failed(),
            None => None,
        };
        if let Some(why) = doomed {
            let group = writer.take().expect("checked above");
            group.fail(why).await;
        }
        if writer.is_none() {
            let begun = parked(&self.next).take();
            let txn = match begun {
                Some(txn) => txn,
                None => conn.begin().await?,
            };
            *writer = Some(Group::open(Arc::new(txn), self.next.clone(), None));
        }
        let group = writer.as_mut().expect("opened above");
        group.joined = true;
        let outcome = group.outcome.clone();
        let member = Member {
            writer: Some(writer),
            mode,
            released: false,
            in_flight: AtomicBool::new(false),
            handing_off: StdMutex::new(None),
            outcome,
            lock: self.open.clone(),
        };
        if mode == Mode::Interactive {
            // Even the member that opened the group: undoing it by dropping the group would hand its connection
            // back to the pool with the rollback still queued, holding SQLite's write lock while the next group
            // begins on another connection (which then fails with SQLITE_BUSY).
            member.open_savepoint().await?;
        }
        Ok(member)
    }

    /// Makes one atomic change durable: with a group open, as the statement `in_group` inside it (a part of its
    /// own, after the parts waiting), committing the group for its members too; with none open, by `alone`, a
    /// transaction of its own run while this holds the writer lock (so no group begins on the pool meanwhile).
    /// A failure of the statement never fails the members: it is undone alone, as a failing part is.
    pub(super) async fn commit_change(
        &self,
        in_group: impl FnOnce() -> Statement,
        alone: impl AsyncFnOnce() -> Result<(), DbErr>,
    ) -> Result<(), DbErr> {
        let mut writer = self.open.lock().await;
        // Waited for while the group is still in its place: a caller that stops waiting leaves it there.
        let settled = match writer.as_ref() {
            Some(group) => group.after_before().await,
            None => Ok(()),
        };
        let Some(group) = writer.take() else {
            return alone().await;
        };
        // A group that cannot commit fails (its members told at once), and the change goes alone.
        if let Err(why) = settled {
            group.fail(why).await;
            return alone().await;
        }
        if !group.joined {
            // Opened by the commit of the group before it, holding nothing: its transaction, begun by that
            // commit, waits for the next group as usual, and this change goes alone.
            group.leave_txn();
            return alone().await;
        }
        // No member is in the middle of its savepoint: each one holds this lock until it released it.
        let ran = group.leave_part(vec![in_group()]);
        let outcome = group.outcome.clone();
        // Its members learn the outcome, and its commit task finds it committed.
        let committed = group.commit(None).await;
        part_ran(ran, &outcome).await?;
        committed.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))
    }
}

impl Group {
    /// A group on `txn`, its commit leaving the next group's transaction in `next`, after the group `before`.
    fn open(
        txn: Arc<DatabaseTransaction>,
        next: Arc<StdMutex<Option<DatabaseTransaction>>>,
        before: Option<Arc<Outcome>>,
    ) -> Self {
        Group {
            txn,
            outcome: Arc::default(),
            before,
            joined: false,
            next,
            commit_started: false,
            waiting: Default::default(),
        }
    }

    /// Why the group before this one failed, if it did and already ended.
    fn before_failed(&self) -> Option<String> {
        self.before.as_ref()?.get()?.as_ref().err().map(|failed| before_error(failed))
    }

    /// Waits for the group before this one to end; its error if it failed.
    async fn after_before(&self) -> Result<(), String> {
        match &self.before {
            Some(before) => before.wait().await.as_ref().map_err(|error| before_error(error)).copied(),
            None => Ok(()),
        }
    }

    /// Leaves the group's transaction, begun by a commit and holding nothing, for the next group (see
    /// [`SqliteWriter::next`]); dropped (sea-orm rolls it back) if someone else still holds it.
    fn leave_txn(self) {
        park(&self.next, self.txn);
    }

    /// Leaves `statements` as a part for the group's next hand-off.
    fn leave_part(&self, statements: Vec<Statement>) -> PartRan {
        let (ran, told) = oneshot::channel();
        self.waiting().parts.push(Part { statements, ran });
        told
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the parts waiting, and whether the ready savepoint must be released before they run; `None` when
    /// no part waits (the ready savepoint then stays).
    fn take_parts(&self) -> Option<(bool, Vec<Part>)> {
        let mut waiting = self.waiting();
        if waiting.parts.is_empty() {
            return None;
        }
        Some((std::mem::take(&mut waiting.savepoint_ready), std::mem::take(&mut waiting.parts)))
    }

    /// Runs the parts waiting and commits, beginning the next group's transaction in the same hand-off, once the
    /// group before it ended; sets the outcome. With `next_open` (the writer lock, holding nothing), the next
    /// group is opened there on that transaction and the lock let go before the hand-off, so that writes join
    /// it while this one commits; else the transaction is left for the next group (see [`SqliteWriter::next`]).
    /// On a failure the group is rolled back; with a next group open on the transaction, that group is rolled
    /// back with it when it learns of the failure (at the next write joining, the audit thread's next change,
    /// or its own commit), and fails.
    ///
    /// sqlx counts the transaction as open throughout (its `BEGIN` and `COMMIT` are not sqlx's own): so it is,
    /// the next group's. Should the `BEGIN` fail after the `COMMIT` (SQLite fails a `BEGIN` only when a
    /// transaction is open, which a successful `COMMIT` rules out), the members would be told of a failure of
    /// writes that are stored: an unknown outcome, never a lost write.
    async fn commit(self, next_open: Option<OwnedMutexGuard<Option<Group>>>) -> Result<(), String> {
        if let Err(why) = self.after_before().await {
            self.fail(why.clone()).await;
            return Err(why);
        }
        let parts = self.take_parts();
        let Group { txn, outcome, next, .. } = self;
        if let Some(mut open) = next_open {
            *open = Some(Group::open(txn.clone(), next.clone(), Some(outcome.clone())));
        }
        let commit_and_begin = COMMIT_AND_BEGIN.map(|sql| raw(sql.to_owned())).to_vec();
        let committed = match parts {
            Some((release_ready, parts)) => run_parts(&txn, release_ready, parts, commit_and_begin).await.map(drop),
            None => super::execute_in_turn(&*txn, commit_and_begin).await.map(drop),
        };
        let ended = match committed {
            Ok(()) => {
                park(&next, txn);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "could not commit a write group; it is rolled back");
                // With a next group open on it, that group rolls it back when it learns this one failed.
                match Arc::strong_count(&txn) {
                    1 => roll_back(txn).await,
                    _ => drop(txn),
                }
                Err(error.to_string())
            }
        };
        // Set once this no longer holds the transaction: the next group may then take it whole.
        outcome.set(ended.clone());
        ended
    }

    /// Fails the group: rolls it back, once the group before it ended, and tells its members (the parts waiting
    /// learn it from their dropped senders).
    async fn fail(self, why: String) {
        self.outcome.set(Err(why));
        let _ = self.after_before().await;
        roll_back(self.txn).await;
    }
}

/// Why a group cannot commit: the group before it failed with `error`.
fn before_error(error: &str) -> String {
    format!("the write group before it failed: {error}")
}

/// The transaction a commit began for the next group, where it waits (see [`SqliteWriter::next`]).
fn parked(next: &StdMutex<Option<DatabaseTransaction>>) -> std::sync::MutexGuard<'_, Option<DatabaseTransaction>> {
    next.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parks `txn` for the next group, unless someone else still holds it (dropped then: sea-orm rolls it back when
/// the last holder lets go).
fn park(next: &StdMutex<Option<DatabaseTransaction>>, txn: Arc<DatabaseTransaction>) {
    if let Some(txn) = Arc::into_inner(txn) {
        *parked(next) = Some(txn);
    }
}

/// Why a group could not be committed or rolled back by its owner: a hand-off task still held it (never the
/// case: see [`Member::hand_off`]); dropped by the last holder, sea-orm rolls it back.
const IN_USE: &str = "the write group was still in use";

async fn roll_back(txn: Arc<DatabaseTransaction>) {
    let rolled_back = match Arc::into_inner(txn) {
        Some(txn) => txn.rollback().await.map_err(|error| error.to_string()),
        None => Err(IN_USE.to_owned()),
    };
    if let Err(error) = rolled_back {
        tracing::error!(%error, "could not roll back a write group");
    }
}

/// How a part ran: the newest event cursor, or its own error; a part that never ran (its group failed first)
/// reports its group's error.
async fn part_ran(ran: PartRan, outcome: &Outcome) -> Result<Option<i64>, DbErr> {
    let Ok(ran) = ran.await else {
        let why = match outcome.wait().await {
            Err(error) => error.as_str(),
            Ok(()) => "the write was never run",
        };
        return Err(DbErr::Custom(format!("committing the write group: {why}")));
    };
    ran
}

fn raw(sql: String) -> Statement {
    Statement::from_string(DbBackend::Sqlite, sql)
}

/// Runs `parts` (after releasing the empty savepoint left for the next member, when `release_ready`), then
/// `then`, in one hand-off per [`MAX_BATCH`] parts; tells each part's member how it ran and returns the rows
/// `then` produced. An error returned means the group is in an unknown state: it must be rolled back.
async fn run_parts(
    txn: &DatabaseTransaction,
    mut release_ready: bool,
    mut parts: Vec<Part>,
    then: Vec<Statement>,
) -> Result<Vec<QueryResult>, DbErr> {
    while parts.len() > MAX_BATCH {
        let rest = parts.split_off(MAX_BATCH);
        run_batch(txn, std::mem::take(&mut release_ready), parts, Vec::new()).await?;
        parts = rest;
    }
    run_batch(txn, release_ready, parts, then).await
}

/// [`run_parts`] for at most [`MAX_BATCH`] parts, in one hand-off. When a statement of a part fails, the
/// hand-off is undone to before the parts and they run again one at a time, each in a savepoint of its own: the
/// failing one is undone alone and its member gets the error; then `then` runs.
async fn run_batch(
    txn: &DatabaseTransaction,
    release_ready: bool,
    parts: Vec<Part>,
    then: Vec<Statement>,
) -> Result<Vec<QueryResult>, DbErr> {
    let mut batch = Vec::with_capacity(4 + then.len() + parts.iter().map(|part| part.statements.len()).sum::<usize>());
    if release_ready {
        batch.push(raw(format!("RELEASE {SAVEPOINT}")));
    }
    batch.push(raw(format!("SAVEPOINT {BATCH}")));
    batch.extend(parts.iter().flat_map(|part| part.statements.iter().cloned()));
    batch.push(raw(format!("RELEASE {BATCH}")));
    batch.push(raw(NEWEST_EVENT.to_owned()));
    batch.extend(then.iter().cloned());
    match txn.query_all_raw(super::in_turn(batch)).await {
        Ok(rows) => {
            let mut rows = rows.into_iter();
            let newest = newest_event(rows.next().ok_or_else(|| DbErr::Custom("no newest event cursor".into()))?)?;
            for part in parts {
                let _ = part.ran.send(Ok(newest));
            }
            Ok(rows.collect())
        }
        Err(failed) => {
            // The statements before the failing one ran, SQLite undid that one alone, and the rest never ran.
            // Past the parts there is no savepoint to undo to: the error is returned, and the group is lost.
            let undo = txn.execute_unprepared(&format!("ROLLBACK TO {BATCH}; RELEASE {BATCH}")).await;
            undo.map_err(|undoing| DbErr::Custom(format!("{failed}; then undoing its batch: {undoing}")))?;
            run_one_by_one(txn, parts).await?;
            match then.is_empty() {
                true => Ok(Vec::new()),
                false => txn.query_all_raw(super::in_turn(then)).await,
            }
        }
    }
}

/// Runs `parts` one hand-off each, undoing a failing one alone; tells each member how its part ran.
async fn run_one_by_one(txn: &DatabaseTransaction, parts: Vec<Part>) -> Result<(), DbErr> {
    let mut ran = Vec::with_capacity(parts.len());
    for Part { statements, ran: told } in parts {
        let mut alone = Vec::with_capacity(statements.len() + 2);
        alone.push(raw(format!("SAVEPOINT {PART}")));
        alone.extend(statements);
        alone.push(raw(format!("RELEASE {PART}")));
        match super::execute_in_turn(txn, alone).await {
            Ok(_) => ran.push(told),
            Err(error) => {
                txn.execute_unprepared(&format!("ROLLBACK TO {PART}; RELEASE {PART}")).await?;
                let _ = told.send(Err(error));
            }
        }
    }
    let newest = txn.query_one_raw(raw(NEWEST_EVENT.to_owned())).await?.map(newest_event).transpose()?.flatten();
    for told in ran {
        let _ = told.send(Ok(newest));
    }
    Ok(())
}

fn newest_event(row: QueryResult) -> Result<Option<i64>, DbErr> {
    row.try_get_by_index(0)
}

impl Member {
    /// The group's transaction, where this member's statements run.
    pub(super) fn txn(&self) -> &DatabaseTransaction {
        &self.group().txn
    }

    fn group(&self) -> &Group {
        let writer = self.writer.as_ref().expect("held until the member ends");
        writer.as_ref().expect("the group stays open while a member holds the lock")
    }

    /// Whether the member writes only at its commit (see [`Mode::Deferred`]).
    pub(super) fn is_deferred(&self) -> bool {
        self.mode == Mode::Deferred
    }

    /// Runs the parts waiting and opens this interactive member's savepoint, in one hand-off when parts wait
    /// (none when none wait and the savepoint is ready).
    async fn open_savepoint(&self) -> Result<(), DbErr> {
        let group = self.group();
        let savepoint = raw(format!("SAVEPOINT {SAVEPOINT}"));
        let Some((release_ready, parts)) = group.take_parts() else {
            let ready = std::mem::take(&mut group.waiting().savepoint_ready);
            return match ready {
                true => Ok(()),
                false => group.txn.execute_raw(savepoint).await.map(drop),
            };
        };
        self.hand_off(release_ready, parts, vec![savepoint]).await.map(drop)
    }

    /// The rows `select` reads once the parts waiting ran (in the same hand-off): how a deferred member reads
    /// rows that parts write.
    pub(super) async fn read_fresh(&self, select: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let group = self.group();
        // The parts waiting run once the group before committed (see `Group::before`).
        if let Err(why) = group.after_before().await {
            // This group cannot commit: dropped, the member fails it.
            self.in_flight.store(true, Ordering::SeqCst);
            return Err(DbErr::Custom(why));
        }
        match group.take_parts() {
            None => group.txn.query_all_raw(select).await,
            Some((release_ready, parts)) => self.hand_off(release_ready, parts, vec![select]).await,
        }
    }

    /// Runs `parts`, then `then` ([`run_parts`]), in a task of its own, so that a caller who stops waiting
    /// cannot stop it half-way (sqlx stops running a statement string once nobody reads its results, which would
    /// leave the group in an unknown state, failing every write in it): the member's drop then waits for the task
    /// to end before it lets go of the lock. If the hand-off fails, the group does.
    async fn hand_off(
        &self,
        release_ready: bool,
        parts: Vec<Part>,
        then: Vec<Statement>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let txn = self.group().txn.clone();
        let (ended, ending) = oneshot::channel();
        let (answer, answered) = oneshot::channel();
        *self.handing_off.lock().unwrap_or_else(PoisonError::into_inner) = Some(ending);
        tokio::spawn(async move {
            let running = std::panic::AssertUnwindSafe(run_parts(&txn, release_ready, parts, then));
            let ran = running.catch_unwind().await.unwrap_or_else(|_| Err(DbErr::Custom("a hand-off panicked".into())));
            // Before it tells: whoever learns it ended may commit the group, which takes it whole.
            drop(txn);
            let _ = ended.send(ran.is_ok());
            let _ = answer.send(ran);
        });
        let ran = answered.await.unwrap_or_else(|_| Err(DbErr::Custom("the write group's hand-off stopped".into())));
        self.handing_off.lock().unwrap_or_else(PoisonError::into_inner).take();
        if ran.is_err() {
            self.in_flight.store(true, Ordering::SeqCst);
        }
        ran
    }

    /// The statements that release this interactive member's savepoint and open the next member's, to run
    /// right after its last statement; [`Member::release_answered`] records how that hand-off ended.
    pub(super) fn release_statement(&mut self) -> Statement {
        debug_assert_eq!(self.mode, Mode::Interactive, "a deferred member has no savepoint");
        *self.in_flight.get_mut() = true;
        raw(format!("RELEASE {SAVEPOINT}; SAVEPOINT {SAVEPOINT}"))
    }

    /// Records how the hand-off carrying its [`release_statement`](Member::release_statement) ended: on success
    /// its part is released; on failure the statements stopped at the failing one, before the release, and
    /// dropping the member undoes its part.
    pub(super) fn release_answered<T>(&mut self, hand_off: Result<T, DbErr>) -> Result<T, DbErr> {
        *self.in_flight.get_mut() = false;
        let done = hand_off?;
        self.released = true;
        self.group().waiting().savepoint_ready = true;
        Ok(done)
    }

    /// How the part this member [deferred](Member::defer) ran (see [`part_ran`]).
    pub(super) async fn part_ran(&self, ran: PartRan) -> Result<Option<i64>, DbErr> {
        part_ran(ran, &self.outcome).await
    }

    /// Leaves a deferred member's `statements` in the group as its part and lets go of the lock; the part runs
    /// at the group's next hand-off (at the latest, its commit, which this starts).
    pub(super) fn defer(&mut self, statements: Vec<Statement>) -> PartRan {
        debug_assert_eq!(self.mode, Mode::Deferred, "an interactive member runs its own statements");
        let ran = self.group().leave_part(statements);
        self.released = true;
        self.commit_group_later();
        ran
    }

    /// Lets go of the writer lock after its part was released (or left), and returns once the group holding
    /// it is committed.
    pub(super) async fn commit(mut self) -> Result<(), DbErr> {
        debug_assert!(self.released, "released before the group is committed");
        self.commit_group_later();
        match self.outcome.wait().await {
            Ok(()) => Ok(()),
            Err(error) => Err(DbErr::Custom(format!("committing the write group: {error}"))),
        }
    }

    /// Lets go of the lock (the writers queued behind this one join the group before it is committed) and,
    /// unless a member before it did, starts the task that commits the group: a caller that stops waiting must
    /// not leave its released part in a group nobody commits (holding SQLite's write lock until the next
    /// write). One task per group: it gets the lock after the writers queued before it, and commits whatever
    /// the group holds then, unless it was committed meanwhile.
    fn commit_group_later(&mut self) {
        let Some(mut writer) = self.writer.take() else { return };
        debug_assert!(
            self.handing_off.get_mut().unwrap_or_else(PoisonError::into_inner).is_none(),
            "a member lets go of the lock only once its hand-off ended (none awaits `read_fresh` partly)"
        );
        let group = writer.as_mut().expect("the group stays open while a member holds the lock");
        let started = std::mem::replace(&mut group.commit_started, true);
        let before = group.before.clone();
        drop(writer);
        if started {
            return;
        }
        let (lock, committing) = (self.lock.clone(), self.outcome.clone());
        tokio::spawn(async move {
            // The group before commits first; waiting for it without the lock lets writes go on joining.
            if let Some(before) = before {
                before.wait().await;
            }
            let mut writer = lock.lock_owned().await;
            if committing.get().is_none() {
                // Not committed yet, so it is still the open group: a committed group is never left open.
                let group = writer.take().expect("an uncommitted group stays open");
                debug_assert!(Arc::ptr_eq(&group.outcome, &committing));
                // Sets the outcome; the next group opens, and the lock is let go, while it commits.
                let committing_group = std::panic::AssertUnwindSafe(group.commit(Some(writer)));
                if committing_group.catch_unwind().await.is_err() {
                    // Its members, and the next group, must not wait forever.
                    committing.set(Err("committing the write group panicked".to_owned()));
                }
            }
        });
    }
}

impl Drop for Member {
    /// A member dropped before [`Member::commit`]: its part is undone (it failed, or its caller stopped
    /// waiting), or, if it was released already, the group is committed all the same.
    fn drop(&mut self) {
        if self.released {
            self.commit_group_later();
            return;
        }
        let Some(mut writer) = self.writer.take() else { return };
        if let Some(ending) = self.handing_off.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            // Its caller stopped waiting for a hand-off that runs parts: the lock goes with the task that waits
            // for it to end. Ended well, it left this member nothing to undo (it ran no statement of its own; an
            // interactive member's savepoint stays open, empty, for the next member).
            let mode = self.mode;
            tokio::spawn(async move {
                match ending.await.unwrap_or(false) {
                    true if mode == Mode::Interactive => {
                        writer
                            .as_ref()
                            .expect("the group stays open while a member holds the lock")
                            .waiting()
                            .savepoint_ready = true;
                    }
                    true => {}
                    false => {
                        let group = writer.take().expect("the group stays open while a member holds the lock");
                        group.fail("running the writes of the group failed".into()).await;
                    }
                }
            });
            return;
        }
        if *self.in_flight.get_mut() {
            // Its caller stopped waiting while the hand-off releasing its own part was on its way (the group may
            // hold any prefix of it, and once released its part would commit beyond any undo), or a hand-off
            // running parts failed. Nothing of the group is acknowledged yet, so it fails whole.
            tokio::spawn(async move {
                let group = writer.take().expect("the group stays open while a member holds the lock");
                group.fail("a write of this group was cancelled or failed while it ran".into()).await;
            });
            return;
        }
        if self.mode == Mode::Deferred {
            // It ran nothing of its own in the group: letting go of the lock is all.
            return;
        }
        // The next member must find this one's part undone, so the lock goes with the task that undoes it.
        tokio::spawn(async move {
            let group = writer.as_mut().expect("the group stays open while a member holds the lock");
            // The savepoint stays open, empty, for the next member.
            match group.txn.execute_unprepared(&format!("ROLLBACK TO {SAVEPOINT}")).await {
                Ok(_) => group.waiting().savepoint_ready = true,
                Err(error) => {
                    // The group is in an unknown state: it fails, and every member waiting for it learns so.
                    tracing::error!(%error, "could not undo a failed write; its write group is rolled back");
                    let group = writer.take().expect("checked above");
                    group.fail(format!("undoing a failed write: {error}")).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use sea_orm::{
        ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryTrait, Set, Statement, TransactionTrait,
        sea_query::InsertStatement,
    };
    use tokio::task::JoinHandle;

    use crate::store::{Store, WriteTxn, entities::outbox_state, tests::sqlite_store};

    /// A write of one row keyed `id` (a repeated key is refused, as a taken secret name is).
    fn insert(id: i64) -> InsertStatement {
        let row = outbox_state::ActiveModel { id: Set(id.try_into().unwrap()), pruned_through: Set(0) };
        outbox_state::Entity::insert(row).into_query()
    }

    /// [`insert`] as a statement of its own.
    fn row(id: i64) -> Statement {
        DbBackend::Sqlite.build(&insert(id))
    }

    /// The keys written by [`row`], in order.
    async fn rows(store: &Store) -> Vec<i64> {
        let sql = "SELECT id FROM outbox_state WHERE id > 1 ORDER BY id";
        let found = store.conn().query_all_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap();
        found.iter().map(|row| row.try_get_by_index(0).unwrap()).collect()
    }

    /// Deferred writes that queued behind each other share their group's hand-offs; one that SQLite refuses
    /// fails alone, and the writes before and after it in the same hand-off are stored.
    #[tokio::test]
    async fn a_refused_deferred_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let mut commits = Vec::new();
        for id in [10, 11, 10, 12] {
            // Each write holds the lock until its commit leaves its part, so the next one waits for that.
            let txn = store.begin_deferred_write().await.unwrap();
            txn.at_commit([insert(id).into()]);
            commits.push(tokio::spawn(txn.commit()));
        }
        let mut answers = Vec::new();
        for commit in commits {
            answers.push(commit.await.unwrap().map_err(|error| error.to_string()));
        }
        assert!(answers[0].is_ok() && answers[1].is_ok() && answers[3].is_ok(), "{answers:?}");
        assert!(answers[2].as_ref().unwrap_err().contains("UNIQUE"), "the refusal names its cause: {answers:?}");
        assert_eq!(rows(&store).await, [10, 11, 12]);
        // The group's connection is usable for the next group.
        let txn = store.begin_write().await.unwrap();
        txn.at_commit([insert(13).into()]);
        txn.commit().await.unwrap();
        assert_eq!(rows(&store).await, [10, 11, 12, 13]);
    }

    /// A group's commit begins the next group's transaction, which holds no lock and no snapshot while it waits:
    /// another connection (the audit thread's) commits meanwhile, and the next group takes that transaction,
    /// sees what was committed, and commits.
    #[tokio::test]
    async fn the_transaction_begun_for_the_next_group_leaves_the_database_to_others_until_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let txn = store.begin_deferred_write().await.unwrap();
        txn.at_commit([insert(20).into()]);
        txn.commit().await.unwrap();
        let writer = store.sqlite_writer.clone().expect("SQLite");
        let opened = writer.open.lock().await.as_ref().is_some_and(|next| !next.joined && next.before.is_some());
        assert!(opened, "the commit opened the next group on the transaction it began");
        // The audit thread's change goes alone, on a connection of its own, and leaves that transaction waiting.
        let file = crate::store::sqlite_audit_connection::main_file(store.conn()).await.unwrap().expect("a file");
        let other = rusqlite::Connection::open(file).unwrap();
        other.busy_timeout(std::time::Duration::from_secs(1)).unwrap();
        let in_group = || unreachable!("no member joined the open group");
        let alone = async || {
            other.execute("INSERT INTO outbox_state (id, pruned_through) VALUES (21, 0)", []).expect("not locked");
            Ok(())
        };
        writer.commit_change(in_group, alone).await.unwrap();
        assert!(writer.next.lock().unwrap().is_some(), "the begun transaction waits for the next group");
        let txn = store.begin_write().await.unwrap();
        assert!(writer.next.lock().unwrap().is_none(), "the next group took it");
        let sql = "SELECT count(*) FROM outbox_state WHERE id > 1";
        let seen = txn.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().unwrap();
        assert_eq!(seen.try_get_by_index::<i64>(0).unwrap(), 2, "the row committed meanwhile is seen");
        txn.execute_raw(row(22)).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(rows(&store).await, [20, 21, 22]);
    }

    /// While a group's commit runs, the next writes join the next group instead of waiting for it; they are
    /// committed after it, in the transaction its commit began.
    #[tokio::test]
    async fn writes_join_the_next_group_while_a_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        // Another connection holds SQLite's write lock, so the first group's commit waits in its hand-off.
        let file = crate::store::sqlite_audit_connection::main_file(store.conn()).await.unwrap().expect("a file");
        let mut other = rusqlite::Connection::open(file).unwrap();
        let holding = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        let first = store.begin_deferred_write().await.unwrap();
        first.at_commit([insert(30).into()]);
        let first = tokio::spawn(first.commit());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!first.is_finished(), "the first group's commit waits for SQLite's write lock");
        let joined = tokio::time::timeout(std::time::Duration::from_secs(2), store.begin_deferred_write());
        let second = joined.await.expect("joined while the first group commits").unwrap();
        second.at_commit([insert(31).into()]);
        let second = tokio::spawn(second.commit());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "not acknowledged before the group before it committed");
        holding.rollback().unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(rows(&store).await, [30, 31]);
    }

    /// A group opened by a commit that then failed cannot commit: the next writes, deferred and interactive, go
    /// into a new group and are stored, and so does the audit thread's change.
    #[tokio::test]
    async fn a_group_after_a_failed_commit_gives_way_to_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let writer = store.sqlite_writer.clone().expect("SQLite");
        let open_doomed = async || {
            let failed = std::sync::Arc::new(super::Outcome::default());
            failed.set(Err("disk full".to_owned()));
            let txn = std::sync::Arc::new(store.conn().begin().await.unwrap());
            *writer.open.lock().await = Some(super::Group::open(txn, writer.next.clone(), Some(failed)));
        };
        for (id, mode) in [(40, super::Mode::Deferred), (41, super::Mode::Interactive)] {
            open_doomed().await;
            let txn = match mode {
                super::Mode::Deferred => store.begin_deferred_write().await.unwrap(),
                super::Mode::Interactive => store.begin_write().await.unwrap(),
            };
            txn.at_commit([insert(id).into()]);
            txn.commit().await.unwrap();
        }
        open_doomed().await;
        let in_group = || unreachable!("the group cannot commit");
        writer.commit_change(in_group, async || store.conn().execute_raw(row(42)).await.map(drop)).await.unwrap();
        assert_eq!(rows(&store).await, [40, 41, 42]);
    }

    /// A deferred write of `id`, committing in a task of its own, and the deferred write that holds the lock
    /// after it: the first one's part waits in the group for the second one's next hand-off.
    async fn a_part_waiting(store: &Store, id: i64) -> (JoinHandle<Result<(), DbErr>>, WriteTxn) {
        let first = store.begin_deferred_write().await.unwrap();
        first.at_commit([insert(id).into()]);
        let first = tokio::spawn(first.commit());
        (first, store.begin_deferred_write().await.unwrap())
    }

    /// More parts than one hand-off takes run in several, in order, after the savepoint left ready is released
    /// (once), and before the caller's own statement; a refused one among them fails alone.
    #[tokio::test]
    async fn parts_beyond_one_batch_run_in_order_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let unique: Vec<i64> = (100..100 + super::MAX_BATCH as i64 + 10).collect();
        // A repeated key in the first hand-off: the parts after it, in that one and the next, still run.
        let mut ids = unique.clone();
        ids.insert(20, unique[3]);
        let (parts, told): (Vec<_>, Vec<_>) = ids
            .iter()
            .map(|&id| {
                let (ran, told) = tokio::sync::oneshot::channel();
                (super::Part { statements: vec![row(id)], ran }, told)
            })
            .unzip();
        let txn = store.conn().begin().await.unwrap();
        txn.execute_unprepared(&format!("SAVEPOINT {}", super::SAVEPOINT)).await.unwrap();
        let count = Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM outbox_state WHERE id >= 100");
        let counted = super::run_parts(&txn, true, parts, vec![count]).await.unwrap();
        let counted: i64 = counted[0].try_get_by_index(0).unwrap();
        assert_eq!(counted, unique.len() as i64, "the caller's statement runs after every part");
        txn.commit().await.unwrap();
        let mut answers = Vec::new();
        for told in told {
            answers.push(told.await.unwrap().is_ok());
        }
        let refused: Vec<usize> = (0..answers.len()).filter(|&i| !answers[i]).collect();
        assert_eq!(refused, [20], "only the repeated key is refused");
        assert_eq!(rows(&store).await, unique);
    }

    /// A deferred write reads what the writes before it left waiting in the group.
    #[tokio::test]
    async fn a_deferred_read_sees_the_writes_waiting_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let (first, second) = a_part_waiting(&store, 20).await;
        let select = Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM outbox_state WHERE id = 20");
        let seen: i64 = second.read_fresh(select).await.unwrap()[0].try_get_by_index(0).unwrap();
        assert_eq!(seen, 1, "the first write ran before the second read");
        second.at_commit([insert(21).into()]);
        second.commit().await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(rows(&store).await, [20, 21]);
    }

    /// A read whose caller went away while it ran the writes waiting does not cut them short: they run to their
    /// end and commit with their group; the lock is let go after them, and the next group works.
    #[tokio::test]
    async fn a_read_given_up_while_it_runs_waiting_writes_lets_them_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let (first, second) = a_part_waiting(&store, 30).await;
        let select = Statement::from_string(DbBackend::Sqlite, "SELECT 1");
        let mut read = Box::pin(second.read_fresh(select));
        assert!((&mut read).now_or_never().is_none(), "the hand-off is on its way");
        drop(read);
        drop(second);
        first.await.unwrap().unwrap();
        assert_eq!(rows(&store).await, [30]);
        let next = store.begin_deferred_write().await.unwrap();
        next.at_commit([insert(31).into()]);
        next.commit().await.unwrap();
        assert_eq!(rows(&store).await, [30, 31]);
    }
}
