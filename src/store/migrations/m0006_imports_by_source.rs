//! An index on the environment a folder imports from (`secret_imports.import_environment_id`), written out
//! explicitly: a later change to the entity is a new migration, never an edit of this one.
//!
//! Why: every write of a secret looks up the folders that import the changed folder, by that column; without
//! the index each write read every import of every project, so its cost grew with the whole instance. It also
//! serves the foreign key's cascade when an environment is deleted.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_imports_by_source"
    }
}

#[derive(DeriveIden)]
enum SecretImports {
    Table,
    ImportEnvironmentId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index = Index::create()
            // Named as sea-orm names the indexes it derives from entities.
            .name("idx-secret_imports-import_environment_id")
            .table(SecretImports::Table)
            .col(SecretImports::ImportEnvironmentId)
            .to_owned();
        manager.create_index(index).await
    }
}
