//! Group commit for the audit entries of reads.
//!
//! A read must have its audit entry durable before its answer leaves the server. Committing each entry in a
//! write transaction of its own made every read wait for the single SQLite writer and pay one fsync alone.
//! Instead one task per store takes every entry waiting in its queue, inserts them in one multi-row
//! statement, commits once, and only then releases each caller: under
//! load one commit serves many reads; with a single caller nothing waits longer than its own commit (there is
//! no timer, a group is simply whatever queued while the previous group was committing).

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryTrait};
use tokio::sync::{mpsc, oneshot};

use super::{Store, entities::audit_log};

/// Entries in one group: bounds one statement's parameters (13 per row; SQLite allows 32 766, PostgreSQL
/// 65 535) and one transaction's size.
const MAX_GROUP: usize = 1_000;
/// Entries that may wait for a group at once; callers beyond it wait for room (back-pressure, not memory).
const QUEUE: usize = 16_384;

/// One entry and the caller waiting for it to be durable.
type Waiting = (audit_log::ActiveModel, oneshot::Sender<Result<(), String>>);

/// The sending side of the queue, held by every clone of the [`Store`].
#[derive(Clone)]
pub(super) struct AuditAppender {
    queue: mpsc::Sender<Waiting>,
}

impl AuditAppender {
    /// Starts the task that commits the groups of `store` (a clone without an appender of its own, so the task
    /// ends when the last store holding this appender is dropped).
    ///
    /// On SQLite the task runs on a thread of its own: each group is two hand-offs between it and SQLite's
    /// connection thread, and as a task of the server's runtime every wake-up queued behind the connection
    /// tasks of all the reads in flight, which the reads of the next group wait for. On its own thread the
    /// operating system runs it when it wakes (reads 8-16% faster, docs/BENCHMARKS.md). PostgreSQL connections
    /// are registered with the runtime that opened them, so there the task stays on the server's runtime.
    pub(super) fn start(store: Store) -> std::io::Result<Self> {
        let (queue, received) = mpsc::channel(QUEUE);
        if store.sqlite_writer.is_some() {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            std::thread::Builder::new()
                .name("hush-audit".to_owned())
                .spawn(move || runtime.block_on(commit_groups(store, received)))?;
        } else {
            tokio::spawn(commit_groups(store, received));
        }
        Ok(Self { queue })
    }

    /// Appends `row` and waits until the group holding it committed.
    pub(super) async fn append(&self, row: audit_log::ActiveModel) -> Result<(), DbErr> {
        let stopped = || DbErr::Custom("the audit writer stopped".to_owned());
        let (done, durable) = oneshot::channel();
        self.queue.send((row, done)).await.map_err(|_| stopped())?;
        durable.await.map_err(|_| stopped())?.map_err(DbErr::Custom)
    }
}

async fn commit_groups(store: Store, mut received: mpsc::Receiver<Waiting>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while received.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (rows, waiting): (Vec<_>, Vec<_>) = group.drain(..).unzip();
        let count = rows.len();
        let outcome = commit(&store, rows).await.map_err(|error| {
            tracing::error!(%error, entries = count, "could not store audit entries; their reads fail");
            format!("storing the audit entry: {error}")
        });
        for caller in waiting {
            // A caller that stopped waiting still has its entry stored.
            let _ = caller.send(outcome.clone());
        }
    }
}

/// Commits `rows` as one multi-row insert, a transaction by itself: the fewest round trips to the database
/// (SQLite's connection thread, or the PostgreSQL server), which is what a read waits for. On SQLite it joins
/// the open write group if there is one (see `SqliteWriter::commit_statement`); on PostgreSQL the insert takes
/// the append lock itself (a trigger, see migration m0007), as every appender to the log must.
pub(super) async fn commit(store: &Store, rows: Vec<audit_log::ActiveModel>) -> Result<(), DbErr> {
    let insert = store.backend().build(&audit_log::Entity::insert_many(rows).into_query());
    match &store.sqlite_writer {
        Some(writer) => writer.commit_statement(store.conn(), insert).await?,
        None => {
            store.conn().execute_raw(insert).await?;
        }
    }
    store.audit_committed();
    Ok(())
}
