//! Storage: the sea-orm connection, migrations and write transactions.
//!
//! SQLite (the default, one file in the data dir) allows a single writer; a deferred SQLite transaction
//! that reads and then writes fails with `SQLITE_BUSY` instead of waiting when another writer is active.
//! So writes on SQLite take an in-process lock first, and run as savepoints of one shared transaction that is
//! committed for many of them at once (`sqlite_group`). On PostgreSQL (several instances on one database)
//! each write locks the rows that order it (`SELECT … FOR UPDATE`, see `secrets::scope` and
//! `identity::roles`) before anything else, and the rows of the sequence-ordered logs are inserted last, at
//! commit (see [`WriteTxn::commit`]). Database errors get their meaning in one place, [`DbError`].

mod at_commit;
mod audit_appender;
pub mod backup;
pub mod entities;
mod error;
mod import_sources;
mod lock;
mod migrations;
mod notifier;
mod permission_log;
mod settled;
mod shared_read;
mod sqlite_audit_connection;
mod sqlite_group;
mod sqlite_plans;
mod versioned_cache;

pub use at_commit::Change;
pub use error::DbError;
pub use migrations::SQLITE_UNREAD_AUDIT_INDEXES;
pub use permission_log::Changed;
pub use settled::Log;
pub use versioned_cache::VersionedCache;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    QuerySelect, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Notify, watch};

pub use lock::{DATABASE_LOCK, DatabaseLock};
use sqlite_group::Mode;

/// PostgreSQL NOTIFY channel that wakes the event tailers of every instance.
pub const NOTIFY_CHANNEL: &str = "hush_events";
/// PostgreSQL NOTIFY channel that wakes the audit stream workers of every instance when audit entries commit.
pub const AUDIT_NOTIFY_CHANNEL: &str = "hush_audit";
/// Default retention of audit entries: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// Pooled connections to PostgreSQL.
const POSTGRES_CONNECTIONS: u32 = 16;
/// PostgreSQL connections opened at start and kept open: opening one takes up to ~100 ms on a busy machine, and
/// the calls that needed it wait meanwhile (opened on demand, they showed in the event fan-out's p99 as ~80 ms
/// where a write took 5 ms: the tailer, the audit writer, the notifier and a write each hold one at once).
const POSTGRES_OPEN_AT_START: u32 = 8;
/// Pooled connections to SQLite. Each one is a thread of its own (sqlx runs SQLite on a worker thread per
/// connection), and every statement is handed to it and back; on a machine with few cores more threads only
/// add context switches, and SQLite work is short.
const SQLITE_CONNECTIONS: u32 = 4;
/// How long a pooled connection may sit idle before it is checked (pinged) on its next use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(30);
/// How long an SQLite connection waits for a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database, shared by every service of the process.
#[derive(Clone)]
pub struct Store {
    conn: DatabaseConnection,
    /// The SQLite database file; `None` on PostgreSQL and for in-memory SQLite.
    sqlite_file: Option<PathBuf>,
    /// The single writer of SQLite, which commits writes in groups; `None` on PostgreSQL.
    sqlite_writer: Option<Arc<sqlite_group::SqliteWriter>>,
    /// Signalled after a transaction that appended outbox rows commits, to wake this instance's tailer.
    outbox_signal: Arc<Notify>,
    /// Bumped after a transaction that appended audit entries commits (here, or on another instance as
    /// relayed by the audit streams' listener), to wake the audit stream workers.
    audit_signal: Arc<watch::Sender<u64>>,
    /// How long audit entries are kept.
    audit_retention: Duration,
    /// Stream-only mode: audit entries are kept only until every audit stream delivered them.
    audit_stream_only: bool,
    /// Commits the audit entries of reads in groups; `None` only in the clone its own task writes with.
    audit_appender: Option<audit_appender::AuditAppender>,
    /// Tells the other instances of committed outbox and audit rows; `None` on SQLite (one instance).
    notifier: Option<notifier::Notifier>,
    /// SQLite: what is kept in memory because this process is the database's only writer (see `lock`);
    /// PostgreSQL: `None`, it is read from the database, where every instance's changes meet.
    single_writer: Option<Arc<SingleWriter>>,
    /// Whose permissions changed since which version.
    permission_log: Arc<permission_log::PermissionLog>,
    /// PostgreSQL: the newest permission version this instance read (see [`Store::assumed_permission_version`]).
    seen_permission_version: Arc<AtomicI64>,
    /// PostgreSQL: the settled head of the event outbox, read once for all the callers waiting at the same time
    /// (see `shared_read`).
    outbox_head_read: Arc<shared_read::SharedRead>,
    /// PostgreSQL: the same for the settled head of the audit log.
    audit_head_read: Arc<shared_read::SharedRead>,
    /// Statements sent to the database since start (for `/metrics`: database work per request or event).
    statements: Arc<AtomicU64>,
    /// Of those, the ones that write (INSERT, UPDATE, DELETE, or a WITH holding one): what an idle server must
    /// not send.
    write_statements: Arc<AtomicU64>,
}

/// A write transaction: on PostgreSQL a transaction of its own; on SQLite a member of the open write group,
/// holding the writer lock until commit or drop, its statements in a savepoint of its own or, deferred, left
/// for the group's next hand-off (see `sqlite_group`).
pub struct WriteTxn {
    txn: Transaction,
    /// Rows of the sequence-ordered logs, inserted at commit.
    sequenced: std::sync::Mutex<at_commit::Sequenced>,
    outbox_signal: Arc<Notify>,
    audit_signal: Arc<watch::Sender<u64>>,
    audit_retention: Duration,
    /// Permission changes this transaction made (see [`WriteTxn::permissions_changed`]).
    permission_changes: AtomicI64,
    single_writer: Option<Arc<SingleWriter>>,
    notifier: Option<notifier::Notifier>,
    /// Set by writers that never touch secret rows (see [`WriteTxn::leaves_secret_rows_alone`]).
    leaves_secret_rows_alone: AtomicBool,
}

/// What a database's only writer knows without asking it (SQLite); each value moves after the commit that
/// changed it and before that commit is acknowledged.
struct SingleWriter {
    /// The permission version (see [`Store::permission_version`]).
    permission_version: AtomicI64,
    /// Bumped by every committed write that may have changed secret rows (see [`Store::secret_rows_generation`]).
    secret_rows_generation: AtomicU64,
    /// The newest committed outbox cursor (see [`Store::outbox_head`]).
    outbox_head: AtomicI64,
    /// The environments folders import from (see [`WriteTxn::may_be_imported_from`]).
    import_sources: import_sources::ImportSources,
}

/// Runs SQLite `statements` in turn and returns the last one's result (`None` for no statement).
///
/// They are sent as one statement string (sqlx runs the statements of a string in turn, binding the values in
/// order): one hand-off to the connection's thread instead of one each, which is what a write waits for inside
/// the single writer's critical section. A statement that fails stops the rest, and SQLite undoes the failed
/// statement alone.
async fn execute_in_turn(
    db: &impl ConnectionTrait,
    statements: Vec<Statement>,
) -> Result<Option<sea_orm::ExecResult>, DbErr> {
    debug_assert_eq!(db.get_database_backend(), DbBackend::Sqlite, "one statement string is SQLite's");
    if statements.is_empty() {
        return Ok(None);
    }
    Ok(Some(db.execute_raw(in_turn(statements)).await?))
}

/// SQLite `statements` as one statement string, their values bound in order (see [`execute_in_turn`]).
fn in_turn(statements: Vec<Statement>) -> Statement {
    let sql = statements.iter().map(|statement| statement.sql.as_str()).collect::<Vec<_>>().join("; ");
    let values =
        statements.into_iter().flat_map(|statement| statement.values.map(|values| values.0).unwrap_or_default());
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

/// What a committed write tells the rest of the process: the single writer's own knowledge, the other
/// instances, the outbox tailer and the audit followers.
struct Published {
    appended_events: bool,
    appended_audit: bool,
    permission_changes: i64,
    secret_rows_changed: bool,
    single_writer: Option<Arc<SingleWriter>>,
    notifier: Option<notifier::Notifier>,
    outbox_signal: Arc<Notify>,
    audit_signal: Arc<watch::Sender<u64>>,
}

impl Published {
    /// Publishes a committed write; `newest_event` is its newest outbox cursor, if it appended events.
    fn publish(self, newest_event: Option<i64>) {
        if let Some(known) = &self.single_writer {
            // Before the write is acknowledged, so the caller's next call sees the change.
            known.permission_version.fetch_add(self.permission_changes, Ordering::SeqCst);
            // After the commit made the change visible: a row read before this point is remembered under the old
            // generation, so it is never served again.
            if self.secret_rows_changed {
                known.secret_rows_generation.fetch_add(1, Ordering::SeqCst);
            }
            // Committed (with its whole group): a stream opened after the acknowledgement starts after it.
            if let Some(newest) = newest_event {
                known.outbox_head.fetch_max(newest, Ordering::SeqCst);
            }
        }
        if let Some(notifier) = &self.notifier {
            notifier.raise(self.appended_events, self.appended_audit);
        }
        if self.appended_events {
            self.outbox_signal.notify_one();
        }
        if self.appended_audit {
            bump(&self.audit_signal);
        }
    }
}

enum Transaction {
    Own(DatabaseTransaction),
    InGroup(sqlite_group::Member),
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        match &self.txn {
            Transaction::Own(txn) => txn,
            Transaction::InGroup(member) => member.txn(),
        }
    }
}

impl WriteTxn {
    /// Runs the statements left for the commit, inserts the appended outbox and audit rows, commits (on SQLite:
    /// releases its part of the write group and the writer lock, and waits for its group's commit), and
    /// publishes what it changed (see [`Published`]).
    ///
    /// On SQLite, once its part is released the write is in its group, which commits whether or not the caller
    /// still waits: the rest runs in a task of its own, so a caller that stops waiting (a cancelled request)
    /// cannot leave a committed change unpublished (a permission change the caches never learn of, a secret row
    /// served from memory after it changed).
    ///
    /// The rows of the sequence-ordered logs are inserted last. SQLite has a single writer, so they become
    /// visible in cursor order. On PostgreSQL concurrent writers commit together, in any order, holding the
    /// append lock shared from their first cursor to their end, and readers follow the logs only up to their
    /// settled head (see `settled`). The first insert takes that lock (a trigger, see migration m0007): here,
    /// after every row lock the transaction will ever take, which keeps it out of any lock cycle. The other
    /// instances are notified after the commit (see `notifier`).
    pub async fn commit(self) -> Result<(), DbErr> {
        let sequenced = std::mem::take(&mut *self.sequenced.lock().expect("no panic holds it"));
        let published = Published {
            appended_events: sequenced.appends_events(),
            appended_audit: sequenced.appends_audit(),
            permission_changes: self.permission_changes.load(Ordering::SeqCst),
            secret_rows_changed: !self.leaves_secret_rows_alone.load(Ordering::SeqCst),
            single_writer: self.single_writer,
            notifier: self.notifier,
            outbox_signal: self.outbox_signal,
            audit_signal: self.audit_signal,
        };
        match self.txn {
            Transaction::Own(txn) => {
                let newest = at_commit::insert(&txn, sequenced, None).await?;
                txn.commit().await?;
                published.publish(newest);
                Ok(())
            }
            Transaction::InGroup(mut member) if member.is_deferred() => {
                let appended_events = published.appended_events;
                let ran = member.defer(at_commit::sqlite(sequenced, None));
                let committed = tokio::spawn(async move {
                    let newest = member.part_ran(ran).await?;
                    member.commit().await?;
                    published.publish(newest.filter(|_| appended_events));
                    Ok(())
                });
                committed.await.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))?
            }
            Transaction::InGroup(mut member) => {
                // The member's part of its group ends in the same hand-off as its last inserts.
                let release = member.release_statement();
                let hand_off = at_commit::insert(member.txn(), sequenced, Some(release)).await;
                let newest = member.release_answered(hand_off)?;
                let committed = tokio::spawn(async move {
                    member.commit().await?;
                    published.publish(newest);
                    Ok(())
                });
                committed.await.map_err(|error| DbErr::Custom(format!("committing the write group: {error}")))?
            }
        }
    }

    /// The rows `select` reads, seeing every write made in this transaction and before it: how a
    /// [deferred](Store::begin_deferred_write) write reads the secret rows it changes (on SQLite the writes
    /// waiting in the group run first, in the same hand-off).
    pub async fn read_fresh(&self, select: Statement) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        match &self.txn {
            Transaction::InGroup(member) => member.read_fresh(select).await,
            Transaction::Own(txn) => txn.query_all_raw(select).await,
        }
    }

    /// Sends a PostgreSQL notification on `channel` when this transaction commits, for the other instances
    /// (nothing on SQLite, which has one instance).
    pub async fn notify_instances(&self, channel: &str) -> Result<(), DbErr> {
        if self.get_database_backend() == DbBackend::Postgres {
            self.execute_unprepared(&format!("SELECT pg_notify('{channel}', '')")).await?;
        }
        Ok(())
    }

    /// Declares that this transaction changes no secret row, so that secret rows remembered by readers stay
    /// valid (audit entries, logins, stream positions, pruning). Forgetting to call it only costs cache hits;
    /// calling it in a transaction that does change secrets would serve stale values.
    pub fn leaves_secret_rows_alone(&self) {
        self.leaves_secret_rows_alone.store(true, Ordering::SeqCst);
    }

    /// Whether this transaction is the database's only writer until it ends (SQLite's single writer): rows
    /// it read inside it cannot change or go away before its commit, so it needs no row locks.
    pub fn is_only_writer(&self) -> bool {
        self.single_writer.is_some()
    }

    /// Whether some folder may import from environment `env`, as this transaction locked it: where this process
    /// is the database's only writer from what it knows (see `import_sources`: `env` may be a row remembered from
    /// before), else from the row's flag, which the import's transaction set under the lock.
    pub fn may_be_imported_from(&self, env: &entities::environment::Model) -> bool {
        match &self.single_writer {
            Some(known) => known.import_sources.contains(&env.id),
            None => env.import_source,
        }
    }

    /// Records, before this transaction commits, that a folder now imports from environment `env_id` (the
    /// database sets the row's flag itself, see migration m0009).
    pub fn imports_from(&self, env_id: &str) {
        if let Some(known) = &self.single_writer {
            known.import_sources.add(env_id);
        }
    }

    /// Records that this transaction bumped the permission version in the database (`access::bump_version`).
    pub fn permissions_changed(&self) {
        self.permission_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Leaves `changes` for the commit, where they run first, in turn, in the hand-off that appends the
    /// transaction's events and audit entry (on SQLite one hand-off instead of one more; for a deferred write,
    /// the group's next one), or on PostgreSQL together as one statement (see `at_commit`). For writes whose
    /// results nothing in the transaction reads after, that never change one row twice in one transaction; their
    /// errors are the commit's.
    pub fn at_commit(&self, changes: impl IntoIterator<Item = Change>) {
        self.sequenced.lock().expect("no panic holds it").changes.extend(changes);
    }

    /// Appends outbox rows: inserted at commit, in commit order (see [`commit`](Self::commit)).
    pub fn append_events(&self, rows: impl IntoIterator<Item = entities::event::ActiveModel>) {
        self.sequenced.lock().expect("no panic holds it").events.extend(rows);
    }

    /// Appends an audit log row: inserted at commit, in commit order (see [`commit`](Self::commit)).
    pub fn append_audit(&self, row: entities::audit_log::ActiveModel) {
        self.sequenced.lock().expect("no panic holds it").audit.push(row);
    }

    /// Forgets which identities old permission versions changed (see `permission_log`); returns how many
    /// records were deleted.
    pub async fn prune_permission_changes(&self) -> Result<u64, DbErr> {
        permission_log::prune(&**self).await
    }

    /// How long the audit entries written in this transaction are kept.
    pub fn audit_retention(&self) -> Duration {
        self.audit_retention
    }
}

/// The permission version as stored (see [`Store::permission_version`]).
async fn stored_permission_version(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let row = entities::authz_version::Entity::find_by_id(1).one(db).await?;
    Ok(row.map_or(0, |row| row.version))
}

/// The column [`with_permission_version`] adds.
const PERMISSION_VERSION_COLUMN: &str = "hush_permission_version";

/// `query` reading [`stored_permission_version`] too, as a scalar subquery beside its own columns (on PostgreSQL
/// one statement instead of two); a row it returns carries the version for [`permission_version_in`].
pub fn with_permission_version<Q: QuerySelect>(query: Q) -> Q {
    let version = sea_orm::sea_query::Expr::cust("(SELECT version FROM authz_version WHERE id = 1)");
    query.expr_as(version, PERMISSION_VERSION_COLUMN)
}

/// The permission version in a row of a query made by [`with_permission_version`].
pub fn permission_version_in(row: &sea_orm::QueryResult) -> Result<i64, DbErr> {
    let version: Option<i64> = row.try_get("", PERMISSION_VERSION_COLUMN)?;
    // No version row yet is version 0, as in `stored_permission_version`.
    Ok(version.unwrap_or(0))
}

/// Announces a change to whoever watches `signal`.
pub fn bump(signal: &watch::Sender<u64>) {
    signal.send_modify(|n| *n = n.wrapping_add(1));
}

/// Whether `sql` writes rows: it is an INSERT, UPDATE or DELETE, or a WITH clause holding one (as its own
/// statement or as one of its common table expressions: how a write's changes are joined on PostgreSQL, see
/// `at_commit`).
fn writes_rows(sql: &str) -> bool {
    let is = |word: &str, verbs: &[&str]| verbs.iter().any(|verb| word.eq_ignore_ascii_case(verb));
    let writes = |word: &str| is(word, &["INSERT", "UPDATE", "DELETE"]);
    let mut words = statement_words(sql);
    match words.next() {
        // The common table expressions' statements come first, then the WITH's own, whose verb is its first
        // outer one.
        Some((_, with)) if is(with, &["WITH"]) => {
            for (outer, word) in words {
                if outer && is(word, &["SELECT", "INSERT", "UPDATE", "DELETE", "VALUES", "TABLE"]) {
                    return writes(word);
                }
                if !outer && writes(word) {
                    return true;
                }
            }
            false
        }
        first => first.is_some_and(|(_, word)| writes(word)),
    }
}

/// The words (runs of letters, digits and `_`) of `sql` that may begin a statement, each with whether it is
/// outside parentheses: those outside parentheses and quotes, and the first one inside each outermost
/// parenthesis (a common table expression's statement); lazily, in order. Comments are not told apart (hush
/// sends none).
fn statement_words(sql: &str) -> impl Iterator<Item = (bool, &str)> {
    let (mut depth, mut quote, mut start, mut opened) = (0_usize, None, None, false);
    // A space after the end closes the last word.
    let mut chars = sql.char_indices().chain([(sql.len(), ' ')]);
    std::iter::from_fn(move || {
        for (i, c) in chars.by_ref() {
            if let Some(closing) = quote {
                quote = (c != closing).then_some(closing);
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' {
                if depth == 0 || (depth == 1 && opened) {
                    start.get_or_insert(i);
                }
                continue;
            }
            let word = start.take().map(|start| (depth == 0, &sql[start..i]));
            if word.is_some() || !c.is_whitespace() {
                opened = false;
            }
            match c {
                '"' | '\'' => quote = Some(c),
                '(' => {
                    depth += 1;
                    opened = depth == 1;
                }
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if word.is_some() {
                return word;
            }
        }
        None
    })
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
        options
            .sqlx_logging(false)
            .max_connections(if url.starts_with("sqlite:") { SQLITE_CONNECTIONS } else { POSTGRES_CONNECTIONS })
            .min_connections(if url.starts_with("sqlite:") { 0 } else { POSTGRES_OPEN_AT_START })
            .connect_timeout(Duration::from_secs(10))
            // sea-orm takes a pooled connection for every statement outside a transaction; pinging each one
            // first doubled the round trips of every read. Only connections idle for a while are checked.
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
            // Each write of an SQLite write group runs in a savepoint, whose undo journal SQLite spilled to a
            // temporary file once it passed 64 KiB (a CreateSecret changes about 20 pages): a few more system
            // calls per write inside the writer lock. In memory it is bounded by what one write changes, or one
            // hand-off of deferred writes (at most `sqlite_group::MAX_BATCH` of them: about 5 MiB for single
            // secrets, at worst what 64 requests of the message limit change): it starts empty at each savepoint.
            // Temporary storage also holds sorts that no index serves: hush sorts that way only small sets
            // (a project's environments, a folder's imports, one page of a listing); logs and secrets are
            // read in index order.
            // Set per connection: as a PRAGMA run once it reached one pooled connection only.
            .map_sqlx_sqlite_opts(|sqlite| sqlite.pragma("temp_store", "memory").busy_timeout(SQLITE_BUSY_TIMEOUT))
            .map_sqlx_sqlite_pool_opts(sqlite_plans::plan_once);
        let mut conn = Database::connect(options).await?;
        let statements = Arc::new(AtomicU64::new(0));
        let write_statements = Arc::new(AtomicU64::new(0));
        let (counter, writes) = (statements.clone(), write_statements.clone());
        conn.set_metric_callback(move |info| {
            counter.fetch_add(1, Ordering::Relaxed);
            if writes_rows(&info.statement.sql) {
                writes.fetch_add(1, Ordering::Relaxed);
            }
        });
        let sqlite_writer = match conn.get_database_backend() {
            DbBackend::Sqlite => {
                // WAL lets readers proceed while one writer commits.
                conn.execute_unprepared("PRAGMA journal_mode=WAL").await?;
                // Left by an earlier run with its own mode (say 0644 from before the umask was set).
                if let Some(file) = &sqlite_file {
                    for suffix in ["-wal", "-shm"] {
                        let mut side = file.clone().into_os_string();
                        side.push(suffix);
                        restrict(Path::new(&side))?;
                    }
                }
                Some(Arc::default())
            }
            _ => None,
        };
        migrations::migrate(&conn).await?;
        let stored = stored_permission_version(&conn).await?;
        // SQLite: this process is the database's only writer (see `lock`), so these are kept in memory.
        let single_writer = if sqlite_writer.is_some() {
            Some(Arc::new(SingleWriter {
                permission_version: AtomicI64::new(stored),
                secret_rows_generation: AtomicU64::new(0),
                outbox_head: AtomicI64::new(settled::visible_head(&conn, Log::Events).await?),
                import_sources: import_sources::ImportSources::load(&conn).await?,
            }))
        } else {
            None
        };
        let mut store = Self {
            conn,
            sqlite_file,
            sqlite_writer,
            outbox_signal: Arc::new(Notify::new()),
            audit_signal: Arc::new(watch::Sender::new(0)),
            audit_retention: DEFAULT_AUDIT_RETENTION,
            audit_stream_only: false,
            audit_appender: None,
            notifier: None,
            single_writer,
            permission_log: Arc::new(permission_log::PermissionLog::starting_at(stored)),
            seen_permission_version: Arc::new(AtomicI64::new(stored)),
            outbox_head_read: Arc::default(),
            audit_head_read: Arc::default(),
            statements,
            write_statements,
        };
        if store.backend() == DbBackend::Postgres {
            store.notifier = Some(notifier::Notifier::start(store.conn.clone()));
        }
        store.audit_appender = Some(audit_appender::AuditAppender::start(store.clone()).await?);
        Ok(store)
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

    /// How long audit entries written from now on are kept.
    pub fn audit_retention(&self) -> Duration {
        self.audit_retention
    }

    /// Stores an audit entry outside any write of the caller's (the entry of a read), committed together with
    /// the entries of concurrent reads; returns once it is durable.
    pub async fn append_audit(&self, row: entities::audit_log::ActiveModel) -> Result<(), DbErr> {
        match &self.audit_appender {
            Some(appender) => appender.append(row).await,
            None => audit_appender::commit(self, vec![row], None).await,
        }
    }

    /// Whether audit entries are kept only for the audit streams (not queryable).
    pub fn audit_stream_only(&self) -> bool {
        self.audit_stream_only
    }

    /// Whether every migration this build knows is applied (read-only: creates nothing).
    pub async fn migrations_applied(&self) -> Result<bool, DbErr> {
        Ok(migrations::Migrator::get_pending_migrations_read_only(&self.conn).await?.is_empty())
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

    /// Statements sent to the database by this process since it connected.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Statements that write rows (INSERT, UPDATE, DELETE, or a WITH holding one) sent by this process since it
    /// connected.
    pub fn write_statements_executed(&self) -> u64 {
        self.write_statements.load(Ordering::Relaxed)
    }

    /// Counts `count` statements that write rows, run on a connection outside the pool (whose statements
    /// sea-orm counts).
    fn count_written_statements(&self, count: u64) {
        self.statements.fetch_add(count, Ordering::Relaxed);
        self.write_statements.fetch_add(count, Ordering::Relaxed);
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
        self.begin_in(Mode::Interactive).await
    }

    /// Begins a write of secret rows that reads the rows it changes only with [`WriteTxn::read_fresh`] and writes
    /// only at its commit; on SQLite its statements wait in the write group for the next hand-off, so that it
    /// holds the writer lock for none (see `sqlite_group`). On PostgreSQL the same as [`Store::begin_write`].
    pub async fn begin_deferred_write(&self) -> Result<WriteTxn, DbErr> {
        self.begin_in(Mode::Deferred).await
    }

    async fn begin_in(&self, mode: Mode) -> Result<WriteTxn, DbErr> {
        let txn = match &self.sqlite_writer {
            Some(writer) => Transaction::InGroup(writer.join(&self.conn, mode).await?),
            None => Transaction::Own(self.conn.begin().await?),
        };
        Ok(WriteTxn {
            txn,
            sequenced: Default::default(),
            outbox_signal: self.outbox_signal.clone(),
            audit_signal: self.audit_signal.clone(),
            audit_retention: self.audit_retention,
            permission_changes: AtomicI64::new(0),
            single_writer: self.single_writer.clone(),
            notifier: self.notifier.clone(),
            leaves_secret_rows_alone: AtomicBool::new(false),
        })
    }

    /// The permission version: it changes, before the change is acknowledged, whenever a committed write changed
    /// what some caller may do (see `identity::access::bump_version`).
    pub async fn permission_version(&self) -> Result<i64, DbErr> {
        self.permission_version_on(&self.conn).await
    }

    /// The permission version `read` by a statement of the caller's (see [`with_permission_version`]), noted as
    /// seen; or, when that statement read none, [`Store::permission_version_on`] `db`.
    pub async fn permission_version_read_or_on(
        &self,
        read: Option<i64>,
        db: &impl ConnectionTrait,
    ) -> Result<i64, DbErr> {
        match read {
            Some(read) => {
                self.saw_permission_version(read);
                Ok(read)
            }
            None => self.permission_version_on(db).await,
        }
    }

    /// [`Store::permission_version`], read on `db` (say a transaction's connection) where it is read at all.
    pub async fn permission_version_on(&self, db: &impl ConnectionTrait) -> Result<i64, DbErr> {
        match self.only_writer_permission_version() {
            Some(version) => Ok(version),
            None => {
                let version = stored_permission_version(db).await?;
                self.saw_permission_version(version);
                Ok(version)
            }
        }
    }

    /// PostgreSQL: the newest permission version this instance has read, without reading it: a request may
    /// start on it only if its first statement reads the version again and the request is redone when that
    /// differs (see `Vault::get_secret`). `None` on SQLite, where [`Store::permission_version`] costs no
    /// statement.
    pub fn assumed_permission_version(&self) -> Option<i64> {
        self.single_writer.is_none().then(|| self.seen_permission_version.load(Ordering::SeqCst))
    }

    /// Where this process is the database's only writer (SQLite): the permission version, known without a
    /// statement (see [`Store::permission_version`]). `None` on PostgreSQL.
    pub fn only_writer_permission_version(&self) -> Option<i64> {
        self.single_writer.as_ref().map(|known| known.permission_version.load(Ordering::SeqCst))
    }

    /// Records a permission version read from the database (versions only grow).
    pub fn saw_permission_version(&self, version: i64) {
        self.seen_permission_version.fetch_max(version, Ordering::SeqCst);
    }

    /// The newest committed outbox cursor: every event at or below it is visible, none can still appear at or
    /// below it (on PostgreSQL: the settled head, see `settled`), and every event whose write was acknowledged
    /// before this call is at or below it.
    pub async fn outbox_head(&self) -> Result<i64, DbErr> {
        match &self.single_writer {
            Some(known) => Ok(known.outbox_head.load(Ordering::SeqCst)),
            None => self.outbox_head_read.get(|| settled::settled_head(&self.conn, Log::Events)).await,
        }
    }

    /// The newest audit log cursor below which no entry can still appear; every entry whose write (or read)
    /// was answered before this call is at or below it.
    pub async fn audit_head(&self) -> Result<i64, DbErr> {
        if self.backend() == DbBackend::Postgres {
            return self.audit_head_read.get(|| settled::settled_head(&self.conn, Log::Audit)).await;
        }
        settled::visible_head(&self.conn, Log::Audit).await
    }

    /// A number that changes after every committed write that may have changed a secret row, before that
    /// write is acknowledged: a secret row read while it was `n` is current as long as it is still `n`. Only
    /// on SQLite, where this process is the database's only writer; `None` on PostgreSQL.
    pub fn secret_rows_generation(&self) -> Option<u64> {
        self.single_writer.as_ref().map(|known| known.secret_rows_generation.load(Ordering::SeqCst))
    }

    /// The current permission version when it moved past `since`, with the change log caught up to it; `None`
    /// when it did not move.
    async fn moved_since(&self, since: i64) -> Result<Option<i64>, DbErr> {
        let current = self.permission_version().await?;
        Ok(self.caught_up_if_moved(since, current).await?.then_some(current))
    }

    /// Whether `current` differs from `since`; if so, the change log is caught up to `current` first.
    async fn caught_up_if_moved(&self, since: i64, current: i64) -> Result<bool, DbErr> {
        if current == since {
            return Ok(false);
        }
        self.permission_log.catch_up(&self.conn, current).await?;
        Ok(true)
    }

    /// Whether anything changed what `identity_id` may do after permission version `since`, up to `current` as
    /// the caller just read it from [`Store::permission_version`] (always true when that is not known, e.g.
    /// before this process started).
    pub async fn permissions_changed_between(
        &self,
        identity_id: &str,
        since: i64,
        current: i64,
    ) -> Result<bool, DbErr> {
        Ok(self.caught_up_if_moved(since, current).await? && self.permission_log.changed_since(identity_id, since))
    }

    /// Whose permissions changed after version `since`, and the version that answer is current at.
    pub async fn permission_changes_since(&self, since: i64) -> Result<(i64, Changed), DbErr> {
        Ok(match self.moved_since(since).await? {
            None => (since, Changed::Nobody),
            Some(current) => (current, self.permission_log.changes_since(since)),
        })
    }

    /// Changes whenever audit entries were committed (by this instance, or by another one as relayed with
    /// [`Store::audit_appended_elsewhere`]).
    pub fn audit_appended(&self) -> watch::Receiver<u64> {
        self.audit_signal.subscribe()
    }

    /// Records whether any audit stream exists (on PostgreSQL, where commits of audit entries notify the other
    /// instances' stream workers only then).
    pub fn audit_streams_exist(&self, exist: bool) {
        if let Some(notifier) = &self.notifier {
            notifier.follow_audit(exist);
        }
    }

    /// Whether a PostgreSQL notification with `payload` on the outbox or audit channel came from this instance,
    /// whose own readers its commits woke already.
    pub fn notified_by_itself(&self, payload: &str) -> bool {
        self.notifier.as_ref().is_some_and(|notifier| notifier.sent_here(payload))
    }

    /// Wakes the audit stream workers of every instance: audit entries were committed outside a [`WriteTxn`].
    fn audit_committed(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.raise(false, true);
        }
        bump(&self.audit_signal);
    }

    /// Wakes this instance's audit stream workers: another instance committed audit entries, or its
    /// notifications may have been missed.
    pub fn audit_appended_elsewhere(&self) {
        bump(&self.audit_signal);
    }

    /// Waits until a local transaction that appended events commits (or returns at once if one did since the
    /// last call).
    pub async fn outbox_appended(&self) {
        self.outbox_signal.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sqlx::{Sqlite, pool::PoolConnection};

    use super::{SQLITE_BUSY_TIMEOUT, SQLITE_CONNECTIONS, Store, writes_rows};

    /// A migrated SQLite store in `dir`.
    pub(super) async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        let url = crate::config::StorageFlags::in_dir(dir.path().to_path_buf()).database_url();
        Store::connect(&url).await.unwrap()
    }

    /// Every connection the pool of an SQLite `store` may have, held at once so that the pool opens them all
    /// (the ones opened later included).
    pub(super) async fn every_pooled_connection(store: &Store) -> Vec<PoolConnection<Sqlite>> {
        let pool = store.conn().get_sqlite_connection_pool();
        let mut connections = Vec::new();
        for _ in 0..SQLITE_CONNECTIONS {
            connections.push(pool.acquire().await.unwrap());
        }
        connections
    }

    /// Every pooled SQLite connection waits as long for a lock, the ones opened later too.
    #[tokio::test]
    async fn every_pooled_connection_waits_for_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        for connection in &mut every_pooled_connection(&store).await {
            let waits: i64 =
                sea_orm::sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut **connection).await.unwrap();
            assert_eq!(waits, SQLITE_BUSY_TIMEOUT.as_millis() as i64);
        }
    }

    #[test]
    fn writes_are_told_from_reads_by_their_verb() {
        for sql in ["INSERT INTO t VALUES (1)", "  update t SET a = 1", "DELETE FROM t", "Insert(x)"] {
            assert!(writes_rows(sql), "{sql}");
        }
        for sql in ["SELECT * FROM t", "SELECT pg_notify('x', '')", "SAVEPOINT s", ""] {
            assert!(!writes_rows(sql), "{sql}");
        }
        // A WITH clause writes when its statement or one of its common table expressions does (see `at_commit`).
        for sql in [
            r#"WITH "hush_0" AS (INSERT INTO t VALUES (1)), "hush_1" AS (UPDATE u SET a = 1) DELETE FROM v"#,
            r#"WITH "hush_0" AS (SELECT 1), "hush_1" AS (UPDATE u SET a = 1) SELECT 1"#,
            r#"with "a(" as (select 1) insert into t select * from "a(""#,
        ] {
            assert!(writes_rows(sql), "{sql}");
        }
        for sql in [
            r#"WITH r AS (SELECT * FROM t WHERE a IN (SELECT 1) FOR UPDATE) SELECT * FROM r"#,
            "WITH r AS (SELECT 1) SELECT delete_flag FROM r FOR UPDATE",
            "WITH x AS ( SELECT ')' AS \"(update\") SELECT (1)",
        ] {
            assert!(!writes_rows(sql), "{sql}");
        }
        assert!(writes_rows(r#"WITH r AS ( DELETE FROM t RETURNING "x") SELECT * FROM r"#));
    }
}
