//! Storage: the sea-orm connection, migrations and write transactions.
//!
//! SQLite (the default, one file in the data dir) allows a single writer; a deferred SQLite transaction
//! that reads and then writes fails with `SQLITE_BUSY` instead of waiting when another writer is active.
//! So writes on SQLite take an in-process lock first; PostgreSQL needs none.

pub mod backup;
pub mod entities;
mod lock;
mod migration;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

pub use lock::DatabaseLock;

/// PostgreSQL advisory lock key serialising appends to the sequence-ordered logs ("hush" + 1).
const COMMIT_ORDER_LOCK: i64 = 0x6875_7368_0001;
/// Default retention of audit entries: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long an SQLite connection waits for a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database, shared by every service of the process.
#[derive(Clone)]
pub struct Store {
    conn: DatabaseConnection,
    /// The SQLite database file; `None` on PostgreSQL and for in-memory SQLite.
    sqlite_file: Option<PathBuf>,
    /// Held for the length of a write transaction on SQLite; `None` on PostgreSQL.
    write_lock: Option<Arc<Mutex<()>>>,
    /// Signalled after a transaction that appended outbox rows commits, to wake this instance's tailer.
    outbox_signal: Arc<Notify>,
    /// How long audit entries are kept.
    audit_retention: Duration,
    /// Stream-only mode: audit entries are kept only until every audit stream delivered them.
    audit_stream_only: bool,
}

/// A write transaction; on SQLite it also holds the writer lock until commit or drop.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
    appended_events: AtomicBool,
    commit_ordered: AtomicBool,
    outbox_signal: Arc<Notify>,
    audit_retention: Duration,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    /// Commits the transaction and releases the writer lock; wakes the tailer if events were appended.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        if self.appended_events.load(Ordering::Relaxed) {
            self.outbox_signal.notify_one();
        }
        Ok(())
    }

    /// Makes the rows this transaction inserts into sequence-ordered logs (the event outbox, the audit log)
    /// become visible in sequence order.
    ///
    /// With concurrent writers an auto-increment id is not commit order: row 11 can commit before row 10, and a
    /// reader that moved past 11 would never see 10. On PostgreSQL each such transaction takes one
    /// transaction-scoped advisory lock right before inserting, at the very end of the transaction, so the next
    /// one draws its ids only after this one has committed and become visible; the lock is held for the inserts
    /// and the commit only. SQLite has a single writer and needs nothing.
    pub async fn order_commits(&self) -> Result<(), DbErr> {
        if self.txn.get_database_backend() == DbBackend::Postgres && !self.commit_ordered.swap(true, Ordering::Relaxed)
        {
            self.txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({COMMIT_ORDER_LOCK})")).await?;
        }
        Ok(())
    }

    /// How long the audit entries written in this transaction are kept.
    pub fn audit_retention(&self) -> Duration {
        self.audit_retention
    }

    /// Records that this transaction appended outbox rows.
    pub fn mark_events_appended(&self) {
        self.appended_events.store(true, Ordering::Relaxed);
    }
}

/// The database file of an SQLite URL (`sqlite://<path>?<options>`); `None` for other databases and for
/// in-memory SQLite.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://")?.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Restricts an existing database file to its owner (0600).
fn restrict(file: &Path) -> Result<(), DbErr> {
    crate::fs_private::restrict_existing(file)
        .map_err(|error| DbErr::Custom(format!("making {} private: {error}", file.display())))
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let sqlite_file = sqlite_file(url);
        if let Some(file) = &sqlite_file {
            // SQLite creates the WAL and shared-memory files with the database file's mode: make it private first.
            restrict(file)?;
        }
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).max_connections(16).connect_timeout(Duration::from_secs(10));
        let conn = Database::connect(options).await?;
        let write_lock = match conn.get_database_backend() {
            DbBackend::Sqlite => {
                // WAL lets readers proceed while one writer commits.
                conn.execute_unprepared("PRAGMA journal_mode=WAL").await?;
                conn.execute_unprepared(&format!("PRAGMA busy_timeout={}", SQLITE_BUSY_TIMEOUT.as_millis())).await?;
                // Left by an earlier run with its own mode (say 0644 from before the umask was set).
                if let Some(file) = &sqlite_file {
                    for suffix in ["-wal", "-shm"] {
                        let mut side = file.clone().into_os_string();
                        side.push(suffix);
                        restrict(Path::new(&side))?;
                    }
                }
                Some(Arc::new(Mutex::new(())))
            }
            _ => None,
        };
        migration::Migrator::up(&conn, None).await?;
        Ok(Self {
            conn,
            sqlite_file,
            write_lock,
            outbox_signal: Arc::new(Notify::new()),
            audit_retention: DEFAULT_AUDIT_RETENTION,
            audit_stream_only: false,
        })
    }

    /// Like [`Store::connect`], but refuses an SQLite database file that does not exist yet instead of creating
    /// it: for maintenance commands, which must not make an empty database out of a mistyped `--data-dir`.
    pub async fn connect_existing(url: &str) -> Result<Self, DbErr> {
        if let Some(file) = sqlite_file(url).filter(|file| !file.exists()) {
            return Err(DbErr::Custom(format!("there is no hush database at {}", file.display())));
        }
        Self::connect(url).await
    }

    /// Keeps audit entries written from now on for `retention`; in stream-only mode only until every audit
    /// stream delivered them, and they cannot be queried.
    pub fn with_audit_settings(mut self, retention: Duration, stream_only: bool) -> Self {
        self.audit_retention = retention;
        self.audit_stream_only = stream_only;
        self
    }

    /// Whether audit entries are kept only for the audit streams (not queryable).
    pub fn audit_stream_only(&self) -> bool {
        self.audit_stream_only
    }

    /// Whether every migration this build knows is applied (read-only: creates nothing).
    pub async fn migrations_applied(&self) -> Result<bool, DbErr> {
        Ok(migration::Migrator::get_pending_migrations_read_only(&self.conn).await?.is_empty())
    }

    /// Connections of the pool: (open, idle); open minus idle are in use.
    pub fn pool_usage(&self) -> (u32, usize) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The database kind.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Begins a transaction for writing (see the module note on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let writer = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteTxn {
            txn: self.conn.begin().await?,
            _writer: writer,
            appended_events: AtomicBool::new(false),
            commit_ordered: AtomicBool::new(false),
            outbox_signal: self.outbox_signal.clone(),
            audit_retention: self.audit_retention,
        })
    }

    /// Waits until a local transaction that appended events commits (or returns at once if one did since the
    /// last call).
    pub async fn outbox_appended(&self) {
        self.outbox_signal.notified().await;
    }
}
