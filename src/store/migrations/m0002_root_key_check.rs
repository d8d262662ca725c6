//! The root key check table (`entities::root_key_check`), written out explicitly: a later change to the
//! entity is a new migration, never an edit of this one.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_root_key_check"
    }
}

#[derive(DeriveIden)]
enum RootKeyCheck {
    Table,
    Id,
    SealedCheck,
    SealedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(RootKeyCheck::Table)
            .col(ColumnDef::new(RootKeyCheck::Id).integer().not_null().primary_key())
            // What the entity's `Vec<u8>` maps to: `bytea` on PostgreSQL, a blob on SQLite.
            .col(ColumnDef::new_with_type(RootKeyCheck::SealedCheck, ColumnType::VarBinary(StringLen::None)).not_null())
            .col(ColumnDef::new(RootKeyCheck::SealedAt).timestamp_with_time_zone().not_null())
            .to_owned();
        manager.create_table(table).await
    }
}
