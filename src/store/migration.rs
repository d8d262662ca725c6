//! Schema migrations, applied at start. Tables are derived from the entities so the two cannot drift.

use sea_orm::{ActiveModelTrait, EntityName, EntityTrait, IntoActiveModel, QueryOrder, Schema, Set};
use sea_orm_migration::prelude::*;

use super::entities::{
    access_token, audit_log, audit_stream, audit_stream_state, authz_version, client_secret, environment, event,
    folder, identity, org, outbox_state, project, project_membership, role, secret, secret_import, secret_version,
};

// The later migrations live in files of their own (`migrations/`), one per migration.
#[path = "migrations/m0002_root_key_check.rs"]
mod m0002_root_key_check;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Foundation),
            Box::new(Permissions),
            Box::new(Events),
            Box::new(AuditLogs),
            Box::new(AuditStreams),
            Box::new(IdentityHygiene),
            Box::new(m0002_root_key_check::Migration),
        ]
    }
}

/// The names of every migration this build knows.
pub fn names() -> Vec<String> {
    Migrator::migrations().iter().map(|m| m.name().to_owned()).collect()
}

/// Orgs, identities, credentials, projects, environments, folders, secrets, versions and imports.
struct Foundation;

impl MigrationName for Foundation {
    fn name(&self) -> &str {
        "m0001_foundation"
    }
}

async fn create<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> Result<(), DbErr> {
    let schema = Schema::new(manager.get_database_backend());
    manager.create_table(schema.create_table_from_entity(entity)).await?;
    for index in schema.create_index_from_entity(entity) {
        manager.create_index(index).await?;
    }
    Ok(())
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Foundation {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Parents before children, for the foreign keys.
        create(manager, org::Entity).await?;
        create(manager, identity::Entity).await?;
        create(manager, client_secret::Entity).await?;
        create(manager, access_token::Entity).await?;
        create(manager, project::Entity).await?;
        create(manager, environment::Entity).await?;
        create(manager, folder::Entity).await?;
        create(manager, secret::Entity).await?;
        create(manager, secret_version::Entity).await?;
        create(manager, secret_import::Entity).await
    }
}

/// Custom roles, project memberships and the permission version counter.
struct Permissions;

impl MigrationName for Permissions {
    fn name(&self) -> &str {
        "m0002_permissions"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Permissions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, role::Entity).await?;
        create(manager, project_membership::Entity).await?;
        create(manager, authz_version::Entity).await?;
        let seed = Query::insert()
            .into_table(authz_version::Entity)
            .columns([authz_version::Column::Id, authz_version::Column::Version])
            .values_panic([1.into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(seed).await
    }
}

/// The event outbox and its pruning watermark.
struct Events;

impl MigrationName for Events {
    fn name(&self) -> &str {
        "m0003_events"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Events {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, event::Entity).await?;
        create(manager, outbox_state::Entity).await?;
        let seed = Query::insert()
            .into_table(outbox_state::Entity)
            .columns([outbox_state::Column::Id, outbox_state::Column::PrunedThrough])
            .values_panic([1.into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(seed).await
    }
}

/// The audit log.
struct AuditLogs;

impl MigrationName for AuditLogs {
    fn name(&self) -> &str {
        "m0004_audit_logs"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for AuditLogs {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, audit_log::Entity).await
    }
}

/// Audit streams and their delivery state.
struct AuditStreams;

impl MigrationName for AuditStreams {
    fn name(&self) -> &str {
        "m0005_audit_streams"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for AuditStreams {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, audit_stream::Entity).await?;
        create(manager, audit_stream_state::Entity).await
    }
}

/// Tokens remember the client secret that minted them (so revoking it revokes them), and identity names become
/// unique per org as the contract says (existing duplicates but the oldest are renamed `<name>-<id suffix>`
/// first; nothing is deleted).
///
/// Fresh databases already get the column from the entity in m0001; only older ones need it added.
struct IdentityHygiene;

impl MigrationName for IdentityHygiene {
    fn name(&self) -> &str {
        "m0006_identity_hygiene"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for IdentityHygiene {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = access_token::Column::ClientSecretId;
        if !manager.has_column(access_token::Entity.table_name(), &column.to_string()).await? {
            let add = Table::alter()
                .table(access_token::Entity)
                .add_column(ColumnDef::new(column).string().null())
                .to_owned();
            manager.alter_table(add).await?;
            let index = Index::create()
                .if_not_exists()
                .name("idx-access_tokens-client_secret_id")
                .table(access_token::Entity)
                .col(column)
                .to_owned();
            manager.create_index(index).await?;
        }
        rename_duplicate_identities(manager).await?;
        let unique = Index::create()
            .if_not_exists()
            .unique()
            .name("idx-identities-org_id-name")
            .table(identity::Entity)
            .col(identity::Column::OrgId)
            .col(identity::Column::Name)
            .to_owned();
        manager.create_index(unique).await
    }
}

async fn rename_duplicate_identities(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = identity::Entity::find()
        .order_by_asc(identity::Column::OrgId)
        .order_by_asc(identity::Column::Name)
        .order_by_asc(identity::Column::CreatedAt)
        .order_by_asc(identity::Column::Id)
        .all(db)
        .await?;
    let mut previous: Option<(String, String)> = None;
    for row in rows {
        let key = (row.org_id.clone(), row.name.clone());
        if previous.as_ref() == Some(&key) {
            // The id's last 12 characters are random; names stay within the 64-character limit.
            let suffix = &row.id[row.id.len().saturating_sub(12)..];
            let stem: String = row.name.chars().take(64 - 13).collect();
            let name = format!("{stem}-{suffix}");
            let mut active = row.into_active_model();
            active.name = Set(name);
            active.update(db).await?;
        }
        previous = Some(key);
    }
    Ok(())
}
