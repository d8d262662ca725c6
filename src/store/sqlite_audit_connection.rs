//! The SQLite connection the audit writer of reads commits with, run on the writer's own thread.
//!
//! Through sqlx, every group of entries was handed to a connection thread of sqlx's and its answer handed back:
//! two thread wake-ups per group on top of SQLite's work, plus sea-orm building a new multi-row statement and
//! sqlx binding it. Profiled under reads, that plumbing cost about as much CPU as SQLite's insert and commit
//! themselves. Here the audit thread runs SQLite directly (a blocking call is what that thread is for), with
//! one prepared single-row insert reused for every entry.
//!
//! Values are written in the forms sqlx writes them, so the rows read back the same through sea-orm and sort
//! and compare the same as the rest of the log: text for strings, compact JSON text for the metadata, and
//! RFC 3339 text with automatic sub-second digits for times (sqlx's `DateTime` encoding).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::SecondsFormat;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params_from_iter, types::Value as SqlValue};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait, DatabaseConnection, DbErr, Iden, Iterable, Statement, Value,
};

use super::entities::audit_log;

/// An open connection and the insert statement it runs.
pub(super) struct AuditConnection {
    conn: Connection,
    insert: String,
}

impl AuditConnection {
    /// Opens the database `file` (created and migrated already by the pool; see [`main_file`]) the way the
    /// pool's connections are: every commit synced (`synchronous=FULL`, SQLite's default, which sqlx keeps),
    /// waiting up to `busy_timeout` for SQLite's write lock if another connection holds it (a group that
    /// failed is rolled back on sqlx's thread after the writer lock is let go).
    pub(super) fn open(file: &Path, busy_timeout: Duration) -> Result<Self, DbErr> {
        let conn =
            Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(sqlite_error)?;
        conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite_error)?;
        let columns: Vec<_> = stored_columns().map(|column| format!("\"{}\"", column.to_string())).collect();
        let insert = format!(
            "INSERT INTO \"{}\" ({}) VALUES ({})",
            audit_log::Entity.to_string(),
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        Ok(Self { conn, insert })
    }

    /// Inserts `rows` and commits them as one transaction; returns once they are durable.
    pub(super) fn commit(&mut self, rows: &[audit_log::ActiveModel]) -> Result<(), DbErr> {
        let txn = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite_error)?;
        {
            let mut insert = txn.prepare_cached(&self.insert).map_err(sqlite_error)?;
            for row in rows {
                let values =
                    stored_columns().map(|column| sql_value(row.get(column))).collect::<Result<Vec<_>, _>>()?;
                insert.execute(params_from_iter(values)).map_err(sqlite_error)?;
            }
        }
        // Dropped uncommitted on an error above, the transaction is rolled back.
        txn.commit().map_err(sqlite_error)
    }
}

/// The file of the database `conn` opened, as SQLite itself names it: reading the URL (its options, relative
/// paths) is sqlx's business, and the audit connection must open what the pool opened. `None` for an in-memory
/// database, which a second connection cannot share.
pub(super) async fn main_file(conn: &DatabaseConnection) -> Result<Option<PathBuf>, DbErr> {
    let sql = "SELECT file FROM pragma_database_list WHERE name = 'main'";
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await?;
    let file: String = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => String::new(),
    };
    Ok((!file.is_empty()).then(|| PathBuf::from(file)))
}

/// Every column but `seq`, which SQLite assigns.
fn stored_columns() -> impl Iterator<Item = audit_log::Column> {
    audit_log::Column::iter().filter(|column| !matches!(column, audit_log::Column::Seq))
}

/// The stored form of one field, as sqlx would bind it.
fn sql_value(field: ActiveValue<Value>) -> Result<SqlValue, DbErr> {
    let value = field.into_value().ok_or_else(|| DbErr::Custom("an audit entry misses a field".to_owned()))?;
    Ok(match value {
        Value::String(text) => text.map_or(SqlValue::Null, |text| SqlValue::Text(text.to_string())),
        Value::Json(json) => json.map_or(SqlValue::Null, |json| SqlValue::Text(json.to_string())),
        Value::ChronoDateTimeUtc(at) => {
            at.map_or(SqlValue::Null, |at| SqlValue::Text(at.to_rfc3339_opts(SecondsFormat::AutoSi, false)))
        }
        other => return Err(DbErr::Custom(format!("an audit entry field of an unexpected type: {other:?}"))),
    })
}

fn sqlite_error(error: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {error}"))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, QueryTrait, Set, Statement};

    use super::*;
    use crate::store::Store;

    /// A migrated store in `dir`, and an audit connection to its database that waits a second for a lock.
    async fn store_and_connection(dir: &tempfile::TempDir) -> (Store, AuditConnection) {
        let store = crate::store::tests::sqlite_store(dir).await;
        let file = main_file(store.conn()).await.unwrap().expect("a database file");
        let own = AuditConnection::open(&file, Duration::from_secs(1)).unwrap();
        (store, own)
    }

    /// An entry with every kind of field, `project` set or not.
    fn entry(id: &str, project: Option<&str>) -> audit_log::ActiveModel {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 34, 56).unwrap() + chrono::Duration::nanoseconds(120_000);
        audit_log::ActiveModel {
            id: Set(id.to_owned()),
            actor_type: Set("identity".to_owned()),
            actor_id: Set("actor-1".to_owned()),
            actor_name: Set("déploiement \"ci\" ✓".to_owned()),
            ip_address: Set("127.0.0.1".to_owned()),
            user_agent: Set("tests/1.0".to_owned()),
            user_agent_type: Set("other".to_owned()),
            event_type: Set("get-secret".to_owned()),
            event_metadata: Set(serde_json::json!({"secretPath": "/a b", "keys": ["K", "ü"], "version": 3})),
            org_id: Set("org-1".to_owned()),
            project_id: Set(project.map(str::to_owned)),
            created_at: Set(at),
            expires_at: Set(at + chrono::Duration::days(90)),
            ..Default::default()
        }
    }

    /// The stored text of every column but `seq` and `id`, row by row in `seq` order.
    async fn stored_text(store: &Store) -> Vec<Vec<String>> {
        let columns = ["actor_name", "event_metadata", "project_id", "created_at", "expires_at"]
            .map(|column| format!("quote(\"{column}\") AS \"{column}\""))
            .join(", ");
        let sql = format!("SELECT {columns} FROM audit_logs ORDER BY seq");
        let rows = store.conn().query_all_raw(Statement::from_string(store.backend(), sql)).await.unwrap();
        rows.iter().map(|row| (0..5).map(|i| row.try_get_by_index::<String>(i).unwrap()).collect()).collect()
    }

    /// An entry written by the audit thread's own connection is stored exactly as sqlx stores it: the same text
    /// in every column (times, JSON, NULL), so it reads back, sorts and compares like the rest of the log.
    #[tokio::test]
    async fn entries_are_stored_as_sqlx_stores_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut own) = store_and_connection(&dir).await;
        for project in [Some("project-1"), None] {
            let by_sqlx = audit_log::Entity::insert(entry("by-sqlx", project)).build(store.backend());
            store.conn().execute_raw(by_sqlx).await.unwrap();
            own.commit(&[entry("by-own", project)]).unwrap();
            let text = stored_text(&store).await;
            assert_eq!(text.len(), 2);
            assert_eq!(text[0], text[1], "the same entry through sqlx, then through the audit connection");
            let read = audit_log::Entity::find().order_by_asc(audit_log::Column::Seq).all(store.conn()).await.unwrap();
            assert_eq!(read[1].id, "by-own");
            assert_eq!((read[1].created_at, &read[1].event_metadata), (read[0].created_at, &read[0].event_metadata));
            assert_eq!(read[1].project_id.as_deref(), project);
            audit_log::Entity::delete_many().exec(store.conn()).await.unwrap();
        }
    }

    /// The audit connection opens the database file the pool opened, as SQLite names it.
    #[tokio::test]
    async fn the_audit_connection_opens_what_the_pool_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (store, own) = store_and_connection(&dir).await;
        let named = own.conn.path().expect("a database file");
        let configured = store.sqlite_file.clone().expect("a file URL");
        assert_eq!(Path::new(named).canonicalize().unwrap(), configured.canonicalize().unwrap());
    }

    /// Entries appended while a write group is open go into that group and commit it: the audit connection,
    /// which cannot write while the group holds SQLite's write lock, is not used then (it would wait for the
    /// lock and fail here after its one-second timeout), and the group's own write is committed with them.
    #[tokio::test]
    async fn entries_join_an_open_write_group_and_commit_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut own) = store_and_connection(&dir).await;
        let writer = store.sqlite_writer.clone().expect("SQLite");
        // A write that released its part and lets go of the writer lock: its group stays open until committed.
        let mut member = writer.join(store.conn(), super::super::sqlite_group::Mode::Interactive).await.unwrap();
        let write = audit_log::Entity::insert(entry("the group's write", None)).build(store.backend());
        member.txn().execute_raw(write).await.unwrap();
        let release = member.release_statement();
        let released = member.txn().execute_raw(release).await;
        member.release_answered(released).unwrap();
        // On this one-thread runtime the member lets go of the lock only once this test waits for it, and the
        // appender, queued for the lock first, finds the group still open.
        let group_committed = tokio::spawn(member.commit());
        super::super::audit_appender::commit(&store, vec![entry("a read's entry", None)], Some(&mut own))
            .await
            .unwrap();
        assert_eq!(own.conn.last_insert_rowid(), 0, "the audit connection inserted nothing");
        group_committed.await.unwrap().unwrap();
        let ids: Vec<_> =
            audit_log::Entity::find().all(store.conn()).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["the group's write", "a read's entry"]);
    }

    /// A group is all or nothing: an entry SQLite refuses (here a repeated id) leaves none of its group stored,
    /// and the connection commits the next group.
    #[tokio::test]
    async fn a_refused_entry_stores_none_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut own) = store_and_connection(&dir).await;
        let refused = own.commit(&[entry("first", None), entry("twice", None), entry("twice", None)]);
        assert!(refused.unwrap_err().to_string().contains("UNIQUE"), "the refusal names its cause");
        assert!(stored_text(&store).await.is_empty());
        own.commit(&[entry("next", None)]).unwrap();
        let ids: Vec<_> =
            audit_log::Entity::find().all(store.conn()).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["next"]);
    }
}
