//! The permission change log (`entities::permission_change`), written out explicitly: a later change to the
//! entity is a new migration, never an edit of this one.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_permission_changes"
    }
}

#[derive(DeriveIden)]
enum PermissionChanges {
    Table,
    Version,
    IdentityId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(PermissionChanges::Table)
            .col(ColumnDef::new(PermissionChanges::Version).big_integer().not_null())
            .col(ColumnDef::new(PermissionChanges::IdentityId).string().not_null())
            // Named as sea-orm names the keys it derives from entities.
            .primary_key(
                Index::create()
                    .name("pk-permission_changes")
                    .col(PermissionChanges::Version)
                    .col(PermissionChanges::IdentityId),
            )
            .to_owned();
        manager.create_table(table).await
    }
}
