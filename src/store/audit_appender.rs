//! Group commit for the audit entries of reads.
//!
//! A read must have its audit entry durable before its answer leaves the server. Committing each entry in a
//! write transaction of its own made every read wait for the single SQLite writer and pay one fsync alone.
//! Instead one task per store takes every entry waiting in its queue, inserts them in one transaction,
//! commits once, and only then releases each caller: under
//! load one commit serves many reads; with a single caller nothing waits longer than its own commit (there is
//! no timer, a group is simply whatever queued while the previous group was committing).

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryTrait};
use tokio::sync::{mpsc, oneshot};

use super::{
    Store,
    entities::audit_log,
    sqlite_audit_connection::{AuditConnection, main_file},
};

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
    /// On SQLite the task runs on a thread of its own, which runs SQLite itself through a connection of its
    /// own (`sqlite_audit_connection`): as a task of the server's runtime every wake-up queued behind the
    /// connection tasks of all the reads in flight, which the reads of the next group wait for; on its own
    /// thread the operating system runs it when it wakes (reads 8-16% faster; its own connection, another
    /// 12-20%: docs/BENCHMARKS.md). PostgreSQL connections are registered with the runtime that opened them,
    /// so there the task stays on the server's runtime.
    pub(super) async fn start(store: Store) -> Result<Self, DbErr> {
        let (queue, received) = mpsc::channel(QUEUE);
        if store.sqlite_writer.is_some() {
            let starting = |error: std::io::Error| DbErr::Custom(format!("starting the audit writer: {error}"));
            let own = (main_file(store.conn()).await?)
                .map(|file| AuditConnection::open(&file, super::SQLITE_BUSY_TIMEOUT))
                .transpose()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(starting)?;
            std::thread::Builder::new()
                .name("hush-audit".to_owned())
                .spawn(move || runtime.block_on(commit_groups(store, received, own)))
                .map_err(starting)?;
        } else {
            tokio::spawn(commit_groups(store, received, None));
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

/// `own`: the SQLite connection of this thread (see `sqlite_audit_connection`); `None` on PostgreSQL and for an
/// in-memory SQLite database.
async fn commit_groups(store: Store, mut received: mpsc::Receiver<Waiting>, mut own: Option<AuditConnection>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while received.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (rows, waiting): (Vec<_>, Vec<_>) = group.drain(..).unzip();
        let count = rows.len();
        let outcome = commit(&store, rows, own.as_mut()).await.map_err(|error| {
            tracing::error!(%error, entries = count, "could not store audit entries; their reads fail");
            format!("storing the audit entry: {error}")
        });
        for caller in waiting {
            // A caller that stopped waiting still has its entry stored.
            let _ = caller.send(outcome.clone());
        }
        // Committing with the audit thread's own connection never waits, and a busy queue is always ready:
        // without this the tasks sqlx spawns here (handing a committed write group's connection back to the
        // pool) would wait until the queue empties or tokio's budget makes this task yield (some 64 groups),
        // keeping one of the pool's connections from everyone else meanwhile.
        tokio::task::yield_now().await;
    }
}

/// Commits `rows` as one transaction, with the fewest round trips a read can wait for: on SQLite by the audit
/// thread's `own` connection (none to a thread of sqlx's), or, when a write group is open, as one multi-row
/// insert inside it that commits the group too (see `SqliteWriter::commit_change`); on PostgreSQL as one
/// multi-row insert (one round trip to the server), which takes the append lock itself (a trigger, see
/// migration m0007), as every appender to the log must. Without `own` (PostgreSQL, an in-memory SQLite
/// database, the appender's own store) SQLite runs that insert on the pool as a transaction by itself.
pub(super) async fn commit(
    store: &Store,
    rows: Vec<audit_log::ActiveModel>,
    own: Option<&mut AuditConnection>,
) -> Result<(), DbErr> {
    let insert = || store.backend().build(&audit_log::Entity::insert_many(rows.iter().cloned()).into_query());
    match &store.sqlite_writer {
        Some(writer) => {
            let alone = async || match own {
                Some(own) => {
                    own.commit(&rows)?;
                    // Counted as the pool's statements are (`/metrics`): one insert per entry.
                    store.count_written_statements(rows.len() as u64);
                    Ok(())
                }
                None => store.conn().execute_raw(insert()).await.map(drop),
            };
            writer.commit_change(insert, alone).await?;
        }
        None => {
            store.conn().execute_raw(insert()).await?;
        }
    }
    store.audit_committed();
    Ok(())
}
