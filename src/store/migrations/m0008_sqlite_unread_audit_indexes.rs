//! SQLite: drops the three indexes of `audit_logs` that no query reads there (actor, event type, creation
//! time), written out explicitly: a later change is a new migration, never an edit of this one.
//!
//! Why: every audit entry is written to the table and to each of its indexes, and the entry of every read is
//! on that read's path. SQLite plans without statistics (hush never runs `ANALYZE`), and for every shape hush
//! queries the log with (listing and export with each filter, the audit streams' batches and head, backfill's
//! range) it picks the org index, which carries `seq` (an SQLite index holds the row id) and so serves an
//! org's entries in order. The project filter reads the project index and the pruner the expiry index; both
//! stay. The listing and the export are held to an index search by a test (`audit::query`); the other shapes
//! filter by org and `seq` or org and time, as the export does. Measured in docs/BENCHMARKS.md (issue 14,
//! eleventh session). PostgreSQL keeps all of them: its planner uses statistics and finds, say, an actor's
//! entries in a large log by its index.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The indexes of `audit_logs` that SQLite databases do without (the entities describe PostgreSQL's).
pub const SQLITE_UNREAD_AUDIT_INDEXES: [&str; 3] =
    ["idx-audit_logs-actor_id", "idx-audit_logs-event_type", "idx-audit_logs-created_at"];

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_sqlite_unread_audit_indexes"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        for name in SQLITE_UNREAD_AUDIT_INDEXES {
            // A database whose owner dropped one already still starts.
            manager.drop_index(Index::drop().name(name).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
