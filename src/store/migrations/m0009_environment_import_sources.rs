//! Whether some folder imports from an environment (`environments.import_source`), set for every environment
//! an import already names; written out explicitly: a later change to the entity is a new migration, never an
//! edit of this one.
//!
//! Why: a write of secrets appends a `secret:import-mutation` event for each folder importing the changed
//! folder, and looked those folders up with a statement of its own on every write. The flag is read by the
//! statement that locks the environment anyway (see `scope::env_scope_for_secret_write`), so a write in an
//! environment nothing imports from, the common case, skips that lookup.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_environment_import_sources"
    }
}

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
    ImportSource,
}

#[derive(DeriveIden)]
enum SecretImports {
    Table,
    ImportEnvironmentId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = Table::alter()
            .table(Environments::Table)
            .add_column(ColumnDef::new(Environments::ImportSource).boolean().not_null().default(false))
            .to_owned();
        manager.alter_table(column).await?;
        let sources = Query::select().column(SecretImports::ImportEnvironmentId).from(SecretImports::Table).to_owned();
        let mark = Query::update()
            .table(Environments::Table)
            .value(Environments::ImportSource, true)
            .and_where(Expr::col(Environments::Id).in_subquery(sources))
            .to_owned();
        manager.exec_stmt(mark).await
    }
}
