//! WAL checkpoints off the commit path (SQLite).
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1 000 pages: that commit, and
//! every read waiting for the audit group it carries, pays for copying the WAL into the database file and for
//! an fsync of that file. hush turns the automatic checkpoint off on every connection and checkpoints from a
//! task of its own instead, after a commit, at most once per [`EVERY`]. A `PASSIVE` checkpoint never waits for
//! readers or for the writer, which go on meanwhile, so the WAL holds about one interval of writes at most.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseConnection};

/// Least time between two checkpoints.
const EVERY: Duration = Duration::from_secs(1);

/// The connection option that turns SQLite's automatic checkpoint off: (pragma, value).
pub(super) const AUTOMATIC_OFF: (&str, &str) = ("wal_autocheckpoint", "0");

/// Starts checkpoints of one SQLite database.
pub(super) struct Checkpointer {
    conn: DatabaseConnection,
    state: Mutex<State>,
    /// Checkpoints completed (for `/metrics`).
    completed: AtomicU64,
}

struct State {
    /// When the last checkpoint ended (or the database was opened).
    last: Instant,
    /// A checkpoint is under way.
    running: bool,
}

impl Checkpointer {
    pub(super) fn new(conn: DatabaseConnection) -> Self {
        Self { conn, state: Mutex::new(State { last: Instant::now(), running: false }), completed: AtomicU64::new(0) }
    }

    /// Checkpoints completed since the database was opened.
    pub(super) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Called after a commit: starts a checkpoint in a task of its own unless one ran less than [`EVERY`] ago or
    /// is under way.
    pub(super) fn after_commit(self: &Arc<Self>) {
        {
            let mut state = self.state.lock().expect("no panic holds it");
            if state.running || state.last.elapsed() < EVERY {
                return;
            }
            state.running = true;
        }
        let checkpointer = self.clone();
        tokio::spawn(async move {
            match checkpointer.conn.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
                Ok(_) => {
                    checkpointer.completed.fetch_add(1, Ordering::Relaxed);
                }
                // Nothing is lost: the WAL keeps every commit, and the next commit tries again.
                Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
            }
            let mut state = checkpointer.state.lock().expect("no panic holds it");
            state.running = false;
            state.last = Instant::now();
        });
    }
}
