//! What a write transaction leaves for its commit, and how it is sent there: the changes whose results nothing
//! in the transaction reads (see [`WriteTxn::at_commit`](super::WriteTxn::at_commit)), then the rows of the
//! sequence-ordered logs (events, audit entries).
//!
//! Each statement sent is a round trip the write waits for: on SQLite a hand-off to sqlx's connection thread
//! (inside the single writer's critical section), on PostgreSQL a message to the server and its answer, with
//! the transaction open (its row locks held) meanwhile. So what is left for the commit goes in as few of them as
//! keeps it correct:
//! - SQLite runs everything as one statement string (see [`super::execute_in_turn`]).
//! - PostgreSQL takes two statements, each several changes joined as data-modifying common table expressions
//!   (`WITH s0 AS (INSERT …), s1 AS (UPDATE …) INSERT …`; PostgreSQL runs every one of them once, whether or not
//!   anything reads it): the changes left for the commit, then the log rows. Not one: the first log row takes the
//!   append lock (see `settled`), and a write must take it only after every row lock it will ever take (an
//!   insert of a secret may wait for a concurrent insert of the same key), or it could wait for a writer that
//!   waits behind the lock's reader, which waits for it. Within one statement the changes see the same snapshot
//!   (none sees another's rows) and foreign keys are checked at its end, which the changes of one write allow:
//!   they never touch one row twice (a batch's keys are distinct) and a secret's new version refers to a row the
//!   same statement inserts or one read before.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryTrait, Statement,
    sea_query::{Alias, CommonTableExpression, SubQueryStatement, WithClause},
};

use super::{entities, execute_in_turn};

/// What a transaction leaves for its commit: changes (see [`WriteTxn::at_commit`](super::WriteTxn::at_commit)),
/// then the outbox and audit rows it appends.
#[derive(Default)]
pub(super) struct Sequenced {
    pub(super) changes: Vec<SubQueryStatement>,
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

/// Runs the changes left for the commit, inserts the outbox and audit rows, then runs `then` (SQLite only);
/// returns the newest outbox cursor when events were appended.
///
/// On SQLite all of it goes in one hand-off ([`execute_in_turn`]); the events are the last rows inserted, so the
/// last inserted row id is the newest cursor. On PostgreSQL in two statements (see the module's comment).
pub(super) async fn insert(
    txn: &DatabaseTransaction,
    sequenced: Sequenced,
    then: Option<Statement>,
) -> Result<Option<i64>, DbErr> {
    let appended_events = sequenced.appends_events();
    match txn.get_database_backend() {
        DbBackend::Sqlite => {
            let done = execute_in_turn(txn, sqlite(sequenced, then)).await?;
            Ok(done.filter(|_| appended_events).and_then(|done| i64::try_from(done.last_insert_id()).ok()))
        }
        backend => {
            debug_assert!(then.is_none(), "`then` is for SQLite's write groups");
            let Sequenced { changes, events, audit } = sequenced;
            if let Some(changes) = joined(backend, changes) {
                txn.execute_raw(changes).await?;
            }
            let mut logs = Vec::with_capacity(2);
            if !audit.is_empty() {
                logs.push(entities::audit_log::Entity::insert_many(audit).into_query().into());
            }
            if appended_events {
                let mut insert = entities::event::Entity::insert_many(events).into_query();
                insert.returning_col(entities::event::Column::Seq);
                logs.push(insert.into());
            }
            let Some(logs) = joined(backend, logs) else {
                return Ok(None);
            };
            if !appended_events {
                txn.execute_raw(logs).await?;
                return Ok(None);
            }
            // The events' insert is the statement's own: its rows are their cursors.
            let mut newest = None;
            for row in txn.query_all_raw(logs).await? {
                newest = newest.max(Some(row.try_get_by_index::<i64>(0)?));
            }
            Ok(newest)
        }
    }
}

/// What [`insert`] runs on SQLite, in order: the changes, the audit rows, the events, `then`.
pub(super) fn sqlite(Sequenced { changes, events, audit }: Sequenced, then: Option<Statement>) -> Vec<Statement> {
    let backend = DbBackend::Sqlite;
    let inserts = [
        (!audit.is_empty()).then(|| backend.build(&entities::audit_log::Entity::insert_many(audit).into_query())),
        (!events.is_empty()).then(|| backend.build(&entities::event::Entity::insert_many(events).into_query())),
        then,
    ];
    changes.iter().map(|change| build(backend, change)).chain(inserts.into_iter().flatten()).collect()
}

/// `changes` as one statement (`None` for none): each but the last a common table expression, the last the
/// statement itself (what it returns is what the statement returns).
fn joined(backend: DbBackend, mut changes: Vec<SubQueryStatement>) -> Option<Statement> {
    let last = changes.pop()?;
    if changes.is_empty() {
        return Some(build(backend, &last));
    }
    let mut with = WithClause::new();
    for (i, change) in changes.into_iter().enumerate() {
        with.cte(CommonTableExpression::new().query(change).table_name(Alias::new(format!("hush_{i}"))).to_owned());
    }
    Some(backend.build(&with.query(last)))
}

fn build(backend: DbBackend, change: &SubQueryStatement) -> Statement {
    match change {
        SubQueryStatement::SelectStatement(select) => backend.build(select),
        SubQueryStatement::InsertStatement(insert) => backend.build(insert),
        SubQueryStatement::UpdateStatement(update) => backend.build(update),
        SubQueryStatement::DeleteStatement(delete) => backend.build(delete),
        SubQueryStatement::WithStatement(with) => backend.build(with),
    }
}
