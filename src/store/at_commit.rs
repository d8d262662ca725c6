//! What a write transaction leaves for its commit, and how it is sent there: the changes whose results nothing
//! in the transaction reads (see [`WriteTxn::at_commit`](super::WriteTxn::at_commit)), then the rows of the
//! sequence-ordered logs (events, audit entries).
//!
//! Each statement sent is a round trip the write waits for: on SQLite a hand-off to sqlx's connection thread
//! (inside the single writer's critical section), on PostgreSQL a message to the server and its answer, with
//! the transaction open (its row locks held) meanwhile. So what is left for the commit goes in as few of them as
//! keeps it correct:
//! - SQLite runs everything as one statement string (see [`super::execute_in_turn`]).
//! - PostgreSQL joins changes as data-modifying common table expressions (`WITH "hush_0" AS (INSERT …),
//!   "hush_1" AS (UPDATE …) INSERT …`; PostgreSQL runs every one of them once, whether or not anything reads
//!   it): the changes left for the commit in statements of at most [`MAX_JOINED`] (one for a write of one
//!   secret or a batch of up to 16; each distinct statement text is prepared and cached per connection, on the
//!   server too, so its size stays bounded), then the log rows in one more. Never changes and log rows together:
//!   the first log row takes the append lock (see `settled`), and a write must take it only after every row lock
//!   it will ever take (an insert of a secret may wait for a concurrent insert of the same key), or it could wait
//!   for a writer that waits behind the lock's reader, which waits for it. Within one statement the changes see
//!   the same snapshot (none sees another's rows) and foreign keys are checked at its end, which the changes of
//!   one write allow: they never touch one row twice (a batch's keys are distinct) and a secret's new version
//!   refers to a row the same statement inserts or one read before.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryTrait, Statement,
    sea_query::{
        Alias, CommonTableExpression, DeleteStatement, InsertStatement, SubQueryStatement, UpdateStatement, WithClause,
    },
};

use super::{entities, execute_in_turn};

/// Changes joined into one PostgreSQL statement at most: 16 secrets' updates (a row and its version each).
/// Bounds the statement's text and plan, which sqlx and PostgreSQL keep for every distinct text, and its bound
/// values (about 16 a change; a bulk insert's are bounded by its batch).
const MAX_JOINED: usize = 32;

/// A change left for a transaction's commit (see [`WriteTxn::at_commit`](super::WriteTxn::at_commit)): rows
/// written, never read back.
#[derive(Debug, Clone)]
pub enum Change {
    Insert(InsertStatement),
    Update(UpdateStatement),
    Delete(DeleteStatement),
}

impl From<InsertStatement> for Change {
    fn from(insert: InsertStatement) -> Self {
        Change::Insert(insert)
    }
}

impl From<UpdateStatement> for Change {
    fn from(update: UpdateStatement) -> Self {
        Change::Update(update)
    }
}

impl From<DeleteStatement> for Change {
    fn from(delete: DeleteStatement) -> Self {
        Change::Delete(delete)
    }
}

impl From<Change> for SubQueryStatement {
    fn from(change: Change) -> Self {
        match change {
            Change::Insert(insert) => insert.into(),
            Change::Update(update) => update.into(),
            Change::Delete(delete) => delete.into(),
        }
    }
}

impl Change {
    fn build(&self, backend: DbBackend) -> Statement {
        match self {
            Change::Insert(insert) => backend.build(insert),
            Change::Update(update) => backend.build(update),
            Change::Delete(delete) => backend.build(delete),
        }
    }
}

/// What a transaction leaves for its commit: changes (see [`WriteTxn::at_commit`](super::WriteTxn::at_commit)),
/// then the outbox and audit rows it appends.
#[derive(Default)]
pub(super) struct Sequenced {
    pub(super) changes: Vec<Change>,
    pub(super) events: Vec<entities::event::ActiveModel>,
    pub(super) audit: Vec<entities::audit_log::ActiveModel>,
}

impl Sequenced {
    /// Whether events are appended.
    pub(super) fn appends_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether audit entries are appended.
    pub(super) fn appends_audit(&self) -> bool {
        !self.audit.is_empty()
    }
}

/// Runs the changes left for the commit, inserts the outbox and audit rows, then runs `then`; returns the newest
/// outbox cursor when events were appended on SQLite (where the single writer's cursor is what readers follow; on
/// PostgreSQL they follow the settled head, see `settled`).
///
/// On SQLite all of it goes in one hand-off ([`execute_in_turn`]); the events are the last rows inserted, so the
/// last inserted row id is the newest cursor. On PostgreSQL in as few statements as the module's comment says.
pub(super) async fn insert(
    txn: &DatabaseTransaction,
    sequenced: Sequenced,
    then: Option<Statement>,
) -> Result<Option<i64>, DbErr> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Sqlite {
        let appended_events = sequenced.appends_events();
        let done = execute_in_turn(txn, sqlite(sequenced, then)).await?;
        return Ok(done.filter(|_| appended_events).and_then(|done| i64::try_from(done.last_insert_id()).ok()));
    }
    let Sequenced { changes, events, audit } = sequenced;
    for chunk in changes.chunks(MAX_JOINED) {
        txn.execute_raw(joined(backend, chunk)).await?;
    }
    let logs: Vec<Change> = log_rows(events, audit).into_iter().map(Change::Insert).collect();
    if !logs.is_empty() {
        txn.execute_raw(joined(backend, &logs)).await?;
    }
    if let Some(then) = then {
        txn.execute_raw(then).await?;
    }
    Ok(None)
}

/// What [`insert`] runs on SQLite, in order: the changes, the audit rows, the events, `then`.
pub(super) fn sqlite(Sequenced { changes, events, audit }: Sequenced, then: Option<Statement>) -> Vec<Statement> {
    let backend = DbBackend::Sqlite;
    let changes = changes.iter().map(|change| change.build(backend));
    let logs = log_rows(events, audit).into_iter().map(|insert| backend.build(&insert));
    changes.chain(logs).chain(then).collect()
}

/// The inserts of the audit rows, then of the events (none for no rows).
fn log_rows(
    events: Vec<entities::event::ActiveModel>,
    audit: Vec<entities::audit_log::ActiveModel>,
) -> Vec<InsertStatement> {
    let audit = (!audit.is_empty()).then(|| entities::audit_log::Entity::insert_many(audit).into_query());
    let events = (!events.is_empty()).then(|| entities::event::Entity::insert_many(events).into_query());
    audit.into_iter().chain(events).collect()
}

/// Non-empty `changes` as one statement: each but the last a common table expression, the last the statement
/// itself.
fn joined(backend: DbBackend, changes: &[Change]) -> Statement {
    let (last, before) = changes.split_last().expect("called with changes");
    if before.is_empty() {
        return last.build(backend);
    }
    let mut with = WithClause::new();
    for (i, change) in before.iter().enumerate() {
        let name = Alias::new(format!("hush_{i}"));
        with.cte(CommonTableExpression::new().query(change.clone()).table_name(name).to_owned());
    }
    backend.build(&with.query(last.clone()))
}
