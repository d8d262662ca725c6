//! Audit streams' failure mode (`audit_streams.on_failure`, `drop` for every existing stream, as before) and
//! when a stream in `pause` mode paused (`audit_stream_states.paused_at`), written out explicitly: a later
//! change to the entities is a new migration, never an edit of this one.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_stream_failure_mode"
    }
}

#[derive(DeriveIden)]
enum AuditStreams {
    Table,
    OnFailure,
}

#[derive(DeriveIden)]
enum AuditStreamStates {
    Table,
    PausedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let on_failure = Table::alter()
            .table(AuditStreams::Table)
            .add_column(ColumnDef::new(AuditStreams::OnFailure).string().not_null().default("drop"))
            .to_owned();
        manager.alter_table(on_failure).await?;
        let paused_at = Table::alter()
            .table(AuditStreamStates::Table)
            .add_column(ColumnDef::new(AuditStreamStates::PausedAt).timestamp_with_time_zone().null())
            .to_owned();
        manager.alter_table(paused_at).await
    }
}
