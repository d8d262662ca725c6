//! Migration 1: the schema of hush 0.1.0, with the seed rows of `authz_version` and `outbox_state`. Exactly
//! what 0.1.0's six development migrations made on a fresh database; never edited (see the module doc).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_schema_0_1_0"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::run_sql(
            manager,
            include_str!("m0001_schema_0_1_0.sqlite.sql"),
            include_str!("m0001_schema_0_1_0.postgres.sql"),
        )
        .await
    }
}
