//! Schema migrations, applied at start in one transaction.
//!
//! **The rule: a migration, once released, is never edited.** Each one is a file of this directory written out
//! explicitly (SQL per backend), never derived from the entities: an entity describes the schema of today, a
//! migration the step from one schema to the next, and an upgraded database must end up exactly like a fresh
//! one. To change the schema, change the entity *and* add a new file `mNNNN_<what>.rs` (plus its SQL) with the
//! next number, append it to [`Migrator::migrations`], and run `cargo test --test schema`, which compares the
//! migrated schema with what the entities expect on SQLite and PostgreSQL.
//!
//! Migration 1 is the schema of hush 0.1.0. Databases made by 0.1.0 recorded its six development migrations
//! instead; [`adopt_0_1_0`] recognises them and records migration 1 in their place before anything runs.

mod adopt_0_1_0;
mod m0001_schema_0_1_0;
mod m0002_root_key_check;
mod m0003_permission_changes;
mod m0004_stream_failure_mode;
mod m0005_unique_project_names;
mod m0006_imports_by_source;
mod m0007_append_lock_in_the_database;
mod m0008_sqlite_unread_audit_indexes;
mod m0009_environment_import_sources;

pub use m0008_sqlite_unread_audit_indexes::SQLITE_UNREAD_AUDIT_INDEXES;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait};
use sea_orm_migration::prelude::*;

/// PostgreSQL advisory lock key serialising instances that start at once on one database ("hush" + 2).
const MIGRATION_LOCK: i64 = 0x6875_7368_0002;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_schema_0_1_0::Migration),
            Box::new(m0002_root_key_check::Migration),
            Box::new(m0003_permission_changes::Migration),
            Box::new(m0004_stream_failure_mode::Migration),
            Box::new(m0005_unique_project_names::Migration),
            Box::new(m0006_imports_by_source::Migration),
            Box::new(m0007_append_lock_in_the_database::Migration),
            Box::new(m0008_sqlite_unread_audit_indexes::Migration),
            Box::new(m0009_environment_import_sources::Migration),
        ]
    }
}

/// The migration records a database may hold for this build to open it: its own migrations, and 0.1.0's
/// development records (adopted at start).
pub fn names() -> Vec<String> {
    let own = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect::<Vec<_>>();
    own.into_iter().chain(adopt_0_1_0::DEVELOPMENT.iter().map(|name| (*name).to_owned())).collect()
}

/// Brings the database to the newest schema: adopts a 0.1.0 database's records, then applies what is pending.
///
/// Everything happens in one transaction, so a failed upgrade changes nothing; on PostgreSQL a transaction-scoped
/// advisory lock makes a second instance starting at the same moment wait, then find nothing left to do.
pub async fn migrate(conn: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = conn.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).await?;
    }
    adopt_0_1_0::adopt(&txn).await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Runs the SQL of `manager`'s backend (several statements separated by `;`).
async fn run_sql(manager: &SchemaManager<'_>, sqlite: &str, postgres: &str) -> Result<(), DbErr> {
    let sql = match manager.get_database_backend() {
        DbBackend::Sqlite => sqlite,
        DbBackend::Postgres => postgres,
        other => return Err(DbErr::Migration(format!("{other:?} is not supported"))),
    };
    manager.get_connection().execute_unprepared(sql).await.map(drop)
}
